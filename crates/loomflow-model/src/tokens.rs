//! Counting the input tokens of a request before sending it.
//!
//! [`Model::count_tokens`](crate::Model::count_tokens) answers with a
//! [`TokenCount`] that says how it was obtained ([`CountMethod`]): the
//! provider's own count endpoint (exact), a local tokenizer with the model's
//! encoding (exact for the text, approximate for the provider's framing of
//! tools and images), or the `chars / 4` [`estimate`] every model falls back
//! to. Callers that budget context windows should treat
//! [`CountMethod::Estimate`] as a rough figure.

use serde::Serialize;

use crate::message::{ContentPart, Message};
use crate::model::ModelRequest;

/// How a [`TokenCount`] was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CountMethod {
    /// The provider counted the request as it would be sent (Anthropic's
    /// `/v1/messages/count_tokens`): exact.
    Provider,
    /// A local tokenizer with the model's encoding (`o200k_base`,
    /// `cl100k_base`): exact for text; tool definitions and images are
    /// framed by the provider in ways it does not publish, so those parts
    /// are close, not exact.
    Tokenizer {
        /// The encoding's name.
        encoding: &'static str,
    },
    /// `chars / 4` over every text the request carries, plus a flat
    /// [`IMAGE_TOKENS`] per image: a rough figure for models with neither a
    /// count endpoint nor a known tokenizer.
    Estimate,
}

/// A request's input-token count and how it was obtained.
///
/// ```
/// use loomflow_model::tokens::{CountMethod, TokenCount};
///
/// let count = TokenCount::new(12, CountMethod::Estimate);
/// assert!(!count.is_exact());
/// assert_eq!(count.to_string(), "12 tokens (estimate: chars / 4)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct TokenCount {
    /// Input tokens the request would use.
    pub input_tokens: u64,
    /// How they were counted.
    #[serde(flatten)]
    pub method: CountMethod,
}

impl TokenCount {
    /// `input_tokens` counted by `method`.
    pub fn new(input_tokens: u64, method: CountMethod) -> Self {
        Self {
            input_tokens,
            method,
        }
    }

    /// Whether the provider itself counted (no approximation at all).
    pub fn is_exact(&self) -> bool {
        self.method == CountMethod::Provider
    }
}

impl std::fmt::Display for TokenCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} tokens (", self.input_tokens)?;
        match self.method {
            CountMethod::Provider => f.write_str("counted by the provider)"),
            CountMethod::Tokenizer { encoding } => write!(f, "tokenizer {encoding})"),
            CountMethod::Estimate => f.write_str("estimate: chars / 4)"),
        }
    }
}

/// What one image counts for in [`estimate`], and in tokenizer counts:
/// OpenAI's price of a low-detail image. Larger images at high detail cost
/// more; only a provider count is exact for them.
pub const IMAGE_TOKENS: u64 = 85;

/// One piece of a request, as [`pieces`] hands them out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Piece<'a> {
    /// A message starts (its role, for tokenizers that frame each message).
    Message(&'a Message),
    /// Text the model reads: message text, reasoning, tool names,
    /// descriptions, call arguments and schemas as JSON.
    Text(&'a str),
    /// An image.
    Image,
}

/// Every piece of `request` that costs input tokens, in order, handed to
/// `visit`: each message (then its text, reasoning, images and tool calls),
/// then each tool definition, then the output schema. Tokenizer-based
/// counters in provider crates walk the request with this, so every counter
/// sees the same parts.
pub fn pieces(request: &ModelRequest<'_>, mut visit: impl FnMut(Piece<'_>)) {
    // One buffer for every JSON value (arguments, schemas).
    let mut json = Vec::new();
    let mut visit_json = |value: &serde_json::Value, visit: &mut dyn FnMut(Piece<'_>)| {
        json.clear();
        if serde_json::to_writer(&mut json, value).is_ok()
            && let Ok(text) = std::str::from_utf8(&json)
        {
            visit(Piece::Text(text));
        }
    };
    for message in request.messages {
        visit(Piece::Message(message));
        for part in &message.content {
            match part {
                ContentPart::Text { text } | ContentPart::Thinking { text, .. } => {
                    visit(Piece::Text(text));
                }
                ContentPart::RedactedThinking { .. } => {}
                ContentPart::Image { .. } => visit(Piece::Image),
            }
        }
        if let Some(name) = &message.name {
            visit(Piece::Text(name));
        }
        for call in &message.tool_calls {
            visit(Piece::Text(&call.tool));
            visit_json(&call.args, &mut visit);
        }
    }
    for tool in request.tools {
        visit(Piece::Text(&tool.name));
        visit(Piece::Text(&tool.description));
        visit_json(&tool.input_schema, &mut visit);
    }
    if let Some(schema) = request.output_schema {
        visit_json(schema.schema(), &mut visit);
    }
}

/// The `chars / 4` estimate of `request` (rounded up), with
/// [`IMAGE_TOKENS`] per image: what [`Model::count_tokens`] answers when the
/// model knows no better.
///
/// ```
/// use loomflow_model::tokens::{estimate, CountMethod};
/// use loomflow_model::{Message, model::ModelRequest};
///
/// let messages = [Message::user("twelve chars")];
/// let count = estimate(&ModelRequest::new(&messages));
/// assert_eq!((count.input_tokens, count.method), (3, CountMethod::Estimate));
/// ```
///
/// [`Model::count_tokens`]: crate::Model::count_tokens
pub fn estimate(request: &ModelRequest<'_>) -> TokenCount {
    let mut chars = 0u64;
    let mut images = 0u64;
    pieces(request, |piece| match piece {
        Piece::Text(text) => chars += text.chars().count() as u64,
        Piece::Image => images += 1,
        Piece::Message(_) => {}
    });
    TokenCount::new(
        chars.div_ceil(4) + images * IMAGE_TOKENS,
        CountMethod::Estimate,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::message::{Image, ToolCall, ToolDef};
    use crate::output::OutputSchema;
    use serde_json::json;

    #[test]
    fn the_estimate_counts_every_part_the_request_sends() {
        let messages = [
            Message::system("abcd"),
            Message::user("abcdefgh").with_image(Image::Url {
                url: "https://example.com/a.png".into(),
            }),
            Message::assistant("", vec![ToolCall::new("get", json!({"k": 1}))]),
        ];
        let tools = [ToolDef {
            name: "get".into(),
            description: "abcd".into(),
            input_schema: json!({"type": "object"}),
            server: None,
            destructive: false,
            ends_turn: false,
        }];
        let schema = OutputSchema::of::<String>();
        let request = ModelRequest::new(&messages)
            .with_tools(&tools)
            .with_output_schema(Some(&schema));
        let mut seen = Vec::new();
        pieces(&request, |p| {
            seen.push(match p {
                Piece::Message(m) => format!("<{:?}>", m.role),
                Piece::Text(t) => t.to_owned(),
                Piece::Image => "[image]".to_owned(),
            });
        });
        assert_eq!(
            seen,
            [
                "<System>",
                "abcd",
                "<User>",
                "abcdefgh",
                "[image]",
                "<Assistant>",
                "get",
                r#"{"k":1}"#,
                "get",
                "abcd",
                r#"{"type":"object"}"#,
                &serde_json::to_string(schema.schema()).unwrap(),
            ]
        );
        let chars: usize = seen
            .iter()
            .filter(|s| !s.starts_with(['<', '[']))
            .map(|s| s.len())
            .sum();
        assert_eq!(
            estimate(&request).input_tokens,
            chars.div_ceil(4) as u64 + IMAGE_TOKENS
        );
    }

    #[test]
    fn counts_serialise_with_their_method() {
        let count = TokenCount::new(
            7,
            CountMethod::Tokenizer {
                encoding: "o200k_base",
            },
        );
        assert_eq!(
            serde_json::to_value(count).unwrap(),
            json!({"input_tokens": 7, "method": "tokenizer", "encoding": "o200k_base"})
        );
        assert_eq!(count.to_string(), "7 tokens (tokenizer o200k_base)");
    }
}
