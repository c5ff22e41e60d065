//! The bounded incident log: rotation by size, reading back only the window, and parallel
//! writers across a rotation losing no line.

use reliability_os::journal::{append, read_since, rotated, Rotation};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Line {
    at: u64,
    pad: String,
}

fn line(at: u64) -> Line {
    Line {
        at,
        pad: "x".repeat(80),
    }
}

#[test]
fn rotates_by_size_and_keeps_n_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("incidents.jsonl");
    let rotation = Rotation {
        max_bytes: 1000,
        keep: 2,
    };
    for at in 0..100 {
        append(&log, &line(at), Some(rotation)).expect("append");
    }
    for n in 0..=2 {
        let size = std::fs::metadata(rotated(&log, n)).expect("rotated file").len();
        assert!(size > 0 && size <= 1000, "{n}: {size}");
    }
    assert!(!rotated(&log, 3).exists(), "only .1 and .2 are kept");
    // Everything kept, oldest first, with no gap and the newest line last.
    let (all, bad) = read_since::<Line>(&log, 2, 0, |l| l.at).expect("read");
    assert_eq!(bad, 0);
    let ats: Vec<u64> = all.iter().map(|l| l.at).collect();
    assert_eq!(ats.last(), Some(&99));
    assert!(ats.windows(2).all(|w| w[1] == w[0] + 1), "{ats:?}");
    assert!(ats.len() < 100, "the oldest lines were dropped");
}

#[test]
fn reading_stops_at_the_window_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("incidents.jsonl");
    let rotation = Rotation {
        max_bytes: 1000,
        keep: 5,
    };
    for at in 0..40 {
        append(&log, &line(at), Some(rotation)).expect("append");
    }
    // A file older than the window that does not parse proves it is never opened.
    std::fs::write(rotated(&log, 3), "not json\n").expect("spoil .3");
    let (recent, bad) = read_since::<Line>(&log, 5, 35, |l| l.at).expect("read");
    assert_eq!(recent.iter().map(|l| l.at).collect::<Vec<_>>(), [35, 36, 37, 38, 39]);
    assert_eq!(bad, 0, "only the files reaching the window were read");
}

#[test]
fn parallel_writers_across_rotations_lose_no_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("incidents.jsonl");
    let rotation = Rotation {
        max_bytes: 4000,
        keep: 1000,
    };
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let log = &log;
            s.spawn(move || {
                for i in 0..50 {
                    append(log, &line(t * 1000 + i), Some(rotation)).expect("append");
                }
            });
        }
    });
    let (all, bad) = read_since::<Line>(&log, 1000, 0, |l| l.at).expect("read");
    assert_eq!(bad, 0);
    let mut ats: Vec<u64> = all.iter().map(|l| l.at).collect();
    ats.sort_unstable();
    let expected: Vec<u64> = (0..8).flat_map(|t| (0..50).map(move |i| t * 1000 + i)).collect();
    assert_eq!(ats, expected);
}

/// A log of 2 GB (sparse) is read from its end only, fast; a FIFO is refused at once.
#[test]
fn a_huge_log_is_read_from_its_end_and_a_fifo_never() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("incidents.jsonl");
    let file = std::fs::File::create(&log).expect("create");
    file.set_len(2 << 30).expect("sparse");
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).expect("open");
    let text = format!(
        "\n{}\n{}\n",
        serde_json::to_string(&line(1)).expect("json"),
        serde_json::to_string(&line(2)).expect("json")
    );
    file.write_all(text.as_bytes()).expect("append");
    let started = std::time::Instant::now();
    let (lines, bad) = read_since::<Line>(&log, 5, 0, |l| l.at).expect("read");
    assert_eq!(lines.iter().map(|l| l.at).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(bad, 0);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let fifo = dir.path().join("fifo.jsonl");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let err = read_since::<Line>(&fifo, 5, 0, |l| l.at)
        .expect_err("a FIFO")
        .to_string();
    assert!(err.contains("is a FIFO, not a regular file"), "{err}");
    let err = append(&fifo, &line(3), None).expect_err("a FIFO").to_string();
    assert!(err.contains("is a FIFO, not a regular file"), "{err}");
}
