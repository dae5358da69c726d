//! `neo-ir drill` end to end on its built-in simulated network: the pipeline detects and
//! classifies each staged fault, the auto-responder's acknowledgement and runbook count, and a
//! drill nobody responds to loses the points for it and says why. Every incident a drill
//! causes is marked as a drill incident, and resolves; `drill history` lists the drills with
//! their scores.

use serde_json::Value;

use super::{all_incidents, json_of, neo_ir};

fn drill(dir: &tempfile::TempDir, args: &[&str]) -> (Option<i32>, Value, String) {
    let store = format!("sqlite://{}/drills.db", dir.path().display());
    let out = neo_ir()
        .args(["drill", "run"])
        .args(args)
        .args([
            "--store",
            &store,
            "--listen",
            "127.0.0.1:0",
            "--msperblock",
            "300",
            "--json",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), v, text)
}

#[test]
fn drills_score_the_pipeline_and_the_people() {
    let dir = tempfile::tempdir().unwrap();
    for scenario in ["node-crash", "split-brain"] {
        let (code, s, text) = drill(&dir, &[scenario, "--auto-respond"]);
        assert_eq!(code, Some(0), "{scenario}: {text}");
        assert_eq!(s["classified"], true, "{scenario}: {text}");
        assert_eq!(s["runbook_ran"], true, "{scenario}: {text}");
        assert!(s["ack_ms"].is_u64(), "{scenario}: {text}");
        assert_eq!(s["points"], 100, "{scenario}: {text}");
        assert_eq!(s["auto_respond"], true);
        assert!(s["drill_id"].is_i64(), "{text}");
    }
    // nobody responds within the (short) window: detected and classified, but no
    // acknowledgement and no runbook
    let (code, s, text) = drill(&dir, &["node-crash", "--respond-within", "1s"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(s["ack_ms"], Value::Null, "{text}");
    assert_eq!(s["runbook_ran"], false, "{text}");
    assert_eq!(s["points"], 60, "{text}");
    let notes = s["notes"].to_string();
    assert!(notes.contains("nobody acknowledged"), "{notes}");

    // every incident of the drills is a drill incident, marked with its drill, and resolved
    let store = format!("sqlite://{}/drills.db", dir.path().display());
    let incidents = all_incidents(&store);
    assert!(incidents.len() >= 3, "{incidents:?}");
    for i in &incidents {
        let key = i["key"].as_str().unwrap_or_default();
        assert!(key.starts_with("drill:"), "{i}");
        assert_eq!(i["evidence"]["drill"], true, "{i}");
        assert!(i["evidence"]["drill_id"].is_i64(), "{i}");
        assert_eq!(i["status"], "resolved", "{i}");
    }
    // the history: newest first, with the scores
    let h = json_of(&["drill", "history", "--store", &store, "--json"]).expect("history");
    let drills = h["drills"].as_array().unwrap();
    assert_eq!(drills.len(), 3, "{h}");
    let scenarios: Vec<&str> = drills
        .iter()
        .map(|d| d["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(scenarios, ["node-crash", "split-brain", "node-crash"]);
    assert_eq!(drills[0]["points"], 60);
    assert_eq!(drills[0]["status"], "scored");
    assert_eq!(drills[0]["auto_respond"], false);
    assert_eq!(drills[0]["target"], "simulated");
    assert!(drills[0]["score"]["notes"]
        .to_string()
        .contains("nobody acknowledged"));
    assert_eq!(drills[1]["points"], 100);
    assert_eq!(drills[1]["auto_respond"], true);
    let out = neo_ir()
        .args(["drill", "history", "--store", &store])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(
        table.contains("split-brain") && table.contains("100*"),
        "{table}"
    );
    assert!(table.contains("nobody acknowledged"), "{table}");
    assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");

    // a scenario file with an unknown kind, and an unknown scenario, are usage errors
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, "name = \"x\"\ntitle = \"t\"\nkind = \"meltdown\"\n").unwrap();
    let out = neo_ir()
        .args(["drill", "run", "--file"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = neo_ir().args(["drill", "run", "no-such"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("node-crash"));
}

#[test]
fn the_schedule_rotates_the_commander_and_the_scenarios_monthly() {
    let dir = tempfile::tempdir().unwrap();
    let node = "[[nodes]]\nname = \"rpc-1\"\nrpc = \"http://127.0.0.1:1\"\nrole = \"rpc\"\n";
    let cfg = super::write(
        &dir,
        "neo-ir.toml",
        &format!(
            "{node}[store]\nurl = \"sqlite://{}/real.db\"\n\
             [[schedule]]\nname = \"primary\"\nrotation = \"weekly\"\n\
             start = \"2026-01-05T09:00:00Z\"\npeople = [\"alice\", \"bob\", \"carol\"]\n\
             [drills]\nday = 15\nat = \"14:00\"\ncommanders = \"primary\"\n\
             participants = [\"dave\"]\n",
            dir.path().display()
        ),
    );
    let drill_store = format!("sqlite://{}/none.db", dir.path().display());
    let args = |extra: &[&str]| {
        let mut a = vec!["drill", "schedule", "--config", cfg.to_str().unwrap()];
        a.extend(["--store", &drill_store]);
        a.extend(extra.iter().copied());
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let out = neo_ir()
        .args(args(&["--months", "7", "--json"]))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let drills = v["drills"].as_array().unwrap();
    assert_eq!(drills.len(), 7, "{v}");
    let people = ["alice", "bob", "carol"];
    let ic: Vec<usize> = drills
        .iter()
        .map(|d| {
            let c = d["commander"].as_str().unwrap();
            people.iter().position(|p| *p == c).unwrap()
        })
        .collect();
    for w in ic.windows(2) {
        assert_eq!(w[1], (w[0] + 1) % 3, "the next person each month: {v}");
    }
    let mut months = Vec::new();
    for d in drills {
        let day = d["day"].as_str().unwrap();
        assert!(day.ends_with("-15"), "{day}");
        assert!(d["at"].as_str().unwrap().ends_with("T14:00:00Z"), "{d}");
        assert_eq!(d["participants"][0], "dave");
        months.push(day[..7].to_string());
    }
    months.dedup();
    assert_eq!(months.len(), 7, "one drill a month: {v}");
    let scenarios: std::collections::BTreeSet<&str> = drills
        .iter()
        .map(|d| d["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(scenarios.len(), 7, "every built-in scenario in turn: {v}");
    // the drill store was not created by reading it
    assert!(!dir.path().join("none.db").exists());

    let out = neo_ir().args(args(&[])).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(
        table.contains("COMMANDER") && table.contains("participants: dave"),
        "{table}"
    );
    assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");

    // no [drills]: a configuration error naming the section
    let bare = super::write(&dir, "bare.toml", node);
    let out = neo_ir()
        .args(["drill", "schedule", "--config"])
        .arg(&bare)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("[drills]"));
}

/// A webhook receiver on a free port (a thread over std): answers 200 and keeps each
/// request's JSON body.
fn receiver() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
    let seen = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            }
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, got)
}

/// The designated test node, a real `neo-ir sim node` process managed by a real
/// `neo-ir agent`, watched by a real `neo-ir watch`: the drill stops it through the agent
/// (approved), the watcher marks the incident as a drill incident, the drill starts it
/// again and scores the response, all in the configured store. The watcher also sends the
/// next drill's reminder to the drill channel. Refusals: no approval (exit 3), another node,
/// a scenario that needs the whole network or a fault no agent operation makes (exit 2).
#[test]
fn a_drill_on_the_test_node_goes_through_its_agent_into_the_real_store() {
    use super::runbooks::{cli, config, start_node, text, Host, NODE, TOKEN, TOKEN_ENV};
    let sim = super::Sim::start(4, 1, 300);
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(&sim, dir.path());
    let store = format!("sqlite://{}/neo-ir.db", dir.path().display());
    let (port, hook) = receiver();
    let cfg = config(
        &dir,
        &sim,
        &host,
        &store,
        &format!(
            "[[notify.channels]]\nname = \"drill-room\"\ntype = \"webhook\"\n\
             url = \"http://127.0.0.1:{port}/hook\"\ndrills = true\n\
             [[schedule]]\nname = \"primary\"\nrotation = \"weekly\"\n\
             start = \"2026-01-05T09:00:00Z\"\npeople = [\"alice\", \"bob\", \"carol\"]\n\
             [drills]\ntest_node = \"{NODE}\"\ncommanders = \"primary\"\n\
             participants = [\"dave\"]\nremind_before = \"32d\"\n"
        ),
    );
    let drill = |args: &[&str]| {
        cli()
            .args(["drill", "run"])
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap()
    };

    // refusals, before anything changes
    let o = drill(&["node-crash", "--test-node"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("--approved-by"), "{}", text(&o));
    for (args, says) in [
        (
            &[
                "node-crash",
                "--test-node",
                "rpc-1",
                "--approved-by",
                "erin",
            ][..],
            "not the designated test node",
        ),
        (
            &["consensus-stall", "--test-node", "--approved-by", "erin"][..],
            "whole network",
        ),
        (
            &["split-brain", "--test-node", "--approved-by", "erin"][..],
            "whole network",
        ),
        (
            &["node-frozen", "--test-node", "--approved-by", "erin"][..],
            "no agent operation",
        ),
    ] {
        let o = drill(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(says), "{args:?}: {}", text(&o));
    }
    assert!(
        super::json_of(&["drill", "history", "--store", &store, "--json"])
            .is_some_and(|h| h["drills"] == serde_json::json!([]))
    );

    start_node(&cfg, &host);
    let watch = {
        // the watcher reads the agent's token from its environment
        std::env::set_var(TOKEN_ENV, TOKEN);
        super::Watch::start(&cfg, dir.path().join("watch.log"))
    };
    let context = || format!("{}\n--- agent\n{}", watch.log(), host.agent_log());

    // the leader reminds the drill channel of the next drill (due: 32 days ahead)
    let reminder = super::eventually(
        "the drill reminder reaches the drill channel",
        std::time::Duration::from_secs(30),
        || hook.lock().unwrap().first().cloned(),
        context,
    );
    let title = reminder["title"].as_str().unwrap_or_default();
    assert!(title.starts_with("[DRILL] reminder"), "{reminder}");
    assert!(
        reminder["text"].as_str().unwrap().contains("dave"),
        "{reminder}"
    );

    let o = drill(&[
        "node-crash",
        "--test-node",
        "--approved-by",
        "erin",
        "--auto-respond",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", text(&o), context());
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["classified"], true, "{s}");
    assert_eq!(s["runbook_ran"], true, "{s}");
    assert_eq!(s["points"], 100, "{s}");
    let id = s["drill_id"].as_i64().unwrap();
    assert!(host.answers(), "the test node runs again");

    // in the real store: a drill incident of this drill, resolved, and no real one
    let incidents = super::all_incidents(&store);
    let mine: Vec<&Value> = incidents
        .iter()
        .filter(|i| i["nodes"] == serde_json::json!([NODE]))
        .collect();
    assert!(!mine.is_empty(), "{incidents:?}");
    for i in &mine {
        assert_eq!(i["key"], format!("drill:node_down:{NODE}"), "{i}");
        assert_eq!(i["evidence"]["drill_id"], id, "{i}");
        assert_eq!(i["status"], "resolved", "{i}");
    }
    // the agent's stop and start, recorded as runs, the stop approved by erin
    let runs = super::json_of(&["runs", "--json", "--store", &store]).unwrap();
    let runs = runs["runs"].as_array().unwrap();
    let stop = runs
        .iter()
        .find(|r| r["script"] == "stop_node")
        .expect("stop_node run");
    assert_eq!(stop["approved_by"], "erin", "{stop}");
    assert_eq!(stop["status"], "succeeded", "{stop}");
    assert!(runs
        .iter()
        .any(|r| r["script"] == "start_node" && r["status"] == "succeeded"));
    // the history in the configured store: the test node, the scheduled IC
    let h = super::json_of(&["drill", "history", "--store", &store, "--json"]).unwrap();
    let d = &h["drills"][0];
    assert_eq!(d["id"], id);
    assert_eq!(d["target"], NODE);
    assert_eq!(d["status"], "scored");
    assert_eq!(d["points"], 100);
    let ic = d["commander"].as_str().unwrap_or_default();
    assert!(["alice", "bob", "carol"].contains(&ic), "{d}");
    drop(watch);
}
