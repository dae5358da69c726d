//! Overdue action item reminders on simulated time, through the whole path: the leader's
//! round (`reviews::remind_overdue`) writes the reminder event, the router queues it for the
//! incident's route, the dispatcher sends it to a real webhook receiver on port 0. An item
//! overdue on four days yields exactly four reminders, one a day, however often the
//! round runs (every 20 simulated minutes) and across a restart; none once it is done. The incident is reviewed by then
//! (the items are worked on after the review).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use neo_ir_core::clock::{Clock, ManualClock};
use neo_ir_core::incident::{Actor, Assessment, Finding, IncidentKind, Severity, Status};
use neo_ir_core::lifecycle::reconcile;
use neo_ir_core::notify::{route, NotifySettings};
use neo_ir_core::oncall::ResponseConfig;
use neo_ir_core::respond;
use neo_ir_core::review::Priority;
use neo_ir_store::{ActionItemUpdate, Audit, NewActionItem, Store};
use neo_ir_watch::dispatch::{Dispatcher, Outlets};
use serde_json::Value;

/// A webhook receiver on port 0 that keeps every body it gets.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let keep = keep.clone();
            async move {
                keep.lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

/// The notification settings as an operator writes them: one webhook, one route.
fn notify(url: &str) -> NotifySettings {
    let toml = format!(
        "[[nodes]]\nname = \"rpc-1\"\nrpc = \"http://127.0.0.1:1\"\nrole = \"rpc\"\n\
         [[notify.channels]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"{url}\"\n\
         [[notify.routes]]\nchannels = [\"ops\"]\n"
    );
    neo_ir_core::config::parse(&toml, Path::new("neo-ir.toml"))
        .expect("the config parses")
        .notify
}

fn carol() -> Actor {
    Actor {
        who: "carol".into(),
        from: "cli".into(),
    }
}

/// A P2 node_down opened and resolved by carol, with one action item due the day after
/// `clock`'s, and its review complete: the incident is reviewed.
async fn reviewed_with_an_item(store: &Store, clock: &ManualClock) -> (i64, i64) {
    let cfg = ResponseConfig {
        escalation: vec![],
        ..Default::default()
    };
    let a = Assessment {
        findings: vec![Finding {
            key: "node_down:rpc-1".into(),
            kind: IncidentKind::NodeDown,
            severity: Severity::P2,
            nodes: vec!["rpc-1".into()],
            summary: "rpc-1 is down".into(),
            evidence: serde_json::json!({}),
        }],
        ..Default::default()
    };
    let opened = store
        .apply(&reconcile(&[], &a, clock.now(), &cfg, &[])[0])
        .await
        .unwrap();
    clock.advance(Duration::from_secs(3600));
    let audit = Audit::new(&carol(), "transition", serde_json::json!({}));
    store
        .mutate(opened.id, &audit, |i| {
            respond::resolve(i, None, Some("a full disk"), &carol(), clock.now())
        })
        .await
        .unwrap()
        .unwrap();
    let tomorrow = clock
        .now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .tomorrow()
        .unwrap();
    let item = store
        .add_action_item(
            opened.id,
            &NewActionItem {
                action: "alert on disk usage above 80%".into(),
                owner: "dave".into(),
                due: Some(tomorrow),
                priority: Priority::High,
                runbook: Some("node_down".into()),
            },
            &carol(),
            clock.now(),
        )
        .await
        .unwrap()
        .unwrap();
    store
        .complete_review(opened.id, &carol(), clock.now())
        .await
        .unwrap()
        .unwrap();
    (opened.id, item.id)
}

/// One leader round's part: reminders, routing, and the dispatcher until nothing is due.
async fn round(store: &Store, clock: &ManualClock, notify: &NotifySettings, d: &mut Dispatcher) {
    neo_ir_watch::reviews::remind_overdue(store, clock.now())
        .await
        .unwrap();
    store
        .route_pending(500, clock.now(), |i, e, id| route(i, e, id, notify, None))
        .await
        .unwrap();
    while d.tick().await.unwrap().sent > 0 {}
}

fn reminders(got: &Mutex<Vec<Value>>) -> Vec<Value> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|v| v["event"]["type"] == "action_item_overdue")
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_overdue_item_is_reminded_once_a_day_on_the_incidents_channels() {
    let (url, got) = receiver().await;
    let notify = notify(&url);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/neo-ir.db", dir.path().display());
    let clock = Arc::new(ManualClock::at_epoch_2026());
    let outlets = Arc::new(Outlets::build(&notify).unwrap());
    let mut store = Store::open(&db).await.unwrap();
    let (incident, item) = reviewed_with_an_item(&store, &clock).await;
    let mut d = Dispatcher::new(
        store.clone(),
        notify.clone(),
        outlets.clone(),
        clock.clone(),
        None,
    );
    // due 2026-01-02: overdue from 2026-01-03 00:00 UTC. Rounds every 20 simulated minutes
    // from 2026-01-01 01:00 to 2026-01-06 00:40, a restart (a new process, the same
    // database) in the middle of 2026-01-04.
    let mut days = Vec::new();
    for step in 0..(5 * 72) {
        if step == 3 * 72 + 36 {
            store.close().await;
            store = Store::open(&db).await.unwrap();
            d = Dispatcher::new(
                store.clone(),
                notify.clone(),
                outlets.clone(),
                clock.clone(),
                None,
            );
        }
        round(&store, &clock, &notify, &mut d).await;
        let today = clock.now().to_zoned(jiff::tz::TimeZone::UTC).date();
        if reminders(&got).len() > days.len() {
            days.push(today.to_string());
        }
        clock.advance(Duration::from_secs(20 * 60));
    }
    assert_eq!(
        days,
        ["2026-01-03", "2026-01-04", "2026-01-05", "2026-01-06"],
        "one reminder a day once overdue"
    );
    let sent = reminders(&got);
    assert_eq!(sent.len(), 4, "{sent:#?}");
    let first = &sent[0];
    assert_eq!(first["kind"], "review");
    assert_eq!(first["incident"]["id"], incident);
    assert_eq!(first["incident"]["status"], "reviewed");
    assert_eq!(first["event"]["data"]["item"], item);
    assert_eq!(
        first["title"],
        format!("[P2] Action item overdue: incident #{incident} node_down review")
    );
    let text = first["text"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "Action item overdue: alert on disk usage above 80% (dave, due 2026-01-02, high \
             priority, runbook node_down) — incident #{incident} review, item {item}"
        )),
        "{text}"
    );
    assert_eq!(sent[3]["event"]["data"]["days_overdue"], 4);
    let (inc, timeline) = store.incident(incident).await.unwrap().unwrap();
    assert_eq!(inc.status, Status::Reviewed);
    assert_eq!(
        timeline
            .iter()
            .filter(|e| e.event_type == "action_item_overdue")
            .count(),
        4
    );

    // done: the reminders stop
    store
        .update_action_item(
            item,
            &ActionItemUpdate {
                done: Some(true),
                ..Default::default()
            },
            &carol(),
            clock.now(),
        )
        .await
        .unwrap()
        .unwrap();
    for _ in 0..(2 * 72) {
        round(&store, &clock, &notify, &mut d).await;
        clock.advance(Duration::from_secs(20 * 60));
    }
    assert_eq!(reminders(&got).len(), 4);
    assert!(store.pending_messages(10).await.unwrap().is_empty());
}
