//! `http`: what does a URL answer, how fast, and when does its certificate expire?
//!
//! Each URL is one [`reliability_os::http::probe_http`] on a thread of its own (at most
//! [`MAX_PARALLEL`] at once, the caller's among them), so the checks take as long as the slowest. The probe returns
//! what it saw; [`judge`] decides, and every part of the verdict is in the one result:
//!
//! - no response (refused, timed out, TLS verification failed): critical;
//! - a status not in `status_codes`: critical;
//! - a body without `body_contains`, or not matching `body_regex`: critical;
//! - the time to the response headers, in ms, against the latency levels;
//! - for https, the days left on the server certificate against the expiry levels,
//!   30 and 7 by default: numbers alert *below* them, as `check_http -C 30,7` does.
//!
//! The status is the worst of the parts; the value is the latency.

use reliability_core::check::{CheckResult, Perfdata, Status, Unit};
use reliability_core::quote::quote;
use reliability_core::spec::{Kind, Opt, Spec};
use reliability_core::threshold::Levels;
use reliability_os::http::{probe_http, HttpMethod, HttpProbe, HttpRequest};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::levels::{at, floor_levels, levels, Problems};

/// At most this many requests are in flight at once.
pub const MAX_PARALLEL: usize = 64;

/// How much of a body is read when a body check needs it.
const BODY_LIMIT: usize = 1024 * 1024;

/// The `http` option: a list of checks.
pub fn option() -> Opt {
    Opt::list("http", Kind::Dict).options(Spec::new(vec![
        Opt::str("name"),
        Opt::str("url").required(),
        Opt::str("method").choices(&["GET", "HEAD"]).default("GET"),
        Opt::list("status_codes", Kind::Int)
            .default(json!([200]))
            .range(100.0, 599.0),
        Opt::str("body_contains"),
        Opt::str("body_regex"),
        Opt::float("timeout").default(10.0).range(0.001, 300.0),
        Opt::raw("latency_warning"),
        Opt::raw("latency_critical"),
        Opt::bool("validate_certs").default(true),
        Opt::path("ca_file"),
        Opt::bool("follow_redirects").default(false),
        // Request headers often carry credentials (Authorization): kept out of results.
        Opt::dict("headers").no_log(),
        Opt::raw("tls_expiry_warning").default(30),
        Opt::raw("tls_expiry_critical").default(7),
    ]))
}

/// One `http` entry as the spec validated it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpParams {
    pub name: Option<String>,
    pub url: String,
    pub method: String,
    pub status_codes: Vec<u16>,
    pub body_contains: Option<String>,
    pub body_regex: Option<String>,
    pub timeout: f64,
    pub latency_warning: Option<Value>,
    pub latency_critical: Option<Value>,
    pub validate_certs: bool,
    pub ca_file: Option<PathBuf>,
    pub follow_redirects: bool,
    pub headers: Option<Map<String, Value>>,
    pub tls_expiry_warning: Option<Value>,
    pub tls_expiry_critical: Option<Value>,
}

/// One HTTP check, ready to run.
#[derive(Clone, Debug)]
pub struct HttpCheck {
    pub name: String,
    pub request: HttpRequest,
    pub status_codes: Vec<u16>,
    pub body_contains: Option<String>,
    pub body_regex: Option<regex_lite::Regex>,
    /// Levels of the time to the response headers, in milliseconds.
    pub latency: Levels,
    /// Levels of the days left on the server certificate.
    pub tls_expiry: Levels,
}

impl HttpCheck {
    /// Validates what the spec cannot: the URL, the regex, the headers, the levels.
    pub fn compile(p: HttpParams, path: &str, problems: &mut Problems) -> HttpCheck {
        if let Err(e) = check_url(&p.url) {
            problems.push(&at(path, "url"), e);
        }
        let method = if p.method == "HEAD" {
            HttpMethod::Head
        } else {
            HttpMethod::Get
        };
        for (field, given) in [
            ("body_contains", p.body_contains.is_some()),
            ("body_regex", p.body_regex.is_some()),
        ] {
            if given && method == HttpMethod::Head {
                problems.push(&at(path, field), "a HEAD response has no body to check; use method GET");
            }
        }
        let body_regex = p.body_regex.as_deref().and_then(|re| match regex_lite::Regex::new(re) {
            Ok(compiled) => Some(compiled),
            Err(e) => {
                problems.push(&at(path, "body_regex"), invalid_regex(re, &e));
                None
            }
        });
        let mut headers = Vec::new();
        for (key, value) in p.headers.unwrap_or_default() {
            let field = at(path, &format!("headers.{key}"));
            let value = match value {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    problems.push(&field, format!("{other} is not a header value; use a string"));
                    continue;
                }
            };
            if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
                problems.push(&field, format!("{} is not a valid header name", quote(&key)));
            } else if http::HeaderValue::from_str(&value).is_err() {
                // The value itself is not shown: headers may be secrets.
                problems.push(&field, "the value holds characters a header cannot carry");
            } else {
                headers.push((key, value));
            }
        }
        let needs_body = p.body_contains.is_some() || body_regex.is_some();
        let request = HttpRequest {
            url: p.url.clone(),
            method,
            timeout: Duration::from_secs_f64(p.timeout),
            headers,
            ca_file: p.ca_file,
            validate_certs: p.validate_certs,
            follow_redirects: p.follow_redirects,
            max_body_bytes: if needs_body { BODY_LIMIT } else { 0 },
        };
        HttpCheck {
            name: p.name.unwrap_or(p.url),
            request,
            status_codes: p.status_codes,
            body_contains: p.body_contains,
            body_regex,
            latency: levels(
                path,
                "latency",
                p.latency_warning.as_ref(),
                p.latency_critical.as_ref(),
                problems,
            ),
            tls_expiry: floor_levels(
                path,
                "tls_expiry",
                p.tls_expiry_warning.as_ref(),
                p.tls_expiry_critical.as_ref(),
                problems,
            ),
        }
    }
}

/// `regex-lite` explains an error over several lines; one line reads better in a result.
pub(crate) fn invalid_regex(re: &str, error: &regex_lite::Error) -> String {
    let why = error.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
    format!("invalid regex {}: {why}", quote(re))
}

/// Whether the probe can request `url`: http or https, a host, and nothing the URL parser
/// that the probe uses (the `http` crate's) would refuse.
pub fn check_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("http" | "https")) {
        return Err(format!("{} is not an http or https URL", quote(url)));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{} is not a valid URL: {e}", quote(url)))?;
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(()),
        _ => Err(format!("{} has no host", quote(url))),
    }
}

/// Runs every check, at most [`MAX_PARALLEL`] at once; one result per check, in order.
pub fn run(checks: &[HttpCheck]) -> Vec<CheckResult> {
    let slots: Vec<Mutex<Option<CheckResult>>> = checks.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(check) = checks.get(i) else { break };
        let probe = probe_http(&check.request);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let result = judge(check, &probe, i64::try_from(now).unwrap_or(i64::MAX));
        if let Ok(mut slot) = slots[i].lock() {
            *slot = Some(result);
        }
    };
    // This thread is one of the workers: one URL needs no other thread.
    std::thread::scope(|scope| {
        for _ in 1..checks.len().min(MAX_PARALLEL) {
            scope.spawn(work);
        }
        work();
    });
    slots
        .into_iter()
        .zip(checks)
        .map(|(slot, check)| {
            slot.into_inner().ok().flatten().unwrap_or_else(|| {
                CheckResult::unknown(
                    &check.name,
                    "http",
                    "internal error: the probe did not finish",
                    Duration::ZERO,
                )
            })
        })
        .collect()
}

/// The verdict on one probe; `now_unix` is the time the certificate's expiry is counted from.
pub fn judge(check: &HttpCheck, probe: &HttpProbe, now_unix: i64) -> CheckResult {
    let method = match check.request.method {
        HttpMethod::Get => "GET",
        HttpMethod::Head => "HEAD",
    };
    let mut statuses = Vec::new();
    let mut parts = Vec::new();
    let mut problems = Vec::new();
    let mut perfdata = Vec::new();

    let latency_ms = probe.latency.map(|l| (l.as_secs_f64() * 1e6).round() / 1000.0);
    match (probe.status, &probe.error) {
        (None, error) => {
            statuses.push(Status::Critical);
            problems.push(error.clone().unwrap_or_else(|| "no response".into()));
        }
        (Some(code), error) => {
            if check.status_codes.contains(&code) {
                parts.push(format!("{code}"));
            } else {
                statuses.push(Status::Critical);
                let expected: Vec<String> = check.status_codes.iter().map(u16::to_string).collect();
                problems.push(format!("status {code}, expected {}", expected.join(" or ")));
            }
            if let Some(error) = error {
                statuses.push(Status::Critical);
                problems.push(error.clone());
            }
            let body = probe.body.as_deref().unwrap_or("");
            let read = if probe.body_truncated {
                format!(" (in the first {} bytes)", body.len())
            } else {
                String::new()
            };
            if let Some(needle) = &check.body_contains {
                if !body.contains(needle.as_str()) {
                    statuses.push(Status::Critical);
                    problems.push(format!("body does not contain {}{read}", quote(needle)));
                }
            }
            if let Some(re) = &check.body_regex {
                if !re.is_match(body) {
                    statuses.push(Status::Critical);
                    problems.push(format!("body does not match {}{read}", quote(re.as_str())));
                }
            }
        }
    }
    if let Some(ms) = latency_ms {
        statuses.push(check.latency.evaluate(ms));
        let why = check.latency.explain(ms).map(|w| format!(" ({w})")).unwrap_or_default();
        parts.push(format!("in {ms} ms{why}"));
        perfdata.push(Perfdata::new(check.name.clone(), ms, Some(Unit::Milliseconds)).with_levels(&check.latency));
    }
    let mut days_left = None;
    if let Some(tls) = &probe.tls {
        let days = ((tls.not_after_unix - now_unix) as f64 / 86400.0 * 100.0).round() / 100.0;
        days_left = Some(days);
        let status = check.tls_expiry.evaluate(days);
        statuses.push(status);
        let why = check
            .tls_expiry
            .explain(days)
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        let text = if days < 0.0 {
            format!("certificate expired {} days ago{why}", -days)
        } else {
            format!("certificate expires in {days} days{why}")
        };
        if status == Status::Ok {
            parts.push(text);
        } else {
            problems.push(text);
        }
        perfdata.push(Perfdata::new(format!("{} tls_days", check.name), days, None).with_levels(&check.tls_expiry));
    }

    let status = Status::worst(statuses);
    let duration = probe.total_time;
    let mut result = match latency_ms {
        Some(ms) => CheckResult::measured_bare(
            &check.name,
            "http",
            ms,
            Some(Unit::Milliseconds),
            &check.latency,
            duration,
        ),
        None => CheckResult::state(&check.name, "http", status, "", duration),
    };
    result.status = status;
    result.perfdata = Perfdata::join(&perfdata);
    let said: Vec<String> = problems.into_iter().chain(parts).collect();
    result.message = format!("{method} {}: {}", check.request.url, said.join(", "));
    let d = &mut result.details;
    d.insert("url".into(), check.request.url.clone().into());
    d.insert("method".into(), method.into());
    d.insert("status_code".into(), probe.status.into());
    d.insert("expected_status_codes".into(), check.status_codes.clone().into());
    d.insert("error".into(), probe.error.clone().into());
    d.insert(
        "total_time_ms".into(),
        ((probe.total_time.as_secs_f64() * 1e6).round() / 1000.0).into(),
    );
    if check.body_contains.is_some() || check.body_regex.is_some() {
        d.insert("body_truncated".into(), probe.body_truncated.into());
    }
    if let Some(tls) = &probe.tls {
        d.insert(
            "tls".into(),
            json!({
                "subject": tls.subject,
                "issuer": tls.issuer,
                "not_before": tls.not_before_unix,
                "not_after": tls.not_after_unix,
                "days_left": days_left,
            }),
        );
        if let Some(c) = check.tls_expiry.warning {
            d.insert("tls_expiry_warning".into(), c.to_string().into());
        }
        if let Some(c) = check.tls_expiry.critical {
            d.insert("tls_expiry_critical".into(), c.to_string().into());
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use reliability_os::http::TlsInfo;

    fn params(url: &str) -> HttpParams {
        HttpParams {
            name: None,
            url: url.into(),
            method: "GET".into(),
            status_codes: vec![200],
            body_contains: None,
            body_regex: None,
            timeout: 5.0,
            latency_warning: None,
            latency_critical: None,
            validate_certs: true,
            ca_file: None,
            follow_redirects: false,
            headers: None,
            tls_expiry_warning: Some(json!(30)),
            tls_expiry_critical: Some(json!(7)),
        }
    }

    fn compile(p: HttpParams) -> Result<HttpCheck, String> {
        let mut problems = Problems::default();
        let c = HttpCheck::compile(p, "http[1]", &mut problems);
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(problems.0.join("; "))
        }
    }

    #[test]
    fn bad_urls_regexes_and_headers_are_named() {
        let fails = |p: HttpParams, expected: &str| {
            assert_eq!(compile(p).map(|_| ()), Err(expected.to_string()));
        };
        fails(params("htp://x"), "http[1].url: 'htp://x' is not an http or https URL");
        fails(
            params("example.org/health"),
            "http[1].url: 'example.org/health' is not an http or https URL",
        );
        fails(
            params("http://exa mple.org/"),
            "http[1].url: 'http://exa mple.org/' is not a valid URL: invalid uri character",
        );
        fails(
            params("https://"),
            "http[1].url: 'https://' is not a valid URL: empty string",
        );
        fails(
            HttpParams {
                body_regex: Some("(".into()),
                ..params("http://x/")
            },
            "http[1].body_regex: invalid regex '(': found open group without closing ')'",
        );
        fails(
            HttpParams {
                method: "HEAD".into(),
                body_contains: Some("ok".into()),
                ..params("http://x/")
            },
            "http[1].body_contains: a HEAD response has no body to check; use method GET",
        );
        let headers = json!({"X Bad": "1", "X-List": [1], "X-Nl": "a\nb"});
        fails(
            HttpParams {
                headers: headers.as_object().cloned(),
                ..params("http://x/")
            },
            "http[1].headers.X Bad: 'X Bad' is not a valid header name; \
             http[1].headers.X-List: [1] is not a header value; use a string; \
             http[1].headers.X-Nl: the value holds characters a header cannot carry",
        );
        fails(
            HttpParams {
                tls_expiry_warning: Some(json!("a:b")),
                latency_critical: Some(json!("5:1")),
                ..params("http://x/")
            },
            "http[1].latency_critical: invalid range '5:1': start 5 is greater than end 1; \
             http[1].tls_expiry_warning: invalid range 'a:b': start 'a' is not a number",
        );
        assert!(compile(params("HTTPS://[::1]:8443/x?y=1")).is_ok());
    }

    fn probe(status: Option<u16>, ms: u64, body: &str, error: Option<&str>) -> HttpProbe {
        HttpProbe {
            status,
            latency: status.map(|_| Duration::from_millis(ms)),
            total_time: Duration::from_millis(ms + 1),
            body: Some(body.into()),
            body_truncated: false,
            tls: None,
            error: error.map(String::from),
        }
    }

    /// `expected` is `status: message`.
    fn judged(check: &HttpCheck, probe: &HttpProbe, expected: &str) {
        let r = judge(check, probe, 1_800_000_000);
        assert_eq!(format!("{}: {}", r.status, r.message), expected);
    }

    #[test]
    fn statuses_bodies_and_latency() {
        let c = compile(HttpParams {
            body_contains: Some("ok".into()),
            body_regex: Some(r#""db":\s*"up""#.into()),
            latency_warning: Some(json!(100)),
            latency_critical: Some(json!(1000)),
            ..params("http://h/health")
        })
        .expect("valid");
        let good = r#"{"status": "ok", "db": "up"}"#;
        judged(
            &c,
            &probe(Some(200), 12, good, None),
            "ok: GET http://h/health: 200, in 12 ms",
        );
        judged(
            &c,
            &probe(Some(200), 150, good, None),
            "warning: GET http://h/health: 200, in 150 ms (warning: above 100)",
        );
        judged(
            &c,
            &probe(Some(200), 1500, good, None),
            "critical: GET http://h/health: 200, in 1500 ms (critical: above 1000)",
        );
        judged(
            &c,
            &probe(Some(500), 3, good, None),
            "critical: GET http://h/health: status 500, expected 200, in 3 ms",
        );
        judged(
            &c,
            &probe(Some(200), 3, r#"{"status": "ok", "db": "down"}"#, None),
            r#"critical: GET http://h/health: body does not match '"db":\s*"up"', 200, in 3 ms"#,
        );
        judged(
            &c,
            &probe(Some(200), 3, "nope", None),
            r#"critical: GET http://h/health: body does not contain 'ok', body does not match '"db":\s*"up"', 200, in 3 ms"#,
        );
        judged(
            &c,
            &probe(None, 0, "", Some("connection refused")),
            "critical: GET http://h/health: connection refused",
        );
        judged(
            &c,
            &probe(Some(200), 3, good, Some("reading the body: timed out after 5s")),
            "critical: GET http://h/health: reading the body: timed out after 5s, 200, in 3 ms",
        );
        let r = judge(&c, &probe(Some(200), 12, good, None), 0);
        assert_eq!(r.perfdata, "http://h/health=12ms;100;1000");
        assert_eq!((r.value, r.details["status_code"].clone()), (Some(12.0), json!(200)));
    }

    #[test]
    fn certificate_expiry_counts_down_in_days() {
        let c = compile(params("https://h/")).expect("valid");
        let now = 1_800_000_000;
        let with_days = |days: f64| HttpProbe {
            tls: Some(TlsInfo {
                subject: "CN=h".into(),
                issuer: "CN=h".into(),
                not_before_unix: now - 86400,
                not_after_unix: now + (days * 86400.0) as i64,
            }),
            ..probe(Some(200), 5, "", None)
        };
        let at = |days: f64| {
            let r = judge(&c, &with_days(days), now);
            format!("{}: {}", r.status, r.message)
        };
        assert_eq!(
            at(90.0),
            "ok: GET https://h/: 200, in 5 ms, certificate expires in 90 days"
        );
        assert_eq!(
            at(20.5),
            "warning: GET https://h/: certificate expires in 20.5 days (warning: below 30), 200, in 5 ms"
        );
        assert_eq!(
            at(2.0),
            "critical: GET https://h/: certificate expires in 2 days (critical: below 7), 200, in 5 ms"
        );
        assert_eq!(
            at(-1.0),
            "critical: GET https://h/: certificate expired 1 days ago (critical: below 7), 200, in 5 ms"
        );
        let r = judge(&c, &with_days(2.0), now);
        assert_eq!(r.perfdata, "https://h/=5ms 'https://h/ tls_days'=2;30:;7:");
        assert_eq!(r.details["tls"]["days_left"], json!(2.0));
    }
}
