//! The health-check engine of hx.reliability: one check schema, one [`run`], three front
//! ends (the `health_check` module, the monitor daemon, the CLI).
//!
//! A request names checks of five kinds, one module each, and any mix of them:
//!
//! | kind          | asks                                                        |
//! |---------------|-------------------------------------------------------------|
//! | [`services`]  | systemd units: state, enabled, restarts, dependencies, usage |
//! | [`ports`]     | TCP connect to host:port, latency                           |
//! | [`http`]      | GET/HEAD: status, body, latency, certificate expiry         |
//! | [`processes`] | processes by name, command line, pidfile, user: counts, usage |
//! | [`resources`] | CPU, memory, swap, load, disks, network of the host         |
//!
//! The flow is the same for every front end:
//!
//! 1. [`spec`] declares the options once. The module protocol validates task arguments
//!    with it; the daemon will validate its YAML config with it; the sidecar docs are
//!    tested against it. It checks types, defaults, choices and ranges, with errors such
//!    as `ports[2].port: 70000 is out of range 1-65535`.
//! 2. [`HealthRequest::from_params`] reads the validated options into typed structs
//!    (serde) and checks what a per-option spec cannot: unit names, URLs, regexes,
//!    threshold ranges, `min_count <= max_count`. Every problem is reported, each naming
//!    its check and field: `http[1].url: 'htp://x' is not an http or https URL`.
//! 3. [`run`] runs the five kinds at once, each on a thread of its own (a request of one
//!    kind, as each of the daemon's entries is, on the caller's), and ports and URLs
//!    concurrently within their kind, so the wall time is that of the slowest check, not
//!    the sum. [`run_shared`] lets the runs of a long-lived caller share readings of the
//!    process table. Measuring is `reliability-os`'s; judging a value against its
//!    levels is `reliability-core`'s; the kind modules here hold the glue and the
//!    kind-specific verdicts (pure functions named `judge`, unit-tested on plain data).
//! 4. The [`HealthReport`] holds every check's [`CheckResult`], the counts per status,
//!    the overall status and whether the run fails under `fail_on`.
//!
//! Architecture invariant: this crate prints nothing and knows nothing of Ansible; the
//! module front end is `reliability-modules/src/health_check.rs`.

pub mod http;
mod levels;
pub mod ports;
pub mod processes;
pub mod resources;
pub mod services;
#[cfg(test)]
mod test_support;

pub use levels::Problems;

use reliability_core::check::{join_perfdata, CheckResult, Counts, FailOn, Overall, Status, Summary};
use reliability_core::spec::{Env, Opt, Spec};
use reliability_os::state;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The check schema: every option of a health-check request, declared once.
pub fn spec() -> Spec {
    Spec::new(vec![
        services::option(),
        ports::option(),
        http::option(),
        processes::option(),
        resources::option(),
        Opt::str("fail_on")
            .choices(&["critical", "warning", "never"])
            .default("critical"),
        Opt::float("sample_interval").default(0.5).range(0.05, 60.0),
        Opt::path("state_dir").default(state::DEFAULT_DIR),
    ])
}

/// A request as [`spec`] validated it, before the checks are compiled.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthParams {
    pub services: Option<Vec<services::ServiceParams>>,
    pub ports: Option<Vec<ports::PortParams>>,
    pub http: Option<Vec<http::HttpParams>>,
    pub processes: Option<Vec<processes::ProcessParams>>,
    pub resources: Option<resources::ResourceParams>,
    pub fail_on: FailOn,
    pub sample_interval: f64,
    pub state_dir: PathBuf,
}

/// A valid request, ready to [`run`].
#[derive(Clone, Debug)]
pub struct HealthRequest {
    pub services: Vec<services::ServiceCheck>,
    pub ports: Vec<ports::PortCheck>,
    pub http: Vec<http::HttpCheck>,
    pub processes: Vec<processes::ProcessCheck>,
    pub resources: Option<resources::ResourceCheck>,
    pub fail_on: FailOn,
    /// How long rates (network, unit and process CPU) are sampled over.
    pub sample_interval: Duration,
    /// Where the host's CPU reading is kept between runs (`<state_dir>/cpu_sample/`);
    /// `None`: never read nor kept.
    pub state_dir: Option<PathBuf>,
    /// Whether this run keeps its CPU reading there (false in check mode).
    pub keep_state: bool,
}

/// Why a request cannot run: the engines' one request-error type.
pub use reliability_core::request::RequestError;

impl HealthRequest {
    /// Validates `input` against [`spec`], then reads it: what the daemon and the CLI
    /// call with a config or command line turned into JSON.
    pub fn parse(input: &Map<String, Value>, env: &Env) -> Result<HealthRequest, RequestError> {
        let params = spec().validate(input, env).map_err(RequestError::from)?;
        HealthRequest::from_params(&params)
    }

    /// Reads options that [`spec`] already validated (as the module protocol hands them
    /// over) and checks what the spec cannot.
    ///
    /// With no checks at all, the host's resources are checked with their default levels:
    /// `health_check` without arguments answers "is this host healthy?".
    pub fn from_params(params: &Map<String, Value>) -> Result<HealthRequest, RequestError> {
        let p: HealthParams = serde_json::from_value(Value::Object(params.clone())).map_err(|e| RequestError {
            problems: vec![format!(
                "internal error: validated options do not read as a request: {e}"
            )],
        })?;
        let mut problems = Problems::default();
        let services = compile(p.services, "services", &mut problems, services::ServiceCheck::compile);
        let ports = compile(p.ports, "ports", &mut problems, ports::PortCheck::compile);
        let http = compile(p.http, "http", &mut problems, http::HttpCheck::compile);
        let processes = compile(
            p.processes,
            "processes",
            &mut problems,
            processes::ProcessCheck::compile,
        );
        let nothing_else = services.is_empty() && ports.is_empty() && http.is_empty() && processes.is_empty();
        let resources = match p.resources {
            Some(r) => Some(resources::ResourceCheck::compile(r, "resources", &mut problems)),
            None if nothing_else => Some(default_resources()?),
            None => None,
        };
        if !p.state_dir.is_absolute() {
            problems.push(
                "state_dir",
                format!("'{}' is not an absolute path", p.state_dir.display()),
            );
        }
        if !problems.is_empty() {
            return Err(RequestError { problems: problems.0 });
        }
        Ok(HealthRequest {
            services,
            ports,
            http,
            processes,
            resources,
            fail_on: p.fail_on,
            sample_interval: Duration::from_secs_f64(p.sample_interval),
            state_dir: Some(p.state_dir),
            keep_state: true,
        })
    }

    /// How many results a run gives, at least (ports with several hosts and resources
    /// give more).
    pub fn len(&self) -> usize {
        self.services.len()
            + self.ports.len()
            + self.http.len()
            + self.processes.len()
            + usize::from(self.resources.is_some())
    }

    /// Whether the request checks nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn compile<P, C>(
    given: Option<Vec<P>>,
    kind: &str,
    problems: &mut Problems,
    one: fn(P, &str, &mut Problems) -> C,
) -> Vec<C> {
    given
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, p)| one(p, &format!("{kind}[{i}]"), problems))
        .collect()
}

/// The `resources` checks with every default.
fn default_resources() -> Result<resources::ResourceCheck, RequestError> {
    let sub = resources::option().options.map(|s| *s).unwrap_or_default();
    let internal = |e: String| RequestError {
        problems: vec![format!("internal error: the default resources do not validate: {e}")],
    };
    let params = sub
        .validate(&Map::new(), &Env::default())
        .map_err(|e| internal(e.to_string()))?;
    let params: resources::ResourceParams =
        serde_json::from_value(Value::Object(params)).map_err(|e| internal(e.to_string()))?;
    let mut problems = Problems::default();
    let check = resources::ResourceCheck::compile(params, "resources", &mut problems);
    if problems.is_empty() {
        Ok(check)
    } else {
        Err(internal(problems.0.join("; ")))
    }
}

/// The outcome of a run: every check, the counts, the verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthReport {
    /// `healthy`, `degraded` or `unhealthy` (see [`Overall`]).
    pub status: Overall,
    /// Every check's result, in request order: services, ports, http, processes, resources.
    pub checks: Vec<CheckResult>,
    pub counts: Counts,
    /// Wall time of the whole run, in milliseconds.
    pub duration_ms: f64,
    /// The Nagios perfdata of every check, space-separated.
    pub perfdata: String,
    /// Whether the run fails under the request's `fail_on`.
    pub failed: bool,
    /// One line for people: the verdict and what is wrong.
    pub msg: String,
    /// Problems beside the checks (a kept CPU reading that could not be used), for the
    /// caller to pass on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl reliability_core::request::Report for HealthReport {
    /// Checks change nothing.
    fn changed(&self) -> bool {
        false
    }
    fn failed(&self) -> bool {
        self.failed
    }
    fn msg(&self) -> &str {
        &self.msg
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Runs every check of `request` at once and reports.
pub fn run(request: &HealthRequest) -> HealthReport {
    run_shared(request, None)
}

/// What the runs of a long-lived caller share (the daemon's): readings of the process
/// table (see [`processes::Tables`]), and the instant this run was due.
#[derive(Clone, Copy, Debug)]
pub struct Shared<'a> {
    pub tables: &'a processes::Tables,
    pub due: Instant,
}

/// [`run`], with what earlier runs of the caller left in `shared`.
pub fn run_shared(request: &HealthRequest, shared: Option<Shared<'_>>) -> HealthReport {
    let started = Instant::now();
    let interval = request.sample_interval;
    let tables = shared.map(|s| (s.tables, s.due));
    let store = resources::CpuStore {
        state_dir: request.state_dir.as_deref(),
        keep: request.keep_state,
    };
    // One closure per kind asked; each gives its results and warnings.
    type Kind<'s> = (
        &'static str,
        Box<dyn FnOnce() -> (Vec<CheckResult>, Vec<String>) + Send + 's>,
    );
    let mut kinds: Vec<Kind<'_>> = Vec::new();
    if !request.services.is_empty() {
        kinds.push((
            "services",
            Box::new(|| (services::run(&request.services, interval), Vec::new())),
        ));
    }
    if !request.ports.is_empty() {
        kinds.push(("ports", Box::new(|| (ports::run(&request.ports), Vec::new()))));
    }
    if !request.http.is_empty() {
        kinds.push(("http", Box::new(|| (http::run(&request.http), Vec::new()))));
    }
    if !request.processes.is_empty() {
        kinds.push((
            "processes",
            Box::new(move || (processes::run_shared(&request.processes, interval, tables), Vec::new())),
        ));
    }
    if let Some(r) = request.resources.as_ref() {
        kinds.push(("resources", Box::new(move || resources::run(r, interval, store))));
    }
    // One kind (each daemon entry is one check) runs on this thread; several at once,
    // each on a thread of its own. A kind that panics gives one unknown result either way.
    let done: Vec<(Vec<CheckResult>, Vec<String>)> = if kinds.len() <= 1 {
        kinds
            .into_iter()
            .map(|(kind, f)| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                    .unwrap_or_else(|_| (panicked(kind), Vec::new()))
            })
            .collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = kinds.into_iter().map(|(kind, f)| (kind, scope.spawn(f))).collect();
            handles
                .into_iter()
                .map(|(kind, h)| h.join().unwrap_or_else(|_| (panicked(kind), Vec::new())))
                .collect()
        })
    };
    let mut checks = Vec::new();
    let mut warnings = Vec::new();
    for (results, warned) in done {
        checks.extend(results);
        warnings.extend(warned);
    }
    let mut report = report(checks, request.fail_on, started.elapsed());
    report.warnings = warnings;
    report
}

/// Which requests may run as one batch ([`run_batch`]): those with the same key. Only
/// requests of ports and processes have one: ports of many requests are one poll loop,
/// processes one reading of the table (at one sample interval). Services, URLs (a
/// blocking probe each) and resources run as requests of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BatchKey {
    ports: bool,
    processes: bool,
    sample_interval: Duration,
}

impl HealthRequest {
    /// The key of the batches this request may join; `None`: it runs alone.
    pub fn batch_key(&self) -> Option<BatchKey> {
        let batchable = self.services.is_empty() && self.http.is_empty() && self.resources.is_none();
        let key = BatchKey {
            ports: !self.ports.is_empty(),
            processes: !self.processes.is_empty(),
            sample_interval: self.sample_interval,
        };
        (batchable && (key.ports || key.processes)).then_some(key)
    }
}

/// Runs several requests as one: every port of all of them in one poll loop, every
/// process check against one reading of the table, then hands each request its own
/// results, as [`run_shared`] would have given them (ports first, in order). A request
/// without a [`HealthRequest::batch_key`], or with another key than the first's, runs
/// on its own after the batch. This is how a long-lived caller with many small entries
/// (the daemon: one port each) pays for one run a cycle instead of one per entry.
pub fn run_batch(requests: &[&HealthRequest], shared: Option<Shared<'_>>) -> Vec<Vec<CheckResult>> {
    let key = requests.first().and_then(|r| r.batch_key());
    let joins = |r: &HealthRequest| key.is_some() && r.batch_key() == key;
    let together: Vec<&HealthRequest> = requests.iter().copied().filter(|r| joins(r)).collect();
    let ports: Vec<ports::PortCheck> = together.iter().flat_map(|r| r.ports.iter().cloned()).collect();
    let processes: Vec<processes::ProcessCheck> = together.iter().flat_map(|r| r.processes.iter().cloned()).collect();
    let interval = together.first().map_or(Duration::ZERO, |r| r.sample_interval);
    let tables = shared.map(|s| (s.tables, s.due));
    let guarded = |kind: &str, f: &mut dyn FnMut() -> Vec<CheckResult>| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| panicked(kind))
    };
    let port_results = guarded("ports", &mut || {
        if ports.is_empty() {
            Vec::new()
        } else {
            ports::run(&ports)
        }
    });
    let process_results = guarded("processes", &mut || {
        if processes.is_empty() {
            Vec::new()
        } else {
            processes::run_shared(&processes, interval, tables)
        }
    });
    let mut port_results = port_results.map(Vec::into_iter);
    let mut process_results = process_results.map(Vec::into_iter);
    requests
        .iter()
        .map(|request| {
            if !joins(request) {
                return run_shared(request, shared).checks;
            }
            let mut mine = Vec::new();
            let port_count: usize = request.ports.iter().map(|p| p.hosts.len()).sum();
            match &mut port_results {
                Ok(all) => mine.extend(all.by_ref().take(port_count)),
                Err(failed) if port_count > 0 => mine.extend(failed.iter().cloned()),
                Err(_) => {}
            }
            match &mut process_results {
                Ok(all) => mine.extend(all.by_ref().take(request.processes.len())),
                Err(failed) if !request.processes.is_empty() => mine.extend(failed.iter().cloned()),
                Err(_) => {}
            }
            mine
        })
        .collect()
}

fn panicked(kind: &str) -> Vec<CheckResult> {
    vec![CheckResult::unknown(
        kind,
        kind,
        format!("internal error: the {kind} checks panicked (this is a bug, please report it)"),
        Duration::ZERO,
    )]
}

/// The report of finished checks.
pub fn report(checks: Vec<CheckResult>, fail_on: FailOn, wall: Duration) -> HealthReport {
    let summary = Summary::of(&checks);
    let failed = fail_on.fails(checks.iter().map(|c| c.status));
    HealthReport {
        status: summary.status,
        counts: summary.counts,
        duration_ms: (wall.as_secs_f64() * 1e6).round() / 1000.0,
        perfdata: join_perfdata(&checks),
        failed,
        msg: summarise(summary.status, &summary.counts, &checks),
        checks,
        warnings: Vec::new(),
    }
}

/// At most this many problems are spelled out in the summary line.
const MSG_PROBLEMS: usize = 5;

/// `unhealthy: 2 critical, 1 warning of 9 checks: port db:5432 closed: ...; ...`, worst
/// first; `healthy: 9 checks ok`.
pub fn summarise(status: Overall, counts: &Counts, checks: &[CheckResult]) -> String {
    let total = checks.len();
    let noun = if total == 1 { "check" } else { "checks" };
    if counts.ok == total {
        return format!("{status}: {total} {noun} ok");
    }
    let mut tally = Vec::new();
    for (n, name) in [
        (counts.critical, "critical"),
        (counts.unknown, "unknown"),
        (counts.warning, "warning"),
    ] {
        if n > 0 {
            tally.push(format!("{n} {name}"));
        }
    }
    let mut bad: Vec<&CheckResult> = checks.iter().filter(|c| c.status != Status::Ok).collect();
    bad.sort_by_key(|c| std::cmp::Reverse(c.status));
    let mut said: Vec<&str> = bad.iter().take(MSG_PROBLEMS).map(|c| c.message.as_str()).collect();
    let more = bad.len().saturating_sub(MSG_PROBLEMS);
    let more_text = format!("and {more} more");
    if more > 0 {
        said.push(&more_text);
    }
    format!("{status}: {} of {total} {noun}: {}", tally.join(", "), said.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Parses `input`, showing the problems or a summary of the request.
    fn check(input: Value, expected: &str) {
        let map = input.as_object().cloned().expect("an object");
        let got = match HealthRequest::parse(&map, &Env::default()) {
            Ok(r) => format!(
                "services={} ports={} http={} processes={} resources={} fail_on={} interval={:?}",
                r.services.len(),
                r.ports.len(),
                r.http.len(),
                r.processes.len(),
                r.resources.is_some(),
                r.fail_on,
                r.sample_interval
            ),
            Err(e) => e.to_string(),
        };
        assert_eq!(got, expected, "{input}");
    }

    #[test]
    fn requests_and_defaults() {
        check(
            json!({}),
            "services=0 ports=0 http=0 processes=0 resources=true fail_on=critical interval=500ms",
        );
        check(
            json!({"ports": [{"port": 22}], "fail_on": "never", "sample_interval": "0.1"}),
            "services=0 ports=1 http=0 processes=0 resources=false fail_on=never interval=100ms",
        );
        check(
            json!({"ports": [{"port": "22"}], "resources": {}}),
            "services=0 ports=1 http=0 processes=0 resources=true fail_on=critical interval=500ms",
        );
        check(
            json!({"services": [{"unit": "ssh"}], "http": [{"url": "http://127.0.0.1/"}], "processes": [{"name": "sshd"}]}),
            "services=1 ports=0 http=1 processes=1 resources=false fail_on=critical interval=500ms",
        );
    }

    /// Every bad input of the issue, named by check index and field.
    #[test]
    fn bad_input_names_check_and_field() {
        check(
            json!({"ports": [{"port": 1}, {"port": 2}, {"port": 70000}]}),
            "ports[2].port: 70000 is out of range 1-65535",
        );
        check(
            json!({"ports": [{"port": 1, "timout": 3}]}),
            "ports[0]: unknown option 'timout'; did you mean 'timeout'? (valid options: host, hosts, latency_critical, \
             latency_warning, name, port, state, timeout)",
        );
        check(
            json!({"ports": [{"port": 1, "latency_warning": "20:10"}]}),
            "ports[0].latency_warning: invalid range '20:10': start 20 is greater than end 10",
        );
        check(
            json!({"ports": [{"port": 1, "host": "a", "hosts": ["b"]}]}),
            "ports[0]: options are mutually exclusive: host, hosts",
        );
        check(
            json!({"http": [{"url": "http://x/"}, {"url": "htp://x"}]}),
            "http[1].url: 'htp://x' is not an http or https URL",
        );
        check(
            json!({"processes": [{"cmdline": "("}]}),
            "processes[0].cmdline: invalid regex '(': found open group without closing ')'",
        );
        check(
            json!({"processes": [{"min_count": 2}]}),
            "processes[0]: one of these options is required: name, cmdline, pidfile, user",
        );
        check(
            json!({"services": [{"name": "nginx; reboot"}]}),
            "services[0].name: invalid unit name 'nginx; reboot': ';' is not allowed in unit names",
        );
        check(
            json!({"services": [{"name": "a", "memory_critical": "lots"}]}),
            "services[0].memory_critical: invalid size 'lots': 'lots' does not start with a number",
        );
        check(
            json!({"services": [{"name": "a", "state": "up"}]}),
            "services[0].state: 'up' is not one of 'running', 'stopped', 'any'",
        );
        check(
            json!({"resources": {"include": ["cpu", "gpu"]}}),
            "resources.include[1]: 'gpu' is not one of 'cpu', 'memory', 'swap', 'load', 'disk', 'network'",
        );
        check(
            json!({"resources": {"cpu_warning": "~:x"}}),
            "resources.cpu_warning: invalid range '~:x': end 'x' is not a number",
        );
        check(
            json!({"fail_on": "sometimes"}),
            "fail_on: 'sometimes' is not one of 'critical', 'warning', 'never'",
        );
        // Every problem at once, in order.
        check(
            json!({"ports": [{"port": 0}], "http": [{"url": "ftp://x"}], "services": [{"name": ""}]}),
            "ports[0].port: 0 is out of range 1-65535",
        );
        check(
            json!({"http": [{"url": "ftp://x"}], "services": [{"name": ""}]}),
            "services[0].name: invalid unit name '': the name is empty; http[0].url: 'ftp://x' is not an http or https URL",
        );
    }

    fn result(name: &str, status: Status) -> CheckResult {
        CheckResult::state(
            name,
            "port",
            status,
            format!("{name} is {status}"),
            Duration::from_millis(2),
        )
    }

    #[test]
    fn reports_count_and_summarise() {
        let r = report(
            vec![
                result("a", Status::Ok),
                result("b", Status::Warning),
                result("c", Status::Critical),
                result("d", Status::Unknown),
                result("e", Status::Critical),
            ],
            FailOn::Critical,
            Duration::from_millis(12),
        );
        assert_eq!(r.status, Overall::Unhealthy);
        assert_eq!(
            (r.counts.ok, r.counts.warning, r.counts.critical, r.counts.unknown),
            (1, 1, 2, 1)
        );
        assert!(r.failed);
        assert_eq!(r.duration_ms, 12.0);
        assert_eq!(r.msg, "unhealthy: 2 critical, 1 unknown, 1 warning of 5 checks: c is critical; e is critical; d is unknown; b is warning");
        let ok = report(vec![result("a", Status::Ok)], FailOn::Warning, Duration::ZERO);
        assert_eq!((ok.msg.as_str(), ok.failed), ("healthy: 1 check ok", false));
        let warn = report(vec![result("a", Status::Warning)], FailOn::Critical, Duration::ZERO);
        assert!(!warn.failed);
        assert!(report(vec![result("a", Status::Warning)], FailOn::Warning, Duration::ZERO).failed);
        let many: Vec<CheckResult> = (0..8).map(|i| result(&format!("p{i}"), Status::Critical)).collect();
        let r = report(many, FailOn::Never, Duration::ZERO);
        assert!(!r.failed);
        assert!(
            r.msg.ends_with("p3 is critical; p4 is critical; and 3 more"),
            "{}",
            r.msg
        );
    }

    fn parsed(input: Value) -> HealthRequest {
        HealthRequest::parse(input.as_object().expect("an object"), &Env::default()).expect("a valid request")
    }

    /// What a batch hands each request is what the request gets on its own: the same
    /// checks, in the same order, with the same verdicts; a request that cannot join (a
    /// URL, another sample interval) still runs, on its own.
    #[test]
    fn a_batch_gives_each_request_what_it_would_get_alone() {
        let open = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
        let open = open.local_addr().expect("its address").port();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
            l.local_addr().expect("its address").port()
        };
        let mut child = crate::test_support::spawn_running(
            std::process::Command::new("sleep").arg("1000.4711"),
            &["sleep", "1000.4711"],
        );
        let requests = [
            parsed(json!({"ports": [{"name": "a", "port": open}]})),
            parsed(json!({"ports": [{"name": "b", "hosts": ["127.0.0.1", "::1"], "port": closed}]})),
            parsed(json!({"processes": [{"cmdline": "^sleep 1000\\.4711$"}]})),
            parsed(json!({"http": [{"url": format!("http://127.0.0.1:{closed}/"), "timeout": 2}]})),
            parsed(json!({"ports": [{"name": "c", "port": open, "state": "closed"}], "sample_interval": 0.1})),
            parsed(
                json!({"processes": [{"cmdline": "^no such process 4711$"}], "ports": [{"name": "d", "port": open}]}),
            ),
        ];
        assert!(requests[3].batch_key().is_none(), "a URL runs alone");
        assert_ne!(
            requests[4].batch_key(),
            requests[0].batch_key(),
            "another sample interval"
        );
        let refs: Vec<&HealthRequest> = requests.iter().collect();
        let tables = processes::Tables::new();
        let shared = Some(Shared {
            tables: &tables,
            due: Instant::now(),
        });
        let batch = run_batch(&refs, shared);
        let shape = |results: &[CheckResult]| {
            results
                .iter()
                .map(|r| format!("{} {} {}", r.name, r.kind, r.status))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let alone: Vec<String> = requests.iter().map(|r| shape(&run(r).checks)).collect();
        let batched: Vec<String> = batch.iter().map(|results| shape(results)).collect();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(batched, alone);
        assert_eq!(batched.len(), 6);
        assert_eq!(tables.reads(), 1, "the processes of the batch read the table once");
        assert!(
            batched[1].matches("port").count() == 2,
            "one result per host: {}",
            batched[1]
        );
        assert!(batched[2].ends_with("ok"), "the sleep is found: {}", batched[2]);
    }
}
