//! Sending a rendered message to one service, and classifying the outcome.
//!
//! A [`Channel`] is built once from its configuration and its secret's value, and sends one
//! message per [`Channel::send`] call. The outcome tells the dispatcher what to do next:
//! [`Delivered`], [`SendError::Retry`] (with the wait the service asked for, when it did) or
//! [`SendError::Permanent`] (give up on this channel, go to the fallback).
//!
//! Every send has a hard timeout (the channel's `timeout`, the whole exchange including the
//! response body), reads at most [`BODY_LIMIT`] bytes of a response, and never shows the
//! secret: not in `Debug`, not in errors, not in logs. Slack, Discord and Teams take their
//! webhook URL as the secret and Telegram puts its token in the URL path, so errors are
//! scrubbed of the URL's secret parts too.

mod discord;
mod email;
mod http;
mod pagerduty;
mod slack;
mod teams;
mod telegram;
mod webhook;

use std::fmt;
use std::time::Duration;

use neo_ir_core::config::SecretSource;
use neo_ir_core::notify::{ChannelConfig, ChannelKind, Notification, Rendered};

/// The most of a response body a send reads.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A channel's configuration cannot be used: which channel, and what is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("notify channel {channel:?} ({kind}): {problem}")]
pub struct ChannelError {
    pub channel: String,
    pub kind: &'static str,
    pub problem: String,
}

/// A message the service accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The HTTP status, or the SMTP reply code (250).
    pub status: u16,
    /// Short: PagerDuty's `dedup_key`, Telegram's or Discord's message id, the SMTP reply.
    pub detail: String,
}

/// A message the service did not accept.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: a timeout, a connection error, 429, 5xx, an SMTP 4xx reply. `after`
    /// is the wait the service asked for (`Retry-After`, Telegram's `retry_after`).
    #[error("{reason}")]
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Retrying will not help: another 4xx, an SMTP 5xx reply, a request that cannot be made.
    #[error("{reason}")]
    Permanent { reason: String },
}

impl SendError {
    pub fn is_retry(&self) -> bool {
        matches!(self, SendError::Retry { .. })
    }

    pub fn reason(&self) -> &str {
        match self {
            SendError::Retry { reason, .. } | SendError::Permanent { reason } => reason,
        }
    }

    pub(crate) fn retry(reason: impl Into<String>) -> Self {
        SendError::Retry {
            reason: reason.into(),
            after: None,
        }
    }

    pub(crate) fn permanent(reason: impl Into<String>) -> Self {
        SendError::Permanent {
            reason: reason.into(),
        }
    }

    fn map_reason(self, f: impl Fn(&str) -> String) -> Self {
        match self {
            SendError::Retry { reason, after } => SendError::Retry {
                reason: f(&reason),
                after,
            },
            SendError::Permanent { reason } => SendError::Permanent { reason: f(&reason) },
        }
    }
}

/// Where a channel sends to, resolved once.
enum Target {
    /// The URL to POST to (it may hold the secret: Slack, Discord, Teams, Telegram).
    Http(reqwest::Url),
    Email(Box<email::Mailer>),
}

/// One configured channel, ready to send.
pub struct Channel {
    config: ChannelConfig,
    secret: Option<String>,
    /// Strings no error may show (the secret and the secret parts of its URL), longest first.
    redact: Vec<String>,
    http: reqwest::Client,
    target: Target,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.config.name)
            .field("kind", &self.config.kind.as_str())
            .field("url", &self.config.url)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("chat_id", &self.config.chat_id)
            .field("timeout", &self.config.timeout)
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// Builds a channel from its configuration and its secret's value (already read, see
    /// [`read_secret`]). Fails, naming the channel and what is missing, when a piece the
    /// service needs is missing: Slack, Discord and Teams need the secret (the webhook URL),
    /// Telegram the secret (the bot token) and `chat_id`, PagerDuty the secret (the routing
    /// key), the webhook `url`, email its settings (and the secret, the password, when a
    /// username is set).
    pub fn new(
        config: ChannelConfig,
        secret: Option<String>,
        http: reqwest::Client,
    ) -> Result<Channel, ChannelError> {
        let secret = secret
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let err = |problem: String| ChannelError {
            channel: config.name.clone(),
            kind: config.kind.as_str(),
            problem,
        };
        let need_secret = |what: &str| -> Result<&str, ChannelError> {
            secret.as_deref().ok_or_else(|| {
                err(format!(
                    "needs a secret ({what}); none is set or it is empty"
                ))
            })
        };
        let mut redact: Vec<String> = secret.iter().cloned().collect();
        let target = match config.kind {
            ChannelKind::Webhook => {
                if config.secret.is_some() && secret.is_none() {
                    return Err(err(
                        "its secret (the HMAC key) is configured but its value is missing or empty"
                            .into(),
                    ));
                }
                let url = config
                    .url
                    .as_deref()
                    .ok_or_else(|| err("needs a `url` to POST to".into()))?;
                Target::Http(http::parse_url(url).map_err(|e| err(format!("`url`: {e}")))?)
            }
            ChannelKind::Slack | ChannelKind::Teams | ChannelKind::Discord => {
                let s = need_secret("the webhook URL")?;
                let mut url = http::parse_url(s)
                    .map_err(|e| err(format!("the secret is not a usable webhook URL: {e}")))?;
                redact.extend(http::secret_url_parts(&url));
                if config.kind == ChannelKind::Discord {
                    url.query_pairs_mut().append_pair("wait", "true");
                }
                Target::Http(url)
            }
            ChannelKind::Telegram => {
                let token = need_secret("the bot token")?;
                if config
                    .chat_id
                    .as_deref()
                    .is_none_or(|c| c.trim().is_empty())
                {
                    return Err(err("needs a `chat_id` to send to".into()));
                }
                if token.contains(['/', '?', '#', ' ']) {
                    return Err(err("the secret is not a bot token".into()));
                }
                if let Some((_, key)) = token.split_once(':') {
                    if key.len() >= 8 {
                        redact.push(key.to_string());
                    }
                }
                let base = config.url.as_deref().unwrap_or(telegram::API);
                http::parse_url(base).map_err(|e| err(format!("`url`: {e}")))?;
                let url = format!("{}/bot{token}/sendMessage", base.trim_end_matches('/'));
                let url = http::parse_url(&url)
                    .map_err(|_| err("the bot token does not make a valid URL".into()))?;
                redact.extend(http::secret_url_parts(&url));
                Target::Http(url)
            }
            ChannelKind::PagerDuty => {
                need_secret("the routing key")?;
                let base = config.url.as_deref().unwrap_or(pagerduty::API);
                http::parse_url(base).map_err(|e| err(format!("`url`: {e}")))?;
                let url = format!("{}/v2/enqueue", base.trim_end_matches('/'));
                Target::Http(http::parse_url(&url).map_err(|e| err(format!("`url`: {e}")))?)
            }
            ChannelKind::Email => {
                let settings = config
                    .email
                    .as_ref()
                    .ok_or_else(|| err("needs email settings (smtp_host, from, to)".into()))?;
                let password = match &settings.username {
                    Some(_) => Some(need_secret("the SMTP password")?),
                    None => None,
                };
                let mailer = email::Mailer::new(settings, password, config.timeout).map_err(err)?;
                Target::Email(Box::new(mailer))
            }
        };
        redact.retain(|s| !s.is_empty());
        redact.sort_by_key(|s| std::cmp::Reverse(s.len()));
        redact.dedup();
        Ok(Channel {
            config,
            secret,
            redact,
            http,
            target,
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn kind(&self) -> ChannelKind {
        self.config.kind
    }

    pub fn config(&self) -> &ChannelConfig {
        &self.config
    }

    /// Sends one message, within the channel's timeout (the whole exchange).
    pub async fn send(&self, n: &Notification, r: &Rendered) -> Result<Delivered, SendError> {
        let timeout = self.config.timeout;
        let outcome = match tokio::time::timeout(timeout, self.send_inner(n, r)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(SendError::retry(format!(
                "no answer within the timeout ({})",
                http::show_duration(timeout)
            ))),
        };
        let outcome = outcome.map_err(|e| e.map_reason(|s| self.scrub(s)));
        match &outcome {
            Ok(d) => tracing::debug!(
                channel = %self.config.name,
                kind = self.config.kind.as_str(),
                status = d.status,
                detail = %d.detail,
                "notification delivered"
            ),
            Err(e) => tracing::debug!(
                channel = %self.config.name,
                kind = self.config.kind.as_str(),
                retry = e.is_retry(),
                error = %e,
                "notification not delivered"
            ),
        }
        outcome
    }

    async fn send_inner(&self, n: &Notification, r: &Rendered) -> Result<Delivered, SendError> {
        let url = match &self.target {
            Target::Email(mailer) => return mailer.send(n, r).await,
            Target::Http(url) => url,
        };
        match self.config.kind {
            ChannelKind::Webhook => webhook::send(self, url, n, r).await,
            ChannelKind::Slack => slack::send(self, url, r).await,
            ChannelKind::Discord => discord::send(self, url, r).await,
            ChannelKind::Telegram => telegram::send(self, url, r).await,
            ChannelKind::Teams => teams::send(self, url, r).await,
            ChannelKind::PagerDuty => pagerduty::send(self, url, n, r).await,
            ChannelKind::Email => Err(SendError::permanent("email channel without a mailer")),
        }
    }

    /// Removes every secret part from `s`.
    fn scrub(&self, s: &str) -> String {
        let mut out = s.to_string();
        for secret in &self.redact {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "[redacted]");
            }
        }
        out
    }
}

/// Reads a secret by reference: an environment variable or a file, trimmed. Errors name the
/// variable or the file, never the value.
pub fn read_secret(source: &SecretSource) -> Result<String, String> {
    match source {
        SecretSource::Env(name) => match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            Ok(_) => Err(format!("environment variable {name} is empty")),
            Err(std::env::VarError::NotPresent) => {
                Err(format!("environment variable {name} is not set"))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("environment variable {name} is not valid UTF-8"))
            }
        },
        SecretSource::File(path) => match std::fs::read_to_string(path) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            Ok(_) => Err(format!("secret file {} is empty", path.display())),
            Err(e) => Err(format!("cannot read secret file {}: {e}", path.display())),
        },
    }
}

/// At most `max` characters of `s`, ending with "…" when cut.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// At most `max` UTF-16 code units of `s` (how Discord and Telegram count), ending with "…"
/// when cut.
pub(crate) fn truncate_utf16(s: &str, max: usize) -> String {
    if s.encode_utf16().count() <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        if used + c.len_utf16() > max.saturating_sub(1) {
            break;
        }
        used += c.len_utf16();
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_is_char_safe() {
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcd", 3), "ab…");
        let s = "é".repeat(10);
        assert_eq!(truncate_chars(&s, 5).chars().count(), 5);
        let emoji = "😀".repeat(10);
        let t = truncate_utf16(&emoji, 7);
        assert!(t.encode_utf16().count() <= 7);
        assert!(t.ends_with('…'));
        assert_eq!(truncate_utf16("short", 2000), "short");
    }
}
