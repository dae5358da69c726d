//! neo-rs health endpoints on the telemetry port: `/healthz` (liveness, `{"status":"ok",...}`)
//! and `/readyz` (readiness, `{"status":"ready","ready":true,...}`, 503 when not ready).
//! Pure body checks ([`healthz_ok`], [`readyz_ok`]) plus the GETs on [`Prober`], which share
//! the client's timeout, body limit, concurrency bound and typed errors.

use reqwest::StatusCode;
use serde_json::Value;

use crate::client::Prober;
use crate::error::ProbeError;

/// Whether a `/healthz` body says the node is alive: a JSON object whose `status` is `"ok"`
/// (any case, surrounding blanks ignored). Anything else, JSON or not, is `false`.
pub fn healthz_ok(body: &[u8]) -> bool {
    let Some(obj) = json_object(body) else {
        return false;
    };
    obj.get("status")
        .and_then(Value::as_str)
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("ok"))
}

/// Whether a `/readyz` body says the node is ready: `ready` is `true`; a body without a
/// boolean `ready` is read by its `status` (`"ready"`). A `"ready": false` wins over any
/// status; a body that is not a JSON object is `false`.
pub fn readyz_ok(body: &[u8]) -> bool {
    let Some(obj) = json_object(body) else {
        return false;
    };
    match obj.get("ready").and_then(Value::as_bool) {
        Some(ready) => ready,
        None => obj
            .get("status")
            .and_then(Value::as_str)
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("ready")),
    }
}

fn json_object(body: &[u8]) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => Some(obj),
        _ => None,
    }
}

/// `{base}/{path}`, with the slashes at the end of `base` dropped.
pub fn health_url(base: &str, path: &str) -> String {
    format!("{}/{path}", base.trim_end_matches('/'))
}

const HEALTH_ACCEPT: &str = "application/json, */*;q=0.5";

/// What a health endpoint's status and body say: 200 is read with `check`; 404 and 405
/// mean the node does not serve the endpoint (not neo-rs, or another port), so `None`;
/// any other status (503 from `/readyz` when not ready, 500, ...) is `Some(false)`.
fn judge(status: StatusCode, body: &[u8], check: fn(&[u8]) -> bool) -> Option<bool> {
    if status == StatusCode::OK {
        Some(check(body))
    } else if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
        None
    } else {
        Some(false)
    }
}

impl Prober {
    /// GET `{base}/healthz`. `Ok(None)` when the node does not serve it (404/405); an error
    /// when no answer came (refused, timeout, reset, too large, ...).
    pub async fn healthz(&self, base: &str) -> Result<Option<bool>, ProbeError> {
        let (status, body) = self
            .get_limited(&health_url(base, "healthz"), HEALTH_ACCEPT, "health")
            .await?;
        Ok(judge(status, &body, healthz_ok))
    }

    /// GET `{base}/readyz`. A 503 is `Ok(Some(false))`; `Ok(None)` when the node does not
    /// serve it (404/405); an error when no answer came.
    pub async fn readyz(&self, base: &str) -> Result<Option<bool>, ProbeError> {
        let (status, body) = self
            .get_limited(&health_url(base, "readyz"), HEALTH_ACCEPT, "health")
            .await?;
        Ok(judge(status, &body, readyz_ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/");

    fn fixture(rel: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}{rel}"))
            .unwrap_or_else(|e| panic!("reading fixture {rel}: {e}"))
    }

    #[test]
    fn fixtures_are_healthy_and_ready() {
        let healthz = fixture("neo-rs-0.14-testnet-genesis/get-healthz.txt");
        let readyz = fixture("neo-rs-0.14-testnet-genesis/get-readyz.txt");
        assert!(healthz_ok(&healthz));
        assert!(readyz_ok(&readyz));
        // A liveness body does not say ready.
        assert!(!readyz_ok(&healthz));
    }

    #[test]
    fn unhealthy_and_odd_bodies() {
        for b in [
            &br#"{"status":"degraded"}"#[..],
            br#"{"status":1}"#,
            br#"{}"#,
            br#"["ok"]"#,
            br#""ok""#,
            b"ok",
            b"",
            b"\xff\xfe",
            b"not found",
        ] {
            assert!(!healthz_ok(b), "{}", String::from_utf8_lossy(b));
            assert!(!readyz_ok(b), "{}", String::from_utf8_lossy(b));
        }
        assert!(healthz_ok(br#"{"status":" OK "}"#));
        assert!(readyz_ok(br#"{"ready":true}"#));
        assert!(readyz_ok(br#"{"status":"ready"}"#));
        assert!(!readyz_ok(br#"{"status":"ready","ready":false}"#));
        assert!(!readyz_ok(br#"{"status":"not_ready","ready":false}"#));
        assert!(!readyz_ok(br#"{"status":"starting"}"#));
    }

    #[test]
    fn statuses() {
        let ok = fixture("neo-rs-0.14-testnet-genesis/get-readyz.txt");
        assert_eq!(judge(StatusCode::OK, &ok, readyz_ok), Some(true));
        assert_eq!(
            judge(StatusCode::SERVICE_UNAVAILABLE, &ok, readyz_ok),
            Some(false)
        );
        assert_eq!(
            judge(StatusCode::INTERNAL_SERVER_ERROR, b"", healthz_ok),
            Some(false)
        );
        let not_found = fixture("neo-rs-0.14-testnet-genesis/extra-metrics-unknown-path.txt");
        assert_eq!(judge(StatusCode::NOT_FOUND, &not_found, healthz_ok), None);
        assert_eq!(judge(StatusCode::METHOD_NOT_ALLOWED, b"", healthz_ok), None);
        assert_eq!(judge(StatusCode::OK, b"garbage", healthz_ok), Some(false));
    }

    #[test]
    fn urls() {
        assert_eq!(
            health_url("http://127.0.0.1:9100", "healthz"),
            "http://127.0.0.1:9100/healthz"
        );
        assert_eq!(
            health_url("http://127.0.0.1:9100//", "readyz"),
            "http://127.0.0.1:9100/readyz"
        );
        assert_eq!(health_url("http://h/neo/", "readyz"), "http://h/neo/readyz");
    }
}
