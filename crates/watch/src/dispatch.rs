//! The dispatcher: sends the outbox's messages while this instance leads.
//!
//! Each tick takes the pending messages and, for every (incident, channel), only the oldest
//! one (so a channel receives an incident's messages in order), renders it and sends it.
//! - Delivered: marked sent.
//! - Worth retrying (timeout, connection error, 429, 5xx): tried again after an exponential
//!   backoff with jitter, or after the `Retry-After` the service asked for.
//! - Not worth retrying (other 4xx), or `max_attempts` / `give_up_after` reached: marked
//!   failed, the reason on the incident's timeline, and the message queued on the route's
//!   next fallback channel.
//!
//! A channel over its `per_minute` limit waits, without counting an attempt. Every write is
//! fenced with the lease (the store handle is the leader's), and nothing is sent once the
//! lease may have run out, so only one instance sends each message. A message is marked
//! sent after the service confirmed it: a crash in between sends it again on restart, with
//! the same idempotency key (the webhook's `Idempotency-Key`, PagerDuty's `dedup_key`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use neo_ir_core::clock::{millis_between, Clock};
use neo_ir_core::incident::{EventType, TimelineEvent};
use neo_ir_core::notify::{fallback, NotifySettings};
use neo_ir_notify::{Channel, SendError, Templates};
use neo_ir_store::{OutboxMessage, Store, StoreError};

/// Messages looked at per tick, at most.
const BATCH: u32 = 500;
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Why the channels could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notify channel {channel}: {message}")]
    Channel { channel: String, message: String },
    #[error("notify templates: {0}")]
    Template(#[from] neo_ir_notify::TemplateError),
}

/// The configured channels with their secrets read and templates loaded (and checked), so
/// a missing secret or a broken template stops `neo-ir watch` at start.
pub struct Outlets {
    pub channels: HashMap<String, Channel>,
    templates: HashMap<String, Arc<Templates>>,
    default_templates: Arc<Templates>,
}

impl Outlets {
    pub fn build(settings: &NotifySettings) -> Result<Outlets, NotifyError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NotifyError::Channel {
                channel: "*".into(),
                message: e.to_string(),
            })?;
        let default_templates = Arc::new(match &settings.templates {
            Some(dir) => Templates::with_overrides(dir)?,
            None => Templates::builtin(),
        });
        let mut channels = HashMap::new();
        let mut templates = HashMap::new();
        for c in &settings.channels {
            let secret = c
                .secret
                .as_ref()
                .map(neo_ir_notify::channel::read_secret)
                .transpose()
                .map_err(|message| NotifyError::Channel {
                    channel: c.name.clone(),
                    message,
                })?;
            let channel = Channel::new(c.clone(), secret, http.clone()).map_err(|e| {
                NotifyError::Channel {
                    channel: c.name.clone(),
                    message: e.to_string(),
                }
            })?;
            let t = match &c.templates {
                Some(dir) => Arc::new(Templates::with_overrides(dir)?),
                None => default_templates.clone(),
            };
            templates.insert(c.name.clone(), t);
            channels.insert(c.name.clone(), channel);
        }
        Ok(Outlets {
            channels,
            templates,
            default_templates,
        })
    }

    /// Render `n` for `channel` and send it now, outside the outbox (`neo-ir notify test`).
    pub async fn send_now(
        &self,
        channel: &str,
        n: &neo_ir_core::notify::Notification,
    ) -> Result<neo_ir_notify::Delivered, String> {
        let c = self
            .channels
            .get(channel)
            .ok_or_else(|| format!("no [[notify.channels]] is named {channel:?}"))?;
        let rendered = self
            .templates(channel)
            .render(n)
            .map_err(|e| e.to_string())?;
        c.send(n, &rendered).await.map_err(|e| e.to_string())
    }

    fn templates(&self, channel: &str) -> &Templates {
        self.templates
            .get(channel)
            .unwrap_or(&self.default_templates)
    }
}

/// What one tick did (for tests and logs).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    pub deferred: usize,
}

/// Sends the outbox.
pub struct Dispatcher {
    store: Store,
    settings: NotifySettings,
    outlets: Arc<Outlets>,
    clock: Arc<dyn Clock>,
    /// Until when this instance surely holds the lease, and the margin to keep before it;
    /// `None`: no lease to respect (tests).
    lease_until: Option<(tokio::sync::watch::Receiver<Timestamp>, Duration)>,
    /// Send times in the last minute, per channel.
    recent: HashMap<String, VecDeque<Instant>>,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        settings: NotifySettings,
        outlets: Arc<Outlets>,
        clock: Arc<dyn Clock>,
        lease_until: Option<(tokio::sync::watch::Receiver<Timestamp>, Duration)>,
    ) -> Self {
        Self {
            store,
            settings,
            outlets,
            clock,
            lease_until,
            recent: HashMap::new(),
        }
    }

    /// Tick every `every` until `stop` (the end of the leadership term) or a lost lease.
    pub async fn run(mut self, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tick.tick() => {}
            }
            match self.tick().await {
                Ok(t) if t != Tick::default() => tracing::debug!(?t, "dispatch tick"),
                Ok(_) => {}
                Err(StoreError::LostLease { .. }) => return,
                Err(e) => tracing::error!(error = %e, "dispatch tick failed; retrying"),
            }
        }
    }

    /// Whether sending is still safe: the lease lasts at least the margin longer (a third
    /// of it: the lease is renewed every third, so a leader that keeps up always may; one
    /// that was frozen past a renewal does not send until it renewed). A send that outlives
    /// the lease anyway carries its idempotency key.
    fn may_send(&self) -> bool {
        match &self.lease_until {
            None => true,
            Some((rx, margin)) => {
                let until = *rx.borrow();
                neo_ir_core::oncall::plus(self.clock.now(), *margin) < until
            }
        }
    }

    /// One pass over the outbox.
    pub async fn tick(&mut self) -> Result<Tick, StoreError> {
        let mut out = Tick::default();
        let pending = self.store.pending_messages(BATCH).await?;
        let now = self.clock.now();
        // the oldest pending message of each (incident, channel), when it is due
        let mut seen = std::collections::HashSet::new();
        let heads: Vec<OutboxMessage> = pending
            .into_iter()
            .filter(|m| seen.insert((m.incident_id, m.channel.clone())))
            .filter(|m| m.next_attempt_at <= now)
            .collect();
        let outlets = self.outlets.clone();
        for m in heads {
            let Some(channel) = outlets.channels.get(&m.channel) else {
                let why = format!("channel {:?} is no longer configured", m.channel);
                self.give_up(&m, m.attempts, &why).await?;
                out.failed += 1;
                continue;
            };
            if !self.within_rate(&m.channel, channel.config().per_minute) {
                out.deferred += 1;
                continue;
            }
            if !self.may_send() {
                break; // the lease may run out during the send: the next leader sends it
            }
            let rendered = match outlets.templates(&m.channel).render(&m.notification) {
                Ok(r) => r,
                Err(e) => {
                    self.give_up(&m, m.attempts, &format!("cannot render: {e}"))
                        .await?;
                    out.failed += 1;
                    continue;
                }
            };
            let attempts = m.attempts + 1;
            self.recent
                .entry(m.channel.clone())
                .or_default()
                .push_back(Instant::now());
            let result = channel.send(&m.notification, &rendered).await;
            let now = self.clock.now();
            match result {
                Ok(_) => {
                    self.store.message_sent(m.id, attempts, now).await?;
                    tracing::info!(incident = m.incident_id, channel = %m.channel, kind = m.kind.as_str(), "message sent");
                    out.sent += 1;
                }
                Err(SendError::Retry { reason, after }) => {
                    let age = Duration::from_millis(millis_between(m.created_at, now));
                    if attempts >= self.settings.max_attempts || age >= self.settings.give_up_after
                    {
                        self.give_up(
                            &m,
                            attempts,
                            &format!("{reason} (gave up after {attempts} attempts)"),
                        )
                        .await?;
                        out.failed += 1;
                    } else {
                        // the service's own Retry-After is honoured (up to an hour)
                        let wait = match after {
                            Some(a) => a.min(Duration::from_secs(3600)),
                            None => backoff(attempts),
                        };
                        let next = neo_ir_core::oncall::plus(now, wait);
                        tracing::warn!(incident = m.incident_id, channel = %m.channel, attempt = attempts, retry_in_ms = wait.as_millis() as u64, "message not delivered: {reason}");
                        self.store
                            .message_retry(m.id, attempts, next, &reason)
                            .await?;
                        out.retried += 1;
                    }
                }
                Err(SendError::Permanent { reason }) => {
                    self.give_up(&m, attempts, &reason).await?;
                    out.failed += 1;
                }
            }
        }
        Ok(out)
    }

    /// Under the channel's per-minute limit?
    fn within_rate(&mut self, channel: &str, per_minute: u32) -> bool {
        let window = self.recent.entry(channel.to_string()).or_default();
        while window
            .front()
            .is_some_and(|t| t.elapsed() >= Duration::from_secs(60))
        {
            window.pop_front();
        }
        window.len() < per_minute as usize
    }

    /// Mark `m` failed, say why on the timeline, and hand it to the next fallback channel.
    async fn give_up(&self, m: &OutboxMessage, attempts: u32, why: &str) -> Result<(), StoreError> {
        let next = fallback(&m.notification, &self.settings, m.fallback_index as usize);
        let now = self.clock.now();
        let then = match &next {
            Some(n) => format!("; sending it to {} instead", n.channel),
            None => "; no fallback channel left".to_string(),
        };
        tracing::error!(incident = m.incident_id, channel = %m.channel, "message failed: {why}{then}");
        let event = TimelineEvent::new(
            now,
            EventType::NotificationFailed,
            format!(
                "{} message to {} failed: {why}{then}",
                m.kind.as_str(),
                m.channel
            ),
            serde_json::json!({
                "channel": m.channel,
                "kind": m.kind,
                "attempts": attempts,
                "error": why,
                "fallback": next.as_ref().map(|n| n.channel.clone()),
                "outbox_id": m.id,
            }),
        );
        self.store
            .message_failed(m, attempts, why, &event, next.as_ref(), now)
            .await
    }
}

/// 1 s, 2 s, 4 s, ... up to 1 min, ±20 % jitter (many messages failing together must not
/// come back together).
fn backoff(attempts: u32) -> Duration {
    use rand::{Rng, SeedableRng};
    let base = Duration::from_secs(1u64 << attempts.saturating_sub(1).min(9));
    let jitter = rand::rngs::SmallRng::from_os_rng().random_range(0.8..1.2);
    base.mul_f64(jitter).min(MAX_BACKOFF)
}
