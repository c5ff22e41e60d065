//! The threads check runs are made on: each run gets a thread of its own, as before, but a
//! thread whose run ended waits [`IDLE`] for the next one instead of ending. Starting a
//! thread (its stack mapped and faulted in, its signal stack, the clone) cost more than
//! many checks themselves; with a hundred entries a second that was most of the daemon's
//! CPU.
//!
//! Nothing else changes: a run never waits for another (a task goes to an idle thread or
//! to a new one, never into a queue), so a hung run holds its own thread only, and the
//! threads alive are at most the runs going at once plus those idle.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long a thread without a run waits for one before it ends.
pub const IDLE: Duration = Duration::from_secs(60);

/// What a run leaves to do once its thread is back among the idle ones.
type Then = Box<dyn FnOnce()>;
type Task = Box<dyn FnOnce() -> Then + Send>;
/// An idle thread: its id and the sending end of its channel.
type Idle = (u64, Sender<Task>);

/// Threads waiting for a run, each by the sending end of its own channel.
#[derive(Clone)]
pub struct Workers {
    idle: Arc<Mutex<Vec<Idle>>>,
    next_id: Arc<AtomicU64>,
    name: &'static str,
    idle_for: Duration,
}

impl Workers {
    pub fn new(name: &'static str) -> Workers {
        Workers::with_idle(name, IDLE)
    }

    fn with_idle(name: &'static str, idle_for: Duration) -> Workers {
        Workers {
            idle: Arc::new(Mutex::new(Vec::new())),
            next_id: Arc::new(AtomicU64::new(0)),
            name,
            idle_for,
        }
    }

    /// Runs `work` at once on an idle thread, or on a new one, then `then` with its
    /// outcome once the thread is back among the idle ones (so the run `then` announces
    /// finds it there, instead of starting another thread); an error only when no thread
    /// can be started.
    pub fn run<T: 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
        then: impl FnOnce(T) + Send + 'static,
    ) -> std::io::Result<()> {
        let mut task: Task = Box::new(move || {
            let outcome = work();
            Box::new(move || then(outcome))
        });
        loop {
            let taken = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let Some((_, tx)) = taken else { break };
            // A thread taken off the list stays for the task sent to it (see `serve`).
            match tx.send(task) {
                Ok(()) => return Ok(()),
                Err(mpsc::SendError(back)) => task = back,
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel::<Task>();
        let workers = self.clone();
        std::thread::Builder::new()
            .name(self.name.into())
            .spawn(move || workers.serve(id, task, &tx, &rx))
            .map(drop)
    }

    /// Runs `task`, then offers this thread for runs until it has been idle for
    /// `idle_for`.
    fn serve(&self, id: u64, mut task: Task, tx: &Sender<Task>, rx: &Receiver<Task>) {
        loop {
            let then = task();
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((id, tx.clone()));
            then();
            task = match rx.recv_timeout(self.idle_for) {
                Ok(task) => task,
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                    match idle.iter().position(|(i, _)| *i == id) {
                        // Still on the list: nobody can send to it any more; end.
                        Some(at) => {
                            idle.swap_remove(at);
                            return;
                        }
                        // Taken off just now: its task is sent or on its way.
                        None => {
                            drop(idle);
                            match rx.recv() {
                                Ok(task) => task,
                                Err(_) => return,
                            }
                        }
                    }
                }
            };
        }
    }

    /// Threads waiting for a run now.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Instant;

    fn thread_id(workers: &Workers) -> std::thread::ThreadId {
        let (tx, rx) = mpsc::channel();
        workers
            .run(|| std::thread::current().id(), move |id| tx.send(id).expect("send"))
            .expect("run");
        rx.recv_timeout(Duration::from_secs(5)).expect("the task ran")
    }

    /// Waits until a thread is back on the idle list (after its task sent its answer).
    fn settled(workers: &Workers) {
        let until = Instant::now() + Duration::from_secs(5);
        while workers.idle() == 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_thread_whose_run_ended_takes_the_next() {
        let workers = Workers::new("test");
        let first = thread_id(&workers);
        // Each answer comes once the thread is idle again: the next run finds it.
        let ids: HashSet<_> = (0..20).map(|_| thread_id(&workers)).collect();
        assert_eq!(ids, HashSet::from([first]), "one thread served every run in turn");
    }

    #[test]
    fn a_hung_run_holds_its_own_thread_only() {
        let workers = Workers::new("test");
        let (release, hold) = mpsc::channel::<()>();
        workers
            .run(
                move || {
                    let _ = hold.recv();
                },
                |()| {},
            )
            .expect("run");
        // The hung run is not waited for: another run starts at once, elsewhere.
        let started = Instant::now();
        let other = thread_id(&workers);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_ne!(other, std::thread::current().id());
        drop(release);
    }

    #[test]
    fn idle_threads_end() {
        let workers = Workers::with_idle("test", Duration::from_millis(50));
        let _ = thread_id(&workers);
        settled(&workers);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(workers.idle(), 0, "the idle thread ended");
        // And runs still start afterwards.
        let _ = thread_id(&workers);
    }
}
