//! What the KPIs read, on both backends: incidents opened since a time, each with its own
//! whole timeline in order, and the KPIs computed from them after a reopen (a restart).

use jiff::{SignedDuration, Timestamp};
use neo_ir_core::incident::{Actor, Assessment, Change, Severity};
use neo_ir_core::kpis;
use neo_ir_core::lifecycle::reconcile;
use neo_ir_core::respond;
use neo_ir_store::Store;

use super::{databases, finding, response};

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap() + SignedDuration::from_secs(secs)
}

/// Open an incident for `key` at `secs` the way the engine does, its fault 20 s earlier.
async fn open(store: &Store, key: &str, secs: i64) -> i64 {
    let mut f = finding(key, Severity::P2);
    f.evidence["fault_started_at"] = serde_json::json!(at(secs - 20));
    let a = Assessment {
        findings: vec![f],
        ..Default::default()
    };
    let changes = reconcile(&[], &a, at(secs), &response(), &[]);
    store.apply(&changes[0]).await.unwrap().id
}

#[tokio::test]
async fn incidents_since_with_their_timelines() {
    for db in databases("kpi_since").await {
        since(&db.url).await;
        db.cleanup().await;
    }
}

async fn since(url: &str) {
    let store = Store::open(url).await.unwrap();
    let old = open(&store, "node_down:rpc-1", 0).await;
    let a = open(&store, "node_down:rpc-2", 100).await;
    let b = open(&store, "node_down:rpc-3", 200).await;
    // b acknowledged 90 s after opening
    let (inc, _) = store.incident(b).await.unwrap().unwrap();
    let who = Actor {
        who: "alice".into(),
        from: "cli".into(),
    };
    let m = respond::acknowledge(&inc, &who, at(290)).unwrap();
    store.apply(&Change::Update(m)).await.unwrap();
    store.close().await;

    let store = Store::open(url).await.unwrap();
    let got = store.incidents_since(at(100)).await.unwrap();
    let ids: Vec<i64> = got.iter().map(|(i, _)| i.id).collect();
    assert_eq!(
        ids,
        [a, b],
        "opened at or after the time, oldest first; not {old}"
    );
    for (inc, timeline) in &got {
        let (_, whole) = store.incident(inc.id).await.unwrap().unwrap();
        assert_eq!(
            timeline, &whole,
            "each incident gets its own whole timeline"
        );
        assert_eq!(timeline[0].event_type, "opened");
    }
    let r = kpis::report(&got, at(100), at(1000));
    assert_eq!(r.overall.count, 2);
    assert_eq!(r.overall.mttd.mean_ms, Some(20_000));
    assert_eq!(r.overall.mtta.samples, 1);
    assert_eq!(r.overall.mtta.mean_ms, Some(90_000));
    assert!(store.incidents_since(at(201)).await.unwrap().is_empty());
    store.close().await;
}
