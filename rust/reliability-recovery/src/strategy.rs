//! The strategies: what each step of the ladder does to the host, and how it is verified.
//!
//! Every command is an argv list (`reliability_os::command`, `systemctl` after `--`), run
//! with the request's timeout. After acting, a step waits until the service (for failover:
//! the backup) is healthy again by the request's health spec, polling until the timeout (or until the caller stops the run: [`RunContext`]);
//! that is what makes a restart that "succeeded" but left a dead port a failed step.

use crate::{look, scale, Look, RecoveryRequest, StepOutcome};
use reliability_checks::HealthRequest;
use reliability_core::cancel::RunContext;
use reliability_core::recovery::Strategy;
use reliability_os::command::{self, CommandOutput};
use reliability_os::systemd;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How often a step looks at the service while it waits.
const POLL: Duration = Duration::from_millis(200);
/// The most of a command's output kept in a result.
const OUTPUT_LIMIT: usize = 4096;

fn clip(text: &str) -> String {
    let text = text.trim();
    if text.len() <= OUTPUT_LIMIT {
        return text.to_string();
    }
    let mut end = OUTPUT_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

fn command_json(out: &CommandOutput) -> Value {
    json!({
        "argv": out.argv,
        "rc": out.exit_code,
        "stdout": clip(&out.stdout),
        "stderr": clip(&out.stderr),
        "duration_ms": out.duration_ms,
    })
}

/// What a command said, in one line.
fn said(out: &CommandOutput) -> String {
    let text = if out.stderr.trim().is_empty() {
        out.stdout.trim()
    } else {
        out.stderr.trim()
    };
    let line = clip(text).replace('\n', " | ");
    match out.exit_code {
        Some(code) => format!("exit {code}: {line}"),
        None => format!("killed by a signal: {line}"),
    }
}

/// A step's record of what it ran.
struct Log {
    commands: Vec<Value>,
}

impl Log {
    /// `systemctl <action> -- <unit>`; an error to run it becomes the step's failure.
    fn systemctl(&mut self, action: &str, unit: &str, timeout: Duration) -> Result<CommandOutput, String> {
        match systemd::systemctl_with_timeout(action, unit, timeout) {
            Ok(out) => {
                self.commands.push(command_json(&out));
                Ok(out)
            }
            Err(e) => {
                self.commands
                    .push(json!({"argv": ["systemctl", action, "--", unit], "error": e.to_string()}));
                Err(format!("systemctl {action} {unit}: {e}"))
            }
        }
    }

    fn argv(&mut self, argv: &[String], timeout: Duration) -> Result<CommandOutput, String> {
        match command::run_argv(argv, timeout) {
            Ok(out) => {
                self.commands.push(command_json(&out));
                Ok(out)
            }
            Err(e) => {
                self.commands.push(json!({"argv": argv, "error": e.to_string()}));
                Err(e.to_string())
            }
        }
    }
}

/// Until when a step may wait: its timeout, cut short by the caller's deadline or cancel.
#[derive(Clone, Copy)]
struct Until<'a> {
    deadline: Instant,
    ctx: &'a RunContext,
}

impl Until<'_> {
    /// Why waiting must end now, if it must.
    fn over(&self) -> Option<String> {
        let now = Instant::now();
        match self.ctx.stopped(now) {
            Some(stop) => Some(format!("the run was stopped ({stop})")),
            None if now >= self.deadline => Some("the timeout ran out".into()),
            None => None,
        }
    }

    fn pause(&self) -> Duration {
        let now = Instant::now();
        self.ctx
            .wait_for(POLL, now)
            .min(self.deadline.saturating_duration_since(now))
    }
}

/// Waits until `health` passes, or the wait is over (the reason); the last look either way.
fn wait_healthy(health: &HealthRequest, until: Until) -> (bool, Look, String) {
    loop {
        let seen = look(health);
        if seen.healthy {
            return (true, seen, String::new());
        }
        if let Some(why) = until.over() {
            return (false, seen, why);
        }
        std::thread::sleep(until.pause());
    }
}

/// Takes `strategy` for the request's service. `Manual` never reaches here.
pub fn take(strategy: Strategy, request: &RecoveryRequest, ctx: &RunContext) -> StepOutcome {
    let started = Instant::now();
    let deadline = Until {
        deadline: started + request.timeout,
        ctx,
    };
    let mut log = Log { commands: Vec::new() };
    let unit = request.service.as_str();
    let mut properties = serde_json::Map::new();
    let acted: Result<(bool, String), String> = match strategy {
        Strategy::Restart => restart(&mut log, request, deadline),
        Strategy::Reload => reload(&mut log, request, deadline),
        Strategy::Failover => failover(&mut log, request, deadline),
        Strategy::ScaleResources => scale_resources(&mut log, request, deadline, &mut properties),
        Strategy::Manual => Err("manual intervention required".into()),
    };
    let (recovered, detail) = match acted {
        Ok((healthy, detail)) => (healthy, detail),
        Err(detail) => (false, detail),
    };
    StepOutcome {
        recovered,
        attempted: !log.commands.is_empty(),
        detail: if recovered {
            format!("{strategy} of {unit}: {detail}")
        } else {
            detail
        },
        commands: log.commands,
        properties,
        took_ms: recovered.then(|| started.elapsed().as_millis().try_into().unwrap_or(u64::MAX)),
    }
}

/// After acting: healthy within the deadline, or why not.
fn verify(health: &HealthRequest, deadline: Until, what: &str) -> Result<(bool, String), String> {
    let (healthy, seen, why) = wait_healthy(health, deadline);
    if healthy {
        Ok((true, format!("{what}; healthy again")))
    } else {
        Err(format!(
            "{what}, but still not healthy when {why}: {}",
            seen.problems.join("; ")
        ))
    }
}

fn restart(log: &mut Log, request: &RecoveryRequest, deadline: Until) -> Result<(bool, String), String> {
    let unit = request.service.as_str();
    // A unit that hit its start limit refuses a restart until its failed state is reset.
    log.systemctl("reset-failed", unit, request.timeout)?;
    let out = log.systemctl("restart", unit, request.timeout)?;
    if !out.success() {
        return Err(format!("systemctl restart {unit} failed ({})", said(&out)));
    }
    verify(&request.health, deadline, &format!("restarted {unit}"))
}

fn reload(log: &mut Log, request: &RecoveryRequest, deadline: Until) -> Result<(bool, String), String> {
    let unit = request.service.as_str();
    if let Some(test) = &request.config_test {
        let out = log
            .argv(test, request.timeout)
            .map_err(|e| format!("config test: {e}"))?;
        if !out.success() {
            return Err(format!(
                "config test '{}' failed ({}); not reloading",
                test.join(" "),
                said(&out)
            ));
        }
    }
    let action = request.reload_command.as_str();
    if action == "reload-or-restart" {
        log.systemctl("reset-failed", unit, request.timeout)?;
    }
    let out = log.systemctl(action, unit, request.timeout)?;
    if !out.success() {
        return Err(format!("systemctl {action} {unit} failed ({})", said(&out)));
    }
    verify(&request.health, deadline, &format!("{action} of {unit} done"))
}

fn failover(log: &mut Log, request: &RecoveryRequest, deadline: Until) -> Result<(bool, String), String> {
    let Some(f) = &request.failover else {
        return Err("failover is not configured (give failover.units or failover.command); nothing was tried".into());
    };
    let unit = request.service.as_str();
    for backup in &f.units {
        log.systemctl("reset-failed", backup, request.timeout)?;
        let out = log.systemctl("start", backup, request.timeout)?;
        if !out.success() {
            return Err(format!("starting backup {backup} failed ({})", said(&out)));
        }
    }
    if let Some(argv) = &f.command {
        let out = log
            .argv(argv, request.timeout)
            .map_err(|e| format!("failover command: {e}"))?;
        if !out.success() {
            return Err(format!("failover command '{}' failed ({})", argv.join(" "), said(&out)));
        }
    }
    if f.stop_primary {
        let out = log.systemctl("stop", unit, request.timeout)?;
        if !out.success() {
            return Err(format!("stopping the primary {unit} failed ({})", said(&out)));
        }
    }
    let what = match (f.units.is_empty(), &f.command) {
        (false, _) => format!("failed over to {}", f.units.join(", ")),
        (true, Some(argv)) => format!("ran failover command '{}'", argv.join(" ")),
        (true, None) => "failed over".to_string(),
    };
    match &f.health {
        Some(health) => verify(health, deadline, &what),
        // A command alone, without a health spec: its exit status is the verdict.
        None => Ok((true, what)),
    }
}

fn scale_resources(
    log: &mut Log,
    request: &RecoveryRequest,
    deadline: Until,
    changed: &mut serde_json::Map<String, Value>,
) -> Result<(bool, String), String> {
    let Some(s) = &request.scale else {
        return Err("scale_resources is not configured (give scale_resources.ceiling); nothing was tried".into());
    };
    let unit = request.service.as_str();
    let shown: Vec<&str> = s.properties.iter().map(|p| scale::shown_as(p)).collect();
    let current = systemd::show_properties(unit, &shown).map_err(|e| e.to_string())?;
    let mut settings = Vec::new();
    let mut refusals = Vec::new();
    for p in &s.properties {
        let ceiling = s.ceiling.iter().find(|(k, _)| k == p).map_or("", |(_, v)| v.as_str());
        let value = current.get(scale::shown_as(p)).map_or("", String::as_str);
        match scale::scale_value(p, value, s.factor, ceiling) {
            Ok((before, setting, after)) => {
                changed.insert(p.clone(), json!([before, after]));
                settings.push((p.clone(), setting));
            }
            Err(e) => refusals.push(e.to_string()),
        }
    }
    if settings.is_empty() {
        return Err(format!("nothing to scale: {}", refusals.join("; ")));
    }
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = match systemd::set_property_runtime(unit, &pairs) {
        Ok(out) => {
            log.commands.push(command_json(&out));
            out
        }
        Err(e) => return Err(format!("systemctl set-property {unit}: {e}")),
    };
    if !out.success() {
        return Err(format!("systemctl set-property {unit} failed ({})", said(&out)));
    }
    let raised: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut what = format!("raised {}", raised.join(" "));
    if !refusals.is_empty() {
        what = format!("{what} ({})", refusals.join("; "));
    }
    if s.restart {
        log.systemctl("reset-failed", unit, request.timeout)?;
        let out = log.systemctl("restart", unit, request.timeout)?;
        if !out.success() {
            return Err(format!("{what}, then systemctl restart {unit} failed ({})", said(&out)));
        }
        what = format!("{what} and restarted {unit}");
    }
    verify(&request.health, deadline, &what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reliability_core::cancel::Cancel;
    use reliability_core::spec::Env;

    /// A health spec that keeps failing: a port nobody listens on.
    fn failing() -> HealthRequest {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let input = json!({"ports": [{"port": port, "timeout": 0.2}]});
        let Value::Object(map) = input else { unreachable!() };
        HealthRequest::parse(&map, &Env::default()).expect("health request")
    }

    #[test]
    fn a_cancelled_run_stops_waiting_at_once() {
        let cancel = Cancel::new();
        let ctx = RunContext::at(0, Instant::now()).with_cancel(cancel.clone());
        cancel.cancel();
        let started = Instant::now();
        let until = Until {
            deadline: started + Duration::from_secs(60),
            ctx: &ctx,
        };
        let (healthy, _, why) = wait_healthy(&failing(), until);
        assert!(!healthy);
        assert_eq!(why, "the run was stopped (cancelled)");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn the_callers_deadline_cuts_the_step_timeout() {
        let ctx = RunContext::at(0, Instant::now()).with_deadline(Instant::now() + Duration::from_millis(500));
        let started = Instant::now();
        let until = Until {
            deadline: started + Duration::from_secs(60),
            ctx: &ctx,
        };
        let (healthy, seen, why) = wait_healthy(&failing(), until);
        assert!(!healthy && !seen.problems.is_empty());
        assert_eq!(why, "the run was stopped (deadline passed)");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }
}
