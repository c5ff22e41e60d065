//! The OS layer of hx.reliability.
//!
//! This is the only crate that touches the machine: `/proc`, `/sys`, `statvfs`, systemd,
//! sockets and files. Everything it returns is plain data (structs that serialize to the
//! JSON a module returns); every decision about that data (is it healthy? over a threshold?)
//! is made by `reliability-core`, which never sees the machine.

pub mod archive;
pub mod audit;
pub mod clock;
pub mod command;
pub mod cpu_sample;
pub mod facts;
pub mod hashing;
pub mod http;
pub mod journal;
pub mod maintenance;
pub mod net;
pub mod postgres;
pub mod procs;
pub mod prune;
pub mod small_file;
pub mod state;
pub mod systemd;
pub mod zones;
