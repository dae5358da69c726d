//! The API over a real listener on port 0 and a real SQLite store.

use jiff::Timestamp;
use neo_ir_core::incident::{reconcile, Assessment, Finding, IncidentKind, Severity};
use neo_ir_store::Store;
use serde_json::Value;

async fn start(store: Store) -> (String, tokio::sync::oneshot::Sender<()>) {
    let (listener, addr) = neo_ir_server::bind("127.0.0.1:0").await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(neo_ir_server::serve(listener, store, async {
        let _ = rx.await;
    }));
    (format!("http://{addr}"), tx)
}

fn finding(key: &str) -> Finding {
    Finding {
        key: key.into(),
        kind: IncidentKind::ConsensusFailure,
        severity: Severity::P1,
        nodes: vec!["validator-1".into(), "validator-2".into()],
        summary: "chain stalled at height 7".into(),
        evidence: serde_json::json!({"height": 7, "stalled_ms": 4200}),
    }
}

#[tokio::test]
async fn incidents_nodes_health_and_errors() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let t0 = Timestamp::from_second(1_767_225_600).unwrap();
    for (i, key) in ["a", "b", "c"].iter().enumerate() {
        let a = Assessment {
            findings: vec![finding(key)],
            ..Default::default()
        };
        let at = t0 + jiff::SignedDuration::from_secs(i as i64);
        for c in reconcile(&[], &a, at) {
            store.apply(&c).await.unwrap();
        }
    }
    // resolve "a"
    let open = store.open_incidents().await.unwrap();
    let only_bc = Assessment {
        findings: vec![finding("b"), finding("c")],
        ..Default::default()
    };
    for c in reconcile(&open, &only_bc, t0 + jiff::SignedDuration::from_secs(9)) {
        store.apply(&c).await.unwrap();
    }

    let (base, _stop) = start(store).await;
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let url = format!("{base}{path}");
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };

    let (s, body) = get("/healthz").await;
    assert_eq!((s, body["status"].as_str()), (200, Some("ok")));
    let (s, _) = get("/readyz").await;
    assert_eq!(s, 200);

    let (s, body) = get("/api/v1/incidents").await;
    assert_eq!(s, 200);
    let list = body["incidents"].as_array().unwrap();
    assert_eq!(list.len(), 2, "open only by default: {body}");
    assert_eq!(list[0]["key"], "c", "newest first");
    let inc = &list[0];
    for field in [
        "id",
        "kind",
        "severity",
        "status",
        "nodes",
        "opened_at",
        "resolved_at",
        "summary",
        "evidence",
    ] {
        assert!(inc.get(field).is_some(), "missing {field} in {inc}");
    }
    assert_eq!(inc["kind"], "consensus_failure");
    assert_eq!(inc["severity"], "P1");
    assert_eq!(inc["status"], "detected");
    assert_eq!(inc["opened_at"], "2026-01-01T00:00:02Z");
    assert!(inc["resolved_at"].is_null());
    assert_eq!(inc["evidence"]["height"], 7);

    let (_, body) = get("/api/v1/incidents?status=all").await;
    let all = body["incidents"].as_array().unwrap();
    assert_eq!(all.len(), 3);
    let resolved = all.iter().find(|i| i["key"] == "a").unwrap();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["resolved_at"], "2026-01-01T00:00:09Z");

    // pagination
    let (_, page1) = get("/api/v1/incidents?status=all&limit=2").await;
    assert_eq!(page1["incidents"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap().to_string();
    let (_, page2) = get(&format!(
        "/api/v1/incidents?status=all&limit=2&cursor={cursor}"
    ))
    .await;
    assert_eq!(page2["incidents"].as_array().unwrap().len(), 1);
    assert_eq!(page2["incidents"][0]["key"], "a");

    let id = resolved["id"].as_i64().unwrap();
    let (s, detail) = get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(detail["id"], id);
    let types: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["opened", "resolved"]);

    let (s, body) = get("/api/v1/incidents/424242").await;
    assert_eq!(s, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (s, body) = get("/api/v1/incidents?status=bogus").await;
    assert_eq!(s, 400);
    assert_eq!(body["error"]["code"], "bad_request");
    let (s, _) = get("/api/v1/nope").await;
    assert_eq!(s, 404);

    let (s, body) = get("/api/v1/nodes").await;
    assert_eq!(s, 200);
    assert!(body["nodes"].as_array().unwrap().is_empty());
}

async fn start_with(
    store: Store,
    auth: neo_ir_server::Auth,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let (listener, addr) = neo_ir_server::bind("127.0.0.1:0").await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(neo_ir_server::serve_with(listener, store, auth, async {
        let _ = rx.await;
    }));
    (format!("http://{addr}"), tx)
}

fn tokens() -> neo_ir_server::Auth {
    use neo_ir_core::config::Access;
    neo_ir_server::Auth {
        tokens: vec![
            neo_ir_server::Token {
                name: "ops".into(),
                secret: "w-secret-123".into(),
                access: Access::Write,
            },
            neo_ir_server::Token {
                name: "dashboard".into(),
                secret: "r-secret-456".into(),
                access: Access::Read,
            },
        ],
        protect_reads: false,
    }
}

#[tokio::test]
async fn declaring_needs_a_write_token_and_is_audited() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let (base, _stop) = start_with(store.clone(), tokens()).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/api/v1/incidents");
    let body = serde_json::json!({
        "kind": "performance_degradation",
        "severity": "P3",
        "summary": "exchanges report slow RPC answers",
        "nodes": ["rpc-1"]
    });
    let post = |token: Option<&'static str>| {
        let mut r = http.post(&url).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some("wrong")).await.unwrap().status(), 401);
    let r = post(Some("r-secret-456")).await.unwrap();
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "forbidden");
    assert!(store.open_incidents().await.unwrap().is_empty());

    let r = post(Some("w-secret-123")).await.unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["kind"], "performance_degradation");
    assert_eq!(created["severity"], "P3");
    let id = created["id"].as_i64().unwrap();
    let detail: Value = http
        .get(format!("{base}/api/v1/incidents/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        detail["ack_due_at"].as_str().is_some(),
        "P3 has a 2 h target"
    );
    let opened = &detail["timeline"][0];
    assert_eq!(opened["type"], "opened");
    assert_eq!(opened["data"]["declared_by"], "ops");
    assert!(
        opened["data"]["from"]
            .as_str()
            .unwrap()
            .starts_with("api 127.0.0.1:"),
        "{opened}"
    );
    // acknowledging: a write token, audited; twice is "already"; unknown is 404
    let ack = format!("{base}/api/v1/incidents/{id}/ack");
    assert_eq!(http.post(&ack).send().await.unwrap().status(), 401);
    assert_eq!(
        http.post(&ack)
            .bearer_auth("r-secret-456")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let r = http
        .post(&ack)
        .bearer_auth("w-secret-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["already"].as_bool(), v["incident"]["acked_by"].as_str()),
        (Some(false), Some("ops"))
    );
    let v: Value = http
        .post(&ack)
        .bearer_auth("w-secret-123")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["already"], true);
    let r = http
        .post(format!("{base}/api/v1/incidents/987654/ack"))
        .bearer_auth("w-secret-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // notes: a write token, audited, on the timeline; empty is 400, unknown 404
    let notes = format!("{base}/api/v1/incidents/{id}/notes");
    let note = serde_json::json!({"text": "restarted neo-cli on rpc-1"});
    assert_eq!(
        http.post(&notes).json(&note).send().await.unwrap().status(),
        401
    );
    let r = http
        .post(&notes)
        .bearer_auth("w-secret-123")
        .json(&note)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let bad = serde_json::json!({"text": " "});
    let r = http
        .post(&notes)
        .bearer_auth("w-secret-123")
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .post(format!("{base}/api/v1/incidents/987654/notes"))
        .bearer_auth("w-secret-123")
        .json(&note)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let detail: Value = http
        .get(format!("{base}/api/v1/incidents/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last = detail["timeline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["type"], "note");
    assert_eq!(last["data"]["by"], "ops");
    assert_eq!(last["data"]["text"], "restarted neo-cli on rpc-1");

    // a detection round does not resolve what a person declared
    let open = store.open_incidents().await.unwrap();
    assert!(reconcile(&open, &Assessment::default(), Timestamp::now()).is_empty());

    // bad declarations are clear errors and store nothing
    for bad in [
        serde_json::json!({"kind": "meteor", "severity": "P3", "summary": "x"}),
        serde_json::json!({"kind": "node_down", "severity": "P9", "summary": "x"}),
        serde_json::json!({"kind": "node_down", "severity": "P2", "summary": "  "}),
        serde_json::json!({"kind": "node_down", "severity": "P2", "summary": "x", "extra": 1}),
    ] {
        let r = http
            .post(&url)
            .bearer_auth("w-secret-123")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    assert_eq!(store.open_incidents().await.unwrap().len(), 1);

    // reads stay open unless protected
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    let mut protected = tokens();
    protected.protect_reads = true;
    let (base2, _stop2) = start_with(store.clone(), protected).await;
    let list = format!("{base2}/api/v1/incidents");
    assert_eq!(http.get(&list).send().await.unwrap().status(), 401);
    let r = http
        .get(&list)
        .bearer_auth("r-secret-456")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        http.get(format!("{base2}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn without_tokens_nothing_can_be_changed() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let (base, _stop) = start(store.clone()).await;
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/incidents"))
        .bearer_auth("anything")
        .json(&serde_json::json!({"kind": "node_down", "severity": "P2", "summary": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(store.open_incidents().await.unwrap().is_empty());
}
