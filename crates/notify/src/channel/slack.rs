//! Slack incoming webhooks: `{"text": ...}` in Slack's mrkdwn.

use reqwest::Url;
use serde_json::json;

use super::http::{post_json, to_body};
use super::{truncate_chars, Channel, Delivered, SendError};
use neo_ir_core::notify::Rendered;

/// Slack truncates messages longer than this.
const MAX_TEXT: usize = 40_000;

/// Light Markdown to Slack mrkdwn: `&`, `<`, `>` escaped (Slack's control characters),
/// `**bold**` to `*bold*`.
pub fn mrkdwn(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace("**", "*")
}

pub(super) async fn send(ch: &Channel, url: &Url, r: &Rendered) -> Result<Delivered, SendError> {
    let text = truncate_chars(&mrkdwn(&format!("{}\n{}", r.title, r.text)), MAX_TEXT);
    let body = to_body(&json!({ "text": text }))?;
    let reply = post_json(ch, url, body, &[]).await?;
    if reply.status.as_u16() == 200 {
        if reply.text().trim() == "ok" {
            return Ok(Delivered {
                status: 200,
                detail: "ok".into(),
            });
        }
        return Err(SendError::permanent(format!(
            "Slack answered 200 without \"ok\": {}",
            reply.excerpt()
        )));
    }
    Err(reply.error(None))
}
