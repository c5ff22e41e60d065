//! `reliability-monitor`: the monitor of hx.reliability, a front end on the engines.
//!
//! The monitor has no check logic of its own. It reads its configuration ([`config`]),
//! turns it into the engines' requests (`reliability_checks::HealthRequest`,
//! `reliability_recovery::RecoveryRequest`, `reliability_backup` verify options), runs
//! them ([`run`]) and turns their reports into output ([`output`]): a table, JSON, or a
//! Nagios plugin line. The command line ([`cli`]) is the only code that writes to the
//! terminal or decides an exit code; `main` is one call to it.
//!
//! Commands: `validate-config`, `check`, `daemon` ([`daemon`]: the one part with a loop,
//! signals and a listener), and the commands on the state the engines keep ([`cmd`]:
//! `status`, `report`, `breaker`, `incidents`, `maintenance`, `audit`, `completions`,
//! `man`).

mod alert_cmd;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod daemon;
pub mod output;
mod problems;
pub mod run;

pub use problems::Problems;
