//! Messages through the real `neo-ir watch`: an incident's alert and page go to a webhook
//! receiver; a watcher killed with SIGKILL after writing them but before any was delivered
//! (the receiver was down) delivers each exactly once after a restart; `neo-ir notify test`
//! reaches the channel.

use super::*;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

/// A webhook receiver on a std thread: answers `status`, records accepted bodies.
#[derive(Clone, Default)]
pub(super) struct Hook {
    pub status: Arc<AtomicU16>,
    pub accepted: Arc<Mutex<Vec<Value>>>,
    pub refused: Arc<AtomicU16>,
}

impl Hook {
    pub fn start(&self) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let me = self.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let me = me.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.to_ascii_lowercase();
                        if let Some(v) = l.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let status = me.status.load(Ordering::SeqCst);
                    let reply = if status == 200 {
                        if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                            me.accepted.lock().unwrap().push(v);
                        }
                        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                    } else {
                        me.refused.fetch_add(1, Ordering::SeqCst);
                        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    };
                    let _ = stream.write_all(reply.as_bytes());
                });
            }
        });
        format!("http://{addr}/hook")
    }

    pub fn keys(&self) -> Vec<String> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .filter_map(|v| v["idempotency_key"].as_str().map(str::to_string))
            .collect()
    }
}

pub(super) fn notify_toml(url: &str) -> String {
    format!(
        "\n[notify]\n\n[[notify.channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{url}\"\ntimeout = \"2s\"\n\n[[notify.routes]]\nchannels = [\"hook\"]\n"
    )
}

#[test]
fn killed_after_writing_and_before_sending_delivers_each_message_once() {
    let sim = Sim::start(1, 2, 300);
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::default();
    let url = hook.start();
    hook.status.store(503, Ordering::SeqCst);
    let store = format!("sqlite://{}/neo-ir.db", dir.path().display());
    let cfg = fast_config(&dir, &sim, (1, 2), &store, &[0, 600]);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&notify_toml(&url));
    std::fs::write(&cfg, text).unwrap();

    let w = Watch::start(&cfg, dir.path().join("watch-1.log"));
    sim.fault("rpc-1", "crash");
    // written and tried, not delivered: the receiver is down
    eventually(
        "the alert is tried",
        Duration::from_secs(30),
        || (hook.refused.load(Ordering::SeqCst) > 0).then_some(()),
        || w.log(),
    );
    w.kill();
    assert!(hook.keys().is_empty());
    hook.status.store(200, Ordering::SeqCst);
    let w = Watch::start(&cfg, dir.path().join("watch-2.log"));
    let id = all_incidents(&store)
        .into_iter()
        .find(|i| i["key"] == "node_down:rpc-1")
        .and_then(|i| i["id"].as_i64())
        .expect("the incident");
    let alert = format!("neo-ir-{id}-");
    eventually(
        "the alert and the page are delivered after the restart",
        Duration::from_secs(30),
        || {
            let ours: Vec<String> = hook
                .keys()
                .into_iter()
                .filter(|k| k.starts_with(&alert))
                .collect();
            (ours.len() >= 2).then_some(())
        },
        || w.log(),
    );
    // a few more dispatcher cycles: nothing comes twice
    std::thread::sleep(Duration::from_millis(1500));
    let keys = hook.keys();
    let unique: std::collections::BTreeSet<&String> = keys.iter().collect();
    assert_eq!(keys.len(), unique.len(), "delivered twice: {keys:?}");
    let accepted = hook.accepted.lock().unwrap().clone();
    let ours: Vec<&Value> = accepted
        .iter()
        .filter(|v| v["incident"]["id"] == id)
        .collect();
    assert_eq!(ours[0]["kind"], "alert", "{ours:?}");
    assert_eq!(ours[1]["kind"], "page", "in order: {ours:?}");
    assert!(
        ours[0]["text"].as_str().unwrap().contains("INCIDENT ALERT"),
        "{}",
        ours[0]
    );
    drop(w);
}

#[test]
fn notify_test_reaches_the_channel_or_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::default();
    let url = hook.start();
    hook.status.store(200, Ordering::SeqCst);
    let base = "[[nodes]]\nname = \"a\"\nrpc = \"http://127.0.0.1:1\"\nrole = \"rpc\"\n";
    let cfg = write(&dir, "neo-ir.toml", &format!("{base}{}", notify_toml(&url)));
    let out = neo_ir()
        .args(["notify", "test", "--channel", "hook", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let got = hook.accepted.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert!(
        got[0]["text"]
            .as_str()
            .unwrap()
            .contains("channel hook works"),
        "{}",
        got[0]
    );
    let out = neo_ir()
        .args(["notify", "test", "--channel", "nope", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"nope\""),
        "{out:?}"
    );
    hook.status.store(503, Ordering::SeqCst);
    let out = neo_ir()
        .args(["notify", "test", "--channel", "hook", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused test is a failure: {out:?}"
    );
}

#[test]
fn a_broken_template_stops_watch_at_start_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("alert.txt"),
        "**INCIDENT ALERT**\n**Impact:** {{ impcat }}\n",
    )
    .unwrap();
    let base = "[[nodes]]\nname = \"a\"\nrpc = \"http://127.0.0.1:1\"\nrole = \"rpc\"\n";
    let text = format!(
        "{base}{}",
        notify_toml("http://127.0.0.1:1/hook").replace(
            "[notify]\n",
            &format!("[notify]\ntemplates = \"{}\"\n", templates.display())
        )
    );
    let cfg = write(&dir, "neo-ir.toml", &text);
    let out = neo_ir()
        .args(["watch", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("alert.txt"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}
