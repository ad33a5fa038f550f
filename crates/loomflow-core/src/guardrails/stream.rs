//! Output-stage guardrails over streamed text.
//!
//! A run's output guards check the final answer when the run ends, but a
//! streaming caller has been sent every `model_chunk` by then. A
//! [`StreamGuard`] sits between the model's stream and the caller: it holds
//! text back, runs the output-stage guards over the reply so far each time
//! enough new text has arrived, and lets out the guarded text except its last
//! [`holdback`](StreamGuard::holdback) characters, so a match still being
//! written (half an email address, the first digits of a card number) is
//! redacted before any of it is sent. A costly guard can opt out and judge
//! only the final answer ([`Guardrail::checks_streams`](super::Guardrail::checks_streams)).
//!
//! The guards see the whole reply so far on every check, so a pattern split
//! across any number of chunks is found. Checks come every
//! [`check_every`](StreamGuard::check_every) bytes, or every eighth of the
//! reply so far when that is more, which keeps the total work linear in the
//! reply's length (and the number of checks logarithmic once the reply is
//! long, which matters for a model-judged guard).
//!
//! What it does not do: take back text already sent. When a guard blocks,
//! the rest of the reply is withheld from the stream (the run's own output
//! check then ends the run as `guardrail:<guard>`), but what was released
//! before the block reached the caller; the hold-back window bounds how much
//! of a match can slip out, not how much innocent text preceded it. If a
//! guard rewrites text that was already released (a pattern longer than the
//! window), the stream cannot stay consistent with it, so the rest of the
//! reply is withheld too and reported as `withhold`.
//!
//! ```
//! use loomflow_core::guardrails::{Guardrails, PiiGuard, StreamGuard};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mut stream = StreamGuard::new(Guardrails::new().with(PiiGuard::new())).check_every(8);
//! let mut sent = String::new();
//! for delta in ["Write to j", "o@exa", "mple.com", " today."] {
//!     sent += &stream.push(delta).await.text;
//! }
//! sent += &stream.finish().await.text;
//! assert_eq!(sent, "Write to [REDACTED:email] today.");
//! # });
//! ```

use super::{Guardrails, Stage, Triggered};

/// Holds streamed text back until the output-stage guards have seen it.
///
/// One guard serves one reply at a time: [`push`](Self::push) its deltas,
/// then [`finish`](Self::finish) it, which lets the rest out and readies the
/// guard for the next reply.
#[derive(Debug, Clone)]
pub struct StreamGuard {
    guards: Guardrails,
    /// The raw reply so far.
    raw: String,
    /// The guards' text at the last check.
    checked: String,
    /// How many bytes of `checked` were let out.
    released: usize,
    /// Raw bytes since the last check.
    unchecked: usize,
    check_every: usize,
    holdback: usize,
    /// The rest of this reply is withheld (a block, or a rewrite of sent text).
    withheld: bool,
}

/// What a [`StreamGuard`] lets out after a push or at the end of a reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Release {
    /// Guarded text to send now; empty when nothing is ready.
    pub text: String,
    /// Set once per reply, when the rest of it is withheld from the stream:
    /// the guard that blocked (action `block`), or the guards whose rewrite
    /// touched text already sent (action `withhold`).
    pub withheld: Option<Triggered>,
}

impl StreamGuard {
    /// Raw bytes between checks, unless an eighth of the reply is more.
    pub const DEFAULT_CHECK_EVERY: usize = 200;
    /// Characters held back after each check.
    pub const DEFAULT_HOLDBACK: usize = 128;

    /// A stream guard running the output-stage guards of `guards` that
    /// [check streams](super::Guardrail::checks_streams) (all, unless a
    /// guard opts out).
    pub fn new(guards: Guardrails) -> Self {
        Self {
            guards,
            raw: String::new(),
            checked: String::new(),
            released: 0,
            unchecked: 0,
            check_every: Self::DEFAULT_CHECK_EVERY,
            holdback: Self::DEFAULT_HOLDBACK,
            withheld: false,
        }
    }

    /// Checks after this many new raw bytes (at least 1; default 200).
    /// Smaller means text flows sooner and the guards run more often.
    pub fn check_every(mut self, bytes: usize) -> Self {
        self.check_every = bytes.max(1);
        self
    }

    /// Keeps the last `chars` characters of each check back until the next
    /// one (default 128). Make it at least as long as the longest match a
    /// guard must see whole.
    pub fn holdback(mut self, chars: usize) -> Self {
        self.holdback = chars;
        self
    }

    /// True when some output guard checks streams, so the stream needs
    /// guarding at all.
    pub fn is_active(&self) -> bool {
        self.guards.checks_streams()
    }

    /// Takes the next piece of the reply; returns what may be sent now.
    pub async fn push(&mut self, delta: &str) -> Release {
        if self.withheld {
            return Release::default();
        }
        self.raw.push_str(delta);
        self.unchecked += delta.len();
        if self.unchecked < self.check_every.max(self.raw.len() / 8) {
            return Release::default();
        }
        self.check(false).await
    }

    /// Ends the reply: returns the rest of it, guarded, and starts over.
    pub async fn finish(&mut self) -> Release {
        let out = match (self.withheld, self.unchecked) {
            (true, _) => Release::default(),
            // Nothing new since the last check: its text is still good.
            (false, 0) => Release {
                text: self.checked.get(self.released..).unwrap_or("").to_owned(),
                withheld: None,
            },
            (false, _) => self.check(true).await,
        };
        self.raw.clear();
        self.checked.clear();
        self.released = 0;
        self.unchecked = 0;
        self.withheld = false;
        out
    }

    async fn check(&mut self, last: bool) -> Release {
        self.unchecked = 0;
        let mut outcome = self.guards.apply_streamed(self.raw.clone()).await;
        if outcome.blocked.is_some() {
            self.withheld = true;
            return Release {
                text: String::new(),
                withheld: outcome.triggered.pop(),
            };
        }
        let sent = self.checked.get(..self.released).unwrap_or("");
        if !outcome.text.starts_with(sent) {
            self.withheld = true;
            let guards: Vec<&str> = outcome.triggered.iter().map(|t| t.guard.as_str()).collect();
            return Release {
                text: String::new(),
                withheld: Some(Triggered {
                    guard: guards.join(","),
                    stage: Stage::Output,
                    action: "withhold",
                    reason: "a guard rewrote text already streamed; the rest of this reply is \
                             withheld from the stream (raise the hold-back window to avoid this)"
                        .into(),
                }),
            };
        }
        self.checked = outcome.text;
        let end = match (last, self.holdback) {
            (true, _) | (false, 0) => self.checked.len(),
            (false, n) => self
                .checked
                .char_indices()
                .rev()
                .nth(n - 1)
                .map_or(0, |(i, _)| i),
        };
        if end <= self.released {
            return Release::default();
        }
        let text = self
            .checked
            .get(self.released..end)
            .unwrap_or("")
            .to_owned();
        self.released = end;
        Release {
            text,
            withheld: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::guardrails::{Guardrail, PiiGuard, RegexAction, RegexGuard, Verdict};

    /// Streams `text` in `size`-char deltas; returns every release in order.
    async fn stream(guard: &mut StreamGuard, text: &str, size: usize) -> Vec<Release> {
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        for piece in chars.chunks(size) {
            out.push(guard.push(&piece.iter().collect::<String>()).await);
        }
        out.push(guard.finish().await);
        out
    }

    fn sent(releases: &[Release]) -> String {
        releases.iter().map(|r| r.text.as_str()).collect()
    }

    #[tokio::test]
    async fn matches_split_across_chunks_never_leave_unredacted() {
        let pii = Guardrails::new().with(PiiGuard::new());
        let filler = "The quick brown fox jumps over the lazy dog. ".repeat(12);
        let text = format!(
            "{filler}Mail jo.smith@example.com or call (415) 555-2671, card \
             4111 1111 1111 1111. {filler}"
        );
        let expected = pii.apply(Stage::Output, text.clone()).await.text;
        for size in [1, 3, 7, 40, 1000] {
            let mut guard = StreamGuard::new(pii.clone()).check_every(16);
            let releases = stream(&mut guard, &text, size).await;
            assert_eq!(sent(&releases), expected, "deltas of {size} chars");
            // No prefix of what was sent ever held a raw fragment.
            let mut so_far = String::new();
            for r in &releases {
                so_far += &r.text;
                for raw in ["jo.smith", "555-2671", "4111 1111"] {
                    assert!(!so_far.contains(raw), "{raw:?} leaked at {size}");
                }
                assert!(r.withheld.is_none());
            }
            // Text flowed before the end of the reply.
            assert!(
                releases[..releases.len() - 1]
                    .iter()
                    .any(|r| !r.text.is_empty())
            );
        }
    }

    #[tokio::test]
    async fn a_block_withholds_the_rest_once_and_the_next_reply_starts_clean() {
        let guards = Guardrails::new().with(
            RegexGuard::new("secrets")
                .rule("(?i)internal only", RegexAction::Block)
                .unwrap(),
        );
        let mut guard = StreamGuard::new(guards).check_every(10).holdback(20);
        let head = "Fine words here. ".repeat(10);
        let text = format!("{head}This is INTERNAL ONLY material. {head}");
        let releases = stream(&mut guard, &text, 5).await;
        let blocks: Vec<_> = releases
            .iter()
            .filter_map(|r| r.withheld.as_ref())
            .collect();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].guard, "secrets");
        assert_eq!(blocks[0].action, "block");
        let out = sent(&releases);
        assert!(!out.to_lowercase().contains("internal"), "{out}");
        assert!(text.starts_with(&out) && !out.is_empty(), "{out}");
        // The guard is ready for the next reply.
        let releases = stream(&mut guard, "All good.", 3).await;
        assert_eq!(sent(&releases), "All good.");
    }

    /// Upper-cases the whole text once it is long: a rewrite of text that
    /// was already sent.
    struct Shout(Arc<AtomicUsize>);

    #[async_trait]
    impl Guardrail for Shout {
        fn name(&self) -> &str {
            "shout"
        }
        fn stages(&self) -> &[Stage] {
            &[Stage::Output]
        }
        async fn check(&self, _stage: Stage, text: &str) -> Verdict {
            self.0.fetch_add(1, Ordering::Relaxed);
            match text.len() > 300 {
                true => Verdict::Annotate {
                    text: text.to_uppercase(),
                    reason: "loud".into(),
                },
                false => Verdict::Allow,
            }
        }
    }

    #[tokio::test]
    async fn a_rewrite_of_sent_text_withholds_the_rest_instead_of_garbling_it() {
        let calls = Arc::new(AtomicUsize::new(0));
        let guards = Guardrails::new().with(Shout(calls.clone()));
        let mut guard = StreamGuard::new(guards).check_every(50).holdback(10);
        let text = "quiet words ".repeat(40);
        let releases = stream(&mut guard, &text, 4).await;
        let out = sent(&releases);
        assert!(!out.is_empty() && text.starts_with(&out), "{out}");
        let withheld: Vec<_> = releases
            .iter()
            .filter_map(|r| r.withheld.as_ref())
            .collect();
        assert_eq!(withheld.len(), 1);
        assert_eq!(
            (withheld[0].guard.as_str(), withheld[0].action),
            ("shout", "withhold")
        );
    }

    #[tokio::test]
    async fn checks_grow_sparser_so_the_work_stays_linear() {
        let calls = Arc::new(AtomicUsize::new(0));
        // Never long enough to shout: counts checks only.
        let mut guard =
            StreamGuard::new(Guardrails::new().with(Shout(calls.clone()))).check_every(1000);
        let text = "x".repeat(100);
        for _ in 0..1_000 {
            let _ = guard.push(&text).await;
        }
        let _ = guard.finish().await;
        // 100 kB in 100-byte deltas: a check per delta would be 1,000 calls
        // (and quadratic work); an eighth of the reply at a time is ~30.
        let n = calls.load(Ordering::Relaxed);
        assert!((10..=40).contains(&n), "{n} checks");
    }

    /// Counts its checks; asks to see final answers only.
    struct FinalOnly(Arc<AtomicUsize>);

    #[async_trait]
    impl Guardrail for FinalOnly {
        fn name(&self) -> &str {
            "final-only"
        }
        fn stages(&self) -> &[Stage] {
            &[Stage::Output]
        }
        async fn check(&self, _stage: Stage, _text: &str) -> Verdict {
            self.0.fetch_add(1, Ordering::Relaxed);
            Verdict::Allow
        }
        fn checks_streams(&self) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn a_guard_that_checks_final_answers_only_is_not_called_on_the_stream() {
        let calls = Arc::new(AtomicUsize::new(0));
        let alone = Guardrails::new().with(FinalOnly(calls.clone()));
        assert!(!StreamGuard::new(alone.clone()).is_active());
        let both = alone.with(PiiGuard::new());
        let mut guard = StreamGuard::new(both.clone()).check_every(10);
        let text = "mail a@b.io ".repeat(100);
        let out = sent(&stream(&mut guard, &text, 7).await);
        assert_eq!(out, "mail [REDACTED:email] ".repeat(100));
        assert_eq!(calls.load(Ordering::Relaxed), 0);
        // The run's own check of the final answer still calls it.
        let _ = both.apply(Stage::Output, text).await;
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn multibyte_text_is_cut_on_char_boundaries() {
        let pii = Guardrails::new().with(PiiGuard::new());
        let text = "日本語のテキスト、メールは a@b.io です。".repeat(30);
        let expected = pii.apply(Stage::Output, text.clone()).await.text;
        for holdback in [16, 128] {
            let mut guard = StreamGuard::new(pii.clone())
                .check_every(7)
                .holdback(holdback);
            assert_eq!(sent(&stream(&mut guard, &text, 2).await), expected);
        }
    }
}
