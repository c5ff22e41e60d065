//! How a module run appends its record to the host's audit trail: the actor (the effective
//! user, `SUDO_USER`, and what the action plugin says of the controller) and the trail under
//! the module's `state_dir` (`<state_dir>/audit`). The trail itself is
//! `reliability_os::audit`; a module calls [`append`] once per action it took, never in
//! check mode.

use ansible_module::{Failure, Module};
pub use reliability_os::audit::Outcome;
use reliability_os::audit::{self, Actor, Record};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The trail of a module run: `<state_dir>/audit`.
pub fn dir(module: &Module) -> PathBuf {
    let state_dir = module.str("state_dir").unwrap_or(reliability_os::state::DEFAULT_DIR);
    Path::new(state_dir).join(audit::SUBDIR)
}

/// Who runs this task: the host's side from the process, the controller's from the action
/// plugin (`controller_user`, `playbook`, `play`, `task`).
pub fn actor(module: &Module) -> Actor {
    let text = |k: &str| {
        module
            .internal
            .controller
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Actor {
        controller_user: text("controller_user"),
        playbook: text("playbook"),
        play: text("play"),
        task: text("task"),
        ..audit::actor()
    }
}

/// The person behind an action, in one word ([`Actor::who`]).
pub fn who(actor: &Actor) -> String {
    actor.who()
}

/// Append one record of this module's action; a failure names the trail.
pub fn append(
    module: &Module,
    action: &str,
    target: &str,
    reason: Option<&str>,
    outcome: Outcome,
    details: Value,
) -> Result<(), Failure> {
    let dir = dir(module);
    let record = Record {
        front_end: "module".into(),
        action: action.into(),
        target: target.into(),
        reason: reason.map(str::to_string),
        outcome,
        actor: actor(module),
        config_digest: None,
        details,
    };
    audit::append(&dir, record).map(|_| ()).map_err(|e| {
        Failure::new(format!(
            "the audit trail in '{}' could not be appended: {e}",
            dir.display()
        ))
    })
}
