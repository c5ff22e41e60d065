//! `ports`: does something accept TCP connections on host:port, and how fast?
//!
//! Every port of every check is probed at once by one call to
//! [`reliability_os::net::probe_tcp`] (non-blocking connects multiplexed with poll), so a
//! hundred ports take as long as the slowest, not the sum. A check with several `hosts`
//! gives one result per host.
//!
//! Judging ([`judge`]): expected open and open is ok, with the connect latency (in ms)
//! against the latency levels; expected open and refused or timed out is critical;
//! expected closed is the reverse. A name that does not resolve is unknown: nothing was
//! learnt about the port.

use reliability_core::check::{CheckResult, Perfdata, Status, Unit};
use reliability_core::spec::{Kind, Opt, Spec};
use reliability_core::threshold::Levels;
use reliability_os::net::{probe_tcp, TcpProbe, TcpTarget};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

use crate::levels::{at, levels, Problems};

/// The `ports` option: a list of checks.
pub fn option() -> Opt {
    Opt::list("ports", Kind::Dict).options(
        Spec::new(vec![
            Opt::str("name"),
            Opt::str("host").default("127.0.0.1"),
            Opt::list("hosts", Kind::Str),
            Opt::int("port").required().range(1.0, 65535.0),
            Opt::str("state").choices(&["open", "closed"]).default("open"),
            Opt::float("timeout").default(5.0).range(0.001, 300.0),
            Opt::raw("latency_warning"),
            Opt::raw("latency_critical"),
        ])
        .mutually_exclusive(&["host", "hosts"]),
    )
}

/// One `ports` entry as the spec validated it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortParams {
    pub name: Option<String>,
    pub host: Option<String>,
    pub hosts: Option<Vec<String>>,
    pub port: u16,
    pub state: String,
    pub timeout: f64,
    pub latency_warning: Option<Value>,
    pub latency_critical: Option<Value>,
}

/// One port check, ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct PortCheck {
    /// The `name` given, if any.
    pub label: Option<String>,
    pub hosts: Vec<String>,
    pub port: u16,
    pub expect_open: bool,
    pub timeout: Duration,
    /// Connect latency levels, in milliseconds.
    pub latency: Levels,
}

impl PortCheck {
    /// Validates what the spec cannot: non-empty hosts, the latency levels.
    pub fn compile(p: PortParams, path: &str, problems: &mut Problems) -> PortCheck {
        let from_list = p.hosts.is_some();
        let hosts = match p.hosts {
            Some(hosts) => {
                if hosts.is_empty() {
                    problems.push(&at(path, "hosts"), "an empty list; give at least one host");
                }
                hosts
            }
            None => vec![p.host.unwrap_or_else(|| "127.0.0.1".into())],
        };
        for (i, host) in hosts.iter().enumerate() {
            let field = if from_list {
                format!("hosts[{i}]")
            } else {
                "host".into()
            };
            if host.trim().is_empty() {
                problems.push(&at(path, &field), "an empty host name");
            } else if host.contains(char::is_whitespace) || host.contains('/') {
                problems.push(
                    &at(path, &field),
                    format!("'{host}' is not a host name or an IP address"),
                );
            }
        }
        PortCheck {
            label: p.name,
            hosts,
            port: p.port,
            expect_open: p.state == "open",
            timeout: Duration::from_secs_f64(p.timeout),
            latency: levels(
                path,
                "latency",
                p.latency_warning.as_ref(),
                p.latency_critical.as_ref(),
                problems,
            ),
        }
    }

    /// The result name for one of its hosts: the label, else `host:port`.
    fn name(&self, host: &str) -> String {
        let endpoint = endpoint(host, self.port);
        match (&self.label, self.hosts.len()) {
            (Some(label), 1) => label.clone(),
            (Some(label), _) => format!("{label} {endpoint}"),
            (None, _) => endpoint,
        }
    }
}

/// `host:port`, with brackets around a bare IPv6 address: `[::1]:22`.
fn endpoint(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Probes every host of every check at once; one result per (check, host), in order.
pub fn run(checks: &[PortCheck]) -> Vec<CheckResult> {
    let targets: Vec<(usize, TcpTarget)> = checks
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            c.hosts.iter().map(move |h| {
                (
                    i,
                    TcpTarget {
                        host: h.clone(),
                        port: c.port,
                        timeout: c.timeout,
                    },
                )
            })
        })
        .collect();
    let plain: Vec<TcpTarget> = targets.iter().map(|(_, t)| t.clone()).collect();
    let probes = probe_tcp(&plain);
    targets
        .iter()
        .zip(&probes)
        .map(|((i, target), probe)| {
            let check = &checks[*i];
            // An open port's duration is its handshake; anything else, the time until its
            // outcome was known (a refusal is quick even beside targets that time out).
            let duration = probe.latency.unwrap_or(probe.elapsed);
            judge(check, &check.name(&target.host), probe, duration)
        })
        .collect()
}

/// The result of one probe against what `check` expects.
pub fn judge(check: &PortCheck, name: &str, probe: &TcpProbe, duration: Duration) -> CheckResult {
    let endpoint = endpoint(&probe.host, probe.port);
    let expected = if check.expect_open { "open" } else { "closed" };
    let error = probe.error.as_deref().unwrap_or("not open");
    let unresolved = probe.address.is_none() && error.starts_with("cannot resolve");
    let mut result = match (probe.open, check.expect_open) {
        (_, _) if unresolved => CheckResult::unknown(name, "port", format!("port {endpoint}: {error}"), duration),
        (true, true) => {
            let ms = probe.latency.map_or(f64::NAN, |l| l.as_secs_f64() * 1000.0);
            let ms = (ms * 1000.0).round() / 1000.0;
            let mut r =
                CheckResult::measured_bare(name, "port", ms, Some(Unit::Milliseconds), &check.latency, duration);
            r.perfdata = Perfdata::new(r.name.clone(), ms, Some(Unit::Milliseconds))
                .with_levels(&check.latency)
                .to_string();
            r.message = match check.latency.explain(ms) {
                Some(why) => format!("port {endpoint} open in {ms} ms ({why})"),
                None => format!("port {endpoint} open in {ms} ms"),
            };
            r
        }
        (true, false) => CheckResult::state(
            name,
            "port",
            Status::Critical,
            format!("port {endpoint} open, expected closed"),
            duration,
        ),
        (false, true) => CheckResult::state(
            name,
            "port",
            Status::Critical,
            format!("port {endpoint} closed: {error}"),
            duration,
        ),
        (false, false) => CheckResult::state(
            name,
            "port",
            Status::Ok,
            format!("port {endpoint} closed ({error})"),
            duration,
        ),
    };
    result.details.insert("host".into(), probe.host.clone().into());
    result.details.insert("port".into(), probe.port.into());
    result
        .details
        .insert("address".into(), probe.address.map(|a| a.to_string()).into());
    result.details.insert("open".into(), probe.open.into());
    result.details.insert("expected".into(), expected.into());
    result.details.insert("error".into(), probe.error.clone().into());
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(state: &str, warning: Value, critical: Value) -> PortCheck {
        let mut problems = Problems::default();
        let params = PortParams {
            name: None,
            host: Some("db".into()),
            hosts: None,
            port: 5432,
            state: state.into(),
            timeout: 1.0,
            latency_warning: Some(warning),
            latency_critical: Some(critical),
        };
        let c = PortCheck::compile(params, "ports[0]", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        c
    }

    fn probe(open: bool, latency_ms: Option<u64>, error: Option<&str>, resolved: bool) -> TcpProbe {
        TcpProbe {
            host: "db".into(),
            port: 5432,
            address: resolved.then(|| "192.0.2.7:5432".parse().expect("address")),
            open,
            latency: latency_ms.map(Duration::from_millis),
            error: error.map(String::from),
            elapsed: Duration::from_millis(latency_ms.unwrap_or(1)),
        }
    }

    /// `expected` is `status: message`.
    fn judged(check: &PortCheck, probe: &TcpProbe, expected: &str) {
        let r = judge(check, "db", probe, Duration::from_millis(1));
        assert_eq!(format!("{}: {}", r.status, r.message), expected);
    }

    #[test]
    fn open_ports_are_judged_by_latency() {
        let c = check("open", json!(100), json!(500));
        judged(&c, &probe(true, Some(3), None, true), "ok: port db:5432 open in 3 ms");
        judged(
            &c,
            &probe(true, Some(250), None, true),
            "warning: port db:5432 open in 250 ms (warning: above 100)",
        );
        judged(
            &c,
            &probe(true, Some(900), None, true),
            "critical: port db:5432 open in 900 ms (critical: above 500)",
        );
        let r = judge(&c, "db", &probe(true, Some(3), None, true), Duration::from_millis(3));
        assert_eq!((r.value, r.unit.as_deref()), (Some(3.0), Some("ms")));
        assert_eq!(r.perfdata, "db=3ms;100;500");
        assert_eq!(r.details["address"], json!("192.0.2.7:5432"));
    }

    #[test]
    fn closed_and_unresolved() {
        let open = check("open", json!(null), json!(null));
        let closed = check("closed", json!(null), json!(null));
        let refused = probe(false, None, Some("connection refused"), true);
        let silent = probe(false, None, Some("timed out after 1s"), true);
        let unresolved = probe(false, None, Some("cannot resolve 'db': no address found"), false);
        judged(&open, &refused, "critical: port db:5432 closed: connection refused");
        judged(&open, &silent, "critical: port db:5432 closed: timed out after 1s");
        judged(
            &open,
            &unresolved,
            "unknown: port db:5432: cannot resolve 'db': no address found",
        );
        judged(&closed, &refused, "ok: port db:5432 closed (connection refused)");
        judged(&closed, &silent, "ok: port db:5432 closed (timed out after 1s)");
        judged(
            &closed,
            &probe(true, Some(1), None, true),
            "critical: port db:5432 open, expected closed",
        );
        judged(
            &closed,
            &unresolved,
            "unknown: port db:5432: cannot resolve 'db': no address found",
        );
    }

    #[test]
    fn names_and_endpoints() {
        let mut c = check("open", json!(null), json!(null));
        assert_eq!(c.name("db"), "db:5432");
        c.label = Some("postgres".into());
        assert_eq!(c.name("db"), "postgres");
        c.hosts = vec!["a".into(), "::1".into()];
        assert_eq!(c.name("::1"), "postgres [::1]:5432");
        assert_eq!(endpoint("[::1]", 22), "[::1]:22");
    }
}
