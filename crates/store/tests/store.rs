//! The store against real databases, every test on both backends: a SQLite file, and a
//! fresh database on the PostgreSQL server at 127.0.0.1:5432 (`NEO_IR_TEST_POSTGRES`
//! overrides the URL; when no server answers, the PostgreSQL half is skipped with a printed
//! reason). Changes with their timeline, one open incident per cause, survival across
//! reopen (a restart), node views.

use jiff::Timestamp;
use neo_ir_core::clock::{Clock, ManualClock};
use neo_ir_core::fleet::NodeView;
use neo_ir_core::incident::{
    reconcile, Assessment, Change, Finding, IncidentKind, Severity, Status,
};
use neo_ir_core::Role;
use neo_ir_store::{Dialect, ListFilter, Store};
use sqlx::Connection;
use std::time::Duration;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// One database a test runs on.
struct Db {
    url: String,
    /// The SQLite file's directory, removed when dropped.
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL server's maintenance URL and the database made for this test.
    made: Option<(String, String)>,
}

impl Db {
    /// Drop the PostgreSQL database made for the test.
    async fn cleanup(self) {
        if let Some((admin, name)) = &self.made {
            if let Ok(mut c) = sqlx::PgConnection::connect(admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c)
                    .await;
            }
        }
    }
}

/// A fresh database on each backend for the test `name`.
async fn databases(name: &str) -> Vec<Db> {
    let dir = tempfile::tempdir().unwrap();
    let mut dbs = vec![Db {
        url: format!("sqlite://{}/neo-ir.db", dir.path().display()),
        _dir: Some(dir),
        made: None,
    }];
    let admin = std::env::var("NEO_IR_TEST_POSTGRES").unwrap_or_else(|_| POSTGRES.to_string());
    let connected =
        tokio::time::timeout(Duration::from_secs(3), sqlx::PgConnection::connect(&admin)).await;
    let mut conn = match connected {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            eprintln!("skipping the PostgreSQL half of {name}: no server at {admin}: {e}");
            return dbs;
        }
        Err(_) => {
            eprintln!("skipping the PostgreSQL half of {name}: {admin} did not answer within 3 s");
            return dbs;
        }
    };
    // databases left by test runs that died mid-test (their process is gone)
    let stale: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'neo_ir_test_%'")
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    for (db,) in stale {
        let pid = db.rsplit('_').nth(1).unwrap_or_default();
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .execute(&mut conn)
                .await;
        }
    }
    let unique = format!(
        "neo_ir_test_{name}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    sqlx::query(&format!("CREATE DATABASE {unique}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    dbs.push(Db {
        url: format!("{base}/{unique}"),
        _dir: None,
        made: Some((admin.clone(), unique)),
    });
    dbs
}

fn finding(key: &str, sev: Severity) -> Finding {
    Finding {
        key: key.into(),
        kind: IncidentKind::NodeDown,
        severity: sev,
        nodes: vec!["rpc-1".into()],
        summary: "rpc-1 is down".into(),
        evidence: serde_json::json!({"error_kind": "refused"}),
    }
}

async fn step(store: &Store, a: &Assessment, now: Timestamp) -> Vec<Change> {
    let open = store.open_incidents().await.unwrap();
    let changes = reconcile(&open, a, now);
    for c in &changes {
        store.apply(c).await.unwrap();
    }
    changes
}

#[tokio::test]
async fn incident_lifecycle_survives_reopen() {
    for db in databases("lifecycle").await {
        lifecycle(&db.url).await;
        db.cleanup().await;
    }
}

async fn lifecycle(url: &str) {
    let clock = ManualClock::at_epoch_2026();
    let firing = Assessment {
        findings: vec![finding("node_down:rpc-1", Severity::P2)],
        ..Default::default()
    };

    let store = Store::open(url).await.unwrap();
    step(&store, &firing, clock.now()).await;
    clock.advance(Duration::from_secs(1));
    assert!(step(&store, &firing, clock.now()).await.is_empty());
    let first = store.open_incidents().await.unwrap();
    assert_eq!(first.len(), 1);
    store.close().await;

    // "restart": a new handle on the same file resumes the same incident
    let store = Store::open(url).await.unwrap();
    let mut raised = firing.clone();
    raised.findings[0].severity = Severity::P1;
    clock.advance(Duration::from_secs(1));
    step(&store, &raised, clock.now()).await;
    let open = store.open_incidents().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, first[0].id, "same incident after reopen");
    assert_eq!(open[0].severity, Severity::P1);

    clock.advance(Duration::from_secs(3));
    step(&store, &Assessment::default(), clock.now()).await;
    assert!(store.open_incidents().await.unwrap().is_empty());
    let all = store
        .list_incidents(ListFilter {
            all: true,
            limit: 10,
            before_id: None,
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, Status::Resolved);
    assert_eq!(all[0].resolved_at, Some(clock.now()));

    let (inc, timeline) = store.incident(first[0].id).await.unwrap().unwrap();
    assert_eq!(inc.id, first[0].id);
    let types: Vec<&str> = timeline.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["opened", "severity_raised", "resolved"]);
    assert!(store.incident(9999).await.unwrap().is_none());
}

#[tokio::test]
async fn database_refuses_a_second_open_incident_for_one_cause() {
    for db in databases("one_open").await {
        one_open_per_cause(&db.url).await;
        db.cleanup().await;
    }
    // and the in-memory SQLite store behaves the same
    one_open_per_cause("sqlite::memory:").await;
}

async fn one_open_per_cause(url: &str) {
    let store = Store::open(url).await.unwrap();
    let now = Timestamp::from_second(1_767_225_600).unwrap();
    let a = Assessment {
        findings: vec![finding("node_down:rpc-1", Severity::P2)],
        ..Default::default()
    };
    let changes = reconcile(&[], &a, now);
    store.apply(&changes[0]).await.unwrap();
    // a buggy or racing writer tries to open it again
    assert!(store.apply(&changes[0]).await.is_err());
    assert_eq!(store.open_incidents().await.unwrap().len(), 1);
}

#[tokio::test]
async fn node_views_and_heights_round_trip() {
    for db in databases("views").await {
        views_round_trip(&db.url).await;
        db.cleanup().await;
    }
}

async fn views_round_trip(url: &str) {
    let store = Store::open(url).await.unwrap();
    let since = Timestamp::from_second(1_767_225_600).unwrap();
    let view = NodeView {
        name: "validator-1".into(),
        role: Role::Validator,
        state: "ok".into(),
        height: Some(42),
        lag: Some(0),
        height_since: Some(since),
        connections: Some(6),
        latency_ms: Some(2),
        user_agent: Some("/neo-rs:0.14.0/".into()),
        network: Some(894710606),
        msperblock: Some(1000),
        header_index: Some(42),
        header_time_ms: Some(1_767_225_600_000),
        header_primary: Some(2),
        error_kind: None,
        error: None,
        consecutive_failures: 0,
        last_probe_at: Some(since),
        last_ok_at: Some(since),
        median_latency_ms: Some(2),
        metrics: None,
        host: None,
    };
    store
        .save_nodes(std::slice::from_ref(&view), since)
        .await
        .unwrap();
    store
        .save_nodes(std::slice::from_ref(&view), since)
        .await
        .unwrap();
    assert_eq!(store.nodes().await.unwrap(), vec![view.clone()]);
    let h = store.stored_heights().await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!((h[0].height, h[0].since), (42, since));

    // many nodes in one save (one statement): updated in place, none lost
    let mut views: Vec<NodeView> = (0..1000)
        .map(|i| NodeView {
            name: format!("rpc-{i:04}"),
            height: (i % 2 == 0).then_some(i as u64),
            ..view.clone()
        })
        .collect();
    store.save_nodes(&views, since).await.unwrap();
    views[7].state = "down".into();
    views[8].height = Some(9_999);
    store.save_nodes(&views, since).await.unwrap();
    let stored = store.nodes().await.unwrap();
    assert_eq!(stored.len(), 1001);
    assert_eq!(stored[..1000], views[..]);
    let heights = store.stored_heights().await.unwrap();
    assert!(heights
        .iter()
        .any(|h| h.node == "rpc-0008" && h.height == 9_999));
    assert!(
        !heights.iter().any(|h| h.node == "rpc-0007"),
        "no height, no row"
    );

    // a node removed from the configuration disappears from the views
    store.retain_nodes(&["validator-1".into()]).await.unwrap();
    assert_eq!(store.nodes().await.unwrap().len(), 1);
    store.retain_nodes(&["rpc-9".into()]).await.unwrap();
    assert!(store.nodes().await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_url_is_a_clear_error() {
    let e = Store::open("mysql://x").await.unwrap_err();
    assert!(e.to_string().contains("unsupported store URL"), "{e}");
    // a PostgreSQL URL nobody answers: an error naming the URL, never the password
    let e = Store::open("postgres://neo:hunter2@127.0.0.1:1/neo")
        .await
        .unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("127.0.0.1:1/neo"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn placeholders_are_numbered_for_postgres() {
    let sql = "SELECT * FROM incidents WHERE id < ? AND status <> 'resolved' LIMIT ?";
    assert_eq!(Dialect::Sqlite.sql(sql), sql);
    assert_eq!(
        Dialect::Postgres.sql(sql),
        "SELECT * FROM incidents WHERE id < $1 AND status <> 'resolved' LIMIT $2"
    );
    assert_eq!(Dialect::of_url("postgresql://x/y"), Some(Dialect::Postgres));
    assert_eq!(Dialect::of_url("sqlite::memory:"), Some(Dialect::Sqlite));
    assert_eq!(Dialect::of_url("mysql://x"), None);
}

#[tokio::test]
async fn acknowledgement_and_response_target_breaches_are_recorded_once() {
    for db in databases("ack").await {
        ack_and_breach(&db.url).await;
        db.cleanup().await;
    }
}

async fn ack_and_breach(url: &str) {
    use neo_ir_core::incident::Actor;
    use neo_ir_store::Ack;
    let store = Store::open(url).await.unwrap();
    let clock = ManualClock::at_epoch_2026();
    let t0 = clock.now();
    let min = |m: i64| t0 + jiff::SignedDuration::from_mins(m);
    let firing = Assessment {
        findings: vec![
            finding("node_down:a", Severity::P1),
            finding("node_down:b", Severity::P3),
            finding("node_down:c", Severity::P3),
        ],
        ..Default::default()
    };
    step(&store, &firing, t0).await;
    let open = store.open_incidents().await.unwrap();
    let by_key = |k: &str| open.iter().find(|i| i.key == k).unwrap().clone();
    let (a, b, c) = (
        by_key("node_down:a"),
        by_key("node_down:b"),
        by_key("node_down:c"),
    );
    assert_eq!(a.ack_due_at, Some(min(15)), "P1: 15 min");
    assert_eq!(b.ack_due_at, Some(min(120)), "P3: 2 h");

    // raising the severity before anyone acknowledged moves the deadline
    let mut raised = firing.clone();
    raised.findings[2].severity = Severity::P1;
    step(&store, &raised, min(1)).await;
    let (c_now, _) = store.incident(c.id).await.unwrap().unwrap();
    assert_eq!(c_now.ack_due_at, Some(min(15)));

    let alice = Actor {
        who: "alice".into(),
        from: "cli".into(),
    };
    assert!(store.record_breaches(min(14)).await.unwrap().is_empty());
    assert!(matches!(
        store.acknowledge(b.id, &alice, min(10)).await.unwrap(),
        Ack::Done(_)
    ));
    assert!(matches!(
        store.acknowledge(b.id, &alice, min(11)).await.unwrap(),
        Ack::Already(_)
    ));
    let breached: Vec<i64> = store
        .record_breaches(min(16))
        .await
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(breached, [a.id, c.id]);
    assert!(
        store.record_breaches(min(17)).await.unwrap().is_empty(),
        "once"
    );

    let (_, tl_a) = store.incident(a.id).await.unwrap().unwrap();
    let types: Vec<&str> = tl_a.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["opened", "response_target_breached"]);
    let (b_now, tl_b) = store.incident(b.id).await.unwrap().unwrap();
    assert_eq!(b_now.acked_by.as_deref(), Some("alice"));
    assert_eq!(b_now.acked_at, Some(min(10)));
    let acked = tl_b.last().unwrap();
    assert_eq!(acked.event_type, "acknowledged");
    assert_eq!(acked.data["within_target"], true);

    // late acknowledgement is recorded as such
    store.acknowledge(a.id, &alice, min(20)).await.unwrap();
    let (_, tl_a) = store.incident(a.id).await.unwrap().unwrap();
    assert_eq!(tl_a.last().unwrap().data["within_target"], false);

    assert!(matches!(
        store.acknowledge(999_999, &alice, min(21)).await,
        Err(neo_ir_store::StoreError::NoSuchIncident(999_999))
    ));
    // a resolved incident has nothing to acknowledge, but still takes notes
    step(&store, &Assessment::default(), min(30)).await;
    assert!(matches!(
        store.acknowledge(c.id, &alice, min(31)).await.unwrap(),
        Ack::Resolved(_)
    ));
    let note = neo_ir_core::incident::note_event("root cause: disk full", &alice, min(32)).unwrap();
    store.add_event(c.id, &note).await.unwrap();
    let (_, tl_c) = store.incident(c.id).await.unwrap().unwrap();
    assert_eq!(tl_c.last().unwrap(), &note);
    assert!(matches!(
        store.add_event(999_999, &note).await,
        Err(neo_ir_store::StoreError::NoSuchIncident(999_999))
    ));
    store.close().await;
}

#[tokio::test]
async fn opening_a_new_file_from_several_processes_at_once_migrates_it_once() {
    // the watcher and a CLI command starting together on a fresh file: each open runs the
    // migrations, and without the lock two would apply the same one
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/neo-ir.db", dir.path().display());
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { Store::open(&url).await.map(|_| ()) })
            })
            .collect();
        for o in opens {
            o.await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
}
