//! Drills in the watch loop: marking the incidents of running drills, and reminding the
//! drill's people of the next scheduled drill.
//!
//! Marking: every decision reads the running drills from the store (one small indexed
//! query) and marks the round's debounced findings with [`neo_ir_core::drill::mark`] before
//! they are reconciled. The first time the leader reads a drill it notes it in the store
//! (`seen_at`): `neo-ir drill run` injects its fault only after that, so the incidents it
//! causes are marked from the first round.

use std::collections::BTreeSet;

use jiff::Timestamp;
use neo_ir_core::drill::mark;
use neo_ir_core::incident::{Assessment, Incident};
use neo_ir_store::{Store, StoreError};

/// The watcher's drill state.
#[derive(Default)]
pub(crate) struct Drills {
    /// Drills this instance already noted as seen.
    seen: BTreeSet<i64>,
}

impl Drills {
    /// Mark the round's assessment for the drills running at `now` (see
    /// [`neo_ir_core::drill::mark::mark`]); `open` are the open incidents it is reconciled
    /// with.
    pub(crate) async fn mark(
        &mut self,
        store: &Store,
        assessment: Assessment,
        open: &[Incident],
        now: Timestamp,
    ) -> Result<Assessment, StoreError> {
        let drills = store.active_drills(now).await?;
        let new: Vec<i64> = drills
            .iter()
            .map(|d| d.id)
            .filter(|id| !self.seen.contains(id))
            .collect();
        if !new.is_empty() {
            store.mark_drills_seen(&new, now).await?;
            for d in drills.iter().filter(|d| new.contains(&d.id)) {
                tracing::info!(drill = d.id, scenario = %d.scenario, nodes = ?d.nodes,
                    "drill running: its incidents are marked as drill incidents");
            }
            self.seen.extend(new);
        }
        Ok(mark::mark(assessment, &drills, open))
    }
}
