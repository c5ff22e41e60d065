//! The pure core of hx.reliability.
//!
//! Decisions without I/O: how module options are declared, coerced and validated; how a
//! measured value compares with warning/critical levels. Nothing here reads a file, the
//! clock or the environment: callers pass what the core needs, so every rule is tested
//! table-style with plain values.

pub mod audit;
pub mod breaker;
pub mod cancel;
pub mod check;
pub mod cpu_sample;
pub mod cpu_times;
pub mod duration;
pub mod incident;
pub mod maintenance;
pub mod manifest;
pub mod quote;
pub mod recovery;
pub mod request;
pub mod retention;
pub mod size;
pub mod spec;
pub mod sql_screen;
pub mod subset;
pub mod threshold;
pub mod timestamp;
pub mod unit_name;
