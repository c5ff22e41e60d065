//! Host CPU busy without waiting: which reading of `/proc/stat` to measure from.
//!
//! CPU busy is a rate, the change of the kernel's tick counters between two readings. A
//! run that waits for its second reading costs the wait (it used to be half a second on
//! every `health_check` with `resources`). Instead each run keeps its reading under the
//! state directory, and the next run (or the monitor daemon's next cycle) measures from
//! it: the window is then the time between the two runs, at no cost.
//!
//! [`choose`] decides whether the kept reading can serve. It cannot when it comes from
//! another boot (the counters restarted), when its clock is ahead of now (a different
//! clock, or a planted file), when it is younger than the fresh sample would be (a window
//! shorter than that says less than sampling), or older than `max_age` (busy over an hour
//! says little about now). Then the caller samples afresh, briefly.
//!
//! Two readings are kept ([`Kept`]), so that runs in quick succession (tasks a few tens of
//! milliseconds apart, several runs in parallel) always find one old enough: [`best`] takes
//! the youngest that serves, and [`next`] adds this run's reading only once the newest
//! kept one is old enough to serve itself, dropping the older. Runs of any frequency then
//! measure over a window between `min_age` and about twice that, and never wait after the
//! first `min_age`.
//!
//! Times are milliseconds of `CLOCK_BOOTTIME` (monotonic, counts suspend, starts at boot),
//! read by the caller: nothing here reads a clock or a file.

use crate::cpu_times::CpuTimes;
use serde::{Deserialize, Serialize};

/// The `kind` of the sample's state file.
pub const KIND: &str = "cpu_sample";
/// The state-file format this code reads and writes.
pub const VERSION: u32 = 1;
/// The one record of the host: `<state_dir>/cpu_sample/host.json`.
pub const NAME: &str = "host";

/// One reading of the aggregate `cpu` line of `/proc/stat`, with when and in which boot it
/// was taken.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuSample {
    /// `/proc/sys/kernel/random/boot_id`: the counters of another boot are not comparable.
    pub boot_id: String,
    /// `CLOCK_BOOTTIME` at the reading, in milliseconds.
    pub boottime_ms: u64,
    /// Wall clock at the reading, unix milliseconds: for people reading the file.
    pub taken_at_ms: u64,
    /// The counters, in clock ticks since boot; in the file, beside the fields above
    /// (`"user": ..., "steal": ...`), as before they were a struct of their own.
    #[serde(flatten)]
    pub times: CpuTimes,
}

/// The state file: the last readings, oldest first (at most [`KEEP`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub readings: Vec<CpuSample>,
}

/// How many readings are kept.
pub const KEEP: usize = 2;

/// What to measure CPU busy from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The kept reading, `window_ms` before now.
    Previous { window_ms: u64 },
    /// Sample afresh; why the kept reading does not serve.
    Sample(Why),
}

/// Why the kept reading (if any) does not serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// There is none (first run, or it could not be read).
    None,
    /// Reuse is off (`max_age` is 0).
    Disabled,
    /// It was taken in another boot.
    OtherBoot,
    /// Its time, or its tick count, is ahead of now's.
    FromTheFuture,
    /// Younger than the fresh sample would be.
    TooYoung { age_ms: u64 },
    /// Older than `max_age`.
    TooOld { age_ms: u64 },
}

impl Why {
    /// For the check's details: `none`, `disabled`, `other_boot`, `from_the_future`,
    /// `too_young`, `too_old`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Why::None => "none",
            Why::Disabled => "disabled",
            Why::OtherBoot => "other_boot",
            Why::FromTheFuture => "from_the_future",
            Why::TooYoung { .. } => "too_young",
            Why::TooOld { .. } => "too_old",
        }
    }
}

/// Whether `previous` can serve as the first reading for `now`. `min_age_ms` is the length
/// of a fresh sample; `max_age_ms` 0 turns reuse off.
pub fn choose(previous: Option<&CpuSample>, now: &CpuSample, min_age_ms: u64, max_age_ms: u64) -> Choice {
    let Some(previous) = previous else {
        return Choice::Sample(Why::None);
    };
    if max_age_ms == 0 {
        return Choice::Sample(Why::Disabled);
    }
    if previous.boot_id != now.boot_id {
        return Choice::Sample(Why::OtherBoot);
    }
    let Some(age_ms) = now.boottime_ms.checked_sub(previous.boottime_ms) else {
        return Choice::Sample(Why::FromTheFuture);
    };
    if previous.times.total() > now.times.total() {
        return Choice::Sample(Why::FromTheFuture);
    }
    if age_ms < min_age_ms {
        Choice::Sample(Why::TooYoung { age_ms })
    } else if age_ms > max_age_ms {
        Choice::Sample(Why::TooOld { age_ms })
    } else {
        Choice::Previous { window_ms: age_ms }
    }
}

/// The youngest of `kept` that serves as the first reading for `now`, as its index and
/// [`Choice::Previous`]; otherwise why the newest one does not (or [`Why::None`]).
pub fn best(kept: &[CpuSample], now: &CpuSample, min_age_ms: u64, max_age_ms: u64) -> (Option<usize>, Choice) {
    let mut why = Choice::Sample(Why::None);
    for (i, k) in kept.iter().enumerate().rev() {
        match choose(Some(k), now, min_age_ms, max_age_ms) {
            c @ Choice::Previous { .. } => return (Some(i), c),
            c if i + 1 == kept.len() => why = c,
            _ => {}
        }
    }
    (None, why)
}

/// The readings to keep after a run that read `now`: readings of another boot or ahead of
/// now are dropped; `now` is added once the newest kept reading is at least `min_age_ms`
/// old (until then it serves the runs that come), and only the last [`KEEP`] stay.
pub fn next(kept: &[CpuSample], now: &CpuSample, min_age_ms: u64) -> Vec<CpuSample> {
    let mut out: Vec<CpuSample> = kept
        .iter()
        .filter(|k| {
            k.boot_id == now.boot_id && k.boottime_ms <= now.boottime_ms && k.times.total() <= now.times.total()
        })
        .cloned()
        .collect();
    let young = out.last().is_some_and(|k| now.boottime_ms - k.boottime_ms < min_age_ms);
    if !young {
        out.push(now.clone());
    }
    let extra = out.len().saturating_sub(KEEP);
    out.drain(..extra);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(boot: &str, ms: u64) -> CpuSample {
        CpuSample {
            boot_id: boot.into(),
            boottime_ms: ms,
            ..CpuSample::default()
        }
    }

    #[test]
    fn chooses_the_previous_reading_within_its_window() {
        let now = at("b1", 100_000);
        let ahead = CpuSample {
            times: CpuTimes {
                idle: 1,
                ..CpuTimes::default()
            },
            ..at("b1", 90_000)
        };
        let cases: [(Option<CpuSample>, u64, Choice); 9] = [
            (Some(ahead), 300_000, Choice::Sample(Why::FromTheFuture)),
            (None, 300_000, Choice::Sample(Why::None)),
            (Some(at("b1", 90_000)), 0, Choice::Sample(Why::Disabled)),
            (Some(at("b0", 90_000)), 300_000, Choice::Sample(Why::OtherBoot)),
            (Some(at("b1", 100_001)), 300_000, Choice::Sample(Why::FromTheFuture)),
            (
                Some(at("b1", 99_950)),
                300_000,
                Choice::Sample(Why::TooYoung { age_ms: 50 }),
            ),
            (Some(at("b1", 99_900)), 300_000, Choice::Previous { window_ms: 100 }),
            (Some(at("b1", 0)), 100_000, Choice::Previous { window_ms: 100_000 }),
            (
                Some(at("b1", 0)),
                99_999,
                Choice::Sample(Why::TooOld { age_ms: 100_000 }),
            ),
        ];
        for (previous, max_age, expected) in cases {
            assert_eq!(
                choose(previous.as_ref(), &now, 100, max_age),
                expected,
                "{previous:?} {max_age}"
            );
        }
    }

    #[test]
    fn runs_in_quick_succession_never_sample_after_the_first() {
        // A run every 30 ms for 2 s, a fresh sample of 100 ms.
        let mut kept: Vec<CpuSample> = Vec::new();
        let mut windows = Vec::new();
        for t in (0..2000).step_by(30) {
            let now = CpuSample {
                times: CpuTimes {
                    idle: t,
                    ..CpuTimes::default()
                },
                ..at("b1", 10_000 + t)
            };
            let (index, choice) = best(&kept, &now, 100, 300_000);
            match (t, index, choice) {
                (0, None, Choice::Sample(Why::None)) => {}
                // Until the first reading is a fresh sample's length old, runs sample too.
                (t, None, Choice::Sample(Why::TooYoung { .. })) if t < 100 => {}
                (_, Some(_), Choice::Previous { window_ms }) => windows.push(window_ms),
                other => panic!("at {t} ms: {other:?} from {kept:?}"),
            }
            kept = next(&kept, &now, 100);
            assert!(kept.len() <= KEEP);
        }
        assert!(windows.iter().all(|w| (100..=240).contains(w)), "{windows:?}");
    }

    #[test]
    fn the_youngest_that_serves_is_taken() {
        let now = at("b1", 100_000);
        let kept = [at("b1", 99_000), at("b1", 99_950)];
        assert_eq!(
            best(&kept, &now, 100, 300_000),
            (Some(0), Choice::Previous { window_ms: 1000 })
        );
        let kept = [at("b1", 98_000), at("b1", 99_000)];
        assert_eq!(
            best(&kept, &now, 100, 300_000),
            (Some(1), Choice::Previous { window_ms: 1000 })
        );
        assert_eq!(
            best(&[at("b0", 1)], &now, 100, 300_000),
            (None, Choice::Sample(Why::OtherBoot))
        );
        assert_eq!(best(&[], &now, 100, 300_000), (None, Choice::Sample(Why::None)));
        // Another boot's readings are dropped; a young newest one is not replaced.
        assert_eq!(next(&[at("b0", 5), at("b1", 99_950)], &now, 100), [at("b1", 99_950)]);
        assert_eq!(
            next(&[at("b1", 98_000), at("b1", 99_000)], &now, 100),
            [at("b1", 99_000), now.clone()]
        );
    }

    #[test]
    fn a_record_missing_a_counter_does_not_read() {
        let ok = r#"{"boot_id":"b","boottime_ms":1,"taken_at_ms":2,"user":1,"nice":0,"system":1,"idle":9,"iowait":0,"irq":0,"softirq":0,"steal":0}"#;
        assert!(serde_json::from_str::<CpuSample>(ok).is_ok());
        let short = ok.replace(",\"steal\":0", "");
        assert!(serde_json::from_str::<CpuSample>(&short).is_err());
    }

    #[test]
    fn the_counters_stand_beside_the_other_fields_in_the_file() {
        // The state files of earlier versions, from before CpuTimes was embedded, still read.
        let text = r#"{"boot_id":"b","boottime_ms":1,"taken_at_ms":2,"user":3,"nice":4,"system":5,"idle":6,"iowait":7,"irq":8,"softirq":9,"steal":10}"#;
        let sample: CpuSample = serde_json::from_str(text).expect("reads");
        assert_eq!(
            sample.times,
            CpuTimes {
                user: 3,
                nice: 4,
                system: 5,
                idle: 6,
                iowait: 7,
                irq: 8,
                softirq: 9,
                steal: 10
            }
        );
        assert_eq!(serde_json::to_string(&sample).expect("writes"), text);
    }
}
