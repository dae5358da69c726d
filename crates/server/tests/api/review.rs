//! The post-incident review endpoints: the prefilled review as JSON and as Markdown, saving
//! it (a write token; once resolved), action items added and patched with checks, and the
//! completion that makes the incident `reviewed` and the review final.

use neo_ir_store::Store;
use serde_json::{json, Value};

use super::{code, Api, READ, WRITE};

async fn put(api: &Api, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    api.call(reqwest::Method::PUT, path, token, Some(body))
        .await
}

async fn patch(api: &Api, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    api.call(reqwest::Method::PATCH, path, token, Some(body))
        .await
}

#[tokio::test]
async fn reviews_are_prefilled_saved_itemized_and_completed() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let api = Api::start(store).await;
    let id = api.declare().await;
    let review = format!("/api/v1/incidents/{id}/review");

    // open: readable (a draft), not writable yet
    let (s, v) = api.get(&review, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["saved"].as_bool(), v["complete"].as_bool()),
        (Some(false), Some(false))
    );
    assert!(v["markdown"]
        .as_str()
        .unwrap()
        .contains(&format!("# Post-Incident Review: Incident #{id}")));
    assert_eq!(
        code(&put(&api, &review, WRITE, json!({"markdown": "# x"})).await),
        (409, "conflict")
    );
    let items = format!("{review}/items");
    assert_eq!(
        code(
            &api.post(&items, WRITE, json!({"action": "a", "owner": "bob"}))
                .await
        ),
        (409, "conflict")
    );
    let (s, _) = api
        .post(
            &format!("/api/v1/incidents/{id}/transition"),
            WRITE,
            json!({"to": "resolved", "root_cause": "a full disk"}),
        )
        .await;
    assert_eq!(s, 200);

    // Markdown on request
    let r = reqwest::Client::new()
        .get(format!("{}{review}", api.base))
        .header("accept", "text/markdown")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/markdown"));
    let md = r.text().await.unwrap();
    assert!(
        md.contains("Root cause given at resolution: a full disk"),
        "{md}"
    );
    assert!(md.contains("_to fill in_"));

    // writes need a write token and a valid body
    assert_eq!(
        put(&api, &review, None, json!({"markdown": "# x"})).await.0,
        401
    );
    assert_eq!(
        put(&api, &review, READ, json!({"markdown": "# x"})).await.0,
        403
    );
    for bad in [
        json!({}),
        json!({"markdown": ""}),
        json!({"markdown": "x", "extra": 1}),
    ] {
        assert_eq!(
            code(&put(&api, &review, WRITE, bad.clone()).await),
            (400, "bad_request"),
            "{bad}"
        );
    }
    let (s, v) = put(
        &api,
        &review,
        WRITE,
        json!({"markdown": "# Review\nwritten"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["saved"].as_bool(), v["markdown"].as_str()),
        (Some(true), Some("# Review\nwritten"))
    );
    assert_eq!(v["updated_by"], "ops");

    // action items
    for bad in [
        json!({"action": "a", "owner": "bob", "due": "15/12/2026"}),
        json!({"action": "a", "owner": "bob", "priority": "urgent"}),
        json!({"action": " ", "owner": "bob"}),
        json!({"action": "a", "owner": "bob", "runbook": "../etc/passwd"}),
        json!({"action": "a", "owner": "bob", "runbook": "restart_nodes"}),
    ] {
        assert_eq!(
            code(&api.post(&items, WRITE, bad.clone()).await),
            (400, "bad_request"),
            "{bad}"
        );
    }
    assert_eq!(
        api.post(&items, READ, json!({"action": "a", "owner": "bob"}))
            .await
            .0,
        403
    );
    let (s, v) = api
        .post(
            &items,
            WRITE,
            json!({"action": "alert on disk at 80%", "owner": "bob", "due": "2020-01-02",
                   "priority": "high", "runbook": "emergency_cleanup"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let item = v["item"]["id"].as_i64().unwrap();
    assert_eq!(v["item"]["priority"], "high");
    assert_eq!(v["item"]["due"], "2020-01-02");
    let path = format!("/api/v1/review-items/{item}");
    let (s, v) = patch(&api, &path, WRITE, json!({"owner": "carol", "due": null})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["item"]["owner"].as_str(), v["item"]["due"].is_null()),
        (Some("carol"), true)
    );
    let (s, v) = patch(&api, &path, WRITE, json!({"done": true})).await;
    assert_eq!((s, v["item"]["done"].as_bool()), (200, Some(true)));
    assert_eq!(
        code(&patch(&api, &path, WRITE, json!({})).await),
        (400, "bad_request")
    );
    assert_eq!(
        code(
            &patch(
                &api,
                "/api/v1/review-items/999",
                WRITE,
                json!({"done": true})
            )
            .await
        ),
        (404, "not_found")
    );
    assert_eq!(
        code(&patch(&api, "/api/v1/review-items/x", WRITE, json!({"done": true})).await),
        (404, "not_found")
    );
    let (_, v) = api.get(&review, None).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);

    // completion: the incident is reviewed, the review final
    let (s, v) = put(&api, &review, WRITE, json!({"complete": true})).await;
    assert_eq!((s, v["complete"].as_bool()), (200, Some(true)), "{v}");
    let (_, inc) = api.get(&format!("/api/v1/incidents/{id}"), None).await;
    assert_eq!(inc["status"], "reviewed");
    assert_eq!(
        code(&put(&api, &review, WRITE, json!({"markdown": "# changed"})).await),
        (409, "conflict")
    );
    let (s, v) = put(&api, &review, WRITE, json!({"complete": true})).await;
    assert_eq!(
        (s, v["markdown"].as_str()),
        (200, Some("# Review\nwritten")),
        "completing twice changes nothing"
    );
    assert_eq!(
        code(&api.get("/api/v1/incidents/424242/review", None).await),
        (404, "not_found")
    );
}

/// The API's resolve schedules a P1/P2 review after the configured `review_after` (here
/// 24 h, not the playbook's 48 h), and not at all with `"off"`.
#[tokio::test]
async fn a_resolve_over_the_api_schedules_the_review_after_the_configured_delay() {
    for (review_after, want) in [
        (Some(std::time::Duration::from_secs(24 * 3600)), Some(24)),
        (None, None),
    ] {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let (listener, addr) = neo_ir_server::bind("127.0.0.1:0").await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let response = neo_ir_core::oncall::ResponseConfig {
            review_after,
            ..super::response()
        };
        tokio::spawn(neo_ir_server::serve_full(
            listener,
            store,
            super::tokens(),
            response,
            None,
            async {
                let _ = stopped.await;
            },
        ));
        let api = Api {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            _stop: stop,
        };
        let (s, v) = api
            .post(
                "/api/v1/incidents",
                WRITE,
                json!({"kind": "node_down", "severity": "P2", "summary": "rpc-1 is down"}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let id = v["id"].as_i64().unwrap();
        let (s, v) = api
            .post(
                &format!("/api/v1/incidents/{id}/transition"),
                WRITE,
                json!({"to": "resolved", "root_cause": "a full disk"}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let (_, v) = api.get(&format!("/api/v1/incidents/{id}"), None).await;
        let events = v["timeline"].as_array().unwrap();
        let resolved = events
            .iter()
            .find(|e| e["type"] == "phase_changed" && e["data"]["to_phase"] == "resolved")
            .expect("resolved");
        let scheduled = events.iter().find(|e| e["type"] == "review_scheduled");
        match want {
            Some(hours) => {
                let scheduled = scheduled.expect("a P2 review is scheduled");
                let at: jiff::Timestamp =
                    scheduled["data"]["at"].as_str().unwrap().parse().unwrap();
                let when: jiff::Timestamp = resolved["at"].as_str().unwrap().parse().unwrap();
                // on the next whole minute after resolution + review_after
                let after = at.duration_since(when).as_secs();
                assert!(
                    (hours * 3600..hours * 3600 + 60).contains(&after),
                    "{after} s: {scheduled}"
                );
                assert_eq!(at.as_second() % 60, 0, "{scheduled}");
                assert_eq!(resolved["data"]["review_at"], scheduled["data"]["at"]);
            }
            None => assert!(scheduled.is_none(), "off: people schedule it: {v}"),
        }
    }
}
