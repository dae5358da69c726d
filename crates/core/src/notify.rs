//! Notifications as data: the channels an operator configures, the routes from incidents to
//! channels, and the notification an outbox row holds (what happened, to whom). Rendering
//! and sending live in `crates/notify`; storing and dispatching in `crates/store` and
//! `crates/watch`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::SecretSource;
use crate::incident::{EventType, Incident, IncidentKind, Severity, TimelineEvent};

/// The services neo-ir sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// Generic JSON webhook, signed with HMAC-SHA256 when a secret is set.
    Webhook,
    /// Slack incoming webhook.
    Slack,
    /// Discord webhook.
    Discord,
    /// Telegram Bot API `sendMessage`.
    Telegram,
    /// Microsoft Teams workflow webhook.
    Teams,
    /// PagerDuty Events API v2.
    PagerDuty,
    /// Email over SMTP.
    Email,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 7] = [
        ChannelKind::Webhook,
        ChannelKind::Slack,
        ChannelKind::Discord,
        ChannelKind::Telegram,
        ChannelKind::Teams,
        ChannelKind::PagerDuty,
        ChannelKind::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Discord => "discord",
            ChannelKind::Telegram => "telegram",
            ChannelKind::Teams => "teams",
            ChannelKind::PagerDuty => "pagerduty",
            ChannelKind::Email => "email",
        }
    }
}

impl std::str::FromStr for ChannelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChannelKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown channel type {s:?} (expected one of {})",
                    ChannelKind::ALL.map(ChannelKind::as_str).join(", ")
                )
            })
    }
}

/// How an email channel reaches its SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTls {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS (a local relay only).
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSettings {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub tls: EmailTls,
    /// SMTP user; the password is the channel's secret.
    pub username: Option<String>,
    pub from: String,
    pub to: Vec<String>,
}

/// One configured channel (`[[notify.channels]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Routes name channels by this.
    pub name: String,
    pub kind: ChannelKind,
    /// The URL to send to: the webhook's URL; for Telegram and PagerDuty the API's base URL
    /// (default the service's own). Slack, Discord and Teams take their webhook URL as the
    /// secret instead, since the URL is the credential.
    pub url: Option<String>,
    /// The credential, by reference: the webhook's HMAC key, the Slack/Discord/Teams webhook
    /// URL, the Telegram bot token, the PagerDuty routing key, the SMTP password.
    pub secret: Option<SecretSource>,
    /// Telegram: the chat to send to.
    pub chat_id: Option<String>,
    pub email: Option<EmailSettings>,
    /// Hard limit for one send.
    pub timeout: Duration,
    /// At most this many messages per minute (a flood of incidents must not get the
    /// channel blocked).
    pub per_minute: u32,
    /// A directory of templates overriding the built-in ones for this channel.
    pub templates: Option<PathBuf>,
}

/// Which channels get an incident's messages (`[[notify.routes]]`): the first route whose
/// severities and kinds match applies. Every channel of `channels` gets each message; when
/// one gives up (a permanent error, or too many attempts), the message goes to the next
/// channel of `fallback` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Empty: every severity.
    pub severities: Vec<Severity>,
    /// Empty: every kind.
    pub kinds: Vec<IncidentKind>,
    pub channels: Vec<String>,
    pub fallback: Vec<String>,
}

impl Route {
    pub fn matches(&self, incident: &Incident) -> bool {
        (self.severities.is_empty() || self.severities.contains(&incident.severity))
            && (self.kinds.is_empty() || self.kinds.contains(&incident.kind))
    }
}

/// `[notify]`: channels, routes and delivery limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySettings {
    pub channels: Vec<ChannelConfig>,
    pub routes: Vec<Route>,
    /// A directory of templates overriding the built-in ones for every channel.
    pub templates: Option<PathBuf>,
    /// The URL people reach neo-ir's API or status page at, for links in messages.
    pub public_url: Option<String>,
    /// Attempts per message and channel before falling back.
    pub max_attempts: u32,
    /// Time per message and channel before falling back, however many attempts.
    pub give_up_after: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            channels: Vec::new(),
            routes: Vec::new(),
            templates: None,
            public_url: None,
            max_attempts: 20,
            give_up_after: Duration::from_secs(15 * 60),
        }
    }
}

impl NotifySettings {
    pub fn channel(&self, name: &str) -> Option<&ChannelConfig> {
        self.channels.iter().find(|c| c.name == name)
    }

    pub fn route_for(&self, incident: &Incident) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(incident))
    }
}

/// The playbook's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// INCIDENT ALERT: an incident opened or was declared.
    Alert,
    /// INCIDENT UPDATE: acknowledged, a phase change, a person's status update, cleared or
    /// back.
    Update,
    /// The severity changed.
    Severity,
    /// An escalation step pages someone.
    Page,
    /// INCIDENT RESOLVED.
    Resolved,
    /// The post-incident review is scheduled, or an action item of it is overdue.
    Review,
}

impl MessageKind {
    pub const ALL: [MessageKind; 6] = [
        MessageKind::Alert,
        MessageKind::Update,
        MessageKind::Severity,
        MessageKind::Page,
        MessageKind::Resolved,
        MessageKind::Review,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Alert => "alert",
            MessageKind::Update => "update",
            MessageKind::Severity => "severity",
            MessageKind::Page => "page",
            MessageKind::Resolved => "resolved",
            MessageKind::Review => "review",
        }
    }

    /// The message a timeline event calls for, if any. Internal events (notes, actions,
    /// evidence, node set changes, reminders to people) call for none: messages go outside.
    pub fn for_event(event: &TimelineEvent) -> Option<MessageKind> {
        let is = |t: EventType| event.is(t);
        if is(EventType::Opened) {
            Some(MessageKind::Alert)
        } else if is(EventType::Escalated) {
            // a step a silence held back pages nobody
            (event.data["paged"] != false).then_some(MessageKind::Page)
        } else if is(EventType::SeverityRaised) || is(EventType::SeverityChanged) {
            Some(MessageKind::Severity)
        } else if is(EventType::PhaseChanged) && event.data["to_phase"] == "resolved" {
            // a person resolved it: the resolution notice, as when the engine does
            Some(MessageKind::Resolved)
        } else if is(EventType::Acknowledged)
            || is(EventType::PhaseChanged)
            || is(EventType::StatusUpdate)
            || is(EventType::ConditionCleared)
            || is(EventType::Recurred)
        {
            Some(MessageKind::Update)
        } else if is(EventType::Resolved) {
            Some(MessageKind::Resolved)
        } else if is(EventType::ReviewScheduled) || is(EventType::ActionItemOverdue) {
            // the review notice, and the daily reminder of an overdue action item of it
            Some(MessageKind::Review)
        } else {
            None
        }
    }
}

impl std::str::FromStr for MessageKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown message kind {s:?}"))
    }
}

/// What one outbox row asks to send: a message about `incident` (as it was when `event`
/// was written) to `channel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub kind: MessageKind,
    pub channel: String,
    pub incident: Incident,
    pub event: TimelineEvent,
    /// The timeline event's id in the store.
    pub event_id: i64,
    /// Unique per incident, event and channel: receivers that take one (the webhook's
    /// `Idempotency-Key` header) drop a repeat.
    pub idempotency_key: String,
    /// The network name (MainNet, TestNet, or a private network's magic), when known.
    pub network: Option<String>,
    /// A link to the incident, when `notify.public_url` is set.
    pub link: Option<String>,
}

impl Notification {
    /// The idempotency key of incident `incident`, event `event`, channel `channel`.
    pub fn key(incident: i64, event: i64, channel: &str) -> String {
        format!("neo-ir-{incident}-{event}-{channel}")
    }

    /// PagerDuty's `dedup_key`: stable for the incident, so trigger, acknowledge and resolve
    /// all act on one PagerDuty incident.
    pub fn dedup_key(&self) -> String {
        format!("neo-ir-incident-{}", self.incident.id)
    }

    /// The Slack channel name the playbook suggests for the incident:
    /// `#incident-YYYY-MM-DD-<kind>`.
    pub fn channel_suggestion(&self) -> String {
        let day = self.incident.opened_at.strftime("%Y-%m-%d");
        format!(
            "#incident-{day}-{}",
            self.incident.kind.as_str().replace('_', "-")
        )
    }
}

/// A message rendered for a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    /// One line: "[P1] INCIDENT ALERT: consensus_failure ...".
    pub title: String,
    /// The body, as plain text with light Markdown (bold with `**`), in the playbook's shape.
    pub text: String,
}

/// The notifications `event` (id `event_id`) of `incident` calls for: one per channel of
/// the first route that matches the incident (none when the event is internal or no route
/// matches).
pub fn route(
    incident: &Incident,
    event: &TimelineEvent,
    event_id: i64,
    settings: &NotifySettings,
    network: Option<&str>,
) -> Vec<Notification> {
    let Some(kind) = MessageKind::for_event(event) else {
        return Vec::new();
    };
    let Some(route) = settings.route_for(incident) else {
        return Vec::new();
    };
    route
        .channels
        .iter()
        .map(|channel| Notification {
            kind,
            channel: channel.clone(),
            incident: incident.clone(),
            event: event.clone(),
            event_id,
            idempotency_key: Notification::key(incident.id, event_id, channel),
            network: network.map(str::to_string),
            link: settings
                .public_url
                .as_ref()
                .map(|u| format!("{u}/api/v1/incidents/{}", incident.id)),
        })
        .collect()
}

/// The same message for the route's fallback channel number `index`, if there is one.
pub fn fallback(n: &Notification, settings: &NotifySettings, index: usize) -> Option<Notification> {
    let channel = settings.route_for(&n.incident)?.fallback.get(index)?;
    Some(Notification {
        channel: channel.clone(),
        idempotency_key: Notification::key(n.incident.id, n.event_id, channel),
        ..n.clone()
    })
}

/// The network name for a `getversion` magic: MainNet 860833102, TestNet (N3T5) 894710606.
pub fn network_name(magic: u32) -> String {
    match magic {
        860_833_102 => "MainNet".to_string(),
        894_710_606 => "TestNet".to_string(),
        other => format!("private network {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_kinds() {
        assert_eq!(network_name(860833102), "MainNet");
        assert_eq!(network_name(894710606), "TestNet");
        assert_eq!(network_name(5), "private network 5");
        for k in ChannelKind::ALL {
            assert_eq!(k.as_str().parse::<ChannelKind>().unwrap(), k);
        }
        assert!("fax".parse::<ChannelKind>().is_err());
    }

    #[test]
    fn which_events_are_messages() {
        let at = jiff::Timestamp::UNIX_EPOCH;
        let e =
            |t: EventType, data: serde_json::Value| TimelineEvent::new(at, t, String::new(), data);
        let kind = |t, data| MessageKind::for_event(&e(t, data));
        use serde_json::json;
        assert_eq!(kind(EventType::Opened, json!({})), Some(MessageKind::Alert));
        assert_eq!(
            kind(EventType::Escalated, json!({"paged": true})),
            Some(MessageKind::Page)
        );
        assert_eq!(
            kind(EventType::Escalated, json!({"paged": false})),
            None,
            "silenced"
        );
        assert_eq!(
            kind(EventType::PhaseChanged, json!({"to_phase": "resolved"})),
            Some(MessageKind::Resolved),
            "a person resolving sends the resolution notice"
        );
        assert_eq!(
            kind(EventType::PhaseChanged, json!({"to_phase": "mitigating"})),
            Some(MessageKind::Update)
        );
        assert_eq!(
            kind(EventType::StatusUpdate, json!({})),
            Some(MessageKind::Update)
        );
        assert_eq!(
            kind(EventType::Resolved, json!({})),
            Some(MessageKind::Resolved)
        );
        for internal in [
            EventType::Note,
            EventType::Action,
            EventType::NodesChanged,
            EventType::UpdateDue,
            EventType::NotificationFailed,
        ] {
            assert_eq!(kind(internal, json!({})), None, "{internal:?}");
        }
    }
}
