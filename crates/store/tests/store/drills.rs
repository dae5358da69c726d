//! Drills on both backends: a drill recorded as it starts is active (for the watcher's
//! marking) from its start until it is scored, aborted or expires; a marked incident moves
//! through monitoring to resolution like any other; the score is stored once; the history
//! comes newest first; a reminder is recorded once per drill day and channel, and not at
//! all by a leader that lost its lease.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use neo_ir_core::debounce::{DebounceRules, Debouncer};
use neo_ir_core::drill::{self, mark};
use neo_ir_core::incident::{Assessment, IncidentKind, Severity, Status};
use neo_ir_core::kpis::is_drill;
use neo_ir_core::lifecycle::reconcile;
use neo_ir_store::{DrillStatus, Fence, NewDrill, Store, StoreError, SIMULATED};

use super::{databases, finding, response};

fn t0() -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap() // 2026-01-01T00:00:00Z
}

fn at(secs: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(secs)
}

fn new_drill(target: &str, nodes: &[&str], start: i64) -> NewDrill {
    NewDrill {
        scenario: "node-crash".into(),
        title: "An RPC node crashes".into(),
        kind: IncidentKind::NodeDown,
        target: target.into(),
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
        commander: Some("alice".into()),
        auto_respond: false,
        started_at: at(start),
        expires_at: at(start + 600),
    }
}

#[tokio::test]
async fn drills_are_recorded_marked_scored_and_listed() {
    for db in databases("drills").await {
        drills(&db.url).await;
        db.cleanup().await;
    }
}

async fn drills(url: &str) {
    let store = Store::open(url).await.unwrap();
    let sim = store
        .start_drill(&new_drill(SIMULATED, &[], 0))
        .await
        .unwrap();
    assert_eq!(sim.status, DrillStatus::Running);
    assert_eq!(sim.commander.as_deref(), Some("alice"));
    assert!(sim.seen_at.is_none() && sim.score.is_none() && sim.ended_at.is_none());
    let node = store
        .start_drill(&new_drill("rpc-9", &["rpc-9"], 100))
        .await
        .unwrap();

    // active from the start, until the expiry
    assert!(store.active_drills(at(-1)).await.unwrap().is_empty());
    let active = store.active_drills(at(150)).await.unwrap();
    assert_eq!(active.len(), 2);
    assert_eq!(active[0].id, sim.id);
    assert!(active[0].nodes.is_empty());
    assert_eq!(active[1].nodes, ["rpc-9"]);
    assert_eq!(
        store.active_drills(at(650)).await.unwrap().len(),
        1,
        "sim expired"
    );

    // the watcher notes it saw them, once
    store.mark_drills_seen(&[sim.id], at(1)).await.unwrap();
    store.mark_drills_seen(&[sim.id], at(5)).await.unwrap();
    assert_eq!(
        store.drill(sim.id).await.unwrap().unwrap().seen_at,
        Some(at(1))
    );

    // a marked incident, through the store, opens as a drill incident and resolves
    let mut debouncer = Debouncer::default();
    let rules = DebounceRules {
        clear_for: Duration::from_secs(2),
        ..Default::default()
    };
    let mut resolved = false;
    for s in 1..40 {
        let now = at(s);
        let raw = if s < 5 {
            Assessment {
                findings: vec![finding("node_down:rpc-1", Severity::P2)],
                ..Default::default()
            }
        } else {
            Assessment::default()
        };
        let a = debouncer.apply(raw, &rules, now);
        let open = store.open_incidents().await.unwrap();
        let drills = store.active_drills(now).await.unwrap();
        let a = mark::mark(a, &drills, &open);
        for c in reconcile(&open, &a, now, &response(), &[]) {
            store.apply(&c).await.unwrap();
        }
        if s == 3 {
            // the drill ends while its incident is open
            let (inc, _) = store.incident(1).await.unwrap().unwrap();
            assert_eq!(inc.key, "drill:node_down:rpc-1");
            assert!(is_drill(&inc) && inc.evidence["drill_id"] == sim.id);
            let sc = drill::find("node-crash").unwrap();
            let score = drill::score(
                &sc,
                at(0),
                &[store.incident(1).await.unwrap().unwrap()],
                &[],
            );
            let done = store.finish_drill(sim.id, &score, at(3)).await.unwrap();
            assert_eq!(done.status, DrillStatus::Scored);
            assert_eq!(done.points, Some(score.points));
            assert_eq!(done.score.as_ref().unwrap()["scenario"], "node-crash");
            assert_eq!(done.ended_at, Some(at(3)));
        }
        if store.open_incidents().await.unwrap().is_empty() {
            resolved = true;
            break;
        }
    }
    assert!(resolved, "the drill incident resolved");
    let (inc, timeline) = store.incident(1).await.unwrap().unwrap();
    assert_eq!(inc.status, Status::Resolved);
    assert!(timeline
        .iter()
        .any(|e| e.event_type.as_str() == "condition_cleared"));
    let all = store.list_incidents(Default::default()).await.unwrap();
    assert!(
        all.iter().all(|i| i.key.starts_with("drill:")),
        "no real incident: {all:?}"
    );

    // a scored drill ends once; it no longer marks
    let sc = drill::find("node-crash").unwrap();
    let score = drill::score(&sc, at(0), &[], &[]);
    match store.finish_drill(sim.id, &score, at(9)).await {
        Err(StoreError::DrillEnded { id, status }) => {
            assert_eq!((id, status), (sim.id, "scored"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store.abort_drill(999, "x", at(9)).await,
        Err(StoreError::NoSuchDrill(999))
    ));
    let aborted = store
        .abort_drill(node.id, "the agent refused service_stop", at(200))
        .await
        .unwrap();
    assert_eq!(aborted.status, DrillStatus::Aborted);
    assert_eq!(
        aborted.note.as_deref(),
        Some("the agent refused service_stop")
    );
    assert!(store.active_drills(at(300)).await.unwrap().is_empty());

    // newest first
    let h = store.drill_history(10).await.unwrap();
    assert_eq!(
        h.iter().map(|d| d.id).collect::<Vec<_>>(),
        [node.id, sim.id]
    );
    assert_eq!(h[0].target, "rpc-9");
    assert_eq!(store.drill_history(1).await.unwrap().len(), 1);
    store.close().await;
}

#[tokio::test]
async fn a_reminder_is_recorded_once_and_only_by_the_leader() {
    for db in databases("drill_reminders").await {
        reminders(&db.url).await;
        db.cleanup().await;
    }
}

async fn reminders(url: &str) {
    let store = Store::open(url).await.unwrap();
    let day = "2026-02-15";
    assert!(store.drill_reminders_sent(day).await.unwrap().is_empty());
    assert!(store
        .record_drill_reminder(day, "ops", at(0))
        .await
        .unwrap());
    assert!(!store
        .record_drill_reminder(day, "ops", at(5))
        .await
        .unwrap());
    assert!(store
        .record_drill_reminder(day, "mail", at(5))
        .await
        .unwrap());
    assert_eq!(
        store.drill_reminders_sent(day).await.unwrap(),
        ["mail", "ops"]
    );
    assert!(store
        .drill_reminders_sent("2026-03-15")
        .await
        .unwrap()
        .is_empty());

    // a leader that lost its lease records nothing
    let lease = Duration::from_secs(10);
    let a = store.try_lead("a", at(0), lease).await.unwrap().unwrap();
    let old = store.fenced(Fence {
        holder: "a".into(),
        epoch: a.epoch,
        lease,
    });
    assert!(old
        .record_drill_reminder("2026-03-15", "ops", at(1))
        .await
        .unwrap());
    store.try_lead("b", at(20), lease).await.unwrap().unwrap();
    assert!(matches!(
        old.record_drill_reminder("2026-04-15", "ops", at(21)).await,
        Err(StoreError::LostLease { .. })
    ));
    assert!(store
        .drill_reminders_sent("2026-04-15")
        .await
        .unwrap()
        .is_empty());
    store.close().await;
}
