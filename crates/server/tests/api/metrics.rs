//! `GET /metrics`: the incident KPIs in the OpenMetrics text format, from a store holding
//! hand-made incidents (opened, acknowledged, breached, resolved, a drill, an old one), read
//! back line by line; open unless reads are protected.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use neo_ir_core::incident::{Actor, Assessment, Change, Finding, IncidentKind, Severity};
use neo_ir_core::lifecycle::reconcile;
use neo_ir_core::respond;
use neo_ir_store::Store;

use super::{fetch, response, start, start_with, tokens};

fn finding(key: &str, kind: IncidentKind, severity: Severity, fault: Timestamp) -> Finding {
    Finding {
        key: key.into(),
        kind,
        severity,
        nodes: vec!["rpc-1".into()],
        summary: "test".into(),
        evidence: serde_json::json!({ "fault_started_at": fault }),
    }
}

/// One detection round in which only `f` fires (the other open incidents are left
/// undecided), as of `at`.
async fn fire(store: &Store, f: &Finding, at: Timestamp) {
    let open = store.open_incidents().await.unwrap();
    let a = Assessment {
        findings: vec![f.clone()],
        undecided: open.iter().map(|i| i.key.clone()).collect(),
    };
    for c in reconcile(&open, &a, at, &response(), &[]) {
        store.apply(&c).await.unwrap();
    }
}

async fn id_of(store: &Store, key: &str) -> i64 {
    let open = store.open_incidents().await.unwrap();
    open.iter().find(|i| i.key == key).unwrap().id
}

/// `name{labels} value` lines of an OpenMetrics text, by series.
fn series(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn metrics_from_the_stored_timelines() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let now = Timestamp::now();
    let ago = |mins: i64| now - SignedDuration::from_mins(mins);
    let who = Actor {
        who: "alice".into(),
        from: "cli".into(),
    };

    // P2 node_down opened 2 h ago, its fault 30 s earlier; acknowledged after 60 s,
    // resolved after 10 min
    let t = ago(120);
    let a = finding(
        "node_down:rpc-1",
        IncidentKind::NodeDown,
        Severity::P2,
        t - SignedDuration::from_secs(30),
    );
    fire(&store, &a, t).await;
    let id = id_of(&store, &a.key).await;
    let (inc, _) = store.incident(id).await.unwrap().unwrap();
    let m = respond::acknowledge(&inc, &who, t + SignedDuration::from_secs(60)).unwrap();
    let inc = store.apply(&Change::Update(m)).await.unwrap();
    let m = respond::resolve(&inc, None, None, &who, t + SignedDuration::from_mins(10)).unwrap();
    store.apply(&Change::Update(m)).await.unwrap();

    // P1 consensus opened 1 h ago, its fault 90 s earlier; nobody answers: the 15 min
    // response target passes, and it is still open
    let t = ago(60);
    let b = finding(
        "consensus_failure",
        IncidentKind::ConsensusFailure,
        Severity::P1,
        t - SignedDuration::from_secs(90),
    );
    fire(&store, &b, t).await;
    fire(&store, &b, t + SignedDuration::from_mins(16)).await;

    // a drill (open) and an incident opened 40 days ago (still open): neither is in the
    // 30-day numbers, the old one is open
    let d = finding(
        "drill:node_down:rpc-2",
        IncidentKind::NodeDown,
        Severity::P1,
        ago(10),
    );
    fire(&store, &d, ago(5)).await;
    let old = ago(40 * 24 * 60);
    let o = finding(
        "sync_failure:rpc-3",
        IncidentKind::SyncFailure,
        Severity::P3,
        old,
    );
    fire(&store, &o, old).await;

    let (base, _stop) = start(store.clone()).await;
    let (status, ct, body) = fetch(&base, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("# TYPE neo_ir_mttr_seconds gauge"), "{body}");
    let s = series(&body);
    let get = |k: &str| {
        *s.get(k)
            .unwrap_or_else(|| panic!("no series {k} in\n{body}"))
    };

    assert_eq!(
        get(r#"neo_ir_incidents_open{severity="P1",kind="consensus_failure"}"#),
        1.0
    );
    assert_eq!(
        get(r#"neo_ir_incidents_open{severity="P3",kind="sync_failure"}"#),
        1.0
    );
    assert_eq!(
        get(r#"neo_ir_incidents_open{severity="P2",kind="node_down"}"#),
        0.0
    );
    assert_eq!(
        get(r#"neo_ir_incidents_open{severity="P1",kind="node_down"}"#),
        0.0,
        "drills are not incidents"
    );
    assert_eq!(
        get(r#"neo_ir_incidents_total{severity="P2",kind="node_down"}"#),
        1.0
    );
    assert_eq!(
        get(r#"neo_ir_incidents_total{severity="P1",kind="consensus_failure"}"#),
        1.0
    );
    assert_eq!(
        get(r#"neo_ir_incidents_total{severity="P3",kind="sync_failure"}"#),
        0.0
    );
    assert_eq!(get(r#"neo_ir_mttd_seconds{severity="P2"}"#), 30.0);
    assert_eq!(get(r#"neo_ir_mttd_seconds{severity="P1"}"#), 90.0);
    assert_eq!(get(r#"neo_ir_mtta_seconds{severity="P2"}"#), 60.0);
    assert_eq!(get(r#"neo_ir_mttr_seconds{severity="P2"}"#), 600.0);
    assert!(
        !s.contains_key(r#"neo_ir_mtta_seconds{severity="P1"}"#),
        "no acknowledgement, no sample: {body}"
    );
    assert_eq!(
        get(r#"neo_ir_response_target_breaches_total{severity="P1"}"#),
        1.0
    );
    assert_eq!(
        get(r#"neo_ir_response_target_breaches_total{severity="P2"}"#),
        0.0
    );
    // every severity × kind series is there
    let open_series = s
        .keys()
        .filter(|k| k.starts_with("neo_ir_incidents_open{"))
        .count();
    assert_eq!(open_series, 4 * IncidentKind::ALL.len());
}

#[tokio::test]
async fn metrics_need_a_token_only_when_reads_are_protected() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let (base, _stop) = start_with(store.clone(), tokens()).await;
    assert_eq!(fetch(&base, "/metrics").await.0, 200);
    let mut auth = tokens();
    auth.protect_reads = true;
    let (base, _stop2) = start_with(store, auth).await;
    assert_eq!(fetch(&base, "/metrics").await.0, 401);
    let r = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth("r-secret-456")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
