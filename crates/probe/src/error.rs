//! Typed errors of the JSON-RPC client, one variant per way a request to a node can fail,
//! and their mapping onto the `ProbeFailure` kinds the fleet view and detectors read.
//!
//! Messages never carry credentials: transport errors are rendered without their URL, and
//! node-provided text is clipped and stripped of control characters.

use std::time::Duration;

use neo_ir_core::{FailureKind, ProbeFailure};

use crate::parse::{clip, ParseError, RpcError};

/// JSON-RPC codes that mean "access denied": -600 (neo-cli 3.7+, also for wrong Basic-auth
/// credentials) and -400 (neo-cli before 3.7).
pub const ACCESS_DENIED_CODES: [i64; 2] = [-600, -400];

/// Why a request to a node failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Nothing listens on the port (process down).
    #[error("connection refused")]
    Refused(String),
    /// The connection was reset or closed before the answer was complete.
    #[error("connection reset or closed mid-request: {0}")]
    Reset(String),
    /// No complete answer (headers and body) within the hard timeout.
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    /// HTTP 401/403, or a JSON-RPC access-denied error (-600, old -400) on a method neo-ir
    /// needs: missing or wrong credentials.
    #[error("access denied: {message}")]
    Auth {
        http_status: Option<u16>,
        rpc_code: Option<i64>,
        message: String,
    },
    /// Any other non-2xx HTTP status.
    #[error("HTTP status {status}")]
    HttpStatus { status: u16 },
    /// A JSON-RPC `error` object for a method neo-ir needs.
    #[error("{method}: {error}")]
    Rpc { method: String, error: RpcError },
    /// The body was not the JSON-RPC answer expected.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The body (after decompression) exceeded the limit.
    #[error("answer larger than the {limit}-byte limit{}", .declared.map(|d| format!(" (Content-Length {d})")).unwrap_or_default())]
    TooLarge { limit: usize, declared: Option<u64> },
    /// Anything else: invalid URL, DNS, TLS, invalid configuration.
    #[error("{0}")]
    Other(String),
}

impl ProbeError {
    /// The failure kind this error is reported as.
    pub fn kind(&self) -> FailureKind {
        match self {
            ProbeError::Refused(_) => FailureKind::Refused,
            ProbeError::Reset(_) => FailureKind::Reset,
            ProbeError::Timeout(_) => FailureKind::Timeout,
            ProbeError::Auth { .. } => FailureKind::Auth,
            ProbeError::HttpStatus { .. } => FailureKind::HttpStatus,
            ProbeError::Rpc { .. } => FailureKind::RpcError,
            ProbeError::Malformed(_) => FailureKind::Malformed,
            ProbeError::TooLarge { .. } => FailureKind::TooLarge,
            ProbeError::Other(_) => FailureKind::Other,
        }
    }

    /// The `ProbeFailure` recorded in an `Observation`.
    pub fn to_failure(&self) -> ProbeFailure {
        let mut f = ProbeFailure::new(self.kind(), self.to_string());
        match self {
            ProbeError::Auth {
                http_status,
                rpc_code,
                ..
            } => {
                f.http_status = *http_status;
                f.rpc_code = *rpc_code;
            }
            ProbeError::HttpStatus { status } => f.http_status = Some(*status),
            ProbeError::Rpc { error, .. } => f.rpc_code = Some(error.code),
            _ => {}
        }
        f
    }

    /// A JSON-RPC error on a method neo-ir needs: access denied codes become `Auth`.
    pub(crate) fn from_rpc(method: &str, error: RpcError) -> Self {
        if ACCESS_DENIED_CODES.contains(&error.code) {
            ProbeError::Auth {
                http_status: None,
                rpc_code: Some(error.code),
                message: format!("{method}: {error}"),
            }
        } else {
            ProbeError::Rpc {
                method: method.to_string(),
                error,
            }
        }
    }

    /// Classify a transport error from reqwest. The URL is dropped from the error first, so a
    /// URL with credentials in it can never reach a message.
    pub(crate) fn from_reqwest(err: reqwest::Error, timeout: Duration) -> Self {
        let err = err.without_url();
        if err.is_timeout() {
            return ProbeError::Timeout(timeout);
        }
        let detail = chain(&err);
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::TimedOut {
                    return ProbeError::Timeout(timeout);
                }
                if let Some(found) = closed_or_refused(io) {
                    return found;
                }
            }
            source = e.source();
        }
        let lower = detail.to_ascii_lowercase();
        if lower.contains("connection closed before message completed")
            || lower.contains("connection reset")
            || lower.contains("end of file before message length reached")
        {
            return ProbeError::Reset(detail);
        }
        if lower.contains("connection refused") {
            return ProbeError::Refused(detail);
        }
        if err.is_decode() {
            // A corrupt gzip stream or an undecodable body.
            return ProbeError::Malformed(detail);
        }
        ProbeError::Other(detail)
    }
}

impl ProbeError {
    /// Classify an I/O error of a connection (connecting, reading, writing).
    pub(crate) fn from_io(err: std::io::Error) -> Self {
        closed_or_refused(&err).unwrap_or_else(|| ProbeError::Other(clip(&err.to_string())))
    }

    /// Classify an error of hyper's HTTP/1.1 connection.
    pub(crate) fn from_hyper(err: hyper::Error) -> Self {
        let detail = chain(&err);
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = source {
            if let Some(found) = e
                .downcast_ref::<std::io::Error>()
                .and_then(closed_or_refused)
            {
                return found;
            }
            source = e.source();
        }
        if err.is_incomplete_message() || err.is_canceled() || err.is_closed() {
            return ProbeError::Reset(detail);
        }
        if err.is_parse() || err.is_parse_status() {
            return ProbeError::Malformed(format!("not an HTTP answer: {detail}"));
        }
        ProbeError::Other(detail)
    }
}

impl From<ParseError> for ProbeError {
    fn from(e: ParseError) -> Self {
        ProbeError::Malformed(e.to_string())
    }
}

/// `Refused` or `Reset` for the I/O errors that mean so. The OS error says it all; the
/// layers wrapping it only repeat it.
fn closed_or_refused(io: &std::io::Error) -> Option<ProbeError> {
    use std::io::ErrorKind as K;
    match io.kind() {
        K::ConnectionRefused => Some(ProbeError::Refused(io.to_string())),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            Some(ProbeError::Reset(io.to_string()))
        }
        _ => None,
    }
}

/// The error and its sources, joined with ": ", clipped.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    clip(&neo_ir_core::text::error_chain(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_mapping() {
        let rpc = RpcError {
            code: -32601,
            message: "Method not found".into(),
            data: None,
        };
        let f = ProbeError::from_rpc("getblockcount", rpc).to_failure();
        assert_eq!(f.kind, FailureKind::RpcError);
        assert_eq!(f.rpc_code, Some(-32601));
        assert_eq!(f.http_status, None);
        assert!(f.message.contains("getblockcount"));

        let denied = RpcError {
            code: -600,
            message: "Access denied".into(),
            data: None,
        };
        let f = ProbeError::from_rpc("getblockcount", denied).to_failure();
        assert_eq!(f.kind, FailureKind::Auth);
        assert_eq!(f.rpc_code, Some(-600));

        let f = ProbeError::HttpStatus { status: 502 }.to_failure();
        assert_eq!(
            (f.kind, f.http_status),
            (FailureKind::HttpStatus, Some(502))
        );
        let f = ProbeError::Auth {
            http_status: Some(401),
            rpc_code: None,
            message: "HTTP 401".into(),
        }
        .to_failure();
        assert_eq!((f.kind, f.http_status), (FailureKind::Auth, Some(401)));
        let f = ProbeError::TooLarge {
            limit: 10,
            declared: Some(20),
        }
        .to_failure();
        assert_eq!(f.kind, FailureKind::TooLarge);
        assert!(f.message.contains("Content-Length 20"), "{}", f.message);
        assert_eq!(
            ProbeError::from(ParseError::MissingId(3)).kind(),
            FailureKind::Malformed
        );
        assert_eq!(
            ProbeError::Timeout(Duration::from_millis(300))
                .to_failure()
                .message,
            "no complete answer within 300ms"
        );
    }
}
