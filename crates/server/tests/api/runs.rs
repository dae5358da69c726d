//! The runbook endpoints against a simulated Neo network on port 0 with a real SQLite file:
//! starting network scripts (auth, validation, dry runs, polling to the end), runs on an
//! incident's timeline, the incident's checklist with marks and with what runs did, and an
//! instance without a runner.

use std::sync::Arc;
use std::time::{Duration, Instant};

use neo_ir_core::config::{Config, NodeConfig};
use neo_ir_core::incident::IncidentKind;
use neo_ir_core::runbook::checklist;
use neo_ir_core::SystemClock;
use neo_ir_runbook::runner::Runner;
use neo_ir_sim::{Fault, SimConfig, SimNetwork};
use neo_ir_store::Store;
use serde_json::{json, Value};
use tempfile::TempDir;

use super::{code, Api, READ, WRITE};

/// How long a run may take to reach a final status (a restart waits for the node's RPC).
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// The configuration of a runner over `nodes`: short probe timeouts (a crashed node answers
/// nothing at once), agent calls bounded well below the test deadline.
pub(crate) fn config(nodes: Vec<NodeConfig>, store_url: &str) -> Config {
    let mut c = Config::with_defaults(nodes, store_url);
    c.probe.timeout = Duration::from_millis(500);
    c.runbook.agent_timeout = Duration::from_secs(45);
    c.runbook.verify_within = Duration::from_secs(20);
    c
}

/// An API with a runner over `cfg`'s nodes and a store in a temporary directory.
pub(crate) struct Served {
    pub api: Api,
    _dir: TempDir,
}

impl Served {
    pub(crate) async fn start(nodes: Vec<NodeConfig>) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/neo-ir.db", dir.path().display());
        let cfg = config(nodes, &url);
        let store = Store::open(&url).await.expect("store opens");
        let runner = Runner::new(store.clone(), Arc::new(cfg), Arc::new(SystemClock))
            .expect("runner builds");
        let api = Api::start_full(store, Some(Arc::new(runner))).await;
        Served { api, _dir: dir }
    }
}

/// `POST /api/v1/runs` as "ops": the answer's status and the run.
pub(crate) async fn start_run(api: &Api, body: Value) -> (u16, Value) {
    api.post("/api/v1/runs", WRITE, body).await
}

/// The run's id from an answer carrying it.
pub(crate) fn id_of(run: &Value) -> i64 {
    run["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no run id in {run}"))
}

/// Poll `GET /api/v1/runs/{id}` every 50 ms until the run is final (up to [`RUN_DEADLINE`]).
pub(crate) async fn final_run(api: &Api, id: i64) -> Value {
    let deadline = Instant::now() + RUN_DEADLINE;
    loop {
        let v = read(api, &format!("/api/v1/runs/{id}")).await;
        let status = v["status"].as_str().unwrap_or_default().to_string();
        if !matches!(status.as_str(), "running" | "awaiting_approval") {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "run {id} is still {status} after {RUN_DEADLINE:?}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Start a run that executes at once (202 while it runs, 201 when it already ended) and
/// wait for its end.
pub(crate) async fn run_to_end(api: &Api, body: Value) -> Value {
    let (s, v) = start_run(api, body.clone()).await;
    assert!(s == 202 || s == 201, "{body}: {s} {v}");
    if s == 202 {
        assert_eq!(v["status"], "running", "{v}");
    }
    final_run(api, id_of(&v)).await
}

/// `GET path` without a token, which must answer 200: its JSON.
async fn read(api: &Api, path: &str) -> Value {
    let (s, v) = api.get(path, None).await;
    assert_eq!(s, 200, "{path}: {v}");
    v
}

/// The incident's timeline events of `type`.
pub(crate) async fn events(api: &Api, incident: i64, t: &str) -> Vec<Value> {
    read(api, &format!("/api/v1/incidents/{incident}")).await["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == t)
        .cloned()
        .collect()
}

/// The checklist entry `key` of incident `incident`.
pub(crate) async fn item(api: &Api, incident: i64, key: &str) -> Value {
    let v = read(api, &format!("/api/v1/incidents/{incident}/runbook")).await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == key)
        .cloned()
        .unwrap_or_else(|| panic!("no item {key} in {v}"))
}

async fn network() -> SimNetwork {
    let net = SimNetwork::start(SimConfig {
        validators: 4,
        rpc: 2,
        msperblock: 200,
        ..SimConfig::default()
    })
    .await
    .expect("sim starts");
    // validate_sync compares block hashes at a common height: let the chain grow a little
    let deadline = Instant::now() + Duration::from_secs(20);
    while net.height() < 3 {
        assert!(
            Instant::now() < deadline,
            "the simulated chain did not grow"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    net
}

#[tokio::test]
async fn validate_sync_runs_over_the_api_and_a_crashed_node_fails_it() {
    let net = network().await;
    let served = Served::start(neo_ir_watch::simulated_nodes(&net)).await;
    let api = &served.api;
    let body = json!({"script": "validate_sync"});

    // a write token is needed; nothing is stored without one
    assert_eq!(
        code(&api.post("/api/v1/runs", None, body.clone()).await),
        (401, "unauthorized")
    );
    assert_eq!(
        code(&api.post("/api/v1/runs", Some("nope"), body.clone()).await),
        (401, "unauthorized")
    );
    assert_eq!(
        code(&api.post("/api/v1/runs", READ, body.clone()).await),
        (403, "forbidden")
    );
    let (s, v) = api.get("/api/v1/runs", None).await;
    assert_eq!(
        (s, v["runs"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );

    let run = run_to_end(api, body.clone()).await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["script"], "validate_sync");
    assert_eq!(run["args"], json!([]));
    assert!(
        run["node"].is_null() && run["incident_id"].is_null(),
        "{run}"
    );
    assert_eq!(run["summary"], "all 6 nodes in sync");
    assert!(
        run["requested_by"]
            .as_str()
            .unwrap()
            .starts_with("ops (api 127.0.0.1:"),
        "{run}"
    );
    assert!(run["approved_by"].is_null(), "{run}");
    assert_eq!(run["automatic"], false);
    assert!(run["finished_at"].is_string() && run["created_at"].is_string());
    let nodes = run["report"]["nodes"].as_array().expect("report has nodes");
    assert_eq!(nodes.len(), 6, "{run:#}");
    assert!(nodes.iter().all(|n| n["verdict"] == "ok"), "{run:#}");
    assert_eq!(run["report"]["ok"], true);
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{run:#}");
    assert_eq!(results[0]["status"], "ok");
    assert!(
        results[0]["output"]
            .as_str()
            .unwrap()
            .contains("validate_sync: OK"),
        "{run:#}"
    );
    // the plan it ran: one read-only JSON-RPC step over every node
    let step = &run["plan"]["steps"][0];
    assert_eq!(step["name"], "validate_sync");
    assert_eq!(step["action"]["type"], "builtin");
    assert_eq!(step["action"]["op"], "json_rpc");
    assert_eq!(step["destructive"], false);

    // a crashed node fails it, named
    net.inject("rpc-1", Fault::Crash).await.unwrap();
    let failed = run_to_end(api, body).await;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert_eq!(failed["summary"], "not in sync: rpc-1", "{failed:#}");
    assert_eq!(failed["report"]["ok"], false);
    let down = failed["report"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "rpc-1")
        .cloned()
        .unwrap();
    assert_eq!(down["verdict"], "down", "{down}");
    assert_eq!(failed["results"][0]["status"], "failed");

    // the list, newest first, filtered
    let (s, v) = api.get("/api/v1/runs", None).await;
    assert_eq!(s, 200);
    let ids: Vec<i64> = v["runs"].as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, [id_of(&failed), id_of(&run)]);
    let (_, v) = api.get("/api/v1/runs?status=failed", None).await;
    assert_eq!(v["runs"].as_array().unwrap().len(), 1, "{v}");
    let (_, v) = api.get("/api/v1/runs?limit=1", None).await;
    assert_eq!(v["runs"][0]["id"], id_of(&failed));
    for bad in ["status=bogus", "limit=0", "limit=x", "incident=x"] {
        assert_eq!(
            code(&api.get(&format!("/api/v1/runs?{bad}"), None).await),
            (400, "bad_request"),
            "{bad}"
        );
    }
    assert_eq!(code(&api.get("/api/v1/runs/987654", None).await).0, 404);
    assert_eq!(code(&api.get("/api/v1/runs/abc", None).await).0, 404);
}

#[tokio::test]
async fn bad_run_requests_are_clear_errors_and_a_dry_run_changes_nothing() {
    let net = network().await;
    let mut nodes = neo_ir_watch::simulated_nodes(&net);
    // rpc-1 has no agent; rpc-2's agent does not listen; validator-1's token is not set
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let set = format!(
        "NEO_IR_SERVER_TEST_AGENT_TOKEN_CLOSED_{}",
        std::process::id()
    );
    std::env::set_var(&set, "a-token-for-nobody");
    let unset = format!(
        "NEO_IR_SERVER_TEST_AGENT_TOKEN_UNSET_{}",
        std::process::id()
    );
    for n in &mut nodes {
        let var = match n.name.as_str() {
            "rpc-2" => &set,
            "validator-1" => &unset,
            _ => continue,
        };
        n.agent = Some(format!("http://127.0.0.1:{closed}"));
        n.agent_token_env = Some(var.clone());
    }
    let served = Served::start(nodes).await;
    let api = &served.api;

    let (s, v) = start_run(api, json!({"script": "rm_rf"})).await;
    assert_eq!(code(&(s, v.clone())), (400, "bad_request"), "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    for script in ["validate_sync", "restart_node", "incident_diagnostics"] {
        assert!(msg.contains(script), "the scripts are listed: {msg}");
    }

    let (s, v) = start_run(api, json!({"script": "validate_sync", "node": "rpc-9"})).await;
    assert_eq!(s, 400, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("rpc-9") && msg.contains("validator-1"),
        "names the node and the known ones: {msg}"
    );

    let (s, v) = start_run(
        api,
        json!({"script": "validate_sync", "incident_id": 424242}),
    )
    .await;
    assert_eq!(code(&(s, v.clone())), (404, "not_found"), "{v}");

    for bad in [
        json!({"script": "validate_sync", "args": ["--max-lag", "x"]}),
        json!({"script": "validate_sync", "args": ["--bogus"]}),
        json!({"script": "validate_sync", "extra": 1}),
        json!({"args": []}),
        json!({"script": 7}),
        // a host script needs a node (or an incident with one)
        json!({"script": "quick_recovery"}),
        // and that node needs an agent
        json!({"script": "restart_node", "node": "rpc-1"}),
    ] {
        let (s, v) = start_run(api, bad.clone()).await;
        assert_eq!(code(&(s, v.clone())), (400, "bad_request"), "{bad}: {v}");
    }
    let (_, v) = start_run(api, json!({"script": "restart_node", "node": "rpc-1"})).await;
    assert!(
        v["error"]["message"].as_str().unwrap().contains("agent"),
        "{v}"
    );
    let (s, v) = start_run(
        api,
        json!({"script": "restart_node", "node": "validator-1"}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains(&unset),
        "names the variable: {v}"
    );
    let (s, v) = api
        .call(
            reqwest::Method::POST,
            "/api/v1/runs",
            WRITE,
            Some(Value::String("validate_sync".into())),
        )
        .await;
    assert_eq!(s, 400, "{v}");

    let (s, v) = api.get("/api/v1/runs", None).await;
    assert_eq!(
        (s, v["runs"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );

    // an agent that cannot be reached: the run is stored as refused, saying why
    let (s, refused) = start_run(api, json!({"script": "restart_node", "node": "rpc-2"})).await;
    assert_eq!(s, 201, "{refused}");
    assert_eq!(refused["status"], "refused", "{refused:#}");
    assert!(
        refused["summary"]
            .as_str()
            .unwrap()
            .starts_with("restart_node on rpc-2: "),
        "{refused}"
    );
    assert_eq!(refused["plan"]["steps"], json!([]));
    assert!(refused["finished_at"].is_string(), "{refused}");
    let approve_refused = format!("/api/v1/runs/{}/approve", id_of(&refused));
    assert_eq!(
        code(&api.post(&approve_refused, WRITE, json!({})).await),
        (409, "conflict")
    );

    // a dry run: the plan, final at once, nothing executed
    let (s, dry) = start_run(api, json!({"script": "validate_sync", "dry_run": true})).await;
    assert_eq!(s, 201, "{dry}");
    assert_eq!(dry["status"], "dry_run");
    assert_eq!(dry["summary"], "dry run: 1 steps, nothing changed");
    assert_eq!(dry["results"], json!([]));
    assert!(dry["finished_at"].is_string(), "{dry}");
    let steps = dry["plan"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{dry:#}");
    assert_eq!(steps[0]["name"], "validate_sync");
    assert_eq!(steps[0]["action"]["type"], "builtin");
    assert_eq!(steps[0]["action"]["op"], "json_rpc");
    let detail = steps[0]["action"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("6 node(s)") && detail.contains("read-only"),
        "{detail}"
    );
    assert_eq!(steps[0]["timeout"], 120_000, "milliseconds");
    assert_eq!(steps[0]["expect_exit"], json!([0]));
    assert_eq!(steps[0]["destructive"], false);
    assert_eq!(dry["plan"]["notes"], json!([]));
    let id = id_of(&dry);
    assert_eq!(final_run(api, id).await, dry, "stored as answered");

    // a dry run waits for nothing: it cannot be approved or declined
    let approve = format!("/api/v1/runs/{id}/approve");
    let decline = format!("/api/v1/runs/{id}/decline");
    assert_eq!(code(&api.post(&approve, WRITE, json!({})).await).0, 409);
    assert_eq!(
        code(&api.post(&decline, WRITE, json!({"reason": "no"})).await).0,
        409
    );
    assert_eq!(
        code(
            &api.post("/api/v1/runs/987654/approve", WRITE, json!({}))
                .await
        )
        .0,
        404
    );
    assert_eq!(
        code(
            &api.post(
                "/api/v1/runs/987654/decline",
                WRITE,
                json!({"reason": "no"})
            )
            .await
        )
        .0,
        404
    );
    let (s, v) = api.get("/api/v1/runs", None).await;
    assert_eq!(
        (s, v["runs"].as_array().map(Vec::len)),
        (200, Some(2)),
        "the refused run and the dry run: {v}"
    );
}

#[tokio::test]
async fn runs_on_an_incident_are_on_its_timeline_and_do_its_checklist() {
    let net = network().await;
    let served = Served::start(neo_ir_watch::simulated_nodes(&net)).await;
    let api = &served.api;
    let id = api
        .declare_on("node_down", "rpc-1 is down", &["rpc-1"])
        .await;
    let runbook = format!("/api/v1/incidents/{id}/runbook");

    // the kind's checklist, nothing done yet
    let (s, v) = api.get(&runbook, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["incident_id"].as_i64(), v["kind"].as_str()),
        (Some(id), Some("node_down"))
    );
    let items = v["items"].as_array().unwrap();
    let expected = checklist(IncidentKind::NodeDown);
    assert_eq!(items.len(), expected.len(), "{v:#}");
    for (got, want) in items.iter().zip(expected) {
        assert_eq!(got["key"], want.key);
        assert_eq!(got["text"], want.text);
        assert_eq!(got["script"], json!(want.script));
        assert_eq!(got["done"], false, "{got}");
        assert!(got["by"].is_null() && got["at"].is_null() && got["run_id"].is_null());
        assert_eq!(got["runs"], json!([]));
    }

    // a person marks an item: a write token, their token's name, on the timeline
    let mark = format!("{runbook}/service_status");
    let done = json!({"done": true});
    assert_eq!(code(&api.post(&mark, None, done.clone()).await).0, 401);
    assert_eq!(code(&api.post(&mark, READ, done.clone()).await).0, 403);
    let (s, v) = api.post(&mark, WRITE, done.clone()).await;
    assert_eq!(s, 200, "{v}");
    let marked = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "service_status")
        .unwrap();
    assert_eq!(marked["done"], true);
    assert_eq!(marked["by"], "ops");
    assert!(marked["at"].is_string() && marked["run_id"].is_null());
    let steps = events(api, id, "checklist_step").await;
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(steps[0]["data"]["key"], "service_status");
    assert_eq!(steps[0]["data"]["done"], true);
    assert_eq!(steps[0]["data"]["by"], "ops");
    assert!(
        steps[0]["message"].as_str().unwrap().contains("done"),
        "{}",
        steps[0]
    );

    // an unknown key is refused, naming the items; so are bad bodies and unknown incidents
    let (s, v) = api
        .post(&format!("{runbook}/reboot"), WRITE, done.clone())
        .await;
    assert_eq!(code(&(s, v.clone())), (400, "bad_request"), "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("quick_recovery") && msg.contains("verify"),
        "{msg}"
    );
    for bad in [
        json!({"done": "yes"}),
        json!({}),
        json!({"done": true, "by": "x"}),
    ] {
        assert_eq!(
            code(&api.post(&mark, WRITE, bad.clone()).await).0,
            400,
            "{bad}"
        );
    }
    assert_eq!(
        code(
            &api.post(
                "/api/v1/incidents/424242/runbook/verify",
                WRITE,
                done.clone()
            )
            .await
        ),
        (404, "not_found")
    );
    assert_eq!(
        code(&api.get("/api/v1/incidents/424242/runbook", None).await).0,
        404
    );
    assert_eq!(events(api, id, "checklist_step").await.len(), 1);

    // a run on the incident: on its timeline as it starts and as it ends
    let run = run_to_end(api, json!({"script": "validate_sync", "incident_id": id})).await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["incident_id"], id);
    let run_id = id_of(&run);
    let runs = events(api, id, "runbook_run").await;
    let statuses: Vec<&str> = runs
        .iter()
        .filter(|e| e["data"]["run_id"] == run_id)
        .map(|e| e["data"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["running", "succeeded"], "{runs:#?}");
    let last = runs.last().unwrap();
    assert_eq!(last["data"]["script"], "validate_sync");
    assert_eq!(last["data"]["by"], "ops");
    assert!(
        last["message"].as_str().unwrap().contains(&format!(
            "validate_sync succeeded: all 6 nodes in sync (run {run_id})"
        )),
        "{last}"
    );
    assert!(
        last["data"]["output"]
            .as_str()
            .unwrap()
            .contains("validate_sync: OK"),
        "{last}"
    );
    let (_, v) = api.get(&format!("/api/v1/runs?incident={id}"), None).await;
    assert_eq!(v["runs"].as_array().unwrap().len(), 1, "{v}");

    // ... and it did the checklist's verify step, by the run
    let verify = item(api, id, "verify").await;
    assert_eq!(verify["done"], true, "{verify}");
    assert_eq!(verify["by"], format!("run {run_id}"));
    assert_eq!(verify["run_id"], run_id);
    assert_eq!(verify["at"], run["finished_at"]);
    assert_eq!(
        verify["runs"],
        json!([{"id": run_id, "status": "succeeded", "summary": "all 6 nodes in sync"}])
    );
    // a person's mark wins over the run
    let (s, v) = api
        .post(&format!("{runbook}/verify"), WRITE, json!({"done": false}))
        .await;
    assert_eq!(s, 200, "{v}");
    let verify = item(api, id, "verify").await;
    assert_eq!(
        (verify["done"].as_bool(), verify["by"].as_str()),
        (Some(false), Some("ops"))
    );

    // no attachments from a network script
    let (s, v) = api
        .get(&format!("/api/v1/incidents/{id}/attachments"), None)
        .await;
    assert_eq!((s, v), (200, json!({"attachments": []})));
    assert_eq!(
        code(&api.get("/api/v1/incidents/424242/attachments", None).await).0,
        404
    );
    assert_eq!(
        code(&api.get("/api/v1/attachments/424242", None).await).0,
        404
    );
    assert_eq!(code(&api.get("/api/v1/attachments/abc", None).await).0, 404);
}

#[tokio::test]
async fn a_successful_validate_sync_does_the_items_whose_script_it_is() {
    let net = network().await;
    let served = Served::start(neo_ir_watch::simulated_nodes(&net)).await;
    let api = &served.api;
    for kind in IncidentKind::ALL {
        let id = api
            .declare_on(kind.as_str(), "checked by validate_sync", &["rpc-2"])
            .await;
        let run = run_to_end(api, json!({"script": "validate_sync", "incident_id": id})).await;
        assert_eq!(run["status"], "succeeded", "{kind}: {run:#}");
        let (_, v) = api
            .get(&format!("/api/v1/incidents/{id}/runbook"), None)
            .await;
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), checklist(kind).len());
        for (got, want) in items.iter().zip(checklist(kind)) {
            let by_this_script = want.script == Some("validate_sync");
            assert_eq!(got["done"], by_this_script, "{kind} {}: {got}", want.key);
            if by_this_script {
                assert_eq!(got["by"], format!("run {}", id_of(&run)), "{kind}: {got}");
            } else {
                assert!(got["by"].is_null(), "{kind}: {got}");
            }
        }
        // where the checklist verifies with validate_sync, its verify step is done now
        let verify = checklist(kind).iter().find(|i| i.key == "verify").unwrap();
        let verify_done = items
            .iter()
            .any(|i| i["key"] == "verify" && i["done"] == true);
        assert_eq!(
            verify_done,
            verify.script == Some("validate_sync"),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn without_a_runner_runs_are_unavailable_but_reads_and_marks_work() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let api = Api::start(store).await;
    let unavailable = (503, "runbooks_unavailable");
    assert_eq!(
        code(
            &api.post("/api/v1/runs", WRITE, json!({"script": "validate_sync"}))
                .await
        ),
        unavailable
    );
    assert_eq!(
        code(&api.post("/api/v1/runs/1/approve", WRITE, json!({})).await),
        unavailable
    );
    assert_eq!(
        code(
            &api.post("/api/v1/runs/1/decline", WRITE, json!({"reason": "x"}))
                .await
        ),
        unavailable
    );
    let (s, v) = api.get("/api/v1/runs", None).await;
    assert_eq!((s, v), (200, json!({"runs": []})));
    let id = api.declare().await;
    let (s, v) = api
        .post(
            &format!("/api/v1/incidents/{id}/runbook/diagnostics"),
            WRITE,
            json!({"done": true}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let d = item(&api, id, "diagnostics").await;
    assert_eq!(
        (d["done"].as_bool(), d["by"].as_str()),
        (Some(true), Some("ops"))
    );
}

#[tokio::test]
async fn a_reviewed_incident_takes_no_more_marks_or_runs() {
    let net = network().await;
    let served = Served::start(neo_ir_watch::simulated_nodes(&net)).await;
    let api = &served.api;
    let id = api
        .declare_on("node_down", "rpc-1 was down", &["rpc-1"])
        .await;
    let path = format!("/api/v1/incidents/{id}/transition");
    let (s, v) = api
        .post(
            &path,
            WRITE,
            json!({"to": "resolved", "root_cause": "a full disk"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let at = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24)).to_string();
    let (s, v) = api
        .post(
            &format!("/api/v1/incidents/{id}/review"),
            WRITE,
            json!({"at": at}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api.post(&path, WRITE, json!({"to": "reviewed"})).await;
    assert_eq!(
        (s, v["incident"]["status"].as_str()),
        (200, Some("reviewed")),
        "{v}"
    );
    let timeline = api.timeline(id).await;

    // its record is closed: as acknowledging or taking a role, marking is a conflict
    let mark = api
        .post(
            &format!("/api/v1/incidents/{id}/runbook/verify"),
            WRITE,
            json!({"done": true}),
        )
        .await;
    assert_eq!(code(&mark), (409, "conflict"), "{}", mark.1);
    assert_eq!(item(api, id, "verify").await["done"], false);
    // and so is a run that would write on its timeline
    let run = start_run(api, json!({"script": "validate_sync", "incident_id": id})).await;
    assert_eq!(code(&run), (409, "conflict"), "{}", run.1);
    assert_eq!(api.timeline(id).await, timeline, "nothing was added");
}
