//! Our transcript and tool definitions in genai's chat types.

use genai::chat::{
    Binary, ChatMessage, ContentPart as GPart, MessageContent, Tool, ToolCall as GToolCall,
    ToolResponse,
};
use loomflow_model::{ContentPart, Image, Message, Role, ToolDef};

/// The messages as genai chat messages: system text as system messages,
/// images as binary parts, an assistant turn's reasoning and signatures
/// (Gemini's thought signatures travel as [`ContentPart::Thinking`]
/// signatures) ahead of its calls, tool results with their tool's name
/// (Gemini answers calls by name).
pub(crate) fn to_genai_messages(messages: &[Message]) -> Vec<ChatMessage> {
    messages
        .iter()
        .map(|message| match message.role {
            Role::System => ChatMessage::system(message.text_content()),
            Role::User => ChatMessage::user(MessageContent::from_parts(user_parts(message))),
            Role::Assistant => ChatMessage::assistant(assistant_content(message)),
            Role::Tool => {
                let mut response = ToolResponse::new(
                    message.tool_call_id.clone().unwrap_or_default(),
                    message.text_content(),
                );
                if let Some(name) = &message.name {
                    response = response.with_fn_name(name.to_string());
                }
                ChatMessage::tool(response)
            }
        })
        .collect()
}

fn user_parts(message: &Message) -> Vec<GPart> {
    message
        .content
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text { text } => Some(GPart::Text(text.clone())),
            ContentPart::Image { image } => Some(GPart::Binary(binary(image))),
            ContentPart::Thinking { .. } | ContentPart::RedactedThinking { .. } => None,
        })
        .collect()
}

/// Text first, then the reasoning (signatures attach to the part after
/// them: the turn's first call, where Gemini puts its signature), then the
/// calls.
fn assistant_content(message: &Message) -> MessageContent {
    let mut parts = Vec::with_capacity(message.content.len() + message.tool_calls.len());
    let mut signatures = Vec::new();
    for part in &message.content {
        match part {
            ContentPart::Text { text } if !text.is_empty() => parts.push(GPart::Text(text.clone())),
            ContentPart::Thinking { text, signature } => {
                if !text.is_empty() {
                    parts.push(GPart::ReasoningContent(text.clone()));
                }
                if let Some(sig) = signature {
                    signatures.push(sig.clone());
                }
            }
            _ => {}
        }
    }
    parts.extend(signatures.iter().cloned().map(GPart::ThoughtSignature));
    for (i, call) in message.tool_calls.iter().enumerate() {
        parts.push(GPart::ToolCall(GToolCall {
            call_id: call.id.clone(),
            fn_name: call.tool.clone(),
            fn_arguments: call.args.clone(),
            // The turn's signature belongs to its first call.
            thought_signatures: (i == 0 && !signatures.is_empty())
                .then(|| vec![signatures[signatures.len() - 1].clone()]),
        }));
    }
    MessageContent::from_parts(parts)
}

fn binary(image: &Image) -> Binary {
    match image {
        Image::Base64 { media_type, data } => {
            Binary::from_base64(media_type.clone(), data.as_str(), None)
        }
        Image::Url { url } => match data_url(url) {
            Some((media_type, data)) => Binary::from_base64(media_type, data, None),
            None => Binary::from_url(media_type_of(url), url.clone(), None),
        },
    }
}

/// `data:<type>;base64,<data>`.
fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (media_type, data) = rest.split_once(";base64,")?;
    Some((media_type, data))
}

/// The image type a URL's extension names (providers that fetch by URL
/// want one); JPEG when it names none.
fn media_type_of(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("heic") => "image/heic",
        _ => "image/jpeg",
    }
}

pub(crate) fn to_genai_tools(tools: &[ToolDef]) -> Vec<Tool> {
    tools
        .iter()
        .map(|t| {
            Tool::new(t.name.as_str())
                .with_description(t.description.as_str())
                .with_schema(t.input_schema.clone())
        })
        .collect()
}
