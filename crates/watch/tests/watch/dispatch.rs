//! The outbox and its dispatcher on simulated time against a real webhook receiver on port
//! 0: a receiver down for 10 minutes then back gets every message, in order per incident,
//! none twice; a permanent refusal falls back to the next channel and says so on the
//! timeline; `Retry-After` is honoured.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use neo_ir_core::clock::{Clock, ManualClock};
use neo_ir_core::incident::{Assessment, Finding, IncidentKind, Severity};
use neo_ir_core::lifecycle::reconcile;
use neo_ir_core::notify::{route, ChannelConfig, ChannelKind, NotifySettings, Route};
use neo_ir_core::oncall::ResponseConfig;
use neo_ir_store::Store;
use neo_ir_watch::dispatch::{Dispatcher, Outlets};
use serde_json::Value;

/// A webhook receiver: answers `status` (200 when 0), records what it accepted.
#[derive(Clone, Default)]
struct Receiver {
    status: Arc<AtomicU16>,
    retry_after: Arc<Mutex<Option<String>>>,
    accepted: Arc<Mutex<Vec<Value>>>,
    refused: Arc<AtomicU16>,
}

impl Receiver {
    async fn start(&self) -> String {
        let me = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let me = me.clone();
                async move {
                    let status = me.status.load(Ordering::SeqCst);
                    if status != 0 {
                        me.refused.fetch_add(1, Ordering::SeqCst);
                        let mut h = HeaderMap::new();
                        if let Some(r) = me.retry_after.lock().unwrap().clone() {
                            h.insert("retry-after", r.parse().unwrap());
                        }
                        return (StatusCode::from_u16(status).unwrap(), h, "no").into_response();
                    }
                    let mut v: Value = serde_json::from_str(&body).unwrap();
                    v["idempotency_header"] = headers
                        .get("idempotency-key")
                        .map(|k| Value::String(k.to_str().unwrap().into()))
                        .unwrap_or(Value::Null);
                    me.accepted.lock().unwrap().push(v);
                    (StatusCode::OK, HeaderMap::new(), "ok").into_response()
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        format!("http://{addr}/hook")
    }

    fn keys(&self) -> Vec<String> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .map(|v| v["idempotency_key"].as_str().unwrap().to_string())
            .collect()
    }
}

fn webhook(name: &str, url: &str) -> ChannelConfig {
    ChannelConfig {
        name: name.into(),
        kind: ChannelKind::Webhook,
        url: Some(url.into()),
        secret: None,
        chat_id: None,
        email: None,
        timeout: Duration::from_secs(2),
        per_minute: 1000,
        templates: None,
        drills: false,
    }
}

fn settings(channels: Vec<ChannelConfig>, route_to: &[&str], fallback: &[&str]) -> NotifySettings {
    NotifySettings {
        channels,
        routes: vec![Route {
            severities: vec![],
            kinds: vec![],
            channels: route_to.iter().map(|s| s.to_string()).collect(),
            fallback: fallback.iter().map(|s| s.to_string()).collect(),
        }],
        max_attempts: 20,
        give_up_after: Duration::from_secs(3600),
        ..Default::default()
    }
}

fn finding(node: &str) -> Finding {
    Finding {
        key: format!("node_down:{node}"),
        kind: IncidentKind::NodeDown,
        severity: Severity::P2,
        nodes: vec![node.into()],
        summary: format!("{node} is down"),
        evidence: serde_json::json!({"error_kind": "refused"}),
    }
}

/// Three incidents that open, clear and resolve: alerts, pages, updates and resolutions,
/// routed into the outbox.
async fn incidents(store: &Store, clock: &ManualClock, notify: &NotifySettings) {
    let cfg = ResponseConfig {
        stability_window: Duration::from_secs(60),
        ..Default::default()
    };
    let firing = Assessment {
        findings: vec![finding("a"), finding("b"), finding("c")],
        ..Default::default()
    };
    for a in [&firing, &Assessment::default(), &Assessment::default()] {
        let open = store.open_incidents().await.unwrap();
        for c in reconcile(&open, a, clock.now(), &cfg, &[]) {
            store.apply(&c).await.unwrap();
        }
        store
            .route_pending(500, clock.now(), |i, e, id| {
                route(i, e, id, notify, Some("TestNet"))
            })
            .await
            .unwrap();
        clock.advance(Duration::from_secs(61));
    }
}

/// One incident opened (no escalation), its alert queued, and a dispatcher on simulated time.
async fn one_alert_queued(notify: &NotifySettings) -> (Store, Arc<ManualClock>, Dispatcher) {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let clock = Arc::new(ManualClock::at_epoch_2026());
    let cfg = ResponseConfig {
        escalation: vec![],
        ..Default::default()
    };
    let a = Assessment {
        findings: vec![finding("a")],
        ..Default::default()
    };
    for c in reconcile(&[], &a, clock.now(), &cfg, &[]) {
        store.apply(&c).await.unwrap();
    }
    store
        .route_pending(500, clock.now(), |i, e, id| route(i, e, id, notify, None))
        .await
        .unwrap();
    let outlets = Arc::new(Outlets::build(notify).unwrap());
    let d = Dispatcher::new(store.clone(), notify.clone(), outlets, clock.clone(), None);
    (store, clock, d)
}

#[tokio::test]
async fn a_receiver_down_for_10_minutes_gets_everything_in_order_once() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let notify = settings(vec![webhook("hook", &url)], &["hook"], &[]);
    let store = Store::open("sqlite::memory:").await.unwrap();
    let clock = Arc::new(ManualClock::at_epoch_2026());
    receiver.status.store(503, Ordering::SeqCst);
    incidents(&store, &clock, &notify).await;
    let queued = store.pending_messages(100).await.unwrap().len();
    assert_eq!(
        queued, 15,
        "per incident: alert, page, cleared update, resolution, review notice (P2)"
    );

    let outlets = Arc::new(Outlets::build(&notify).unwrap());
    let mut d = Dispatcher::new(store.clone(), notify.clone(), outlets, clock.clone(), None);
    // 15 simulated minutes in 5 s steps; the receiver is back after 10 (retries wait at
    // most a minute, so everything is through a minute later)
    let started = clock.now();
    for step in 0..180 {
        if step == 120 {
            receiver.status.store(0, Ordering::SeqCst);
        }
        d.tick().await.unwrap();
        clock.advance(Duration::from_secs(5));
    }
    assert!(
        receiver.refused.load(Ordering::SeqCst) >= 10,
        "it was tried while down"
    );
    let keys = receiver.keys();
    let unique: std::collections::BTreeSet<&String> = keys.iter().collect();
    assert_eq!(keys.len(), 15, "every message: {keys:?}");
    assert_eq!(unique.len(), 15, "none twice: {keys:?}");
    // in order per incident: event ids increase
    for id in 1..=3 {
        let kinds: Vec<String> = receiver
            .accepted
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["incident"]["id"] == id)
            .map(|v| v["kind"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            kinds,
            ["alert", "page", "update", "resolved", "review"],
            "incident {id}"
        );
    }
    let left = store.pending_messages(100).await.unwrap();
    assert!(left.is_empty(), "left pending: {left:?}");
    for id in 1..=3 {
        for m in store.messages(id).await.unwrap() {
            assert_eq!(m.status, "sent");
            assert!(m.sent_at.unwrap() > started + jiff::SignedDuration::from_mins(10));
            assert_eq!(m.notification.network.as_deref(), Some("TestNet"));
        }
    }
    // a second pass sends nothing again
    for _ in 0..5 {
        d.tick().await.unwrap();
        clock.advance(Duration::from_secs(60));
    }
    assert_eq!(receiver.keys().len(), 15);
}

#[tokio::test]
async fn a_permanent_refusal_falls_back_and_says_so_on_the_timeline() {
    let primary = Receiver::default();
    let backup = Receiver::default();
    let (p_url, b_url) = (primary.start().await, backup.start().await);
    primary.status.store(400, Ordering::SeqCst);
    let notify = settings(
        vec![webhook("primary", &p_url), webhook("backup", &b_url)],
        &["primary"],
        &["backup"],
    );
    let (store, clock, mut d) = one_alert_queued(&notify).await;
    let first = d.tick().await.unwrap();
    assert_eq!(first.failed, 1, "400: no retry");
    assert_eq!(primary.refused.load(Ordering::SeqCst), 1);
    d.tick().await.unwrap();
    assert_eq!(backup.keys(), ["neo-ir-1-1-backup"]);
    let (_, timeline) = store.incident(1).await.unwrap().unwrap();
    let failed = timeline
        .iter()
        .find(|e| e.event_type == "notification_failed")
        .expect("the failure is on the timeline");
    assert_eq!(failed.data["fallback"], "backup");
    assert!(failed.message.contains("400"), "{}", failed.message);
    let rows = store.messages(1).await.unwrap();
    assert_eq!(
        rows.iter().map(|m| m.status.as_str()).collect::<Vec<_>>(),
        ["failed", "sent"]
    );
    assert_eq!(rows[1].fallback_of, Some(rows[0].id));
    // the failure event is internal: routing it queues nothing
    let queued = store
        .route_pending(500, clock.now(), |i, e, id| route(i, e, id, &notify, None))
        .await
        .unwrap();
    assert_eq!(queued, 0);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    receiver.status.store(429, Ordering::SeqCst);
    *receiver.retry_after.lock().unwrap() = Some("30".into());
    let notify = settings(vec![webhook("hook", &url)], &["hook"], &[]);
    let (store, clock, mut d) = one_alert_queued(&notify).await;
    assert_eq!(d.tick().await.unwrap().retried, 1);
    let m = &store.pending_messages(10).await.unwrap()[0];
    assert_eq!(
        m.next_attempt_at,
        clock.now() + jiff::SignedDuration::from_secs(30)
    );
    receiver.status.store(0, Ordering::SeqCst);
    clock.advance(Duration::from_secs(29));
    assert_eq!(d.tick().await.unwrap().sent, 0, "not before Retry-After");
    clock.advance(Duration::from_secs(1));
    assert_eq!(d.tick().await.unwrap().sent, 1);
}
