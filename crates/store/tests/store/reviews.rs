//! Post-incident reviews and action items on both backends: a review is written once the
//! incident is resolved, saved and saved again (audited), completed together with the
//! incident's move to `reviewed` and final from then on; action items are checked, added,
//! updated, listed, and the overdue ones found by due day; overdue ones are reminded of once
//! a day (also on a reviewed incident, never by a leader that lost its lease), and a
//! runbook's items say when it was last reviewed.

use jiff::{SignedDuration, Timestamp};
use neo_ir_core::incident::{Actor, Assessment, Incident, Severity, Status};
use neo_ir_core::lifecycle::reconcile;
use neo_ir_core::respond::{self, Refusal};
use neo_ir_core::review::{Priority, TO_FILL};
use neo_ir_store::{ActionItemUpdate, Audit, Fence, NewActionItem, Store, StoreError};

use super::{databases, finding, response};

fn t0() -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap() // 2026-01-01T00:00:00Z
}

fn at(secs: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(secs)
}

fn carol() -> Actor {
    Actor {
        who: "carol".into(),
        from: "cli".into(),
    }
}

/// An incident for `key` opened by the engine at t0.
async fn opened(store: &Store, key: &str) -> Incident {
    let a = Assessment {
        findings: vec![finding(key, Severity::P2)],
        ..Default::default()
    };
    let changes = reconcile(&[], &a, t0(), &response(), &[]);
    store.apply(&changes[0]).await.unwrap()
}

/// Resolved by carol at t0 + 1 h with a root cause.
async fn resolved(store: &Store, id: i64) {
    let audit = Audit::new(&carol(), "transition", serde_json::json!({}));
    store
        .mutate(id, &audit, |i| {
            respond::resolve(i, None, Some("a full disk"), &carol(), at(3600))
        })
        .await
        .unwrap()
        .unwrap();
}

fn item(action: &str, due: Option<&str>) -> NewActionItem {
    NewActionItem {
        action: action.into(),
        owner: "dave".into(),
        due: due.map(|d| d.parse().unwrap()),
        priority: Priority::High,
        runbook: Some("emergency_cleanup".into()),
    }
}

#[tokio::test]
async fn reviews_are_saved_then_completed_with_the_incident_and_final() {
    for db in databases("reviews").await {
        let store = Store::open(&db.url).await.unwrap();
        let inc = opened(&store, "node_down:rpc-1").await;
        let refused = store
            .save_review(inc.id, "# notes", &carol(), at(60))
            .await
            .unwrap();
        assert!(
            matches!(&refused, Err(Refusal::Conflict(m)) if m.contains("once it is resolved")),
            "{refused:?}"
        );
        assert!(matches!(
            store
                .complete_review(inc.id, &carol(), at(60))
                .await
                .unwrap(),
            Err(Refusal::Conflict(_))
        ));
        resolved(&store, inc.id).await;
        assert_eq!(store.review(inc.id).await.unwrap(), None);
        let (draft, complete) = store.review_or_draft(inc.id).await.unwrap();
        assert!(!complete);
        assert!(draft.contains(&format!("# Post-Incident Review: Incident #{}", inc.id)));
        assert!(
            draft.contains("Root cause given at resolution: a full disk"),
            "{draft}"
        );
        assert!(draft.contains(TO_FILL));
        for bad in ["", " \n", "a\0b"] {
            assert!(matches!(
                store
                    .save_review(inc.id, bad, &carol(), at(7200))
                    .await
                    .unwrap(),
                Err(Refusal::Invalid(_))
            ));
        }
        let saved = store
            .save_review(inc.id, "# first", &carol(), at(7200))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (saved.markdown.as_str(), saved.complete),
            ("# first", false)
        );
        let saved = store
            .save_review(inc.id, "# second", &carol(), at(7300))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(saved.updated_at, at(7300));
        assert_eq!(store.review_or_draft(inc.id).await.unwrap().0, "# second");

        let done = store
            .complete_review(inc.id, &carol(), at(7400))
            .await
            .unwrap()
            .unwrap();
        assert!(done.complete);
        assert_eq!(done.markdown, "# second", "what was reviewed is kept");
        let (incident, timeline) = store.incident(inc.id).await.unwrap().unwrap();
        assert_eq!(incident.status, Status::Reviewed);
        let last = timeline.last().unwrap();
        assert_eq!(last.event_type, "phase_changed");
        assert_eq!(last.data["to_phase"], "reviewed");
        assert!(matches!(
            store
                .complete_review(inc.id, &carol(), at(7500))
                .await
                .unwrap(),
            Err(Refusal::Unchanged(_))
        ));
        assert!(matches!(
            store
                .save_review(inc.id, "# third", &carol(), at(7500))
                .await
                .unwrap(),
            Err(Refusal::Conflict(_))
        ));
        let actions: Vec<String> = store
            .audit_log(50, None)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.action)
            .collect();
        assert_eq!(
            actions.iter().filter(|a| *a == "review.save").count(),
            2,
            "{actions:?}"
        );
        assert!(actions.iter().any(|a| a == "review.complete"));

        // completed without a saved review: the prefilled template is what is stored
        let other = opened(&store, "node_down:rpc-2").await;
        resolved(&store, other.id).await;
        let done = store
            .complete_review(other.id, &carol(), at(7600))
            .await
            .unwrap()
            .unwrap();
        assert!(
            done.markdown.contains("# Post-Incident Review"),
            "{}",
            done.markdown
        );
        assert!(matches!(
            store.save_review(999, "# x", &carol(), at(1)).await,
            Err(StoreError::NoSuchIncident(999))
        ));
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn action_items_are_checked_tracked_and_overdue_ones_listed() {
    for db in databases("action_items").await {
        let store = Store::open(&db.url).await.unwrap();
        let inc = opened(&store, "node_down:rpc-1").await;
        assert!(matches!(
            store
                .add_action_item(inc.id, &item("x", None), &carol(), at(1))
                .await
                .unwrap(),
            Err(Refusal::Conflict(_))
        ));
        resolved(&store, inc.id).await;
        let mut bad = item("x", None);
        bad.owner = "a\u{7}".into();
        let mut bad_runbook = item("x", None);
        bad_runbook.runbook = Some("../../etc/passwd".into());
        for b in [item(" ", None), bad, bad_runbook] {
            assert!(matches!(
                store
                    .add_action_item(inc.id, &b, &carol(), at(1))
                    .await
                    .unwrap(),
                Err(Refusal::Invalid(_))
            ));
        }
        assert!(matches!(
            store
                .add_action_item(999, &item("x", None), &carol(), at(1))
                .await,
            Err(StoreError::NoSuchIncident(999))
        ));
        let alert = store
            .add_action_item(
                inc.id,
                &item("alert on disk at 80%", Some("2026-01-05")),
                &carol(),
                at(10),
            )
            .await
            .unwrap()
            .unwrap();
        let mut later = item("document the cleanup", None);
        later.priority = Priority::Low;
        later.runbook = None;
        let doc = store
            .add_action_item(inc.id, &later, &carol(), at(20))
            .await
            .unwrap()
            .unwrap();
        let items = store.action_items(inc.id).await.unwrap();
        assert_eq!(items, [alert.clone(), doc.clone()]);
        assert_eq!(items[0].runbook.as_deref(), Some("emergency_cleanup"));
        assert_eq!(items[1].priority, Priority::Low);

        let day = |d: &str| -> Timestamp { d.parse().unwrap() };
        assert!(store
            .overdue_action_items(day("2026-01-05T23:59:00Z"))
            .await
            .unwrap()
            .is_empty());
        let overdue = store
            .overdue_action_items(day("2026-01-06T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(overdue.len(), 1);
        assert_eq!(
            (overdue[0].incident_id, overdue[0].item.id),
            (inc.id, alert.id)
        );

        // moved, reassigned, then done
        let (incident_id, moved) = store
            .update_action_item(
                alert.id,
                &ActionItemUpdate {
                    owner: Some("erin".into()),
                    due: Some(Some("2026-02-01".parse().unwrap())),
                    ..Default::default()
                },
                &carol(),
                at(30),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(incident_id, inc.id);
        assert_eq!((moved.owner.as_str(), moved.done), ("erin", false));
        assert!(store
            .overdue_action_items(day("2026-01-06T00:00:00Z"))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store
                .overdue_action_items(day("2026-02-02T00:00:00Z"))
                .await
                .unwrap()
                .len(),
            1
        );
        let done = ActionItemUpdate {
            done: Some(true),
            ..Default::default()
        };
        store
            .update_action_item(alert.id, &done, &carol(), at(40))
            .await
            .unwrap()
            .unwrap();
        assert!(store
            .overdue_action_items(day("2027-01-01T00:00:00Z"))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store.all_action_items(true, 0).await.unwrap().len(),
            1,
            "doc is open"
        );
        assert_eq!(store.all_action_items(false, 0).await.unwrap().len(), 2);
        assert!(
            store
                .action_item(alert.id)
                .await
                .unwrap()
                .unwrap()
                .item
                .done
        );

        assert!(matches!(
            store
                .update_action_item(alert.id, &ActionItemUpdate::default(), &carol(), at(50))
                .await
                .unwrap(),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            store
                .update_action_item(12345, &done, &carol(), at(50))
                .await,
            Err(StoreError::NoSuchActionItem(12345))
        ));
        // the review in the template lists them
        let draft = store.draft_review(inc.id).await.unwrap();
        assert!(
            draft.contains(
                "| alert on disk at 80% | erin | 2026-02-01 | high | emergency_cleanup | yes |"
            ),
            "{draft}"
        );
        // tracked after the review is complete
        store
            .complete_review(inc.id, &carol(), at(60))
            .await
            .unwrap()
            .unwrap();
        store
            .update_action_item(doc.id, &done, &carol(), at(70))
            .await
            .unwrap()
            .unwrap();
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn overdue_items_are_reminded_once_a_day_even_after_the_review() {
    for db in databases("reminders").await {
        let store = Store::open(&db.url).await.unwrap();
        let inc = opened(&store, "node_down:rpc-1").await;
        resolved(&store, inc.id).await;
        let day = |d: &str| -> Timestamp { d.parse().unwrap() };
        let overdue = store
            .add_action_item(
                inc.id,
                &item("alert on disk at 80%", Some("2026-01-05")),
                &carol(),
                at(10),
            )
            .await
            .unwrap()
            .unwrap();
        let mut no_date = item("write it down", None);
        no_date.runbook = Some("node_down".into());
        let undated = store
            .add_action_item(inc.id, &no_date, &carol(), at(20))
            .await
            .unwrap()
            .unwrap();
        // the review is complete: the incident is reviewed, its items still tracked
        store
            .complete_review(inc.id, &carol(), at(30))
            .await
            .unwrap()
            .unwrap();
        let events_of = |timeline: &[neo_ir_core::incident::TimelineEvent]| {
            timeline
                .iter()
                .filter(|e| e.event_type == "action_item_overdue")
                .count()
        };
        assert!(store
            .remind_overdue(day("2026-01-05T23:00:00Z"))
            .await
            .unwrap()
            .is_empty());
        let version = store.incident(inc.id).await.unwrap().unwrap().0.version;

        let first = store
            .remind_overdue(day("2026-01-06T08:00:00Z"))
            .await
            .unwrap();
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(first[0].0, inc.id);
        assert_eq!(first[0].1.data["item"], overdue.id);
        assert!(
            first[0].1.message.starts_with(
                "Action item overdue: alert on disk at 80% (dave, due 2026-01-05, high priority"
            ),
            "{}",
            first[0].1.message
        );
        // the same day again, by any leader: nothing
        for hour in ["08:00:01", "12:00:00", "23:59:59"] {
            let again = store
                .remind_overdue(day(&format!("2026-01-06T{hour}Z")))
                .await
                .unwrap();
            assert!(again.is_empty(), "{hour}: {again:?}");
        }
        let (incident, timeline) = store.incident(inc.id).await.unwrap().unwrap();
        assert_eq!(incident.status, Status::Reviewed);
        assert_eq!(
            incident.version, version,
            "the incident itself did not change"
        );
        assert_eq!(events_of(&timeline), 1);

        // the next day: one more; routed like any event (the router sees it)
        let next = store
            .remind_overdue(day("2026-01-07T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].1.data["days_overdue"], 2);
        let routed = std::sync::Mutex::new(Vec::new());
        store
            .route_pending(500, day("2026-01-07T00:00:00Z"), |_, e, _| {
                routed.lock().unwrap().push(e.event_type.clone());
                Vec::new()
            })
            .await
            .unwrap();
        let routed = routed.into_inner().unwrap();
        assert_eq!(
            routed
                .iter()
                .filter(|t| *t == "action_item_overdue")
                .count(),
            2,
            "{routed:?}"
        );

        // a leader that lost its lease writes no reminder
        let ttl = std::time::Duration::from_secs(10);
        store
            .try_lead("a", day("2026-01-08T00:00:00Z"), ttl)
            .await
            .unwrap()
            .unwrap();
        store
            .try_lead("b", day("2026-01-08T00:00:11Z"), ttl)
            .await
            .unwrap()
            .unwrap();
        let old = store.fenced(Fence {
            holder: "a".into(),
            epoch: 1,
            lease: ttl,
        });
        assert!(matches!(
            old.remind_overdue(day("2026-01-08T00:00:12Z")).await,
            Err(StoreError::LostLease { .. })
        ));
        let new = store.fenced(Fence {
            holder: "b".into(),
            epoch: 2,
            lease: ttl,
        });
        assert_eq!(
            new.remind_overdue(day("2026-01-08T00:00:12Z"))
                .await
                .unwrap()
                .len(),
            1
        );

        // done: no more reminders; its completion is the runbook's last review
        let done = ActionItemUpdate {
            done: Some(true),
            ..Default::default()
        };
        let (_, finished) = store
            .update_action_item(overdue.id, &done, &carol(), day("2026-01-09T10:00:00Z"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(finished.done_at, Some(day("2026-01-09T10:00:00Z")));
        assert!(store
            .remind_overdue(day("2026-01-10T00:00:00Z"))
            .await
            .unwrap()
            .is_empty());
        let (_, timeline) = store.incident(inc.id).await.unwrap().unwrap();
        assert_eq!(events_of(&timeline), 3);
        // a later edit keeps the completion time; undone clears it
        let (_, edited) = store
            .update_action_item(
                overdue.id,
                &ActionItemUpdate {
                    owner: Some("erin".into()),
                    ..Default::default()
                },
                &carol(),
                day("2026-01-11T00:00:00Z"),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(edited.done_at, Some(day("2026-01-09T10:00:00Z")));
        let items = store.runbook_items().await.unwrap();
        let ids: Vec<i64> = items.iter().map(|t| t.item.id).collect();
        assert_eq!(ids, [overdue.id, undated.id]);
        assert_eq!(
            items[0].item.done_at,
            Some(day("2026-01-09T10:00:00Z")),
            "read back"
        );
        let (_, reopened) = store
            .update_action_item(
                overdue.id,
                &ActionItemUpdate {
                    done: Some(false),
                    ..Default::default()
                },
                &carol(),
                day("2026-01-12T00:00:00Z"),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reopened.done_at, None);
        store.close().await;
        db.cleanup().await;
    }
}
