//! Telegram Bot API `sendMessage`, as plain text.

use std::time::Duration;

use reqwest::Url;
use serde_json::json;

use super::http::{post_json, to_body};
use super::{truncate_utf16, Channel, Delivered, SendError};
use neo_ir_core::notify::Rendered;

pub(super) const API: &str = "https://api.telegram.org";

/// Telegram's limit for a message's text.
pub const MAX_TEXT: usize = 4096;

pub(super) async fn send(ch: &Channel, url: &Url, r: &Rendered) -> Result<Delivered, SendError> {
    let chat_id = ch.config.chat_id.as_deref().unwrap_or_default().trim();
    // A numeric id goes as a number, `@channelname` as a string.
    let chat_id = match chat_id.parse::<i64>() {
        Ok(id) => json!(id),
        Err(_) => json!(chat_id),
    };
    // Plain text (no parse_mode): the `**` of bold would show as is.
    let text = format!("{}\n\n{}", r.title, r.text).replace("**", "");
    let body = to_body(&json!({
        "chat_id": chat_id,
        "text": truncate_utf16(&text, MAX_TEXT),
        "disable_web_page_preview": true,
    }))?;
    let reply = post_json(ch, url, body, &[]).await?;
    let v = reply.json().unwrap_or_default();
    if reply.status.is_success() && v["ok"] == true {
        let detail = match v["result"]["message_id"].as_i64() {
            Some(id) => format!("message_id {id}"),
            None => "sent".into(),
        };
        return Ok(Delivered {
            status: reply.status.as_u16(),
            detail,
        });
    }
    let code = v["error_code"].as_u64();
    let what = v["description"].as_str().map(|d| match code {
        Some(c) => format!("Telegram error {c}: {d}"),
        None => format!("Telegram: {d}"),
    });
    let mut err = reply.error(what);
    if let SendError::Retry { after, .. } = &mut err {
        if let Some(s) = v["parameters"]["retry_after"].as_u64() {
            *after = Some(Duration::from_secs(s));
        }
    } else if reply.status.is_success() {
        err = SendError::retry(format!(
            "Telegram answered {} without ok: {}",
            reply.status.as_u16(),
            reply.excerpt()
        ));
    }
    Err(err)
}
