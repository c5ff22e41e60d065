//! Helpers of the monitor's integration tests.
#![allow(dead_code)]

pub mod daemon;
