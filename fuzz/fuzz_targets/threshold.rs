//! Threshold ranges (`10`, `10:`, `~:10`, `@10:20`) as `warning`/`critical` give them,
//! strings or numbers: parsing never panics, and a parsed range judges any value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reliability_core::threshold::{Levels, Range};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(range) = Range::parse(text) {
        for v in [f64::NEG_INFINITY, -1.0, 0.0, 0.5, 1e300, f64::NAN] {
            let _ = range.alerts(v);
        }
        assert!(range.start() <= range.end() || range.start().is_nan() || range.end().is_nan());
    }
    // The same text as warning and critical, split at the first newline.
    let (w, c) = text.split_once('\n').unwrap_or((text, ""));
    let as_value = |s: &str| match s.parse::<f64>() {
        Ok(n) => serde_json::Number::from_f64(n).map_or(Value::String(s.into()), Value::Number),
        Err(_) => Value::String(s.into()),
    };
    let (w, c) = (as_value(w), as_value(c));
    if let Ok(levels) = Levels::parse(Some(&w), (!c.as_str().is_some_and(str::is_empty)).then_some(&c)) {
        for v in [-1.0, 0.0, 99.5, 1e12] {
            let _ = levels.evaluate(v);
            let _ = levels.explain(v);
        }
    }
});
