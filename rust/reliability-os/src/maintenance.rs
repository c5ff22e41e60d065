//! Ad-hoc maintenance windows kept in the state store: one record of kind `maintenance`
//! per window name (`<state dir>/maintenance/<name>.json`), written by the
//! `maintenance_window` module and the CLI through [`Store`], read here by whoever asks
//! whether a window is open (the decision is `reliability_core::maintenance::active_at`).
//!
//! A closed window keeps its record, its end moved to when it was closed: the history of
//! windows taken is the audit trail's, but a record is what makes closing idempotent.

use crate::state::{StateError, Store};
use reliability_core::maintenance::{self as core, AdHoc, Ask, Plan, PlanError, Window};

/// Why a window could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Every ad-hoc window stored, by name. Unusable files are skipped and returned as errors
/// beside the windows (one bad file hides no other window).
pub fn list(store: &Store) -> (Vec<AdHoc>, Vec<StateError>) {
    let (names, mut errors) = match store.names::<AdHoc>() {
        Ok(names) => (names, Vec::new()),
        Err(e) => (Vec::new(), vec![e]),
    };
    let mut windows = Vec::new();
    for name in names {
        match store.load::<AdHoc>(&name) {
            Ok(Some(w)) => windows.push(w),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    (windows, errors)
}

/// Plans `ask` on the window stored under its name at `now_ms`
/// (`reliability_core::maintenance::plan`) and, unless `check_mode`, stores the change:
/// what `maintenance_window` and the CLI's `maintenance start`/`stop` both do. The caller
/// appends the audit record of a change.
pub fn apply(store: &Store, ask: &Ask, now_ms: u64, check_mode: bool) -> Result<Plan, MaintenanceError> {
    let current = store.load::<AdHoc>(&ask.name)?;
    let plan = core::plan(current.as_ref(), ask, now_ms)?;
    if let Some((window, _)) = plan.next.as_ref().filter(|_| !check_mode) {
        store.update::<AdHoc, StateError, _>(&ask.name, |_| Ok(window.clone()))?;
    }
    Ok(plan)
}

/// The stored windows as windows for `active_at`, after `configured` ones.
pub fn windows(store: &Store, configured: &[Window]) -> (Vec<Window>, Vec<StateError>) {
    let (ad_hoc, errors) = list(store);
    let mut all = configured.to_vec();
    all.extend(ad_hoc.into_iter().map(Window::AdHoc));
    (all, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_windows_are_listed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::new(tmp.path());
        for (name, end) in [("deploy", 2_000), ("kernel", 3_000)] {
            store
                .update::<AdHoc, StateError, _>(name, |_| {
                    Ok(AdHoc {
                        name: name.into(),
                        reason: "r".into(),
                        actor: "alice".into(),
                        start_ms: 1_000,
                        end_ms: end,
                        services: Vec::new(),
                    })
                })
                .expect("store");
        }
        std::fs::write(tmp.path().join("maintenance/broken.json"), "{").expect("write");
        let (all, errors) = windows(&store, &[]);
        assert_eq!(all.len(), 2);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let active = reliability_core::maintenance::active_at(&all, 2_500).expect("active");
        assert_eq!(active.name, "kernel");
    }
}
