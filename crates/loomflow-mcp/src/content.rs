//! Resources, prompts and content in loomflow's terms.

use base64::Engine as _;
use loomflow_core::message::{ContentPart, Image};

/// A resource a server offers ([`McpRegistry::list_resources`](crate::McpRegistry::list_resources)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct McpResource {
    /// The server offering it.
    pub server: String,
    /// Its URI (`file:///…`, `demo://…`): what
    /// [`read_resource`](crate::McpRegistry::read_resource) takes.
    pub uri: String,
    /// Its name.
    pub name: String,
    /// What it is.
    pub description: Option<String>,
    /// Its MIME type, when the server says.
    pub mime_type: Option<String>,
}

/// What a resource holds: text, or bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResourceBody {
    /// Text.
    Text(String),
    /// Bytes, as the server sent them: base64.
    Blob {
        /// The base64 text.
        base64: String,
    },
}

/// One part of a read resource.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResourceContent {
    /// The URI of this part.
    pub uri: String,
    /// Its MIME type, when the server says.
    pub mime_type: Option<String>,
    /// Its contents.
    pub body: ResourceBody,
}

impl ResourceContent {
    /// The text, when the part is text.
    pub fn text(&self) -> Option<&str> {
        match &self.body {
            ResourceBody::Text(text) => Some(text),
            ResourceBody::Blob { .. } => None,
        }
    }

    /// The bytes: UTF-8 of a text part, decoded base64 of a blob (`None`
    /// when the server sent base64 that does not decode).
    pub fn bytes(&self) -> Option<Vec<u8>> {
        match &self.body {
            ResourceBody::Text(text) => Some(text.clone().into_bytes()),
            ResourceBody::Blob { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .ok(),
        }
    }

    /// The part as message content a model can take: text as text, an
    /// `image/*` blob as an image, any other blob as a placeholder that
    /// names its type and size (`[binary application/gzip, 120 bytes: uri]`).
    pub fn to_content_part(&self) -> ContentPart {
        match &self.body {
            ResourceBody::Text(text) => ContentPart::Text { text: text.clone() },
            ResourceBody::Blob { base64 } => match self.mime_type.as_deref() {
                Some(mime) if mime.starts_with("image/") => ContentPart::Image {
                    image: Image::Base64 {
                        media_type: mime.to_owned(),
                        data: base64.clone(),
                    },
                },
                mime => ContentPart::Text {
                    text: blob_line(&self.uri, mime, base64),
                },
            },
        }
    }
}

/// A prompt template a server offers ([`McpRegistry::list_prompts`](crate::McpRegistry::list_prompts)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct McpPrompt {
    /// The server offering it.
    pub server: String,
    /// Its name on that server.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The arguments it takes.
    pub arguments: Vec<PromptArgument>,
}

/// One argument of an [`McpPrompt`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PromptArgument {
    /// Its name.
    pub name: String,
    /// What it means.
    pub description: Option<String>,
    /// Whether the prompt needs it.
    pub required: bool,
}

/// The line a model reads for a blob it cannot take:
/// `[binary application/gzip, 120 bytes: uri]` (`image` for images).
pub(crate) fn blob_line(uri: &str, mime: Option<&str>, base64: &str) -> String {
    let kind = match mime {
        Some(m) if m.starts_with("image/") => "image",
        _ => "binary",
    };
    format!(
        "[{kind} {}, {} bytes: {uri}]",
        mime.unwrap_or("data"),
        decoded_len(base64)
    )
}

/// How many bytes `base64` decodes to, without decoding it.
pub(crate) fn decoded_len(base64: &str) -> usize {
    let trimmed = base64.trim_end_matches('=');
    trimmed.len() * 3 / 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_become_images_or_placeholders() {
        let png = ResourceContent {
            uri: "demo://img".into(),
            mime_type: Some("image/png".into()),
            body: ResourceBody::Blob {
                base64: "iVBORw0KGgo=".into(),
            },
        };
        assert_eq!(
            png.to_content_part(),
            ContentPart::Image {
                image: Image::Base64 {
                    media_type: "image/png".into(),
                    data: "iVBORw0KGgo=".into()
                }
            }
        );
        assert_eq!(
            png.bytes().unwrap(),
            [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]
        );
        let gz = ResourceContent {
            mime_type: Some("application/gzip".into()),
            ..png
        };
        assert_eq!(
            gz.to_content_part(),
            ContentPart::Text {
                text: "[binary application/gzip, 8 bytes: demo://img]".into()
            }
        );
    }
}
