//! Drills stay off the public status page: `GET /api/v1/status` and `GET /status` leave out
//! drill incidents (a key under `drill:` or `evidence.drill`), open or resolved, in the
//! overall state, the lists, the node states and the uptime; the authenticated incident
//! list still shows them, marked. Real server on port 0, real SQLite store.

use jiff::{SignedDuration, Timestamp};
use neo_ir_core::incident::{Assessment, Finding, IncidentKind, Severity};
use neo_ir_core::lifecycle::reconcile;
use neo_ir_store::Store;
use serde_json::{json, Value};

use super::{fetch, response, start, start_with, tokens};

fn finding(key: &str, kind: IncidentKind, severity: Severity, node: &str, drill: bool) -> Finding {
    let mut evidence = json!({"error_kind": "refused"});
    if drill {
        evidence["drill"] = json!(true);
    }
    Finding {
        key: key.into(),
        kind,
        severity,
        nodes: vec![node.into()],
        summary: format!("{node} test finding"),
        evidence,
    }
}

/// One round in which `firing` fire and every other open incident is undecided (left as
/// it is).
async fn fire(store: &Store, firing: &[&Finding], at: Timestamp) {
    let open = store.open_incidents().await.unwrap();
    let a = Assessment {
        findings: firing.iter().map(|f| (*f).clone()).collect(),
        undecided: open
            .iter()
            .map(|i| i.key.clone())
            .filter(|k| !firing.iter().any(|f| &f.key == k))
            .collect(),
    };
    for c in reconcile(&open, &a, at, &response(), &[]) {
        store.apply(&c).await.unwrap();
    }
}

async fn id_of(store: &Store, key: &str) -> i64 {
    let open = store.open_incidents().await.unwrap();
    open.iter()
        .find(|i| i.key == key)
        .unwrap_or_else(|| panic!("no open {key}"))
        .id
}

/// Node views of a 2 + 2 fleet, all answering.
async fn views(store: &Store, now: Timestamp) {
    let view = |name: &str, role: &str| {
        serde_json::from_value::<neo_ir_core::fleet::NodeView>(json!({
            "name": name, "role": role, "state": "ok", "height": 500, "lag": 0,
            "network": 894_710_606, "consecutive_failures": 0,
        }))
        .unwrap()
    };
    let v = [
        view("validator-1", "validator"),
        view("validator-2", "validator"),
        view("rpc-1", "rpc"),
        view("rpc-2", "rpc"),
    ];
    store.save_nodes(&v, now).await.unwrap();
}

/// An open P1 drill (by key) on validator-1, an open P2 drill (by evidence) on rpc-2, and
/// a resolved drill node_down of rpc-1 an hour ago.
async fn drills(store: &Store, now: Timestamp) -> Vec<i64> {
    let ago = |mins: i64| now - SignedDuration::from_mins(mins);
    let old = finding(
        "drill:node_down:rpc-1",
        IncidentKind::NodeDown,
        Severity::P2,
        "rpc-1",
        false,
    );
    fire(store, &[&old], ago(120)).await;
    let old_id = id_of(store, &old.key).await;
    // clear (nothing else is open yet), then stable through the one-second window
    for at in [ago(60) - SignedDuration::from_secs(1), ago(60)] {
        let open = store.open_incidents().await.unwrap();
        for c in reconcile(&open, &Assessment::default(), at, &response(), &[]) {
            store.apply(&c).await.unwrap();
        }
    }
    let (i, _) = store.incident(old_id).await.unwrap().unwrap();
    assert!(i.resolved_at.is_some(), "{i:?}");

    let stall = finding(
        "drill:consensus_failure",
        IncidentKind::ConsensusFailure,
        Severity::P1,
        "validator-1",
        false,
    );
    fire(store, &[&stall], ago(10)).await;
    let lag = finding(
        "sync_failure:rpc-2",
        IncidentKind::SyncFailure,
        Severity::P2,
        "rpc-2",
        true,
    );
    fire(store, &[&stall, &lag], ago(5)).await;
    vec![
        old_id,
        id_of(store, &stall.key).await,
        id_of(store, &lag.key).await,
    ]
}

#[tokio::test]
async fn drills_never_reach_the_public_status() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond()).unwrap();
    let ids = drills(&store, now).await;
    views(&store, now).await;
    let (base, _stop) = start(store.clone()).await;

    let (s, _, body) = fetch(&base, "/api/v1/status").await;
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["overall"], "operational", "only drills are open: {v}");
    assert_eq!(v["open"], json!([]));
    assert_eq!(v["resolved_30d"], json!([]));
    for g in v["groups"].as_array().unwrap() {
        assert_eq!(g["state"], "operational", "{g}");
        for n in g["nodes"].as_array().unwrap() {
            assert_eq!(
                (&n["state"], &n["uptime_30d_percent"]),
                (&json!("operational"), &json!(100.0)),
                "a drill's node_down is no downtime: {n}"
            );
        }
    }
    assert!(!body.contains("drill"), "{body}");
    let (s, _, html) = fetch(&base, "/status").await;
    assert_eq!(s, 200);
    assert!(html.contains("All systems operational"), "{html}");
    assert!(html.contains("No open incidents."), "{html}");
    for id in &ids {
        assert!(
            !html.contains(&format!("#{id} ")),
            "drill #{id} on the page: {html}"
        );
    }
    assert!(!html.to_lowercase().contains("drill"), "{html}");
}

#[tokio::test]
async fn real_incidents_show_beside_hidden_drills_and_the_api_lists_both() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond()).unwrap();
    let drill_ids = drills(&store, now).await;
    // a real P2 on rpc-1, opened after the drills
    let real = finding(
        "node_down:rpc-1",
        IncidentKind::NodeDown,
        Severity::P2,
        "rpc-1",
        false,
    );
    fire(&store, &[&real], now - SignedDuration::from_mins(2)).await;
    let real_id = id_of(&store, &real.key).await;
    views(&store, now).await;
    let mut auth = tokens();
    auth.protect_reads = true;
    let (base, _stop) = start_with(store.clone(), auth).await;

    let (_, _, body) = fetch(&base, "/api/v1/status").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["overall"], "partial_outage",
        "the real P2 sets it, not the P1 drill: {v}"
    );
    let open: Vec<i64> = v["open"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(open, [real_id]);
    assert_eq!(v["resolved_30d"], json!([]));
    let node = |name: &str| {
        v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["nodes"].as_array().unwrap())
            .find(|n| n["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        node("rpc-1")["state"],
        "degraded",
        "the real incident names it"
    );
    assert_eq!(
        node("validator-1")["state"],
        "operational",
        "only a drill names it"
    );
    assert_eq!(
        node("rpc-2")["state"],
        "operational",
        "only a drill names it"
    );
    let (_, _, html) = fetch(&base, "/status").await;
    assert!(html.contains(&format!("#{real_id} Node down")), "{html}");
    assert!(html.contains("Partial outage"), "{html}");
    for id in &drill_ids {
        assert!(
            !html.contains(&format!("#{id} ")),
            "drill #{id} on the page: {html}"
        );
    }

    // the authenticated list keeps the drills, marked by their key or evidence
    let list = reqwest::Client::new()
        .get(format!("{base}/api/v1/incidents?status=all"))
        .bearer_auth("r-secret-456")
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let list: Value = list.json().await.unwrap();
    let incidents = list["incidents"].as_array().unwrap();
    let mut ids: Vec<i64> = incidents
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    let mut want = drill_ids.clone();
    want.push(real_id);
    want.sort();
    assert_eq!(ids, want);
    for i in incidents {
        let marked =
            i["key"].as_str().unwrap().starts_with("drill:") || i["evidence"]["drill"] == true;
        assert_eq!(marked, i["id"] != real_id, "{i}");
    }
}
