//! The command line: arguments in, text out, an exit code back to `main`.
//!
//! Exit codes: `check` exits with the Nagios plugin code of the worst result (0 ok,
//! 1 warning, 2 critical, 3 unknown) in every output mode, so cron and Nagios read it
//! alike; a configuration that cannot be used exits 78 (`EX_CONFIG`, sysexits.h), or 3
//! with a one-line UNKNOWN status under `--nagios`; bad arguments exit 64 (`EX_USAGE`).

use crate::config::{self, CheckKind, Config, ConfigError, DEFAULT_PATH};
use crate::output;
use crate::run::{self, CheckType};
use clap::{Args, CommandFactory, Parser, Subcommand};
use reliability_core::check::Status;
use reliability_core::spec::Env;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// sysexits.h: the command was used incorrectly.
pub const EX_USAGE: i32 = 64;
/// sysexits.h: something was found in an unconfigured or misconfigured state.
pub const EX_CONFIG: i32 = 78;

/// Watches services, ports, URLs, processes, resources and backups with the engines of
/// hx.reliability, as its configuration file says.
#[derive(Debug, Parser)]
#[command(name = "reliability-monitor", version)]
struct Cli {
    /// The configuration file.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_PATH)]
    config: PathBuf,

    /// The state directory (default: the configuration's service_monitoring.state_dir).
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Validate the configuration and exit (the same as `validate-config`).
    #[arg(long)]
    validate_config: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration: list every problem (exit 78), or summarise it (exit 0).
    ValidateConfig {
        /// The file to validate, instead of --config.
        path: Option<PathBuf>,
    },
    /// Run the checks of one type once, report them and exit with the Nagios code of the
    /// worst result.
    Check(CheckArgs),
    /// Run the checks on their schedules, heal failing services, serve /health, /ready,
    /// /alive, /metrics; systemd Type=notify. SIGHUP reloads, SIGTERM stops.
    Daemon,
    /// Alerts: `alert test --channel NAME` sends a test alert and reports its delivery.
    Alert {
        #[command(subcommand)]
        command: crate::alert_cmd::AlertCommand,
    },
    #[command(flatten)]
    State(crate::cmd::Cmd),
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Which checks to run.
    #[arg(long = "type", visible_alias = "check-type", value_enum, default_value = "all")]
    kind: CheckType,
    /// One JSON object instead of a table.
    #[arg(long, conflicts_with = "nagios")]
    json: bool,
    /// A Nagios plugin status line with perfdata.
    #[arg(long)]
    nagios: bool,
}

/// Runs the command line `args`, writing to `out` and `err`; returns the exit code.
pub fn run(args: impl IntoIterator<Item = OsString>, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EX_USAGE } else { 0 };
            let text = e.render().to_string();
            let _ = if e.use_stderr() {
                err.write_all(text.as_bytes())
            } else {
                out.write_all(text.as_bytes())
            };
            return code;
        }
    };
    let env = Env {
        home: std::env::var("HOME").ok(),
    };
    match cli.command {
        Some(Command::ValidateConfig { path }) => validate(path.as_deref().unwrap_or(&cli.config), &env, out, err),
        None if cli.validate_config => validate(&cli.config, &env, out, err),
        Some(Command::Check(args)) => check(&cli.config, &args, &env, out, err),
        Some(Command::Daemon) => crate::daemon::run(&cli.config, &env),
        Some(Command::Alert { command }) => crate::alert_cmd::run(&cli.config, &command, &env, out, err),
        Some(Command::State(cmd)) => crate::cmd::run(
            cmd,
            &cli.config,
            cli.state_dir.as_deref(),
            &env,
            Cli::command(),
            out,
            err,
        ),
        None => {
            let _ = writeln!(
                err,
                "reliability-monitor: no command given; try 'reliability-monitor --help'"
            );
            EX_USAGE
        }
    }
}

fn validate(path: &Path, env: &Env, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match config::load(path, env) {
        Ok(config) => {
            let _ = out.write_all(summary(path, &config).as_bytes());
            0
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
            EX_CONFIG
        }
    }
}

/// What a valid configuration will do, and what it sets that nothing uses yet.
pub fn summary(path: &Path, config: &Config) -> String {
    let mut s = format!("{}: valid\n", path.display());
    let counts: Vec<String> = [
        ("services", CheckKind::Services),
        ("ports", CheckKind::Ports),
        ("http", CheckKind::Http),
        ("processes", CheckKind::Processes),
        ("resources", CheckKind::Resources),
    ]
    .iter()
    .map(|(name, kind)| format!("{} {name}", config.count(*kind)))
    .collect();
    s.push_str(&format!("  health checks: {}\n", counts.join(", ")));
    s.push_str(&format!(
        "  performance: {}\n",
        if config.metrics.is_empty() {
            "off".to_string()
        } else {
            config.metrics.join(", ")
        }
    ));
    s.push_str(&format!("  backups: {}\n", config.backups.len()));
    s.push_str(&format!("  recoveries: {}\n", config.recoveries.len()));
    for path in &config.unused {
        s.push_str(&format!("  accepted, not used: {path}\n"));
    }
    s
}

fn check(path: &Path, args: &CheckArgs, env: &Env, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let config = match config::load(path, env) {
        Ok(c) => c,
        Err(e) => return config_error(&e, args, out, err),
    };
    let report = run::run_with_progress(&config, args.kind, &mut terminal_progress());
    let text = if args.nagios {
        output::nagios(args.kind, &report)
    } else if args.json {
        output::json(args.kind, &report)
    } else {
        output::table(&report)
    };
    let _ = out.write_all(text.as_bytes());
    output::worst(&report).exit_code()
}

/// Progress of a long run on stderr, only when stderr is a terminal (cron, Nagios and
/// pipes get none): one line rewritten in place, cleared at the end.
fn terminal_progress() -> impl FnMut(run::Progress<'_>) {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    move |p: run::Progress<'_>| {
        if !tty {
            return;
        }
        let mut err = std::io::stderr();
        let _ = match p.name {
            Some(name) => write!(
                err,
                "\r\x1b[2Kverifying backup {}/{}: {}",
                p.done + 1,
                p.total,
                crate::cmd::one_line(name)
            ),
            None => write!(err, "\r\x1b[2K"),
        };
        let _ = err.flush();
    }
}

/// A configuration that cannot be used: the problems on stderr, exit 78; under
/// `--nagios` also the one status line a plugin owes, and exit 3 (UNKNOWN).
fn config_error(e: &ConfigError, args: &CheckArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let _ = writeln!(err, "{e}");
    if args.nagios {
        let first = e.problems.first().map(String::as_str).unwrap_or_default();
        let _ = writeln!(
            out,
            "{} UNKNOWN - configuration {}: {} problem(s): {}",
            args.kind.name().to_ascii_uppercase(),
            e.file.display(),
            e.problems.len(),
            first
        );
        return Status::Unknown.exit_code();
    }
    EX_CONFIG
}
