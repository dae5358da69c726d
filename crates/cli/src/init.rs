//! `neo-ir init`: write a commented example configuration for a local Neo node, ready for
//! `neo-ir check-config` and `neo-ir watch`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Network {
    Mainnet,
    Testnet,
}

/// The example configuration for a node on `network` (RPC port 10332 MainNet, 20332 TestNet).
pub fn example(network: Network) -> String {
    let (name, port, blocks) = match network {
        Network::Mainnet => ("MainNet", 10332, "15 s"),
        Network::Testnet => ("TestNet", 20332, "3 s"),
    };
    format!(
        r#"# neo-ir configuration for a local Neo N3 {name} node.
# Check it with `neo-ir check-config neo-ir.toml`; run with `neo-ir watch --config neo-ir.toml`.
# Durations are strings ("500ms", "1s", "5m"); sizes too ("8MiB"). Unknown keys are errors.

# One [[nodes]] table per node. role = "validator" (consensus node) or "rpc".
[[nodes]]
name = "local"
rpc = "http://127.0.0.1:{port}"
role = "rpc"
# metrics = "http://127.0.0.1:9090/metrics"   # neo-rs / neo-go Prometheus endpoint
# auth_user = "neo"                             # Basic auth for the RPC server
# auth_password_env = "NEO_RPC_PASSWORD"        # the password is read from this variable

# [[nodes]]
# name = "validator-1"
# rpc = "http://10.0.0.11:{port}"
# role = "validator"

[probe]
interval = "1s"        # one batched JSON-RPC request per node per interval
timeout = "2s"         # hard limit per request, body included
max_body = "8MiB"      # larger answers are refused as too_large
max_concurrency = 32

[detect]
# The playbook's KPI table: a node 50 or more blocks behind is a warning, 100 or more critical.
lag_warn = 50
lag_crit = 100
# A stall is no new block for 2 x msperblock (read from getversion; {name}: {blocks}) + grace:
# dBFT's first change-view timer is 2 x msperblock.
stall_grace = "800ms"

[store]
url = "sqlite://neo-ir.db"
# Several `neo-ir watch` instances on one PostgreSQL database share the work: one leads,
# the others take over within this long after it dies.
# url = "postgres://neo_ir@db.example:5432/neo_ir"   # password from PGPASSWORD
# lease = "10s"

[server]
listen = "127.0.0.1:9797"

# The response (defaults: the playbook's).
[response]
# A cleared incident is monitored this long before it resolves (playbook phase 4).
stability_window = "30m"
# How often people are reminded to post an update, once someone acknowledged.
update_every = {{ P1 = "15m", P2 = "30m", P3 = "1h", P4 = "off" }}
# A resolved P1 or P2 incident gets its post-incident review scheduled this long after the
# resolution (the date is in the resolution notice); "off": people schedule it with
# `neo-ir review ID --at TIME`.
# review_after = "48h"

# Who is paged while nobody acknowledges. Without any [[escalation]], the playbook's chain
# applies to every severity: on-call engineer at once, team lead at 5 min, engineering
# manager at 15 min, CTO/VP engineering at 30 min. `notify` names a [[schedule]] (the person
# on call then) or a person or team.
# [[escalation]]
# name = "critical"
# severities = ["P1", "P2"]
# steps = [
#   {{ after = "0m", notify = "primary" }},
#   {{ after = "5m", notify = "team lead" }},
#   {{ after = "15m", notify = "engineering manager" }},
# ]

# Where messages go (the playbook's alert, updates, pages and resolution notice). Secrets
# are read from the environment or a file, never written here.
# [notify]
# public_url = "https://neo-ir.example.org"
#
# [[notify.channels]]
# name = "pagerduty"
# type = "pagerduty"
# secret_env = "NEO_IR_PAGERDUTY_KEY"
#
# [[notify.channels]]
# name = "ops"
# type = "slack"
# secret_env = "NEO_IR_SLACK_WEBHOOK_URL"
#
# [[notify.routes]]
# severities = ["P1", "P2"]
# channels = ["pagerduty", "ops"]
#
# [[notify.routes]]
# channels = ["ops"]

# [[schedule]]
# name = "primary"
# rotation = "weekly"                  # "daily", "weekly" or a duration such as "12h"
# start = "2026-11-02T09:00:00Z"       # when the first person's turn starts
# people = ["alice", "bob", "carol"]
# overrides = [{{ who = "dave", from = "2026-12-24T00:00:00Z", until = "2026-12-27T00:00:00Z" }}]
"#
    )
}

pub fn run(network: Network, output: &Path, force: bool) -> anyhow::Result<ExitCode> {
    if output.exists() && !force {
        bail!(
            "{} already exists; pass --force to overwrite it",
            output.display()
        );
    }
    std::fs::write(output, example(network))
        .with_context(|| format!("writing {}", output.display()))?;
    println!(
        "wrote {}; check it with `neo-ir check-config {}`",
        output.display(),
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_are_valid_configs() {
        for n in [Network::Mainnet, Network::Testnet] {
            let cfg = neo_ir_core::config::parse(&example(n), Path::new("neo-ir.toml"))
                .expect("the example parses");
            assert_eq!(cfg.nodes.len(), 1);
        }
    }

    #[test]
    fn the_commented_review_after_is_the_default_and_parses_uncommented() {
        let text = example(Network::Testnet);
        let line = "# review_after = \"48h\"";
        assert!(text.contains(line), "{text}");
        let on = text.replace(line, "review_after = \"48h\"");
        let cfg = neo_ir_core::config::parse(&on, Path::new("neo-ir.toml")).unwrap();
        assert_eq!(
            cfg.response.review_after,
            neo_ir_core::oncall::ResponseConfig::default().review_after,
            "the example says the default"
        );
    }
}
