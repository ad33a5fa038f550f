//! Input-token counting for OpenAI models: the Responses API's count
//! endpoint (`POST /responses/input_tokens`) when the model speaks it, else
//! the model's tiktoken encoding (feature `tiktoken`, no download: the
//! encodings ship inside the crate), else the labelled estimate.

use loomflow_model::model::ModelRequest;
use loomflow_model::tokens::TokenCount;

/// Counts `request` with the tiktoken encoding of `model`, framed the way
/// Chat Completions frames messages (3 tokens per message, 1 per name, 3
/// priming the reply, per OpenAI's cookbook). `None` when `model` has no
/// known encoding (a gateway's own models).
#[cfg(feature = "tiktoken")]
pub(crate) fn with_tokenizer(model: &str, request: &ModelRequest<'_>) -> Option<TokenCount> {
    use loomflow_model::tokens::{CountMethod, IMAGE_TOKENS, Piece, pieces};

    const PER_MESSAGE: u64 = 3;
    const PER_NAME: u64 = 1;
    const REPLY_PRIMING: u64 = 3;

    let (bpe, encoding) = encoding_for(model)?;
    let mut tokens = REPLY_PRIMING;
    pieces(request, |piece| match piece {
        Piece::Message(message) => {
            tokens += PER_MESSAGE + u64::from(message.name.is_some()) * PER_NAME;
        }
        Piece::Text(text) => tokens += bpe.count_ordinary(text) as u64,
        Piece::Image => tokens += IMAGE_TOKENS,
    });
    Some(TokenCount::new(tokens, CountMethod::Tokenizer { encoding }))
}

/// The encoding of `model` (gateway ids canonicalised: `openai/gpt-4o` is
/// `gpt-4o`). OpenAI families newer than tiktoken-rs's table (`gpt-6`, a
/// new `o` series) use `o200k_base`, the encoding of every family since
/// `gpt-4o`.
#[cfg(feature = "tiktoken")]
fn encoding_for(model: &str) -> Option<(&'static tiktoken_rs::CoreBPE, &'static str)> {
    use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};

    let name = loomflow_model::pricing::canonical_model_name(model).to_ascii_lowercase();
    let newer_openai_family = name.starts_with("gpt-")
        || name.starts_with("chatgpt-")
        || (name.starts_with('o') && name[1..].starts_with(|c: char| c.is_ascii_digit()));
    let tokenizer = get_tokenizer(&name).or(newer_openai_family.then_some(Tokenizer::O200kBase))?;
    Some(match tokenizer {
        Tokenizer::O200kHarmony => (tiktoken_rs::o200k_harmony_singleton(), "o200k_harmony"),
        Tokenizer::O200kBase => (tiktoken_rs::o200k_base_singleton(), "o200k_base"),
        Tokenizer::Cl100kBase => (tiktoken_rs::cl100k_base_singleton(), "cl100k_base"),
        Tokenizer::P50kBase => (tiktoken_rs::p50k_base_singleton(), "p50k_base"),
        Tokenizer::P50kEdit => (tiktoken_rs::p50k_edit_singleton(), "p50k_edit"),
        Tokenizer::R50kBase | Tokenizer::Gpt2 => (tiktoken_rs::r50k_base_singleton(), "r50k_base"),
    })
}

/// Without the `tiktoken` feature there is no local tokenizer.
#[cfg(not(feature = "tiktoken"))]
pub(crate) fn with_tokenizer(_model: &str, _request: &ModelRequest<'_>) -> Option<TokenCount> {
    None
}

/// The `POST /responses/input_tokens` reply.
#[derive(serde::Deserialize)]
pub(crate) struct InputTokens {
    pub input_tokens: u64,
}

#[cfg(all(test, feature = "tiktoken"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use loomflow_model::Message;
    use loomflow_model::tokens::CountMethod;

    #[test]
    fn encodings_follow_the_model_family() {
        let names = |m: &str| encoding_for(m).map(|(_, e)| e);
        assert_eq!(names("gpt-4o-mini"), Some("o200k_base"));
        assert_eq!(names("gpt-4.1-mini"), Some("o200k_base"));
        assert_eq!(names("openai/gpt-5.2"), Some("o200k_base"));
        assert_eq!(names("gpt-6"), Some("o200k_base"));
        assert_eq!(names("o3"), Some("o200k_base"));
        assert_eq!(names("gpt-4"), Some("cl100k_base"));
        assert_eq!(names("gpt-3.5-turbo"), Some("cl100k_base"));
        assert_eq!(names("deepseek-chat"), None);
        assert_eq!(names("llama-3.3-70b"), None);
    }

    #[test]
    fn chat_framing_adds_per_message_and_priming_tokens() {
        // "hello world" is two tokens in both encodings (tiktoken's README).
        let messages = [Message::user("hello world")];
        let count = with_tokenizer("gpt-4o", &ModelRequest::new(&messages)).unwrap();
        assert_eq!(count.input_tokens, 3 + 2 + 3);
        assert_eq!(
            count.method,
            CountMethod::Tokenizer {
                encoding: "o200k_base"
            }
        );
        // "tiktoken is great!" is six cl100k tokens (tiktoken's README).
        let messages = [Message::system("tiktoken is great!"), Message::user("")];
        let count = with_tokenizer("gpt-4", &ModelRequest::new(&messages)).unwrap();
        assert_eq!(count.input_tokens, 3 + 6 + 3 + 3);
    }
}
