//! The backup-verification engine of hx.reliability: one [`verify_spec`], one
//! [`verify`], used by the `backup_verify` module (and, later, the daemon and the CLI).
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
pub mod postgres;
pub mod restore;

use reliability_core::spec::{Kind, Opt, Spec};
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

/// The joined outcome of a request.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    pub failed: bool,
    /// Something persistent was written (or would be, in check mode): the good record.
    pub changed: bool,
    pub msg: String,
    /// `{check: {status, ...fields}}`.
    pub checks: Map<String, Value>,
    pub warnings: Vec<String>,
    /// With `record_good`: the set, the backup, the state file and whether it was recorded.
    pub good: Option<Value>,
}

/// Runs the asked checks on options [`verify_spec`] validated, in the order asked.
pub fn verify(params: &Map<String, Value>, ctx: &Context) -> Result<VerifyReport, RequestError> {
    let asked: Vec<String> = params
        .get("checks")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_else(|| vec!["integrity".to_string()]);
    // (With record_good, an empty list is refused by `good::request`, which says why.)
    let good = good::request(params, &asked)?;
    if asked.is_empty() {
        return Err(RequestError(format!(
            "checks: the list is empty, so nothing would be verified; name at least one of {}",
            CHECKS.join(", ")
        )));
    }
    validate(params)?;
    let mut report = VerifyReport::default();
    let mut msgs = Vec::new();
    for name in &asked {
        if report.checks.contains_key(name) {
            continue;
        }
        let check = match name.as_str() {
            "integrity" => integrity::run(params, ctx)?,
            "completeness" => completeness::run(params, ctx)?,
            // One restore per task: a PostgreSQL dump, or an archive / restore command.
            "restore_test" if postgres::requested(params) && restore::requested(params) => {
                return Err(RequestError(
                    "restore_test restores one thing per task: give postgresql.dump or restore (archive or restore_command), not both".into(),
                ))
            }
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
    if let Some(good) = &good {
        good::record(good, &asked, ctx, &mut report)?;
    }
    Ok(report)
}

/// Checks every option given, also those of checks this request does not run (a mistake
/// must not wait for the day its check is turned on), without opening a file or running
/// anything: the run-free half of [`verify`], which the fuzz targets call too. What only a
/// run can judge (a manifest's content, whether a directory exists) is left to the run.
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
