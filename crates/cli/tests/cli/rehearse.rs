//! `neo-ir drill rehearse`: the drill in simulated time through the binary, with the
//! defaults and with an operator's configuration file whose settings change the numbers.

use serde_json::Value;

use super::neo_ir;

fn rehearse(dir: &tempfile::TempDir, args: &[&str]) -> (Option<i32>, Value, String) {
    let out = neo_ir()
        .current_dir(dir.path())
        .args(["drill", "rehearse"])
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        text,
    )
}

#[test]
fn rehearsals_follow_the_configuration_and_the_responders() {
    let dir = tempfile::tempdir().unwrap();
    // defaults: the stall is seen at the wake-up 2.8 s after the last block
    let (code, v, text) = rehearse(&dir, &["consensus-stall"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(v["score"]["detect_ms"], 2501, "{text}");
    assert_eq!(v["score"]["points"], 100, "{text}");
    assert_eq!(v["incidents"][0]["incident"]["severity"], "P1", "{text}");

    // nobody acknowledges: the points for it are lost, and the report says so
    let (code, v, text) = rehearse(&dir, &["consensus-stall", "--ack-after", "never"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(v["score"]["points"], 80, "{text}");
    assert!(v["score"]["notes"]
        .to_string()
        .contains("nobody acknowledged"));

    // an operator's configuration: a stall only after 2 blocks' worth of silence + 10 s
    let cfg = dir.path().join("slow.toml");
    std::fs::write(
        &cfg,
        "[[nodes]]\nname = \"a\"\nrpc = \"http://127.0.0.1:1\"\nrole = \"rpc\"\n[detect]\nstall_grace = \"10s\"\n",
    )
    .unwrap();
    let (code, v, text) = rehearse(
        &dir,
        &["consensus-stall", "--config", cfg.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{text}");
    let slower = v["score"]["detect_ms"].as_u64().unwrap();
    assert_eq!(slower, 2501 - 800 + 10_000, "{text}");

    // usage errors: exit 2 with the reason
    let (code, _, text) = rehearse(&dir, &["no-such"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("consensus-stall"), "{text}");
    let (code, _, text) = rehearse(&dir, &["node-crash", "--ack-after", "soon"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("--ack-after"), "{text}");
}
