//! Chat messages, tool calls and results, token usage.

use std::ops::AddAssign;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who wrote a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions and injected context.
    System,
    /// The person (or calling program).
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

/// An image given to the model, by URL or inline base64 data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Image {
    /// A URL the provider fetches (`https://…` or a `data:` URL).
    Url {
        /// The URL.
        url: String,
    },
    /// Inline bytes, base64-encoded.
    Base64 {
        /// MIME type such as `image/png`.
        media_type: String,
        /// Base64 data.
        data: String,
    },
}

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// An image.
    Image {
        /// The image.
        image: Image,
    },
    /// The model's reasoning from an earlier turn, kept on the assistant
    /// message so providers that require it (Anthropic, with thinking on and
    /// tools in play) get it back verbatim. Never shown as output text.
    Thinking {
        /// The reasoning text.
        text: String,
        /// The provider's signature over it, required for replay.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// Reasoning the provider returned encrypted; replayed verbatim.
    RedactedThinking {
        /// The opaque payload.
        data: String,
    },
}

/// A call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Provider-assigned (or generated `tcall_…`) id, echoed in the result.
    pub id: String,
    /// The tool's name.
    pub tool: String,
    /// The arguments, normally a JSON object.
    pub args: serde_json::Value,
    /// Stamped by the tool gate from the tool's definition; fail-closed.
    #[serde(default)]
    pub destructive: bool,
}

impl ToolCall {
    /// A call assembled from a stream: `args` is the JSON text the provider
    /// streamed. Empty text is `{}`; text that does not parse reaches the
    /// tool as a string, whose argument check then tells the model what was
    /// wrong (never a failed stream). An empty `id` gets a fresh `call_…` one.
    ///
    /// ```
    /// use loomflow_model::ToolCall;
    /// let c = ToolCall::streamed("call_1".into(), "add".into(), "{\"a\": 1}".into());
    /// assert_eq!(c.args["a"], 1);
    /// let bad = ToolCall::streamed(String::new(), "add".into(), "{\"a\": ".into());
    /// assert_eq!(bad.args, "{\"a\": ");
    /// assert!(bad.id.starts_with("call_"));
    /// ```
    pub fn streamed(id: String, tool: String, args: String) -> Self {
        let args = if args.trim().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_json::from_str(&args).unwrap_or(serde_json::Value::String(args))
        };
        Self {
            id: if id.is_empty() {
                crate::new_id("call")
            } else {
                id
            },
            tool,
            args,
            destructive: false,
        }
    }

    /// A call with a fresh `tcall_…` id.
    pub fn new(tool: impl Into<String>, args: serde_json::Value) -> Self {
        Self {
            id: crate::new_id("tcall"),
            tool: tool.into(),
            args,
            destructive: false,
        }
    }
}

/// What the model is told about a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    /// Unique name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub input_schema: serde_json::Value,
    /// Which server provides it (MCP), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Has side effects that warrant asking first.
    #[serde(default)]
    pub destructive: bool,
    /// A successful call ends the agent's turn.
    #[serde(default)]
    pub ends_turn: bool,
}

/// The outcome of one tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The [`ToolCall::id`] this answers.
    pub call_id: String,
    /// True when the tool ran and succeeded.
    pub ok: bool,
    /// The tool's output (JSON; strings stay strings).
    pub output: serde_json::Value,
    /// The error, when the call failed.
    pub error: Option<String>,
    /// True when the gate refused the call.
    pub denied: bool,
    /// Why it was denied.
    pub reason: Option<String>,
    /// How long it ran.
    pub duration_ms: Option<f64>,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

impl ToolResult {
    /// A success.
    pub fn success(call_id: impl Into<String>, output: serde_json::Value) -> Self {
        Self {
            call_id: call_id.into(),
            ok: true,
            output,
            error: None,
            denied: false,
            reason: None,
            duration_ms: None,
            started_at: Utc::now(),
        }
    }

    /// A failure; the model sees `ERROR: <error>`.
    pub fn failure(call_id: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(error.into()),
            ..Self::success(call_id, serde_json::Value::Null)
        }
    }

    /// A refusal by the gate; the model sees `DENIED: <reason>`.
    pub fn denied(call_id: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            ok: false,
            denied: true,
            reason: Some(reason.into()),
            ..Self::success(call_id, serde_json::Value::Null)
        }
    }

    /// The text the model sees: the output (strings verbatim, other JSON
    /// serialised), `ERROR: …` or `DENIED: …`.
    pub fn to_model_text(&self) -> String {
        if self.denied {
            return format!("DENIED: {}", self.reason.as_deref().unwrap_or("denied"));
        }
        if !self.ok {
            return format!("ERROR: {}", self.error.as_deref().unwrap_or("tool failed"));
        }
        match &self.output {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        }
    }

    /// [`to_model_text`](Self::to_model_text) without copying a string output.
    pub fn into_model_text(self) -> String {
        match self.output {
            serde_json::Value::String(s) if self.ok && !self.denied => s,
            _ => self.to_model_text(),
        }
    }
}

/// Token and cost accounting for a model call or a whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Input tokens served from the provider's prompt cache.
    pub cached_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
}

impl Usage {
    /// All input and output tokens.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.cached_input_tokens + self.cache_write_tokens + self.output_tokens
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, rhs: Self) {
        self.input_tokens += rhs.input_tokens;
        self.cached_input_tokens += rhs.cached_input_tokens;
        self.cache_write_tokens += rhs.cache_write_tokens;
        self.output_tokens += rhs.output_tokens;
        self.cost_usd += rhs.cost_usd;
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Text and images.
    pub content: Vec<ContentPart>,
    /// Calls requested by an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For a tool message: the tool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Arc<str>>,
}

impl Message {
    /// A message with one text part (none when `text` is empty).
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        let text = text.into();
        let content = if text.is_empty() {
            Vec::new()
        } else {
            vec![ContentPart::Text { text }]
        };
        Self {
            role,
            content,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Self::text(Role::System, text)
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self::text(Role::User, text)
    }

    /// An assistant message with optional tool calls.
    pub fn assistant(text: impl Into<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls,
            ..Self::text(Role::Assistant, text)
        }
    }

    /// A tool-result message answering `call_id`.
    pub fn tool(call_id: impl Into<String>, name: Arc<str>, text: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call_id.into()),
            name: Some(name),
            ..Self::text(Role::Tool, text)
        }
    }

    /// Adds an image part.
    pub fn with_image(mut self, image: Image) -> Self {
        self.content.push(ContentPart::Image { image });
        self
    }

    /// Puts a turn's reasoning blocks ([`ContentPart::Thinking`],
    /// [`ContentPart::RedactedThinking`]) before the rest of the content,
    /// where providers expect them on replay.
    pub fn with_reasoning(mut self, reasoning: Vec<ContentPart>) -> Self {
        if !reasoning.is_empty() {
            self.content.splice(0..0, reasoning);
        }
        self
    }

    /// The text parts joined together.
    pub fn text_content(&self) -> String {
        let mut texts = self.content.iter().filter_map(|p| match p {
            ContentPart::Text { text } => Some(text.as_str()),
            _ => None,
        });
        match (texts.next(), texts.next()) {
            (None, _) => String::new(),
            (Some(one), None) => one.to_owned(),
            (Some(a), Some(b)) => {
                let mut s = String::from(a);
                s.push_str(b);
                texts.for_each(|t| s.push_str(t));
                s
            }
        }
    }
}
