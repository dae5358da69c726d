//! Microsoft Teams workflow webhooks: one Adaptive Card with the title and the text.

use reqwest::Url;
use serde_json::json;

use super::http::{post_json, to_body};
use super::{truncate_chars, Channel, Delivered, SendError};
use neo_ir_core::notify::Rendered;

/// Teams takes messages up to about 28 KB; the text is kept well below.
const MAX_TEXT: usize = 20_000;

pub(super) async fn send(ch: &Channel, url: &Url, r: &Rendered) -> Result<Delivered, SendError> {
    let body = to_body(&json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    { "type": "TextBlock", "text": r.title, "weight": "Bolder", "wrap": true },
                    { "type": "TextBlock", "text": truncate_chars(&r.text, MAX_TEXT), "wrap": true },
                ],
            },
        }],
    }))?;
    let reply = post_json(ch, url, body, &[]).await?;
    match reply.status.as_u16() {
        200 | 202 => Ok(Delivered {
            status: reply.status.as_u16(),
            detail: "accepted".into(),
        }),
        _ => Err(reply.error(None)),
    }
}
