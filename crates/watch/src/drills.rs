//! Drills in the watch loop: marking the incidents of running drills, and reminding the
//! drill's people of the next scheduled drill.
//!
//! Marking: every decision reads the running drills from the store (one small indexed
//! query) and marks the round's debounced findings with [`neo_ir_core::drill::mark`] before
//! they are reconciled. The first time the leader reads a drill it notes it in the store
//! (`seen_at`): `neo-ir drill run` injects its fault only after that, so the incidents it
//! causes are marked from the first round.
//!
//! Reminders: with `[drills]` configured, the leader computes the next scheduled drill
//! ([`neo_ir_core::drill::schedule`]) every round and, from `remind_before` it until it
//! starts, sends its reminder (who is the incident commander, which scenario, when, who
//! takes part) to the drill channels, straight through the channels' senders (the outbox
//! carries incidents' messages, and a scheduled drill has none yet). Each channel's
//! delivery is remembered in the store per drill day, so it is sent once; a channel that
//! failed is tried again in a later round (backing off up to 10 minutes). Sending runs in a
//! task of its own: a slow channel never holds a round up.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use neo_ir_core::config::Config;
use neo_ir_core::drill::mark;
use neo_ir_core::drill::schedule::{self, ScheduledDrill};
use neo_ir_core::incident::{Assessment, EventType, Finding, Incident, Severity, TimelineEvent};
use neo_ir_core::notify::{MessageKind, Notification, Rendered};
use neo_ir_store::{DrillStatus, Store, StoreError};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::dispatch::Outlets;

/// How long the drill history (which months already had their drill) is cached.
const HISTORY_EVERY: Duration = Duration::from_secs(60);
/// The longest wait before a failed reminder is tried again.
const MAX_RETRY: Duration = Duration::from_secs(600);

/// One channel's reminder: delivered and remembered, or why not.
type Delivery = (String, Result<(), String>);

/// The watcher's drill state.
#[derive(Default)]
pub(crate) struct Drills {
    /// Drills this instance already noted as seen.
    seen: BTreeSet<i64>,
    /// Start times of the drills held, and when they were read.
    held: Option<(Instant, Vec<Timestamp>)>,
    /// The drill day whose delivered channels `sent` holds.
    sent_day: Option<String>,
    sent: BTreeSet<String>,
    /// Per channel: failures in a row, and when to try again.
    failed: BTreeMap<String, (u32, Instant)>,
    /// The reminders being sent: (channel, delivered or why not).
    sending: Option<JoinHandle<Vec<Delivery>>>,
}

impl Drills {
    /// Mark the round's assessment for the drills running at `now` (see
    /// [`neo_ir_core::drill::mark::mark`]); `open` are the open incidents it is reconciled
    /// with.
    pub(crate) async fn mark(
        &mut self,
        store: &Store,
        assessment: Assessment,
        open: &[Incident],
        now: Timestamp,
    ) -> Result<Assessment, StoreError> {
        let drills = store.active_drills(now).await?;
        let new: Vec<i64> = drills
            .iter()
            .map(|d| d.id)
            .filter(|id| !self.seen.contains(id))
            .collect();
        if !new.is_empty() {
            store.mark_drills_seen(&new, now).await?;
            for d in drills.iter().filter(|d| new.contains(&d.id)) {
                tracing::info!(drill = d.id, scenario = %d.scenario, nodes = ?d.nodes,
                    "drill running: its incidents are marked as drill incidents");
            }
            self.seen.extend(new);
        }
        Ok(mark::mark(assessment, &drills, open))
    }
}

impl Drills {
    /// Send the reminder of the next scheduled drill when it is due (see the module). Errors
    /// of the store are returned (the round retries); a channel's failure is logged and
    /// retried later.
    pub(crate) async fn remind(
        &mut self,
        store: &Store,
        config: &Config,
        outlets: &Arc<Outlets>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let Some(settings) = &config.drills else {
            return Ok(());
        };
        if settings.channels.is_empty() {
            return Ok(());
        }
        if let Some(task) = &self.sending {
            if !task.is_finished() {
                return Ok(());
            }
            let task = self.sending.take().expect("checked above");
            for (channel, outcome) in task.await.unwrap_or_default() {
                match outcome {
                    Ok(()) => {
                        self.failed.remove(&channel);
                        self.sent.insert(channel);
                    }
                    Err(why) => {
                        let n = self.failed.get(&channel).map_or(0, |(n, _)| *n) + 1;
                        let wait = Duration::from_secs(1u64 << n.min(10)).min(MAX_RETRY);
                        tracing::warn!(%channel, attempts = n, retry_in = ?wait,
                            "drill reminder not delivered: {why}");
                        self.failed.insert(channel, (n, Instant::now() + wait));
                    }
                }
            }
        }
        let held = match &self.held {
            Some((read, held)) if read.elapsed() < HISTORY_EVERY => held.clone(),
            _ => {
                let held = held_drills(store).await?;
                self.held = Some((Instant::now(), held.clone()));
                held
            }
        };
        let Some(next) = schedule::upcoming(settings, &config.response.schedules, &held, now, 1)
            .into_iter()
            .next()
        else {
            return Ok(());
        };
        if !next.reminder_due(now) {
            return Ok(());
        }
        if self.sent_day.as_deref() != Some(next.day.as_str()) {
            self.sent = store
                .drill_reminders_sent(&next.day)
                .await?
                .into_iter()
                .collect();
            self.sent_day = Some(next.day.clone());
            self.failed.clear();
        }
        let due: Vec<String> = settings
            .channels
            .iter()
            .filter(|c| !self.sent.contains(*c))
            .filter(|c| {
                self.failed
                    .get(*c)
                    .is_none_or(|(_, at)| *at <= Instant::now())
            })
            .cloned()
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let kind = neo_ir_core::drill::find(&next.scenario)
            .map(|s| s.kind)
            .unwrap_or(neo_ir_core::incident::IncidentKind::NodeDown);
        let outlets = outlets.clone();
        let store = store.clone();
        self.sending = Some(tokio::spawn(async move {
            let mut out = Vec::new();
            for channel in due {
                let outcome = send(&outlets, &store, &next, kind, &channel, now).await;
                if outcome.is_ok() {
                    tracing::info!(%channel, day = %next.day, scenario = %next.scenario,
                        commander = ?next.commander, "drill reminder sent");
                }
                out.push((channel, outcome));
            }
            out
        }));
        Ok(())
    }
}

/// Start times of the drills people held (not aborted, not a bot's).
async fn held_drills(store: &Store) -> Result<Vec<Timestamp>, StoreError> {
    Ok(store
        .drill_history(200)
        .await?
        .into_iter()
        .filter(|d| d.status != DrillStatus::Aborted && !d.auto_respond)
        .map(|d| d.started_at)
        .collect())
}

/// Send one reminder and remember it.
async fn send(
    outlets: &Outlets,
    store: &Store,
    next: &ScheduledDrill,
    kind: neo_ir_core::incident::IncidentKind,
    channel: &str,
    now: Timestamp,
) -> Result<(), String> {
    let c = outlets
        .channels
        .get(channel)
        .ok_or_else(|| format!("no channel {channel:?}"))?;
    let (n, rendered) = reminder(next, kind, channel, now);
    c.send(&n, &rendered).await.map_err(|e| e.to_string())?;
    store
        .record_drill_reminder(&next.day, channel, now)
        .await
        .map_err(|e| format!("sent, but not remembered: {e}"))?;
    Ok(())
}

/// The reminder as a notification of the channels' kind: a drill "incident" (id 0, marked
/// `drill`) that carries the schedule's facts, and its text.
pub(crate) fn reminder(
    next: &ScheduledDrill,
    kind: neo_ir_core::incident::IncidentKind,
    channel: &str,
    now: Timestamp,
) -> (Notification, Rendered) {
    let when = next.at.strftime("%Y-%m-%d %H:%M UTC").to_string();
    let ic = next
        .commander
        .as_deref()
        .unwrap_or("not set (no [drills] commanders)");
    let people = if next.participants.is_empty() {
        "-".to_string()
    } else {
        next.participants.join(", ")
    };
    let title = format!("[DRILL] reminder: {} on {when}, IC {ic}", next.scenario);
    let text = format!(
        "**DRILL REMINDER** (an exercise: nothing is broken)\n\
         **When:** {when}\n\
         **Scenario:** {} ({kind})\n\
         **Incident commander:** {ic}\n\
         **Participants:** {people}\n\
         Start it with: neo-ir drill run {} --commander {}",
        next.scenario,
        next.scenario,
        next.commander.as_deref().unwrap_or("NAME"),
    );
    let mut incident = neo_ir_core::lifecycle::open(
        &Finding {
            key: format!("{}reminder:{}", mark::DRILL_PREFIX, next.day),
            kind,
            severity: Severity::P4,
            nodes: vec![],
            summary: title.clone(),
            evidence: json!({
                "drill": true,
                "drill_reminder": true,
                "drill_scenario": next.scenario,
                "drill_at": next.at,
                "commander": next.commander,
                "participants": next.participants,
            }),
        },
        now,
        &neo_ir_core::oncall::ResponseConfig::default(),
    );
    incident.id = 0;
    let event = TimelineEvent::new(now, EventType::Note, text.clone(), json!({}));
    let n = Notification {
        kind: MessageKind::Update,
        channel: channel.to_string(),
        incident,
        event,
        event_id: 0,
        idempotency_key: format!("neo-ir-drill-reminder-{}-{channel}", next.day),
        network: None,
        link: None,
    };
    (n, Rendered { title, text })
}

#[cfg(test)]
mod tests {
    //! Reminders against a real webhook receiver on port 0 and a real SQLite store; every
    //! wait is for a condition, with a deadline.

    use std::sync::Mutex;

    use neo_ir_core::config::Config;
    use neo_ir_core::drill::schedule::DrillSettings;
    use neo_ir_core::notify::{ChannelConfig, ChannelKind};
    use neo_ir_core::oncall::Schedule;

    use super::*;

    /// A webhook receiver that answers 500 to the first `fail` requests, then 200.
    async fn receiver(fail: usize) -> (String, Arc<Mutex<Vec<(u16, serde_json::Value)>>>) {
        let got: Arc<Mutex<Vec<(u16, serde_json::Value)>>> = Default::default();
        let seen = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let seen = seen.clone();
                async move {
                    let mut seen = seen.lock().unwrap();
                    let status = if seen.len() < fail { 500 } else { 200 };
                    seen.push((status, serde_json::from_str(&body).unwrap_or_default()));
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (url, got)
    }

    fn config(url: &str, store: &str) -> Config {
        let mut c = Config::with_defaults(vec![], store);
        c.notify.channels.push(ChannelConfig {
            name: "drill-room".into(),
            kind: ChannelKind::Webhook,
            url: Some(url.into()),
            secret: None,
            chat_id: None,
            email: None,
            timeout: Duration::from_secs(5),
            per_minute: 1000,
            templates: None,
            drills: true,
        });
        c.response.schedules.push(Schedule {
            name: "primary".into(),
            rotation: Duration::from_secs(7 * 86_400),
            start: "2026-01-05T09:00:00Z".parse().unwrap(),
            people: vec!["alice".into(), "bob".into()],
            overrides: vec![],
        });
        c.drills = Some(DrillSettings {
            commanders: Some("primary".into()),
            participants: vec!["carol".into(), "dave".into()],
            scenarios: vec!["node-crash".into(), "split-brain".into()],
            channels: vec!["drill-room".into()],
            ..DrillSettings::default()
        });
        c
    }

    /// Call `remind` until `f` holds (the sending runs in a task of its own).
    async fn until(
        what: &str,
        d: &mut Drills,
        store: &Store,
        cfg: &Config,
        outlets: &Arc<Outlets>,
        now: Timestamp,
        f: impl Fn(&Drills) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            d.remind(store, cfg, outlets, now).await.unwrap();
            if f(d) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn the_reminder_goes_out_once_retrying_a_failed_channel() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/r.db", dir.path().display());
        let store = Store::open(&url).await.unwrap();
        let (hook, got) = receiver(1).await;
        let cfg = config(&hook, &url);
        let outlets = Arc::new(Outlets::build(&cfg.notify).unwrap());
        // February 2026's drill: the 15th at 14:00 UTC, month 1 of the rotation: bob
        let t = |s: &str| s.parse::<Timestamp>().unwrap();

        // before the reminder window (3 days ahead): nothing
        let mut d = Drills::default();
        d.remind(&store, &cfg, &outlets, t("2026-02-12T13:00:00Z"))
            .await
            .unwrap();
        assert!(d.sending.is_none());

        // in it: the first attempt fails (500), a later round delivers it
        let now = t("2026-02-13T08:00:00Z");
        until("delivered", &mut d, &store, &cfg, &outlets, now, |d| {
            d.sent.contains("drill-room")
        })
        .await;
        {
            let got = got.lock().unwrap();
            assert_eq!(got.len(), 2, "{got:?}");
            assert_eq!((got[0].0, got[1].0), (500, 200));
            let body = &got[1].1;
            let text = body["text"].as_str().unwrap();
            for want in ["2026-02-15 14:00 UTC", "split-brain", "bob", "carol, dave"] {
                assert!(text.contains(want), "{want}: {text}");
            }
            assert!(body["title"].as_str().unwrap().starts_with("[DRILL]"));
            assert_eq!(body["incident"]["evidence"]["drill"], true);
            assert!(body["incident"]["key"]
                .as_str()
                .unwrap()
                .starts_with("drill:"));
        }
        assert_eq!(
            store.drill_reminders_sent("2026-02-15").await.unwrap(),
            ["drill-room"]
        );

        // once: later rounds, and another instance after a restart, send nothing more
        d.remind(&store, &cfg, &outlets, now).await.unwrap();
        assert!(d.sending.is_none());
        let mut restarted = Drills::default();
        restarted.remind(&store, &cfg, &outlets, now).await.unwrap();
        assert!(restarted.sending.is_none());
        assert_eq!(got.lock().unwrap().len(), 2);

        // March's drill has a reminder of its own
        let march = t("2026-03-13T08:00:00Z");
        until(
            "March delivered",
            &mut d,
            &store,
            &cfg,
            &outlets,
            march,
            |d| d.sent_day.as_deref() == Some("2026-03-15") && d.sent.contains("drill-room"),
        )
        .await;
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 3);
        let text = got[2].1["text"].as_str().unwrap();
        assert!(
            text.contains("node-crash") && text.contains("alice"),
            "{text}"
        );
    }
}
