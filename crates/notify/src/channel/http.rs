//! What the HTTP channels share: posting JSON, reading a bounded body, and turning a status
//! into a [`SendError`].

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use super::{Channel, SendError, BODY_LIMIT};

/// How much of a response body an error shows.
const EXCERPT_CHARS: usize = 300;

/// An http(s) URL, or why not (never echoing the URL: it may hold a secret).
pub(super) fn parse_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| format!("not a valid URL ({e})"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        "http" | "https" => Err("the URL has no host".into()),
        other => Err(format!("scheme {other:?} is not http or https")),
    }
}

/// The parts of a webhook URL that are the credential: its path, query, and their long
/// pieces, as written and as `Url` serializes them.
pub(super) fn secret_url_parts(url: &Url) -> Vec<String> {
    let mut parts = vec![url.as_str().to_string()];
    if url.path().len() > 1 {
        parts.push(url.path().to_string());
    }
    if let Some(q) = url.query() {
        parts.push(q.to_string());
        for (_, v) in url.query_pairs() {
            if v.len() >= 8 {
                parts.push(v.into_owned());
            }
        }
        for piece in q
            .split('&')
            .filter_map(|kv| kv.split_once('=').map(|(_, v)| v))
        {
            if piece.len() >= 8 {
                parts.push(piece.to_string());
            }
        }
    }
    for seg in url.path_segments().into_iter().flatten() {
        if seg.len() >= 8 {
            parts.push(seg.to_string());
        }
    }
    parts
}

pub(super) fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// A service's answer: status, the headers that matter, and at most [`BODY_LIMIT`] bytes of
/// the body.
pub(super) struct Reply {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A short excerpt of the body, on one line.
    pub fn excerpt(&self) -> String {
        let text = self.text();
        let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        super::truncate_chars(&one_line, EXCERPT_CHARS)
    }

    fn status_line(&self) -> String {
        match self.status.canonical_reason() {
            Some(r) => format!("HTTP {} {r}", self.status.as_u16()),
            None => format!("HTTP {}", self.status.as_u16()),
        }
    }

    /// The error a non-success status means: 408, 429 and 5xx are worth retrying (after
    /// `Retry-After` when given); a redirect is not followed; any other status is final.
    /// `what` says what the service said, when the caller knows better than the raw body.
    pub fn error(&self, what: Option<String>) -> SendError {
        let what = what.unwrap_or_else(|| self.excerpt());
        let reason = if what.is_empty() {
            self.status_line()
        } else {
            format!("{}: {what}", self.status_line())
        };
        let s = self.status;
        if s == StatusCode::TOO_MANY_REQUESTS
            || s == StatusCode::REQUEST_TIMEOUT
            || s.is_server_error()
        {
            SendError::Retry {
                reason,
                after: self.retry_after,
            }
        } else if s.is_redirection() {
            SendError::permanent(format!(
                "{} (redirects are not followed)",
                self.status_line()
            ))
        } else {
            SendError::permanent(reason)
        }
    }
}

/// `Retry-After`: delta-seconds or an HTTP-date (a date in the past: now).
pub(crate) fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(1e9)));
        }
    }
    static PARSER: jiff::fmt::rfc2822::DateTimeParser =
        jiff::fmt::rfc2822::DateTimeParser::new().relaxed_weekday(true);
    let at = PARSER.parse_timestamp(value).ok()?;
    let wait = at.as_millisecond().saturating_sub(now.as_millisecond());
    Some(Duration::from_millis(wait.max(0) as u64))
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(v, jiff::Timestamp::now())
}

/// Reads at most `limit` bytes of the body; what was read when the body breaks off.
async fn read_limited(resp: &mut reqwest::Response, limit: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    while buf.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - buf.len();
                buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    buf
}

/// What a transport error means, without the URL (it may hold the secret).
fn transport_error(e: reqwest::Error) -> SendError {
    let e = e.without_url();
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !reason.contains(&s_text) {
            reason.push_str(": ");
            reason.push_str(&s_text);
        }
        source = s.source();
    }
    if e.is_builder() {
        return SendError::permanent(format!("cannot make the request: {reason}"));
    }
    if e.is_timeout() {
        return SendError::retry(format!("timed out: {reason}"));
    }
    if e.is_connect() {
        return SendError::retry(format!("cannot connect: {reason}"));
    }
    SendError::retry(format!("request failed: {reason}"))
}

/// POSTs `body` (JSON) with `headers` to `url` and reads the bounded reply.
pub(super) async fn post_json(
    ch: &Channel,
    url: &Url,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Result<Reply, SendError> {
    let mut req = ch
        .http
        .post(url.clone())
        .timeout(ch.config.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            reqwest::header::USER_AGENT,
            concat!("neo-ir/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let mut resp = req.body(body).send().await.map_err(transport_error)?;
    let status = resp.status();
    let retry_after = retry_after(resp.headers());
    let body = read_limited(&mut resp, BODY_LIMIT).await;
    Ok(Reply {
        status,
        retry_after,
        body,
    })
}

/// Serializes a JSON body (cannot fail for `Value`s; a failure is final).
pub(super) fn to_body(v: &serde_json::Value) -> Result<Vec<u8>, SendError> {
    serde_json::to_vec(v).map_err(|e| SendError::permanent(format!("cannot encode JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now: jiff::Timestamp = "2024-03-01T12:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Fri, 01 Mar 2024 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Fri, 01 Mar 2024 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn urls() {
        assert!(parse_url("ftp://x/y").is_err());
        assert!(parse_url("not a url").is_err());
        let u = parse_url("https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX").unwrap();
        let parts = secret_url_parts(&u);
        assert!(parts.contains(&"/services/T000/B000/XXXXXXXXXXXX".to_string()));
        assert!(parts.contains(&"XXXXXXXXXXXX".to_string()));
    }
}
