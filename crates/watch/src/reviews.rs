//! The leader's reminders of overdue post-incident action items (playbook phase 5: action
//! items are tracked until done). Each round, before routing, every open item past its due
//! day (UTC) that was not reminded of today gets an `action_item_overdue` event on its
//! incident's timeline; the router then sends it to the incident's route's channels like
//! any other event (the review message kind). Once per item and UTC day, remembered in the
//! store, so restarts and a new leader do not repeat it; reviewed incidents included (the
//! items are worked on after the review).

use jiff::Timestamp;
use neo_ir_store::{Store, StoreError};

/// Write today's reminders of overdue action items (fenced on the leader's handle) and
/// return how many. Cheap when there is nothing to remind of: one indexed query.
pub async fn remind_overdue(store: &Store, now: Timestamp) -> Result<usize, StoreError> {
    let written = store.remind_overdue(now).await?;
    for (incident, event) in &written {
        tracing::info!(
            incident,
            item = %event.data["item"],
            due = %event.data["due"],
            "action item overdue: reminder queued for the incident's channels"
        );
    }
    Ok(written.len())
}
