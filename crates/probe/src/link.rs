//! Each node's own keep-alive connection to its RPC port: the probe batch of a plain-`http`
//! endpoint goes over it, and while it is idle it is the crash sentinel (a process that dies
//! closes its sockets, so its end is an event within milliseconds).
//!
//! Why not the shared reqwest client for the probe: at 10,000 nodes a second its pool, tower
//! layers and URL handling cost more than all of neo-ir's own work (bench `scale` baselines:
//! a bare reqwest loop takes about 54 % of a core, the same requests on hyper's connection
//! API about 32 %). One connection per node also serves as the sentinel, so a node costs one
//! socket, not a pooled one plus a sentinel. Between requests only the bare `TcpStream` is
//! kept (hyper's buffers, about 12 KB, exist only during a request), so 10,000 idle nodes
//! cost next to no memory. `https` endpoints keep the shared client for the probe and an
//! idle TCP connection as their sentinel; the rare calls (chain checks, scrapes) use the
//! shared client too.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::client::{BasicAuth, NodeTarget};
use crate::error::ProbeError;

/// hyper's read buffer per link. Probe answers are 0.5–3 KB; thousands of idle links each
/// holding hyper's default 8 KB+ would cost tens of megabytes. Bigger answers are read in
/// chunks of this size.
const READ_BUF: usize = 4096;

/// A sentinel that could not connect tries again at most this often.
const SENTINEL_RETRY: Duration = Duration::from_secs(1);
/// How long the sentinel's own connection attempt may take.
const SENTINEL_CONNECT: Duration = Duration::from_secs(2);

/// Where and how to send a node's probe: parsed once from its URL and credentials.
struct Endpoint {
    /// The URL and credentials this was built from; a changed target rebuilds it.
    url: String,
    auth: Option<BasicAuth>,
    host: String,
    port: u16,
    /// `http`: probes go over a link. Otherwise only the TCP sentinel is kept here.
    plain_http: bool,
    path_and_query: String,
    host_header: HeaderValue,
    authorization: Option<HeaderValue>,
}

impl Endpoint {
    fn parse(target: &NodeTarget) -> Option<Endpoint> {
        let url = reqwest::Url::parse(&target.rpc_url).ok()?;
        let plain_http = match url.scheme() {
            "http" => true,
            "https" => false,
            _ => return None,
        };
        let host = url.host_str()?.to_string();
        let port = url.port_or_known_default()?;
        let host_header = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        // Explicit credentials first, else those written into the URL (as reqwest does).
        let credentials = match &target.auth {
            Some(a) => Some((a.user.clone(), a.password.clone())),
            None if !url.username().is_empty() || url.password().is_some() => Some((
                decode(url.username()),
                url.password().map(decode).unwrap_or_default(),
            )),
            None => None,
        };
        let authorization = match credentials {
            Some((user, password)) => {
                use base64::Engine;
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                let mut v = HeaderValue::from_str(&format!("Basic {token}")).ok()?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Some(Endpoint {
            url: target.rpc_url.clone(),
            auth: target.auth.clone(),
            host: host.trim_matches(['[', ']']).to_string(),
            port,
            plain_http,
            path_and_query,
            host_header: HeaderValue::from_str(&host_header).ok()?,
            authorization,
        })
    }

    fn matches(&self, target: &NodeTarget) -> bool {
        self.url == target.rpc_url && self.auth == target.auth
    }

    async fn connect(&self) -> std::io::Result<TcpStream> {
        let stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// What is kept per node.
struct Slot {
    endpoint: Arc<Endpoint>,
    /// The idle connection: the next probe's (for `http`) and the sentinel. Shared only
    /// with a sentinel watching it; the node's probe task drops that watch before it probes.
    idle: Option<Arc<TcpStream>>,
    /// When the sentinel may try to connect again.
    retry_at: Instant,
}

/// The links of the whole fleet, by node name.
#[derive(Default)]
pub(crate) struct Links {
    slots: Mutex<HashMap<String, Slot>>,
}

/// The node's slot, made (or remade, when its URL or credentials changed) as needed; `None`
/// when its URL is neither `http` nor `https`.
fn slot_for<'a>(slots: &'a mut HashMap<String, Slot>, target: &NodeTarget) -> Option<&'a mut Slot> {
    let fresh = slots
        .get(&target.name)
        .is_none_or(|s| !s.endpoint.matches(target));
    if fresh {
        let endpoint = Arc::new(Endpoint::parse(target)?);
        slots.insert(
            target.name.clone(),
            Slot {
                endpoint,
                idle: None,
                retry_at: Instant::now(),
            },
        );
    }
    slots.get_mut(&target.name)
}

/// An answer read whole (after gzip decompression) within the body limit.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Links {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node's endpoint and its idle connection, taken out of the slot while a request
    /// uses it. `None` when the URL is not `http`.
    fn take(&self, target: &NodeTarget) -> Option<(Arc<Endpoint>, Option<TcpStream>)> {
        let mut slots = self.slots();
        let slot = slot_for(&mut slots, target)?;
        if !slot.endpoint.plain_http {
            return None;
        }
        let idle = match slot.idle.take().map(Arc::try_unwrap) {
            Some(Ok(stream)) => Some(stream),
            // still watched elsewhere: leave it, use a fresh connection
            Some(Err(shared)) => {
                slot.idle = Some(shared);
                None
            }
            None => None,
        };
        Some((slot.endpoint.clone(), idle))
    }

    /// Keep `stream` as the node's idle connection, unless its endpoint changed meanwhile
    /// or it already has one.
    fn keep(&self, target: &NodeTarget, endpoint: &Arc<Endpoint>, stream: Arc<TcpStream>) {
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(&target.name) {
            if Arc::ptr_eq(&slot.endpoint, endpoint) && slot.idle.is_none() {
                slot.idle = Some(stream);
            }
        }
    }

    /// POST `body` to the node over its own connection. `None` when the node's URL is not
    /// `http` (the caller uses the shared client). Not under a timeout here: the caller's
    /// hard deadline covers it, and dropping this future drops the connection with it.
    pub(crate) async fn post(
        &self,
        target: &NodeTarget,
        body: Bytes,
        max_body: usize,
    ) -> Option<Result<Answer, ProbeError>> {
        let (endpoint, idle) = self.take(target)?;
        let mut reused = idle.is_some();
        let mut stream = match idle {
            Some(s) => s,
            None => match endpoint.connect().await {
                Ok(s) => s,
                Err(e) => return Some(Err(ProbeError::from_io(e))),
            },
        };
        loop {
            let (res, back) = exchange(stream, &endpoint, body.clone(), max_body).await;
            // The node may have closed the idle keep-alive connection just before the
            // request went out on it (idle timeouts of the node's HTTP server). The probe is
            // read-only, so it goes once more, on a fresh connection; a node that is really
            // gone then refuses that connection, which says more than "reset" would.
            if reused && matches!(&res, Err(ProbeError::Reset(_))) {
                reused = false;
                stream = match endpoint.connect().await {
                    Ok(s) => s,
                    Err(e) => return Some(Err(ProbeError::from_io(e))),
                };
                continue;
            }
            if let Some(stream) = back {
                self.keep(target, &endpoint, Arc::new(stream));
            }
            return Some(res);
        }
    }

    /// Resolves when the node closes the idle connection neo-ir keeps to it. Opens that
    /// connection first when there is none (at most once a second). Pending when there is
    /// nothing to watch (no connection could be opened, an unusable URL).
    pub(crate) async fn closed(&self, target: &NodeTarget) {
        let stream = loop {
            let step = {
                let mut slots = self.slots();
                match slot_for(&mut slots, target) {
                    None => None,
                    Some(slot) => Some(match &slot.idle {
                        Some(s) => Ok(Ok(s.clone())),
                        None if slot.retry_at <= Instant::now() => {
                            slot.retry_at = Instant::now() + SENTINEL_RETRY;
                            Ok(Err(slot.endpoint.clone()))
                        }
                        None => Err(slot.retry_at),
                    }),
                }
            };
            match step {
                None => return std::future::pending().await,
                Some(Ok(Ok(stream))) => break stream,
                Some(Ok(Err(endpoint))) => {
                    let opened = tokio::time::timeout(SENTINEL_CONNECT, endpoint.connect()).await;
                    match opened {
                        Ok(Ok(s)) => self.keep(target, &endpoint, Arc::new(s)),
                        // refused or unreachable: the probes report it; no event to wait for
                        _ => return std::future::pending().await,
                    }
                }
                Some(Err(at)) => tokio::time::sleep_until(at).await,
            }
        };
        // Nothing is sent on an idle connection, so anything readable means the node closed
        // or reset it, or sent something unasked (a "408 Request Timeout" before closing):
        // either way it is done.
        loop {
            if stream.readable().await.is_err() {
                break;
            }
            match stream.try_read(&mut [0u8; 1]) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                _ => break,
            }
        }
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(&target.name) {
            if slot.idle.as_ref().is_some_and(|s| Arc::ptr_eq(s, &stream)) {
                slot.idle = None;
            }
        }
    }
}

/// One request and its whole answer on `stream`, with hyper's HTTP/1.1 connection driven
/// right here (no task of its own). Returns the outcome and, when the connection can carry
/// the next request, the stream back.
async fn exchange(
    stream: TcpStream,
    endpoint: &Endpoint,
    body: Bytes,
    max_body: usize,
) -> (Result<Answer, ProbeError>, Option<TcpStream>) {
    let handshake = hyper::client::conn::http1::Builder::new()
        .read_buf_exact_size(Some(READ_BUF))
        .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
        .await;
    let (mut send, conn) = match handshake {
        Ok(h) => h,
        Err(e) => return (Err(ProbeError::from_hyper(e)), None),
    };
    let mut conn = Some(conn);
    let outcome = {
        let request = request(&mut send, endpoint, body, max_body);
        tokio::pin!(request);
        let drive = std::future::poll_fn(|cx| match conn.as_mut() {
            Some(c) => c.poll_without_shutdown(cx),
            None => std::task::Poll::Pending,
        });
        let ended = tokio::select! {
            biased;
            r = &mut request => Ok(r),
            c = drive => Err(c),
        };
        match ended {
            Ok(r) => r,
            // The connection ended first (the node closed it, possibly right after a
            // complete answer with `Connection: close`): dropping it ends the answer's
            // body, so the request now settles with the whole answer or an error.
            Err(c) => {
                conn = None;
                match (request.await, c) {
                    (Ok((answer, _)), _) => Ok((answer, false)),
                    (Err(e), Ok(())) => Err(e),
                    (Err(_), Err(e)) => Err(ProbeError::from_hyper(e)),
                }
            }
        }
    };
    let (answer, keep) = match outcome {
        Ok(a) => a,
        Err(e) => return (Err(e), None),
    };
    // With the sender gone the idle connection completes at once; its socket comes back
    // unless the node said `Connection: close` or sent more than the answer.
    drop(send);
    let back = match conn {
        Some(mut conn) if keep => {
            match std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)).await {
                Ok(()) => {
                    let parts = conn.into_parts();
                    parts.read_buf.is_empty().then(|| parts.io.into_inner())
                }
                Err(_) => None,
            }
        }
        _ => None,
    };
    (Ok(answer), back)
}

/// Send the request and read the whole answer within the body limit. Returns it and whether
/// the connection may carry another request.
async fn request(
    send: &mut SendRequest<Full<Bytes>>,
    endpoint: &Endpoint,
    body: Bytes,
    max_body: usize,
) -> Result<(Answer, bool), ProbeError> {
    let mut req = Request::post(endpoint.path_and_query.as_str())
        .header(header::HOST, endpoint.host_header.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .header(header::ACCEPT_ENCODING, "gzip")
        .header(
            header::USER_AGENT,
            concat!("neo-ir/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(a) = &endpoint.authorization {
        req = req.header(header::AUTHORIZATION, a.clone());
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| ProbeError::Other(format!("building the request: {e}")))?;
    let resp = send
        .send_request(req)
        .await
        .map_err(ProbeError::from_hyper)?;
    let status = resp.status();
    let headers = resp.headers();
    let keep = !headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    if !status.is_success() {
        // The body is not read, so the connection cannot carry another request.
        let body = Vec::new();
        return Ok((Answer { status, body }, false));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = declared {
        if len > max_body as u64 {
            return Err(ProbeError::TooLarge {
                limit: max_body,
                declared: Some(len),
            });
        }
    }
    let mut incoming = resp.into_body();
    let mut buf = Vec::with_capacity(declared.map_or(4096, |l| l as usize).min(max_body));
    // Stream the body and stop at the limit: a 50 MB answer is never held in memory.
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(ProbeError::from_hyper)?;
        if let Ok(chunk) = frame.into_data() {
            if buf.len() + chunk.len() > max_body {
                return Err(ProbeError::TooLarge {
                    limit: max_body,
                    declared: None,
                });
            }
            buf.extend_from_slice(&chunk);
        }
    }
    let body = if gzip { gunzip(&buf, max_body)? } else { buf };
    Ok((Answer { status, body }, keep))
}

/// Decompress a gzip body, stopping at `limit` bytes of output (a gzip bomb is never
/// inflated whole).
fn gunzip(compressed: &[u8], limit: usize) -> Result<Vec<u8>, ProbeError> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    let mut dec = flate2::read::GzDecoder::new(compressed).take(limit as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| ProbeError::Malformed(format!("corrupt gzip body: {e}")))?;
    if out.len() > limit {
        return Err(ProbeError::TooLarge {
            limit,
            declared: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use neo_ir_core::Role;

    #[test]
    fn endpoints_from_urls() {
        let t = NodeTarget::new("a", "http://127.0.0.1:10332", Role::Rpc);
        let e = Endpoint::parse(&t).expect("http");
        assert!(e.plain_http);
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 10332));
        assert_eq!(e.host_header, "127.0.0.1:10332");
        assert_eq!(e.path_and_query, "/");
        assert!(e.authorization.is_none());

        let t = NodeTarget::new("b", "http://neo:p%40ss@[::1]/rpc?x=1", Role::Rpc);
        let e = Endpoint::parse(&t).expect("http");
        assert_eq!((e.host.as_str(), e.port), ("::1", 80));
        assert_eq!(e.host_header, "[::1]");
        assert_eq!(e.path_and_query, "/rpc?x=1");
        // base64("neo:p@ss")
        assert_eq!(e.authorization.expect("auth"), "Basic bmVvOnBAc3M=");

        let t = NodeTarget::new("c", "https://seed1.neo.org:10331", Role::Rpc).with_auth("u", "pw");
        let e = Endpoint::parse(&t).expect("https");
        assert!(!e.plain_http);
        assert_eq!(e.authorization.as_ref().expect("auth"), "Basic dTpwdw==");
        assert!(e.matches(&t));
        assert!(!e.matches(&t.clone().with_auth("u", "other")));

        for bad in ["ftp://x/", "not a url", "http://"] {
            assert!(
                Endpoint::parse(&NodeTarget::new("d", bad, Role::Rpc)).is_none(),
                "{bad}"
            );
        }
    }

    #[test]
    fn gunzip_stops_at_the_limit() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&[b'0'; 10_000]).expect("write");
        let gz = enc.finish().expect("finish");
        assert_eq!(gunzip(&gz, 10_000).expect("fits").len(), 10_000);
        assert!(matches!(
            gunzip(&gz, 9_999),
            Err(ProbeError::TooLarge { limit: 9_999, .. })
        ));
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(ProbeError::Malformed(_))
        ));
    }
}
