//! The runbook tables on both backends: runs created, listed and filtered; approvals racing
//! (exactly one wins) and declines, each with its audit record; finishing only from
//! running; the circuit breaker's view of automatic runs; runs left running by a dead
//! process; checklist marks; attachments with their checksum, size limit and name checks.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use neo_ir_core::incident::{Actor, Assessment, Incident, Severity};
use neo_ir_core::lifecycle::reconcile;
use neo_ir_core::runbook::{Plan, RunStatus, Step, StepResult, StepStatus};
use neo_ir_store::{
    NewRun, RunFilter, RunRefusal, Store, StoreError, INTERRUPTED_SUMMARY, MAX_ATTACHMENT_BYTES,
};

use super::{databases, finding, response};

fn t0() -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap()
}

fn at(secs: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(secs)
}

fn alice() -> Actor {
    Actor {
        who: "alice".into(),
        from: "cli".into(),
    }
}

fn bob() -> Actor {
    Actor {
        who: "bob".into(),
        from: "api 127.0.0.1:5000".into(),
    }
}

/// Open an incident for `key` the way the engine does.
async fn incident(store: &Store, key: &str) -> Incident {
    let a = Assessment {
        findings: vec![finding(key, Severity::P2)],
        ..Default::default()
    };
    let changes = reconcile(&[], &a, t0(), &response(), &[]);
    store.apply(&changes[0]).await.unwrap()
}

fn plan() -> Plan {
    Plan {
        steps: vec![
            Step::exec(
                "stop",
                &["systemctl", "stop", "neo node"],
                Duration::from_secs(30),
                true,
            ),
            Step::builtin(
                "clear",
                "delete",
                "*.tmp under /var/lib/neo",
                Duration::from_secs(5),
                true,
            ),
        ],
        notes: vec!["applying units is your hook".into()],
    }
}

fn new_run(incident_id: Option<i64>, status: RunStatus, created_at: Timestamp) -> NewRun {
    NewRun {
        script: "quick_recovery".into(),
        args: vec!["--latest".into(), "it's spaced".into()],
        node: Some("rpc-1".into()),
        incident_id,
        status,
        requested_by: "alice via cli".into(),
        approved_by: None,
        plan: plan(),
        report: serde_json::json!({}),
        summary: "requested".into(),
        automatic: false,
        created_at,
    }
}

#[tokio::test]
async fn runs_are_created_listed_and_filtered() {
    for db in databases("runs_list").await {
        runs_list(&db.url).await;
        db.cleanup().await;
    }
}

async fn runs_list(url: &str) {
    let store = Store::open(url).await.unwrap();
    let inc = incident(&store, "node_down:rpc-1").await;
    let dry = store
        .create_run(&new_run(Some(inc.id), RunStatus::DryRun, at(1)))
        .await
        .unwrap();
    assert_eq!(dry.finished_at, Some(at(1)), "a dry run is final at once");
    assert!(dry.results.is_empty());
    let waiting = store
        .create_run(&new_run(Some(inc.id), RunStatus::AwaitingApproval, at(2)))
        .await
        .unwrap();
    assert_eq!(waiting.finished_at, None);
    let network = store
        .create_run(&NewRun {
            script: "check_network_partitions".into(),
            args: vec![],
            node: None,
            automatic: true,
            approved_by: Some("policy node_down".into()),
            report: serde_json::json!({"partitions": [["a", "b"], ["c"]]}),
            ..new_run(None, RunStatus::Running, at(3))
        })
        .await
        .unwrap();
    assert!(dry.id < waiting.id && waiting.id < network.id);

    // stored as given, through a reopen (a restart)
    store.close().await;
    let store = Store::open(url).await.unwrap();
    assert_eq!(store.run(waiting.id).await.unwrap().unwrap(), waiting);
    let back = store.run(network.id).await.unwrap().unwrap();
    assert_eq!(back, network);
    assert_eq!(back.plan.describe(), network.plan.describe());
    assert_eq!(back.args, Vec::<String>::new());
    assert!(store.run(999_999).await.unwrap().is_none());

    let ids = |runs: Vec<neo_ir_core::runbook::Run>| runs.iter().map(|r| r.id).collect::<Vec<_>>();
    let all = store.runs(&RunFilter::default()).await.unwrap();
    assert_eq!(ids(all), [network.id, waiting.id, dry.id], "newest first");
    let of_incident = RunFilter {
        incident_id: Some(inc.id),
        ..Default::default()
    };
    assert_eq!(
        ids(store.runs(&of_incident).await.unwrap()),
        [waiting.id, dry.id]
    );
    let awaiting = RunFilter {
        status: Some(RunStatus::AwaitingApproval),
        ..Default::default()
    };
    assert_eq!(ids(store.runs(&awaiting).await.unwrap()), [waiting.id]);
    let running_of_incident = RunFilter {
        status: Some(RunStatus::Running),
        ..of_incident
    };
    assert!(store.runs(&running_of_incident).await.unwrap().is_empty());
    let one = RunFilter {
        limit: 1,
        ..Default::default()
    };
    assert_eq!(ids(store.runs(&one).await.unwrap()), [network.id]);

    // what cannot be created
    assert!(matches!(
        store
            .create_run(&new_run(Some(inc.id), RunStatus::Succeeded, at(4)))
            .await,
        Err(StoreError::RunStatusNotAllowed { .. })
    ));
    assert!(matches!(
        store
            .create_run(&new_run(Some(424_242), RunStatus::DryRun, at(4)))
            .await,
        Err(StoreError::NoSuchIncident(424_242))
    ));
    assert_eq!(store.runs(&RunFilter::default()).await.unwrap().len(), 3);
    store.close().await;
}

#[tokio::test]
async fn approvals_race_once_and_are_audited_like_declines() {
    for db in databases("runs_approve").await {
        approvals(&db.url).await;
        db.cleanup().await;
    }
}

async fn approvals(url: &str) {
    let store = Store::open(url).await.unwrap();
    let inc = incident(&store, "node_down:rpc-1").await;
    let bob = bob();

    // two people approve the same run at once, several times over: exactly one wins each
    for round in 0..5 {
        let run = store
            .create_run(&new_run(
                Some(inc.id),
                RunStatus::AwaitingApproval,
                at(round),
            ))
            .await
            .unwrap();
        let racers: Vec<_> = [alice(), bob.clone()]
            .into_iter()
            .map(|who| {
                let store = store.clone();
                tokio::spawn(async move { store.approve_run(run.id, &who, at(100)).await })
            })
            .collect();
        let mut won = Vec::new();
        let mut refused = Vec::new();
        for r in racers {
            match r.await.unwrap().unwrap() {
                Ok(run) => won.push(run),
                Err(why) => refused.push(why),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: {won:?} {refused:?}");
        assert_eq!(
            refused,
            [RunRefusal::NotAwaitingApproval(RunStatus::Running)],
            "round {round}"
        );
        let winner = &won[0];
        assert_eq!(winner.status, RunStatus::Running);
        let stored = store.run(run.id).await.unwrap().unwrap();
        assert_eq!(&stored, winner);
        assert!(matches!(
            stored.approved_by.as_deref(),
            Some("alice" | "bob")
        ));
    }
    let approvals = store
        .audit_log(100, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "run.approve")
        .collect::<Vec<_>>();
    assert_eq!(
        approvals.len(),
        5,
        "one audit record per approval that landed"
    );
    assert_eq!(approvals[0].incident_id, Some(inc.id));
    assert_eq!(approvals[0].detail["script"], "quick_recovery");
    assert_eq!(approvals[0].detail["node"], "rpc-1");
    assert!(approvals[0].detail["run"].is_i64());

    // only a run awaiting approval can be approved or declined
    let dry = store
        .create_run(&new_run(Some(inc.id), RunStatus::DryRun, at(10)))
        .await
        .unwrap();
    assert_eq!(
        store.approve_run(dry.id, &alice(), at(11)).await.unwrap(),
        Err(RunRefusal::NotAwaitingApproval(RunStatus::DryRun))
    );
    assert_eq!(
        store.approve_run(999_999, &alice(), at(11)).await.unwrap(),
        Err(RunRefusal::NoSuchRun(999_999))
    );
    let shown = RunRefusal::NotAwaitingApproval(RunStatus::DryRun).to_string();
    assert!(
        shown.contains("dry_run") && shown.contains("awaiting approval"),
        "{shown}"
    );

    // a person declines: refused, finished, the reason kept
    let declined = store
        .create_run(&new_run(None, RunStatus::AwaitingApproval, at(20)))
        .await
        .unwrap();
    let run = store
        .decline_run(declined.id, &bob, "  not during the upgrade  ", at(21))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Refused);
    assert_eq!(run.finished_at, Some(at(21)));
    assert_eq!(run.approved_by, None);
    assert_eq!(run.summary, "declined by bob: not during the upgrade");
    assert_eq!(store.run(declined.id).await.unwrap().unwrap(), run);
    assert_eq!(
        store
            .decline_run(declined.id, &bob, "again", at(22))
            .await
            .unwrap(),
        Err(RunRefusal::NotAwaitingApproval(RunStatus::Refused))
    );
    assert_eq!(
        store
            .approve_run(declined.id, &alice(), at(22))
            .await
            .unwrap(),
        Err(RunRefusal::NotAwaitingApproval(RunStatus::Refused)),
        "a declined run stays declined"
    );
    assert_eq!(
        store.decline_run(dry.id, &bob, "no", at(22)).await.unwrap(),
        Err(RunRefusal::NotAwaitingApproval(RunStatus::DryRun))
    );
    let audit = store.audit_log(1, None).await.unwrap();
    assert_eq!(audit[0].action, "run.decline");
    assert_eq!(audit[0].who, "bob");
    assert_eq!(audit[0].from, "api 127.0.0.1:5000");
    assert_eq!(audit[0].incident_id, None, "a run without an incident");
    assert_eq!(audit[0].detail["run"], declined.id);
    assert_eq!(audit[0].detail["reason"], "not during the upgrade");
    let total = store.audit_log(100, None).await.unwrap().len();
    assert_eq!(total, 6, "refusals leave no audit record");
    store.close().await;
}

#[tokio::test]
async fn runs_finish_only_from_running() {
    for db in databases("runs_finish").await {
        finish(&db.url).await;
        db.cleanup().await;
    }
}

async fn finish(url: &str) {
    let store = Store::open(url).await.unwrap();
    let inc = incident(&store, "node_down:rpc-1").await;
    let results = vec![
        StepResult {
            name: "stop".into(),
            status: StepStatus::Ok,
            exit_code: Some(0),
            output: "stopped\n".into(),
            duration_ms: 1200,
        },
        StepResult {
            name: "clear".into(),
            status: StepStatus::TimedOut,
            exit_code: None,
            output: String::new(),
            duration_ms: 5000,
        },
    ];
    let report = serde_json::json!({"verified": false, "freed_bytes": 1024});

    let waiting = store
        .create_run(&new_run(Some(inc.id), RunStatus::AwaitingApproval, at(1)))
        .await
        .unwrap();
    assert!(matches!(
        store
            .finish_run(waiting.id, RunStatus::Succeeded, &results, &report, "done", at(2))
            .await,
        Err(StoreError::RunNotRunning { id, status: "awaiting_approval" }) if id == waiting.id
    ));
    assert!(matches!(
        store
            .finish_run(999_999, RunStatus::Failed, &results, &report, "x", at(2))
            .await,
        Err(StoreError::NoSuchRun(999_999))
    ));
    store
        .approve_run(waiting.id, &alice(), at(2))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        store
            .finish_run(
                waiting.id,
                RunStatus::Refused,
                &results,
                &report,
                "x",
                at(3)
            )
            .await,
        Err(StoreError::RunStatusNotAllowed {
            status: "refused",
            ..
        })
    ));
    let done = store
        .finish_run(
            waiting.id,
            RunStatus::Failed,
            &results,
            &report,
            "clear timed out",
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(done.results, results);
    assert_eq!(done.report, report);
    assert_eq!(done.summary, "clear timed out");
    assert_eq!(done.finished_at, Some(at(3)));
    assert_eq!(done.approved_by.as_deref(), Some("alice"));
    assert_eq!(store.run(waiting.id).await.unwrap().unwrap(), done);
    // finished once: a second report changes nothing
    assert!(matches!(
        store
            .finish_run(
                waiting.id,
                RunStatus::Succeeded,
                &[],
                &report,
                "again",
                at(4)
            )
            .await,
        Err(StoreError::RunNotRunning {
            status: "failed",
            ..
        })
    ));
    assert_eq!(store.run(waiting.id).await.unwrap().unwrap(), done);
    store.close().await;
}

#[tokio::test]
async fn automatic_runs_feed_the_circuit_breaker() {
    for db in databases("runs_auto").await {
        automatic(&db.url).await;
        db.cleanup().await;
    }
}

async fn automatic(url: &str) {
    let store = Store::open(url).await.unwrap();
    let auto = |node: &str, status, secs| NewRun {
        node: Some(node.into()),
        automatic: true,
        requested_by: "auto-remediation".into(),
        approved_by: Some("policy".into()),
        ..new_run(None, status, at(secs))
    };
    let finish = |id, status, verified: bool| {
        let store = store.clone();
        async move {
            store
                .finish_run(
                    id,
                    status,
                    &[],
                    &serde_json::json!({"verified": verified}),
                    "done",
                    at(1000),
                )
                .await
                .unwrap()
        }
    };
    // before the window
    let old = store
        .create_run(&auto("rpc-1", RunStatus::Running, 10))
        .await
        .unwrap();
    finish(old.id, RunStatus::Failed, false).await;
    // exactly at `since`: not after it
    store
        .create_run(&auto("rpc-1", RunStatus::Running, 100))
        .await
        .unwrap();
    let ok = store
        .create_run(&auto("rpc-1", RunStatus::Running, 200))
        .await
        .unwrap();
    finish(ok.id, RunStatus::Succeeded, true).await;
    let unverified = store
        .create_run(&auto("rpc-1", RunStatus::Running, 300))
        .await
        .unwrap();
    finish(unverified.id, RunStatus::Succeeded, false).await;
    let failed = store
        .create_run(&auto("rpc-1", RunStatus::Running, 400))
        .await
        .unwrap();
    finish(failed.id, RunStatus::Failed, true).await;
    let in_flight = store
        .create_run(&auto("rpc-1", RunStatus::Running, 500))
        .await
        .unwrap();
    // not counted: another node, a person's run, nothing ran (dry run, refused)
    store
        .create_run(&auto("rpc-2", RunStatus::Running, 250))
        .await
        .unwrap();
    store
        .create_run(&NewRun {
            node: Some("rpc-1".into()),
            ..new_run(None, RunStatus::Running, at(260))
        })
        .await
        .unwrap();
    store
        .create_run(&auto("rpc-1", RunStatus::DryRun, 270))
        .await
        .unwrap();
    store
        .create_run(&auto("rpc-1", RunStatus::Refused, 280))
        .await
        .unwrap();

    let past = store.automatic_runs("rpc-1", at(100)).await.unwrap();
    let seen: Vec<(Timestamp, bool)> = past.iter().map(|p| (p.at, p.failed)).collect();
    assert_eq!(
        seen,
        [
            (at(200), false),
            (at(300), true),
            (at(400), true),
            (at(500), false)
        ],
        "oldest first; failed by status or by its verification"
    );
    assert!(past.iter().all(|p| p.node == "rpc-1"));
    assert_eq!(in_flight.status, RunStatus::Running);
    assert_eq!(store.automatic_runs("rpc-1", at(9)).await.unwrap().len(), 6);
    assert_eq!(store.automatic_runs("rpc-2", at(0)).await.unwrap().len(), 1);
    assert!(store
        .automatic_runs("rpc-3", at(0))
        .await
        .unwrap()
        .is_empty());
    store.close().await;
}

#[tokio::test]
async fn runs_left_running_by_a_dead_process_are_failed() {
    for db in databases("runs_interrupted").await {
        interrupted(&db.url).await;
        db.cleanup().await;
    }
}

async fn interrupted(url: &str) {
    let store = Store::open(url).await.unwrap();
    let a = store
        .create_run(&new_run(None, RunStatus::Running, at(1)))
        .await
        .unwrap();
    let b = store
        .create_run(&new_run(None, RunStatus::Running, at(2)))
        .await
        .unwrap();
    let waiting = store
        .create_run(&new_run(None, RunStatus::AwaitingApproval, at(3)))
        .await
        .unwrap();
    // started by this process, after it came up
    let current = store
        .create_run(&new_run(None, RunStatus::Running, at(20)))
        .await
        .unwrap();
    store.close().await;

    let store = Store::open(url).await.unwrap();
    assert_eq!(store.fail_interrupted_runs(at(10)).await.unwrap(), 2);
    for id in [a.id, b.id] {
        let r = store.run(id).await.unwrap().unwrap();
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(r.summary, INTERRUPTED_SUMMARY);
        assert_eq!(r.finished_at, Some(at(10)));
        assert_eq!(r.plan, plan(), "nothing lost");
    }
    assert_eq!(
        store.run(waiting.id).await.unwrap().unwrap().status,
        RunStatus::AwaitingApproval,
        "an approval still waits"
    );
    assert_eq!(
        store.run(current.id).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    assert_eq!(
        store.fail_interrupted_runs(at(10)).await.unwrap(),
        0,
        "once"
    );
    store.close().await;
}

#[tokio::test]
async fn checklist_marks_are_upserted_and_audited() {
    for db in databases("checklist").await {
        checklist_marks(&db.url).await;
        db.cleanup().await;
    }
}

async fn checklist_marks(url: &str) {
    let store = Store::open(url).await.unwrap();
    let inc = incident(&store, "node_down:rpc-1").await;
    let other = incident(&store, "node_down:rpc-2").await;
    let bob = bob();
    assert!(store.checklist_marks(inc.id).await.unwrap().is_empty());
    store
        .set_checklist_item(inc.id, "diagnostics", true, &alice(), at(1))
        .await
        .unwrap();
    store
        .set_checklist_item(inc.id, "quick_recovery", true, &alice(), at(2))
        .await
        .unwrap();
    // bob takes the first mark back
    store
        .set_checklist_item(inc.id, "diagnostics", false, &bob, at(3))
        .await
        .unwrap();
    let marks = store.checklist_marks(inc.id).await.unwrap();
    let seen: Vec<(&str, bool, &str, Timestamp)> = marks
        .iter()
        .map(|m| (m.key.as_str(), m.done, m.by.as_str(), m.at))
        .collect();
    assert_eq!(
        seen,
        [
            ("diagnostics", false, "bob", at(3)),
            ("quick_recovery", true, "alice", at(2))
        ]
    );
    assert!(
        store.checklist_marks(other.id).await.unwrap().is_empty(),
        "marks belong to their incident"
    );

    // keys outside the kind's checklist, and unknown incidents, are refused
    let e = store
        .set_checklist_item(inc.id, "../../etc", true, &alice(), at(4))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            StoreError::UnknownChecklistItem {
                kind: "node_down",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("quick_recovery"), "{e}");
    assert!(matches!(
        store
            .set_checklist_item(424_242, "diagnostics", true, &alice(), at(4))
            .await,
        Err(StoreError::NoSuchIncident(424_242))
    ));

    let audit = store.audit_log(100, None).await.unwrap();
    assert_eq!(audit.len(), 3, "one record per mark that landed");
    assert!(audit.iter().all(|e| e.action == "checklist.mark"));
    assert_eq!(audit[0].who, "bob");
    assert_eq!(audit[0].incident_id, Some(inc.id));
    assert_eq!(
        audit[0].detail,
        serde_json::json!({"key": "diagnostics", "done": false})
    );
    store.close().await;
}

#[tokio::test]
async fn attachments_round_trip_with_checksum_and_limits() {
    for db in databases("attachments").await {
        attachments(&db.url).await;
        db.cleanup().await;
    }
}

async fn attachments(url: &str) {
    let store = Store::open(url).await.unwrap();
    let inc = incident(&store, "node_down:rpc-1").await;
    let other = incident(&store, "node_down:rpc-2").await;
    let run = store
        .create_run(&new_run(Some(inc.id), RunStatus::DryRun, at(1)))
        .await
        .unwrap();

    let text = store
        .add_attachment(
            inc.id,
            None,
            "notes.txt",
            "text/plain; charset=utf-8",
            b"abc",
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(
        text.sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(text.bytes, 3);
    // every byte value survives (a tarball is binary)
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let bundle = store
        .add_attachment(
            inc.id,
            Some(run.id),
            "diagnostics-rpc-1.tar.gz",
            "application/gzip",
            &binary,
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(bundle.run_id, Some(run.id));
    assert_eq!(bundle.sha256.len(), 64);

    store.close().await;
    let store = Store::open(url).await.unwrap();
    assert_eq!(
        store.attachments(inc.id).await.unwrap(),
        [text.clone(), bundle.clone()],
        "metadata, oldest first"
    );
    assert!(store.attachments(other.id).await.unwrap().is_empty());
    let (meta, content) = store.attachment(bundle.id).await.unwrap().unwrap();
    assert_eq!(meta, bundle);
    assert_eq!(content, binary);
    let (_, abc) = store.attachment(text.id).await.unwrap().unwrap();
    assert_eq!(abc, b"abc");
    assert!(store.attachment(999_999).await.unwrap().is_none());

    // exactly the limit fits, a byte more is refused before anything is written
    let mut big = vec![7u8; MAX_ATTACHMENT_BYTES];
    let fits = store
        .add_attachment(
            inc.id,
            None,
            "big.bin",
            "application/octet-stream",
            &big,
            at(4),
        )
        .await
        .unwrap();
    assert_eq!(fits.bytes, MAX_ATTACHMENT_BYTES as u64);
    big.push(7);
    let e = store
        .add_attachment(
            inc.id,
            None,
            "big2.bin",
            "application/octet-stream",
            &big,
            at(5),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::AttachmentTooLarge { bytes, max }
            if bytes == MAX_ATTACHMENT_BYTES + 1 && max == MAX_ATTACHMENT_BYTES),
        "{e}"
    );
    drop(big);

    // names that could become paths, and hostile content types
    let long = "x".repeat(201);
    for name in [
        "",
        "..",
        "../../etc/passwd",
        "a/b",
        "a\\b",
        "bad\nname",
        long.as_str(),
    ] {
        let e = store
            .add_attachment(inc.id, None, name, "text/plain", b"x", at(6))
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::InvalidAttachment(_)),
            "{name:?}: {e}"
        );
    }
    let e = store
        .add_attachment(
            inc.id,
            None,
            "ok.txt",
            "text/plain\r\nX-Evil: 1",
            b"x",
            at(6),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidAttachment(_)), "{e}");
    // the run must exist and belong to this incident; the incident must exist
    assert!(matches!(
        store
            .add_attachment(other.id, Some(run.id), "x.txt", "text/plain", b"x", at(6))
            .await,
        Err(StoreError::RunOfAnotherIncident { .. })
    ));
    assert!(matches!(
        store
            .add_attachment(inc.id, Some(999_999), "x.txt", "text/plain", b"x", at(6))
            .await,
        Err(StoreError::NoSuchRun(999_999))
    ));
    assert!(matches!(
        store
            .add_attachment(424_242, None, "x.txt", "text/plain", b"x", at(6))
            .await,
        Err(StoreError::NoSuchIncident(424_242))
    ));
    assert_eq!(store.attachments(inc.id).await.unwrap().len(), 3);
    store.close().await;
}
