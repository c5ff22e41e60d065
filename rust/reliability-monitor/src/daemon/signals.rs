//! Signals as events: SIGHUP, SIGTERM and SIGINT are blocked in every thread (the mask is
//! set before the first thread starts, and threads inherit it) and taken by one thread
//! with `sigwait`, which turns each into an [`Event`] on the main loop's channel. No
//! handler runs in signal context, so nothing here needs to be async-signal-safe.
//! Child processes (systemctl) start with an empty mask: `std::process` resets it.

use super::Event;
use nix::sys::signal::{SigSet, Signal};
use std::sync::mpsc::Sender;

fn set() -> SigSet {
    let mut set = SigSet::empty();
    for s in [Signal::SIGHUP, Signal::SIGTERM, Signal::SIGINT] {
        set.add(s);
    }
    set
}

/// Blocks the signals in the calling thread; call before any thread is started.
pub fn block() -> Result<(), String> {
    set().thread_block().map_err(|e| format!("cannot block signals: {e}"))
}

/// Starts the thread that waits for the signals and sends them as events.
pub fn spawn(events: Sender<Event>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            let event = match set().wait() {
                Ok(Signal::SIGHUP) => Event::Reload,
                Ok(Signal::SIGTERM) => Event::Stop("SIGTERM"),
                Ok(Signal::SIGINT) => Event::Stop("SIGINT"),
                Ok(_) | Err(_) => continue,
            };
            if events.send(event).is_err() {
                return;
            }
        })
        .map(drop)
}
