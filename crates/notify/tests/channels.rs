//! The channel senders against local stand-ins of each service (axum receivers and a tiny
//! SMTP server on 127.0.0.1, port 0): the exact request each service documents, and how
//! every kind of failure is classified. No internet.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use hmac::{Hmac, Mac};
use neo_ir_core::config::SecretSource;
use neo_ir_core::incident::{Incident, IncidentKind, Severity, Status, TimelineEvent};
use neo_ir_core::notify::{
    ChannelConfig, ChannelKind, EmailSettings, EmailTls, MessageKind, Notification, Rendered,
};
use neo_ir_notify::channel::{read_secret, Channel, Delivered, SendError};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------
// Fixtures

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

fn incident() -> Incident {
    Incident {
        id: 42,
        version: 3,
        key: "consensus_failure".into(),
        kind: IncidentKind::ConsensusFailure,
        severity: Severity::P1,
        status: Status::Investigating,
        nodes: vec!["cn-1".into(), "cn-2".into()],
        summary: "no block for 120 s".into(),
        evidence: json!({"height": 1234, "stalled_s": 120}),
        opened_at: ts("2024-05-01T10:00:00Z"),
        resolved_at: None,
        updated_at: ts("2024-05-01T10:05:00Z"),
        detected_severity: Severity::P1,
        cleared_at: None,
        roles: BTreeMap::new(),
        ack_due_at: Some(ts("2024-05-01T10:15:00Z")),
        acked_at: None,
        acked_by: None,
        ack_breached_at: None,
        escalation_policy: None,
        escalation_step: 0,
        escalation_due_at: None,
        last_update_at: None,
        update_due_at: None,
    }
}

fn notification(kind: MessageKind, event_type: &str) -> Notification {
    Notification {
        kind,
        channel: "test".into(),
        incident: incident(),
        event: TimelineEvent {
            at: ts("2024-05-01T10:00:05Z"),
            event_type: event_type.into(),
            message: format!("{event_type} happened"),
            data: json!({}),
        },
        event_id: 7,
        idempotency_key: Notification::key(42, 7, "test"),
        network: Some("MainNet".into()),
        link: Some("https://neo-ir.example.org/incidents/42".into()),
    }
}

fn alert() -> Notification {
    notification(MessageKind::Alert, "opened")
}

fn rendered() -> Rendered {
    Rendered {
        title: "[P1] INCIDENT ALERT: consensus_failure".into(),
        text: "**Status:** investigating\nBlocks stopped at 1234 on cn-1 & cn-2 <both>".into(),
    }
}

fn config(kind: ChannelKind, url: Option<String>) -> ChannelConfig {
    ChannelConfig {
        name: "test".into(),
        kind,
        url,
        secret: None,
        chat_id: None,
        email: None,
        timeout: Duration::from_secs(5),
        per_minute: 60,
        templates: None,
        drills: false,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn channel(config: ChannelConfig, secret: Option<&str>) -> Channel {
    Channel::new(config, secret.map(str::to_string), client()).unwrap()
}

// ---------------------------------------------------------------------------------------
// A recording HTTP receiver

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Recorded {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("no {name} header"))
    }
}

/// What a receiver answers: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);
type Responder = Arc<dyn Fn(&Recorded) -> Answer + Send + Sync>;

#[derive(Clone)]
struct ReceiverState {
    seen: Arc<Mutex<Vec<Recorded>>>,
    respond: Responder,
}

struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Receiver {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }

    fn only(&self) -> Recorded {
        let seen = self.requests();
        assert_eq!(seen.len(), 1, "expected one request, got {seen:?}");
        seen.into_iter().next().unwrap()
    }
}

async fn handle(
    State(st): State<ReceiverState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rec = Recorded {
        method,
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers,
        body: body.to_vec(),
    };
    let (status, headers, body) = (st.respond)(&rec);
    st.seen.lock().unwrap().push(rec);
    let mut resp = Response::builder().status(status);
    for (k, v) in headers {
        resp = resp.header(k, v);
    }
    resp.body(Body::from(body)).unwrap()
}

async fn receiver(respond: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) -> Receiver {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = ReceiverState {
        seen: seen.clone(),
        respond: Arc::new(respond),
    };
    let app = axum::Router::new().fallback(handle).with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { addr, seen }
}

fn answer(status: u16, body: &str) -> Answer {
    (status, vec![], body.to_string())
}

fn json_answer(status: u16, body: Value) -> Answer {
    (
        status,
        vec![("content-type", "application/json".into())],
        body.to_string(),
    )
}

fn reason(e: &SendError) -> &str {
    match e {
        SendError::Retry { reason, .. } | SendError::Permanent { reason } => reason,
    }
}

fn assert_retry(r: Result<Delivered, SendError>) -> (String, Option<Duration>) {
    match r {
        Err(SendError::Retry { reason, after }) => (reason, after),
        other => panic!("expected Retry, got {other:?}"),
    }
}

fn assert_permanent(r: Result<Delivered, SendError>) -> String {
    match r {
        Err(SendError::Permanent { reason }) => reason,
        other => panic!("expected Permanent, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Request shapes

#[tokio::test]
async fn webhook_posts_the_notification_signed() {
    let rx = receiver(|_| answer(204, "")).await;
    let mut cfg = config(ChannelKind::Webhook, Some(rx.url("/hooks/neo")));
    cfg.secret = Some(SecretSource::Env("UNUSED".into()));
    let ch = channel(cfg, Some("hmac-key-1"));
    let n = alert();
    let d = ch.send(&n, &rendered()).await.unwrap();
    assert_eq!(d.status, 204);

    let req = rx.only();
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.path, "/hooks/neo");
    assert_eq!(req.header("content-type"), "application/json");
    assert_eq!(req.header("idempotency-key"), "neo-ir-42-7-test");
    assert_eq!(req.header("x-neo-ir-event"), "alert");

    // the signature is the HMAC-SHA256 of the exact body bytes
    let sig = req.header("x-neo-ir-signature");
    let hex_sig = sig.strip_prefix("sha256=").expect("sha256= prefix");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"hmac-key-1").unwrap();
    mac.update(&req.body);
    mac.verify_slice(&hex::decode(hex_sig).unwrap())
        .expect("signature verifies over the raw body");

    let body = req.json();
    assert_eq!(body["kind"], "alert");
    assert_eq!(body["title"], rendered().title);
    assert_eq!(body["text"], rendered().text);
    assert_eq!(body["idempotency_key"], "neo-ir-42-7-test");
    assert_eq!(body["incident"], serde_json::to_value(&n.incident).unwrap());
    assert_eq!(body["event"], serde_json::to_value(&n.event).unwrap());
    assert_eq!(body["event"]["type"], "opened");
    assert_eq!(body["network"], "MainNet");
    assert_eq!(body["link"], "https://neo-ir.example.org/incidents/42");
    assert_eq!(
        body["channel_suggestion"],
        "#incident-2024-05-01-consensus-failure"
    );
}

#[tokio::test]
async fn webhook_without_a_secret_is_unsigned_and_any_2xx_succeeds() {
    let rx = receiver(|_| answer(202, "queued")).await;
    let ch = channel(config(ChannelKind::Webhook, Some(rx.url("/h"))), None);
    let d = ch
        .send(
            &notification(MessageKind::Resolved, "resolved"),
            &rendered(),
        )
        .await
        .unwrap();
    assert_eq!(d.status, 202);
    let req = rx.only();
    assert!(req.headers.get("x-neo-ir-signature").is_none());
    assert_eq!(req.header("x-neo-ir-event"), "resolved");
    assert_eq!(
        req.json()["link"],
        "https://neo-ir.example.org/incidents/42"
    );
}

#[tokio::test]
async fn slack_posts_mrkdwn_text_to_the_secret_url() {
    let rx = receiver(|_| answer(200, "ok")).await;
    let secret = rx.url("/services/T0001/B0001/XXXXXXXXXXXXXXXXXXXXXXXX");
    let ch = channel(config(ChannelKind::Slack, None), Some(&secret));
    let d = ch.send(&alert(), &rendered()).await.unwrap();
    assert_eq!(
        d,
        Delivered {
            status: 200,
            detail: "ok".into()
        }
    );
    let req = rx.only();
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.path, "/services/T0001/B0001/XXXXXXXXXXXXXXXXXXXXXXXX");
    assert_eq!(req.header("content-type"), "application/json");
    let text = req.json()["text"].as_str().unwrap().to_string();
    assert_eq!(
        text,
        "[P1] INCIDENT ALERT: consensus_failure\n*Status:* investigating\n\
         Blocks stopped at 1234 on cn-1 &amp; cn-2 &lt;both&gt;"
    );
    assert!(!text.contains("**"));
}

#[tokio::test]
async fn slack_needs_ok_and_classifies_its_errors() {
    let rx = receiver(|r| match r.path.as_str() {
        "/services/gone/XXXXXXXXXXXX" => answer(404, "no_service"),
        "/services/limited/XXXXXXXXXXXX" => (
            429,
            vec![("retry-after", "30".into())],
            "rate_limited".into(),
        ),
        _ => answer(200, "something else"),
    })
    .await;
    let ch = channel(
        config(ChannelKind::Slack, None),
        Some(&rx.url("/services/gone/XXXXXXXXXXXX")),
    );
    let r = assert_permanent(ch.send(&alert(), &rendered()).await);
    assert!(r.contains("404") && r.contains("no_service"), "{r}");

    let ch = channel(
        config(ChannelKind::Slack, None),
        Some(&rx.url("/services/limited/XXXXXXXXXXXX")),
    );
    let (_, after) = assert_retry(ch.send(&alert(), &rendered()).await);
    assert_eq!(after, Some(Duration::from_secs(30)));

    let ch = channel(
        config(ChannelKind::Slack, None),
        Some(&rx.url("/services/odd/XXXXXXXXXXXX")),
    );
    assert_permanent(ch.send(&alert(), &rendered()).await);
}

#[tokio::test]
async fn discord_waits_disables_mentions_and_keeps_to_2000_chars() {
    let rx = receiver(|_| json_answer(200, json!({"id": "1234567890", "content": "..."}))).await;
    let secret = rx.url("/api/webhooks/111/tokentokentokentoken");
    let ch = channel(config(ChannelKind::Discord, None), Some(&secret));
    let long = Rendered {
        title: "[P1] INCIDENT ALERT: consensus_failure".into(),
        text: "Ω @everyone é 😀 ".repeat(400),
    };
    let d = ch.send(&alert(), &long).await.unwrap();
    assert_eq!(d.status, 200);
    assert_eq!(d.detail, "message 1234567890");

    let req = rx.only();
    assert_eq!(req.path, "/api/webhooks/111/tokentokentokentoken");
    assert_eq!(req.query.as_deref(), Some("wait=true"));
    let body = req.json();
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
    let content = body["content"].as_str().unwrap();
    assert!(
        content.chars().count() <= 2000,
        "{}",
        content.chars().count()
    );
    assert!(content.encode_utf16().count() <= 2000);
    assert!(content.starts_with("**[P1] INCIDENT ALERT: consensus_failure**\n"));
    assert!(content.ends_with('…'));

    // 204 (no body) is success too
    let rx = receiver(|_| answer(204, "")).await;
    let ch = channel(
        config(ChannelKind::Discord, None),
        Some(&rx.url("/api/webhooks/1/abcdefghijkl")),
    );
    assert_eq!(ch.send(&alert(), &rendered()).await.unwrap().status, 204);
}

#[tokio::test]
async fn telegram_sends_plain_text_to_the_bot_path() {
    let rx =
        receiver(|_| json_answer(200, json!({"ok": true, "result": {"message_id": 77}}))).await;
    let mut cfg = config(ChannelKind::Telegram, Some(rx.url("")));
    cfg.chat_id = Some("-1001234567890".into());
    let token = "123456789:AAHsecretsecretsecretsecret";
    let ch = channel(cfg, Some(token));
    let long = Rendered {
        title: "[P2] INCIDENT ALERT".into(),
        text: format!("**Status:** detected\n{}", "x".repeat(5000)),
    };
    let d = ch.send(&alert(), &long).await.unwrap();
    assert_eq!(d.detail, "message_id 77");

    let req = rx.only();
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.path, format!("/bot{token}/sendMessage"));
    let body = req.json();
    assert_eq!(body["chat_id"], json!(-1001234567890i64));
    assert_eq!(body["disable_web_page_preview"], true);
    assert!(body.get("parse_mode").is_none());
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("[P2] INCIDENT ALERT\n\nStatus: detected\n"),
        "{text}"
    );
    assert!(text.chars().count() <= 4096);

    // a @channel name goes as a string
    let rx = receiver(|_| json_answer(200, json!({"ok": true, "result": {"message_id": 1}}))).await;
    let mut cfg = config(ChannelKind::Telegram, Some(rx.url("/")));
    cfg.chat_id = Some("@neo_ops".into());
    channel(cfg, Some(token))
        .send(&alert(), &rendered())
        .await
        .unwrap();
    let req = rx.only();
    assert_eq!(req.path, format!("/bot{token}/sendMessage"));
    assert_eq!(req.json()["chat_id"], "@neo_ops");
}

#[tokio::test]
async fn telegram_errors_are_classified() {
    let rx = receiver(|r| {
        if r.json()["chat_id"] == "@busy" {
            json_answer(
                429,
                json!({"ok": false, "error_code": 429,
                       "description": "Too Many Requests: retry after 5",
                       "parameters": {"retry_after": 5}}),
            )
        } else {
            json_answer(
                400,
                json!({"ok": false, "error_code": 400,
                       "description": format!("Bad Request: chat not found ({})", r.path)}),
            )
        }
    })
    .await;
    let token = "987654321:BBHverysecrettelegramtoken";
    let mut cfg = config(ChannelKind::Telegram, Some(rx.url("")));
    cfg.chat_id = Some("@busy".into());
    let (r, after) = assert_retry(
        channel(cfg.clone(), Some(token))
            .send(&alert(), &rendered())
            .await,
    );
    assert_eq!(after, Some(Duration::from_secs(5)));
    assert!(r.contains("Too Many Requests"), "{r}");

    cfg.chat_id = Some("@nowhere".into());
    let r = assert_permanent(channel(cfg, Some(token)).send(&alert(), &rendered()).await);
    assert!(r.contains("chat not found"), "{r}");
    assert!(
        !r.contains(token) && !r.contains("BBHverysecrettelegramtoken"),
        "{r}"
    );
}

#[tokio::test]
async fn teams_posts_an_adaptive_card() {
    let rx = receiver(|_| answer(202, "")).await;
    let secret =
        rx.url("/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=SIGSIGSIGSIG");
    let ch = channel(config(ChannelKind::Teams, None), Some(&secret));
    let d = ch.send(&alert(), &rendered()).await.unwrap();
    assert_eq!(d.status, 202);
    let req = rx.only();
    assert_eq!(req.path, "/workflows/abc/triggers/manual/paths/invoke");
    assert_eq!(req.query.as_deref(), Some("api-version=1&sig=SIGSIGSIGSIG"));
    assert_eq!(req.header("content-type"), "application/json");
    let r = rendered();
    assert_eq!(
        req.json(),
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": r.title, "weight": "Bolder", "wrap": true},
                        {"type": "TextBlock", "text": r.text, "wrap": true},
                    ],
                },
            }],
        })
    );
}

#[tokio::test]
async fn pagerduty_triggers_acknowledges_and_resolves_one_incident() {
    let rx = receiver(|r| {
        let v = r.json();
        json_answer(
            202,
            json!({"status": "success", "message": "Event processed", "dedup_key": v["dedup_key"]}),
        )
    })
    .await;
    let key = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY12";
    let ch = channel(config(ChannelKind::PagerDuty, Some(rx.url(""))), Some(key));

    let trigger = alert();
    let ack = notification(MessageKind::Update, "acknowledged");
    let resolve = notification(MessageKind::Resolved, "resolved");
    let mut details = Vec::new();
    for n in [&trigger, &ack, &resolve] {
        let d = ch.send(n, &rendered()).await.unwrap();
        assert_eq!(d.status, 202);
        details.push(d.detail);
    }
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3);
    for req in &reqs {
        assert_eq!(req.method, Method::POST);
        assert_eq!(req.path, "/v2/enqueue");
        assert_eq!(req.header("content-type"), "application/json");
    }
    let bodies: Vec<Value> = reqs.iter().map(Recorded::json).collect();
    let actions: Vec<&str> = bodies
        .iter()
        .map(|b| b["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "acknowledge", "resolve"]);
    let dedup = bodies[0]["dedup_key"].as_str().unwrap();
    assert_eq!(dedup, trigger.dedup_key());
    assert!(dedup.len() <= 255);
    assert!(bodies.iter().all(|b| b["dedup_key"] == dedup));
    assert!(details.iter().all(|d| d == dedup));
    assert!(bodies.iter().all(|b| b["routing_key"] == key));

    let t = &bodies[0];
    assert_eq!(
        t["payload"],
        json!({
            "summary": "[P1] INCIDENT ALERT: consensus_failure",
            "source": "neo-ir",
            "severity": "critical",
            "timestamp": "2024-05-01T10:00:05Z",
            "component": "cn-1, cn-2",
            "group": "MainNet",
            "class": "consensus_failure",
            "custom_details": {
                "text": rendered().text,
                "incident_id": 42,
                "evidence": {"height": 1234, "stalled_s": 120},
            },
        })
    );
    assert_eq!(t["client"], "neo-ir");
    assert_eq!(t["client_url"], "https://neo-ir.example.org/incidents/42");
    // acknowledge and resolve carry no payload
    assert!(bodies[1].get("payload").is_none());
    assert!(bodies[2].get("payload").is_none());
}

#[tokio::test]
async fn pagerduty_maps_severities_truncates_the_summary_and_classifies_errors() {
    let rx = receiver(|r| {
        let v = r.json();
        if v["payload"]["severity"] == "info" {
            json_answer(
                400,
                json!({"status": "invalid event", "message": "Event object is invalid",
                       "errors": ["'payload.source' is missing or blank"]}),
            )
        } else if v["payload"]["severity"] == "warning" {
            json_answer(429, json!({"status": "throttle event", "message": "Requests for this service are arriving too quickly."}))
        } else {
            json_answer(202, json!({"status": "success", "dedup_key": v["dedup_key"]}))
        }
    })
    .await;
    let ch = channel(
        config(ChannelKind::PagerDuty, Some(rx.url("/"))),
        Some("routingkeyroutingkeyroutingkey12"),
    );
    let long = Rendered {
        title: "t".repeat(3000),
        text: "x".into(),
    };
    let mut n = alert();
    n.incident.severity = Severity::P2;
    n.network = None;
    n.link = None;
    ch.send(&n, &long).await.unwrap();
    let sent = rx.only().json();
    assert_eq!(sent["payload"]["severity"], "error");
    assert_eq!(sent["payload"]["group"], "neo");
    assert!(sent["payload"]["summary"].as_str().unwrap().chars().count() <= 1024);
    assert!(sent.get("client_url").is_none());

    n.incident.severity = Severity::P3;
    assert_retry(ch.send(&n, &rendered()).await);
    n.incident.severity = Severity::P4;
    let r = assert_permanent(ch.send(&n, &rendered()).await);
    assert!(r.contains("400") && r.contains("payload.source"), "{r}");
}

// ---------------------------------------------------------------------------------------
// Failures

#[tokio::test]
async fn http_statuses_are_classified() {
    let rx = receiver(|r| match r.path.as_str() {
        "/429" => (429, vec![("retry-after", "7".into())], "slow down".into()),
        "/503" => answer(503, "maintenance"),
        "/302" => (
            302,
            vec![("location", "http://elsewhere/".into())],
            String::new(),
        ),
        _ => answer(400, "field `title` is required\n and more"),
    })
    .await;
    let send = |path: &str| {
        let ch = channel(config(ChannelKind::Webhook, Some(rx.url(path))), None);
        async move { ch.send(&alert(), &rendered()).await }
    };
    let (r, after) = assert_retry(send("/429").await);
    assert_eq!(after, Some(Duration::from_secs(7)));
    assert!(r.contains("429"), "{r}");

    let (r, after) = assert_retry(send("/503").await);
    assert_eq!(after, None);
    assert!(r.contains("503") && r.contains("maintenance"), "{r}");

    let r = assert_permanent(send("/400").await);
    assert!(r.contains("400"), "{r}");
    assert!(r.contains("field `title` is required and more"), "{r}");

    let r = assert_permanent(send("/302").await);
    assert!(r.contains("302"), "{r}");
    assert_eq!(rx.requests().len(), 4, "the redirect was not followed");
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_retried_after_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock); // read nothing, answer nothing
        }
    });
    let mut cfg = config(ChannelKind::Webhook, Some(format!("http://{addr}/hook")));
    cfg.timeout = Duration::from_millis(300);
    let ch = channel(cfg, None);
    let start = Instant::now();
    let (r, _) = assert_retry(ch.send(&alert(), &rendered()).await);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(r.contains("time"), "{r}");
}

#[tokio::test]
async fn connection_refused_is_retried() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let ch = channel(
        config(ChannelKind::Webhook, Some(format!("http://{addr}/hook"))),
        None,
    );
    let (r, after) = assert_retry(ch.send(&alert(), &rendered()).await);
    assert!(r.contains("connect"), "{r}");
    assert_eq!(after, None);
}

/// A server answering `status` with a 50 MB body it writes until the client goes away.
async fn huge_body_server(status: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                // read the request head (and the small body) first
                let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await;
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
                    50 * 1024 * 1024
                );
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..800 {
                    if sock.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_50_mb_response_is_not_read_whole() {
    for status in ["400 Bad Request", "200 OK"] {
        let addr = huge_body_server(status).await;
        let mut cfg = config(ChannelKind::Slack, None);
        cfg.timeout = Duration::from_secs(10);
        let ch = channel(
            cfg,
            Some(&format!("http://{addr}/services/T/B/XXXXXXXXXXXX")),
        );
        let start = Instant::now();
        let r = ch.send(&alert(), &rendered()).await;
        assert!(start.elapsed() < Duration::from_secs(10));
        let reason = assert_permanent(r);
        assert!(reason.len() < 2000, "{} bytes", reason.len());
    }
}

#[tokio::test]
async fn secrets_never_appear_in_errors_or_debug() {
    let slack_secret_path = "/services/T0SECRET/B0SECRET/SLACKSECRETSLACKSECRET";
    let token = "555555:TGSECRETTGSECRETTGSECRET";
    // a receiver that echoes what it was sent to
    let rx =
        receiver(|r| answer(404, &format!("no_service at {} for {:?}", r.path, r.query))).await;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });

    let mut errors = Vec::new();
    for base in [
        rx.url(""),
        format!("http://{refused}"),
        format!("http://{silent_addr}"),
    ] {
        let mut cfg = config(ChannelKind::Slack, None);
        cfg.timeout = Duration::from_millis(300);
        let secret = format!("{base}{slack_secret_path}");
        let slack = channel(cfg, Some(&secret));
        assert!(!format!("{slack:?}").contains("SLACKSECRET"));
        errors.push(slack.send(&alert(), &rendered()).await.unwrap_err());

        let mut cfg = config(ChannelKind::Telegram, Some(base.clone()));
        cfg.chat_id = Some("1".into());
        cfg.timeout = Duration::from_millis(300);
        let tg = channel(cfg, Some(token));
        assert!(!format!("{tg:?}").contains("TGSECRET"));
        errors.push(tg.send(&alert(), &rendered()).await.unwrap_err());
    }
    assert_eq!(rx.requests().len(), 2, "the echoing receiver was reached");
    for e in &errors {
        let text = format!("{e} {e:?}");
        assert!(!text.contains("SLACKSECRET"), "{text}");
        assert!(!text.contains("TGSECRET"), "{text}");
        assert!(!reason(e).is_empty());
    }
    assert!(errors.iter().any(|e| reason(e).contains("[redacted]")));
}

// ---------------------------------------------------------------------------------------
// Email

/// A fake SMTP server: answers `rcpt_reply` to every RCPT TO and records the transcript.
async fn smtp_server(rcpt_reply: &'static str) -> (SocketAddr, Arc<Mutex<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let transcript = Arc::new(Mutex::new(String::new()));
    let t = transcript.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let t = t.clone();
            tokio::spawn(async move {
                let (read, mut write) = sock.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 fake.local ESMTP\r\n").await.unwrap();
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    t.lock().unwrap().push_str(&format!("{line}\n"));
                    let reply: &str = if in_data {
                        if line == "." {
                            in_data = false;
                            "250 2.0.0 OK queued as 4711\r\n"
                        } else {
                            continue;
                        }
                    } else {
                        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
                        match verb.as_str() {
                            "EHLO" | "HELO" => "250-fake.local\r\n250 OK\r\n",
                            "MAIL" => "250 OK\r\n",
                            "RCPT" => rcpt_reply,
                            "DATA" => {
                                in_data = true;
                                "354 go ahead\r\n"
                            }
                            "RSET" | "NOOP" => "250 OK\r\n",
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => "502 not implemented\r\n",
                        }
                    };
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, transcript)
}

fn email_channel(addr: SocketAddr) -> Channel {
    let mut cfg = config(ChannelKind::Email, None);
    cfg.email = Some(EmailSettings {
        smtp_host: addr.ip().to_string(),
        smtp_port: addr.port(),
        tls: EmailTls::None,
        username: None,
        from: "neo-ir <alerts@neo-ir.example.org>".into(),
        to: vec![
            "ops@example.org".into(),
            "On Call <oncall@example.org>".into(),
        ],
    });
    channel(cfg, None)
}

fn email_rendered() -> Rendered {
    Rendered {
        title: "[P1] INCIDENT ALERT: consensus_failure".into(),
        text: "Status: investigating\nBlocks stopped at 1234.\n".into(),
    }
}

#[tokio::test]
async fn email_goes_to_every_recipient() {
    let (addr, transcript) = smtp_server("250 OK\r\n").await;
    let ch = email_channel(addr);
    let d = ch.send(&alert(), &email_rendered()).await.unwrap();
    assert_eq!(d.status, 250);
    assert!(d.detail.contains("queued as 4711"), "{}", d.detail);
    let t = transcript.lock().unwrap().clone();
    assert!(t.contains("MAIL FROM:<alerts@neo-ir.example.org>"), "{t}");
    assert!(t.contains("RCPT TO:<ops@example.org>"), "{t}");
    assert!(t.contains("RCPT TO:<oncall@example.org>"), "{t}");
    assert!(
        t.contains("Subject: [P1] INCIDENT ALERT: consensus_failure"),
        "{t}"
    );
    assert!(
        t.contains("To: ops@example.org, \"On Call\" <oncall@example.org>")
            || t.contains("To: ops@example.org, On Call <oncall@example.org>"),
        "{t}"
    );
    assert!(
        t.contains("X-Neo-IR-Idempotency-Key: neo-ir-42-7-test"),
        "{t}"
    );
    assert!(
        t.contains("Status: investigating\nBlocks stopped at 1234."),
        "{t}"
    );
}

#[tokio::test]
async fn email_550_is_permanent_and_451_is_retried() {
    let (addr, _) = smtp_server("550 5.1.1 no such user\r\n").await;
    let r = assert_permanent(email_channel(addr).send(&alert(), &email_rendered()).await);
    assert!(r.contains("550") || r.contains("no such user"), "{r}");

    let (addr, _) = smtp_server("451 4.3.0 try again later\r\n").await;
    let (r, _) = assert_retry(email_channel(addr).send(&alert(), &email_rendered()).await);
    assert!(r.contains("451") || r.contains("try again"), "{r}");

    // nobody listening
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert_retry(
        email_channel(refused)
            .send(&alert(), &email_rendered())
            .await,
    );
}

// ---------------------------------------------------------------------------------------
// Construction and secrets

#[test]
fn missing_pieces_are_named() {
    let err = |cfg: ChannelConfig, secret: Option<&str>| {
        Channel::new(cfg, secret.map(str::to_string), client())
            .unwrap_err()
            .to_string()
    };
    for kind in [ChannelKind::Slack, ChannelKind::Discord, ChannelKind::Teams] {
        let e = err(config(kind, None), None);
        assert!(e.contains("\"test\"") && e.contains("webhook URL"), "{e}");
        let e = err(config(kind, None), Some("   "));
        assert!(e.contains("secret"), "{e}");
        let e = err(config(kind, None), Some("not a url SECRETVALUE"));
        assert!(!e.contains("SECRETVALUE"), "{e}");
    }
    let e = err(config(ChannelKind::Telegram, None), None);
    assert!(e.contains("bot token"), "{e}");
    let e = err(config(ChannelKind::Telegram, None), Some("1:abc"));
    assert!(e.contains("chat_id"), "{e}");
    let e = err(config(ChannelKind::PagerDuty, None), None);
    assert!(e.contains("routing key"), "{e}");
    let e = err(config(ChannelKind::Webhook, None), None);
    assert!(e.contains("url"), "{e}");
    let e = err(config(ChannelKind::Email, None), None);
    assert!(e.contains("email settings"), "{e}");
    let mut cfg = config(ChannelKind::Email, None);
    cfg.email = Some(EmailSettings {
        smtp_host: "smtp.example.org".into(),
        smtp_port: 587,
        tls: EmailTls::Starttls,
        username: Some("neo-ir".into()),
        from: "alerts@example.org".into(),
        to: vec!["ops@example.org".into()],
    });
    let e = err(cfg.clone(), None);
    assert!(e.contains("SMTP password"), "{e}");
    let ch = Channel::new(cfg, Some("smtp-pass-123".into()), client()).unwrap();
    assert_eq!(ch.name(), "test");
    assert_eq!(ch.config().kind, ChannelKind::Email);
    assert!(!format!("{ch:?}").contains("smtp-pass-123"));

    // the defaults of the API base URLs
    let mut cfg = config(ChannelKind::Telegram, None);
    cfg.chat_id = Some("5".into());
    Channel::new(cfg, Some("1:abc".into()), client()).unwrap();
    Channel::new(
        config(ChannelKind::PagerDuty, None),
        Some("k".into()),
        client(),
    )
    .unwrap();
}

#[test]
fn read_secret_reads_env_and_files() {
    std::env::set_var("NEO_IR_NOTIFY_TEST_SECRET", "  s3cret-value \n");
    assert_eq!(
        read_secret(&SecretSource::Env("NEO_IR_NOTIFY_TEST_SECRET".into())).unwrap(),
        "s3cret-value"
    );
    let e = read_secret(&SecretSource::Env("NEO_IR_NOTIFY_TEST_MISSING".into())).unwrap_err();
    assert!(e.contains("NEO_IR_NOTIFY_TEST_MISSING"), "{e}");
    std::env::set_var("NEO_IR_NOTIFY_TEST_EMPTY", "  ");
    let e = read_secret(&SecretSource::Env("NEO_IR_NOTIFY_TEST_EMPTY".into())).unwrap_err();
    assert!(
        e.contains("NEO_IR_NOTIFY_TEST_EMPTY") && e.contains("empty"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "file-secret\n").unwrap();
    assert_eq!(
        read_secret(&SecretSource::File(path.clone())).unwrap(),
        "file-secret"
    );
    let missing = dir.path().join("nope");
    let e = read_secret(&SecretSource::File(missing.clone())).unwrap_err();
    assert!(e.contains(&missing.display().to_string()), "{e}");
    std::fs::write(&path, "\n").unwrap();
    let e = read_secret(&SecretSource::File(path.clone())).unwrap_err();
    assert!(e.contains("empty") && !e.contains("file-secret"), "{e}");
}

#[test]
fn sends_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Channel>();
    let ch = Channel::new(
        config(ChannelKind::PagerDuty, None),
        Some("k".into()),
        client(),
    )
    .unwrap();
    let n = alert();
    let r = rendered();
    let fut = ch.send(&n, &r);
    assert_send(&fut);
}

// ---------------------------------------------------------------------------------------
// Drills

/// A drill incident's message, rendered by the built-in templates, reaches every kind of
/// channel marked [DRILL] where people read first: the webhook's title and text, Slack's
/// and Telegram's text, Discord's content, the Teams card's title, PagerDuty's summary and
/// the email's subject.
#[tokio::test]
async fn drill_messages_say_drill_on_every_channel_kind() {
    let mut n = alert();
    n.incident.key = "drill:consensus_failure".into();
    let r = neo_ir_notify::Templates::builtin().render(&n).unwrap();
    assert!(
        r.title.starts_with("[DRILL] [P1] INCIDENT ALERT"),
        "{}",
        r.title
    );
    assert!(
        r.text.starts_with("[DRILL] **INCIDENT ALERT**"),
        "{}",
        r.text
    );

    let ok = || {
        receiver(|r| {
            if r.path.contains("sendMessage") {
                json_answer(200, json!({"ok": true, "result": {"message_id": 1}}))
            } else if r.path.contains("enqueue") {
                json_answer(202, json!({"status": "success", "dedup_key": "k"}))
            } else if r.path.contains("/services/") {
                answer(200, "ok")
            } else {
                json_answer(200, json!({"id": "1"}))
            }
        })
    };
    // (channel, what the service shows first)
    let mut seen: Vec<(ChannelKind, String)> = Vec::new();

    let rx = ok().await;
    channel(config(ChannelKind::Webhook, Some(rx.url("/hook"))), None)
        .send(&n, &r)
        .await
        .unwrap();
    let body = rx.only().json();
    seen.push((ChannelKind::Webhook, body["title"].as_str().unwrap().into()));
    seen.push((ChannelKind::Webhook, body["text"].as_str().unwrap().into()));

    let rx = ok().await;
    channel(
        config(ChannelKind::Slack, None),
        Some(&rx.url("/services/T1/B1/XXXXXXXX")),
    )
    .send(&n, &r)
    .await
    .unwrap();
    seen.push((
        ChannelKind::Slack,
        rx.only().json()["text"].as_str().unwrap().into(),
    ));

    let rx = ok().await;
    channel(
        config(ChannelKind::Discord, None),
        Some(&rx.url("/api/webhooks/1/tokentoken")),
    )
    .send(&n, &r)
    .await
    .unwrap();
    let content = rx.only().json()["content"].as_str().unwrap().to_string();
    seen.push((
        ChannelKind::Discord,
        content.trim_start_matches("**").into(),
    ));

    let rx = ok().await;
    let mut cfg = config(ChannelKind::Telegram, Some(rx.url("")));
    cfg.chat_id = Some("@drills".into());
    channel(cfg, Some("123:AAHsecretsecret"))
        .send(&n, &r)
        .await
        .unwrap();
    seen.push((
        ChannelKind::Telegram,
        rx.only().json()["text"].as_str().unwrap().into(),
    ));

    let rx = ok().await;
    channel(
        config(ChannelKind::Teams, None),
        Some(&rx.url("/workflows/x?sig=SIGSIG")),
    )
    .send(&n, &r)
    .await
    .unwrap();
    let card = rx.only().json();
    let blocks = &card["attachments"][0]["content"]["body"];
    seen.push((
        ChannelKind::Teams,
        blocks[0]["text"].as_str().unwrap().into(),
    ));
    seen.push((
        ChannelKind::Teams,
        blocks[1]["text"].as_str().unwrap().into(),
    ));

    let rx = ok().await;
    channel(
        config(ChannelKind::PagerDuty, Some(rx.url(""))),
        Some("R0UT1NGKEY"),
    )
    .send(&n, &r)
    .await
    .unwrap();
    let event = rx.only().json();
    seen.push((
        ChannelKind::PagerDuty,
        event["payload"]["summary"].as_str().unwrap().into(),
    ));

    let (addr, transcript) = smtp_server("250 OK\r\n").await;
    email_channel(addr).send(&n, &r).await.unwrap();
    let t = transcript.lock().unwrap().clone();
    let subject = t
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_else(|| panic!("no subject in {t}"));
    seen.push((ChannelKind::Email, subject.into()));

    for (kind, first) in &seen {
        assert!(first.starts_with("[DRILL] "), "{kind:?}: {first}");
    }
    let kinds: std::collections::BTreeSet<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds.len(),
        ChannelKind::ALL.len(),
        "every channel kind: {kinds:?}"
    );
}
