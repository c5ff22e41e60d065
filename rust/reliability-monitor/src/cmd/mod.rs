//! The commands that read (and, for `breaker reset` and `maintenance`, change) what the
//! engines keep in the state directory: `status`, `report`, `breaker`, `incidents`,
//! `maintenance`, `audit`, and the generated `completions` and `man` page.
//!
//! Each command is one file: it reads through the engines' own readers
//! (`reliability_recovery::breaker`, `reliability_recovery::incidents`,
//! `reliability_os::maintenance`, `reliability_os::audit`), builds one serialisable
//! report, and renders it as a table, JSON or a Nagios line ([`Rendered`]). Nothing here
//! writes to the terminal or exits: [`crate::cli`] does.
//!
//! Where the state directory is: `--state-dir`, else the configuration's
//! `service_monitoring.state_dir`, else the default. A host with no configuration file
//! (modules only) is served from the default state directory; a configuration that exists
//! but is invalid is refused (exit 78), as `check` does.

pub mod audit;
pub mod breaker;
pub mod docs;
pub mod incidents;
pub mod maintenance;
pub mod report;
pub mod status;

use crate::config::{self, Config, ConfigError};
use clap::Args;
use reliability_core::check::Status;
use reliability_core::incident::Event;
use reliability_core::spec::Env;
use reliability_os::clock::now_ms;
use reliability_os::state::{self, Store};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The commands of this module, flattened into the command line's.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// The host now: the daemon's last check results (with their age), breakers, open
    /// incidents, maintenance windows in force. Runs no check.
    Status {
        #[command(flatten)]
        format: Format,
    },
    /// Per service over a window: availability against reliability_metrics.sla_target with
    /// the error budget left, MTTR, MTBF, recovery success and escalation rates, the KPIs
    /// (MTTR < 5 min, failure rate < 0.1 %). With --compliance: the audit report of a period.
    Report(ReportArgs),
    /// List the circuit breakers, or reset one (recorded in the audit trail).
    #[command(subcommand)]
    Breaker(BreakerCmd),
    /// The outages of a window, each with its recovery attempts.
    Incidents {
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
        /// How far back (30d, 12h, 90m).
        #[arg(long, default_value = "30d", value_parser = parse_window)]
        window: u64,
        #[command(flatten)]
        format: Format,
    },
    /// Open, close and list ad-hoc maintenance windows (the maintenance_window module's).
    #[command(subcommand)]
    Maintenance(MaintenanceCmd),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// A shell completion script, generated from this command line.
    Completions {
        #[arg(value_enum)]
        shell: docs::Shell,
    },
    /// The man page (roff), generated from this command line.
    Man,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Only this service.
    #[arg(long)]
    service: Option<String>,
    /// The window ending now (30d, 12h, 90m); with --compliance, the period's length when
    /// --from is not given.
    #[arg(long, default_value = "30d", value_parser = parse_window)]
    window: u64,
    /// The compliance report: actions per kind and actor, manual interventions, SLA
    /// compliance, maintenance windows taken, the audit chain verified.
    #[arg(long)]
    compliance: bool,
    /// Start of the period (RFC 3339, e.g. 2026-12-01T00:00:00Z).
    #[arg(long, requires = "compliance", value_parser = parse_time)]
    from: Option<u64>,
    /// End of the period (RFC 3339); default now.
    #[arg(long, requires = "compliance", value_parser = parse_time)]
    to: Option<u64>,
    /// How the compliance report is written.
    #[arg(long, value_enum, requires = "compliance", default_value = "table")]
    format: report::ComplianceFormat,
    #[command(flatten)]
    output: Format,
}

#[derive(Debug, clap::Subcommand)]
pub enum BreakerCmd {
    /// Every breaker in the state directory, with its state and counters.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Close a breaker and clear its counters (an audit record names who did it).
    Reset {
        name: String,
        /// Why (kept in the audit record).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        format: Format,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum MaintenanceCmd {
    /// Open a window now: alerts (and, where configured, recoveries) are held back.
    Start {
        /// How long (2h, 30m, 1d12h).
        #[arg(long = "for", value_parser = parse_window)]
        duration: u64,
        /// Why (kept in the window and the audit record).
        #[arg(long)]
        reason: String,
        #[arg(long, default_value = maintenance::DEFAULT_NAME)]
        name: String,
        /// The services it covers (comma-separated); none: the whole host.
        #[arg(long, value_delimiter = ',')]
        services: Vec<String>,
    },
    /// Close a window (every open one without --name).
    Stop {
        #[arg(long)]
        name: Option<String>,
    },
    /// Every stored window, open or closed.
    List {
        #[command(flatten)]
        format: Format,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCmd {
    /// Check the hash chain: exit 0 intact, 2 tampered (the first bad line named), 3
    /// unreadable.
    Verify {
        /// The trail's directory (default: <state_dir>/audit).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[command(flatten)]
        format: Format,
    },
}

fn parse_window(text: &str) -> Result<u64, String> {
    reliability_core::duration::parse_duration(text).map_err(|e| e.to_string())
}

fn parse_time(text: &str) -> Result<u64, String> {
    reliability_core::maintenance::parse_instant(text)
}

/// Runs `cmd`; the exit code. `cli` is the whole command line's definition (for the
/// completions and the man page).
pub fn run(
    cmd: Cmd,
    config: &Path,
    state_dir: Option<&Path>,
    env: &Env,
    cli: clap::Command,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    match cmd {
        Cmd::Completions { shell } => {
            docs::completions(cli, shell, out);
            return 0;
        }
        Cmd::Man => {
            return match docs::man(cli, out) {
                Ok(()) => 0,
                Err(e) => {
                    let _ = writeln!(err, "reliability-monitor: cannot write the man page: {e}");
                    1
                }
            }
        }
        _ => {}
    }
    let ctx = match Ctx::load(config, state_dir, env) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return crate::cli::EX_CONFIG;
        }
    };
    let show = |rendered: Rendered, format: Format, out: &mut dyn Write| {
        let _ = out.write_all(rendered.text(format).as_bytes());
        rendered.status.exit_code()
    };
    let done = |result: Result<String, String>, out: &mut dyn Write, err: &mut dyn Write| match result {
        Ok(msg) => {
            let _ = writeln!(out, "{msg}");
            0
        }
        Err(msg) => {
            let _ = writeln!(err, "reliability-monitor: {msg}");
            1
        }
    };
    match cmd {
        Cmd::Status { format } => show(status::status(&ctx), format, out),
        Cmd::Report(args) if args.compliance => {
            let to = args.to.unwrap_or(ctx.now_ms);
            let from = args.from.unwrap_or_else(|| to.saturating_sub(args.window));
            if from >= to {
                let _ = writeln!(err, "reliability-monitor: --from must be before --to");
                return crate::cli::EX_USAGE;
            }
            let c = report::compliance(&ctx, from, to);
            let text = match (args.format, args.output.json) {
                (_, true) | (report::ComplianceFormat::Json, _) => c.json(),
                (report::ComplianceFormat::Markdown, _) => c.markdown(),
                (report::ComplianceFormat::Table, _) => c.table(),
            };
            let _ = out.write_all(text.as_bytes());
            c.status().exit_code()
        }
        Cmd::Report(args) => show(
            report::report(&ctx, args.service.as_deref(), args.window),
            args.output,
            out,
        ),
        Cmd::Breaker(BreakerCmd::List { format }) => show(breaker::list(&ctx), format, out),
        Cmd::Breaker(BreakerCmd::Reset { name, reason, format }) => {
            match breaker::reset(&ctx, &name, reason.as_deref()) {
                Ok(r) => show(r, format, out),
                Err(msg) => done(Err(msg), out, err),
            }
        }
        Cmd::Incidents {
            service,
            window,
            format,
        } => show(incidents::incidents(&ctx, service.as_deref(), window), format, out),
        Cmd::Maintenance(MaintenanceCmd::Start {
            duration,
            reason,
            name,
            services,
        }) => done(maintenance::start(&ctx, &name, duration, &reason, services), out, err),
        Cmd::Maintenance(MaintenanceCmd::Stop { name }) => done(maintenance::stop(&ctx, name.as_deref()), out, err),
        Cmd::Maintenance(MaintenanceCmd::List { format }) => show(maintenance::list(&ctx), format, out),
        Cmd::Audit(AuditCmd::Verify { dir, format }) => {
            let dir = dir.unwrap_or_else(|| ctx.audit_dir());
            show(audit::verify(&dir), format, out)
        }
        Cmd::Completions { .. } | Cmd::Man => 0,
    }
}

/// `--json` or `--nagios` (a table when neither).
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct Format {
    /// One JSON object instead of a table.
    #[arg(long, conflicts_with = "nagios")]
    pub json: bool,
    /// A Nagios plugin status line with perfdata.
    #[arg(long)]
    pub nagios: bool,
}

/// What a command gives back: its report as JSON, a table, a Nagios line, and a status
/// (the exit code in every output mode, as `check`'s).
pub struct Rendered {
    pub json: Value,
    pub table: String,
    pub nagios: String,
    pub status: Status,
}

impl Rendered {
    /// The text `format` asks for.
    pub fn text(&self, format: Format) -> String {
        if format.nagios {
            self.nagios.clone()
        } else if format.json {
            format!("{}\n", serde_json::to_string_pretty(&self.json).unwrap_or_default())
        } else {
            self.table.clone()
        }
    }
}

/// Where a command reads and writes: the state directory, the configuration (when there
/// is one), and the time it runs at.
pub struct Ctx {
    pub state_dir: PathBuf,
    pub config: Option<Config>,
    pub now_ms: u64,
}

impl Ctx {
    /// The configuration at `path` (none when the file does not exist) and the state
    /// directory (`state_dir` over the configuration's over the default).
    pub fn load(path: &Path, state_dir: Option<&Path>, env: &Env) -> Result<Ctx, ConfigError> {
        let config = match config::load(path, env) {
            Ok(c) => Some(c),
            Err(_) if std::fs::symlink_metadata(path).is_err() => None,
            Err(e) => return Err(e),
        };
        let state_dir = state_dir
            .map(Path::to_path_buf)
            .or_else(|| config.as_ref().map(|c| c.service_monitoring.state_dir.clone()))
            .unwrap_or_else(|| PathBuf::from(state::DEFAULT_DIR));
        Ok(Ctx {
            state_dir,
            config,
            now_ms: now_ms(),
        })
    }

    pub fn store(&self) -> Store {
        Store::new(&self.state_dir)
    }

    /// The host's audit trail: `<state_dir>/audit`, where the modules append too.
    pub fn audit_dir(&self) -> PathBuf {
        self.state_dir.join(reliability_os::audit::SUBDIR)
    }

    /// `reliability_metrics.sla_target` (the seed's default, 99.9 %).
    pub fn sla_target(&self) -> f64 {
        self.config
            .as_ref()
            .and_then(|c| c.sections.get("reliability_metrics"))
            .and_then(|s| s.get("sla_target"))
            .and_then(Value::as_f64)
            .unwrap_or(99.9)
    }

    /// The services the configuration recovers, with their incident logs.
    fn configured(&self) -> Vec<(String, PathBuf)> {
        self.config
            .iter()
            .flat_map(|c| &c.recoveries)
            .map(|r| (r.request.service.clone(), r.request.incident_log.clone()))
            .collect()
    }

    /// The incident events since `since` of every service the configuration recovers and
    /// every service found in the logs (the state directory's, and each recovery's own),
    /// by service; and what could not be read.
    pub fn events_since(&self, since: u64) -> (BTreeMap<String, Vec<Event>>, Vec<String>) {
        let configured = self.configured();
        let mut logs: BTreeSet<PathBuf> = configured.iter().map(|(_, log)| log.clone()).collect();
        logs.insert(self.state_dir.join(reliability_recovery::request::INCIDENT_LOG));
        let mut by_service: BTreeMap<String, Vec<Event>> = configured
            .into_iter()
            .map(|(service, _)| (service, Vec::new()))
            .collect();
        let mut problems = Vec::new();
        for log in logs {
            match reliability_recovery::incidents::read_since(&log, since) {
                Ok((events, bad)) => {
                    if bad > 0 {
                        problems.push(format!(
                            "{bad} line(s) of '{}' are not incident events and were skipped",
                            log.display()
                        ));
                    }
                    for event in events {
                        by_service.entry(event.service().to_string()).or_default().push(event);
                    }
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        (by_service, problems)
    }
}

pub use crate::output::{columns, one_line};

/// A Nagios plugin line: `LABEL STATUS - text | perfdata`.
pub fn nagios_line(label: &str, status: Status, text: &str, perfdata: &[String]) -> String {
    let head = format!(
        "{label} {} - {}",
        status.name().to_ascii_uppercase(),
        one_line(text).replace('|', "/")
    );
    if perfdata.is_empty() {
        format!("{head}\n")
    } else {
        format!("{head} | {}\n", one_line(&perfdata.join(" ")))
    }
}

/// A Nagios perfdata label: quoted, quotes inside doubled.
pub fn label(name: &str) -> String {
    format!("'{}'", name.replace('\'', "''"))
}

/// A duration in seconds for people (`-` for none).
pub fn secs(s: Option<f64>) -> String {
    match s {
        None => "-".into(),
        Some(s) => reliability_core::duration::format_duration((s * 1000.0).round().max(0.0) as u64),
    }
}

/// A percentage for people (`-` for none).
pub fn percent(p: Option<f64>) -> String {
    p.map_or_else(|| "-".into(), |p| format!("{p:.1} %"))
}

/// A report that could not be made: UNKNOWN, in every form.
pub fn unknown(label_text: &str, msg: &str) -> Rendered {
    Rendered {
        json: serde_json::json!({"status": "unknown", "msg": msg}),
        table: format!("{msg}\n"),
        nagios: nagios_line(label_text, Status::Unknown, msg, &[]),
        status: Status::Unknown,
    }
}
