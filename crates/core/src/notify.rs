//! Notifications as data: the channels an operator configures, the routes from incidents to
//! channels, and the notification an outbox row holds (what happened, to whom). Rendering
//! and sending live in `crates/notify`; storing and dispatching in `crates/store` and
//! `crates/watch`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::SecretSource;
use crate::incident::{EventType, Incident, IncidentKind, Severity, TimelineEvent};
use crate::kpis::is_drill;

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
    /// `drills = true`: the channel takes drill incidents' messages (see [`route`]). It still
    /// gets real incidents when a route names it; one no route names gets drills only.
    pub drills: bool,
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

    /// True when `name` is a channel marked `drills = true`.
    fn takes_drills(&self, name: &str) -> bool {
        self.channel(name).is_some_and(|c| c.drills)
    }

    /// The channels that get `incident`'s messages.
    ///
    /// A real incident: every channel of the first matching route (marked for drills or not).
    /// A drill incident ([`is_drill`]): only channels marked `drills = true`, so a drill never
    /// pages anyone for real. Those of the matching route when it names some; otherwise
    /// (the route names none, or no route matches) every channel marked for drills, in the
    /// configured order. None when no channel is marked: the drill sends nothing
    /// ([`drill_unsent`] says why).
    pub fn recipients(&self, incident: &Incident) -> Vec<&str> {
        let route = self.route_for(incident);
        if !is_drill(incident) {
            return route.map_or_else(Vec::new, |r| {
                r.channels.iter().map(String::as_str).collect()
            });
        }
        let marked: Vec<&str> = route
            .map(|r| {
                r.channels
                    .iter()
                    .map(String::as_str)
                    .filter(|c| self.takes_drills(c))
                    .collect()
            })
            .unwrap_or_default();
        if !marked.is_empty() {
            return marked;
        }
        self.channels
            .iter()
            .filter(|c| c.drills)
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The fallback channels for `incident`'s messages, in order: the matching route's
    /// `fallback`; for a drill, only those marked `drills = true`.
    pub fn fallbacks(&self, incident: &Incident) -> Vec<&str> {
        let drill = is_drill(incident);
        self.route_for(incident).map_or_else(Vec::new, |r| {
            r.fallback
                .iter()
                .map(String::as_str)
                .filter(|c| !drill || self.takes_drills(c))
                .collect()
        })
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
/// [`NotifySettings::recipients`] (the first matching route's; for a drill, the channels
/// marked for drills). None when the event is internal or nobody is to get it.
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
    settings
        .recipients(incident)
        .into_iter()
        .map(|channel| Notification {
            kind,
            channel: channel.to_string(),
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

/// Why a drill's messages go nowhere, said once per drill (on its `opened` event): no channel
/// is marked `drills = true`. `None` for a real incident, another event, or when a channel
/// takes drills. The watcher logs it as it routes the event.
pub fn drill_unsent(
    incident: &Incident,
    event: &TimelineEvent,
    settings: &NotifySettings,
) -> Option<String> {
    let unsent = is_drill(incident)
        && event.is(EventType::Opened)
        && !settings.channels.iter().any(|c| c.drills);
    unsent.then(|| {
        format!(
            "drill incident #{} sends no message: no [[notify.channels]] has drills = true \
             (drills never go to channels not marked for them)",
            incident.id
        )
    })
}

/// The same message for `n`'s incident's fallback channel number `index`
/// ([`NotifySettings::fallbacks`]), if there is one.
pub fn fallback(n: &Notification, settings: &NotifySettings, index: usize) -> Option<Notification> {
    let channel = *settings.fallbacks(&n.incident).get(index)?;
    Some(Notification {
        channel: channel.to_string(),
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

    fn channel(name: &str, drills: bool) -> ChannelConfig {
        ChannelConfig {
            name: name.into(),
            kind: ChannelKind::Webhook,
            url: Some(format!("http://127.0.0.1:1/{name}")),
            secret: None,
            chat_id: None,
            email: None,
            timeout: Duration::from_secs(1),
            per_minute: 30,
            templates: None,
            drills,
        }
    }

    fn incident(key: &str, severity: Severity) -> Incident {
        let finding = crate::incident::Finding {
            key: key.into(),
            kind: IncidentKind::NodeDown,
            severity,
            nodes: vec!["rpc-1".into()],
            summary: "rpc-1 is down".into(),
            evidence: serde_json::json!({"error_kind": "refused"}),
        };
        let mut i = crate::lifecycle::open(
            &finding,
            jiff::Timestamp::UNIX_EPOCH,
            &crate::oncall::ResponseConfig::default(),
        );
        i.id = 9;
        i
    }

    fn opened() -> TimelineEvent {
        TimelineEvent::new(
            jiff::Timestamp::UNIX_EPOCH,
            EventType::Opened,
            "opened".into(),
            serde_json::json!({}),
        )
    }

    /// pager (real), ops (real and drills, named by the P1 route), drill-room (drills only,
    /// named by no route), mail (fallback, real), drill-mail (fallback, drills).
    fn settings() -> NotifySettings {
        NotifySettings {
            channels: vec![
                channel("pager", false),
                channel("ops", true),
                channel("drill-room", true),
                channel("mail", false),
                channel("drill-mail", true),
            ],
            routes: vec![
                Route {
                    severities: vec![Severity::P1],
                    kinds: vec![],
                    channels: vec!["pager".into(), "ops".into()],
                    fallback: vec!["mail".into(), "drill-mail".into()],
                },
                Route {
                    severities: vec![Severity::P2],
                    kinds: vec![],
                    channels: vec!["pager".into()],
                    fallback: vec!["mail".into()],
                },
            ],
            ..Default::default()
        }
    }

    fn sent_to(i: &Incident, s: &NotifySettings) -> Vec<String> {
        route(i, &opened(), 3, s, None)
            .into_iter()
            .map(|n| n.channel)
            .collect()
    }

    #[test]
    fn real_incidents_go_to_the_route_marked_or_not() {
        let s = settings();
        let real = incident("node_down:rpc-1", Severity::P1);
        // ops is marked for drills and still gets real incidents: the route names it
        assert_eq!(sent_to(&real, &s), ["pager", "ops"]);
        // drill-room is named by no route: real incidents never reach it
        let p2 = incident("node_down:rpc-1", Severity::P2);
        assert_eq!(sent_to(&p2, &s), ["pager"]);
        assert_eq!(
            sent_to(&incident("x", Severity::P3), &s),
            Vec::<String>::new()
        );
        let n = &route(&real, &opened(), 3, &s, None)[1];
        assert_eq!(n.idempotency_key, "neo-ir-9-3-ops");
        assert_eq!(fallback(n, &s, 0).unwrap().channel, "mail");
        assert_eq!(fallback(n, &s, 1).unwrap().channel, "drill-mail");
        assert!(fallback(n, &s, 2).is_none());
        assert_eq!(
            drill_unsent(&real, &opened(), &NotifySettings::default()),
            None
        );
    }

    #[test]
    fn drills_go_only_to_channels_marked_for_drills() {
        let s = settings();
        // the P1 route names ops, marked: only ops, never the pager
        let drill = incident("drill:node_down:rpc-1", Severity::P1);
        assert_eq!(sent_to(&drill, &s), ["ops"]);
        let n = &route(&drill, &opened(), 3, &s, None)[0];
        // its fallback skips the real mail channel
        let next = fallback(n, &s, 0).unwrap();
        assert_eq!(
            (next.channel.as_str(), next.idempotency_key.as_str()),
            ("drill-mail", "neo-ir-9-3-drill-mail")
        );
        assert!(fallback(n, &s, 1).is_none());

        // the P2 route names no marked channel: every channel marked for drills instead
        let p2 = incident("drill:node_down:rpc-1", Severity::P2);
        assert_eq!(sent_to(&p2, &s), ["ops", "drill-room", "drill-mail"]);
        assert!(s.fallbacks(&p2).is_empty());
        // no route matches (P3): the same
        let p3 = incident("drill:node_down:rpc-1", Severity::P3);
        assert_eq!(sent_to(&p3, &s), ["ops", "drill-room", "drill-mail"]);

        // marked by its evidence rather than its key
        let mut by_evidence = incident("node_down:rpc-1", Severity::P1);
        by_evidence.evidence["drill"] = serde_json::json!(true);
        assert_eq!(sent_to(&by_evidence, &s), ["ops"]);
        assert_eq!(
            drill_unsent(&drill, &opened(), &s),
            None,
            "a channel takes it"
        );
    }

    #[test]
    fn a_drill_with_no_channel_marked_sends_nothing_and_says_why_once() {
        let mut s = settings();
        for c in &mut s.channels {
            c.drills = false;
        }
        let drill = incident("drill:node_down:rpc-1", Severity::P1);
        assert!(route(&drill, &opened(), 3, &s, None).is_empty());
        let why = drill_unsent(&drill, &opened(), &s).unwrap();
        assert!(why.contains("#9") && why.contains("drills = true"), "{why}");
        // once: only on the opened event, not on its later messages
        let resolved = TimelineEvent::new(
            jiff::Timestamp::UNIX_EPOCH,
            EventType::Resolved,
            "resolved".into(),
            serde_json::json!({}),
        );
        assert!(route(&drill, &resolved, 4, &s, None).is_empty());
        assert_eq!(drill_unsent(&drill, &resolved, &s), None);
        // the real incident is unaffected
        assert_eq!(
            sent_to(&incident("node_down:rpc-1", Severity::P1), &s),
            ["pager", "ops"]
        );
    }
}
