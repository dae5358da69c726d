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
