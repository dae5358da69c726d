//! The operator's configuration file (TOML), parsed and validated without side effects.
//!
//! Every error names the file, the line and the key, and says what was expected, so
//! `neo-ir check-config` can point an operator at the exact mistake. Unknown keys are errors.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::detect::DetectConfig;
use crate::observation::Role;

/// Default HTTP listen address of neo-ir's API.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9797";
/// Default store: an SQLite file in the working directory.
pub const DEFAULT_STORE_URL: &str = "sqlite://neo-ir.db";

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub nodes: Vec<NodeConfig>,
    pub probe: ProbeSettings,
    pub detect: DetectConfig,
    pub store: StoreSettings,
    pub server: ServerSettings,
    /// Phases, escalation, schedules, reminders (`[response]`, `[[escalation]]`, `[[schedule]]`).
    pub response: crate::oncall::ResponseConfig,
    /// Channels and routes of messages (`[notify]`).
    pub notify: crate::notify::NotifySettings,
    /// Runbook runs and auto-remediation (`[runbook]`, `[[remediation]]`).
    pub runbook: RunbookSettings,
    /// The monthly drill schedule, reminders and test node (`[drills]`); `None` without it.
    pub drills: Option<crate::drill::schedule::DrillSettings>,
}

/// `[runbook]` and `[[remediation]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookSettings {
    /// Hard limit on one operation on a node's agent (a restart waits for the node's RPC).
    pub agent_timeout: Duration,
    /// After an automatic run, how long the node has to be back in sync (`validate_sync`)
    /// before the run counts as failed and the circuit breaker opens.
    pub verify_within: Duration,
    /// Blocks a node may be behind the fleet and still count as in sync when verifying.
    pub max_lag: u64,
    /// Auto-remediation policies; none by default (off).
    pub remediation: Vec<crate::runbook::RemediationPolicy>,
}

impl Default for RunbookSettings {
    fn default() -> Self {
        RunbookSettings {
            agent_timeout: Duration::from_secs(300),
            verify_within: Duration::from_secs(120),
            max_lag: 2,
            remediation: Vec::new(),
        }
    }
}

impl Config {
    /// `nodes` with every other setting at its default and the API on a free port: the
    /// starting point of the demo, drills, tests and benches, which then set what they need.
    pub fn with_defaults(nodes: Vec<NodeConfig>, store_url: impl Into<String>) -> Self {
        Config {
            nodes,
            probe: ProbeSettings::default(),
            detect: DetectConfig::default(),
            store: StoreSettings {
                url: store_url.into(),
                ..StoreSettings::default()
            },
            server: ServerSettings {
                listen: "127.0.0.1:0".into(),
                ..ServerSettings::default()
            },
            response: crate::oncall::ResponseConfig::default(),
            notify: crate::notify::NotifySettings::default(),
            runbook: RunbookSettings::default(),
            drills: None,
        }
    }
}

/// One watched Neo node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub name: String,
    /// JSON-RPC endpoint, e.g. `http://10.0.0.5:10332`.
    pub rpc: String,
    pub role: Role,
    /// Prometheus endpoint of the node (neo-rs, neo-go), when it has one.
    pub metrics: Option<String>,
    pub auth_user: Option<String>,
    /// Name of the environment variable that holds the Basic-auth password.
    pub auth_password_env: Option<String>,
    /// A validator's index in the consensus order (what block headers' `primary` counts);
    /// default: its position among the configured validators.
    pub validator_index: Option<u32>,
    /// The `neo-ir agent` on the node's host, and the variable holding its bearer token.
    pub agent: Option<String>,
    pub agent_token_env: Option<String>,
}

impl NodeConfig {
    /// A node without metrics or auth.
    pub fn new(name: impl Into<String>, rpc: impl Into<String>, role: Role) -> Self {
        Self {
            name: name.into(),
            rpc: rpc.into(),
            role,
            metrics: None,
            auth_user: None,
            auth_password_env: None,
            validator_index: None,
            agent: None,
            agent_token_env: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Time between probe rounds.
    pub interval: Duration,
    /// Hard timeout of one request to one node, body included.
    pub timeout: Duration,
    /// Largest response body accepted from a node.
    pub max_body_bytes: usize,
    /// Most requests in flight at once.
    pub max_concurrency: usize,
    /// Time between scrapes of node `/metrics` and host agent reports.
    pub telemetry_interval: Duration,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            max_body_bytes: 8 * 1024 * 1024,
            max_concurrency: 32,
            telemetry_interval: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    pub url: String,
    /// How long the leader's lease lasts without renewal: with several instances on one
    /// database, a follower takes over at most this long after the leader died.
    pub lease: Duration,
}

/// Default leader lease.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: DEFAULT_STORE_URL.to_string(),
            lease: DEFAULT_LEASE,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub listen: String,
    /// Bearer tokens of the API. Mutating endpoints need a `write` token; without any token
    /// configured, nothing can be changed over the API.
    pub tokens: Vec<ApiToken>,
    /// Whether the read-only endpoints need a token too (default: open).
    pub protect_reads: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_string(),
            tokens: Vec::new(),
            protect_reads: false,
        }
    }
}

/// One API bearer token, by reference: its value comes from an environment variable or a
/// file, never from the configuration itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Who holds it; the audit log names mutations by it.
    pub name: String,
    pub source: SecretSource,
    pub access: Access,
}

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(std::path::PathBuf),
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
}

/// A configuration error: where it is and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line, when the error can be placed.
    pub line: Option<usize>,
    /// The offending key (dotted path where known), when there is one.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

// ---- raw (serde) shapes: unknown keys are rejected -------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    nodes: Vec<RawNode>,
    #[serde(default)]
    probe: RawProbe,
    #[serde(default)]
    detect: RawDetect,
    #[serde(default)]
    kpi: RawKpi,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    response: RawResponse,
    #[serde(default)]
    escalation: Vec<RawPolicy>,
    #[serde(default)]
    schedule: Vec<RawSchedule>,
    #[serde(default)]
    notify: RawNotify,
    #[serde(default)]
    runbook: RawRunbook,
    #[serde(default)]
    remediation: Vec<RawRemediation>,
    drills: Option<RawDrills>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrills {
    day: Option<i64>,
    at: Option<String>,
    commanders: Option<String>,
    #[serde(default)]
    participants: Vec<String>,
    scenarios: Option<Vec<String>>,
    remind_before: Option<String>,
    channels: Option<Vec<String>>,
    test_node: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRunbook {
    agent_timeout: Option<String>,
    verify_within: Option<String>,
    max_lag: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemediation {
    kind: String,
    #[serde(default)]
    roles: Vec<String>,
    script: String,
    max_runs: Option<u32>,
    window: Option<String>,
    delay: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    public_url: Option<String>,
    templates: Option<PathBuf>,
    max_attempts: Option<u32>,
    give_up_after: Option<String>,
    #[serde(default)]
    channels: Vec<RawChannel>,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    url: Option<String>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    chat_id: Option<String>,
    timeout: Option<String>,
    per_minute: Option<u32>,
    templates: Option<PathBuf>,
    /// Takes drill incidents' messages (default false).
    #[serde(default)]
    drills: bool,
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    tls: Option<crate::notify::EmailTls>,
    username: Option<String>,
    from: Option<String>,
    #[serde(default)]
    to: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(default)]
    severities: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
    channels: Vec<String>,
    #[serde(default)]
    fallback: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawResponse {
    stability_window: Option<String>,
    /// After resolution, when a P1/P2 review is scheduled: a duration, or "off".
    review_after: Option<String>,
    /// Per severity: a duration, or "off".
    #[serde(default)]
    update_every: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: String,
    severities: Option<Vec<String>>,
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    after: String,
    notify: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    name: String,
    rotation: String,
    start: String,
    people: Vec<String>,
    #[serde(default)]
    overrides: Vec<RawOverride>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    who: String,
    from: String,
    until: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    rpc: String,
    role: Role,
    metrics: Option<String>,
    auth_user: Option<String>,
    auth_password_env: Option<String>,
    validator_index: Option<u32>,
    agent: Option<String>,
    agent_token_env: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    interval: Option<String>,
    timeout: Option<String>,
    max_body: Option<String>,
    max_concurrency: Option<usize>,
    telemetry_interval: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDetect {
    lag_warn: Option<u64>,
    lag_crit: Option<u64>,
    stall_grace: Option<String>,
    implausible_lead: Option<u64>,
    clear_for: Option<String>,
    /// Per incident kind: how long a condition must hold before it fires.
    #[serde(rename = "for", default)]
    for_kind: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKpi {
    rpc_latency_warn: Option<String>,
    rpc_latency_crit: Option<String>,
    peers_warn: Option<u64>,
    memory_warn: Option<String>,
    memory_crit: Option<String>,
    cpu_warn: Option<u64>,
    cpu_crit: Option<u64>,
    iowait_warn: Option<u64>,
    iowait_crit: Option<u64>,
    attack_per_ip: Option<u32>,
    attack_total: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<String>,
    lease: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    #[serde(default)]
    tokens: Vec<RawToken>,
    protect_reads: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    env: Option<String>,
    file: Option<std::path::PathBuf>,
    access: Access,
}

/// Read and validate a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: None,
        key: None,
        message: format!("cannot read the file: {e}"),
    })?;
    parse(&text, path)
}

/// Parse and validate configuration text; `file` is only used in error messages.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    let located = Locator { text, file };
    let raw: RawConfig = toml::from_str(text).map_err(|e| located.toml_error(&e))?;

    let mut names = BTreeSet::new();
    let mut nodes = Vec::with_capacity(raw.nodes.len());
    for (i, n) in raw.nodes.into_iter().enumerate() {
        let at = |key: &str| located.nth_key_in_table("nodes", i, key);
        if n.name.trim().is_empty() {
            return Err(located.error(at("name"), "nodes.name", "must not be empty"));
        }
        if !names.insert(n.name.clone()) {
            return Err(located.error(
                at("name"),
                "nodes.name",
                &format!(
                    "duplicate node name {:?}: each node needs its own name",
                    n.name
                ),
            ));
        }
        check_url(&n.rpc).map_err(|m| located.error(at("rpc"), "nodes.rpc", &m))?;
        if let Some(m) = &n.metrics {
            check_url(m).map_err(|msg| located.error(at("metrics"), "nodes.metrics", &msg))?;
        }
        if let Some(u) = &n.agent {
            check_url(u).map_err(|msg| located.error(at("agent"), "nodes.agent", &msg))?;
            if n.agent_token_env.is_none() {
                return Err(located.error(
                    at("agent"),
                    "nodes.agent",
                    "needs `agent_token_env`: the agent only answers with its bearer token",
                ));
            }
        }
        if n.validator_index.is_some() && n.role != Role::Validator {
            return Err(located.error(
                at("validator_index"),
                "nodes.validator_index",
                "only a node with role = \"validator\" has a validator index",
            ));
        }
        if n.auth_password_env.is_some() && n.auth_user.is_none() {
            return Err(located.error(
                at("auth_password_env"),
                "nodes.auth_password_env",
                "needs `auth_user` too (Basic auth sends a user and a password)",
            ));
        }
        nodes.push(NodeConfig {
            name: n.name,
            rpc: n.rpc,
            role: n.role,
            metrics: n.metrics,
            auth_user: n.auth_user,
            auth_password_env: n.auth_password_env,
            validator_index: n.validator_index,
            agent: n.agent,
            agent_token_env: n.agent_token_env,
        });
    }
    if nodes.is_empty() {
        return Err(located.error(
            None,
            "nodes",
            "no [[nodes]] configured: add at least one node with name, rpc and role",
        ));
    }

    let mut probe = ProbeSettings::default();
    if let Some(s) = &raw.probe.interval {
        probe.interval = located.duration("probe", "interval", s)?;
    }
    if let Some(s) = &raw.probe.timeout {
        probe.timeout = located.duration("probe", "timeout", s)?;
    }
    if let Some(s) = &raw.probe.telemetry_interval {
        probe.telemetry_interval = located.duration("probe", "telemetry_interval", s)?;
    }
    if let Some(s) = &raw.probe.max_body {
        probe.max_body_bytes = parse_size(s).map_err(|m| {
            located.error(
                located.key_in_table("probe", "max_body"),
                "probe.max_body",
                &m,
            )
        })?;
    }
    if let Some(c) = raw.probe.max_concurrency {
        if c == 0 {
            return Err(located.error(
                located.key_in_table("probe", "max_concurrency"),
                "probe.max_concurrency",
                "must be at least 1",
            ));
        }
        probe.max_concurrency = c;
    }

    let mut detect = DetectConfig::default();
    if let Some(v) = raw.detect.lag_warn {
        detect.lag_warn = v;
    }
    if let Some(v) = raw.detect.lag_crit {
        detect.lag_crit = v;
    }
    if detect.lag_crit < detect.lag_warn {
        return Err(located.error(
            located.key_in_table("detect", "lag_crit"),
            "detect.lag_crit",
            "must be at least detect.lag_warn",
        ));
    }
    if let Some(s) = &raw.detect.stall_grace {
        detect.stall_grace = located.duration("detect", "stall_grace", s)?;
    }
    if let Some(v) = raw.detect.implausible_lead {
        detect.implausible_lead = v;
    }
    if let Some(s) = &raw.detect.clear_for {
        detect.debounce.clear_for = located.duration("detect", "clear_for", s)?;
    }

    for (kind, d) in &raw.detect.for_kind {
        let k: crate::incident::IncidentKind = kind.parse().map_err(|e: String| {
            located.error(
                located.key_in_table("detect.for", kind),
                &format!("detect.for.{kind}"),
                &format!("{e}: keys are incident kinds such as performance_degradation"),
            )
        })?;
        let dur = located.duration("detect.for", kind, d)?;
        detect.debounce.for_by_kind.insert(k, dur);
    }
    let k = &mut detect.kpi;
    let rk = &raw.kpi;
    if let Some(s) = &rk.rpc_latency_warn {
        k.rpc_latency_warn_ms = located.duration("kpi", "rpc_latency_warn", s)?.as_millis() as u64;
    }
    if let Some(s) = &rk.rpc_latency_crit {
        k.rpc_latency_crit_ms = located.duration("kpi", "rpc_latency_crit", s)?.as_millis() as u64;
    }
    let size = |key: &str, s: &str| -> Result<u64, ConfigError> {
        parse_size(s)
            .map(|v| v as u64)
            .map_err(|m| located.error(located.key_in_table("kpi", key), &format!("kpi.{key}"), &m))
    };
    if let Some(s) = &rk.memory_warn {
        k.memory_warn_bytes = size("memory_warn", s)?;
    }
    if let Some(s) = &rk.memory_crit {
        k.memory_crit_bytes = size("memory_crit", s)?;
    }
    for (slot, v) in [
        (&mut k.peers_warn, rk.peers_warn),
        (&mut k.cpu_warn_percent, rk.cpu_warn),
        (&mut k.cpu_crit_percent, rk.cpu_crit),
        (&mut k.iowait_warn_percent, rk.iowait_warn),
        (&mut k.iowait_crit_percent, rk.iowait_crit),
    ] {
        if let Some(v) = v {
            *slot = v;
        }
    }
    if let Some(v) = rk.attack_per_ip {
        k.attack_per_ip = v;
    }
    if let Some(v) = rk.attack_total {
        k.attack_total = v;
    }
    for (key, warn, crit) in [
        (
            "rpc_latency_crit",
            k.rpc_latency_warn_ms,
            k.rpc_latency_crit_ms,
        ),
        ("memory_crit", k.memory_warn_bytes, k.memory_crit_bytes),
        ("cpu_crit", k.cpu_warn_percent, k.cpu_crit_percent),
        ("iowait_crit", k.iowait_warn_percent, k.iowait_crit_percent),
    ] {
        if crit < warn {
            return Err(located.error(
                located.key_in_table("kpi", key),
                &format!("kpi.{key}"),
                "the critical level must be at least the warning level",
            ));
        }
    }

    let store = StoreSettings {
        url: raw
            .store
            .url
            .unwrap_or_else(|| DEFAULT_STORE_URL.to_string()),
        lease: match &raw.store.lease {
            Some(s) => located.duration("store", "lease", s)?,
            None => DEFAULT_LEASE,
        },
    };
    let known = ["sqlite:", "postgres://", "postgresql://"];
    if !known.iter().any(|p| store.url.starts_with(p)) {
        return Err(located.error(
            located.key_in_table("store", "url"),
            "store.url",
            "expected \"sqlite://neo-ir.db\" (the default) or \"postgres://USER@HOST:5432/DATABASE\" \
             (the password from the PGPASSWORD environment variable, not the file)",
        ));
    }

    let mut tokens = Vec::with_capacity(raw.server.tokens.len());
    for (i, t) in raw.server.tokens.into_iter().enumerate() {
        let source = match (t.env, t.file) {
            (Some(env), None) if !env.is_empty() => SecretSource::Env(env),
            (None, Some(file)) => SecretSource::File(file),
            _ => return Err(located.error(
                located.nth_key_in_table("server.tokens", i, "name"),
                &format!("server.tokens[{i}]"),
                "needs exactly one of `env` (an environment variable) or `file` holding the token",
            )),
        };
        if t.name.is_empty() || tokens.iter().any(|o: &ApiToken| o.name == t.name) {
            return Err(located.error(
                located.nth_key_in_table("server.tokens", i, "name"),
                &format!("server.tokens[{i}].name"),
                "needs a name of its own (the audit log names mutations by it)",
            ));
        }
        tokens.push(ApiToken {
            name: t.name,
            source,
            access: t.access,
        });
    }
    let server = ServerSettings {
        listen: raw
            .server
            .listen
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
        tokens,
        protect_reads: raw.server.protect_reads.unwrap_or(false),
    };
    if server.listen.parse::<std::net::SocketAddr>().is_err() {
        return Err(located.error(
            located.key_in_table("server", "listen"),
            "server.listen",
            "expected an address with port such as \"127.0.0.1:9797\"",
        ));
    }

    let response = response(&located, raw.response, raw.escalation, raw.schedule)?;
    let notify = notify(&located, raw.notify)?;
    let runbook = runbook(&located, raw.runbook, raw.remediation)?;
    let drills = raw
        .drills
        .map(|d| drills(&located, d, &nodes, &response, &notify))
        .transpose()?;
    Ok(Config {
        nodes,
        probe,
        detect,
        store,
        server,
        response,
        notify,
        runbook,
        drills,
    })
}

/// `[drills]`: every name it gives must be configured (a schedule, channels, a node with
/// an agent, built-in scenarios). Without `channels`, reminders go to the channels marked
/// `drills = true`.
fn drills(
    located: &Locator<'_>,
    raw: RawDrills,
    nodes: &[NodeConfig],
    response: &crate::oncall::ResponseConfig,
    notify: &crate::notify::NotifySettings,
) -> Result<crate::drill::schedule::DrillSettings, ConfigError> {
    let mut out = crate::drill::schedule::DrillSettings::default();
    let err = |key: &str, message: &str| {
        located.error(
            located.key_in_table("drills", key),
            &format!("drills.{key}"),
            message,
        )
    };
    if let Some(day) = raw.day {
        if !(1..=28).contains(&day) {
            return Err(err(
                "day",
                &format!(
                    "expected a day of the month from 1 to 28 (every month has it), got {day}"
                ),
            ));
        }
        out.day = day as i8;
    }
    if let Some(at) = &raw.at {
        out.at = jiff::civil::Time::strptime("%H:%M", at).map_err(|_| {
            err(
                "at",
                &format!("expected a time of day (UTC) such as \"14:00\", got {at:?}"),
            )
        })?;
    }
    if let Some(name) = raw.commanders {
        if !response.schedules.iter().any(|s| s.name == name) {
            let known: Vec<&str> = response.schedules.iter().map(|s| s.name.as_str()).collect();
            return Err(err(
                "commanders",
                &format!(
                    "no [[schedule]] is named {name:?} (configured: {}): the incident commander \
                     of each drill is the next person of that rotation",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        out.commanders = Some(name);
    }
    if raw.participants.iter().any(|p| p.trim().is_empty()) {
        return Err(err("participants", "each participant needs a name"));
    }
    out.participants = raw.participants;
    if let Some(list) = raw.scenarios {
        let known: Vec<String> = crate::drill::builtin()
            .into_iter()
            .map(|s| s.name)
            .collect();
        if list.is_empty() {
            return Err(err(
                "scenarios",
                &format!(
                    "needs at least one scenario (built in: {})",
                    known.join(", ")
                ),
            ));
        }
        if let Some(bad) = list.iter().find(|s| !known.contains(s)) {
            return Err(err(
                "scenarios",
                &format!(
                    "no built-in scenario {bad:?} (built in: {})",
                    known.join(", ")
                ),
            ));
        }
        out.scenarios = list;
    }
    if let Some(s) = &raw.remind_before {
        out.remind_before = located.duration("drills", "remind_before", s)?;
    }
    match raw.channels {
        Some(list) => {
            if let Some(bad) = list.iter().find(|c| notify.channel(c).is_none()) {
                return Err(err(
                    "channels",
                    &format!("no [[notify.channels]] is named {bad:?}"),
                ));
            }
            out.channels = list;
        }
        None => {
            out.channels = notify
                .channels
                .iter()
                .filter(|c| c.drills)
                .map(|c| c.name.clone())
                .collect()
        }
    }
    if let Some(name) = raw.test_node {
        match nodes.iter().find(|n| n.name == name) {
            None => return Err(err("test_node", &format!("no [[nodes]] is named {name:?}"))),
            Some(n) if n.agent.is_none() => {
                return Err(err(
                    "test_node",
                    &format!(
                        "node {name:?} has no `agent`: drills break a test node through its agent"
                    ),
                ))
            }
            Some(_) => out.test_node = Some(name),
        }
    }
    Ok(out)
}

/// Scripts auto-remediation may run: the node-host ones that bring a node back. Anything
/// else (restores, firewall rules, view changes) is a person's decision.
pub const REMEDIATION_SCRIPTS: &[&str] = &["quick_recovery", "emergency_cleanup"];

/// `[runbook]` and `[[remediation]]`.
fn runbook(
    located: &Locator<'_>,
    raw: RawRunbook,
    policies: Vec<RawRemediation>,
) -> Result<RunbookSettings, ConfigError> {
    let mut out = RunbookSettings::default();
    if let Some(s) = &raw.agent_timeout {
        out.agent_timeout = located.duration("runbook", "agent_timeout", s)?;
    }
    if let Some(s) = &raw.verify_within {
        out.verify_within = located.duration("runbook", "verify_within", s)?;
    }
    if let Some(n) = raw.max_lag {
        out.max_lag = n;
    }
    for (i, p) in policies.into_iter().enumerate() {
        let at = |key: &str| located.nth_key_in_table("remediation", i, key);
        let key = |k: &str| format!("remediation[{i}].{k}");
        let kind = p
            .kind
            .parse::<crate::incident::IncidentKind>()
            .map_err(|e| located.error(at("kind"), &key("kind"), &e.to_string()))?;
        if !REMEDIATION_SCRIPTS.contains(&p.script.as_str()) {
            return Err(located.error(
                at("script"),
                &key("script"),
                &format!(
                    "{:?} cannot run automatically; allowed: {}",
                    p.script,
                    REMEDIATION_SCRIPTS.join(", ")
                ),
            ));
        }
        let mut roles = Vec::new();
        for r in &p.roles {
            roles.push(match r.as_str() {
                "validator" => Role::Validator,
                "rpc" => Role::Rpc,
                other => {
                    return Err(located.error(
                        at("roles"),
                        &key("roles"),
                        &format!("expected \"validator\" or \"rpc\", got {other:?}"),
                    ))
                }
            });
        }
        let dur = |name: &str, v: &Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(s) => humantime::parse_duration(s).map_err(|e| {
                located.error(
                    at(name),
                    &key(name),
                    &format!("expected a duration such as \"30s\" or \"1h\", got {s:?} ({e})"),
                )
            }),
        };
        let max_runs = p.max_runs.unwrap_or(3);
        if max_runs == 0 {
            return Err(located.error(
                at("max_runs"),
                &key("max_runs"),
                "must be at least 1 (remove the policy to turn it off)",
            ));
        }
        if out.remediation.iter().any(|o| o.kind == kind) {
            return Err(located.error(
                at("kind"),
                &key("kind"),
                &format!("{kind} already has a remediation policy"),
            ));
        }
        out.remediation.push(crate::runbook::RemediationPolicy {
            kind,
            roles,
            script: p.script,
            max_runs,
            window: dur("window", &p.window, Duration::from_secs(3600))?,
            delay: dur("delay", &p.delay, Duration::from_secs(30))?,
        });
    }
    Ok(out)
}

/// `[notify]`, `[[notify.channels]]`, `[[notify.routes]]`.
fn notify(
    located: &Locator<'_>,
    raw: RawNotify,
) -> Result<crate::notify::NotifySettings, ConfigError> {
    use crate::notify::{
        ChannelConfig, ChannelKind, EmailSettings, EmailTls, NotifySettings, Route,
    };
    let mut out = NotifySettings::default();
    if let Some(u) = &raw.public_url {
        check_url(u).map_err(|m| {
            located.error(
                located.key_in_table("notify", "public_url"),
                "notify.public_url",
                &m,
            )
        })?;
        out.public_url = Some(u.trim_end_matches('/').to_string());
    }
    out.templates = raw.templates;
    if let Some(n) = raw.max_attempts {
        if n == 0 {
            return Err(located.error(
                located.key_in_table("notify", "max_attempts"),
                "notify.max_attempts",
                "must be at least 1",
            ));
        }
        out.max_attempts = n;
    }
    if let Some(s) = &raw.give_up_after {
        out.give_up_after = located.duration("notify", "give_up_after", s)?;
    }
    for (i, c) in raw.channels.into_iter().enumerate() {
        let at = |key: &str| located.nth_key_in_table("notify.channels", i, key);
        let key = |k: &str| format!("notify.channels[{i}].{k}");
        if c.name.trim().is_empty() || out.channels.iter().any(|o| o.name == c.name) {
            return Err(located.error(
                at("name"),
                &key("name"),
                "needs a name of its own (routes name channels by it)",
            ));
        }
        let kind: ChannelKind = c
            .kind
            .parse()
            .map_err(|e: String| located.error(at("type"), &key("type"), &e))?;
        let secret = match (c.secret_env, c.secret_file) {
            (Some(e), None) if !e.is_empty() => Some(SecretSource::Env(e)),
            (None, Some(f)) => Some(SecretSource::File(f)),
            (None, None) => None,
            _ => {
                return Err(located.error(
                    at("secret_env"),
                    &key("secret_env"),
                    "set one of `secret_env` or `secret_file`, not both",
                ))
            }
        };
        if let Some(u) = &c.url {
            check_url(u).map_err(|m| located.error(at("url"), &key("url"), &m))?;
        }
        let need = |ok: bool, what: &str, k: &str| -> Result<(), ConfigError> {
            if ok {
                Ok(())
            } else {
                Err(located.error(
                    at("type"),
                    &key(k),
                    &format!("a {} channel needs {what}", kind.as_str()),
                ))
            }
        };
        let mut email = None;
        match kind {
            ChannelKind::Webhook => need(c.url.is_some(), "`url`", "url")?,
            ChannelKind::Slack | ChannelKind::Discord | ChannelKind::Teams => need(
                secret.is_some(),
                "its webhook URL as `secret_env` or `secret_file` (the URL is the credential)",
                "secret_env",
            )?,
            ChannelKind::Telegram => {
                need(
                    secret.is_some(),
                    "the bot token as `secret_env` or `secret_file`",
                    "secret_env",
                )?;
                need(c.chat_id.is_some(), "`chat_id`", "chat_id")?;
            }
            ChannelKind::PagerDuty => need(
                secret.is_some(),
                "the routing key as `secret_env` or `secret_file`",
                "secret_env",
            )?,
            ChannelKind::Email => {
                need(c.smtp_host.is_some(), "`smtp_host`", "smtp_host")?;
                need(c.from.is_some(), "`from`", "from")?;
                need(!c.to.is_empty(), "at least one address in `to`", "to")?;
                need(
                    c.username.is_none() || secret.is_some(),
                    "the SMTP password as `secret_env` or `secret_file` when `username` is set",
                    "secret_env",
                )?;
                let tls = c.tls.unwrap_or(EmailTls::Starttls);
                email = Some(EmailSettings {
                    smtp_host: c.smtp_host.clone().unwrap_or_default(),
                    smtp_port: c.smtp_port.unwrap_or(match tls {
                        EmailTls::Starttls => 587,
                        EmailTls::Tls => 465,
                        EmailTls::None => 25,
                    }),
                    tls,
                    username: c.username.clone(),
                    from: c.from.clone().unwrap_or_default(),
                    to: c.to.clone(),
                });
            }
        }
        let timeout = match &c.timeout {
            Some(t) => located.duration("notify.channels", "timeout", t)?,
            None => Duration::from_secs(10),
        };
        let per_minute = c.per_minute.unwrap_or(30);
        if per_minute == 0 {
            return Err(located.error(at("per_minute"), &key("per_minute"), "must be at least 1"));
        }
        out.channels.push(ChannelConfig {
            name: c.name,
            kind,
            url: c.url,
            secret,
            chat_id: c.chat_id,
            email,
            timeout,
            per_minute,
            templates: c.templates,
            drills: c.drills,
        });
    }
    for (i, r) in raw.routes.into_iter().enumerate() {
        let at = |key: &str| located.nth_key_in_table("notify.routes", i, key);
        let key = |k: &str| format!("notify.routes[{i}].{k}");
        let severities = r
            .severities
            .iter()
            .map(|s| s.parse())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e: String| located.error(at("severities"), &key("severities"), &e))?;
        let kinds = r
            .kinds
            .iter()
            .map(|s| s.parse())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e: String| located.error(at("kinds"), &key("kinds"), &e))?;
        if r.channels.is_empty() {
            return Err(located.error(
                at("channels"),
                &key("channels"),
                "needs at least one channel",
            ));
        }
        for (field, names) in [("channels", &r.channels), ("fallback", &r.fallback)] {
            if let Some(unknown) = names.iter().find(|n| out.channel(n).is_none()) {
                return Err(located.error(
                    at(field),
                    &key(field),
                    &format!("no [[notify.channels]] is named {unknown:?}"),
                ));
            }
        }
        out.routes.push(Route {
            severities,
            kinds,
            channels: r.channels,
            fallback: r.fallback,
        });
    }
    // channels marked for drills get drills without a route; the others need one
    if out.channels.iter().any(|c| !c.drills) && out.routes.is_empty() {
        return Err(located.error(
            located.key_in_table("notify", "channels"),
            "notify.routes",
            "channels are configured but no [[notify.routes]] sends anything to them",
        ));
    }
    Ok(out)
}

/// `[response]`, `[[escalation]]` and `[[schedule]]`. Without any `[[escalation]]` the
/// playbook's chain applies to every severity; with some, they replace it, and a severity
/// no policy lists pages nobody.
fn response(
    located: &Locator<'_>,
    raw: RawResponse,
    policies: Vec<RawPolicy>,
    schedules: Vec<RawSchedule>,
) -> Result<crate::oncall::ResponseConfig, ConfigError> {
    use crate::incident::Severity;
    use crate::oncall::{EscalationPolicy, EscalationStep, Override, ResponseConfig, Schedule};
    let mut cfg = ResponseConfig::default();
    if let Some(s) = &raw.stability_window {
        cfg.stability_window = located.duration("response", "stability_window", s)?;
    }
    if let Some(s) = &raw.review_after {
        cfg.review_after = if s == "off" {
            None
        } else {
            Some(
                located
                    .duration("response", "review_after", s)
                    .map_err(|_| {
                        located.error(
                            located.key_in_table("response", "review_after"),
                            "response.review_after",
                            &format!("expected a duration such as \"48h\" or \"off\", got {s:?}"),
                        )
                    })?,
            )
        };
    }
    for (sev, every) in &raw.update_every {
        let key = format!("response.update_every.{sev}");
        let line = located.key_in_table("response", "update_every");
        let severity: Severity = sev
            .parse()
            .map_err(|e: String| located.error(line, &key, &e))?;
        cfg.update_every[severity as usize] = if every == "off" {
            None
        } else {
            Some(
                located
                    .duration("response", "update_every", every)
                    .map_err(|_| {
                        located.error(
                            line,
                            &key,
                            &format!(
                                "expected a duration such as \"15m\" or \"off\", got {every:?}"
                            ),
                        )
                    })?,
            )
        };
    }
    let timestamp = |line: Option<usize>,
                     key: &str,
                     s: &str|
     -> Result<jiff::Timestamp, ConfigError> {
        s.parse().map_err(|e| {
            located.error(
                line,
                key,
                &format!("expected a UTC time such as \"2026-11-02T09:00:00Z\", got {s:?} ({e})"),
            )
        })
    };
    let mut built = Vec::new();
    for (i, p) in schedules.into_iter().enumerate() {
        let at = |key: &str| located.nth_key_in_table("schedule", i, key);
        let key = |k: &str| format!("schedule[{i}].{k}");
        if p.name.trim().is_empty() || built.iter().any(|s: &Schedule| s.name == p.name) {
            return Err(located.error(at("name"), &key("name"), "needs a name of its own"));
        }
        let rotation = match p.rotation.as_str() {
            "daily" => Duration::from_secs(86_400),
            "weekly" => Duration::from_secs(7 * 86_400),
            other => humantime::parse_duration(other)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    located.error(
                        at("rotation"),
                        &key("rotation"),
                        &format!("expected \"daily\", \"weekly\" or a duration such as \"12h\", got {other:?}"),
                    )
                })?,
        };
        if p.people.is_empty() || p.people.iter().any(|w| w.trim().is_empty()) {
            return Err(located.error(
                at("people"),
                &key("people"),
                "needs at least one person, each with a name",
            ));
        }
        let mut overrides = Vec::new();
        for o in &p.overrides {
            let from = timestamp(at("overrides"), &key("overrides.from"), &o.from)?;
            let until = timestamp(at("overrides"), &key("overrides.until"), &o.until)?;
            if until <= from || o.who.trim().is_empty() {
                return Err(located.error(
                    at("overrides"),
                    &key("overrides"),
                    "each override needs `who` and a `from` before its `until`",
                ));
            }
            overrides.push(Override {
                who: o.who.clone(),
                from,
                until,
            });
        }
        built.push(Schedule {
            name: p.name,
            rotation,
            start: timestamp(at("start"), &key("start"), &p.start)?,
            people: p.people,
            overrides,
        });
    }
    cfg.schedules = built;
    if !policies.is_empty() {
        cfg.escalation.clear();
    }
    for (i, p) in policies.into_iter().enumerate() {
        let at = |key: &str| located.nth_key_in_table("escalation", i, key);
        let key = |k: &str| format!("escalation[{i}].{k}");
        if p.name.trim().is_empty() || cfg.escalation.iter().any(|o| o.name == p.name) {
            return Err(located.error(at("name"), &key("name"), "needs a name of its own"));
        }
        let severities = match p.severities {
            None => vec![Severity::P1, Severity::P2, Severity::P3, Severity::P4],
            Some(list) => list
                .iter()
                .map(|s| s.parse::<Severity>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| located.error(at("severities"), &key("severities"), &e))?,
        };
        if let Some((sev, other)) = severities.iter().find_map(|s| {
            cfg.escalation
                .iter()
                .find(|o| o.severities.contains(s))
                .map(|o| (s, o.name.clone()))
        }) {
            return Err(located.error(
                at("severities"),
                &key("severities"),
                &format!(
                    "{sev} is already escalated by policy {other:?}: each severity has one policy"
                ),
            ));
        }
        if p.steps.is_empty() {
            return Err(located.error(at("steps"), &key("steps"), "needs at least one step"));
        }
        let mut steps = Vec::new();
        for (j, st) in p.steps.iter().enumerate() {
            let after = humantime::parse_duration(&st.after).map_err(|e| {
                located.error(
                    at("steps"),
                    &key(&format!("steps[{j}].after")),
                    &format!(
                        "expected a duration such as \"0m\" or \"5m\", got {:?} ({e})",
                        st.after
                    ),
                )
            })?;
            if steps
                .last()
                .is_some_and(|prev: &EscalationStep| prev.after > after)
            {
                return Err(located.error(
                    at("steps"),
                    &key(&format!("steps[{j}].after")),
                    "steps are in order: each `after` at least the one before",
                ));
            }
            if st.notify.trim().is_empty() {
                return Err(located.error(
                    at("steps"),
                    &key(&format!("steps[{j}].notify")),
                    "must name a schedule, a person or a team",
                ));
            }
            steps.push(EscalationStep {
                after,
                notify: st.notify.clone(),
            });
        }
        cfg.escalation.push(EscalationPolicy {
            name: p.name,
            severities,
            steps,
        });
    }
    Ok(cfg)
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("expected an http:// or https:// URL, got {url:?}"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("URL {url:?} has no host"));
    }
    Ok(())
}

/// Parse a size such as "8MiB", "512KiB", "1GB", "1024".
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("expected a size such as \"8MiB\", got {s:?}"))?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "GiB" => 1024 * 1024 * 1024,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {s:?}: use B, KiB, MiB, GiB, KB, MB or GB"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Finds lines of keys in the source text so semantic errors can name a line too.
struct Locator<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Locator<'_> {
    fn error(&self, line: Option<usize>, key: &str, message: &str) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            key: Some(key.to_string()),
            message: message.to_string(),
        }
    }

    fn duration(&self, table: &str, key: &str, s: &str) -> Result<Duration, ConfigError> {
        let d = humantime::parse_duration(s).map_err(|e| {
            self.error(
                self.key_in_table(table, key),
                &format!("{table}.{key}"),
                &format!(
                    "expected a duration such as \"1s\", \"500ms\" or \"5m\", got {s:?} ({e})"
                ),
            )
        })?;
        if d.is_zero() {
            return Err(self.error(
                self.key_in_table(table, key),
                &format!("{table}.{key}"),
                "must be greater than zero",
            ));
        }
        Ok(d)
    }

    /// Turn a TOML/serde error into one that names the line and key.
    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let line = e.span().map(|s| self.line_of(s.start));
        let message = e.message().trim().to_string();
        let key = e
            .span()
            .and_then(|s| self.key_at(s.start))
            .or_else(|| backticked(&message));
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            key,
            message,
        }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    /// The key assigned on the line containing `offset`, if that line is `key = value`.
    fn key_at(&self, offset: usize) -> Option<String> {
        let start = self.text[..offset.min(self.text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line = self.text[start..].lines().next()?;
        let (k, _) = line.split_once('=')?;
        let k = k.trim();
        (!k.is_empty() && !k.starts_with('[')).then(|| k.trim_matches('"').to_string())
    }

    /// The line of `key` inside the table `[table]`.
    fn key_in_table(&self, table: &str, key: &str) -> Option<usize> {
        self.find_key(&format!("[{table}]"), 0, key)
    }

    /// The line of `key` inside the `index`-th `[[table]]`.
    fn nth_key_in_table(&self, table: &str, index: usize, key: &str) -> Option<usize> {
        self.find_key(&format!("[[{table}]]"), index, key)
    }

    fn find_key(&self, header: &str, index: usize, key: &str) -> Option<usize> {
        let mut seen = 0usize;
        let mut inside = false;
        let mut header_line = None;
        for (no, line) in self.text.lines().enumerate() {
            let t = line.trim();
            if t.starts_with('[') {
                inside = t == header && {
                    seen += 1;
                    seen == index + 1
                };
                if inside {
                    header_line = Some(no + 1);
                }
                continue;
            }
            if inside {
                if let Some((k, _)) = t.split_once('=') {
                    if k.trim().trim_matches('"') == key {
                        return Some(no + 1);
                    }
                }
            }
        }
        header_line
    }
}

fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[nodes]]
name = "validator-1"
rpc = "http://127.0.0.1:20332"
role = "validator"

[[nodes]]
name = "rpc-1"
rpc = "https://rpc.example:443/"
role = "rpc"
metrics = "http://127.0.0.1:9090/metrics"
auth_user = "neo"
auth_password_env = "NEO_RPC_PASSWORD"

[probe]
interval = "500ms"
timeout = "2s"
max_body = "4MiB"

[store]
url = "sqlite://x.db"

[server]
listen = "127.0.0.1:0"
"#;

    fn err(text: &str) -> ConfigError {
        parse(text, Path::new("neo-ir.toml")).unwrap_err()
    }

    #[test]
    fn parses_a_full_config() {
        let c = parse(GOOD, Path::new("neo-ir.toml")).unwrap();
        assert_eq!(c.nodes.len(), 2);
        assert_eq!(c.nodes[0].role, Role::Validator);
        assert_eq!(
            c.nodes[1].auth_password_env.as_deref(),
            Some("NEO_RPC_PASSWORD")
        );
        assert_eq!(c.probe.interval, Duration::from_millis(500));
        assert_eq!(c.probe.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(c.store.url, "sqlite://x.db");
        assert_eq!(c.detect.lag_warn, 50);
        assert_eq!(c.detect.lag_crit, 100);
    }

    #[test]
    fn api_tokens_by_reference() {
        let head = "[[nodes]]\nname = \"a\"\nrpc = \"http://127.0.0.1:1\"\nrole = \"rpc\"\n[server]\nprotect_reads = true\n";
        let good = format!(
            "{head}[[server.tokens]]\nname = \"ops\"\nenv = \"NEO_IR_TOKEN_OPS\"\naccess = \"write\"\n\
             [[server.tokens]]\nname = \"grafana\"\nfile = \"/etc/neo-ir/grafana.token\"\naccess = \"read\"\n"
        );
        let c = parse(&good, Path::new("t.toml")).unwrap();
        assert!(c.server.protect_reads);
        assert_eq!(
            c.server.tokens,
            [
                ApiToken {
                    name: "ops".into(),
                    source: SecretSource::Env("NEO_IR_TOKEN_OPS".into()),
                    access: Access::Write,
                },
                ApiToken {
                    name: "grafana".into(),
                    source: SecretSource::File("/etc/neo-ir/grafana.token".into()),
                    access: Access::Read,
                },
            ]
        );
        for (bad, key) in [
            (
                "[[server.tokens]]\nname = \"x\"\nenv = \"A\"\nfile = \"/f\"\naccess = \"read\"\n",
                "server.tokens[0]",
            ),
            (
                "[[server.tokens]]\nname = \"x\"\naccess = \"read\"\n",
                "server.tokens[0]",
            ),
            (
                "[[server.tokens]]\nname = \"x\"\nenv = \"A\"\naccess = \"read\"\n[[server.tokens]]\nname = \"x\"\nenv = \"B\"\naccess = \"write\"\n",
                "server.tokens[1].name",
            ),
        ] {
            let e = parse(&format!("{head}{bad}"), Path::new("t.toml")).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            assert!(e.line.is_some(), "{e}");
        }
        let e = parse(
            &format!("{head}[[server.tokens]]\nname = \"x\"\nenv = \"A\"\naccess = \"admin\"\n"),
            Path::new("t.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("admin"), "{e}");
    }

    #[test]
    fn defaults_apply() {
        let c = parse(
            "[[nodes]]\nname = \"a\"\nrpc = \"http://127.0.0.1:1\"\nrole = \"rpc\"\n",
            Path::new("f.toml"),
        )
        .unwrap();
        assert_eq!(c.probe.interval, Duration::from_secs(1));
        assert_eq!(c.probe.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(c.server.listen, DEFAULT_LISTEN);
        assert_eq!(c.store.url, DEFAULT_STORE_URL);
        let pg = parse(
            "[[nodes]]\nname = \"a\"\nrpc = \"http://127.0.0.1:1\"\nrole = \"rpc\"\n[store]\nurl = \"postgres://neo@db:5432/neo_ir\"\n",
            Path::new("pg.toml"),
        )
        .expect("a PostgreSQL store URL is accepted");
        assert!(c.server.tokens.is_empty() && !c.server.protect_reads);
        assert_eq!(pg.store.url, "postgres://neo@db:5432/neo_ir");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err(
            "[[nodes]]\nname = \"a\"\nrpc = \"http://h:1\"\nrole = \"rpc\"\ncolour = \"red\"\n",
        );
        assert_eq!(e.line, Some(5), "{e}");
        assert_eq!(e.key.as_deref(), Some("colour"), "{e}");
        let shown = e.to_string();
        assert!(shown.starts_with("neo-ir.toml:5: key `colour`"), "{shown}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = err("[probe]\nmax_concurrency = \"many\"\n[[nodes]]\nname = \"a\"\nrpc = \"http://h:1\"\nrole = \"rpc\"\n");
        assert_eq!(e.line, Some(2), "{e}");
        assert_eq!(e.key.as_deref(), Some("max_concurrency"), "{e}");
    }

    #[test]
    fn bad_role_and_bad_duration_and_bad_url() {
        let e = err("[[nodes]]\nname = \"a\"\nrpc = \"http://h:1\"\nrole = \"miner\"\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(4), Some("role")), "{e}");

        let e = err(&GOOD.replace("\"500ms\"", "\"soon\""));
        assert_eq!(e.key.as_deref(), Some("probe.interval"), "{e}");
        assert_eq!(e.line, Some(16), "{e}");

        let e = err(&GOOD.replace("https://rpc.example:443/", "ftp://x"));
        assert_eq!(e.key.as_deref(), Some("nodes.rpc"), "{e}");
        assert_eq!(e.line, Some(9), "{e}");
    }

    #[test]
    fn duplicate_names_and_missing_nodes_are_errors() {
        let e = err(&GOOD.replace("\"rpc-1\"", "\"validator-1\""));
        assert_eq!(e.line, Some(8), "{e}");
        assert!(e.message.contains("duplicate"), "{e}");
        let e = err("[probe]\ninterval = \"1s\"\n");
        assert_eq!(e.key.as_deref(), Some("nodes"));
    }

    #[test]
    fn broken_toml_names_the_line() {
        let e = err("[[nodes]]\nname = \"a\nrpc = 1\n");
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn kpi_and_for_tables() {
        let c = parse(
            &format!(
                "{GOOD}\n[kpi]\nrpc_latency_warn = \"300ms\"\nmemory_crit = \"12GiB\"\ncpu_warn = 70\n\n[detect.for]\nperformance_degradation = \"10s\"\n"
            ),
            Path::new("neo-ir.toml"),
        )
        .unwrap();
        assert_eq!(c.detect.kpi.rpc_latency_warn_ms, 300);
        assert_eq!(c.detect.kpi.memory_crit_bytes, 12 << 30);
        assert_eq!(c.detect.kpi.cpu_warn_percent, 70);
        assert_eq!(
            c.detect.debounce.for_by_kind[&crate::incident::IncidentKind::PerformanceDegradation],
            Duration::from_secs(10)
        );
        let e = err(&format!("{GOOD}\n[detect.for]\nmeltdown = \"1s\"\n"));
        assert_eq!(e.key.as_deref(), Some("detect.for.meltdown"), "{e}");
        let e = err(&format!("{GOOD}\n[kpi]\ncpu_warn = 90\ncpu_crit = 85\n"));
        assert_eq!(e.key.as_deref(), Some("kpi.cpu_crit"), "{e}");
        let e = err(&GOOD.replace(
            "role = \"validator\"",
            "role = \"validator\"\nagent = \"http://h:9\"",
        ));
        assert_eq!(e.key.as_deref(), Some("nodes.agent"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8MiB").unwrap(), 8 << 20);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("2 KB").unwrap(), 2000);
        assert!(parse_size("8 parsecs").is_err());
    }

    #[test]
    fn remediation_policies_are_off_by_default_and_checked() {
        let node = "[[nodes]]\nname = \"a\"\nrpc = \"http://127.0.0.1:1\"\nrole = \"rpc\"\n";
        let c = parse(node, Path::new("neo-ir.toml")).unwrap();
        assert!(c.runbook.remediation.is_empty(), "off by default");
        let text = format!(
            "{node}\n[runbook]\nverify_within = \"45s\"\n\n[[remediation]]\nkind = \"node_down\"\nroles = [\"rpc\"]\nscript = \"quick_recovery\"\nmax_runs = 2\nwindow = \"30m\"\n"
        );
        let c = parse(&text, Path::new("neo-ir.toml")).unwrap();
        assert_eq!(c.runbook.verify_within, Duration::from_secs(45));
        let p = &c.runbook.remediation[0];
        assert_eq!(p.kind, crate::incident::IncidentKind::NodeDown);
        assert_eq!((p.max_runs, p.window), (2, Duration::from_secs(1800)));
        assert_eq!(p.roles, vec![Role::Rpc]);
        assert_eq!(p.delay, Duration::from_secs(30));
        let bad = text.replace("quick_recovery", "restore_backup");
        let e = parse(&bad, Path::new("neo-ir.toml")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("remediation[0].script"), "{e}");
        assert_eq!(e.line, Some(12), "{e}");
        let bad = text.replace("max_runs = 2", "max_runs = 0");
        let e = parse(&bad, Path::new("neo-ir.toml")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("remediation[0].max_runs"), "{e}");
    }

    #[test]
    fn escalation_schedules_and_response_settings() {
        let node = "[[nodes]]\nname = \"a\"\nrpc = \"http://127.0.0.1:1\"\nrole = \"rpc\"\n";
        let c = parse(node, Path::new("neo-ir.toml")).unwrap();
        assert_eq!(
            c.response,
            crate::oncall::ResponseConfig::default(),
            "the playbook by default"
        );
        assert_eq!(c.store.lease, DEFAULT_LEASE);
        let text = format!(
            r#"{node}
[store]
lease = "3s"

[response]
stability_window = "2m"
review_after = "3days"
update_every = {{ P1 = "10m", P3 = "off" }}

[[schedule]]
name = "primary"
rotation = "weekly"
start = "2026-11-02T09:00:00Z"
people = ["alice", "bob"]
overrides = [{{ who = "carol", from = "2026-11-20T00:00:00Z", until = "2026-11-21T00:00:00Z" }}]

[[escalation]]
name = "critical"
severities = ["P1", "P2"]
steps = [{{ after = "0m", notify = "primary" }}, {{ after = "10m", notify = "team lead" }}]
"#
        );
        let c = parse(&text, Path::new("neo-ir.toml")).unwrap();
        assert_eq!(c.store.lease, Duration::from_secs(3));
        let r = &c.response;
        assert_eq!(r.stability_window, Duration::from_secs(120));
        assert_eq!(r.review_after, Some(Duration::from_secs(3 * 86_400)));
        assert_eq!(r.update_every[0], Some(Duration::from_secs(600)));
        assert_eq!(r.update_every[2], None);
        assert_eq!(
            r.update_every[1],
            Some(Duration::from_secs(1800)),
            "default kept"
        );
        assert_eq!(
            r.escalation.len(),
            1,
            "configured policies replace the playbook's"
        );
        assert!(r.policy_for(crate::incident::Severity::P3).is_none());
        let at: jiff::Timestamp = "2026-11-20T10:00:00Z".parse().unwrap();
        assert_eq!(r.recipient("primary", at), "carol");

        let e = err(&text
            .replace("\"10m\", notify", "\"1m\", notify")
            .replace("\"0m\"", "\"5m\""));
        assert_eq!(
            e.key.as_deref(),
            Some("escalation[0].steps[1].after"),
            "{e}"
        );
        assert!(e.line.is_some());
        let e = err(&text.replace("[\"P1\", \"P2\"]", "[\"P1\", \"P9\"]"));
        assert_eq!(e.key.as_deref(), Some("escalation[0].severities"), "{e}");
        let e = err(&text.replace("\"weekly\"", "\"fortnightly\""));
        assert_eq!(e.key.as_deref(), Some("schedule[0].rotation"), "{e}");
        assert!(e.to_string().contains("neo-ir.toml"), "{e}");
        let e = err(&text.replace("P3 = \"off\"", "P3 = \"never\""));
        assert_eq!(e.key.as_deref(), Some("response.update_every.P3"), "{e}");
        let twice = format!("{text}\n[[escalation]]\nname = \"again\"\nseverities = [\"P2\"]\nsteps = [{{ after = \"0m\", notify = \"x\" }}]\n");
        let e = err(&twice);
        assert!(e.message.contains("P2 is already escalated"), "{e}");
    }

    #[test]
    fn notify_channels_and_routes() {
        let node = "[[nodes]]\nname = \"a\"\nrpc = \"http://127.0.0.1:1\"\nrole = \"rpc\"\n";
        let text = format!(
            r#"{node}
[notify]
public_url = "https://status.example.org/"
give_up_after = "5m"

[[notify.channels]]
name = "pd"
type = "pagerduty"
secret_env = "PD_KEY"

[[notify.channels]]
name = "slack"
type = "slack"
secret_file = "/etc/neo-ir/slack-url"
per_minute = 10

[[notify.channels]]
name = "mail"
type = "email"
smtp_host = "smtp.example.org"
tls = "tls"
from = "neo-ir@example.org"
to = ["oncall@example.org"]

[[notify.routes]]
severities = ["P1"]
channels = ["pd", "slack"]
fallback = ["mail"]

[[notify.routes]]
channels = ["slack"]
"#
        );
        let c = parse(&text, Path::new("neo-ir.toml")).unwrap();
        let n = &c.notify;
        assert_eq!(n.public_url.as_deref(), Some("https://status.example.org"));
        assert_eq!(n.give_up_after, Duration::from_secs(300));
        assert_eq!(n.channels.len(), 3);
        assert_eq!(
            n.channel("mail").unwrap().email.as_ref().unwrap().smtp_port,
            465
        );
        assert_eq!(n.channel("slack").unwrap().per_minute, 10);
        assert_eq!(n.routes[0].fallback, ["mail"]);

        let e = err(&text.replace(
            "channels = [\"pd\", \"slack\"]",
            "channels = [\"pd\", \"sms\"]",
        ));
        assert_eq!(e.key.as_deref(), Some("notify.routes[0].channels"), "{e}");
        assert!(e.message.contains("\"sms\""), "{e}");
        let e = err(&text.replace("type = \"slack\"", "type = \"fax\""));
        assert_eq!(e.key.as_deref(), Some("notify.channels[1].type"), "{e}");
        let e = err(&text.replace("secret_env = \"PD_KEY\"\n", ""));
        assert!(e.message.contains("routing key"), "{e}");
        let e = err(&text.replace("to = [\"oncall@example.org\"]\n", ""));
        assert!(e.message.contains("`to`"), "{e}");
        let cut = text.find("[[notify.routes]]").unwrap();
        let e = err(&text[..cut]);
        assert!(e.message.contains("no [[notify.routes]]"), "{e}");

        // drills = true|false, default false
        assert!(n.channels.iter().all(|c| !c.drills));
        let marked = text.replace("per_minute = 10\n", "per_minute = 10\ndrills = true\n");
        let c = parse(&marked, Path::new("neo-ir.toml")).unwrap();
        assert!(c.notify.channel("slack").unwrap().drills);
        assert!(!c.notify.channel("pd").unwrap().drills);
        let e = err(&text.replace("per_minute = 10\n", "per_minute = 10\ndrills = \"yes\"\n"));
        assert_eq!(e.file, Path::new("neo-ir.toml"));
        assert!(e.line.is_some(), "{e}");
        assert!(
            e.key.as_deref().is_some_and(|k| k.contains("drills")),
            "{e}"
        );
        // a config of drill channels only needs no route: drills reach them without one
        let drills_only = format!(
            "{node}\n[[notify.channels]]\nname = \"drill-room\"\ntype = \"webhook\"\n\
             url = \"http://127.0.0.1:9/hook\"\ndrills = true\n"
        );
        let c = parse(&drills_only, Path::new("neo-ir.toml")).unwrap();
        assert!(c.notify.routes.is_empty() && c.notify.channels[0].drills);
        let e = err(&drills_only.replace("drills = true", "drills = false"));
        assert!(e.message.contains("no [[notify.routes]]"), "{e}");
    }

    #[test]
    fn drills_section_names_what_it_uses() {
        let base = r#"
[[nodes]]
name = "rpc-1"
rpc = "http://127.0.0.1:1"
role = "rpc"

[[nodes]]
name = "test-1"
rpc = "http://127.0.0.1:2"
role = "rpc"
agent = "http://127.0.0.1:3"
agent_token_env = "T"

[[schedule]]
name = "primary"
rotation = "weekly"
start = "2026-01-05T09:00:00Z"
people = ["alice", "bob"]

[[notify.channels]]
name = "drill-room"
type = "webhook"
url = "http://127.0.0.1:9/hook"
drills = true

[[notify.channels]]
name = "ops"
type = "webhook"
url = "http://127.0.0.1:9/ops"

[[notify.routes]]
channels = ["ops"]
"#;
        let c = parse(base, Path::new("neo-ir.toml")).unwrap();
        assert_eq!(c.drills, None, "no [drills]: no schedule, no reminders");
        let full = format!(
            "{base}\n[drills]\nday = 3\nat = \"09:30\"\ncommanders = \"primary\"\n\
             participants = [\"carol\"]\nscenarios = [\"node-crash\", \"split-brain\"]\n\
             remind_before = \"2d\"\nchannels = [\"ops\"]\ntest_node = \"test-1\"\n"
        );
        let d = parse(&full, Path::new("neo-ir.toml"))
            .unwrap()
            .drills
            .unwrap();
        assert_eq!(d.day, 3);
        assert_eq!(d.at, jiff::civil::Time::constant(9, 30, 0, 0));
        assert_eq!(d.commanders.as_deref(), Some("primary"));
        assert_eq!(d.participants, ["carol"]);
        assert_eq!(d.scenarios, ["node-crash", "split-brain"]);
        assert_eq!(d.remind_before, Duration::from_secs(2 * 86_400));
        assert_eq!(d.channels, ["ops"]);
        assert_eq!(d.test_node.as_deref(), Some("test-1"));
        // defaults: the 15th at 14:00 UTC, every built-in scenario, 3 days ahead, the
        // channels marked for drills
        let d = parse(&format!("{base}\n[drills]\n"), Path::new("neo-ir.toml"))
            .unwrap()
            .drills
            .unwrap();
        assert_eq!(
            d,
            crate::drill::schedule::DrillSettings {
                channels: vec!["drill-room".into()],
                ..Default::default()
            }
        );
        assert_eq!(d.scenarios.len(), crate::drill::builtin().len());
        for (bad, key, says) in [
            ("day = 31", "drills.day", "1 to 28"),
            ("at = \"2pm\"", "drills.at", "14:00"),
            ("commanders = \"nobody\"", "drills.commanders", "primary"),
            (
                "scenarios = [\"meltdown\"]",
                "drills.scenarios",
                "node-crash",
            ),
            ("scenarios = []", "drills.scenarios", "at least one"),
            (
                "remind_before = \"soon\"",
                "drills.remind_before",
                "duration",
            ),
            ("channels = [\"pager\"]", "drills.channels", "pager"),
            ("test_node = \"rpc-1\"", "drills.test_node", "agent"),
            ("test_node = \"rpc-7\"", "drills.test_node", "rpc-7"),
            ("participants = [\"\"]", "drills.participants", "name"),
        ] {
            let text = format!("{base}\n[drills]\n{bad}\n");
            let e = err(&text);
            assert_eq!(e.key.as_deref(), Some(key), "{bad}: {e}");
            assert!(e.message.contains(says), "{bad}: {e}");
            let line = text.lines().position(|l| l == bad).unwrap() + 1;
            assert_eq!(e.line, Some(line), "{bad}: {e}");
        }
        let e = err(&format!("{base}\n[drills]\nweekday = 2\n"));
        assert!(e.message.contains("weekday"), "{e}");
        assert!(e.line.is_some(), "{e}");
    }
}
