//! `deploy_node_fleet --count N`: the files for N more RPC nodes behind a load balancer.
//!
//! neo-ir renders, it does not deploy: [`render_fleet`] makes, for each node
//! `<prefix>-<i>`, its configuration in the implementation's own format, a systemd unit
//! `systemd/<prefix>-<i>.service`, then one nginx config `nginx/neo_rpc.conf` with an
//! `upstream neo_rpc` listing every RPC port, and a `README.txt`. [`write_fleet`] writes them
//! under a directory (never over existing files unless told to). Copying them into place,
//! `systemctl enable --now` and reloading nginx are the operator's step; [`apply_commands`]
//! spells them out as a suggestion and [`plan`] says so in every dry run.
//!
//! Formats, as found in the implementations' own samples:
//! - neo-cli (C#): `config.json` with `ApplicationConfiguration` (Storage, P2P) and
//!   `ProtocolConfiguration`, started as `neo-cli --config FILE --background`; RPC is the
//!   RpcServer plugin's `Plugins/RpcServer/RpcServer.json`. Plugins load from the
//!   executable's directory, so each node runs its own copy of the release.
//! - neo-go: `protocol.<mainnet|testnet|privnet>.yml` in the node's directory, started as
//!   `neo-go node --config-path DIR [--mainnet|--testnet]`; `P2P.Addresses`, `RPC.Addresses`,
//!   `DBConfiguration.LevelDBOptions.DataDirectoryPath`.
//! - neo-rs: a TOML file (`[network] network_type/network_magic`, `[storage] data_dir`,
//!   `[p2p] port/seed_nodes`, `[rpc] enabled/port/bind_address`), started as
//!   `neo-node --config FILE`. Its protocol is a built-in MainNet/TestNet preset, so neo-rs is
//!   rendered for those two networks only.
//!
//! The chain-defining values (committee, validator count, hardfork heights, limits) are not
//! built in: they change between releases, and a node with one hardfork height wrong leaves
//! the chain there. [`Protocol::from_getversion`] takes them from a live node of the network
//! (`getversion`), which reports what that node runs with. Two values it reports are the
//! current policy after HF_Echidna, not the configured ones: the block time and the traceable
//! blocks; for MainNet and TestNet the configured ones are known (15000 ms, 2102400 blocks),
//! for another network that activated Echidna they must be given ([`GenesisTiming`]).
//!
//! Every value that reaches a file is validated first: names `[a-z0-9-]`, absolute paths of
//! plain components, ports in range without overlaps, seeds `host:port`, committee keys 33
//! bytes of hex. Templates live in `templates/fleet/` (MiniJinja, strict undefined, no
//! escaping: the values are already restricted to characters that need none); the rendered
//! JSON and the file set are checked again before they are returned.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Component, Path};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use neo_ir_core::runbook::{Plan, Step};
use neo_ir_probe::{NodeTarget, Prober};
use serde::Serialize;
use serde_json::{json, Value};
use thiserror::Error;

/// Network magic of Neo N3 MainNet.
pub const MAINNET_MAGIC: u32 = 860_833_102;
/// Network magic of Neo N3 TestNet (T5).
pub const TESTNET_MAGIC: u32 = 894_710_606;
/// `MillisecondsPerBlock` and `MaxTraceableBlocks` in the configuration files of MainNet and
/// TestNet (neo-node `config.mainnet.json` / `config.testnet.json`); after HF_Echidna the
/// live values are policy, these stay the configured ones.
pub const N3_PUBLIC_TIMING: GenesisTiming = GenesisTiming {
    ms_per_block: 15_000,
    max_traceable_blocks: 2_102_400,
};
/// Most nodes one render makes.
pub const MAX_COUNT: u32 = 64;

/// The upstream name in the nginx config.
pub const UPSTREAM: &str = "neo_rpc";

const TEMPLATES: &[(&str, &str)] = &[
    (
        "neo-cli.config.json",
        include_str!("../templates/fleet/neo-cli.config.json"),
    ),
    (
        "neo-cli.rpcserver.json",
        include_str!("../templates/fleet/neo-cli.rpcserver.json"),
    ),
    ("neo-go.yml", include_str!("../templates/fleet/neo-go.yml")),
    (
        "neo-rs.toml",
        include_str!("../templates/fleet/neo-rs.toml"),
    ),
    (
        "node.service",
        include_str!("../templates/fleet/node.service"),
    ),
    ("nginx.conf", include_str!("../templates/fleet/nginx.conf")),
    ("README.txt", include_str!("../templates/fleet/README.txt")),
];

#[derive(Debug, Error)]
pub enum FleetError {
    /// A value of the spec or the protocol that cannot go into a file.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A combination neo-ir does not render; the message says what is supported.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// `getversion` could not be read into a protocol.
    #[error("protocol from getversion: {0}")]
    Protocol(String),
    #[error("files already exist (pass overwrite to replace them): {}", .0.join(", "))]
    Exists(Vec<String>),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// A template failed or made an invalid file: a bug in neo-ir, not in the input.
    #[error("rendering {template}: {reason}")]
    Render { template: String, reason: String },
}

fn invalid(field: &str, reason: impl Into<String>) -> FleetError {
    FleetError::Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// Which node software the fleet runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Implementation {
    #[serde(rename = "neo-cli")]
    NeoCli,
    #[serde(rename = "neo-go")]
    NeoGo,
    #[serde(rename = "neo-rs")]
    NeoRs,
}

impl Implementation {
    pub fn as_str(self) -> &'static str {
        match self {
            Implementation::NeoCli => "neo-cli",
            Implementation::NeoGo => "neo-go",
            Implementation::NeoRs => "neo-rs",
        }
    }

    pub fn parse(s: &str) -> Result<Implementation, FleetError> {
        match s {
            "neo-cli" => Ok(Implementation::NeoCli),
            "neo-go" => Ok(Implementation::NeoGo),
            "neo-rs" => Ok(Implementation::NeoRs),
            other => Err(invalid(
                "implementation",
                format!(
                    "{:?}: supported are neo-cli, neo-go and neo-rs",
                    other.chars().take(40).collect::<String>()
                ),
            )),
        }
    }

    /// Where the binary usually is (the spec's default).
    pub fn default_binary(self) -> &'static str {
        match self {
            Implementation::NeoCli => "/opt/neo-cli/neo-cli",
            Implementation::NeoGo => "/usr/local/bin/neo-go",
            Implementation::NeoRs => "/usr/local/bin/neo-node",
        }
    }
}

/// Which network the nodes join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Network {
    Mainnet,
    Testnet,
    /// A private network, by its magic.
    Custom(u32),
}

impl Network {
    pub fn magic(self) -> u32 {
        match self {
            Network::Mainnet => MAINNET_MAGIC,
            Network::Testnet => TESTNET_MAGIC,
            Network::Custom(m) => m,
        }
    }

    /// `mainnet`, `testnet`, or a magic number (decimal or `0x` hex).
    pub fn parse(s: &str) -> Result<Network, FleetError> {
        let magic = match s {
            "mainnet" => return Ok(Network::Mainnet),
            "testnet" => return Ok(Network::Testnet),
            hex if hex.starts_with("0x") => u32::from_str_radix(&hex[2..], 16).ok(),
            dec => dec.parse::<u32>().ok(),
        };
        match magic {
            Some(MAINNET_MAGIC) => Ok(Network::Mainnet),
            Some(TESTNET_MAGIC) => Ok(Network::Testnet),
            Some(m) => Ok(Network::Custom(m)),
            None => Err(invalid(
                "network",
                "expected mainnet, testnet or a network magic number",
            )),
        }
    }
}

/// The configured block time and traceable blocks of a network (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GenesisTiming {
    pub ms_per_block: u64,
    pub max_traceable_blocks: u32,
}

/// A hardfork and the height it activates at. The name is without the `HF_` prefix
/// (`Aspidochelone`), as `getversion` and neo-go write it; neo-cli's file adds the prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hardfork {
    pub name: String,
    pub height: u32,
}

/// The `ProtocolConfiguration` the new nodes must share with the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Protocol {
    pub network: u32,
    pub address_version: u8,
    pub ms_per_block: u64,
    pub max_traceable_blocks: u32,
    pub max_transactions_per_block: u32,
    pub memory_pool_max_transactions: u32,
    /// In datoshi (1 GAS = 10^8).
    pub initial_gas_distribution: u64,
    pub validators_count: u32,
    /// Compressed public keys, hex.
    pub standby_committee: Vec<String>,
    pub hardforks: Vec<Hardfork>,
    /// The network's seed list (used when the spec gives none).
    pub seed_list: Vec<String>,
    /// Where these values came from, for the README.
    pub source: String,
}

impl Protocol {
    /// From a `getversion` result. `timing` gives the configured block time and traceable
    /// blocks; without it they are the known MainNet/TestNet values, or the reported ones
    /// when the network has not activated HF_Echidna (before it they are the configured
    /// values), else an error saying to give them.
    pub fn from_getversion(
        v: &Value,
        timing: Option<GenesisTiming>,
        source: &str,
    ) -> Result<Protocol, FleetError> {
        let err = |m: String| FleetError::Protocol(m);
        let p = v
            .get("protocol")
            .and_then(Value::as_object)
            .ok_or_else(|| err("no `protocol` object (a node before Neo N3 3.x?)".into()))?;
        let num = |key: &str| -> Result<u64, FleetError> {
            p.get(key)
                .and_then(Value::as_u64)
                .ok_or_else(|| err(format!("`protocol.{key}` is missing or not a number")))
        };
        let num32 = |key: &str| -> Result<u32, FleetError> {
            u32::try_from(num(key)?).map_err(|_| err(format!("`protocol.{key}` is too large")))
        };
        let strings = |key: &str| -> Result<Vec<String>, FleetError> {
            p.get(key)
                .and_then(Value::as_array)
                .ok_or_else(|| err(format!("`protocol.{key}` is missing or not a list")))?
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| err(format!("`protocol.{key}` holds a non-string")))
                })
                .collect()
        };
        let network = num32("network")?;
        let hardforks = match p.get("hardforks") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|h| {
                    let name = h.get("name").and_then(Value::as_str);
                    let height = h
                        .get("blockheight")
                        .and_then(Value::as_u64)
                        .and_then(|n| u32::try_from(n).ok());
                    match (name, height) {
                        (Some(name), Some(height)) => Ok(Hardfork {
                            name: name.strip_prefix("HF_").unwrap_or(name).to_string(),
                            height,
                        }),
                        _ => Err(err(
                            "a `protocol.hardforks` entry lacks name or blockheight".into(),
                        )),
                    }
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(err("`protocol.hardforks` is not a list".into())),
        };
        let timing = match timing {
            Some(t) => t,
            None if network == MAINNET_MAGIC || network == TESTNET_MAGIC => N3_PUBLIC_TIMING,
            None if !hardforks.iter().any(|h| h.name == "Echidna") => GenesisTiming {
                ms_per_block: num("msperblock")?,
                max_traceable_blocks: num32("maxtraceableblocks")?,
            },
            None => {
                return Err(err(format!(
                    "network {network} activated HF_Echidna, after which getversion reports the \
                     current policy block time and traceable blocks, not the configured ones: \
                     give the configured MillisecondsPerBlock and MaxTraceableBlocks"
                )))
            }
        };
        let address_version = u8::try_from(num("addressversion")?)
            .map_err(|_| err("`protocol.addressversion` is not a byte".into()))?;
        let protocol = Protocol {
            network,
            address_version,
            ms_per_block: timing.ms_per_block,
            max_traceable_blocks: timing.max_traceable_blocks,
            max_transactions_per_block: num32("maxtransactionsperblock")?,
            memory_pool_max_transactions: num32("memorypoolmaxtransactions")?,
            initial_gas_distribution: num("initialgasdistribution")?,
            validators_count: num32("validatorscount")?,
            standby_committee: strings("standbycommittee")?,
            hardforks,
            seed_list: match p.get("seedlist") {
                None | Some(Value::Null) => Vec::new(),
                Some(_) => strings("seedlist")?,
            },
            source: source.to_string(),
        };
        protocol.validate()?;
        Ok(protocol)
    }

    /// Check every value that goes into a file.
    pub fn validate(&self) -> Result<(), FleetError> {
        if self.validators_count == 0 || self.validators_count > 1024 {
            return Err(invalid(
                "protocol.validators_count",
                format!("{} is not in 1..=1024", self.validators_count),
            ));
        }
        if (self.standby_committee.len() as u64) < u64::from(self.validators_count) {
            return Err(invalid(
                "protocol.standby_committee",
                format!(
                    "{} keys for {} validators",
                    self.standby_committee.len(),
                    self.validators_count
                ),
            ));
        }
        for k in &self.standby_committee {
            let ok = k.len() == 66
                && (k.starts_with("02") || k.starts_with("03"))
                && k.bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err(invalid(
                    "protocol.standby_committee",
                    format!("{} is not a compressed public key in hex", clip(k)),
                ));
            }
        }
        for h in &self.hardforks {
            let ok = (1..=32).contains(&h.name.len())
                && h.name.starts_with(|c: char| c.is_ascii_uppercase())
                && h.name.bytes().all(|b| b.is_ascii_alphanumeric());
            if !ok {
                return Err(invalid(
                    "protocol.hardforks",
                    format!("{} is not a hardfork name", clip(&h.name)),
                ));
            }
        }
        if self.ms_per_block == 0 || self.max_traceable_blocks == 0 {
            return Err(invalid(
                "protocol",
                "block time and traceable blocks must be above 0",
            ));
        }
        for s in &self.seed_list {
            parse_seed(s).map_err(|r| invalid("protocol.seed_list", r))?;
        }
        Ok(())
    }

    /// `InitialGASSupply` as neo-go writes it: GAS, not datoshi (`52000000`).
    fn initial_gas_supply(&self) -> String {
        let (whole, frac) = (
            self.initial_gas_distribution / 100_000_000,
            self.initial_gas_distribution % 100_000_000,
        );
        if frac == 0 {
            whole.to_string()
        } else {
            let f = format!("{frac:08}");
            format!("{whole}.{}", f.trim_end_matches('0'))
        }
    }
}

/// `getversion` from `target`, as a [`Protocol`].
pub async fn fetch_protocol(
    prober: &Prober,
    target: &NodeTarget,
    timing: Option<GenesisTiming>,
) -> Result<Protocol, FleetError> {
    let v = prober
        .call(target, "getversion", json!([]))
        .await
        .map_err(|e| FleetError::Protocol(format!("{}: {e}", target.name)))?;
    Protocol::from_getversion(&v, timing, &format!("getversion of {}", target.name))
}

/// What to render.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetSpec {
    /// How many nodes (1..=64).
    pub count: u32,
    /// Nodes are `<prefix>-1` .. `<prefix>-<count>`.
    pub name_prefix: String,
    pub network: Network,
    pub implementation: Implementation,
    /// Node i's RPC port is `first_rpc_port + i - 1` (on 127.0.0.1), its P2P port
    /// `first_p2p_port + i - 1`.
    pub first_rpc_port: u16,
    pub first_p2p_port: u16,
    /// The port nginx listens on for clients.
    pub lb_port: u16,
    /// Node i lives in `<data_root>/<prefix>-<i>` (its chain in `chain/` below it).
    pub data_root: String,
    /// `host:port`; empty: the network's own seed list from the protocol.
    pub seed_list: Vec<String>,
    /// The node executable. neo-cli: the one in the release directory that each node copies.
    pub binary: String,
    /// The system user the units run as.
    pub user: String,
    pub memory_max_mib: u32,
    pub limit_nofile: u32,
    pub protocol: Protocol,
}

impl FleetSpec {
    /// A spec with the defaults: prefix `neo-rpc`, RPC ports from 10400, P2P ports from
    /// 10500, nginx on 10332, `/var/lib/neo-ir-fleet`, the implementation's usual binary,
    /// user `neo`, 8 GiB memory limit, 65536 open files; the network is the protocol's.
    pub fn new(count: u32, implementation: Implementation, protocol: Protocol) -> FleetSpec {
        FleetSpec {
            count,
            name_prefix: "neo-rpc".to_string(),
            network: match protocol.network {
                MAINNET_MAGIC => Network::Mainnet,
                TESTNET_MAGIC => Network::Testnet,
                m => Network::Custom(m),
            },
            implementation,
            first_rpc_port: 10400,
            first_p2p_port: 10500,
            lb_port: 10332,
            data_root: "/var/lib/neo-ir-fleet".to_string(),
            seed_list: Vec::new(),
            binary: implementation.default_binary().to_string(),
            user: "neo".to_string(),
            memory_max_mib: 8192,
            limit_nofile: 65536,
            protocol,
        }
    }

    /// The node names, in order.
    pub fn node_names(&self) -> Vec<String> {
        (1..=self.count)
            .map(|i| format!("{}-{i}", self.name_prefix))
            .collect()
    }

    /// Check every value; the seed list to use on success.
    pub fn validate(&self) -> Result<Vec<String>, FleetError> {
        if self.count == 0 || self.count > MAX_COUNT {
            return Err(invalid(
                "count",
                format!("{} is not in 1..={MAX_COUNT}", self.count),
            ));
        }
        let p = &self.name_prefix;
        let ok = (1..=40).contains(&p.len())
            && p.starts_with(|c: char| c.is_ascii_lowercase())
            && !p.ends_with('-')
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(invalid(
                "name_prefix",
                format!(
                    "{} must be 1 to 40 of a-z, 0-9 and '-', start with a letter and not end \
                     with '-'",
                    clip(p)
                ),
            ));
        }
        check_path("data_root", &self.data_root)?;
        check_path("binary", &self.binary)?;
        let u = &self.user;
        let ok = (1..=32).contains(&u.len())
            && u.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && u.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok || u == "root" {
            return Err(invalid(
                "user",
                format!(
                    "{} must be a system user name (a-z, 0-9, '_', '-'), not root",
                    clip(u)
                ),
            ));
        }
        if !(256..=1_048_576).contains(&self.memory_max_mib) {
            return Err(invalid("memory_max_mib", "not in 256..=1048576"));
        }
        if !(1024..=1_048_576).contains(&self.limit_nofile) {
            return Err(invalid("limit_nofile", "not in 1024..=1048576"));
        }
        // ports: each range inside 1024..=65535, no overlap between them or with nginx
        let range = |field: &str, first: u16| -> Result<(u32, u32), FleetError> {
            let last = u32::from(first) + self.count - 1;
            if first < 1024 || last > 65535 {
                return Err(invalid(
                    field,
                    format!(
                        "ports {first}..={last} are not all within 1024..=65535 (the nodes do \
                         not run as root)"
                    ),
                ));
            }
            Ok((u32::from(first), last))
        };
        let rpc = range("first_rpc_port", self.first_rpc_port)?;
        let p2p = range("first_p2p_port", self.first_p2p_port)?;
        if rpc.0 <= p2p.1 && p2p.0 <= rpc.1 {
            return Err(invalid(
                "first_p2p_port",
                format!(
                    "P2P ports {}..={} overlap RPC ports {}..={}",
                    p2p.0, p2p.1, rpc.0, rpc.1
                ),
            ));
        }
        let lb = u32::from(self.lb_port);
        if lb == 0 || (rpc.0..=rpc.1).contains(&lb) || (p2p.0..=p2p.1).contains(&lb) {
            return Err(invalid(
                "lb_port",
                format!("{lb} is 0 or one of the nodes' ports"),
            ));
        }
        // network, implementation and protocol agree
        self.protocol.validate()?;
        if self.protocol.network != self.network.magic() {
            return Err(invalid(
                "network",
                format!(
                    "the spec says network {} but the protocol (from {}) is network {}",
                    self.network.magic(),
                    self.protocol.source,
                    self.protocol.network
                ),
            ));
        }
        if self.implementation == Implementation::NeoRs
            && matches!(self.network, Network::Custom(_))
        {
            return Err(FleetError::Unsupported(format!(
                "neo-rs takes its protocol from a built-in MainNet or TestNet preset; neo-ir \
                 renders neo-rs for those two only. For network {} render neo-cli or neo-go",
                self.network.magic()
            )));
        }
        let seeds = if self.seed_list.is_empty() {
            self.protocol.seed_list.clone()
        } else {
            self.seed_list.clone()
        };
        if seeds.is_empty() {
            return Err(invalid(
                "seed_list",
                "empty, and the network's getversion lists no seeds",
            ));
        }
        seeds
            .iter()
            .map(|s| parse_seed(s).map_err(|r| invalid("seed_list", r)))
            .collect()
    }
}

/// A `host:port` seed in canonical form: a host name, an IPv4 address, or `[IPv6]`; port
/// 1..=65535.
pub fn parse_seed(s: &str) -> Result<String, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{} is not host:port", clip(s)))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{} has no port in 1..=65535", clip(s)))?;
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let ip: Ipv6Addr = v6
            .parse()
            .map_err(|_| format!("{} is not an IPv6 address", clip(s)))?;
        return Ok(format!("[{ip}]:{port}"));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match ip {
            IpAddr::V4(ip) => Ok(format!("{ip}:{port}")),
            IpAddr::V6(_) => Err(format!("{}: write an IPv6 seed as [address]:port", clip(s))),
        };
    }
    let ok = (1..=253).contains(&host.len())
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        return Err(format!("{} is not a host name or address", clip(s)));
    }
    Ok(format!("{}:{port}", host.to_ascii_lowercase()))
}

/// An absolute path of plain components (`[A-Za-z0-9._-]`, no `.`/`..`), so it is safe in a
/// unit's `ExecStart`, a config string and a suggested command without quoting.
fn check_path(field: &str, p: &str) -> Result<(), FleetError> {
    let reason = if !p.starts_with('/') || p.len() < 2 || p.len() > 200 {
        Some("must be an absolute path of at most 200 characters")
    } else if p.ends_with('/') || p.contains("//") {
        Some("must not end with '/' or hold '//'")
    } else if p[1..].split('/').any(|c| {
        c == "."
            || c == ".."
            || !c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    }) {
        Some("components may hold only A-Z, a-z, 0-9, '.', '_' and '-', and not be . or ..")
    } else {
        None
    };
    match reason {
        Some(r) => Err(invalid(field, format!("{}: {r}", clip(p)))),
        None => Ok(()),
    }
}

/// One file to write: its path relative to the output directory, `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedFile {
    pub path: String,
    pub contents: String,
}

#[derive(Serialize)]
struct NodeCtx {
    name: String,
    index: u32,
    rpc_port: u32,
    p2p_port: u32,
    dir: String,
    data_dir: String,
    exec_start: String,
}

fn nodes(spec: &FleetSpec) -> Vec<NodeCtx> {
    spec.node_names()
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let i = i as u32;
            let dir = format!("{}/{name}", spec.data_root);
            let exec_start = match spec.implementation {
                Implementation::NeoCli => format!(
                    "{dir}/{} --config {dir}/config.json --background",
                    executable_name(&spec.binary)
                ),
                Implementation::NeoGo => {
                    let mode = match spec.network {
                        Network::Mainnet => " --mainnet",
                        Network::Testnet => " --testnet",
                        Network::Custom(_) => "",
                    };
                    format!("{} node --config-path {dir}{mode}", spec.binary)
                }
                Implementation::NeoRs => {
                    format!("{} --config {dir}/neo-node.toml", spec.binary)
                }
            };
            NodeCtx {
                index: i + 1,
                rpc_port: u32::from(spec.first_rpc_port) + i,
                p2p_port: u32::from(spec.first_p2p_port) + i,
                data_dir: format!("{dir}/chain"),
                dir,
                exec_start,
                name,
            }
        })
        .collect()
}

fn executable_name(binary: &str) -> &str {
    binary.rsplit('/').next().unwrap_or(binary)
}

fn release_dir(binary: &str) -> &str {
    match binary.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((dir, _)) => dir,
    }
}

/// The node's own files, relative to its directory.
fn node_files(spec: &FleetSpec) -> Vec<(&'static str, &'static str)> {
    match spec.implementation {
        Implementation::NeoCli => vec![
            ("config.json", "neo-cli.config.json"),
            ("Plugins/RpcServer/RpcServer.json", "neo-cli.rpcserver.json"),
        ],
        Implementation::NeoGo => vec![(
            match spec.network {
                Network::Mainnet => "protocol.mainnet.yml",
                Network::Testnet => "protocol.testnet.yml",
                Network::Custom(_) => "protocol.privnet.yml",
            },
            "neo-go.yml",
        )],
        Implementation::NeoRs => vec![("neo-node.toml", "neo-rs.toml")],
    }
}

/// The commands that apply a rendered fleet, run from the directory it was written to. A
/// suggestion shown to people; neo-ir never runs them.
pub fn apply_commands(spec: &FleetSpec) -> Vec<String> {
    let names = spec.node_names();
    let u = &spec.user;
    let mut c = vec![format!(
        "id -u {u} >/dev/null 2>&1 || sudo useradd --system --no-create-home --shell /usr/sbin/nologin {u}"
    )];
    for n in &names {
        let dir = format!("{}/{n}", spec.data_root);
        c.push(format!("sudo install -d -o {u} -g {u} {dir}"));
        if spec.implementation == Implementation::NeoCli {
            c.push(format!("sudo cp -a {}/. {dir}/", release_dir(&spec.binary)));
        }
        c.push(format!("sudo cp -r {n}/. {dir}/"));
        c.push(format!("sudo chown -R {u}:{u} {dir}"));
        c.push(format!(
            "sudo cp systemd/{n}.service /etc/systemd/system/{n}.service"
        ));
    }
    c.push("sudo systemctl daemon-reload".to_string());
    c.push(format!(
        "sudo systemctl enable --now {}",
        names
            .iter()
            .map(|n| format!("{n}.service"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    c.push(format!(
        "sudo cp nginx/{UPSTREAM}.conf /etc/nginx/conf.d/{UPSTREAM}.conf"
    ));
    c.push("sudo nginx -t".to_string());
    c.push("sudo systemctl reload nginx".to_string());
    c
}

fn environment() -> Result<Environment<'static>, FleetError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .map_err(|e| FleetError::Render {
                template: name.to_string(),
                reason: e.to_string(),
            })?;
    }
    Ok(env)
}

fn render(
    env: &Environment<'_>,
    template: &str,
    ctx: &minijinja::Value,
) -> Result<String, FleetError> {
    env.get_template(template)
        .and_then(|t| t.render(ctx))
        .map_err(|e| FleetError::Render {
            template: template.to_string(),
            reason: e.to_string(),
        })
}

/// Render the fleet: every node's config files and unit, the nginx config, the README.
pub fn render_fleet(spec: &FleetSpec) -> Result<Vec<RenderedFile>, FleetError> {
    let seeds = spec.validate()?;
    let env = environment()?;
    let nodes = nodes(spec);
    let network_type = match spec.network {
        Network::Mainnet => "MainNet",
        Network::Testnet => "TestNet",
        Network::Custom(_) => "",
    };
    let base = json!({
        "protocol": spec.protocol,
        "seeds": seeds,
        "implementation": spec.implementation.as_str(),
        "network_type": network_type,
        "initial_gas_supply": spec.protocol.initial_gas_supply(),
        "hardfork_list": spec
            .protocol
            .hardforks
            .iter()
            .map(|h| format!("{} at {}", h.name, h.height))
            .collect::<Vec<_>>()
            .join(", "),
        "user": spec.user,
        "count": spec.count,
        "limit_nofile": spec.limit_nofile,
        "memory_max_mib": spec.memory_max_mib,
        "lb_port": spec.lb_port,
        "release_dir": release_dir(&spec.binary),
        "nodes": nodes,
    });
    let with = |extra: Value| -> minijinja::Value {
        let mut ctx = base.clone();
        if let (Some(c), Value::Object(e)) = (ctx.as_object_mut(), extra) {
            c.extend(e);
        }
        minijinja::Value::from_serialize(&ctx)
    };
    let mut files = Vec::new();
    for node in &nodes {
        let ctx = with(json!({ "node": node }));
        for (path, template) in node_files(spec) {
            let contents = render(&env, template, &ctx)?;
            if template.ends_with(".json") {
                serde_json::from_str::<Value>(&contents).map_err(|e| FleetError::Render {
                    template: template.to_string(),
                    reason: format!("not valid JSON: {e}"),
                })?;
            }
            files.push(RenderedFile {
                path: format!("{}/{path}", node.name),
                contents,
            });
        }
        files.push(RenderedFile {
            path: format!("systemd/{}.service", node.name),
            contents: render(&env, "node.service", &ctx)?,
        });
    }
    files.push(RenderedFile {
        path: format!("nginx/{UPSTREAM}.conf"),
        contents: render(&env, "nginx.conf", &with(json!({})))?,
    });
    let mut listed: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    listed.push("README.txt".to_string());
    let readme = render(
        &env,
        "README.txt",
        &with(json!({ "files": listed, "commands": apply_commands(spec) })),
    )?;
    files.push(RenderedFile {
        path: "README.txt".to_string(),
        contents: readme,
    });
    let mut seen = BTreeSet::new();
    for f in &files {
        check_relative(&f.path)?;
        if !seen.insert(f.path.as_str()) {
            return Err(FleetError::Render {
                template: "(file set)".to_string(),
                reason: format!("{} rendered twice", f.path),
            });
        }
    }
    Ok(files)
}

/// A relative path of plain components: it cannot leave the output directory.
fn check_relative(path: &str) -> Result<(), FleetError> {
    let p = Path::new(path);
    let plain = !path.is_empty()
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && path.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if plain {
        Ok(())
    } else {
        Err(invalid(
            "file path",
            format!("{} is not a plain relative path", clip(path)),
        ))
    }
}

/// Write `files` under `out_dir` (created if missing). Refuses, writing nothing, when any of
/// them exists and `overwrite` is false, when a path is not a plain relative path, or when a
/// directory on the way is a symbolic link (it could lead out of `out_dir`).
pub fn write_fleet(
    files: &[RenderedFile],
    out_dir: &Path,
    overwrite: bool,
) -> Result<(), FleetError> {
    let io_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| FleetError::Io { path, source }
    };
    let mut existing = Vec::new();
    for f in files {
        check_relative(&f.path)?;
        let target = out_dir.join(&f.path);
        // every directory between out_dir and the file must be a real directory
        let mut dir = out_dir.to_path_buf();
        let parts: Vec<&str> = f.path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            dir.push(part);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(invalid(
                        "output directory",
                        format!("{} is a symbolic link", dir.display()),
                    ))
                }
                Ok(m) if !m.is_dir() => {
                    return Err(invalid(
                        "output directory",
                        format!("{} exists and is not a directory", dir.display()),
                    ))
                }
                _ => {}
            }
        }
        match fs::symlink_metadata(&target) {
            Ok(m) if m.file_type().is_symlink() || m.is_dir() => {
                return Err(invalid(
                    "output directory",
                    format!("{} is a symbolic link or a directory", target.display()),
                ))
            }
            Ok(_) => existing.push(f.path.clone()),
            Err(_) => {}
        }
    }
    if !existing.is_empty() && !overwrite {
        return Err(FleetError::Exists(existing));
    }
    for f in files {
        let target = out_dir.join(&f.path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        // write beside it, then rename: a reader never sees half a file
        let tmp = target.with_file_name(format!(
            ".{}.tmp",
            target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        fs::write(&tmp, &f.contents).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &target).map_err(io_err(&target))?;
    }
    Ok(())
}

/// The dry-run view: one step writing the files (not destructive: it refuses to overwrite),
/// and notes saying that applying them is the operator's step, with the commands.
pub fn plan(spec: &FleetSpec, out_dir: &str) -> Plan {
    let mut detail = format!(
        "write {} {} RPC node configs, {} systemd units, nginx/{UPSTREAM}.conf and README.txt \
         under {out_dir} (existing files are not overwritten)",
        spec.count,
        spec.implementation.as_str(),
        spec.count
    );
    let _ = write!(
        detail,
        "; RPC ports {}..={}, P2P ports {}..={}, nginx on {}",
        spec.first_rpc_port,
        u32::from(spec.first_rpc_port) + spec.count.saturating_sub(1),
        spec.first_p2p_port,
        u32::from(spec.first_p2p_port) + spec.count.saturating_sub(1),
        spec.lb_port
    );
    let mut notes = vec![
        "neo-ir renders the files and changes nothing on any host. Applying them (copying the \
         configs and units, `systemctl enable --now`, reloading nginx) is your step; suggested \
         commands follow, to run from the output directory."
            .to_string(),
        format!(
            "The protocol values (committee, validators, hardfork heights) come from {}; \
             compare them with the config shipped with your {} release before starting.",
            spec.protocol.source,
            spec.implementation.as_str()
        ),
    ];
    notes.extend(
        apply_commands(spec)
            .into_iter()
            .map(|c| format!("suggested: {c}")),
    );
    Plan {
        steps: vec![Step::builtin(
            "render",
            "write_files",
            detail,
            std::time::Duration::from_secs(30),
            false,
        )],
        notes,
    }
}

fn clip(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(60)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    format!("{out:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_host_port() {
        assert_eq!(
            parse_seed("Seed1.Neo.org:10333").unwrap(),
            "seed1.neo.org:10333"
        );
        assert_eq!(parse_seed("10.0.0.1:20333").unwrap(), "10.0.0.1:20333");
        assert_eq!(
            parse_seed("[2001:db8::1]:20333").unwrap(),
            "[2001:db8::1]:20333"
        );
        for bad in [
            "seed1.neo.org",
            "seed1.neo.org:0",
            "seed1.neo.org:70000",
            "a b:1",
            "$(id):1",
            "-x.org:1",
            "2001:db8::1:20333",
            "[zz]:1",
            ":1",
        ] {
            assert!(parse_seed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_are_plain_and_absolute() {
        for good in ["/var/lib/neo", "/opt/neo-cli/neo-cli", "/a/b_c/d.e"] {
            check_path("p", good).unwrap();
        }
        for bad in [
            "var/lib",
            "/",
            "/var/lib/",
            "/var//lib",
            "/var/../etc",
            "/var/./x",
            "/var/lib neo",
            "/var/$HOME",
            "/var/%i",
            "/var/a;b",
        ] {
            assert!(check_path("p", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gas_supply_in_gas() {
        let mut p = Protocol {
            network: 1,
            address_version: 53,
            ms_per_block: 1000,
            max_traceable_blocks: 1,
            max_transactions_per_block: 1,
            memory_pool_max_transactions: 1,
            initial_gas_distribution: 5_200_000_000_000_000,
            validators_count: 1,
            standby_committee: vec![],
            hardforks: vec![],
            seed_list: vec![],
            source: String::new(),
        };
        assert_eq!(p.initial_gas_supply(), "52000000");
        p.initial_gas_distribution = 150_000_000;
        assert_eq!(p.initial_gas_supply(), "1.5");
    }
}
