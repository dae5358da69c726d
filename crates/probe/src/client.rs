//! The `Prober`: one HTTP client for the whole fleet that sends one batched JSON-RPC request
//! per node per round, under a hard timeout (headers and body), a body-size limit (counted
//! after decompression, while streaming) and a bound on requests in flight, and turns every
//! outcome into an `Observation` with a typed failure.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use neo_ir_core::config::{NodeConfig, ProbeSettings};
use neo_ir_core::{ChainStatus, NodeVersion, Observation, Role};
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use serde_json::{json, Value};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::ProbeError;
use crate::link::Links;
use crate::parse::{
    parse_answers, parse_block_count, parse_connection_count, parse_hash, parse_header,
    parse_response, parse_version, RpcError,
};

/// Limits of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Hard deadline of one request to one node, connection, headers and body included.
    pub timeout: Duration,
    /// Largest response body accepted, counted after gzip decompression.
    pub max_body_bytes: usize,
    /// Most requests in flight at once, over all nodes.
    pub max_concurrency: usize,
    /// How long a cached `getversion` answer is reused before it is asked again.
    pub version_refresh: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            max_body_bytes: 8 * 1024 * 1024,
            max_concurrency: 32,
            version_refresh: Duration::from_secs(600),
        }
    }
}

impl From<&ProbeSettings> for ProbeConfig {
    fn from(s: &ProbeSettings) -> Self {
        Self {
            timeout: s.timeout,
            max_body_bytes: s.max_body_bytes,
            max_concurrency: s.max_concurrency,
            ..Self::default()
        }
    }
}

/// HTTP Basic-auth credentials. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One node to probe. `Debug` and `Display` never show a password (neither the Basic-auth
/// one nor one written into the URL).
#[derive(Clone, PartialEq, Eq)]
pub struct NodeTarget {
    pub name: String,
    /// JSON-RPC endpoint, e.g. `http://10.0.0.5:10332`.
    pub rpc_url: String,
    pub role: Role,
    pub auth: Option<BasicAuth>,
}

impl NodeTarget {
    pub fn new(name: impl Into<String>, rpc_url: impl Into<String>, role: Role) -> Self {
        Self {
            name: name.into(),
            rpc_url: rpc_url.into(),
            role,
            auth: None,
        }
    }

    pub fn with_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some(BasicAuth {
            user: user.into(),
            password: password.into(),
        });
        self
    }

    /// A target from the configuration; `password` is the value of the node's
    /// `auth_password_env` variable, read by the caller.
    pub fn from_config(node: &NodeConfig, password: Option<String>) -> Self {
        Self {
            name: node.name.clone(),
            rpc_url: node.rpc.clone(),
            role: node.role,
            auth: node.auth_user.as_ref().map(|user| BasicAuth {
                user: user.clone(),
                password: password.unwrap_or_default(),
            }),
        }
    }

    /// The RPC URL with any password in it replaced.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.rpc_url)
    }
}

impl fmt::Debug for NodeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeTarget")
            .field("name", &self.name)
            .field("rpc_url", &self.redacted_url())
            .field("role", &self.role)
            .field("auth", &self.auth)
            .finish()
    }
}

impl fmt::Display for NodeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.redacted_url())
    }
}

/// `url` with the password of its user-info part replaced; an unparsable URL is not shown.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                // Only fails for URLs that cannot have credentials, which have none.
                let _ = u.set_password(Some("redacted"));
            }
            u.to_string()
        }
        Err(_) => "<invalid URL>".to_string(),
    }
}

#[derive(Debug, Clone)]
struct CachedVersion {
    url: String,
    version: NodeVersion,
    fetched: Instant,
}

struct Inner {
    cfg: ProbeConfig,
    client: reqwest::Client,
    permits: Semaphore,
    versions: Mutex<HashMap<String, CachedVersion>>,
    /// Each `http` node's own connection for the probe batch ([`crate::link`]).
    links: Links,
}

/// The JSON-RPC client of the whole fleet. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct Prober {
    inner: Arc<Inner>,
}

impl fmt::Debug for Prober {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prober")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

/// Which block headers a probe asks for besides the chain status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Headers {
    #[default]
    None,
    /// `getblockheader [h, true]`.
    At(u64),
    /// `getblockheader [h, true]` and `[h - 1, true]` in the same batch, so the node's own
    /// blocks can be checked to link without asking for a header every round.
    WithParent(u64),
}

impl Headers {
    /// The heights asked, newest first.
    fn heights(self) -> impl Iterator<Item = u64> {
        let (first, second) = match self {
            Headers::None => (None, None),
            Headers::At(h) => (Some(h), None),
            Headers::WithParent(h) => (Some(h), h.checked_sub(1)),
        };
        first.into_iter().chain(second)
    }
}

impl From<Option<u64>> for Headers {
    fn from(h: Option<u64>) -> Self {
        h.map_or(Headers::None, Headers::At)
    }
}

/// Methods of the probe batch, in the order they are sent (ids 1, 2, ...).
const METHOD_BLOCK_COUNT: &str = "getblockcount";
const METHOD_BEST_HASH: &str = "getbestblockhash";
const METHOD_CONNECTIONS: &str = "getconnectioncount";
const METHOD_VERSION: &str = "getversion";
const METHOD_HEADER: &str = "getblockheader";

impl Prober {
    pub fn new(cfg: ProbeConfig) -> Result<Prober, ProbeError> {
        if cfg.timeout.is_zero() {
            return Err(ProbeError::Other("probe timeout must be above zero".into()));
        }
        if cfg.max_body_bytes == 0 {
            return Err(ProbeError::Other(
                "probe max_body_bytes must be above zero".into(),
            ));
        }
        if cfg.max_concurrency == 0 || cfg.max_concurrency > Semaphore::MAX_PERMITS {
            return Err(ProbeError::Other(format!(
                "probe max_concurrency must be between 1 and {}",
                Semaphore::MAX_PERMITS
            )));
        }
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .gzip(true)
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            // Below the keep-alive timeouts of the nodes' HTTP servers, so an idle connection
            // is dropped by us before the node closes it under a request.
            .pool_idle_timeout(Duration::from_secs(15))
            .user_agent(concat!("neo-ir/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProbeError::Other(format!("building the HTTP client: {e}")))?;
        Ok(Prober {
            inner: Arc::new(Inner {
                permits: Semaphore::new(cfg.max_concurrency),
                cfg,
                client,
                versions: Mutex::new(HashMap::new()),
                links: Links::default(),
            }),
        })
    }

    pub fn config(&self) -> &ProbeConfig {
        &self.inner.cfg
    }

    /// One batched HTTP POST: `getblockcount`, `getbestblockhash`, `getconnectioncount`,
    /// plus `getversion` when it is not cached (or is older than `version_refresh`, or the
    /// node failed since), plus the block headers `headers` asks for (`Some(h)` is the
    /// header at `h`).
    ///
    /// `at` is taken once a concurrency slot is free, so `latency_ms` measures the node and
    /// not the queue. An error on `getconnectioncount`, `getversion` or `getblockheader`
    /// alone is not a failure: that field is `None`.
    pub async fn probe(&self, target: &NodeTarget, headers: impl Into<Headers>) -> Observation {
        let headers = headers.into();
        let _permit = self.permit().await;
        let at = Timestamp::now();
        let start = Instant::now();
        let outcome = self.probe_inner(target, headers).await;
        let latency_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let outcome = outcome.map_err(|e| {
            self.forget_version(&target.name);
            tracing::debug!(node = %target.name, kind = e.kind().as_str(), error = %e, "probe failed");
            e.to_failure()
        });
        Observation {
            node: target.name.clone(),
            at,
            latency_ms,
            outcome,
        }
    }

    /// Probe all targets concurrently (at most `max_concurrency` requests in flight), each
    /// under its own hard timeout. Observations come back in the order of `targets`.
    pub async fn probe_all(&self, targets: &[(NodeTarget, Option<u64>)]) -> Vec<Observation> {
        futures::future::join_all(targets.iter().map(|(t, h)| self.probe(t, *h))).await
    }

    /// One JSON-RPC call (a single request object, not a batch). A JSON-RPC error comes back
    /// as `ProbeError::Rpc` (or `Auth` for access-denied codes).
    pub async fn call(
        &self,
        target: &NodeTarget,
        method: &str,
        params: Value,
    ) -> Result<Value, ProbeError> {
        let _permit = self.permit().await;
        let mut out = self.exchange(target, &[(method, params)], false).await?;
        match out.pop() {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(ProbeError::from_rpc(method, e)),
            None => Err(ProbeError::Malformed("no answer in the response".into())),
        }
    }

    /// Several calls in one batched POST; the results come back in the order of `calls`,
    /// whatever order the node answered in. Per-call JSON-RPC errors stay per call.
    pub async fn batch(
        &self,
        target: &NodeTarget,
        calls: &[(&str, Value)],
    ) -> Result<Vec<Result<Value, RpcError>>, ProbeError> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let _permit = self.permit().await;
        self.exchange(target, calls, true).await
    }

    /// Resolves when the node closes the idle connection neo-ir keeps to it (opened here
    /// when there is none, at most once a second): a process that dies closes its sockets,
    /// so this tells of a crash within milliseconds, long before the next probe would.
    /// Pending while there is nothing to watch (the node refuses connections). Our own
    /// drops of a connection (after an error or a timeout) do not count.
    pub async fn connection_closed(&self, target: &NodeTarget) {
        self.inner.links.closed(target).await
    }

    /// The cached `getversion` answer of a node, if any.
    pub fn cached_version(&self, node: &str) -> Option<NodeVersion> {
        self.versions().get(node).map(|c| c.version.clone())
    }

    /// Drop the cached `getversion` answer of a node, so the next probe asks again.
    pub fn forget_version(&self, node: &str) {
        self.versions().remove(node);
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedVersion>> {
        self.inner
            .versions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fresh_version(&self, target: &NodeTarget) -> Option<NodeVersion> {
        self.versions()
            .get(&target.name)
            .filter(|c| {
                c.url == target.rpc_url && c.fetched.elapsed() < self.inner.cfg.version_refresh
            })
            .map(|c| c.version.clone())
    }

    fn remember_version(&self, target: &NodeTarget, version: NodeVersion) {
        self.versions().insert(
            target.name.clone(),
            CachedVersion {
                url: target.rpc_url.clone(),
                version,
                fetched: Instant::now(),
            },
        );
    }

    async fn permit(&self) -> Option<SemaphorePermit<'_>> {
        // The semaphore is never closed, so this always yields a permit.
        self.inner.permits.acquire().await.ok()
    }

    async fn probe_inner(
        &self,
        target: &NodeTarget,
        headers: Headers,
    ) -> Result<ChainStatus, ProbeError> {
        let cached = self.fresh_version(target);
        let body = probe_body(cached.is_none(), headers);
        let answer = self.post(target, body).await?;
        let answers = parse_answers(&answer)?;
        let asked = 3 + usize::from(cached.is_none()) + headers.heights().count();
        let mut results = answers
            .results_for(&[1, 2, 3, 4, 5, 6][..asked])?
            .into_iter();
        let mut next = || {
            results
                .next()
                .ok_or_else(|| ProbeError::Malformed("fewer answers than calls".into()))
        };

        let block_count = match next()? {
            Ok(v) => parse_block_count(v)
                .map_err(|e| ProbeError::Malformed(format!("{METHOD_BLOCK_COUNT}: {e}")))?,
            Err(e) => return Err(ProbeError::from_rpc(METHOD_BLOCK_COUNT, e)),
        };
        let best_hash = match next()? {
            Ok(v) => parse_hash(v)
                .map_err(|e| ProbeError::Malformed(format!("{METHOD_BEST_HASH}: {e}")))?,
            Err(e) => return Err(ProbeError::from_rpc(METHOD_BEST_HASH, e)),
        };
        let connections = match next()? {
            Ok(v) => parse_connection_count(v)
                .inspect_err(|e| debug_optional(target, METHOD_CONNECTIONS, e))
                .ok(),
            Err(e) => {
                debug_optional(target, METHOD_CONNECTIONS, &e);
                None
            }
        };
        let version = match cached {
            Some(v) => Some(v),
            None => match next()?.map(|raw| serde_json::from_str::<Value>(raw.get())) {
                Ok(Err(e)) => {
                    debug_optional(target, METHOD_VERSION, &e);
                    None
                }
                Ok(Ok(v)) => match parse_version(&v) {
                    Ok(ver) => {
                        self.remember_version(target, ver.clone());
                        Some(ver)
                    }
                    Err(e) => {
                        debug_optional(target, METHOD_VERSION, &e);
                        None
                    }
                },
                Err(e) => {
                    debug_optional(target, METHOD_VERSION, &e);
                    None
                }
            },
        };
        let mut asked_headers = headers.heights().map(|h| {
            match next()? {
                Ok(v) => match parse_header(v) {
                    Ok(hdr) if hdr.index == h => return Ok(Some(hdr)),
                    Ok(hdr) => {
                        tracing::warn!(node = %target.name, asked = h, got = hdr.index,
                            "getblockheader answered another height; ignored");
                    }
                    Err(e) => debug_optional(target, METHOD_HEADER, &e),
                },
                Err(e) => debug_optional(target, METHOD_HEADER, &e),
            }
            Ok::<_, ProbeError>(None)
        });
        let header = asked_headers.next().transpose()?.flatten();
        let parent_header = asked_headers.next().transpose()?.flatten();
        Ok(ChainStatus {
            block_count,
            best_hash,
            connections,
            version,
            header,
            parent_header,
        })
    }

    /// Send `calls` (ids 1..=n) as one POST, as an array when `as_batch`, and match the
    /// answers to the calls by id.
    async fn exchange(
        &self,
        target: &NodeTarget,
        calls: &[(&str, Value)],
        as_batch: bool,
    ) -> Result<Vec<Result<Value, RpcError>>, ProbeError> {
        let requests: Vec<Value> = calls
            .iter()
            .zip(1u64..)
            .map(|((method, params), id)| {
                let params = if params.is_null() {
                    json!([])
                } else {
                    params.clone()
                };
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
            })
            .collect();
        let body = if as_batch || requests.len() != 1 {
            serde_json::to_vec(&requests)
        } else {
            serde_json::to_vec(&requests[0])
        }
        .map_err(|e| ProbeError::Other(format!("encoding the request: {e}")))?;
        let ids: Vec<u64> = (1..=calls.len() as u64).collect();
        let answer = self.post(target, body).await?;
        Ok(parse_response(&answer)?.results_for(&ids)?)
    }

    /// POST `body`, under the hard timeout, and read the answer up to the body limit:
    /// over the node's own link for `http` URLs, else through the shared client.
    async fn post(&self, target: &NodeTarget, body: Vec<u8>) -> Result<Vec<u8>, ProbeError> {
        let res = self
            .within_timeout(async {
                let limit = self.inner.cfg.max_body_bytes;
                let body = hyper::body::Bytes::from(body);
                match self.inner.links.post(target, body.clone(), limit).await {
                    Some(answer) => {
                        let answer = answer?;
                        check_status(answer.status)?;
                        Ok(answer.body)
                    }
                    // boxed: the shared client's future is large and only `https` uses it
                    None => Box::pin(self.post_inner(target, body)).await,
                }
            })
            .await;
        if res.is_err() {
            self.forget_version(&target.name);
        }
        res
    }

    async fn post_inner(
        &self,
        target: &NodeTarget,
        body: hyper::body::Bytes,
    ) -> Result<Vec<u8>, ProbeError> {
        let url = http_url(&target.rpc_url, "RPC")?;
        let mut req = self
            .inner
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .body(body);
        if let Some(auth) = &target.auth {
            req = req.basic_auth(&auth.user, Some(&auth.password));
        }
        let resp = self.send(req).await?;
        check_status(resp.status())?;
        self.read_limited(resp).await
    }

    /// One GET (the shared "GET with limits" of the telemetry scrapes). It adds no
    /// credentials (reqwest still sends a user and password written into the URL itself),
    /// holds a concurrency slot, runs under the hard timeout, and reads the body up to the
    /// body limit only when the status is a success (the body is empty otherwise). `what`
    /// names the URL in messages ("metrics", "health").
    pub(crate) async fn get_limited(
        &self,
        url: &str,
        accept: &'static str,
        what: &str,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), ProbeError> {
        let _permit = self.permit().await;
        self.within_timeout(async {
            let url = http_url(url, what)?;
            let req = self
                .inner
                .client
                .get(url)
                .header(ACCEPT, HeaderValue::from_static(accept));
            let resp = self.send(req).await?;
            let status = resp.status();
            if !status.is_success() {
                return Ok((status, Vec::new()));
            }
            Ok((status, self.read_limited(resp).await?))
        })
        .await
    }

    /// `fut` under the hard timeout of one request (connection, headers and body).
    ///
    /// A combinator, not an `async fn`: an `async fn` would keep `fut` in its state twice
    /// (the argument and the timeout around it), and every probe's future with it.
    fn within_timeout<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, ProbeError>>,
    ) -> impl std::future::Future<Output = Result<T, ProbeError>> {
        use futures::FutureExt;
        let timeout = self.inner.cfg.timeout;
        tokio::time::timeout(timeout, fut)
            .map(move |r| r.unwrap_or(Err(ProbeError::Timeout(timeout))))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ProbeError> {
        req.send()
            .await
            .map_err(|e| ProbeError::from_reqwest(e, self.inner.cfg.timeout))
    }

    /// Read the (decompressed) body of `resp` up to the body limit.
    async fn read_limited(&self, mut resp: reqwest::Response) -> Result<Vec<u8>, ProbeError> {
        let cfg = &self.inner.cfg;
        let limit = cfg.max_body_bytes;
        let declared = resp.content_length();
        if let Some(len) = declared {
            if len > limit as u64 {
                return Err(ProbeError::TooLarge {
                    limit,
                    declared: Some(len),
                });
            }
        }
        // Stream the (decompressed) body and stop at the limit: a 50 MB answer or a gzip
        // bomb is never held in memory.
        let mut buf = Vec::with_capacity(declared.map_or(8 * 1024, |l| l as usize).min(limit));
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ProbeError::from_reqwest(e, cfg.timeout))?
        {
            if buf.len() + chunk.len() > limit {
                return Err(ProbeError::TooLarge {
                    limit,
                    declared: None,
                });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    }
}

/// The probe batch, ids 1, 2, ... in the order of [`Prober::probe`]'s calls. Written out
/// directly: it goes to every node every round.
fn probe_body(with_version: bool, headers: Headers) -> Vec<u8> {
    use std::fmt::Write;
    let mut s = String::with_capacity(400);
    let mut methods = vec![METHOD_BLOCK_COUNT, METHOD_BEST_HASH, METHOD_CONNECTIONS];
    if with_version {
        methods.push(METHOD_VERSION);
    }
    let mut id = 0u64;
    for method in methods {
        id += 1;
        let sep = if id == 1 { '[' } else { ',' };
        let _ = write!(
            s,
            r#"{sep}{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":[]}}"#
        );
    }
    for h in headers.heights() {
        id += 1;
        let _ = write!(
            s,
            r#",{{"jsonrpc":"2.0","id":{id},"method":"{METHOD_HEADER}","params":[{h},true]}}"#
        );
    }
    s.push(']');
    s.into_bytes()
}

/// `url` parsed, and checked to be http or https; messages show it redacted.
fn http_url(url: &str, what: &str) -> Result<reqwest::Url, ProbeError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ProbeError::Other(format!("invalid {what} URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ProbeError::Other(format!(
            "{what} URL {} is not http or https",
            redact_url(url)
        )));
    }
    Ok(parsed)
}

/// 401/403 are `Auth`, any other non-2xx status is `HttpStatus`.
pub(crate) fn check_status(status: reqwest::StatusCode) -> Result<(), ProbeError> {
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(ProbeError::Auth {
            http_status: Some(status.as_u16()),
            rpc_code: None,
            message: format!("HTTP {status}"),
        });
    }
    if !status.is_success() {
        return Err(ProbeError::HttpStatus {
            status: status.as_u16(),
        });
    }
    Ok(())
}

fn debug_optional(target: &NodeTarget, method: &str, error: &dyn std::fmt::Display) {
    tracing::debug!(node = %target.name, method, error = %error, "optional call failed; field left empty");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let t = NodeTarget::new("n1", "http://ops:hunter2@10.0.0.5:10332/", Role::Validator)
            .with_auth("neo", "s3cr3t");
        let dbg = format!("{t:?}");
        let shown = t.to_string();
        for s in [&dbg, &shown] {
            assert!(!s.contains("hunter2"), "{s}");
            assert!(!s.contains("s3cr3t"), "{s}");
            assert!(s.contains("10.0.0.5:10332"), "{s}");
        }
        assert!(dbg.contains("neo"));
        assert_eq!(redact_url("not a url"), "<invalid URL>");
        assert_eq!(
            redact_url("http://127.0.0.1:10332"),
            "http://127.0.0.1:10332/"
        );
    }

    /// Every probe's future is allocated and moved once per node per round; it once was
    /// 7 KB because an `async fn` wrapper kept the request future twice.
    #[test]
    fn a_probe_future_stays_small() {
        let p = Prober::new(ProbeConfig::default()).expect("prober");
        let t = NodeTarget::new("a", "http://127.0.0.1:1", Role::Rpc);
        let size = std::mem::size_of_val(&p.probe(&t, Headers::None));
        assert!(size <= 4096, "a probe's future is {size} bytes");
    }

    #[test]
    fn probe_bodies() {
        let calls = |with_version, headers| -> Vec<(String, Value)> {
            let v: Value =
                serde_json::from_slice(&probe_body(with_version, headers)).expect("JSON");
            v.as_array()
                .expect("a batch")
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    assert_eq!(c["id"], json!(i + 1));
                    assert_eq!(c["jsonrpc"], "2.0");
                    (
                        c["method"].as_str().expect("method").to_string(),
                        c["params"].clone(),
                    )
                })
                .collect()
        };
        let plain = calls(false, Headers::None);
        assert_eq!(
            plain.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
            ["getblockcount", "getbestblockhash", "getconnectioncount"]
        );
        let full = calls(true, Headers::WithParent(7));
        assert_eq!(full.len(), 6);
        assert_eq!(full[3].0, "getversion");
        assert_eq!(full[4], ("getblockheader".into(), json!([7, true])));
        assert_eq!(full[5], ("getblockheader".into(), json!([6, true])));
        // the genesis block has no parent
        assert_eq!(calls(false, Headers::WithParent(0)).len(), 4);
        assert_eq!(calls(false, Headers::At(0))[3].1, json!([0, true]));
    }

    #[test]
    fn config_validation() {
        assert!(Prober::new(ProbeConfig::default()).is_ok());
        for bad in [
            ProbeConfig {
                timeout: Duration::ZERO,
                ..ProbeConfig::default()
            },
            ProbeConfig {
                max_concurrency: 0,
                ..ProbeConfig::default()
            },
            ProbeConfig {
                max_body_bytes: 0,
                ..ProbeConfig::default()
            },
        ] {
            assert!(matches!(Prober::new(bad), Err(ProbeError::Other(_))));
        }
        let from = ProbeConfig::from(&ProbeSettings::default());
        assert_eq!(from, ProbeConfig::default());
    }
}
