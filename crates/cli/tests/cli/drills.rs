//! `neo-ir drill` end to end on its built-in simulated network: the pipeline detects and
//! classifies each staged fault, the auto-responder's acknowledgement and runbook count, and a
//! drill nobody responds to loses the points for it and says why.

use serde_json::Value;

use super::neo_ir;

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
