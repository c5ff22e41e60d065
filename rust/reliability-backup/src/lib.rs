//! The backup engines of hx.reliability, used by the backup modules (and, later, the
//! daemon and the CLI): verification (one [`verify_spec`], one [`VerifyRequest`], one
//! [`verify`]), [`retention`] and [`manifest`]s; each a typed request in and a
//! serialisable report out.
//!
//! A request names the checks to run, each in a module of its own:
//!
//! | check            | proves                                                             |
//! |------------------|--------------------------------------------------------------------|
//! | [`integrity`]    | every file a manifest lists has the digest the manifest says       |
//! | [`completeness`] | the backup has what it must, is recent, and is kept in enough places |
//! | [`restore`]      | (`restore_test`) an archive or a restore command restores, and matches |
//! | [`postgres`]     | (`restore_test`) a pg_dump restores and its queries pass           |
//!
//! Each check module declares its options ([`Opt`]s, validated by the same spec machinery
//! as every module) and a `run` that takes the validated options and returns a
//! [`CheckReport`]: a status, a one-line message, and the check's figures and precise
//! failures. [`verify`] runs the checks in the order asked and joins the reports.
//!
//! With `record_good`, a request that passes every check it asked for also records its
//! backup as the set's last verified good one ([`good`]): the one `backup_retention` never
//! deletes. That is the only thing a verification writes besides check state under
//! `state_dir`.
//!
//! Architecture invariant: this crate prints nothing and knows nothing of Ansible; reading,
//! hashing and extracting are `reliability-os`'s, pure verdicts are `reliability-core`'s or
//! this crate's `judge` functions.

pub mod completeness;
pub mod good;
pub mod integrity;
pub mod manifest;
pub mod postgres;
pub mod restore;
pub mod retention;

use reliability_core::request::Report;
use reliability_core::spec::{Kind, Opt, Spec};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// The checks `backup_verify` knows, in the order they run when several are asked.
pub const CHECKS: &[&str] = &["integrity", "completeness", "restore_test"];

/// Every option of a verification request, declared once.
pub fn verify_spec() -> Spec {
    let mut opts = vec![Opt::list("checks", Kind::Str)
        .choices(CHECKS)
        .default(json!(["integrity"]))];
    opts.extend(integrity::options());
    opts.extend(completeness::options());
    opts.extend(good::options());
    opts.extend(restore::options());
    opts.extend(postgres::options());
    Spec::new(opts)
}

/// How a request runs: what the front end knows that the options do not say.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// Ansible's check mode: nothing persistent may be written (cursors included).
    pub check_mode: bool,
}

/// One check's outcome.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    pub failed: bool,
    /// One line, for the task's `msg`.
    pub msg: String,
    /// The check's figures and failures, returned under `checks.<name>`.
    pub fields: Map<String, Value>,
    /// Things the user should know that do not fail the check.
    pub warnings: Vec<String>,
}

impl CheckReport {
    pub fn status(&self) -> &'static str {
        if self.failed {
            "failed"
        } else {
            "ok"
        }
    }
}

/// Why a request cannot run at all (bad input, as opposed to a failing backup).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestError(pub String);

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RequestError {}

impl From<RequestError> for reliability_core::request::RequestError {
    fn from(e: RequestError) -> reliability_core::request::RequestError {
        reliability_core::request::RequestError::new(vec![e.0])
    }
}

/// A checked verification request: the checks asked, in order, and the options they read.
#[derive(Clone, Debug)]
pub struct VerifyRequest {
    /// The checks, in the order asked, each once.
    pub checks: Vec<String>,
    /// The options [`verify_spec`] validated; each check reads its own.
    pub params: Map<String, Value>,
    good: Option<good::Request>,
}

impl VerifyRequest {
    /// Reads options that [`verify_spec`] validated and checks what it cannot before any
    /// check runs: the good record asked for, one restore per request.
    pub fn from_params(params: &Map<String, Value>) -> Result<VerifyRequest, reliability_core::request::RequestError> {
        let mut checks: Vec<String> = Vec::new();
        let asked = params
            .get("checks")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_else(|| vec!["integrity".to_string()]);
        for name in asked {
            if !checks.contains(&name) {
                checks.push(name);
            }
        }
        if checks.iter().any(|c| c == "restore_test") && postgres::requested(params) && restore::requested(params) {
            return Err(RequestError(
                "restore_test restores one thing per task: give postgresql.dump or restore (archive or restore_command), not both".into(),
            )
            .into());
        }
        // (With record_good, an empty list is refused by `good::request`, which says why.)
        let good = good::request(params, &checks)?;
        if checks.is_empty() {
            return Err(RequestError(format!(
                "checks: the list is empty, so nothing would be verified; name at least one of {}",
                CHECKS.join(", ")
            ))
            .into());
        }
        validate(params)?;
        Ok(VerifyRequest {
            checks,
            params: params.clone(),
            good,
        })
    }
}

/// The joined outcome of a request.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// `ok` or `failed`.
    pub status: &'static str,
    pub failed: bool,
    /// Something persistent was written (or would be, in check mode): the good record.
    pub changed: bool,
    pub msg: String,
    /// `{check: {status, ...fields}}`.
    pub checks: Map<String, Value>,
    pub warnings: Vec<String>,
    /// With `record_good`: the set, the backup, the state file and whether it was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub good: Option<Value>,
}

impl Report for VerifyReport {
    fn changed(&self) -> bool {
        self.changed
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

/// Runs the asked checks, in the order asked.
pub fn verify(request: &VerifyRequest, ctx: &Context) -> Result<VerifyReport, RequestError> {
    let params = &request.params;
    let mut report = VerifyReport::default();
    let mut msgs = Vec::new();
    for name in &request.checks {
        let check = match name.as_str() {
            "integrity" => integrity::run(params, ctx)?,
            "completeness" => completeness::run(params, ctx)?,
            // One restore per task (checked by the request): a PostgreSQL dump, or an
            // archive / restore command.
            "restore_test" if postgres::requested(params) => postgres::run(params, ctx)?,
            "restore_test" => restore::run(params, ctx)?,
            other => return Err(RequestError(format!("checks: unknown check '{other}'"))),
        };
        let mut fields = Map::new();
        fields.insert("status".into(), json!(check.status()));
        fields.extend(check.fields);
        report.checks.insert(name.clone(), Value::Object(fields));
        report.failed |= check.failed;
        report.warnings.extend(check.warnings);
        msgs.push(check.msg);
    }
    report.msg = msgs.join("; ");
    if let Some(good) = &request.good {
        good::record(good, &request.checks, ctx, &mut report)?;
    }
    report.status = if report.failed { "failed" } else { "ok" };
    Ok(report)
}

/// Checks every option given, also those of checks this request does not run (a mistake
/// must not wait for the day its check is turned on), without opening a file or running
/// anything: the run-free half of [`VerifyRequest::from_params`], which the fuzz targets
/// call too. What only a run can judge (a manifest's content, whether a directory exists)
/// is left to the run.
pub fn validate(params: &Map<String, Value>) -> Result<(), RequestError> {
    integrity::validate(params)?;
    completeness::validate(params)?;
    restore::validate(params)?;
    postgres::validate(params)
}

/// An option as a string, if given.
pub(crate) fn str_param<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    params.get(name).and_then(Value::as_str)
}
