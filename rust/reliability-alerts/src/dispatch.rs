//! Delivering what waits in the queue, and test alerts.

use crate::alert::{idempotency_key, Alert, AlertName, AlertState, Category, Severity};
use crate::channels::{Channel, DeliveryError};
use crate::config::AlertConfig;
use crate::queue::{Queue, QueueError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long one [`Dispatcher::deliver_due`] keeps starting deliveries.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(10);

/// What happened to one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Failed; retried at this time (unix ms).
    Retry {
        at_ms: u64,
        error: DeliveryError,
    },
    /// Refused for good; kept in the queue's `dead/`.
    Refused(DeliveryError),
}

/// One delivery: the answer of `reliability-monitor alert test`, and a line of a
/// [`RoundReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryReport {
    pub channel: String,
    /// The host it went to (never a URL's path).
    pub target: String,
    pub key: String,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// What one [`Dispatcher::deliver_due`] did.
#[derive(Debug, Default)]
pub struct RoundReport {
    pub deliveries: Vec<DeliveryReport>,
    /// Queue errors (a full disk): the entries concerned stay queued.
    pub errors: Vec<QueueError>,
    /// Entries still waiting, and the earliest time one of a configured channel is due
    /// (when the daemon's next round has work).
    pub pending: usize,
    pub next_due_ms: Option<u64>,
    /// The round stopped early: cancelled, or out of its time budget.
    pub interrupted: bool,
}

impl RoundReport {
    pub fn delivered(&self) -> usize {
        self.deliveries
            .iter()
            .filter(|d| d.outcome == Outcome::Delivered)
            .count()
    }
}

/// Delivers queued alerts through the configured channels.
#[derive(Debug)]
pub struct Dispatcher {
    channels: Vec<Channel>,
    queue: Queue,
    budget: Duration,
}

impl Dispatcher {
    pub fn new(config: &AlertConfig, queue: Queue) -> Dispatcher {
        Dispatcher {
            channels: config.channels.clone(),
            queue,
            budget: DEFAULT_BUDGET,
        }
    }

    /// Stop starting deliveries after `budget` in one round (one delivery may still take
    /// up to its channel's timeout).
    pub fn with_budget(mut self, budget: Duration) -> Dispatcher {
        self.budget = budget;
        self
    }

    /// After a reload: the channels of `config`, the same queue.
    pub fn reconfigure(&mut self, config: &AlertConfig) {
        self.channels = config.channels.clone();
    }

    pub fn queue(&mut self) -> &mut Queue {
        &mut self.queue
    }

    /// Queues `alert` for every channel.
    pub fn push(&mut self, alert: &Alert, now: u64) -> Result<crate::queue::PushReport, QueueError> {
        let names: Vec<&str> = self.channels.iter().map(Channel::name).collect();
        self.queue.push(alert, &names, now)
    }

    /// Delivers what is due at `now`, oldest first per channel, until done, `cancel` is
    /// set, or the budget is spent. A channel whose delivery failed is left alone until
    /// that entry's retry is due ([`Queue::backing_off`]): its receiver is likely down.
    /// Entries of a channel no longer configured wait (a reload may bring it back).
    pub fn deliver_due(&mut self, now: u64, cancel: &AtomicBool) -> RoundReport {
        let started = Instant::now();
        let mut report = RoundReport::default();
        'channels: for channel in &self.channels {
            if self.queue.backing_off(channel.name(), now) {
                continue;
            }
            for entry in self.queue.due(channel.name(), now) {
                if cancel.load(Ordering::Relaxed) || started.elapsed() >= self.budget {
                    report.interrupted = true;
                    break 'channels;
                }
                let key = entry.alert.key.clone();
                let began = Instant::now();
                let result = channel.deliver(&entry.alert, now);
                let elapsed = began.elapsed();
                let (outcome, stop) = match result {
                    Ok(()) => match self.queue.ack(channel.name(), &key) {
                        Ok(()) => (Outcome::Delivered, false),
                        Err(e) => {
                            report.errors.push(e);
                            (Outcome::Delivered, false)
                        }
                    },
                    Err(error) if error.permanent => {
                        if let Err(e) = self.queue.bury(channel.name(), &key, &error.to_string()) {
                            report.errors.push(e);
                        }
                        (Outcome::Refused(error), false)
                    }
                    Err(error) => match self.queue.retry(channel.name(), &key, &error.to_string(), now) {
                        Ok(at_ms) => (Outcome::Retry { at_ms, error }, true),
                        Err(e) => {
                            report.errors.push(e);
                            (Outcome::Retry { at_ms: now, error }, true)
                        }
                    },
                };
                report.deliveries.push(DeliveryReport {
                    channel: channel.name().to_string(),
                    target: channel.target(),
                    key,
                    outcome,
                    elapsed,
                });
                if stop {
                    continue 'channels;
                }
            }
        }
        report.pending = self.queue.len();
        // Entries of a channel no longer configured wait without making anything due.
        report.next_due_ms = self
            .channels
            .iter()
            .filter_map(|c| self.queue.next_due_ms(c.name()))
            .min();
        report
    }
}

/// `send_test` was asked for a channel that is not configured.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no channel '{name}' is configured (configured: {})", if configured.is_empty() { "none".to_string() } else { configured.join(", ") })]
pub struct UnknownChannel {
    pub name: String,
    pub configured: Vec<String>,
}

impl AlertConfig {
    /// The alert `send_test` sends at `now`.
    pub fn test_alert(&self, now: u64) -> Alert {
        let incident = format!("test-{now}");
        Alert {
            key: idempotency_key("alert-test", AlertName::Test, &incident, AlertState::Firing, 0),
            name: AlertName::Test,
            state: AlertState::Firing,
            severity: Severity::Info,
            category: Category::ServiceFailure,
            host: self.policy.host.clone(),
            service: "alert-test".into(),
            check: None,
            value: None,
            incident,
            summary: format!(
                "test alert from reliability-monitor on {}: this channel works",
                self.policy.host
            ),
            runbook_url: None,
            tried: Vec::new(),
            sequence: 0,
            starts_at_ms: now,
            ends_at_ms: None,
        }
    }

    /// Sends a test alert through `channel` now, bypassing the queue, and reports how it
    /// went (`reliability-monitor alert test --channel NAME`).
    pub fn send_test(&self, channel: &str, now: u64) -> Result<DeliveryReport, UnknownChannel> {
        let Some(c) = self.channel(channel) else {
            return Err(UnknownChannel {
                name: channel.to_string(),
                configured: self.channels.iter().map(|c| c.name().to_string()).collect(),
            });
        };
        let alert = self.test_alert(now);
        let began = Instant::now();
        let outcome = match c.deliver(&alert, now) {
            Ok(()) => Outcome::Delivered,
            Err(e) if e.permanent => Outcome::Refused(e),
            Err(e) => Outcome::Retry { at_ms: now, error: e },
        };
        Ok(DeliveryReport {
            channel: c.name().to_string(),
            target: c.target(),
            key: alert.key,
            outcome,
            elapsed: began.elapsed(),
        })
    }
}
