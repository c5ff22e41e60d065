//! The `alerting` and `notifications` sections of the monitor's configuration, typed.
//!
//! The seed's blocks are valid as written:
//!
//! ```yaml
//! alerting:
//!   enabled: true
//!   channels: [email, slack, webhook]
//!   thresholds: {service_down: CRITICAL, performance_degraded: WARNING, recovery_failed: CRITICAL}
//! notifications:
//!   email: {smtp_server: localhost, from_address: ansible@example.com, to_addresses: [admin@example.com]}
//!   slack: {webhook_url: "https://hooks.slack.com/...", channel: "#alerts", username: Reliability Monitor}
//!   webhook: {url: "https://api.example.com/alerts", method: POST}
//! ```
//!
//! Beyond the seed: an `alertmanager` channel; the policy's knobs (`alert_on`,
//! `group_wait`, `repeat_interval`, `send_resolved`, `runbook_url`, `host`); the queue's
//! (`queue.max_alerts`, `queue.retry_base`, `queue.retry_max`); SMTP's `smtp_port`, `tls`,
//! `username`, `password`, `auth_mechanism`, `ca_file`; a webhook's `headers`, `token` and
//! HMAC `secret`. Every secret (`password`, `webhook_url`, `url` of a webhook, `token`,
//! `secret`) is given inline, or as `<key>_file` (a file holding it) or `<key>_env` (an
//! environment variable holding it), exactly one of the three.
//!
//! [`alerting_spec`] and [`notifications_spec`] are the one declaration of the sections'
//! schemas; [`AlertConfig::from_root`] validates both and every value the schema cannot
//! judge (addresses, URLs, secret files), each problem named by its full path in the file.

use crate::alert::{AlertName, Severity};
use crate::channels::{AlertmanagerChannel, Channel, EmailChannel, SlackChannel, SmtpTls, WebhookChannel};
use crate::policy::PolicyConfig;
use crate::secret::{self, Secret};
use reliability_core::duration::parse_duration;
use reliability_core::quote::quote;
use reliability_core::spec::{Env, Kind, Opt, Problem as SpecProblem, ProblemKind, Spec};
use reliability_os::http::BodyMethod;
use serde_json::{json, Map, Value};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The channel kinds, which are also the channels' names.
pub const CHANNELS: [&str; 4] = ["email", "slack", "webhook", "alertmanager"];

/// One problem of the configuration, at its full path (`notifications.email.smtp_port`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid alert configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ConfigError(pub Vec<Problem>);

/// What the retry queue does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// The most alerts waiting per channel; beyond it the oldest are dropped (and counted).
    pub max_alerts: usize,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_alerts: 1000,
            retry_base_ms: 1000,
            retry_max_ms: 300_000,
        }
    }
}

/// The alerting configuration, validated, secrets read.
#[derive(Clone, Debug)]
pub struct AlertConfig {
    pub enabled: bool,
    pub policy: PolicyConfig,
    pub queue: QueueConfig,
    /// The channels alerts go to (those named in `alerting.channels`).
    pub channels: Vec<Channel>,
}

/// The environment a configuration is read in: `~` for paths, and environment variables
/// for `<key>_env` secrets.
pub struct Context<'a> {
    pub env: Env,
    pub var: &'a dyn Fn(&str) -> Option<String>,
    /// The host name alerts carry unless `alerting.host` says otherwise.
    pub hostname: String,
}

impl Context<'_> {
    /// This process's environment and host name.
    pub fn process() -> Context<'static> {
        Context {
            env: Env {
                home: std::env::var("HOME").ok(),
            },
            var: &|name| std::env::var(name).ok(),
            hostname: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into()),
        }
    }
}

/// `key`, `key_file`, `key_env`: a secret given one of three ways.
fn secret_opts(key: &'static str, file: &'static str, env: &'static str) -> [Opt; 3] {
    [Opt::str(key).no_log(), Opt::path(file), Opt::str(env).max_len(256)]
}

fn duration(name: &'static str, default: &str) -> Opt {
    Opt::str(name).default(default).max_len(64)
}

fn http_opts() -> [Opt; 3] {
    [
        Opt::path("ca_file"),
        Opt::bool("validate_certs").default(true),
        duration("timeout", "10s"),
    ]
}

/// The schema of `alerting`.
pub fn alerting_spec() -> Spec {
    Spec::new(vec![
        Opt::bool("enabled").default(true),
        Opt::list("channels", Kind::Str).choices(&CHANNELS),
        Opt::dict("thresholds").options(Spec::new(
            AlertName::DEFAULTS
                .iter()
                .map(|(name, severity)| {
                    Opt::str(name.as_str())
                        .choices(&Severity::NAMES)
                        .default(severity.as_str())
                })
                .collect(),
        )),
        Opt::str("host").max_len(253),
        Opt::str("runbook_url"),
        Opt::dict("alert_on").default(json!({})).options(Spec::new(vec![
            Opt::bool("check_failure").default(false),
            Opt::bool("healing_failed").default(true),
            Opt::int("ladder_level").default(3).range(0.0, 100.0),
            Opt::dict("flapping").default(json!({})).options(Spec::new(vec![
                Opt::int("recoveries").default(3).range(0.0, 1_000_000.0),
                duration("window", "1h"),
            ])),
        ])),
        duration("group_wait", "0s"),
        duration("repeat_interval", "4h"),
        Opt::bool("send_resolved").default(true),
        Opt::dict("queue").default(json!({})).options(Spec::new(vec![
            Opt::int("max_alerts").default(1000).range(1.0, 1_000_000.0),
            duration("retry_base", "1s"),
            duration("retry_max", "5m"),
        ])),
    ])
}

/// The schema of `notifications`.
pub fn notifications_spec() -> Spec {
    let email = {
        let mut opts = vec![
            Opt::str("smtp_server").default("localhost").max_len(253),
            Opt::int("smtp_port").range(1.0, 65535.0),
            Opt::str("tls").choices(&["starttls", "opportunistic", "smtps", "none"]),
            Opt::str("username"),
            Opt::str("auth_mechanism").choices(&["plain", "login"]),
            Opt::str("from_address").required(),
            Opt::list("to_addresses", Kind::Str).required().max_items(100),
            Opt::str("subject_prefix").default("[hx.reliability]"),
        ];
        opts.extend(secret_opts("password", "password_file", "password_env"));
        opts.extend(http_opts());
        Spec::new(opts).mutually_exclusive(&["password", "password_file", "password_env"])
    };
    let slack = {
        let mut opts = vec![
            Opt::str("channel"),
            Opt::str("username").default("Reliability Monitor"),
            Opt::str("icon_emoji"),
        ];
        // A Slack incoming-webhook URL is its credential.
        opts.extend(secret_opts("webhook_url", "webhook_url_file", "webhook_url_env"));
        opts.extend(http_opts());
        Spec::new(opts)
            .mutually_exclusive(&["webhook_url", "webhook_url_file", "webhook_url_env"])
            .required_one_of(&["webhook_url", "webhook_url_file", "webhook_url_env"])
    };
    let webhook = {
        let mut opts = vec![
            Opt::str("method").choices(&["POST", "PUT"]).default("POST"),
            Opt::dict("headers").no_log().max_items(64),
        ];
        opts.extend(secret_opts("url", "url_file", "url_env"));
        opts.extend(secret_opts("token", "token_file", "token_env"));
        opts.extend(secret_opts("secret", "secret_file", "secret_env"));
        opts.extend(http_opts());
        Spec::new(opts)
            .mutually_exclusive(&["url", "url_file", "url_env"])
            .required_one_of(&["url", "url_file", "url_env"])
            .mutually_exclusive(&["token", "token_file", "token_env"])
            .mutually_exclusive(&["secret", "secret_file", "secret_env"])
    };
    let alertmanager = {
        let mut opts = vec![Opt::str("url").required(), Opt::str("generator_url")];
        opts.extend(secret_opts("token", "token_file", "token_env"));
        opts.extend(http_opts());
        Spec::new(opts).mutually_exclusive(&["token", "token_file", "token_env"])
    };
    Spec::new(vec![
        Opt::dict("email").default(Value::Null).options(email),
        Opt::dict("slack").default(Value::Null).options(slack),
        Opt::dict("webhook").default(Value::Null).options(webhook),
        Opt::dict("alertmanager").default(Value::Null).options(alertmanager),
    ])
}

/// A spec problem as a line of the config's problems (the monitor's wording: an unknown
/// key is named by its own path).
fn from_spec(problem: &SpecProblem, base: &str) -> Problem {
    let at = join(base, &problem.path);
    match &problem.kind {
        ProblemKind::Unknown { key, suggestion, valid } => Problem {
            path: join(&at, key),
            message: match suggestion {
                Some(s) => format!("unknown key; did you mean '{s}'?"),
                None => format!("unknown key (valid keys: {})", valid.join(", ")),
            },
        },
        kind => Problem {
            path: at,
            message: SpecProblem {
                path: String::new(),
                kind: kind.clone(),
            }
            .to_string(),
        },
    }
}

fn join(base: &str, rel: &str) -> String {
    match (base.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (false, true) => base.to_string(),
        (false, false) if rel.starts_with('[') => format!("{base}{rel}"),
        (false, false) => format!("{base}.{rel}"),
    }
}

/// The host of an http or https URL, or why it is not one. The URL itself is never in
/// the message: it may be a credential.
pub(crate) fn url_host(url: &str) -> Result<String, &'static str> {
    let rest = ["https://", "http://"]
        .iter()
        .find_map(|p| {
            url.get(..p.len())
                .filter(|s| s.eq_ignore_ascii_case(p))
                .map(|_| &url[p.len()..])
        })
        .ok_or("not an http or https URL")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split_once(']').map(|(h, _)| h).unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    if host.is_empty() || url.contains(char::is_whitespace) {
        return Err("not an http or https URL with a host");
    }
    Ok(host.to_string())
}

/// `localhost`, or a loopback address.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Reads one piece of config, recording problems at their paths.
struct Reader<'a, 'c> {
    ctx: &'a Context<'c>,
    problems: Vec<Problem>,
}

impl Reader<'_, '_> {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn validate(&mut self, spec: &Spec, input: &Value, path: &str) -> Option<Map<String, Value>> {
        let map = match input {
            Value::Null => Map::new(),
            Value::Object(m) => m.clone(),
            other => {
                self.push(path, format!("{} is not a mapping of options", show(other)));
                return None;
            }
        };
        match spec.validate(&map, &self.ctx.env) {
            Ok(valid) => Some(valid),
            Err(e) => {
                let problems: Vec<Problem> = e.errors.iter().map(|p| from_spec(p, path)).collect();
                self.problems.extend(problems);
                None
            }
        }
    }

    /// The duration `key` of `map` (`default` when not given: the spec fills the
    /// defaults of a section, not those of a dict inside it that was not given).
    fn duration_ms(&mut self, map: &Map<String, Value>, key: &str, path: &str, default: &str) -> u64 {
        let text = map.get(key).and_then(Value::as_str).unwrap_or(default);
        match parse_duration(text) {
            Ok(ms) => ms,
            Err(e) => {
                self.push(&join(path, key), e.reason);
                0
            }
        }
    }

    /// The secret `key` of `map` (inline, `_file` or `_env`), read.
    fn secret(&mut self, map: &Map<String, Value>, key: &str, path: &str) -> Option<Secret> {
        if let Some(v) = map.get(key).and_then(Value::as_str) {
            if v.is_empty() {
                self.push(&join(path, key), "empty");
                return None;
            }
            return Some(Secret::new(v));
        }
        let file_key = format!("{key}_file");
        if let Some(file) = map.get(&file_key).and_then(Value::as_str) {
            return match secret::read_file(std::path::Path::new(file)) {
                Ok(v) => Some(Secret::new(v)),
                Err(e) => {
                    self.push(&join(path, &file_key), e);
                    None
                }
            };
        }
        let env_key = format!("{key}_env");
        if let Some(name) = map.get(&env_key).and_then(Value::as_str) {
            return match (self.ctx.var)(name).filter(|v| !v.is_empty()) {
                Some(v) => Some(Secret::new(v)),
                None => {
                    self.push(
                        &join(path, &env_key),
                        format!("the environment variable {} is not set or empty", quote(name)),
                    );
                    None
                }
            };
        }
        None
    }

    fn http_common(&mut self, map: &Map<String, Value>, path: &str) -> (Option<PathBuf>, bool, Duration) {
        let timeout = self.duration_ms(map, "timeout", path, "10s");
        if timeout == 0 {
            self.push(&join(path, "timeout"), "must be more than 0");
        }
        (
            map.get("ca_file").and_then(Value::as_str).map(PathBuf::from),
            map.get("validate_certs").and_then(Value::as_bool).unwrap_or(true),
            Duration::from_millis(timeout),
        )
    }

    /// A secret URL: its host, or a problem that does not show it.
    fn secret_url(&mut self, map: &Map<String, Value>, key: &str, path: &str) -> Option<(Secret, String)> {
        let url = self.secret(map, key, path)?;
        match url_host(url.expose()) {
            Ok(host) => Some((url, host)),
            Err(e) => {
                self.push(
                    &join(path, key),
                    format!("{e} (the value is not shown: it is a secret)"),
                );
                None
            }
        }
    }

    fn address(&mut self, address: &str, path: &str) -> Option<String> {
        match lettre::message::Mailbox::from_str(address) {
            Ok(_) => Some(address.to_string()),
            Err(e) => {
                self.push(path, format!("{} is not an email address: {e}", quote(address)));
                None
            }
        }
    }

    fn email(&mut self, m: &Map<String, Value>, path: &str) -> Option<EmailChannel> {
        let before = self.problems.len();
        let from = m.get("from_address").and_then(Value::as_str).unwrap_or_default();
        let from = self.address(from, &join(path, "from_address"));
        let mut to = Vec::new();
        let list = m
            .get("to_addresses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if list.is_empty() {
            self.push(&join(path, "to_addresses"), "at least one address is needed");
        }
        for (i, a) in list.iter().enumerate() {
            if let Some(a) = self.address(a.as_str().unwrap_or_default(), &format!("{path}.to_addresses[{i}]")) {
                to.push(a);
            }
        }
        let username = m.get("username").and_then(Value::as_str).map(String::from);
        let password = self.secret(m, "password", path);
        if username.is_some() != password.is_some() && self.problems.len() == before {
            self.push(
                path,
                "username and a password (password, password_file or password_env) go together",
            );
        }
        let server = m
            .get("smtp_server")
            .and_then(Value::as_str)
            .unwrap_or("localhost")
            .to_string();
        let tls = match m.get("tls").and_then(Value::as_str) {
            Some("starttls") => SmtpTls::Starttls,
            Some("smtps") => SmtpTls::Smtps,
            Some("none") => SmtpTls::None,
            Some(_) => SmtpTls::Opportunistic,
            // Credentials are never sent where STARTTLS could be stripped.
            None if username.is_some() => SmtpTls::Starttls,
            // The seed's relay on localhost: nothing leaves the host, and a local relay's
            // certificate is rarely one a client can verify (Debian's postfix: snakeoil).
            None if is_loopback(&server) => SmtpTls::None,
            None => SmtpTls::Opportunistic,
        };
        if username.is_some() && matches!(tls, SmtpTls::None | SmtpTls::Opportunistic) {
            self.push(
                &join(path, "tls"),
                "credentials would be sent unencrypted; use starttls or smtps",
            );
        }
        let port = m
            .get("smtp_port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok());
        let port = port.unwrap_or(if tls == SmtpTls::Smtps { 465 } else { 25 });
        let mechanism = m.get("auth_mechanism").and_then(Value::as_str).map(String::from);
        let (ca_file, validate_certs, timeout) = self.http_common(m, path);
        if self.problems.len() != before {
            return None;
        }
        Some(EmailChannel {
            server,
            port,
            tls,
            ca_file,
            validate_certs,
            username,
            password,
            mechanism,
            from: from?,
            to,
            subject_prefix: m
                .get("subject_prefix")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            timeout,
        })
    }

    fn slack(&mut self, m: &Map<String, Value>, path: &str) -> Option<SlackChannel> {
        let before = self.problems.len();
        let url = self.secret_url(m, "webhook_url", path);
        let (ca_file, validate_certs, timeout) = self.http_common(m, path);
        let (url, host) = url.filter(|_| self.problems.len() == before)?;
        let text = |k: &str| m.get(k).and_then(Value::as_str).map(String::from);
        Some(SlackChannel {
            url,
            host,
            channel: text("channel"),
            username: text("username").unwrap_or_default(),
            icon_emoji: text("icon_emoji"),
            ca_file,
            validate_certs,
            timeout,
        })
    }

    fn webhook(&mut self, m: &Map<String, Value>, path: &str) -> Option<WebhookChannel> {
        let before = self.problems.len();
        let url = self.secret_url(m, "url", path);
        let token = self.secret(m, "token", path);
        let hmac_key = self.secret(m, "secret", path);
        let mut headers = Vec::new();
        for (name, value) in m.get("headers").and_then(Value::as_object).into_iter().flatten() {
            let at = format!("{path}.headers.{name}");
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    self.push(&at, "not a header value; use a string");
                    continue;
                }
            };
            let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || !name.chars().all(token_char) {
                self.push(&at, format!("{} is not a header name", quote(name)));
            } else if value.chars().any(|c| c.is_control() && c != '\t') {
                // The value is not shown: headers carry credentials.
                self.push(&at, "the value holds characters a header cannot carry");
            } else {
                headers.push((name.clone(), Secret::new(value)));
            }
        }
        let method = match m.get("method").and_then(Value::as_str) {
            Some("PUT") => BodyMethod::Put,
            _ => BodyMethod::Post,
        };
        let (ca_file, validate_certs, timeout) = self.http_common(m, path);
        let (url, host) = url.filter(|_| self.problems.len() == before)?;
        Some(WebhookChannel {
            url,
            host,
            method,
            headers,
            token,
            hmac_key,
            ca_file,
            validate_certs,
            timeout,
        })
    }

    fn alertmanager(&mut self, m: &Map<String, Value>, path: &str, firing_ttl_ms: u64) -> Option<AlertmanagerChannel> {
        let before = self.problems.len();
        let url = m.get("url").and_then(Value::as_str).unwrap_or_default();
        let authority = url.split("://").nth(1).and_then(|r| r.split(['/', '?', '#']).next());
        let host = if authority.is_some_and(|a| a.contains('@')) {
            // Not quoted: it holds a password. The URL is shown in logs; a token is not.
            self.push(
                &join(path, "url"),
                "credentials in the URL are refused (the URL is logged); use token, token_file or token_env",
            );
            None
        } else {
            match url_host(url) {
                Ok(h) => Some(h),
                Err(e) => {
                    self.push(&join(path, "url"), format!("{}: {e}", quote(url)));
                    None
                }
            }
        };
        let generator_url = m.get("generator_url").and_then(Value::as_str).map(String::from);
        if let Some(g) = &generator_url {
            if let Err(e) = url_host(g) {
                self.push(&join(path, "generator_url"), format!("{}: {e}", quote(g)));
            }
        }
        let token = self.secret(m, "token", path);
        let (ca_file, validate_certs, timeout) = self.http_common(m, path);
        let host = host.filter(|_| self.problems.len() == before)?;
        Some(AlertmanagerChannel {
            url: url.trim_end_matches('/').to_string(),
            host,
            generator_url,
            token,
            ca_file,
            validate_certs,
            timeout,
            firing_ttl_ms,
        })
    }
}

fn show(v: &Value) -> String {
    quote(&v.to_string())
}

impl AlertConfig {
    /// Reads `alerting`, `notifications` and `maintenance_windows.
    /// suppress_alerts_during_maintenance` from a whole configuration file's text.
    pub fn from_yaml(text: &str) -> Result<AlertConfig, ConfigError> {
        let root: Value = serde_yaml_ng::from_str(text).map_err(|e| {
            ConfigError(vec![Problem {
                path: "(file)".into(),
                message: format!("not YAML: {e}"),
            }])
        })?;
        let root = match root {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => {
                return Err(ConfigError(vec![Problem {
                    path: "(file)".into(),
                    message: format!("{} is not a mapping of sections", show(&other)),
                }]))
            }
        };
        AlertConfig::from_root(&root, &Context::process())
    }

    /// Validates the sections of an already parsed configuration (the monitor's, which
    /// validates the others). Every problem is returned, each at its full path.
    pub fn from_root(root: &Map<String, Value>, ctx: &Context<'_>) -> Result<AlertConfig, ConfigError> {
        let mut r = Reader {
            ctx,
            problems: Vec::new(),
        };
        let alerting = r.validate(
            &alerting_spec(),
            root.get("alerting").unwrap_or(&Value::Null),
            "alerting",
        );
        let notifications = r.validate(
            &notifications_spec(),
            root.get("notifications").unwrap_or(&Value::Null),
            "notifications",
        );
        let suppress = root
            .get("maintenance_windows")
            .and_then(|m| m.get("suppress_alerts_during_maintenance"))
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let (Some(alerting), Some(notifications)) = (alerting, notifications) else {
            return Err(ConfigError(r.problems));
        };
        let policy = policy(&mut r, &alerting, suppress);
        let queue = {
            let q = alerting
                .get("queue")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let config = QueueConfig {
                max_alerts: q.get("max_alerts").and_then(Value::as_u64).unwrap_or(1000) as usize,
                retry_base_ms: r.duration_ms(&q, "retry_base", "alerting.queue", "1s"),
                retry_max_ms: r.duration_ms(&q, "retry_max", "alerting.queue", "5m"),
            };
            if config.retry_base_ms == 0 || config.retry_max_ms < config.retry_base_ms {
                r.push("alerting.queue", "retry_base must be more than 0 and at most retry_max");
            }
            config
        };
        let given = |name: &str| notifications.get(name).is_some_and(|v| !v.is_null());
        let names: Vec<String> = match alerting.get("channels").and_then(Value::as_array) {
            Some(list) => list.iter().filter_map(Value::as_str).map(String::from).collect(),
            // Not given: every channel that is configured.
            None => CHANNELS.iter().filter(|c| given(c)).map(|c| c.to_string()).collect(),
        };
        let firing_ttl_ms = policy.repeat_interval_ms.saturating_mul(2).saturating_add(300_000);
        let mut channels = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                r.push(&format!("alerting.channels[{i}]"), format!("'{name}' is listed twice"));
                continue;
            }
            let Some(section) = notifications.get(name).and_then(Value::as_object).cloned() else {
                r.push(
                    &format!("alerting.channels[{i}]"),
                    format!("'{name}' has no notifications.{name} section to send with"),
                );
                continue;
            };
            let path = format!("notifications.{name}");
            let channel = match name.as_str() {
                "email" => r.email(&section, &path).map(Channel::Email),
                "slack" => r.slack(&section, &path).map(Channel::Slack),
                "webhook" => r.webhook(&section, &path).map(Channel::Webhook),
                _ => r
                    .alertmanager(&section, &path, firing_ttl_ms)
                    .map(Channel::Alertmanager),
            };
            channels.extend(channel);
        }
        if !r.problems.is_empty() {
            return Err(ConfigError(r.problems));
        }
        Ok(AlertConfig {
            enabled: alerting.get("enabled").and_then(Value::as_bool).unwrap_or(true),
            policy,
            queue,
            channels,
        })
    }

    /// The channel named `name`.
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name() == name)
    }
}

fn policy(r: &mut Reader<'_, '_>, a: &Map<String, Value>, suppress: bool) -> PolicyConfig {
    let mut severities: std::collections::BTreeMap<AlertName, Severity> = AlertName::DEFAULTS.into_iter().collect();
    if let Some(t) = a.get("thresholds").and_then(Value::as_object) {
        for (name, _) in AlertName::DEFAULTS {
            if let Some(s) = t.get(name.as_str()).and_then(Value::as_str).and_then(Severity::parse) {
                severities.insert(name, s);
            }
        }
    }
    let on = a
        .get("alert_on")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let flap = on
        .get("flapping")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let recoveries = flap.get("recoveries").and_then(Value::as_u64).unwrap_or(3);
    let window = r.duration_ms(&flap, "window", "alerting.alert_on.flapping", "1h");
    let level = on.get("ladder_level").and_then(Value::as_u64).unwrap_or(3);
    let repeat = r.duration_ms(a, "repeat_interval", "alerting", "4h");
    if repeat == 0 {
        r.push("alerting.repeat_interval", "must be more than 0");
    }
    let runbook_url = a.get("runbook_url").and_then(Value::as_str).map(String::from);
    if let Some(u) = &runbook_url {
        if let Err(e) = url_host(u) {
            r.push("alerting.runbook_url", format!("{}: {e}", quote(u)));
        }
    }
    PolicyConfig {
        host: a
            .get("host")
            .and_then(Value::as_str)
            .map_or_else(|| r.ctx.hostname.clone(), String::from),
        severities,
        on_check_failure: on.get("check_failure").and_then(Value::as_bool).unwrap_or(false),
        on_healing_failed: on.get("healing_failed").and_then(Value::as_bool).unwrap_or(true),
        ladder_level: u32::try_from(level).ok().filter(|&l| l > 0),
        flapping: u32::try_from(recoveries)
            .ok()
            .filter(|&n| n > 0 && window > 0)
            .map(|n| (n, window)),
        group_wait_ms: r.duration_ms(a, "group_wait", "alerting", "0s"),
        repeat_interval_ms: repeat,
        send_resolved: a.get("send_resolved").and_then(Value::as_bool).unwrap_or(true),
        suppress_in_maintenance: suppress,
        runbook_url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(vars: &'static [(&'static str, &'static str)]) -> Context<'static> {
        Context {
            env: Env::default(),
            var: Box::leak(Box::new(move |name: &str| {
                vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
            })),
            hostname: "web1".into(),
        }
    }

    fn parse(yaml: &str, vars: &'static [(&'static str, &'static str)]) -> Result<AlertConfig, Vec<String>> {
        let root: Map<String, Value> = serde_yaml_ng::from_str(yaml).expect("yaml");
        AlertConfig::from_root(&root, &ctx(vars)).map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    const SEED: &str = r##"
alerting:
  enabled: true
  channels:
    - email              # Email notifications
    - slack              # Slack integration
    - webhook            # Custom webhook notifications

  thresholds:
    service_down: "CRITICAL"
    performance_degraded: "WARNING"
    recovery_failed: "CRITICAL"
notifications:
  email:
    smtp_server: "localhost"
    from_address: "ansible@example.com"
    to_addresses: ["admin@example.com"]

  slack:
    webhook_url: "https://hooks.slack.com/..."
    channel: "#alerts"
    username: "Reliability Monitor"

  webhook:
    url: "https://api.example.com/alerts"
    method: "POST"
maintenance_windows:
  suppress_alerts_during_maintenance: true
"##;

    #[test]
    fn the_seed_is_valid_as_written() {
        let c = parse(SEED, &[]).expect("the seed's config");
        assert!(c.enabled);
        let names: Vec<&str> = c.channels.iter().map(Channel::name).collect();
        assert_eq!(names, ["email", "slack", "webhook"]);
        assert_eq!(c.policy.host, "web1");
        assert_eq!(c.policy.severities[&AlertName::ServiceDown], Severity::Critical);
        assert_eq!(c.policy.severities[&AlertName::PerformanceDegraded], Severity::Warning);
        assert_eq!(c.policy.ladder_level, Some(3));
        assert_eq!(c.policy.flapping, Some((3, 3_600_000)));
        assert_eq!(c.queue, QueueConfig::default());
        let Channel::Email(e) = &c.channels[0] else {
            panic!("email first")
        };
        assert_eq!((e.server.as_str(), e.port, e.tls), ("localhost", 25, SmtpTls::None));
        let Channel::Slack(s) = &c.channels[1] else {
            panic!("slack second")
        };
        assert_eq!(s.host, "hooks.slack.com");
        // Nothing of the configuration's secrets shows in its Debug output.
        let debug = format!("{c:?}");
        assert!(!debug.contains("hooks.slack.com/..."), "{debug}");
        assert!(!debug.contains("api.example.com/alerts"), "{debug}");
    }

    #[test]
    fn smtp_tls_defaults_keep_credentials_and_remote_mail_encrypted() {
        let tls = |fields: &str| {
            let yaml = format!("notifications: {{email: {{{fields}, from_address: a@b.c, to_addresses: [d@e.f]}}}}");
            match &parse(&yaml, &[("PW", "x")]).expect("valid").channels[0] {
                Channel::Email(e) => (e.tls, e.port),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(tls("smtp_server: localhost"), (SmtpTls::None, 25));
        assert_eq!(tls("smtp_server: '::1'"), (SmtpTls::None, 25));
        assert_eq!(tls("smtp_server: mx.example.com"), (SmtpTls::Opportunistic, 25));
        assert_eq!(
            tls("smtp_server: localhost, username: u, password_env: PW"),
            (SmtpTls::Starttls, 25)
        );
        assert_eq!(tls("smtp_server: mx.example.com, tls: smtps"), (SmtpTls::Smtps, 465));
    }

    #[test]
    fn no_secret_shows_in_debug_output() {
        let yaml = r#"
alerting: {channels: [email, slack, webhook, alertmanager]}
notifications:
  email: {smtp_server: mx, smtp_port: 587, username: u, password: SECRET-PW, from_address: a@b.c, to_addresses: [d@e.f]}
  slack: {webhook_url: "https://hooks.slack.com/services/SECRET-SLACK"}
  webhook: {url: "https://h.example/SECRET-PATH?k=SECRET-Q", token: SECRET-TOKEN, secret: SECRET-HMAC, headers: {X-Api-Key: SECRET-HEADER}}
  alertmanager: {url: "http://am:9093", token: SECRET-AM}
"#;
        let c = parse(yaml, &[]).expect("valid");
        let debug = format!("{c:?} {:#?}", c.channels);
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn thresholds_are_configurable() {
        let yaml = "alerting: {channels: [], thresholds: {service_down: WARNING, service_flapping: INFO}}";
        let c = parse(yaml, &[]).expect("valid");
        assert_eq!(c.policy.severities[&AlertName::ServiceDown], Severity::Warning);
        assert_eq!(c.policy.severities[&AlertName::ServiceFlapping], Severity::Info);
        assert_eq!(c.policy.severities[&AlertName::RecoveryFailed], Severity::Critical);
    }

    #[test]
    fn secrets_come_from_files_and_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").expect("write");
        let yaml = format!(
            "alerting: {{channels: [email, webhook]}}\n\
             notifications:\n  email: {{smtp_server: mx, username: u, password_file: '{}', from_address: a@b.c, to_addresses: [d@e.f]}}\n  \
             webhook: {{url_env: HOOK, secret_env: KEY}}\n",
            file.display()
        );
        let root: Map<String, Value> = serde_yaml_ng::from_str(&yaml).expect("yaml");
        let c = AlertConfig::from_root(&root, &ctx(&[("HOOK", "https://h.example/p?token=t"), ("KEY", "k")]))
            .expect("valid");
        let Channel::Email(e) = &c.channels[0] else {
            panic!("email")
        };
        assert_eq!(e.password.as_ref().map(Secret::expose), Some("from-file"));
        assert_eq!(e.tls, SmtpTls::Starttls, "credentials default to STARTTLS");
        let Channel::Webhook(w) = &c.channels[1] else {
            panic!("webhook")
        };
        assert_eq!(
            (w.url.expose(), w.host.as_str()),
            ("https://h.example/p?token=t", "h.example")
        );
        assert_eq!(w.hmac_key.as_ref().map(Secret::expose), Some("k"));
    }

    #[test]
    fn problems_are_named_by_path_and_secrets_stay_hidden() {
        let yaml = r#"
alerting:
  channels: [email, slack, alertmanager, email]
  thresholds: {service_down: LOUD}
  repeat_intervall: 1h
  alert_on: {flapping: {window: soon}}
notifications:
  email: {smtp_server: mx, username: u, password: p, tls: none, from_address: nobody, to_addresses: []}
  slack: {webhook_url: "ftp://hooks.example/T0/SECRETPATH", webhook_url_env: X}
  webhook: {url: "https://x/y", headers: {"bad name": v}}
  alertmanager: {url: "localhost:9093"}
"#;
        let problems = parse(yaml, &[]).expect_err("invalid");
        assert_eq!(
            problems,
            [
                "alerting.repeat_intervall: unknown key; did you mean 'repeat_interval'?",
                "alerting.thresholds.service_down: 'LOUD' is not one of 'INFO', 'WARNING', 'CRITICAL'",
                "notifications.slack: options are mutually exclusive: webhook_url, webhook_url_env",
            ]
        );
        let yaml = yaml
            .replace("  thresholds: {service_down: LOUD}\n  repeat_intervall: 1h\n", "")
            .replace(", webhook_url_env: X", "");
        let problems = parse(&yaml, &[]).expect_err("invalid");
        assert_eq!(
            problems,
            [
                "alerting.alert_on.flapping.window: 'soon' does not start with a number",
                "notifications.email.from_address: 'nobody' is not an email address: Invalid input",
                "notifications.email.to_addresses: at least one address is needed",
                "notifications.email.tls: credentials would be sent unencrypted; use starttls or smtps",
                "notifications.slack.webhook_url: not an http or https URL (the value is not shown: it is a secret)",
                "notifications.alertmanager.url: 'localhost:9093': not an http or https URL",
                "alerting.channels[3]: 'email' is listed twice",
            ]
        );
        assert!(!problems.concat().contains("SECRETPATH"));
        let problems = parse(
            "alerting: {channels: [slack]}\nnotifications: {slack: {webhook_url_env: NOPE}}",
            &[],
        )
        .expect_err("unset variable");
        assert_eq!(
            problems,
            ["notifications.slack.webhook_url_env: the environment variable 'NOPE' is not set or empty"]
        );
        let problems = parse(
            "notifications: {alertmanager: {url: 'http://admin:hunter2@am:9093'}}",
            &[],
        )
        .expect_err("userinfo");
        assert_eq!(
            problems,
            ["notifications.alertmanager.url: credentials in the URL are refused (the URL is logged); use token, token_file or token_env"]
        );
        let problems = parse("alerting: {channels: [webhook]}", &[]).expect_err("no section");
        assert_eq!(
            problems,
            ["alerting.channels[0]: 'webhook' has no notifications.webhook section to send with"]
        );
    }
}
