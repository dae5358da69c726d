//! The few HTTP calls operations make to the node on this machine (127.0.0.1 only):
//! JSON-RPC (`getblockcount` to know a started node answers, `getversion` to learn its
//! implementation, the diagnostics' snapshot) and a Prometheus text page. Each call has a
//! hard timeout and a 1 MiB body limit; answers are data, never commands.

use std::time::Duration;

use serde_json::{json, Value};

/// Largest answer read from the node.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// An HTTP client for the local node: no proxy (an `HTTP_PROXY` must not see 127.0.0.1).
pub fn local_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// `POST http://127.0.0.1:{port}/` with one JSON-RPC request; the `result`, or why not.
pub async fn call(
    http: &reqwest::Client,
    port: u16,
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let url = format!("http://127.0.0.1:{port}/");
    let bytes = exchange(http.post(&url).json(&body), timeout).await?;
    let answer: Value = serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))?;
    if let Some(err) = answer.get("error").filter(|e| !e.is_null()) {
        let msg = err
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| err.to_string());
        return Err(format!("RPC error: {}", neo_ir_core::text::clip(&msg, 300)));
    }
    answer
        .get("result")
        .cloned()
        .ok_or_else(|| "answer without result".to_string())
}

/// The node's block count, when it answers.
pub async fn block_count(
    http: &reqwest::Client,
    port: u16,
    timeout: Duration,
) -> Result<u64, String> {
    let v = call(http, port, "getblockcount", json!([]), timeout).await?;
    v.as_u64()
        .ok_or_else(|| format!("getblockcount answered {}, not a number", clip_json(&v)))
}

/// `GET url` as text (at most 1 MiB).
pub async fn get_text(
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<String, String> {
    let bytes = exchange(http.get(url), timeout).await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Send `req` and read a 2xx body of at most 1 MiB, all within `timeout`.
async fn exchange(req: reqwest::RequestBuilder, timeout: Duration) -> Result<Vec<u8>, String> {
    tokio::time::timeout(timeout, async {
        let resp = req.timeout(timeout).send().await.map_err(short_error)?;
        let status = resp.status();
        let bytes = read_limited(resp).await?;
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        Ok(bytes)
    })
    .await
    .map_err(|_| format!("no answer within {timeout:?}"))?
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    if resp
        .content_length()
        .is_some_and(|l| l > MAX_ANSWER_BYTES as u64)
    {
        return Err(format!("answer larger than {MAX_ANSWER_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(short_error)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!("answer larger than {MAX_ANSWER_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport error without its URL (a metrics URL may carry credentials).
fn short_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    neo_ir_core::text::clip(&neo_ir_core::text::error_chain(&e), 200)
}

fn clip_json(v: &Value) -> String {
    neo_ir_core::text::clip(&v.to_string(), 100)
}

/// The implementation behind a `getversion` user agent (`/Neo:3.7.4/`, `/NEO-GO:0.106.0/`,
/// `/neo-rs:0.14.0/`, `/neo-ir-sim:0.1.0/`).
pub fn implementation_from_user_agent(ua: &str) -> Option<&'static str> {
    let name = ua
        .trim()
        .trim_matches('/')
        .split(':')
        .next()?
        .to_ascii_lowercase();
    match name.as_str() {
        "neo" | "neo-cli" => Some("neo-cli"),
        "neo-go" => Some("neo-go"),
        "neo-rs" => Some("neo-rs"),
        "neo-ir-sim" => Some("neo-ir-sim"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents() {
        assert_eq!(
            implementation_from_user_agent("/Neo:3.7.4/"),
            Some("neo-cli")
        );
        assert_eq!(
            implementation_from_user_agent("/NEO-GO:0.106.0/"),
            Some("neo-go")
        );
        assert_eq!(
            implementation_from_user_agent("/neo-rs:0.14.0/"),
            Some("neo-rs")
        );
        assert_eq!(
            implementation_from_user_agent("/neo-ir-sim:0.1.0/"),
            Some("neo-ir-sim")
        );
        assert_eq!(implementation_from_user_agent("/Geth:1.0/"), None);
        assert_eq!(implementation_from_user_agent(""), None);
    }
}
