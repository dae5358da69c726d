//! Getting neo-ir's messages to people.
//!
//! `template` renders a [`Notification`] into the playbook's message (INCIDENT ALERT,
//! INCIDENT UPDATE, INCIDENT RESOLVED, pages, severity changes, review notices), from the
//! built-in templates or an operator's overrides. `channel` sends a rendered message to one
//! service and classifies the outcome, so the dispatcher knows whether to retry, when, or
//! to give up. Neither stores anything: the outbox (crates/store) and the dispatcher
//! (crates/watch) make delivery durable.

pub mod channel;
pub mod template;

pub use channel::{Channel, Delivered, SendError};
pub use neo_ir_core::notify::{Notification, Rendered};
pub use template::{TemplateError, Templates};
