//! Client side: fetch an agent's report under a hard timeout and a 1 MiB body limit (the body
//! is streamed and counted), with typed errors whose messages never carry the token.

use std::time::Duration;

use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::StatusCode;

use crate::report::AgentReport;

/// Largest report body accepted.
pub const MAX_REPORT_BYTES: usize = 1 << 20;

/// Why an agent's report could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// No connection (refused, reset, DNS, TLS), or an unusable URL.
    #[error("agent unreachable: {0}")]
    Unreachable(String),
    /// No complete answer within the hard timeout.
    #[error("no complete answer from the agent within {0:?}")]
    Timeout(Duration),
    /// 401 or 403: missing or wrong token.
    #[error("agent refused the token (HTTP {status})")]
    Auth { status: u16 },
    /// Any other non-2xx status.
    #[error("agent answered HTTP {status}")]
    HttpStatus { status: u16 },
    /// The body is not an `AgentReport`.
    #[error("malformed agent report: {0}")]
    Malformed(String),
    /// The body exceeded the limit.
    #[error("agent report larger than the {limit}-byte limit")]
    TooLarge { limit: usize },
}

/// `GET {base_url}/v1/report` with the bearer token; the whole exchange (connect, headers,
/// body) must finish within `timeout`.
pub async fn fetch_report(
    client: &reqwest::Client,
    base_url: &str,
    token: &str,
    timeout: Duration,
) -> Result<AgentReport, AgentError> {
    match tokio::time::timeout(timeout, fetch_inner(client, base_url, token, timeout)).await {
        Ok(r) => r,
        Err(_) => Err(AgentError::Timeout(timeout)),
    }
}

async fn fetch_inner(
    client: &reqwest::Client,
    base_url: &str,
    token: &str,
    timeout: Duration,
) -> Result<AgentReport, AgentError> {
    let url = format!("{}/v1/report", base_url.trim_end_matches('/'));
    let url = reqwest::Url::parse(&url)
        .map_err(|e| AgentError::Unreachable(format!("invalid agent URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AgentError::Unreachable(
            "agent URL is not http or https".into(),
        ));
    }
    let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        AgentError::Unreachable("the token holds characters not allowed in a header".into())
    })?;
    auth.set_sensitive(true);
    let mut resp = client
        .get(url)
        .header(AUTHORIZATION, auth)
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| transport(e, timeout))?;

    let status = resp.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(AgentError::Auth {
            status: status.as_u16(),
        });
    }
    if !status.is_success() {
        return Err(AgentError::HttpStatus {
            status: status.as_u16(),
        });
    }
    let limit = MAX_REPORT_BYTES;
    if resp.content_length().is_some_and(|l| l > limit as u64) {
        return Err(AgentError::TooLarge { limit });
    }
    let mut body = Vec::with_capacity(16 * 1024);
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport(e, timeout))? {
        if body.len() + chunk.len() > limit {
            return Err(AgentError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| AgentError::Malformed(e.to_string()))
}

/// A transport error, with the URL (which may hold credentials) dropped.
fn transport(e: reqwest::Error, timeout: Duration) -> AgentError {
    let e = e.without_url();
    if e.is_timeout() {
        return AgentError::Timeout(timeout);
    }
    if e.is_decode() {
        return AgentError::Malformed(chain(&e));
    }
    AgentError::Unreachable(chain(&e))
}

fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    neo_ir_core::text::clip(&neo_ir_core::text::error_chain(err), 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_input_is_typed_and_never_shows_the_token() {
        let client = reqwest::Client::new();
        let t = Duration::from_secs(2);
        let e = fetch_report(&client, "ftp://127.0.0.1:1", "s3cr3t", t)
            .await
            .unwrap_err();
        assert!(matches!(e, AgentError::Unreachable(_)), "{e}");
        let e = fetch_report(&client, "not a url", "s3cr3t", t)
            .await
            .unwrap_err();
        assert!(matches!(e, AgentError::Unreachable(_)), "{e}");
        let e = fetch_report(&client, "http://127.0.0.1:1", "s3cr3t\nX: y", t)
            .await
            .unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        let e = fetch_report(&client, "http://user:s3cr3t@127.0.0.1:1", "s3cr3t", t)
            .await
            .unwrap_err();
        assert!(matches!(e, AgentError::Unreachable(_)), "{e}");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }
}
