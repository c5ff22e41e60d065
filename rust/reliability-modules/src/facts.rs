//! `reliability_facts`: host facts without Python on the target.

use ansible_module::{Failure, Module, Response};
use reliability_core::spec::{Kind, Opt, Spec};
use reliability_core::subset;
use std::time::Duration;

pub fn spec() -> Spec {
    Spec::new(vec![
        Opt::list("gather_subset", Kind::Str)
            .default(serde_json::json!(["all"]))
            .aliases(&["subset"]),
        Opt::float("cpu_sample_interval").default(0.2).range(0.0, 10.0),
    ])
}

pub fn run(module: &mut Module) -> Result<Response, Failure> {
    let wanted = module.list_of_str("gather_subset");
    let subset = subset::parse(&wanted).map_err(|e| Failure::new(format!("gather_subset: {e}")))?;
    let interval = Duration::from_secs_f64(module.float("cpu_sample_interval").unwrap_or(0.2));
    let facts = reliability_os::facts::gather(&subset, interval);
    let facts = serde_json::to_value(&facts).map_err(|e| Failure::new(format!("cannot encode facts: {e}")))?;
    // Facts are read-only: check mode runs the same way and nothing ever changes.
    Ok(Response::new().facts(serde_json::json!({ "reliability": facts })))
}
