//! Client side: fetch an agent's report under a hard timeout and a 1 MiB body limit, and run
//! an operation on it (`run_op`, 8 MiB limit: a diagnostics answer may carry its archive).
//! Bodies are streamed and counted; errors are typed and their messages never carry the
//! token.

use std::time::Duration;

use neo_ir_core::runbook::Plan;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::StatusCode;

use crate::ops::{OpReport, OpRequest};
use crate::report::AgentReport;

pub use crate::ops::known_ops;

/// Largest report body accepted.
pub const MAX_REPORT_BYTES: usize = 1 << 20;
/// Largest operation answer accepted.
pub const MAX_OP_REPORT_BYTES: usize = 8 << 20;

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

/// Why an operation did not give a report.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpError {
    /// Transport, timeout, token, size or format trouble, as for the report.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The plan has destructive steps; run it again with `approved_by`.
    #[error("the operation has destructive steps and needs an approval")]
    ApprovalRequired { plan: Plan },
    /// Not possible with this node's implementation or the agent's configuration.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An argument was refused (the message names it).
    #[error("invalid arguments: {0}")]
    InvalidArgs(String),
    /// No operation of that name (the message lists the known ones).
    #[error("unknown operation: {0}")]
    UnknownOp(String),
    /// Another operation is running on that agent.
    #[error("another operation is running on the agent")]
    Busy,
}

/// `POST {base_url}/v1/ops/{op}` with the bearer token and `req`; the whole exchange must
/// finish within `timeout` (an operation the agent accepted still runs to its end on the
/// agent when the caller gives up).
pub async fn run_op(
    client: &reqwest::Client,
    base_url: &str,
    token: &str,
    op: &str,
    req: &OpRequest,
    timeout: Duration,
) -> Result<OpReport, OpError> {
    if op.is_empty() || op.len() > 64 || !op.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        let names: Vec<&str> = known_ops().iter().map(|(n, _)| *n).collect();
        return Err(OpError::UnknownOp(format!(
            "{:?} is not an operation name; known: {}",
            neo_ir_core::text::clip(op, 64),
            names.join(", ")
        )));
    }
    match tokio::time::timeout(
        timeout,
        run_op_inner(client, base_url, token, op, req, timeout),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(AgentError::Timeout(timeout).into()),
    }
}

async fn run_op_inner(
    client: &reqwest::Client,
    base_url: &str,
    token: &str,
    op: &str,
    req: &OpRequest,
    timeout: Duration,
) -> Result<OpReport, OpError> {
    let url = agent_url(base_url, &format!("/v1/ops/{op}"))?;
    let resp = send(client.post(url).json(req), token, timeout).await?;
    let status = resp.status();
    let body = read_body(resp, MAX_OP_REPORT_BYTES, timeout).await?;
    if status.is_success() {
        return serde_json::from_slice(&body)
            .map_err(|e| AgentError::Malformed(e.to_string()).into());
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let code = v["error"]["code"].as_str().unwrap_or("");
    let message = neo_ir_core::text::clip(v["error"]["message"].as_str().unwrap_or(""), 2000);
    Err(match (status.as_u16(), code) {
        (409, "approval_required") => match serde_json::from_value(v["plan"].clone()) {
            Ok(plan) => OpError::ApprovalRequired { plan },
            Err(e) => {
                AgentError::Malformed(format!("approval_required without a plan: {e}")).into()
            }
        },
        (409, "busy") => OpError::Busy,
        (422, "unsupported") => OpError::Unsupported(message),
        (400, "invalid_args") => OpError::InvalidArgs(message),
        (404, "unknown_op") => OpError::UnknownOp(message),
        (s, _) => AgentError::HttpStatus { status: s }.into(),
    })
}

/// Send `req` with the bearer token; 401 and 403 (the token was refused) are errors.
async fn send(
    req: reqwest::RequestBuilder,
    token: &str,
    timeout: Duration,
) -> Result<reqwest::Response, AgentError> {
    let resp = req
        .header(AUTHORIZATION, bearer(token)?)
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
    Ok(resp)
}

/// `{base_url}{path}` when it is an http(s) URL.
fn agent_url(base_url: &str, path: &str) -> Result<reqwest::Url, AgentError> {
    let url = format!("{}{path}", base_url.trim_end_matches('/'));
    let url = reqwest::Url::parse(&url)
        .map_err(|e| AgentError::Unreachable(format!("invalid agent URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AgentError::Unreachable(
            "agent URL is not http or https".into(),
        ));
    }
    Ok(url)
}

/// The `Authorization` header, marked sensitive.
fn bearer(token: &str) -> Result<HeaderValue, AgentError> {
    let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        AgentError::Unreachable("the token holds characters not allowed in a header".into())
    })?;
    auth.set_sensitive(true);
    Ok(auth)
}

/// The body, refused past `limit` bytes (declared or counted while streaming).
async fn read_body(
    mut resp: reqwest::Response,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, AgentError> {
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
    Ok(body)
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
    let url = agent_url(base_url, "/v1/report")?;
    let resp = send(client.get(url), token, timeout).await?;
    let status = resp.status();
    if !status.is_success() {
        return Err(AgentError::HttpStatus {
            status: status.as_u16(),
        });
    }
    let body = read_body(resp, MAX_REPORT_BYTES, timeout).await?;
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
