//! The runner: one path for every runbook run, whoever starts it (`neo-ir run`, the API,
//! auto-remediation).
//!
//! request → plan (a dry run on the node's agent for host scripts, so the plan shows the
//! exact argv the agent will run) → stored as a [`Run`] → dry run: stop; destructive without
//! an approval: wait for `neo-ir approve RUN`; else execute → results, report and summary
//! stored, and every step of it on the incident's timeline.
//!
//! What a run will do is fixed when it is planned ([`Resolved`], kept in the run's report
//! under `request`): approving run 7 runs what run 7 showed, even if the blocklist file or
//! the failing primaries changed meanwhile.

use std::sync::Arc;
use std::time::Duration;

use neo_ir_agent::ops::{OpReport, OpRequest};
use neo_ir_agent::OpError;
use neo_ir_core::config::{Config, NodeConfig};
use neo_ir_core::incident::{Actor, EventType, IncidentKind};
use neo_ir_core::runbook::{Plan, Run, RunStatus, Step, StepResult, StepStatus, MAX_STEP_OUTPUT};
use neo_ir_core::text::clip;
use neo_ir_core::{respond, Clock};
use neo_ir_probe::{NodeTarget, Prober};
use neo_ir_store::{NewRun, RunRefusal, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::scripts::{self, Invocation, Place, Script, ScriptError};

/// Most characters of a run's output put on the incident timeline (the whole output stays
/// in the run record).
const TIMELINE_OUTPUT_CHARS: usize = 4000;
/// How long a network script may take before it counts as failed.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a run could not be requested, approved or declined.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// A bad request: unknown node, no agent configured, unreadable blocklist file.
    #[error("{0}")]
    Invalid(String),
    #[error("no run {0}")]
    NoSuchRun(i64),
    #[error("no incident {0}")]
    NoSuchIncident(i64),
    /// The run is not in a state that allows this (approving a finished run).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A request to run a script.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub script: String,
    pub args: Vec<String>,
    /// The node a host script acts on; defaults to the incident's only node.
    pub node: Option<String>,
    pub incident_id: Option<i64>,
    pub dry_run: bool,
    pub actor: Actor,
    /// An approval that comes with the request: an auto-remediation policy's name.
    pub approved_by: Option<String>,
    pub automatic: bool,
    /// After a successful run, wait until the node is in sync (`validate_sync`) and fail the
    /// run if it is not within `[runbook] verify_within`.
    pub verify: bool,
}

impl RunRequest {
    pub fn new(script: &str, args: Vec<String>, actor: Actor) -> Self {
        RunRequest {
            script: script.to_string(),
            args,
            node: None,
            incident_id: None,
            dry_run: false,
            actor,
            approved_by: None,
            automatic: false,
            verify: false,
        }
    }
}

/// What an approved run executes, fixed at planning time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resolved {
    Network {
        script: String,
        max_lag: Option<u64>,
        lookback: u64,
    },
    Host {
        node: String,
        op: String,
        args: Value,
        verify: bool,
    },
    ViewChange {
        nodes: Vec<String>,
    },
    Fleet {
        out: String,
        paths: Vec<String>,
        /// The rendered files (path, contents): written when the run executes, which is at
        /// once (writing new files needs no approval), so they are not kept in the record.
        #[serde(skip)]
        files: Vec<(String, String)>,
    },
}

/// An agent's address and token.
#[derive(Clone)]
struct AgentEndpoint {
    url: String,
    token: String,
}

/// Runs scripts against the configured fleet, keeping every run in the store.
pub struct Runner {
    store: Store,
    cfg: Arc<Config>,
    prober: Prober,
    targets: Vec<NodeTarget>,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl Runner {
    /// A runner over `cfg`'s nodes. RPC passwords are read from their variables now (a
    /// missing one is an error); agent tokens when an agent is first used.
    pub fn new(
        store: Store,
        cfg: Arc<Config>,
        clock: Arc<dyn Clock>,
    ) -> Result<Runner, RunnerError> {
        let mut targets = Vec::with_capacity(cfg.nodes.len());
        for n in &cfg.nodes {
            let password = match &n.auth_password_env {
                Some(var) => Some(std::env::var(var).map_err(|_| {
                    RunnerError::Invalid(format!(
                        "node {}: environment variable {var} (auth_password_env) is not set",
                        n.name
                    ))
                })?),
                None => None,
            };
            targets.push(NodeTarget::from_config(n, password));
        }
        let prober = Prober::new(neo_ir_probe::ProbeConfig::from(&cfg.probe))
            .map_err(|e| RunnerError::Invalid(format!("probe: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| RunnerError::Invalid(format!("HTTP client: {e}")))?;
        Ok(Runner {
            store,
            cfg,
            prober,
            targets,
            http,
            clock,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Plan, store and (when nothing waits for an approval) execute a run; returns it as
    /// it ended (or waits).
    pub async fn request(&self, req: RunRequest) -> Result<Run, RunnerError> {
        let actor = req.actor.clone();
        match self.prepare(req).await? {
            (run, Some(resolved)) => self.execute(run, resolved, &actor).await,
            (run, None) => Ok(run),
        }
    }

    /// Plan and store a run. The second value is what to execute now (`None` for a dry run,
    /// a refused run or one that waits for an approval): pass it to [`Runner::execute`],
    /// possibly in the background (the API answers at once).
    pub async fn prepare(&self, req: RunRequest) -> Result<(Run, Option<Resolved>), RunnerError> {
        let (script, inv) = scripts::parse(&req.script, &req.args)?;
        let mut node = req.node.clone();
        if let Some(n) = &node {
            self.node(n)?;
        }
        let mut incident = None;
        if let Some(id) = req.incident_id {
            let Some((i, _)) = self.store.incident(id).await? else {
                return Err(RunnerError::NoSuchIncident(id));
            };
            if i.status == neo_ir_core::incident::Status::Reviewed {
                return Err(RunnerError::Conflict(format!(
                    "incident {id} is reviewed: its record is final; run it without --incident"
                )));
            }
            if node.is_none() && matches!(script.place, Place::Host(_)) && i.nodes.len() == 1 {
                node = i.nodes.first().cloned();
            }
            incident = Some(i);
        }
        let now = self.clock.now();
        let planned = self
            .plan(script, inv, node.as_deref(), incident.as_ref(), req.verify)
            .await?;
        let (status, plan, resolved, summary) = match planned {
            Planned::Ready { plan, resolved } => {
                let status = if req.dry_run {
                    RunStatus::DryRun
                } else if plan.destructive() && req.approved_by.is_none() {
                    RunStatus::AwaitingApproval
                } else {
                    RunStatus::Running
                };
                let summary = match status {
                    RunStatus::DryRun => {
                        format!("dry run: {} steps, nothing changed", plan.steps.len())
                    }
                    RunStatus::AwaitingApproval => {
                        "has destructive steps: waiting for an approval (neo-ir approve RUN)"
                            .to_string()
                    }
                    _ => "running".to_string(),
                };
                (status, plan, Some(resolved), summary)
            }
            Planned::Refused(why) => (RunStatus::Refused, Plan::default(), None, why),
        };
        let report = match &resolved {
            Some(r) => json!({"request": r}),
            None => json!({}),
        };
        let run = self
            .store
            .create_run(&NewRun {
                script: script.name.to_string(),
                args: req.args.clone(),
                node: node.clone().or_else(|| match &resolved {
                    Some(Resolved::Host { node, .. }) => Some(node.clone()),
                    _ => None,
                }),
                incident_id: req.incident_id,
                status,
                requested_by: format!("{} ({})", req.actor.who, req.actor.from),
                approved_by: if status == RunStatus::Running {
                    req.approved_by.clone()
                } else {
                    None
                },
                plan,
                report,
                summary,
                automatic: req.automatic,
                created_at: now,
            })
            .await?;
        self.on_timeline(&run, &req.actor).await;
        Ok(match (status, resolved) {
            (RunStatus::Running, Some(r)) => (run, Some(r)),
            _ => (run, None),
        })
    }

    /// Approve a run that waits for one, then execute it.
    pub async fn approve(&self, id: i64, actor: &Actor) -> Result<Run, RunnerError> {
        let (run, resolved) = self.approve_only(id, actor).await?;
        match resolved {
            Some(r) => self.execute(run, r, actor).await,
            None => Ok(run),
        }
    }

    /// Record the approval of run `id` (it moves to `running`) and return what to execute.
    pub async fn approve_only(
        &self,
        id: i64,
        actor: &Actor,
    ) -> Result<(Run, Option<Resolved>), RunnerError> {
        let now = self.clock.now();
        let run = match self.store.approve_run(id, actor, now).await? {
            Ok(run) => run,
            Err(RunRefusal::NoSuchRun(id)) => return Err(RunnerError::NoSuchRun(id)),
            Err(e) => return Err(RunnerError::Conflict(format!("run {id}: {e}"))),
        };
        self.on_timeline(&run, actor).await;
        match serde_json::from_value::<Resolved>(run.report["request"].clone()) {
            Ok(r) => Ok((run, Some(r))),
            Err(e) => {
                let run = self
                    .finish(
                        run,
                        RunStatus::Failed,
                        vec![],
                        json!({}),
                        format!("the run's request cannot be read back: {e}"),
                    )
                    .await?;
                self.on_timeline(&run, actor).await;
                Ok((run, None))
            }
        }
    }

    /// Decline a run that waits for an approval.
    pub async fn decline(&self, id: i64, actor: &Actor, reason: &str) -> Result<Run, RunnerError> {
        let run = match self
            .store
            .decline_run(id, actor, reason, self.clock.now())
            .await?
        {
            Ok(run) => run,
            Err(RunRefusal::NoSuchRun(id)) => return Err(RunnerError::NoSuchRun(id)),
            Err(e) => return Err(RunnerError::Conflict(format!("run {id}: {e}"))),
        };
        self.on_timeline(&run, actor).await;
        Ok(run)
    }

    // ---- planning -------------------------------------------------------------------------

    async fn plan(
        &self,
        script: &'static Script,
        inv: Invocation,
        node: Option<&str>,
        incident: Option<&neo_ir_core::incident::Incident>,
        verify: bool,
    ) -> Result<Planned, RunnerError> {
        match inv {
            Invocation::ValidateSync { max_lag } => Ok(self.network_plan(script, max_lag, 0)),
            Invocation::ValidatorConnectivity { lookback } => {
                Ok(self.network_plan(script, None, lookback))
            }
            Invocation::Partitions | Invocation::CanonicalChain | Invocation::Performance => {
                Ok(self.network_plan(script, None, 0))
            }
            Invocation::Host { op, args } => self.host_plan(script, node, op, args, verify).await,
            Invocation::BlockIps {
                file,
                ips,
                from_incident,
            } => {
                let mut lines: Vec<String> = Vec::new();
                if let Some(f) = &file {
                    let text = read_limited(f, 4 << 20).map_err(|e| {
                        RunnerError::Invalid(format!("block_ips: cannot read {}: {e}", f.display()))
                    })?;
                    lines.extend(text.lines().map(str::to_string));
                }
                lines.extend(ips);
                if from_incident {
                    let Some(i) = incident.filter(|i| i.kind == IncidentKind::NetworkAttack) else {
                        return Err(RunnerError::Invalid(
                            "block_ips --from-incident takes the attackers of a network_attack incident: give --incident ID".into(),
                        ));
                    };
                    let attackers = attackers(&i.evidence);
                    if attackers.is_empty() {
                        return Err(RunnerError::Invalid(format!(
                            "incident {} names no remote IP over the per-IP limit",
                            i.id
                        )));
                    }
                    lines.extend(attackers);
                }
                let text = lines.join("\n");
                let list = crate::blocklist::parse_blocklist(&text)
                    .map_err(|e| RunnerError::Invalid(format!("block_ips: {e}")))?;
                self.host_plan(
                    script,
                    node,
                    "firewall_apply",
                    json!({"blocklist": list}),
                    false,
                )
                .await
            }
            Invocation::ForceViewChange { nodes } => self.view_change_plan(nodes, incident).await,
            Invocation::DeployFleet {
                count,
                out,
                implementation,
                timing,
            } => self.fleet_plan(count, out, &implementation, timing).await,
        }
    }

    fn network_plan(&self, script: &Script, max_lag: Option<u64>, lookback: u64) -> Planned {
        let names: Vec<&str> = self.targets.iter().map(|t| t.name.as_str()).collect();
        let plan = Plan {
            steps: vec![Step::builtin(
                script.name,
                "json_rpc",
                format!(
                    "ask {} node(s) ({}) over JSON-RPC, read-only: {}",
                    names.len(),
                    clip(&names.join(", "), 300),
                    script.what
                ),
                NETWORK_TIMEOUT,
                false,
            )],
            notes: vec![],
        };
        Planned::Ready {
            plan,
            resolved: Resolved::Network {
                script: script.name.to_string(),
                max_lag,
                lookback,
            },
        }
    }

    async fn host_plan(
        &self,
        script: &Script,
        node: Option<&str>,
        op: &str,
        args: Value,
        verify: bool,
    ) -> Result<Planned, RunnerError> {
        let Some(node) = node else {
            return Err(RunnerError::Invalid(format!(
                "{} runs on one node's host: say which with --node NAME (or run it from an incident with one node)",
                script.name
            )));
        };
        let agent = self.agent(node)?;
        let req = OpRequest {
            args: args.clone(),
            dry_run: true,
            approved_by: None,
        };
        match self.call_agent(&agent, op, &req).await {
            Ok(r) => Ok(Planned::Ready {
                plan: r.plan,
                resolved: Resolved::Host {
                    node: node.to_string(),
                    op: op.to_string(),
                    args,
                    verify,
                },
            }),
            Err(OpError::InvalidArgs(m)) => {
                Err(RunnerError::Invalid(format!("{}: {m}", script.name)))
            }
            Err(e) => Ok(Planned::Refused(format!("{} on {node}: {e}", script.name))),
        }
    }

    async fn view_change_plan(
        &self,
        mut nodes: Vec<String>,
        incident: Option<&neo_ir_core::incident::Incident>,
    ) -> Result<Planned, RunnerError> {
        if nodes.is_empty() {
            // the validator the consensus detector named on this incident (missed turns)
            if let Some(i) = incident.filter(|i| i.kind == IncidentKind::ConsensusFailure) {
                if let Some(v) = i.evidence["validator"].as_str() {
                    nodes = i
                        .nodes
                        .iter()
                        .filter(|n| n.as_str() == v)
                        .cloned()
                        .collect();
                }
            }
        }
        if nodes.is_empty() {
            let report = self.connectivity(50).await;
            nodes = crate::viewchange::failing_primaries(&report);
        }
        if nodes.is_empty() {
            return Ok(Planned::Refused(
                "force_view_change: no failing primary found (every validator proposed in the last 50 blocks); nothing to restart".into(),
            ));
        }
        for n in &nodes {
            let cfg = self.node(n)?;
            if cfg.role != neo_ir_core::Role::Validator {
                return Err(RunnerError::Invalid(format!(
                    "force_view_change: {n} is not a validator"
                )));
            }
            self.agent(n)?;
        }
        Ok(Planned::Ready {
            plan: crate::viewchange::plan(&nodes, self.cfg.runbook.verify_within),
            resolved: Resolved::ViewChange { nodes },
        })
    }

    async fn fleet_plan(
        &self,
        count: u32,
        out: std::path::PathBuf,
        implementation: &str,
        timing: Option<crate::fleet::GenesisTiming>,
    ) -> Result<Planned, RunnerError> {
        let bad =
            |e: crate::fleet::FleetError| RunnerError::Invalid(format!("deploy_node_fleet: {e}"));
        let implementation = crate::fleet::Implementation::parse(implementation).map_err(bad)?;
        // the chain settings come from a live node (see the fleet module)
        let mut last_err = None;
        let mut protocol = None;
        for t in &self.targets {
            match crate::fleet::fetch_protocol(&self.prober, t, timing).await {
                Ok(p) => {
                    protocol = Some(p);
                    break;
                }
                Err(e) => last_err = Some(e.to_string()),
            }
        }
        let Some(protocol) = protocol else {
            return Ok(Planned::Refused(format!(
                "deploy_node_fleet: no node gave its protocol settings (getversion): {}",
                last_err.unwrap_or_else(|| "no nodes configured".into())
            )));
        };
        let spec = crate::fleet::FleetSpec::new(count, implementation, protocol);
        let files = crate::fleet::render_fleet(&spec).map_err(bad)?;
        let out_text = out.display().to_string();
        Ok(Planned::Ready {
            plan: crate::fleet::plan(&spec, &out_text),
            resolved: Resolved::Fleet {
                out: out_text,
                paths: files.iter().map(|f| f.path.clone()).collect(),
                files: files.into_iter().map(|f| (f.path, f.contents)).collect(),
            },
        })
    }

    // ---- execution ------------------------------------------------------------------------

    /// Execute a stored `running` run and record how it ended.
    pub async fn execute(
        &self,
        run: Run,
        resolved: Resolved,
        actor: &Actor,
    ) -> Result<Run, RunnerError> {
        let approved_by = run.approved_by.clone().unwrap_or_else(|| actor.who.clone());
        let started = std::time::Instant::now();
        let outcome = match &resolved {
            Resolved::Network {
                script,
                max_lag,
                lookback,
            } => self.execute_network(script, *max_lag, *lookback).await,
            Resolved::Host {
                node,
                op,
                args,
                verify,
            } => {
                self.execute_host(&run, node, op, args, &approved_by, *verify)
                    .await?
            }
            Resolved::ViewChange { nodes } => self.execute_view_change(nodes, &approved_by).await,
            Resolved::Fleet { out, files, .. } => {
                let files: Vec<crate::fleet::RenderedFile> = files
                    .iter()
                    .map(|(path, contents)| crate::fleet::RenderedFile {
                        path: path.clone(),
                        contents: contents.clone(),
                    })
                    .collect();
                match crate::fleet::write_fleet(&files, std::path::Path::new(out), false) {
                    Ok(()) => Outcome {
                        ok: true,
                        results: vec![],
                        report: json!({"out": out, "files": files.iter().map(|f| &f.path).collect::<Vec<_>>()}),
                        summary: format!(
                            "wrote {} files under {out}; applying them is your step (see {out}/README.txt)",
                            files.len()
                        ),
                    },
                    Err(e) => Outcome::failed(format!("deploy_node_fleet: {e}")),
                }
            }
        };
        let Outcome {
            ok,
            mut results,
            mut report,
            summary,
        } = outcome;
        if results.is_empty() {
            results.push(StepResult {
                name: run.script.clone(),
                status: if ok {
                    StepStatus::Ok
                } else {
                    StepStatus::Failed
                },
                exit_code: None,
                output: String::new(),
                duration_ms: started.elapsed().as_millis() as u64,
            });
        }
        if let Value::Object(m) = &mut report {
            m.insert(
                "request".into(),
                serde_json::to_value(&resolved).unwrap_or(Value::Null),
            );
        }
        let status = if ok {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        let run = self.finish(run, status, results, report, summary).await?;
        self.on_timeline(&run, actor).await;
        Ok(run)
    }

    async fn finish(
        &self,
        run: Run,
        status: RunStatus,
        mut results: Vec<StepResult>,
        report: Value,
        summary: String,
    ) -> Result<Run, RunnerError> {
        for r in &mut results {
            r.output = clip(&r.output, MAX_STEP_OUTPUT);
        }
        Ok(self
            .store
            .finish_run(
                run.id,
                status,
                &results,
                &report,
                &summary,
                self.clock.now(),
            )
            .await?)
    }

    async fn execute_network(&self, script: &str, max_lag: Option<u64>, lookback: u64) -> Outcome {
        let work = async {
            match script {
                "validate_sync" => {
                    let lag = max_lag.unwrap_or(self.cfg.runbook.max_lag);
                    let r = crate::validate_sync(&self.prober, &self.targets, lag).await;
                    let summary = if r.ok {
                        format!("all {} nodes in sync", r.nodes.len())
                    } else {
                        let bad: Vec<&str> = r
                            .nodes
                            .iter()
                            .filter(|n| n.verdict != crate::Verdict::Ok)
                            .map(|n| n.node.as_str())
                            .collect();
                        format!("not in sync: {}", bad.join(", "))
                    };
                    Outcome::text(r.ok, r.to_text(), json_of(&r), summary)
                }
                "check_validator_connectivity" => {
                    let r = self.connectivity(lookback).await;
                    let bad: Vec<String> = r
                        .validators
                        .iter()
                        .filter(|v| v.verdict != crate::ValidatorVerdict::Ok)
                        .map(|v| format!("{} {:?}", v.node, v.verdict).to_lowercase())
                        .collect();
                    let summary = if r.ok {
                        format!(
                            "all {} validators reachable, with peers, proposing",
                            r.validators.len()
                        )
                    } else if bad.is_empty() {
                        format!(
                            "the last blocks could not be read: {}",
                            r.header_error.as_deref().unwrap_or("no reachable node")
                        )
                    } else {
                        format!("validators not ok: {}", bad.join(", "))
                    };
                    Outcome::text(r.ok, r.to_text(), json_of(&r), summary)
                }
                "check_network_partitions" | "identify_canonical_chain" => {
                    let r = crate::check_network_partitions(&self.prober, &self.targets).await;
                    let (ok, summary) = if script == "check_network_partitions" {
                        (
                            r.ok(),
                            if r.ok() {
                                "one chain".to_string()
                            } else {
                                format!("{} partitions", r.partitions.len())
                            },
                        )
                    } else {
                        (
                            r.canonical_backed,
                            match (r.partitions.first(), r.canonical_backed) {
                                (Some(p), true) => format!(
                                    "canonical chain {} at height {} ({} of {} validators)",
                                    p.hash,
                                    r.height.unwrap_or_default(),
                                    p.validators.len(),
                                    r.validators
                                ),
                                _ => format!(
                                    "no chain has the {} validators dBFT needs",
                                    r.consensus_needs
                                ),
                            },
                        )
                    };
                    Outcome::text(ok, r.to_text(), json_of(&r), summary)
                }
                _ => {
                    let r = crate::performance_diagnostics(
                        &self.prober,
                        &self.targets,
                        &self.cfg.detect.kpi,
                        3,
                    )
                    .await;
                    let summary = if r.ok {
                        "every node within the KPI table".to_string()
                    } else {
                        "some values are off the KPI table".to_string()
                    };
                    Outcome::text(r.ok, r.to_text(), json_of(&r), summary)
                }
            }
        };
        match tokio::time::timeout(NETWORK_TIMEOUT, work).await {
            Ok(o) => o,
            Err(_) => Outcome::failed(format!(
                "{script} did not finish within {NETWORK_TIMEOUT:?}"
            )),
        }
    }

    pub(crate) async fn connectivity(
        &self,
        lookback: u64,
    ) -> crate::connectivity::ConnectivityReport {
        let validators = self
            .cfg
            .nodes
            .iter()
            .filter(|n| n.role == neo_ir_core::Role::Validator)
            .count() as u32;
        let configured: std::collections::BTreeMap<String, u32> = self
            .cfg
            .nodes
            .iter()
            .filter_map(|n| n.validator_index.map(|i| (n.name.clone(), i)))
            .collect();
        let validators_list = crate::connectivity::validator_indexes(&self.targets, &configured);
        crate::connectivity::check_validators(
            &self.prober,
            &self.targets,
            &validators_list,
            (validators > 0).then_some(validators),
            lookback,
        )
        .await
    }

    async fn execute_host(
        &self,
        run: &Run,
        node: &str,
        op: &str,
        args: &Value,
        approved_by: &str,
        verify: bool,
    ) -> Result<Outcome, RunnerError> {
        let agent = match self.agent(node) {
            Ok(a) => a,
            Err(e) => return Ok(Outcome::failed(e.to_string())),
        };
        let req = OpRequest {
            args: args.clone(),
            dry_run: false,
            approved_by: Some(approved_by.to_string()),
        };
        let r = match self.call_agent(&agent, op, &req).await {
            Ok(r) => r,
            Err(e) => return Ok(Outcome::failed(format!("{} on {node}: {e}", run.script))),
        };
        let OpReport {
            results,
            mut report,
            ok,
            summary,
            ..
        } = r;
        // a diagnostics archive goes to the incident, not into the run's JSON
        if let Some(b64) = report.get("archive_base64").and_then(Value::as_str) {
            let name = report["name"]
                .as_str()
                .or(report["archive"].as_str())
                .unwrap_or("diagnostics.tar.gz")
                .to_string();
            match (base64_decode(b64), run.incident_id) {
                (Some(bytes), Some(incident)) => {
                    match self
                        .store
                        .add_attachment(
                            incident,
                            Some(run.id),
                            &name,
                            "application/gzip",
                            &bytes,
                            self.clock.now(),
                        )
                        .await
                    {
                        Ok(a) => report["attachment_id"] = json!(a.id),
                        Err(e) => report["attachment_error"] = json!(e.to_string()),
                    }
                }
                (None, _) => {
                    report["attachment_error"] = json!("the agent's archive is not valid base64")
                }
                (Some(_), None) => {
                    report["attachment_note"] =
                        json!("no incident given: the archive stays on the node's host")
                }
            }
            if let Some(m) = report.as_object_mut() {
                m.remove("archive_base64");
            }
        }
        let mut out = Outcome {
            ok,
            results,
            report,
            summary,
        };
        if ok && verify {
            self.verify_in_sync(node, &mut out).await;
        }
        Ok(out)
    }

    /// Poll `validate_sync` until `node` is in sync, up to `[runbook] verify_within`.
    async fn verify_in_sync(&self, node: &str, out: &mut Outcome) {
        let deadline = tokio::time::Instant::now() + self.cfg.runbook.verify_within;
        let started = std::time::Instant::now();
        let mut last;
        loop {
            let r =
                crate::validate_sync(&self.prober, &self.targets, self.cfg.runbook.max_lag).await;
            let mine = r.nodes.iter().find(|n| n.node == node);
            if mine.is_some_and(|n| n.verdict == crate::Verdict::Ok) {
                out.report["verified"] = json!(true);
                out.results.push(StepResult {
                    name: "verify".into(),
                    status: StepStatus::Ok,
                    exit_code: None,
                    output: r.to_text(),
                    duration_ms: started.elapsed().as_millis() as u64,
                });
                out.summary = format!("{}; {node} verified in sync", out.summary);
                return;
            }
            last = r.to_text();
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        out.ok = false;
        out.report["verified"] = json!(false);
        out.results.push(StepResult {
            name: "verify".into(),
            status: StepStatus::Failed,
            exit_code: None,
            output: last,
            duration_ms: started.elapsed().as_millis() as u64,
        });
        out.summary = format!(
            "{}; but {node} was not in sync within {}",
            out.summary,
            humantime::format_duration(self.cfg.runbook.verify_within)
        );
    }

    async fn execute_view_change(&self, nodes: &[String], approved_by: &str) -> Outcome {
        let control = AgentControl {
            runner: self,
            approved_by: approved_by.to_string(),
        };
        let r = crate::viewchange::coordinate_restarts(
            &control,
            &self.prober,
            &self.targets,
            nodes,
            self.cfg.runbook.verify_within,
        )
        .await;
        let summary = match (&r.stopped, r.ok) {
            (_, true) => format!(
                "restarted {} one at a time; the chain advanced after each",
                r.restarted.join(", ")
            ),
            (Some(why), false) => format!("stopped: {why}"),
            (None, false) => "not every restart made the chain advance".to_string(),
        };
        Outcome::text(r.ok, r.to_text(), json_of(&r), summary)
    }

    // ---- nodes and agents -----------------------------------------------------------------

    fn node(&self, name: &str) -> Result<&NodeConfig, RunnerError> {
        self.cfg
            .nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.cfg.nodes.iter().map(|n| n.name.as_str()).collect();
                RunnerError::Invalid(format!(
                    "no node {name:?} in the configuration (nodes: {})",
                    known.join(", ")
                ))
            })
    }

    fn agent(&self, name: &str) -> Result<AgentEndpoint, RunnerError> {
        let n = self.node(name)?;
        let (Some(url), Some(var)) = (&n.agent, &n.agent_token_env) else {
            return Err(RunnerError::Invalid(format!(
                "node {name} has no `agent` in the configuration: scripts on its host need `neo-ir agent` there"
            )));
        };
        let token = std::env::var(var).map_err(|_| {
            RunnerError::Invalid(format!(
                "node {name}: environment variable {var} (agent_token_env) is not set"
            ))
        })?;
        Ok(AgentEndpoint {
            url: url.clone(),
            token,
        })
    }

    async fn call_agent(
        &self,
        agent: &AgentEndpoint,
        op: &str,
        req: &OpRequest,
    ) -> Result<OpReport, OpError> {
        neo_ir_agent::run_op(
            &self.http,
            &agent.url,
            &agent.token,
            op,
            req,
            self.cfg.runbook.agent_timeout,
        )
        .await
    }

    // ---- the timeline ---------------------------------------------------------------------

    /// Put the run's state on its incident's timeline (when it has one). A failure to record
    /// is logged, not returned: the run itself is stored either way.
    async fn on_timeline(&self, run: &Run, actor: &Actor) {
        let Some(incident) = run.incident_id else {
            return;
        };
        let target = run
            .node
            .as_deref()
            .map(|n| format!(" on {n}"))
            .unwrap_or_default();
        let message = match run.status {
            RunStatus::DryRun => format!(
                "dry run of {}{target} by {} (run {})",
                run.script, run.requested_by, run.id
            ),
            RunStatus::AwaitingApproval => format!(
                "{}{target} requested by {}: waits for an approval (neo-ir approve {})",
                run.script, run.requested_by, run.id
            ),
            RunStatus::Running => format!(
                "{}{target} started (run {}{})",
                run.script,
                run.id,
                run.approved_by
                    .as_deref()
                    .map(|a| format!(", approved by {a}"))
                    .unwrap_or_default()
            ),
            done @ (RunStatus::Succeeded | RunStatus::Failed | RunStatus::Refused) => format!(
                "{}{target} {}: {} (run {})",
                run.script,
                done.as_str(),
                run.summary,
                run.id
            ),
        };
        let output: String = run
            .results
            .iter()
            .map(|r| format!("[{}] {:?}\n{}\n", r.name, r.status, r.output.trim_end()))
            .collect();
        let data = json!({
            "run_id": run.id,
            "script": run.script,
            "node": run.node,
            "status": run.status,
            "automatic": run.automatic,
            "by": actor.who,
            "from": actor.from,
            "approved_by": run.approved_by,
            "summary": run.summary,
            "plan": if run.status == RunStatus::AwaitingApproval || run.status == RunStatus::DryRun { run.plan.describe() } else { String::new() },
            "output": clip(&output, TIMELINE_OUTPUT_CHARS),
        });
        if let Err(e) = record_event(
            &self.store,
            incident,
            EventType::RunbookRun,
            message,
            data,
            self.clock.now(),
        )
        .await
        {
            tracing::warn!(incident, run = run.id, error = %e, "run not put on the timeline");
        }
    }
}

/// Why a machine-made event was not put on a timeline.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Refused(#[from] respond::Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Put a machine-made event on incident `id`'s timeline (a run, a checklist mark, a
/// breaker), retrying when the incident changed meanwhile. Not an audit record: the run
/// table and the person's own mutation (approve, mark) are audited where they happen.
pub async fn record_event(
    store: &Store,
    id: i64,
    t: EventType,
    message: String,
    data: Value,
    now: jiff::Timestamp,
) -> Result<(), RecordError> {
    for _ in 0..8 {
        let Some((incident, _)) = store.incident(id).await? else {
            return Err(StoreError::NoSuchIncident(id).into());
        };
        let m = respond::record(&incident, t, message.clone(), data.clone(), now)?;
        match store.apply(&neo_ir_core::incident::Change::Update(m)).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict(id).into())
}

/// What planning decided.
pub(crate) enum Planned {
    Ready {
        plan: Plan,
        resolved: Resolved,
    },
    /// Stored as a refused run with this reason (unsupported, agent unreachable).
    Refused(String),
}

/// What executing a run gave.
pub(crate) struct Outcome {
    pub ok: bool,
    pub results: Vec<StepResult>,
    pub report: Value,
    pub summary: String,
}

impl Outcome {
    fn text(ok: bool, text: String, report: Value, summary: String) -> Outcome {
        Outcome {
            ok,
            results: vec![StepResult {
                name: "check".into(),
                status: if ok {
                    StepStatus::Ok
                } else {
                    StepStatus::Failed
                },
                exit_code: None,
                output: text,
                duration_ms: 0,
            }],
            report,
            summary,
        }
    }

    pub(crate) fn failed(summary: String) -> Outcome {
        Outcome {
            ok: false,
            results: vec![],
            report: json!({"error": summary}),
            summary,
        }
    }
}

fn json_of<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_else(|e| json!({"error": e.to_string()}))
}

/// Restarts through the validators' agents, for `force_view_change`.
struct AgentControl<'a> {
    runner: &'a Runner,
    approved_by: String,
}

impl crate::viewchange::NodeControl for AgentControl<'_> {
    async fn restart(&self, node: &str) -> Result<Value, String> {
        let agent = self.runner.agent(node).map_err(|e| e.to_string())?;
        let req = OpRequest {
            args: json!({}),
            dry_run: false,
            approved_by: Some(self.approved_by.clone()),
        };
        match self
            .runner
            .call_agent(&agent, "service_restart", &req)
            .await
        {
            Ok(r) if r.ok => Ok(r.report),
            Ok(r) => Err(r.summary),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The remote IPs a network_attack incident's evidence names over its per-IP limit
/// (`top_remote_ips[].ip` with more P2P + RPC connections than `limit_per_ip`), as the agent
/// reported them: untrusted text, checked by the blocklist parser like a file's lines.
pub fn attackers(evidence: &Value) -> Vec<String> {
    let limit = evidence["limit_per_ip"].as_u64().unwrap_or(0);
    evidence["top_remote_ips"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|r| r["p2p"].as_u64().unwrap_or(0) + r["rpc"].as_u64().unwrap_or(0) > limit)
                .filter_map(|r| r["ip"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Read a file of at most `limit` bytes as UTF-8.
fn read_limited(path: &std::path::Path, limit: u64) -> std::io::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut text = String::new();
    f.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(text)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attackers_are_the_ips_over_the_limit_and_stay_untrusted() {
        let evidence = json!({
            "limit_per_ip": 10,
            "top_remote_ips": [
                {"ip": "203.0.113.9", "p2p": 40, "rpc": 3},
                {"ip": "1.2.3.4; rm -rf /", "p2p": 30, "rpc": 0},
                {"ip": "198.51.100.2", "p2p": 2, "rpc": 1},
                {"ip": 7, "p2p": 99, "rpc": 0}
            ]
        });
        let a = attackers(&evidence);
        assert_eq!(a, vec!["203.0.113.9", "1.2.3.4; rm -rf /"]);
        // what becomes an argument goes through the blocklist parser, which refuses it
        let e = crate::blocklist::parse_blocklist(&a.join("\n")).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(attackers(&json!({})).is_empty());
    }
}
