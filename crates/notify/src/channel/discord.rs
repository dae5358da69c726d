//! Discord webhooks: `{"content": ...}` (at most 2000 characters), mentions disabled.

use reqwest::Url;
use serde_json::json;

use super::http::{post_json, to_body};
use super::{truncate_utf16, Channel, Delivered, SendError};
use neo_ir_core::notify::Rendered;

/// Discord's limit for `content`.
pub const MAX_CONTENT: usize = 2000;

pub(super) async fn send(ch: &Channel, url: &Url, r: &Rendered) -> Result<Delivered, SendError> {
    let content = truncate_utf16(&format!("**{}**\n{}", r.title, r.text), MAX_CONTENT);
    let body = to_body(&json!({
        "content": content,
        "allowed_mentions": { "parse": [] },
    }))?;
    let reply = post_json(ch, url, body, &[]).await?;
    match reply.status.as_u16() {
        200 | 204 => {
            let id = reply
                .json()
                .and_then(|v| v["id"].as_str().map(|id| format!("message {id}")));
            Ok(Delivered {
                status: reply.status.as_u16(),
                detail: id.unwrap_or_else(|| "sent".into()),
            })
        }
        _ => {
            let what = reply.json().and_then(|v| {
                let msg = v["message"].as_str()?.to_string();
                Some(match v["code"].as_i64() {
                    Some(code) => format!("{msg} (code {code})"),
                    None => msg,
                })
            });
            Err(reply.error(what))
        }
    }
}
