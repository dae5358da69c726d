//! Auto-remediation: the `[[remediation]]` policies acted on by the leading watcher.
//!
//! Each round the watcher hands over the open incidents. For each incident whose kind has a
//! policy, and each of its nodes, [`decide_remediation`] says run, wait or stop (the circuit
//! breaker: at most `max_runs` per node per `window`, none after a failed run or failed
//! verification, never on a resolved incident). A run goes through the same [`Runner`] as a
//! person's, approved by the policy, verified with `validate_sync` afterwards, and recorded
//! on the timeline with its output. Runs happen in the background, one at a time per node,
//! so a slow restart never holds up detection.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use neo_ir_core::incident::{Actor, EventType, Incident};
use neo_ir_core::runbook::{decide_remediation, RemediationDecision, RemediationPolicy};
use neo_ir_core::Role;
use serde_json::json;

use crate::runner::{RunRequest, Runner};

/// Who auto-remediation acts as on the timeline and in the audit log.
pub fn actor() -> Actor {
    Actor {
        who: "auto-remediation".into(),
        from: "watch".into(),
    }
}

/// Acts on the policies; cheap to call every round.
pub struct Remediator {
    runner: Arc<Runner>,
    /// Nodes with a run in progress.
    busy: Arc<Mutex<HashSet<String>>>,
    /// (incident, node) pairs whose breaker opening is already on the timeline.
    reported: Mutex<HashSet<(i64, String)>>,
}

impl Remediator {
    pub fn new(runner: Arc<Runner>) -> Self {
        Remediator {
            runner,
            busy: Arc::new(Mutex::new(HashSet::new())),
            reported: Mutex::new(HashSet::new()),
        }
    }

    /// Whether any policy is configured (the watcher skips the work otherwise).
    pub fn enabled(&self) -> bool {
        !self.runner.config().runbook.remediation.is_empty()
    }

    /// Look at the open incidents now; start runs in the background. Returns how many runs
    /// it started.
    pub async fn tick(&self, incidents: &[Incident], now: jiff::Timestamp) -> usize {
        let cfg = self.runner.config();
        let mut started = 0;
        for incident in incidents {
            let Some(policy) = cfg
                .runbook
                .remediation
                .iter()
                .find(|p| p.kind == incident.kind)
            else {
                continue;
            };
            for node in &incident.nodes {
                if self.busy.lock().expect("busy set").contains(node) {
                    continue;
                }
                let role = cfg.nodes.iter().find(|n| &n.name == node).map(|n| n.role);
                let since = jiff::Timestamp::from_millisecond(
                    now.as_millisecond() - policy.window.as_millis() as i64,
                )
                .unwrap_or(now);
                let past = match self.runner.store().automatic_runs(node, since).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(node, error = %e, "auto-remediation: cannot read past runs; not acting");
                        continue;
                    }
                };
                match decide_remediation(policy, incident, node, role, &past, now) {
                    RemediationDecision::Wait => {}
                    RemediationDecision::Tripped(why) => {
                        self.report_tripped(incident, node, &why, now).await
                    }
                    RemediationDecision::Run => {
                        self.start(policy, incident, node, role);
                        started += 1;
                    }
                }
            }
        }
        started
    }

    fn start(
        &self,
        policy: &RemediationPolicy,
        incident: &Incident,
        node: &str,
        role: Option<Role>,
    ) {
        self.busy.lock().expect("busy set").insert(node.to_string());
        let runner = self.runner.clone();
        let busy = self.busy.clone();
        let mut req = RunRequest::new(&policy.script, vec![], actor());
        req.node = Some(node.to_string());
        req.incident_id = Some(incident.id);
        req.approved_by = Some(format!("policy remediation.{}", policy.kind));
        req.automatic = true;
        req.verify = true;
        let node = node.to_string();
        let incident_id = incident.id;
        tracing::info!(
            incident = incident_id,
            node = %node,
            script = %policy.script,
            role = ?role,
            "auto-remediation: starting a run"
        );
        tokio::spawn(async move {
            match runner.request(req).await {
                Ok(run) => tracing::info!(
                    incident = incident_id,
                    node = %node,
                    run = run.id,
                    status = run.status.as_str(),
                    summary = %run.summary,
                    "auto-remediation: run finished"
                ),
                Err(e) => {
                    tracing::warn!(incident = incident_id, node = %node, error = %e, "auto-remediation: run not started")
                }
            }
            busy.lock().expect("busy set").remove(&node);
        });
    }

    async fn report_tripped(
        &self,
        incident: &Incident,
        node: &str,
        why: &str,
        now: jiff::Timestamp,
    ) {
        if !self
            .reported
            .lock()
            .expect("reported set")
            .insert((incident.id, node.to_string()))
        {
            return;
        }
        tracing::warn!(incident = incident.id, node, "{why}");
        let data = json!({"node": node, "breaker": "open", "reason": why});
        if let Err(e) = crate::runner::record_event(
            self.runner.store(),
            incident.id,
            EventType::Remediation,
            why.to_string(),
            data,
            now,
        )
        .await
        {
            tracing::warn!(incident = incident.id, error = %e, "auto-remediation: breaker not recorded");
        }
    }

    /// Wait until no run is in progress (shutdown and tests).
    pub async fn idle(&self) {
        while !self.busy.lock().expect("busy set").is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
