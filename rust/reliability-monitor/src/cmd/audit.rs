//! `audit verify [--dir D]`: the trail checked by `reliability_os::audit::verify`, which
//! names the first edited, removed, reordered or truncated line. Nagios-style: exit 0
//! when intact, 2 when tampered with, 3 when it cannot be read.

use super::{nagios_line, Rendered};
use reliability_core::check::Status;
use serde_json::json;
use std::path::Path;

pub fn verify(dir: &Path) -> Rendered {
    let report = match reliability_os::audit::verify(dir) {
        Ok(r) => r,
        Err(e) => return super::unknown("AUDIT", &format!("audit trail '{}': {e}", dir.display())),
    };
    let (status, text) = match (&report.first_bad, report.ok) {
        (None, true) => (
            Status::Ok,
            format!(
                "audit trail '{}' intact: {} records in {} file(s)",
                dir.display(),
                report.records,
                report.files
            ),
        ),
        (Some(bad), _) => (
            Status::Critical,
            format!(
                "audit trail '{}' TAMPERED: {} line {}: {} ({} records intact before it)",
                dir.display(),
                bad.file,
                bad.line,
                bad.problem,
                report.records
            ),
        ),
        (None, false) => (Status::Critical, format!("audit trail '{}' TAMPERED", dir.display())),
    };
    let perfdata = vec![format!("records={}", report.records), format!("files={}", report.files)];
    Rendered {
        json: json!({"dir": dir, "status": status.name(), "verify": report}),
        table: format!("{text}\n"),
        nagios: nagios_line("AUDIT", status, &text, &perfdata),
        status,
    }
}
