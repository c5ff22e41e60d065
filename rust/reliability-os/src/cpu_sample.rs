//! Host CPU busy from the reading the previous run kept, or from a brief fresh sample.
//!
//! The decision is [`reliability_core::cpu_sample`]'s; this is its I/O: reading
//! `/proc/stat`, the boot id and `CLOCK_BOOTTIME`, and keeping the readings in the state
//! store (`<state_dir>/cpu_sample/host.json`, through [`crate::state::Store`]: 0600 in a
//! 0700 directory, written atomically, a link, FIFO or oversized file refused, an
//! unusable file moved aside). Whatever goes wrong with the kept reading, CPU busy is still
//! measured, by sampling; what went wrong is returned as a warning, except a state
//! directory the user may not write (a run without root on the default directory), which
//! is only noted in [`HostCpu::store_error`].

use crate::clock;
use crate::facts::parse_proc_stat;
use crate::state::{StateError, Store};
use nix::time::{clock_gettime, ClockId};
use reliability_core::cpu_sample::{self, Choice, CpuSample, Kept, Why};
use reliability_core::cpu_times::CpuUsage;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a run waits for another run's lock on the kept reading before it samples
/// instead (runs in parallel on one host).
const LOCK_WAIT: Duration = Duration::from_millis(200);

/// Where CPU busy was measured from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The reading a previous run (or the monitor daemon) kept.
    PreviousSample,
    /// Two readings taken by this run.
    Sampled,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::PreviousSample => "previous_sample",
            Source::Sampled => "sampled",
        }
    }
}

/// CPU busy over a window, and how it was measured.
#[derive(Clone, Debug, PartialEq)]
pub struct HostCpu {
    /// `None` when no clock tick passed in the window.
    pub usage: Option<CpuUsage>,
    /// The time between the two readings.
    pub window: Duration,
    pub source: Source,
    /// Why no kept reading served, when the CPU was sampled.
    pub sampled_because: Option<&'static str>,
    /// Problems with the kept reading that the user should hear of.
    pub warnings: Vec<String>,
    /// A problem with the store that is not worth a warning (no permission to write it).
    pub store_error: Option<String>,
}

/// What the caller asks.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    /// The state directory; `None`: never read or keep a reading.
    pub state_dir: Option<&'a Path>,
    /// The length of a fresh sample, and the youngest kept reading used.
    pub fresh: Duration,
    /// The oldest kept reading used; zero: always sample.
    pub max_age: Duration,
    /// Whether this run keeps its reading (false in check mode: nothing is written).
    pub keep: bool,
}

/// Measures host CPU busy (see the module docs).
pub fn measure(options: Options<'_>) -> Result<HostCpu, String> {
    let now = read_now()?;
    let started = Instant::now();
    let min_ms = millis(options.fresh);
    let max_ms = millis(options.max_age);
    let mut warnings = Vec::new();
    let mut store_error = None;
    let mut choice = Choice::Sample(Why::None);
    let mut previous = None;
    if let Some(dir) = options.state_dir {
        let store = Store::new(dir).with_lock_timeout(LOCK_WAIT);
        let mut pick = |kept: &[CpuSample]| {
            let (index, c) = cpu_sample::best(kept, &now, min_ms, max_ms);
            choice = c;
            previous = index.and_then(|i| kept.get(i).cloned());
        };
        let got = if options.keep {
            store
                .update(cpu_sample::NAME, |kept: Option<Kept>| {
                    let readings = kept.map(|k| k.readings).unwrap_or_default();
                    pick(&readings);
                    Ok::<_, StateError>(Kept {
                        readings: cpu_sample::next(&readings, &now, min_ms),
                    })
                })
                .map(|_| ())
        } else {
            store
                .load::<Kept>(cpu_sample::NAME)
                .map(|kept| pick(&kept.map(|k| k.readings).unwrap_or_default()))
        };
        if let Err(e) = got {
            match e {
                StateError::Io { ref source, .. } if quiet(source) => store_error = Some(e.to_string()),
                StateError::LockTimeout { .. } => store_error = Some(e.to_string()),
                e => warnings.push(format!("CPU busy: the kept reading is not used: {e}")),
            }
        }
    }
    if let (Choice::Previous { window_ms }, Some(prev)) = (&choice, &previous) {
        if let Some(usage) = now.times.usage_since(&prev.times) {
            return Ok(HostCpu {
                usage: Some(usage),
                window: Duration::from_millis(*window_ms),
                source: Source::PreviousSample,
                sampled_because: None,
                warnings,
                store_error,
            });
        }
    }
    let sampled_because = Some(match &choice {
        Choice::Sample(why) => why.as_str(),
        Choice::Previous { .. } => "no_tick",
    });
    std::thread::sleep(options.fresh.saturating_sub(started.elapsed()));
    let after = read_now()?;
    Ok(HostCpu {
        usage: after.times.usage_since(&now.times),
        window: Duration::from_millis(after.boottime_ms.saturating_sub(now.boottime_ms)),
        source: Source::Sampled,
        sampled_because,
        warnings,
        store_error,
    })
}

/// Errors of a store the user may not write, or on a read-only filesystem: a run without
/// root measures by sampling, without a warning on every run.
fn quiet(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    )
}

/// `/proc/stat`, the boot id and both clocks, now.
pub fn read_now() -> Result<CpuSample, String> {
    let boottime = clock_gettime(ClockId::CLOCK_BOOTTIME).map_err(|e| format!("clock_gettime(CLOCK_BOOTTIME): {e}"))?;
    let stat = std::fs::read_to_string("/proc/stat")
        .map_err(|e| format!("cannot read /proc/stat: {e}"))
        .and_then(|text| parse_proc_stat(&text))?;
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map_err(|e| format!("cannot read /proc/sys/kernel/random/boot_id: {e}"))?
        .trim()
        .to_string();
    let ms = u64::try_from(boottime.tv_sec()).unwrap_or(0) * 1000
        + u64::try_from(boottime.tv_nsec()).unwrap_or(0) / 1_000_000;
    Ok(CpuSample {
        boot_id,
        boottime_ms: ms,
        taken_at_ms: clock::now_ms(),
        times: stat.cpu,
    })
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}
