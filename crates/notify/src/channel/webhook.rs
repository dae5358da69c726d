//! The generic JSON webhook, signed with HMAC-SHA256 when a secret is set.

use hmac::{Hmac, Mac};
use reqwest::Url;
use serde_json::json;
use sha2::Sha256;

use super::http::{post_json, to_body};
use super::{Channel, Delivered, SendError};
use neo_ir_core::notify::{Notification, Rendered};

/// `sha256=<hex HMAC-SHA256(key, body)>`: the `X-Neo-IR-Signature` header's value.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub(super) async fn send(
    ch: &Channel,
    url: &Url,
    n: &Notification,
    r: &Rendered,
) -> Result<Delivered, SendError> {
    let body = to_body(&json!({
        "kind": n.kind,
        "title": r.title,
        "text": r.text,
        "idempotency_key": n.idempotency_key,
        "incident": n.incident,
        "event": n.event,
        "network": n.network,
        "link": n.link,
        "channel_suggestion": n.channel_suggestion(),
    }))?;
    let mut headers = vec![
        ("Idempotency-Key", n.idempotency_key.clone()),
        ("X-Neo-IR-Event", n.kind.as_str().to_string()),
    ];
    if let Some(key) = &ch.secret {
        headers.push(("X-Neo-IR-Signature", signature(key.as_bytes(), &body)));
    }
    let reply = post_json(ch, url, body, &headers).await?;
    if reply.status.is_success() {
        Ok(Delivered {
            status: reply.status.as_u16(),
            detail: reply.excerpt().chars().take(100).collect(),
        })
    } else {
        Err(reply.error(None))
    }
}
