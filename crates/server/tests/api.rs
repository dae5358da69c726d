//! The API over a real listener on port 0 and a real SQLite store; the runbook endpoints
//! against a simulated Neo network (`runs`) and a real host agent over a stand-in node
//! process (`runs_agent`).

#[path = "api/metrics.rs"]
mod metrics;
#[path = "api/review.rs"]
mod review;
#[path = "api/runs.rs"]
mod runs;
#[path = "api/runs_agent.rs"]
mod runs_agent;
#[path = "api/status_drills.rs"]
mod status_drills;

use std::time::Duration;

use jiff::Timestamp;
use neo_ir_core::incident::{Assessment, Finding, IncidentKind, Severity};
use neo_ir_core::lifecycle::reconcile;
use neo_ir_core::oncall::ResponseConfig;
use neo_ir_store::Store;
use serde_json::{json, Value};

/// The playbook's response, with a one-second stability window.
fn response() -> ResponseConfig {
    ResponseConfig {
        stability_window: Duration::from_secs(1),
        ..Default::default()
    }
}

/// One detection round over what the store holds.
async fn round(store: &Store, a: &Assessment, at: Timestamp) {
    let open = store.open_incidents().await.unwrap();
    for c in reconcile(&open, a, at, &response(), &[]) {
        store.apply(&c).await.unwrap();
    }
}

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
        // each opens its own incident (no round sees the others)
        let at = t0 + jiff::SignedDuration::from_secs(i as i64);
        for c in reconcile(&[], &a, at, &response(), &[]) {
            store.apply(&c).await.unwrap();
        }
    }
    // "a" clears at 9 s (monitoring), and stays clear through the stability window
    let only_bc = Assessment {
        findings: vec![finding("b"), finding("c")],
        ..Default::default()
    };
    round(&store, &only_bc, t0 + jiff::SignedDuration::from_secs(9)).await;
    round(&store, &only_bc, t0 + jiff::SignedDuration::from_secs(10)).await;

    let (base, _stop) = start(store.clone()).await;
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
    let (s, body) = get("/readyz").await;
    assert_eq!(s, 200);
    assert!(body["leader"].is_null(), "no instance led yet: {body}");
    store
        .try_lead("host:42:1", t0, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let (_, body) = get("/readyz").await;
    assert_eq!(body["leader"]["holder"], "host:42:1");
    assert_eq!(body["leader"]["epoch"], 1);

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
        "version",
        "detected_severity",
        "cleared_at",
        "roles",
        "escalation_policy",
        "escalation_step",
        "escalation_due_at",
        "update_due_at",
    ] {
        assert!(inc.get(field).is_some(), "missing {field} in {inc}");
    }
    assert_eq!(inc["kind"], "consensus_failure");
    assert_eq!(inc["severity"], "P1");
    assert_eq!(inc["status"], "detected");
    assert_eq!(inc["opened_at"], "2026-01-01T00:00:02Z");
    assert!(inc["resolved_at"].is_null());
    assert_eq!(inc["evidence"]["height"], 7);
    assert_eq!(inc["escalation_policy"], "playbook");
    assert_eq!(
        inc["escalation_step"], 1,
        "the on-call engineer is paged at once"
    );
    assert_eq!(inc["roles"], json!({}));

    let (_, body) = get("/api/v1/incidents?status=all").await;
    let all = body["incidents"].as_array().unwrap();
    assert_eq!(all.len(), 3);
    let resolved = all.iter().find(|i| i["key"] == "a").unwrap();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["resolved_at"], "2026-01-01T00:00:10Z");
    assert_eq!(resolved["cleared_at"], "2026-01-01T00:00:09Z");

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
    assert_eq!(
        types,
        [
            "opened",
            "escalated",
            "condition_cleared",
            "resolved",
            "review_scheduled"
        ],
        "a P1/P2 gets its review scheduled as it resolves"
    );

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
    start_full(store, auth, None).await
}

/// The API with its tokens and, when given, the runbook runner behind the run endpoints.
async fn start_full(
    store: Store,
    auth: neo_ir_server::Auth,
    runner: Option<std::sync::Arc<neo_ir_runbook::runner::Runner>>,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let (listener, addr) = neo_ir_server::bind("127.0.0.1:0").await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(neo_ir_server::serve_full(
        listener,
        store,
        auth,
        response(),
        runner,
        async {
            let _ = rx.await;
        },
    ));
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
    assert_eq!(opened["data"]["by"], "ops");
    assert_eq!(created["evidence"]["declared_by"], "ops");
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
    let changes = reconcile(
        &open,
        &Assessment::default(),
        Timestamp::now(),
        &response(),
        &[],
    );
    // nothing is recorded (the next reminder is an hour away) and nothing resolves it;
    // the watcher only derives the update deadline from the acknowledgement
    for c in &changes {
        assert!(c.events().is_empty(), "{c:?}");
        let neo_ir_core::incident::Change::Update(m) = c else {
            panic!("{c:?}")
        };
        assert!(m.incident.is_open());
        assert!(m.incident.update_due_at.is_some());
    }

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

const WRITE: Option<&str> = Some("w-secret-123");
const READ: Option<&str> = Some("r-secret-456");

/// A client of one running API: every call answers its status and JSON body.
struct Api {
    base: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Api {
    async fn start(store: Store) -> Api {
        Api::start_full(store, None).await
    }

    /// The API with the test tokens and the runbook endpoints served by `runner`.
    async fn start_full(
        store: Store,
        runner: Option<std::sync::Arc<neo_ir_runbook::runner::Runner>>,
    ) -> Api {
        let (base, stop) = start_full(store, tokens(), runner).await;
        Api {
            base,
            http: reqwest::Client::new(),
            _stop: stop,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, token, None).await
    }

    /// Declare a P3 incident as "ops"; its id.
    async fn declare(&self) -> i64 {
        self.declare_on("performance_degradation", "slow RPC answers", &["rpc-1"])
            .await
    }

    /// Declare a P3 incident of `kind` on `nodes` as "ops"; its id.
    async fn declare_on(&self, kind: &str, summary: &str, nodes: &[&str]) -> i64 {
        let (s, v) = self
            .post(
                "/api/v1/incidents",
                WRITE,
                json!({"kind": kind, "severity": "P3", "summary": summary, "nodes": nodes}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_i64().unwrap()
    }

    /// The types of incident `id`'s timeline events.
    async fn timeline(&self, id: i64) -> Vec<String> {
        let (_, v) = self.get(&format!("/api/v1/incidents/{id}"), None).await;
        v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    }
}

/// `(status, error code)` of an answer.
fn code(answer: &(u16, Value)) -> (u16, &str) {
    (answer.0, answer.1["error"]["code"].as_str().unwrap_or(""))
}

#[tokio::test]
async fn severity_changes_need_a_reason() {
    let api = Api::start(Store::open("sqlite::memory:").await.unwrap()).await;
    let id = api.declare().await;
    let path = format!("/api/v1/incidents/{id}/severity");
    for bad in [
        json!({"severity": "P1"}),
        json!({"severity": "P1", "reason": "  "}),
        json!({"severity": "P7", "reason": "x"}),
        json!({"severity": "P1", "reason": "x", "extra": 1}),
    ] {
        assert_eq!(
            code(&api.post(&path, WRITE, bad.clone()).await),
            (400, "bad_request"),
            "{bad}"
        );
    }
    let (s, v) = api
        .post(
            &path,
            WRITE,
            json!({"severity": "P1", "reason": "validators affected"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["unchanged"], false);
    assert_eq!(v["incident"]["severity"], "P1");
    let at = |field: &str| -> Timestamp { v["incident"][field].as_str().unwrap().parse().unwrap() };
    assert_eq!(
        at("ack_due_at").duration_since(at("opened_at")),
        jiff::SignedDuration::from_mins(15),
        "P1: acknowledgement due 15 min after opening"
    );
    let event = &v["events"][0];
    assert_eq!(event["type"], "severity_changed");
    assert_eq!(event["data"]["reason"], "validators affected");
    assert_eq!(event["data"]["by"], "ops");
    let (s, v) = api
        .post(&path, WRITE, json!({"severity": "P1", "reason": "again"}))
        .await;
    assert_eq!(
        (s, &v["unchanged"], &v["events"]),
        (200, &json!(true), &json!([]))
    );
    assert!(v["message"].as_str().unwrap().contains("already P1"), "{v}");
    assert_eq!(v["incident"]["severity"], "P1");
    let (s, _) = api
        .post(
            "/api/v1/incidents/999999/severity",
            WRITE,
            json!({"severity": "P1", "reason": "x"}),
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(
        api.timeline(id).await,
        ["opened", "escalated", "severity_changed"]
    );
}

#[tokio::test]
async fn roles_are_assigned_handed_over_and_released() {
    let api = Api::start(Store::open("sqlite::memory:").await.unwrap()).await;
    let id = api.declare().await;
    let path = format!("/api/v1/incidents/{id}/roles");
    let (s, v) = api
        .post(&path, WRITE, json!({"role": "IC", "holder": "alice"}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["incident"]["roles"], json!({"IC": "alice"}));
    assert_eq!(v["events"][0]["type"], "role_assigned");
    let (_, v) = api
        .post(&path, WRITE, json!({"role": "ic", "holder": "alice"}))
        .await;
    assert_eq!(v["unchanged"], true, "{v}");
    let (_, v) = api
        .post(&path, WRITE, json!({"role": "TL", "holder": "carol"}))
        .await;
    assert_eq!(
        v["incident"]["roles"],
        json!({"IC": "alice", "TL": "carol"})
    );
    let (_, v) = api
        .post(&path, WRITE, json!({"role": "IC", "holder": "bob"}))
        .await;
    assert_eq!(v["events"][0]["type"], "role_handed_over");
    assert_eq!(v["events"][0]["data"]["previous"], "alice");
    let (s, v) = api
        .post(&path, WRITE, json!({"role": "IC", "holder": null}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["events"][0]["type"], "role_released");
    assert_eq!(v["incident"]["roles"], json!({"TL": "carol"}));
    let (s, v) = api
        .post(&path, WRITE, json!({"role": "IC", "holder": null}))
        .await;
    assert_eq!((s, &v["unchanged"]), (200, &json!(true)));
    assert!(v["message"].as_str().unwrap().contains("nobody holds IC"));
    for bad in [
        json!({"role": "CEO", "holder": "x"}),
        json!({"role": "IC"}),
        json!({"role": "IC", "holder": " "}),
        json!({"role": "IC", "holder": "a\u{7}b"}),
    ] {
        assert_eq!(api.post(&path, WRITE, bad.clone()).await.0, 400, "{bad}");
    }
    assert_eq!(
        api.timeline(id).await,
        [
            "opened",
            "escalated",
            "role_assigned",
            "role_assigned",
            "role_handed_over",
            "role_released"
        ]
    );
}

#[tokio::test]
async fn phases_move_as_people_say_and_impossible_moves_are_refused() {
    let api = Api::start(Store::open("sqlite::memory:").await.unwrap()).await;
    let id = api.declare().await;
    let path = format!("/api/v1/incidents/{id}/transition");
    let refused = api.post(&path, WRITE, json!({"to": "reviewed"})).await;
    assert_eq!(code(&refused), (409, "conflict"));
    assert!(refused.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("resolve it first"));
    let unknown = api.post(&path, WRITE, json!({"to": "fixed"})).await;
    assert_eq!(code(&unknown), (400, "bad_request"));
    let message = unknown.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("detected, triage, investigating"),
        "{message}"
    );
    let (_, v) = api.post(&path, WRITE, json!({"to": "detected"})).await;
    assert_eq!(v["unchanged"], true, "{v}");

    let (s, v) = api
        .post(
            &path,
            WRITE,
            json!({"to": "triage", "reason": "looking at it"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let types: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["acknowledged", "phase_changed"],
        "moving it acknowledges it"
    );
    assert_eq!(v["events"][1]["data"]["reason"], "looking at it");
    assert_eq!(v["incident"]["acked_by"], "ops");
    let review = format!("/api/v1/incidents/{id}/review");
    let in_a_week = (Timestamp::now() + jiff::SignedDuration::from_hours(24 * 7)).to_string();
    for to in [
        "investigating",
        "mitigating",
        "monitoring",
        "resolved",
        "reviewed",
    ] {
        if to == "reviewed" {
            // the review is scheduled first: its notice is a message of its own
            assert_eq!(
                code(
                    &api.post(&review, WRITE, json!({"at": "2001-01-01T00:00:00Z"}))
                        .await
                ),
                (400, "bad_request"),
                "in the past"
            );
            let (s, v) = api.post(&review, WRITE, json!({"at": in_a_week})).await;
            assert_eq!(s, 200, "{v}");
            assert_eq!(v["events"][0]["type"], "review_scheduled");
        }
        let body = if to == "resolved" {
            json!({"to": to, "root_cause": "a full disk"})
        } else {
            json!({"to": to})
        };
        let (s, v) = api.post(&path, WRITE, body).await;
        assert_eq!(
            (s, v["incident"]["status"].as_str()),
            (200, Some(to)),
            "{v}"
        );
        if to == "resolved" {
            let last = v["events"].as_array().unwrap().last().unwrap().clone();
            assert_eq!(last["data"]["root_cause"], "a full disk", "{v}");
        }
    }
    let (s, v) = api.get(&format!("/api/v1/incidents/{id}"), None).await;
    assert_eq!((s, &v["status"]), (200, &json!("reviewed")));
    assert!(v["resolved_at"].as_str().is_some());
    assert_eq!(
        code(&api.post(&path, WRITE, json!({"to": "triage"})).await),
        (409, "conflict")
    );
    // a reviewed incident is part of the record: no more acknowledgement or roles
    let ack = api
        .post(&format!("/api/v1/incidents/{id}/ack"), WRITE, json!({}))
        .await;
    assert_eq!(code(&ack), (409, "conflict"));
    let role = api
        .post(
            &format!("/api/v1/incidents/{id}/roles"),
            WRITE,
            json!({"role": "IC", "holder": "x"}),
        )
        .await;
    assert_eq!(code(&role), (409, "conflict"));
    assert_eq!(
        api.post(
            "/api/v1/incidents/x/transition",
            WRITE,
            json!({"to": "triage"})
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn actions_link_their_runbook_run() {
    let api = Api::start(Store::open("sqlite::memory:").await.unwrap()).await;
    let id = api.declare().await;
    let path = format!("/api/v1/incidents/{id}/notes");
    let (s, e) = api
        .post(
            &path,
            WRITE,
            json!({"text": "restarted neo-cli", "kind": "action", "runbook_run": "run-42"}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["type"], "action");
    assert_eq!(e["data"]["runbook_run"], "run-42");
    assert_eq!(e["data"]["by"], "ops");
    let (s, e) = api
        .post(
            &path,
            WRITE,
            json!({"text": "blocked 10.0.0.9", "kind": "action"}),
        )
        .await;
    assert_eq!((s, &e["data"]["runbook_run"]), (201, &Value::Null));
    let (s, e) = api
        .post(&path, WRITE, json!({"text": "disk 91 %", "kind": "note"}))
        .await;
    assert_eq!((s, e["type"].as_str()), (201, Some("note")));
    for bad in [
        json!({"text": "x", "runbook_run": "run-1"}),
        json!({"text": "x", "kind": "note", "runbook_run": "run-1"}),
        json!({"text": "x", "kind": "action", "runbook_run": "bad id!"}),
        json!({"text": "x", "kind": "shout"}),
    ] {
        assert_eq!(
            code(&api.post(&path, WRITE, bad.clone()).await),
            (400, "bad_request"),
            "{bad}"
        );
    }
    assert_eq!(
        api.timeline(id).await,
        ["opened", "escalated", "action", "action", "note"]
    );
}

#[tokio::test]
async fn silences_are_created_listed_and_ended() {
    let api = Api::start(Store::open("sqlite::memory:").await.unwrap()).await;
    let (s, v) = api
        .post(
            "/api/v1/silences",
            WRITE,
            json!({"node": "rpc-1", "duration": "2h", "reason": "disk swap"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        (v["node"].as_str(), v["kind"].as_str()),
        (Some("rpc-1"), None)
    );
    assert_eq!(v["created_by"], "ops");
    let starts: Timestamp = v["starts_at"].as_str().unwrap().parse().unwrap();
    let ends: Timestamp = v["ends_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        ends.duration_since(starts),
        jiff::SignedDuration::from_hours(2)
    );
    let id = v["id"].as_i64().unwrap();
    let (s, v) = api
        .post(
            "/api/v1/silences",
            WRITE,
            json!({"kind": "node_down", "starts_at": "2099-01-01T00:00:00Z",
                   "ends_at": "2099-01-01T04:00:00Z", "reason": "planned upgrade"}),
        )
        .await;
    assert_eq!((s, v["kind"].as_str()), (201, Some("node_down")), "{v}");
    assert_eq!(v["starts_at"], "2099-01-01T00:00:00Z");
    let later = v["id"].as_i64().unwrap();

    for bad in [
        json!({"duration": "1h", "reason": "no node nor kind"}),
        json!({"node": "rpc-1", "reason": "no end"}),
        json!({"node": "rpc-1", "duration": "1h", "ends_at": "2099-01-01T00:00:00Z", "reason": "both"}),
        json!({"node": "rpc-1", "duration": "soon", "reason": "x"}),
        json!({"node": "rpc-1", "duration": "1h"}),
        json!({"node": "rpc-1", "duration": "90d", "reason": "too long"}),
        json!({"node": "rpc-1", "ends_at": "2001-01-01T00:00:00Z", "reason": "past"}),
        json!({"node": "rpc-1", "ends_at": "tomorrow", "reason": "x"}),
        json!({"kind": "meteor", "duration": "1h", "reason": "x"}),
    ] {
        let answer = api.post("/api/v1/silences", WRITE, bad.clone()).await;
        assert_eq!(code(&answer), (400, "bad_request"), "{bad}");
    }
    let no_target = api
        .post(
            "/api/v1/silences",
            WRITE,
            json!({"duration": "1h", "reason": "x"}),
        )
        .await;
    assert!(no_target.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("names a node"));

    let (s, v) = api.get("/api/v1/silences", None).await;
    assert_eq!(s, 200);
    let ids: Vec<i64> = v["silences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [later, id], "newest first, later ones too");
    let (s, v) = api.delete(&format!("/api/v1/silences/{id}"), WRITE).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["id"], id);
    let ended: Timestamp = v["ends_at"].as_str().unwrap().parse().unwrap();
    assert!(ended <= Timestamp::now());
    let (_, v) = api.get("/api/v1/silences", None).await;
    assert_eq!(v["silences"].as_array().unwrap().len(), 1);
    let (_, v) = api.get("/api/v1/silences?all=true", None).await;
    assert_eq!(v["silences"].as_array().unwrap().len(), 2);
    assert_eq!(api.get("/api/v1/silences?all=yes", None).await.0, 400);
    assert_eq!(
        code(&api.delete(&format!("/api/v1/silences/{id}"), WRITE).await),
        (404, "not_found")
    );
    assert_eq!(api.delete("/api/v1/silences/424242", WRITE).await.0, 404);
    assert_eq!(api.delete("/api/v1/silences/abc", WRITE).await.0, 404);
}

#[tokio::test]
async fn every_mutation_is_in_the_audit_log_which_needs_a_token() {
    let api = Api::start(Store::open("sqlite::memory:").await.unwrap()).await;
    let id = api.declare().await;
    let incident = |what: &str| format!("/api/v1/incidents/{id}/{what}");
    let steps = [
        (incident("ack"), json!({})),
        (incident("notes"), json!({"text": "looking"})),
        (
            incident("notes"),
            json!({"text": "restarted", "kind": "action", "runbook_run": "r-1"}),
        ),
        (
            incident("severity"),
            json!({"severity": "P2", "reason": "wider"}),
        ),
        (incident("roles"), json!({"role": "IC", "holder": "alice"})),
        (incident("transition"), json!({"to": "mitigating"})),
        (
            "/api/v1/silences".to_string(),
            json!({"node": "rpc-1", "duration": "1h", "reason": "x"}),
        ),
    ];
    for (path, body) in &steps {
        let (s, v) = api.post(path, WRITE, body.clone()).await;
        assert!(s == 200 || s == 201, "{path}: {s} {v}");
    }
    // refused and unchanged actions write nothing
    api.post(&incident("ack"), WRITE, json!({})).await;
    api.post(&incident("transition"), WRITE, json!({"to": "reviewed"}))
        .await;
    assert_eq!(api.delete("/api/v1/silences/1", WRITE).await.0, 200);

    assert_eq!(
        code(&api.get("/api/v1/audit", None).await),
        (401, "unauthorized")
    );
    assert_eq!(api.get("/api/v1/audit", Some("nope")).await.0, 401);
    assert_eq!(api.get("/api/v1/audit", WRITE).await.0, 200);
    let (s, v) = api.get("/api/v1/audit", READ).await;
    assert_eq!(s, 200, "{v}");
    let entries = v["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "silence.expire",
            "silence.create",
            "transition",
            "role",
            "severity",
            "action",
            "note",
            "acknowledge",
            "declare"
        ],
        "newest first"
    );
    assert!(v["next_cursor"].is_null());
    for e in entries {
        assert_eq!(e["who"], "ops", "{e}");
        assert!(
            e["from"].as_str().unwrap().starts_with("api 127.0.0.1:"),
            "{e}"
        );
        assert!(e["at"].as_str().is_some() && e["id"].as_i64().is_some());
    }
    assert_eq!(entries[2]["incident_id"], id);
    assert_eq!(entries[2]["detail"]["to"], "mitigating");
    assert_eq!(entries[5]["detail"]["runbook_run"], "r-1");
    assert_eq!(entries[8]["detail"]["summary"], "slow RPC answers");
    assert!(entries[0]["incident_id"].is_null());

    // pages
    let (_, p1) = api.get("/api/v1/audit?limit=4", READ).await;
    assert_eq!(p1["entries"].as_array().unwrap().len(), 4);
    let cursor = p1["next_cursor"].as_str().unwrap().to_string();
    let (_, p2) = api
        .get(&format!("/api/v1/audit?limit=5&cursor={cursor}"), READ)
        .await;
    assert_eq!(p2["entries"][0]["action"], "severity");
    assert_eq!(p2["entries"].as_array().unwrap().len(), 5);
    for bad in ["limit=0", "limit=501", "limit=x", "cursor=abc"] {
        assert_eq!(
            api.get(&format!("/api/v1/audit?{bad}"), READ).await.0,
            400,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn new_mutations_need_a_write_token() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let api = Api::start(store.clone()).await;
    let id = api.declare().await;
    let posts = [
        (
            format!("/api/v1/incidents/{id}/severity"),
            json!({"severity": "P1", "reason": "x"}),
        ),
        (
            format!("/api/v1/incidents/{id}/roles"),
            json!({"role": "IC", "holder": "x"}),
        ),
        (
            format!("/api/v1/incidents/{id}/transition"),
            json!({"to": "triage"}),
        ),
        (
            format!("/api/v1/incidents/{id}/notes"),
            json!({"text": "x", "kind": "action"}),
        ),
        (
            "/api/v1/silences".to_string(),
            json!({"node": "rpc-1", "duration": "1h", "reason": "x"}),
        ),
    ];
    for (path, body) in &posts {
        assert_eq!(
            code(&api.post(path, None, body.clone()).await),
            (401, "unauthorized"),
            "{path}"
        );
        assert_eq!(
            code(&api.post(path, Some("nope"), body.clone()).await),
            (401, "unauthorized"),
            "{path}"
        );
        assert_eq!(
            code(&api.post(path, READ, body.clone()).await),
            (403, "forbidden"),
            "{path}"
        );
    }
    let silence = store
        .add_silence(
            &neo_ir_store::NewSilence {
                node: Some("rpc-9".into()),
                kind: None,
                starts_at: Timestamp::now(),
                ends_at: Timestamp::now() + jiff::SignedDuration::from_hours(1),
                reason: "maintenance".into(),
            },
            &neo_ir_core::incident::Actor {
                who: "alice".into(),
                from: "cli".into(),
            },
            Timestamp::now(),
        )
        .await
        .unwrap();
    let path = format!("/api/v1/silences/{}", silence.id);
    assert_eq!(api.delete(&path, None).await.0, 401);
    assert_eq!(api.delete(&path, READ).await.0, 403);
    // nothing changed: the incident, the silences, the audit log (only the declaration)
    assert_eq!(api.timeline(id).await, ["opened", "escalated"]);
    assert_eq!(
        store.silences(Some(Timestamp::now())).await.unwrap().len(),
        1
    );
    let audit = store.audit_log(100, None).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["silence.create", "declare"]);
}

/// What the status tests put in the store: the ids, and when the status is built (about).
struct StatusFixture {
    /// rpc-1 down for exactly one hour (2 h to 1 h ago), resolved, with an update and a
    /// note.
    rpc_down: i64,
    /// validator-2 down from 31 to 29 days ago: one day of it in the window.
    old_down: i64,
    /// validator-1 down 41 to 40 days ago: before the window.
    ancient_down: i64,
    /// Open, P2: rpc-2 is behind (a detector summary with markup and an address), two
    /// updates (the latest with markup) then a note.
    open_sync: i64,
}

const SECRET_NOTE: &str = "internal: ssh 10.1.2.3 token abc123";

/// Incidents, updates, notes and node views for the status tests, relative to now.
async fn status_fixture(store: &Store) -> StatusFixture {
    use neo_ir_core::respond;
    use neo_ir_store::Audit;
    // the store keeps milliseconds
    let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond()).unwrap();
    let ago = |mins: i64| now - jiff::SignedDuration::from_mins(mins);
    let day = 24 * 60;
    let actor = neo_ir_core::incident::Actor {
        who: "alice".into(),
        from: "api 10.1.2.3:51234".into(),
    };
    let down = |node: &str| Finding {
        key: format!("node_down:{node}"),
        kind: IncidentKind::NodeDown,
        severity: Severity::P2,
        nodes: vec![node.into()],
        // what a detector writes for operators: the probe's error, which may name addresses
        summary: format!(
            "{node} (rpc) is down: connect 10.9.8.7:10332 refused (3 failed probes in a row)"
        ),
        evidence: json!({"error": "connect 10.9.8.7:10332: refused"}),
    };
    // one incident from `from` to `to` minutes ago (resolved through the stability window)
    let outage = |f: Finding, from: i64, to: i64| async move {
        let a = Assessment {
            findings: vec![f],
            ..Default::default()
        };
        round(store, &a, ago(from)).await;
        let id = store.open_incidents().await.unwrap()[0].id;
        let clear = Assessment::default();
        round(store, &clear, ago(to) - jiff::SignedDuration::from_secs(1)).await;
        round(store, &clear, ago(to)).await;
        let (i, _) = store.incident(id).await.unwrap().unwrap();
        assert_eq!(
            (i.opened_at, i.resolved_at),
            (ago(from), Some(ago(to))),
            "{i:?}"
        );
        id
    };
    let mutate = |id: i64, f: Box<dyn Fn(&_) -> _ + Send + Sync>| {
        let actor = actor.clone();
        async move {
            store
                .mutate(id, &Audit::new(&actor, "test", json!({})), f)
                .await
                .unwrap()
                .unwrap();
        }
    };

    let ancient_down = outage(down("validator-1"), 41 * day, 40 * day).await;
    let old_down = outage(down("validator-2"), 31 * day, 29 * day).await;

    let a = Assessment {
        findings: vec![down("rpc-1")],
        ..Default::default()
    };
    round(store, &a, ago(120)).await;
    let rpc_down = store.open_incidents().await.unwrap()[0].id;
    let (a1, a2) = (actor.clone(), actor.clone());
    mutate(
        rpc_down,
        Box::new(move |i| respond::status_update(i, "rpc-1 restarted, catching up", &a1, ago(90))),
    )
    .await;
    mutate(
        rpc_down,
        Box::new(move |i| respond::note(i, SECRET_NOTE, &a2, ago(80))),
    )
    .await;
    let clear = Assessment::default();
    round(store, &clear, ago(60) - jiff::SignedDuration::from_secs(1)).await;
    round(store, &clear, ago(60)).await;
    let (i, _) = store.incident(rpc_down).await.unwrap().unwrap();
    assert_eq!(i.resolved_at, Some(ago(60)));

    let sync = Finding {
        key: "sync_failure:rpc-2".into(),
        kind: IncidentKind::SyncFailure,
        severity: Severity::P2,
        nodes: vec!["rpc-2".into()],
        summary: "rpc-2 is <b>x</b> blocks behind its peer 10.9.8.7:10333".into(),
        evidence: json!({"peer": "10.9.8.7:10333", "lag": 40}),
    };
    let a = Assessment {
        findings: vec![sync],
        ..Default::default()
    };
    round(store, &a, ago(30)).await;
    let open_sync = store.open_incidents().await.unwrap()[0].id;
    let (a1, a2, a3) = (actor.clone(), actor.clone(), actor.clone());
    mutate(
        open_sync,
        Box::new(move |i| respond::status_update(i, "investigating rpc-2", &a1, ago(20))),
    )
    .await;
    mutate(
        open_sync,
        Box::new(move |i| {
            respond::status_update(i, "rpc-2 is resyncing <b>from a snapshot</b>", &a2, ago(10))
        }),
    )
    .await;
    mutate(
        open_sync,
        Box::new(move |i| respond::note(i, SECRET_NOTE, &a3, ago(5))),
    )
    .await;

    let view = |name: &str, role: &str, state: &str, height: u64, lag: u64, magic: u32| {
        serde_json::from_value::<neo_ir_core::fleet::NodeView>(json!({
            "name": name,
            "role": role,
            "state": state,
            "height": height,
            "lag": lag,
            "network": magic,
            "user_agent": "/NEO-GO:0.120.0/",
            "error": if state == "down" { Some("connect 10.7.7.7:10332: refused") } else { None },
            "consecutive_failures": 0,
        }))
        .unwrap()
    };
    let views = [
        view("validator-1", "validator", "ok", 1000, 0, 860_833_102),
        view("validator-2", "validator", "down", 990, 10, 860_833_102),
        view("rpc-1", "rpc", "ok", 1000, 0, 860_833_102),
        view("rpc-2", "rpc", "ok", 960, 40, 894_710_606),
    ];
    store.save_nodes(&views, now).await.unwrap();
    StatusFixture {
        rpc_down,
        old_down,
        ancient_down,
        open_sync,
    }
}

/// GET `path` without a token: status, content type, body.
async fn fetch(base: &str, path: &str) -> (u16, String, String) {
    let r = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

/// Texts that must never be public.
fn assert_nothing_internal(body: &str) {
    for secret in [
        SECRET_NOTE,
        "10.1.2.3",
        "abc123",
        "10.9.8.7",
        "10.7.7.7",
        "NEO-GO",
        "alice",
        "evidence",
        "acked_by",
        // the detectors' summaries are for operators
        "blocks behind its peer",
        "failed probes in a row",
    ] {
        assert!(!body.contains(secret), "{secret:?} is public: {body}");
    }
}

#[tokio::test]
async fn status_shows_only_public_fields_as_json_and_html() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let f = status_fixture(&store).await;
    let (base, _stop) = start(store.clone()).await;

    let (s, ct, body) = fetch(&base, "/api/v1/status").await;
    assert_eq!((s, ct.as_str()), (200, "application/json"));
    assert_nothing_internal(&body);
    let v: Value = serde_json::from_str(&body).unwrap();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&v),
        [
            "generated_at",
            "groups",
            "network",
            "open",
            "overall",
            "resolved_30d"
        ]
    );
    assert_eq!(v["network"], "MainNet", "three of the four nodes say so");
    assert_eq!(v["overall"], "partial_outage", "a P2 is open");

    // groups: validator-2 is down; rpc-2 answers but an open incident names it
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        (&groups[0]["name"], &groups[0]["state"]),
        (&json!("Validators"), &json!("down"))
    );
    assert_eq!(
        (&groups[1]["name"], &groups[1]["state"]),
        (&json!("RPC nodes"), &json!("degraded"))
    );
    let node = |g: usize, name: &str| {
        groups[g]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {}", groups[g]))
            .clone()
    };
    assert_eq!(
        node(1, "rpc-1"),
        json!({"name": "rpc-1", "state": "operational", "height": 1000, "lag": 0,
               // one hour down in 30 days: 100 × (1 − 3600 / 2,592,000) = 99.8611…
               "uptime_30d_percent": 99.861})
    );
    let rpc2 = node(1, "rpc-2");
    assert_eq!(
        (&rpc2["state"], &rpc2["lag"], &rpc2["uptime_30d_percent"]),
        (&json!("degraded"), &json!(40), &json!(100.0)),
        "only node_down incidents count against uptime"
    );
    assert_eq!(node(0, "validator-1")["uptime_30d_percent"], 100.0);
    assert_eq!(node(0, "validator-1")["state"], "operational");
    let v2 = node(0, "validator-2");
    assert_eq!(v2["state"], "down");
    // down from 31 to 29 days ago: one day in the window, 100 × (1 − 1/30) = 96.666…
    assert_eq!(v2["uptime_30d_percent"], 96.667);

    // the open incident: its latest status update, never the newer note
    let open = v["open"].as_array().unwrap();
    assert_eq!(open.len(), 1);
    let o = &open[0];
    assert_eq!(
        keys(o),
        [
            "id",
            "kind",
            "latest_update",
            "nodes",
            "opened_at",
            "phase",
            "severity",
            "summary"
        ]
    );
    assert_eq!(o["id"], f.open_sync);
    assert_eq!(o["kind"], "sync_failure");
    assert_eq!(o["severity"], "P2");
    assert_eq!(o["phase"], "detected");
    assert_eq!(o["nodes"], json!(["rpc-2"]));
    // the public summary, not the detector's
    assert_eq!(o["summary"], "rpc-2 is behind the chain");
    assert_eq!(
        o["latest_update"]["text"], "rpc-2 is resyncing <b>from a snapshot</b>",
        "JSON is data: the text as written"
    );
    assert_eq!(keys(&o["latest_update"]), ["at", "text"]);

    // resolved in the window, newest first; the one before the window is not listed
    let resolved = v["resolved_30d"].as_array().unwrap();
    let ids: Vec<i64> = resolved.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [f.rpc_down, f.old_down]);
    assert!(!ids.contains(&f.ancient_down));
    let r = &resolved[0];
    assert_eq!(
        keys(r),
        [
            "duration_ms",
            "id",
            "kind",
            "latest_update",
            "opened_at",
            "resolved_at",
            "severity",
            "summary"
        ]
    );
    assert_eq!(r["kind"], "node_down");
    assert_eq!(r["duration_ms"], 3_600_000);
    assert_eq!(r["summary"], "rpc-1 is not answering");
    assert_eq!(r["latest_update"]["text"], "rpc-1 restarted, catching up");
    assert!(resolved[1]["latest_update"].is_null());
    assert_eq!(resolved[1]["duration_ms"], 2 * 86_400_000);
    let generated: Timestamp = v["generated_at"].as_str().unwrap().parse().unwrap();
    assert!(generated.duration_until(Timestamp::now()).abs() < jiff::SignedDuration::from_secs(60));

    // the page
    let (s, ct, html) = fetch(&base, "/status").await;
    assert_eq!((s, ct.as_str()), (200, "text/html; charset=utf-8"));
    assert_nothing_internal(&html);
    assert!(!html.to_lowercase().contains("<script"), "{html}");
    for want in [
        "<title>Neo network status</title>",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<meta http-equiv=\"refresh\" content=\"30\">",
        "MainNet",
        "Partial outage",
        "Validators",
        "RPC nodes",
        "validator-2",
        "99.861% uptime",
        "96.667% uptime",
        &format!("#{} Sync failure", f.open_sync),
        "rpc-2 is behind the chain",
        "rpc-2 is resyncing &lt;b&gt;from a snapshot&lt;/b&gt;",
        "Resolved in the last 30 days",
        &format!("#{} Node down", f.rpc_down),
        "rpc-1 is not answering",
        "rpc-1 restarted, catching up",
        "(1 h 0 min)",
    ] {
        assert!(html.contains(want), "no {want:?} in {html}");
    }
    assert!(!html.contains("<b>"), "the update's markup is escaped");
    assert!(!html.contains(&format!("#{} ", f.ancient_down)));
    assert!(!html.contains("http://") && !html.contains("https://"));
}

#[tokio::test]
async fn status_is_public_even_when_reads_are_protected() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let mut auth = tokens();
    auth.protect_reads = true;
    let (base, _stop) = start_with(store.clone(), auth).await;
    assert_eq!(fetch(&base, "/api/v1/incidents").await.0, 401);
    assert_eq!(fetch(&base, "/api/v1/nodes").await.0, 401);
    let (s, _, body) = fetch(&base, "/api/v1/status").await;
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["overall"], "operational");
    assert_eq!(v["network"], Value::Null);
    assert_eq!(v["groups"], json!([]));
    assert_eq!(v["open"], json!([]));
    let (s, ct, html) = fetch(&base, "/status").await;
    assert_eq!((s, ct.as_str()), (200, "text/html; charset=utf-8"));
    assert!(html.contains("All systems operational"));
    assert!(html.contains("No open incidents."));
}

#[tokio::test]
async fn status_page_renders_in_a_phone_browser() {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        println!("skipping the browser test: /usr/bin/chromium is not installed");
        return;
    }
    let store = Store::open("sqlite::memory:").await.unwrap();
    let f = status_fixture(&store).await;
    let (base, _stop) = start(store.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{base}/status");

    // one headless run: its stdout, within a minute
    let run = |dir: std::path::PathBuf, tag: &'static str, extra: Vec<String>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::fs::File::create(dir.join(format!("{tag}.out"))).unwrap();
            let err = std::fs::File::create(dir.join(format!("{tag}.err"))).unwrap();
            let started = std::time::Instant::now();
            let mut child = std::process::Command::new("/usr/bin/chromium")
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                    &format!(
                        "--user-data-dir={}",
                        dir.join(format!("profile-{tag}")).display()
                    ),
                    "--window-size=390,844",
                ])
                .args(&extra)
                .arg(&url)
                .stdin(std::process::Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap();
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let stderr =
                        std::fs::read_to_string(dir.join(format!("{tag}.err"))).unwrap_or_default();
                    assert!(
                        status.success(),
                        "chromium {tag} failed: {status}: {stderr}"
                    );
                    break;
                }
                if started.elapsed() > Duration::from_secs(60) {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("chromium {tag} took more than 60 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            println!("chromium {tag}: {:?}", started.elapsed());
            std::fs::read_to_string(dir.join(format!("{tag}.out"))).unwrap()
        })
    };

    let dom = run(dir.path().into(), "dom", vec!["--dump-dom".into()])
        .await
        .unwrap();
    assert!(dom.contains("Partial outage"), "{dom}");
    assert!(
        dom.contains(&format!("#{} Sync failure", f.open_sync)),
        "{dom}"
    );
    assert!(dom.contains("rpc-2 is behind the chain"), "{dom}");
    // the update's markup stayed text: no <b> element was made of it
    assert!(
        dom.contains("rpc-2 is resyncing &lt;b&gt;from a snapshot&lt;/b&gt;"),
        "{dom}"
    );
    assert!(!dom.contains("<b>"), "{dom}");
    assert_nothing_internal(&dom);

    let png = dir.path().join("status.png");
    run(
        dir.path().into(),
        "shot",
        vec![format!("--screenshot={}", png.display())],
    )
    .await
    .unwrap();
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 1024, "the screenshot is {size} bytes");
    // to look at it: NEO_IR_STATUS_SCREENSHOT=/tmp/status.png cargo test ... -- --nocapture
    if let Ok(keep) = std::env::var("NEO_IR_STATUS_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
}
