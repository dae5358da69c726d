//! End-to-end tests of the host agent: a real agent on 127.0.0.1 reading this machine's
//! `/proc` (and one reading a fake tree), its auth, and `fetch_report` against it and against
//! misbehaving servers (silent, oversized, malformed); the operations in `ops/`.

mod ops;

use std::path::Path;
use std::time::{Duration, Instant};

use neo_ir_agent::{
    fetch_report, serve, AgentConfig, AgentError, AgentReport, ErrorsSource, ProcessSource,
    ProcessState, MAX_REPORT_BYTES,
};
use neo_ir_core::telemetry::HostSample;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const TOKEN: &str = "test-token-4f9a1c";

struct Agent {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Agent {
    async fn start(cfg: AgentConfig) -> Agent {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(cfg, listener, async {
            let _ = rx.await;
        }));
        Agent {
            base,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("agent stops")
            .unwrap()
            .unwrap();
    }

    async fn get(&self, path: &str, auth: Option<&str>) -> (u16, serde_json::Value) {
        let mut req = reqwest::Client::new().get(format!("{}{path}", self.base));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }
}

fn config(data_dir: &Path) -> AgentConfig {
    AgentConfig::new(TOKEN, data_dir)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

#[tokio::test]
async fn reports_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("node.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
    let log = dir.path().join("node.log");
    std::fs::write(
        &log,
        "2024-05-01 INFO started\n\
         2024-05-01 ERROR first error\n\
         2024-05-01 WARN slow block\n\
         2024-05-01 error: second error\n\
         2024-05-01 INFO persisted block 100\n\
         Unhandled exception: System.NullReferenceException\n\
         2024-05-01 INFO persisted block 101\n",
    )
    .unwrap();

    // a fake node: a P2P port with 3 peers and an RPC port with 1 client
    let p2p = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let p2p_port = p2p.local_addr().unwrap().port();
    let rpc_port = rpc.local_addr().unwrap().port();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(("127.0.0.1", p2p_port)).await.unwrap());
        held.push(p2p.accept().await.unwrap().0);
    }
    held.push(TcpStream::connect(("127.0.0.1", rpc_port)).await.unwrap());
    held.push(rpc.accept().await.unwrap().0);

    let mut cfg = config(dir.path());
    cfg.pid_file = Some(pid_file);
    cfg.log_file = Some(log);
    cfg.error_lines = 2;
    cfg.p2p_port = p2p_port;
    cfg.rpc_port = rpc_port;
    let agent = Agent::start(cfg).await;

    let (status, v) = agent
        .get("/v1/report", Some(&format!("Bearer {TOKEN}")))
        .await;
    assert_eq!(status, 200, "{v}");
    // the stable JSON shape
    for key in [
        "at",
        "hostname",
        "process",
        "memory",
        "cpu_percent",
        "iowait_percent",
        "disk",
        "connections",
        "errors",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    let at = v["at"].as_str().expect("at is a string");
    assert!(at.contains('T') && at.ends_with('Z'), "{at}");
    at.parse::<jiff::Timestamp>().expect("RFC 3339 at");
    assert_eq!(v["process"]["state"], "running", "{v}");
    assert_eq!(v["process"]["source"], "pid_file");

    let r: AgentReport = serde_json::from_value(v).unwrap();
    assert!(!r.hostname.is_empty());
    assert_eq!(r.process.state, ProcessState::Running);
    assert_eq!(r.process.source, ProcessSource::PidFile);
    assert_eq!(r.process.pid, Some(std::process::id()));
    assert!(r.process.rss_bytes.unwrap() > 0, "{:?}", r.process);
    let pcpu = r.process.cpu_percent.expect("process cpu");
    assert!((0.0..=100.0).contains(&pcpu), "{pcpu}");

    assert!(r.memory.total_bytes.unwrap() > 0, "{:?}", r.memory);
    assert!(r.memory.used_bytes.unwrap() <= r.memory.total_bytes.unwrap());
    assert!(r.memory.available_bytes.unwrap() <= r.memory.total_bytes.unwrap());

    let cpu = r.cpu_percent.expect("cpu_percent");
    let iowait = r.iowait_percent.expect("iowait_percent");
    assert!((0.0..=100.0).contains(&cpu), "{cpu}");
    assert!((0.0..=100.0).contains(&iowait), "{iowait}");
    assert_eq!(r.cpu_error, None);

    assert!(r.disk.total_bytes.unwrap() > 0, "{:?}", r.disk);
    assert!(r.disk.available_bytes.unwrap() <= r.disk.total_bytes.unwrap());
    assert_eq!(r.disk.path, dir.path().display().to_string());

    let c = &r.connections;
    assert_eq!((c.p2p_port, c.rpc_port), (p2p_port, rpc_port));
    assert!(c.p2p_established.unwrap() >= 3, "{c:?}");
    assert!(c.rpc_established.unwrap() >= 1, "{c:?}");
    let local = c
        .by_remote_ip
        .iter()
        .find(|x| x.ip == "127.0.0.1")
        .expect("127.0.0.1 listed");
    assert!(local.p2p >= 3 && local.rpc >= 1, "{local:?}");
    assert!(c.by_remote_ip.len() <= 50);
    assert!(c
        .by_remote_ip
        .windows(2)
        .all(|w| w[0].p2p + w[0].rpc >= w[1].p2p + w[1].rpc));

    assert_eq!(r.errors.source, ErrorsSource::File);
    assert_eq!(
        r.errors.lines,
        vec![
            "2024-05-01 error: second error",
            "Unhandled exception: System.NullReferenceException"
        ]
    );

    // the second report uses the first one's counters or samples again: still sane
    let (status, v2) = agent
        .get("/v1/report", Some(&format!("Bearer {TOKEN}")))
        .await;
    assert_eq!(status, 200);
    let r2: AgentReport = serde_json::from_value(v2).unwrap();
    assert!((0.0..=100.0).contains(&r2.cpu_percent.unwrap()));
    assert!((0.0..=100.0).contains(&r2.process.cpu_percent.unwrap()));

    drop(held);
    agent.stop().await;
}

#[tokio::test]
async fn auth_is_required_for_the_report_only() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(config(dir.path())).await;

    let (status, v) = agent.get("/healthz", None).await;
    assert_eq!((status, v), (200, serde_json::json!({"status": "ok"})));

    let (status, v) = agent.get("/v1/report", None).await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["code"], "unauthorized");

    let (status, v) = agent.get("/v1/report", Some("Basic dGVzdA==")).await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["code"], "unauthorized");

    let (status, v) = agent.get("/v1/report", Some("Bearer wrong-token")).await;
    assert_eq!(status, 403);
    assert_eq!(v["error"]["code"], "forbidden");
    assert!(!v.to_string().contains(TOKEN));

    let (status, v) = agent
        .get("/v1/report", Some(&format!("Bearer {TOKEN}x")))
        .await;
    assert_eq!(status, 403, "{v}");

    let (status, v) = agent
        .get("/v1/report", Some(&format!("Bearer {TOKEN}")))
        .await;
    assert_eq!(status, 200, "{v}");
    // nothing configured: the report says so instead of failing
    assert_eq!(v["process"]["state"], "unknown");
    assert_eq!(v["process"]["source"], "none");
    assert_eq!(v["errors"]["source"], "none");

    let (status, v) = agent.get("/nope", None).await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "not_found");

    agent.stop().await;
}

#[tokio::test]
async fn refuses_to_serve_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = serve(AgentConfig::new("", dir.path()), listener, async {})
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn fetch_report_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("node.pid");
    std::fs::write(&pid_file, std::process::id().to_string()).unwrap();
    let mut cfg = config(dir.path());
    cfg.pid_file = Some(pid_file);
    let agent = Agent::start(cfg).await;
    let client = client();
    let t = Duration::from_secs(10);

    let r = fetch_report(&client, &format!("{}/", agent.base), TOKEN, t)
        .await
        .unwrap();
    assert_eq!(r.process.state, ProcessState::Running);
    let h = HostSample::from(&r);
    assert_eq!(h.process_state, "running");
    assert_eq!(h.at, Some(r.at));
    assert!(h.process_rss_bytes.unwrap() > 0);
    assert!(h.disk_total_bytes.unwrap() > 0);
    assert_eq!(h.disk_free_bytes, r.disk.available_bytes);
    assert_eq!(h.memory_used_bytes, r.memory.used_bytes);
    assert_eq!(h.top_remotes, r.connections.by_remote_ip);
    assert_eq!(h.error, None);

    let e = fetch_report(&client, &agent.base, "wrong-secret", t)
        .await
        .unwrap_err();
    assert_eq!(e, AgentError::Auth { status: 403 });
    assert!(!e.to_string().contains("wrong-secret"));

    let e = fetch_report(&client, &format!("{}/prefix", agent.base), TOKEN, t)
        .await
        .unwrap_err();
    assert_eq!(e, AgentError::HttpStatus { status: 404 });

    agent.stop().await;

    // nothing listens any more
    let e = fetch_report(&client, &agent_base_closed().await, TOKEN, t)
        .await
        .unwrap_err();
    assert!(matches!(e, AgentError::Unreachable(_)), "{e}");
    assert!(!e.to_string().contains(TOKEN));
}

/// A base URL whose port was just released.
async fn agent_base_closed() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    base
}

/// A raw HTTP server answering every connection with `answer` (after reading the request
/// head), or never answering when `answer` is `None`.
async fn raw_server(answer: Option<Vec<u8>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                match answer {
                    Some(a) => {
                        let _ = s.write_all(&a).await;
                        let _ = s.shutdown().await;
                    }
                    None => {
                        // hold the connection open, silently
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            });
        }
    });
    base
}

#[tokio::test]
async fn fetch_report_times_out_on_a_silent_server() {
    let base = raw_server(None).await;
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let e = fetch_report(&client(), &base, TOKEN, timeout)
        .await
        .unwrap_err();
    assert_eq!(e, AgentError::Timeout(timeout));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!e.to_string().contains(TOKEN));
}

#[tokio::test]
async fn fetch_report_refuses_oversized_bodies() {
    let big = vec![b' '; 2 * MAX_REPORT_BYTES];
    // streamed without Content-Length (read until close): counted while reading
    let mut streamed =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".to_vec();
    streamed.extend_from_slice(&big);
    let base = raw_server(Some(streamed)).await;
    let e = fetch_report(&client(), &base, TOKEN, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        AgentError::TooLarge {
            limit: MAX_REPORT_BYTES
        }
    );

    // declared up front
    let mut declared = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        big.len()
    )
    .into_bytes();
    declared.extend_from_slice(&big);
    let base = raw_server(Some(declared)).await;
    let e = fetch_report(&client(), &base, TOKEN, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        AgentError::TooLarge {
            limit: MAX_REPORT_BYTES
        }
    );
}

#[tokio::test]
async fn fetch_report_rejects_malformed_bodies() {
    let body = br#"{"hostname": "x"}"#;
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body);
    let base = raw_server(Some(answer)).await;
    let e = fetch_report(&client(), &base, TOKEN, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(matches!(e, AgentError::Malformed(_)), "{e}");
}

/// A fake procfs tree: every figure is known, including IPv6 and IPv4-mapped peers.
#[tokio::test]
async fn reports_a_fake_proc_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("proc");
    let w = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w("sys/kernel/hostname", "neo-fake-1\n");
    w(
        "meminfo",
        "MemTotal:       8000000 kB\nMemFree:         100000 kB\nMemAvailable:   6000000 kB\n",
    );
    w(
        "stat",
        "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 100 0 50 800 50 0 0 0 0 0\n",
    );
    w(
        "4242/stat",
        "4242 (neo-node) S 1 4242 4242 0 -1 0 0 0 0 0 70 30 0 0 20 0 40 0 1 1 1",
    );
    w(
        "4242/status",
        "Name:\tneo-node\nVmSize:\t9999999 kB\nVmRSS:\t  204800 kB\n",
    );
    // port 10333 = 0x285D, 10332 = 0x285C
    w(
        "net/tcp",
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:285D 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0
   1: 0A00000A:285D 0900710C:D431 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0A00000A:285D 0900710C:D432 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0A00000A:285C 0900710C:D433 01 00000000:00000000 00:00000000 00000000  1000        0 4 1 0000000000000000 20 4 30 10 -1
   4: 0A00000A:B3A0 0800710C:285D 01 00000000:00000000 00:00000000 00000000  1000        0 5 1 0000000000000000 20 4 30 10 -1
   5: 0A00000A:285D 0700710C:D434 06 00000000:00000000 00:00000000 00000000  1000        0 6 1 0000000000000000 20 4 30 10 -1
",
    );
    w(
        "net/tcp6",
        "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:285D 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 7 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000A00000A:285D 0000000000000000FFFF00000900710C:E4C2 01 00000000:00000000 00:00000000 00000000  1000        0 8 1 0000000000000000 21 4 30 10 -1
   2: B80D0120000000000000000005000000:285C B80D0120000000000000000001000000:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 9 1 0000000000000000 21 4 30 10 -1
",
    );
    let pid_file = dir.path().join("neo.pid");
    std::fs::write(&pid_file, "4242\n").unwrap();

    let mut cfg = config(dir.path());
    cfg.proc_root = root.clone();
    cfg.pid_file = Some(pid_file);
    let agent = Agent::start(cfg).await;
    let r = fetch_report(&client(), &agent.base, TOKEN, Duration::from_secs(10))
        .await
        .unwrap();

    assert_eq!(r.hostname, "neo-fake-1");
    assert_eq!(r.process.state, ProcessState::Running);
    assert_eq!(r.process.pid, Some(4242));
    assert_eq!(r.process.rss_bytes, Some(204800 * 1024));
    assert_eq!(r.memory.total_bytes, Some(8000000 * 1024));
    assert_eq!(r.memory.used_bytes, Some(2000000 * 1024));
    // the counters do not move in a fake tree: no CPU figures, and a reason
    assert_eq!(r.cpu_percent, None);
    assert!(r.cpu_error.is_some());
    assert_eq!(r.process.cpu_percent, None);

    let c = &r.connections;
    // 12.113.0.9 (0900710C): 2 on P2P + 1 IPv4-mapped on P2P, 1 on RPC; the outbound
    // connection to 12.113.0.8:10333 (local port 0xB3A0), LISTEN and TIME_WAIT do not count
    assert_eq!(c.p2p_established, Some(3));
    assert_eq!(c.rpc_established, Some(2));
    assert_eq!(c.error, None);
    let ips: Vec<(&str, u32, u32)> = c
        .by_remote_ip
        .iter()
        .map(|x| (x.ip.as_str(), x.p2p, x.rpc))
        .collect();
    assert_eq!(ips, vec![("12.113.0.9", 3, 1), ("2001:db8::1", 0, 1)]);
    agent.stop().await;

    // procfs missing entirely: every part says why, the report is still served
    std::fs::remove_dir_all(&root).unwrap();
    let mut cfg = config(&dir.path().join("no-such-data-dir"));
    cfg.proc_root = root;
    let agent = Agent::start(cfg).await;
    let r = fetch_report(&client(), &agent.base, TOKEN, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(r.memory.error.is_some() && r.memory.total_bytes.is_none());
    assert!(r.cpu_error.is_some() && r.cpu_percent.is_none());
    assert!(r.disk.error.is_some() && r.disk.total_bytes.is_none());
    assert!(r.connections.error.is_some() && r.connections.p2p_established.is_none());
    assert!(!r.hostname.is_empty());
    agent.stop().await;
}

/// A unit systemd does not know (or no systemd at all): the state is not "running", the
/// report says why, and the journal part fails on its own.
#[tokio::test]
async fn unknown_unit_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.unit = Some("neo-ir-agent-test-no-such-unit".into());
    cfg.command_timeout = Duration::from_secs(5);
    let agent = Agent::start(cfg).await;
    let r = fetch_report(&client(), &agent.base, TOKEN, Duration::from_secs(20))
        .await
        .unwrap();
    assert_ne!(r.process.state, ProcessState::Running, "{:?}", r.process);
    assert_eq!(r.process.source, ProcessSource::Systemd);
    assert!(r.process.detail.is_some());
    assert_eq!(r.errors.source, ErrorsSource::Journal);
    agent.stop().await;
}
