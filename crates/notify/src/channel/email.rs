//! Email over SMTP (lettre), one connection per message.

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::SendError;
use super::{Delivered, Notification, Rendered};
use neo_ir_core::notify::{EmailSettings, EmailTls};

pub(super) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Mailer {
    pub fn new(
        s: &EmailSettings,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<Mailer, String> {
        if s.smtp_host.trim().is_empty() {
            return Err("email needs an smtp_host".into());
        }
        let from: Mailbox = s
            .from
            .parse()
            .map_err(|e| format!("email `from` {:?} is not an address: {e}", s.from))?;
        if s.to.is_empty() {
            return Err("email needs at least one `to` address".into());
        }
        let to =
            s.to.iter()
                .map(|t| {
                    t.parse::<Mailbox>()
                        .map_err(|e| format!("email `to` {t:?} is not an address: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
        let host = s.smtp_host.trim();
        let builder = match s.tls {
            EmailTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| format!("email smtp_host {host:?}: {e}"))?,
            EmailTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| format!("email smtp_host {host:?}: {e}"))?,
            EmailTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        let mut builder = builder.port(s.smtp_port).timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&s.username, password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            to,
        })
    }

    pub async fn send(&self, n: &Notification, r: &Rendered) -> Result<Delivered, SendError> {
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(r.title.replace(['\r', '\n'], " "))
            .header(ContentType::TEXT_PLAIN)
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Neo-IR-Idempotency-Key"),
                n.idempotency_key.clone(),
            ));
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .body(r.text.clone())
            .map_err(|e| SendError::permanent(format!("cannot build the email: {e}")))?;
        match self.transport.send(message).await {
            Ok(resp) => Ok(Delivered {
                status: u16::from(resp.code()),
                detail: super::truncate_chars(
                    &format!(
                        "{} {}",
                        resp.code(),
                        resp.message().next().unwrap_or_default()
                    ),
                    200,
                ),
            }),
            Err(e) => Err(classify(&e)),
        }
    }
}

fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let mut reason = format!("SMTP: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = s.source();
    }
    let reason = super::truncate_chars(&reason, 500);
    if e.is_permanent() || e.is_client() {
        SendError::permanent(reason)
    } else {
        // 4xx replies, timeouts, connection and TLS failures, broken replies
        SendError::retry(reason)
    }
}
