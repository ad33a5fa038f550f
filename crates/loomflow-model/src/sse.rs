//! A server-sent events decoder for provider streams.
//!
//! Feed it bytes as they arrive ([`SseDecoder::push`]) and take complete
//! events out ([`SseDecoder::next_event`]). It follows the WHATWG rules the
//! providers rely on: `\n`, `\r\n` or `\r` line ends, `data:` lines joined with
//! `\n`, one optional space after the colon, `:` comments ignored, a blank
//! line dispatching the event. Events borrow the decoder's buffers, so a
//! stream of any length reuses the same few allocations.
//!
//! [`SseChunkStream`] drives a provider's [`ReplyProtocol`] over an HTTP
//! body: the streaming loop every adapter shares.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::error::ModelError;
use crate::model::ModelChunk;

/// One decoded event, borrowing the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, empty when the server sent none (the spec's
    /// `"message"`).
    pub event: &'a str,
    /// The `data:` lines joined with `\n`.
    pub data: &'a str,
}

/// Incremental SSE decoder.
///
/// ```
/// use loomflow_model::sse::SseDecoder;
///
/// let mut sse = SseDecoder::new();
/// sse.push(b"event: ping\ndata: {\"a\":");
/// assert!(sse.next_event().is_none()); // incomplete
/// sse.push(b"1}\r\n\r\n: comment\n\ndata: [DONE]\n\n");
/// let e = sse.next_event().unwrap();
/// assert_eq!((e.event, e.data), ("ping", "{\"a\":1}"));
/// assert_eq!(sse.next_event().unwrap().data, "[DONE]");
/// assert!(sse.next_event().is_none());
/// ```
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    pos: usize,
    event: String,
    data: String,
    has_data: bool,
    /// The next field starts a new event (the last one was handed out).
    fresh: bool,
    /// A `\r` ended the last line; a `\n` right after it is part of that end.
    after_cr: bool,
}

impl SseDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 4096 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet part of a complete event.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete event, if one has arrived.
    pub fn next_event(&mut self) -> Option<SseEvent<'_>> {
        if self.take_event() {
            Some(SseEvent {
                event: &self.event,
                data: &self.data,
            })
        } else {
            None
        }
    }

    /// Decodes up to the next dispatched event; true when one is ready in
    /// `self.event` / `self.data`.
    fn take_event(&mut self) -> bool {
        loop {
            let rest = &self.buf[self.pos..];
            if self.after_cr && rest.first() == Some(&b'\n') {
                self.pos += 1;
                self.after_cr = false;
                continue;
            }
            let Some(end) = rest.iter().position(|b| *b == b'\n' || *b == b'\r') else {
                return false;
            };
            let line_start = self.pos;
            self.after_cr = rest[end] == b'\r';
            self.pos += end + 1;
            if end == 0 {
                // A blank line dispatches the event (if it carried data).
                if self.has_data {
                    self.has_data = false;
                    self.fresh = true;
                    return true;
                }
                self.event.clear();
                continue;
            }
            self.field(line_start, line_start + end);
        }
    }

    fn field(&mut self, start: usize, end: usize) {
        let line = &self.buf[start..end];
        if line[0] == b':' {
            return;
        }
        if self.fresh {
            self.fresh = false;
            self.event.clear();
            self.data.clear();
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.push_str(&value);
            }
            _ => {} // `id`, `retry` and unknown fields do not matter here
        }
    }
}

/// What a provider protocol made of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Keep reading.
    More,
    /// The reply is complete: [`ReplyProtocol::finish`] runs next.
    Complete,
    /// The protocol pushed an error; the stream ends after it.
    Failed,
}

/// The provider-specific half of a streamed reply: turns SSE events into
/// [`ModelChunk`]s. [`SseChunkStream`] is the other half (bytes in, events
/// out, chunks handed on one at a time).
pub trait ReplyProtocol: Send + Unpin {
    /// Handles one event, pushing the chunks (or an error) it yields.
    fn event(&mut self, event: SseEvent<'_>, out: &mut VecDeque<ChunkResult>) -> Step;

    /// Pushes what a complete reply ends with (assembled tool calls, the
    /// `Finish` chunk with usage).
    fn finish(&mut self, out: &mut VecDeque<ChunkResult>);

    /// Whether a body that ends now (without the protocol's terminator)
    /// still holds a whole reply; if not, the stream ends with a transient
    /// "connection closed" error.
    fn can_end(&self) -> bool;
}

/// The error for an event whose data does not parse (`what` names it in the
/// provider's terms: `"chunk"`, `"event"`): transient (a retry before the
/// first chunk may get a clean stream), quoting the start of the data.
pub fn malformed_event(what: &str, data: &str, error: &dyn std::fmt::Display) -> ModelError {
    let cut = data.char_indices().nth(120).map_or(data.len(), |(i, _)| i);
    ModelError::Transient {
        message: format!("malformed stream {what} ({error}): {}", &data[..cut]),
        retry_after: None,
    }
}

/// One item of a chunk stream.
pub type ChunkResult = Result<ModelChunk, ModelError>;

/// An HTTP body as a stream of byte buffers.
pub type ByteBody<B, E> = Pin<Box<dyn Stream<Item = Result<B, E>> + Send>>;

/// Reads an SSE body and hands a [`ReplyProtocol`] its events: the shared
/// streaming loop of the provider adapters. A body error or a body that
/// ends before the reply does becomes a [`ModelError::Transient`], so the
/// retry layer may try again (before the first chunk).
pub struct SseChunkStream<B, E, P> {
    body: ByteBody<B, E>,
    sse: SseDecoder,
    protocol: P,
    out: VecDeque<ChunkResult>,
    ended: bool,
}

impl<B, E, P> SseChunkStream<B, E, P>
where
    B: AsRef<[u8]>,
    E: std::fmt::Display,
    P: ReplyProtocol,
{
    /// Streams `body` through `protocol`.
    pub fn new(body: ByteBody<B, E>, protocol: P) -> Self {
        Self {
            body,
            sse: SseDecoder::new(),
            protocol,
            out: VecDeque::new(),
            ended: false,
        }
    }

    /// Hands the protocol the next event already in the buffer, if any.
    /// One at a time, so a body that arrives in one piece is still parsed
    /// as the caller reads it, not all at once into memory.
    fn step_buffered(&mut self) -> bool {
        let Some(event) = self.sse.next_event() else {
            return false;
        };
        match self.protocol.event(event, &mut self.out) {
            Step::More => {}
            Step::Complete => {
                self.ended = true;
                self.protocol.finish(&mut self.out);
            }
            Step::Failed => self.ended = true,
        }
        true
    }

    fn end_of_body(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        if self.protocol.can_end() {
            self.protocol.finish(&mut self.out);
        } else {
            self.out.push_back(Err(ModelError::Transient {
                message: "the connection closed before the model finished its reply".into(),
                retry_after: None,
            }));
        }
    }
}

impl<B, E, P> Stream for SseChunkStream<B, E, P>
where
    B: AsRef<[u8]>,
    E: std::fmt::Display,
    P: ReplyProtocol,
{
    type Item = ChunkResult;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.out.pop_front() {
                return Poll::Ready(Some(item));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            if this.step_buffered() {
                continue;
            }
            match this.body.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => this.sse.push(bytes.as_ref()),
                Poll::Ready(Some(Err(e))) => {
                    this.ended = true;
                    this.out.push_back(Err(ModelError::Transient {
                        message: format!("the connection failed mid-stream: {e}"),
                        retry_after: None,
                    }));
                }
                Poll::Ready(None) => {
                    // A final event may lack its blank line.
                    this.sse.push(b"\n\n");
                    while !this.ended && this.step_buffered() {}
                    this.end_of_body();
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[&[u8]]) -> Vec<(String, String)> {
        let mut sse = SseDecoder::new();
        let mut out = Vec::new();
        for part in input {
            sse.push(part);
            while let Some(e) = sse.next_event() {
                out.push((e.event.to_owned(), e.data.to_owned()));
            }
        }
        out
    }

    #[test]
    fn byte_at_a_time_matches_whole() {
        let text = b"event: a\r\ndata: 1\r\ndata:2\r\n\r\n:c\n\ndata: x\rdata: y\r\rid: 7\n\nevent: only\n\ndata: z\n\n";
        let whole = all(&[text]);
        assert_eq!(
            whole,
            [
                ("a".into(), "1\n2".into()),
                (String::new(), "x\ny".into()),
                (String::new(), "z".into())
            ]
        );
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(all(&bytes), whole);
    }

    #[test]
    fn incomplete_tail_is_kept() {
        let mut sse = SseDecoder::new();
        sse.push(b"data: {\"partial\"");
        assert!(sse.next_event().is_none());
        assert_eq!(sse.pending(), 16);
    }
}
