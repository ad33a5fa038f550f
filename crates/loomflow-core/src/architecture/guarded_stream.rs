//! The output guardrails applied to a model's streamed chunks before they
//! become `model_chunk` events (see [`crate::guardrails::StreamGuard`]).

use super::Emitter;
use crate::event::EventKind;
use crate::guardrails::{Guardrails, Release, StreamGuard};
use crate::model::ModelChunk;

/// Guards one model reply's visible text and reasoning text separately and
/// keeps the chunk order: any other chunk first lets out what is held.
pub(super) struct GuardedChunks {
    text: StreamGuard,
    thinking: StreamGuard,
}

impl GuardedChunks {
    /// Guards for `guards`, or `None` when no guard checks the output.
    pub(super) fn new(guards: &Guardrails) -> Option<Self> {
        if !guards.checks_streams() {
            return None;
        }
        let text = StreamGuard::new(guards.clone());
        Some(Self {
            thinking: text.clone(),
            text,
        })
    }

    /// Emits what `chunk` lets out.
    pub(super) async fn forward(&mut self, chunk: &ModelChunk, emitter: &Emitter) {
        match chunk {
            ModelChunk::Text { text } => {
                self.finish_thinking(emitter).await;
                let release = self.text.push(text).await;
                emit_text(release, emitter).await;
            }
            ModelChunk::Thinking { text, signature } => {
                self.finish_text(emitter).await;
                let mut release = self.thinking.push(text).await;
                match signature {
                    // A signature closes the block: its chunk carries the
                    // rest (even none of it), so the block stays whole.
                    Some(signature) => {
                        let rest = self.thinking.finish().await;
                        release.text.push_str(&rest.text);
                        let withheld = release.withheld.take().or(rest.withheld);
                        emitter
                            .emit(|| EventKind::ModelChunk {
                                chunk: ModelChunk::Thinking {
                                    text: release.text,
                                    signature: Some(signature.clone()),
                                },
                            })
                            .await;
                        report(withheld, "thinking", emitter).await;
                    }
                    None => emit_thinking(release, emitter).await,
                }
            }
            other => {
                self.finish(emitter).await;
                emitter
                    .emit(|| EventKind::ModelChunk {
                        chunk: other.clone(),
                    })
                    .await;
            }
        }
    }

    /// Lets out everything still held (the reply ended).
    pub(super) async fn finish(&mut self, emitter: &Emitter) {
        self.finish_thinking(emitter).await;
        self.finish_text(emitter).await;
    }

    async fn finish_text(&mut self, emitter: &Emitter) {
        let release = self.text.finish().await;
        emit_text(release, emitter).await;
    }

    async fn finish_thinking(&mut self, emitter: &Emitter) {
        let release = self.thinking.finish().await;
        emit_thinking(release, emitter).await;
    }
}

async fn emit_text(release: Release, emitter: &Emitter) {
    if !release.text.is_empty() {
        emitter
            .emit(|| EventKind::ModelChunk {
                chunk: ModelChunk::Text { text: release.text },
            })
            .await;
    }
    report(release.withheld, "text", emitter).await;
}

async fn emit_thinking(release: Release, emitter: &Emitter) {
    if !release.text.is_empty() {
        emitter
            .emit(|| EventKind::ModelChunk {
                chunk: ModelChunk::Thinking {
                    text: release.text,
                    signature: None,
                },
            })
            .await;
    }
    report(release.withheld, "thinking", emitter).await;
}

/// A `guardrail.triggered` event for text withheld from the stream, marked
/// `streamed` (the run's own output check reports the final answer).
async fn report(withheld: Option<crate::guardrails::Triggered>, part: &str, emitter: &Emitter) {
    let Some(t) = withheld else {
        return;
    };
    emitter
        .architecture_event("guardrail.triggered", || {
            let mut data = serde_json::Map::new();
            data.insert("guard".into(), t.guard.into());
            data.insert("stage".into(), t.stage.as_str().into());
            data.insert("action".into(), t.action.into());
            data.insert("reason".into(), t.reason.into());
            data.insert("streamed".into(), true.into());
            data.insert("part".into(), part.into());
            data
        })
        .await;
}
