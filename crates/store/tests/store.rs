//! The store against real databases, every test on both backends: a SQLite file, and a
//! fresh database on the PostgreSQL server at 127.0.0.1:5432 (`NEO_IR_TEST_POSTGRES`
//! overrides the URL; when no server answers, the PostgreSQL half is skipped with a printed
//! reason). Changes with their timeline, one open incident per cause, survival across
//! reopen (a restart), node views, people's mutations with their audit records, version
//! conflicts, silences, the leader's lease and the fence on a lost lease; the runbook tables
//! (runs, approvals, checklist marks, attachments) in the `runs` module.

use jiff::Timestamp;
use neo_ir_core::clock::{Clock, ManualClock};
use neo_ir_core::fleet::NodeView;
use neo_ir_core::incident::{Actor, Assessment, Change, Finding, IncidentKind, Severity, Status};
use neo_ir_core::lifecycle::reconcile;
use neo_ir_core::oncall::ResponseConfig;
use neo_ir_core::respond::{self, Refusal};
use neo_ir_core::Role;
use neo_ir_store::{Audit, Dialect, Fence, ListFilter, NewSilence, Store, StoreError};
use sqlx::Connection;
use std::time::Duration;

/// The runbook tables (a module of this test binary, not a binary of its own).
#[path = "store/runs.rs"]
mod runs;

/// Post-incident reviews and action items.
#[path = "store/reviews.rs"]
mod reviews;

/// What the incident KPIs read.
#[path = "store/kpi.rs"]
mod kpi;

/// Drills: recorded, marked, scored, listed; reminders of scheduled drills.
#[path = "store/drills.rs"]
mod drills;

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

/// Short stability window, the playbook's escalation.
fn response() -> ResponseConfig {
    ResponseConfig {
        stability_window: Duration::from_secs(2),
        ..Default::default()
    }
}

async fn step(store: &Store, a: &Assessment, now: Timestamp) -> Vec<Change> {
    let open = store.open_incidents().await.unwrap();
    let changes = reconcile(&open, a, now, &response(), &[]);
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
    assert_eq!(
        store.open_incidents().await.unwrap()[0].status,
        Status::Monitoring
    );
    clock.advance(Duration::from_secs(2));
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
    assert_eq!(
        types,
        [
            "opened",
            "escalated",
            "severity_raised",
            "condition_cleared",
            "resolved",
            "review_scheduled"
        ]
    );
    assert!(inc.version >= 3, "every write bumps the version");
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
    let changes = reconcile(&[], &a, now, &response(), &[]);
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
async fn people_mutate_with_audit_records_and_deadlines_fire_once() {
    for db in databases("people").await {
        people_and_deadlines(&db.url).await;
        db.cleanup().await;
    }
}

async fn people_and_deadlines(url: &str) {
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
    assert_eq!(a.escalation_due_at, Some(min(5)), "the team lead next");

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
    let ack = |id| {
        let store = store.clone();
        let alice = alice.clone();
        async move {
            store
                .mutate(
                    id,
                    &Audit::new(&alice, "acknowledge", serde_json::json!({})),
                    |i| respond::acknowledge(i, &alice, min(10)),
                )
                .await
        }
    };
    let done = ack(b.id).await.unwrap().unwrap();
    assert_eq!(done.incident.acked_by.as_deref(), Some("alice"));
    assert!(matches!(
        ack(b.id).await.unwrap(),
        Err(Refusal::Unchanged(_))
    ));
    assert!(matches!(
        ack(999_999).await,
        Err(StoreError::NoSuchIncident(999_999))
    ));

    // a write computed from an older version is refused
    let stale = respond::note(&b, "late", &alice, min(10)).unwrap();
    assert!(matches!(
        store.apply(&Change::Update(stale)).await,
        Err(StoreError::Conflict(id)) if id == b.id
    ));

    // every round for 20 minutes: breaches once each, escalation steps once each
    for s in (60..=20 * 60).step_by(7) {
        step(&store, &raised, t0 + jiff::SignedDuration::from_secs(s)).await;
    }
    let types = |tl: &[neo_ir_core::incident::TimelineEvent], t: &str| {
        tl.iter().filter(|e| e.event_type == t).count()
    };
    let (_, tl_a) = store.incident(a.id).await.unwrap().unwrap();
    assert_eq!(types(&tl_a, "response_target_breached"), 1);
    assert_eq!(types(&tl_a, "escalated"), 3, "on-call, team lead, manager");
    let (_, tl_b) = store.incident(b.id).await.unwrap().unwrap();
    assert_eq!(
        types(&tl_b, "escalated"),
        1,
        "acknowledged at 10 min: stopped"
    );
    assert_eq!(types(&tl_b, "response_target_breached"), 0);
    let acked = tl_b
        .iter()
        .find(|e| e.event_type == "acknowledged")
        .unwrap();
    assert_eq!(acked.data["within_target"], true);

    // roles, severity, phases, through the same path
    let m = store
        .mutate(
            a.id,
            &Audit::new(&alice, "role", serde_json::json!({})),
            |i| {
                respond::set_role(
                    i,
                    neo_ir_core::incident::ResponseRole::IC,
                    Some("bob"),
                    &alice,
                    min(21),
                )
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.incident.roles.len(), 1);
    let m = store
        .mutate(
            a.id,
            &Audit::new(&alice, "transition", serde_json::json!({})),
            |i| respond::transition(i, Status::Mitigating, Some("restarting"), &alice, min(22)),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.incident.status, Status::Mitigating);
    let refused = store
        .mutate(
            a.id,
            &Audit::new(&alice, "transition", serde_json::json!({})),
            |i| respond::transition(i, Status::Reviewed, None, &alice, min(22)),
        )
        .await
        .unwrap();
    assert!(matches!(refused, Err(Refusal::Conflict(_))));
    let (a_now, tl_a) = store.incident(a.id).await.unwrap().unwrap();
    assert_eq!(a_now.roles[&neo_ir_core::incident::ResponseRole::IC], "bob");
    assert_eq!(
        a_now.acked_by.as_deref(),
        Some("alice"),
        "moving it acknowledged it"
    );
    assert_eq!(tl_a.last().unwrap().event_type, "phase_changed");

    // the audit log has every person's mutation, and nothing for refusals
    let audit = store.audit_log(50, None).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["transition", "role", "acknowledge"]);
    assert_eq!(audit[0].who, "alice");
    assert_eq!(audit[0].from, "cli");
    assert_eq!(audit[0].incident_id, Some(a.id));
    store.close().await;
}

#[tokio::test]
async fn silences_are_stored_listed_and_expired() {
    for db in databases("silences").await {
        silences(&db.url).await;
        db.cleanup().await;
    }
}

async fn silences(url: &str) {
    let store = Store::open(url).await.unwrap();
    let t0 = Timestamp::from_second(1_767_225_600).unwrap();
    let hour = jiff::SignedDuration::from_hours(1);
    let ops = Actor {
        who: "ops".into(),
        from: "api 127.0.0.1:1".into(),
    };
    let s = store
        .add_silence(
            &NewSilence {
                node: Some("rpc-1".into()),
                kind: Some(IncidentKind::NodeDown),
                starts_at: t0,
                ends_at: t0 + hour,
                reason: "disk swap".into(),
            },
            &ops,
            t0,
        )
        .await
        .unwrap();
    assert_eq!(
        store.silences(Some(t0)).await.unwrap(),
        std::slice::from_ref(&s)
    );
    assert!(store.silences(Some(t0 + hour)).await.unwrap().is_empty());
    let ended = store
        .expire_silence(s.id, &ops, t0 + jiff::SignedDuration::from_mins(5))
        .await
        .unwrap();
    assert_eq!(ended.ends_at, t0 + jiff::SignedDuration::from_mins(5));
    assert!(matches!(
        store.expire_silence(s.id, &ops, t0 + hour).await,
        Err(StoreError::NoSuchSilence(_))
    ));
    assert_eq!(store.silences(None).await.unwrap().len(), 1);
    let actions: Vec<String> = store
        .audit_log(10, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["silence.expire", "silence.create"]);
}

#[tokio::test]
async fn one_leader_at_a_time_and_a_lost_lease_fences_every_write() {
    for db in databases("lease").await {
        lease(&db.url).await;
        db.cleanup().await;
    }
}

async fn lease(url: &str) {
    let store = Store::open(url).await.unwrap();
    let t0 = Timestamp::from_second(1_767_225_600).unwrap();
    let s = move |n: i64| t0 + jiff::SignedDuration::from_secs(n);
    let ttl = Duration::from_secs(10);
    let a = store.try_lead("a", t0, ttl).await.unwrap().unwrap();
    assert_eq!(a.epoch, 1);
    assert!(
        store.try_lead("b", s(5), ttl).await.unwrap().is_none(),
        "a holds it"
    );
    let renewed = store.try_lead("a", s(5), ttl).await.unwrap().unwrap();
    assert_eq!(renewed.epoch, 1, "renewal keeps the epoch");
    assert_eq!(renewed.expires_at, s(15));
    // a is frozen past its lease: b takes over
    let b = store.try_lead("b", s(15), ttl).await.unwrap().unwrap();
    assert_eq!(b.epoch, 2);
    assert_eq!(store.lease().await.unwrap().unwrap().holder, "b");

    let fence = |holder: &str, epoch| Fence {
        holder: holder.into(),
        epoch,
        lease: ttl,
    };
    let old = store.fenced(fence("a", 1));
    let new = store.fenced(fence("b", 2));
    let a_finding = Assessment {
        findings: vec![finding("node_down:rpc-1", Severity::P1)],
        ..Default::default()
    };
    let changes = reconcile(&[], &a_finding, s(16), &response(), &[]);
    assert!(matches!(
        old.apply(&changes[0]).await,
        Err(StoreError::LostLease { epoch: 1 })
    ));
    assert!(matches!(
        old.save_nodes(&[], s(16)).await,
        Ok(()) // nothing to write is not a write
    ));
    assert!(matches!(
        old.retain_nodes(&[]).await,
        Err(StoreError::LostLease { .. })
    ));
    new.apply(&changes[0]).await.unwrap();
    assert_eq!(store.open_incidents().await.unwrap().len(), 1);
    // the old leader comes back and cannot take the lease while b renews
    assert!(store.try_lead("a", s(17), ttl).await.unwrap().is_none());
    // several instances racing for an expired lease: exactly one wins
    let racers: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.try_lead(&format!("r{i}"), s(40), ttl).await.unwrap() })
        })
        .collect();
    let mut won = Vec::new();
    for r in racers {
        if let Some(l) = r.await.unwrap() {
            won.push(l);
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(won[0].epoch, 3);
    // a clean shutdown gives it up at once
    store.release(&won[0].holder).await.unwrap();
    assert_eq!(
        store
            .try_lead("a", s(41), ttl)
            .await
            .unwrap()
            .unwrap()
            .epoch,
        4
    );
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
