//! `reliability-monitor alert test --channel NAME`: a test alert through one configured
//! channel, now, bypassing the queue; the delivery is printed (the channel's host, never
//! a URL or a secret) and the exit code says how it went: 0 delivered, 1 not delivered
//! (the reason printed), 78 a configuration that cannot be used or has no such channel.

use crate::cli::EX_CONFIG;
use crate::config;
use clap::Subcommand;
use reliability_alerts::Outcome;
use reliability_core::spec::Env;
use reliability_os::clock::now_ms;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Send a test alert through a configured channel now and report its delivery
    /// (exit 0 delivered, 1 failed).
    Test {
        /// The channel: email, slack, webhook or alertmanager (as `alerting.channels`
        /// names it).
        #[arg(long, value_name = "NAME")]
        channel: String,
    },
}

pub fn run(path: &Path, command: &AlertCommand, env: &Env, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let AlertCommand::Test { channel } = command;
    let config = match config::load(path, env) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EX_CONFIG;
        }
    };
    let report = match config.alerts.send_test(channel, now_ms()) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "reliability-monitor: {e}");
            return EX_CONFIG;
        }
    };
    let took = report.elapsed.as_millis();
    match &report.outcome {
        Outcome::Delivered => {
            let _ = writeln!(
                out,
                "delivered: test alert {} through '{}' to {} in {took} ms",
                report.key, report.channel, report.target
            );
            0
        }
        Outcome::Retry { error, .. } | Outcome::Refused(error) => {
            let _ = writeln!(
                err,
                "not delivered: test alert {} through '{}' to {} after {took} ms: {}",
                report.key, report.channel, report.target, error.reason
            );
            1
        }
    }
}
