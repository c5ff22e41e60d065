//! Alerts of hx.reliability: what the monitor's daemon tells people when self-healing is
//! not enough.
//!
//! The pieces, in the order an alert meets them:
//!
//! - [`config`]: the `alerting` and `notifications` sections typed and validated, every
//!   problem named by its path, secrets read from the config, files or the environment.
//! - [`policy`]: pure (the clock is a parameter, no I/O): which events become alerts,
//!   grouping, deduplication, repeats, resolutions, maintenance suppression.
//! - [`queue`]: the durable on-disk queue, one file per alert per channel, removed only
//!   when the channel confirmed delivery; retries with exponential backoff and full jitter.
//! - [`channels`]: email (SMTP), Slack, a generic webhook and Alertmanager, each sending
//!   the alert's idempotency key so that a receiver drops a copy.
//! - [`dispatch`]: the delivery round the daemon runs, and `send_test`.
//!
//! The daemon's use: `AlertConfig::from_root` at start and reload; per event
//! `Policy::decide(event, now)` and per tick `Policy::tick(now, in_maintenance)`; each
//! alert `Dispatcher::push`ed; `Dispatcher::deliver_due(now, &cancel)` each tick.
//!
//! Architecture invariant: secrets never leave this crate except to their channel
//! ([`secret::Secret`] prints as `<redacted>` and is read only here).

pub mod alert;
pub mod channels;
pub mod config;
pub mod dispatch;
pub mod policy;
pub mod queue;
pub mod secret;

pub use alert::{Alert, AlertName, AlertState, Category, Severity};
pub use channels::{Channel, DeliveryError};
pub use config::{AlertConfig, ConfigError, Context, Problem, QueueConfig};
pub use dispatch::{DeliveryReport, Dispatcher, Outcome, RoundReport, UnknownChannel};
pub use policy::{Event, EventKind, Policy, PolicyConfig, PolicyState};
pub use queue::{PushReport, Queue, QueueError};
