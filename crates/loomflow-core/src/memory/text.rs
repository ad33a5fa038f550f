//! Keyword recall: the tokenizer every backend shares, an in-process BM25
//! index, and reciprocal-rank fusion of ranked lists.

use std::collections::HashMap;

/// English words too common to say anything about a text. Recall and fact
/// matching drop them.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

fn is_stop_word(word: &str) -> bool {
    // Short, sorted list: a binary search beats hashing here.
    STOP_WORDS.binary_search(&word).is_ok()
}

/// Splits `text` into lower-case words (runs of letters and digits),
/// dropping English stop-words and folding plurals (`cats` → `cat`,
/// `cities` → `city`; `glass`, `status` and `analysis` stay). Calls `f`
/// once per word, in order.
///
/// ```
/// let mut words = Vec::new();
/// loomflow_core::memory::text::for_each_token("Where are the Eiffel-Towers?", |w| words.push(w.to_owned()));
/// assert_eq!(words, ["eiffel", "tower"]);
/// ```
pub fn for_each_token(text: &str, mut f: impl FnMut(&str)) {
    let mut word = String::new();
    let mut flush = |word: &mut String| {
        if !word.is_empty() && !is_stop_word(word) {
            fold_plural(word);
            f(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_ascii() {
                word.push(c.to_ascii_lowercase());
            } else {
                word.extend(c.to_lowercase());
            }
        } else {
            flush(&mut word);
        }
    }
    flush(&mut word);
}

/// A conservative plural fold: `-ies` → `-y`, and a final `s` dropped
/// unless the word is short or ends in `ss`, `us` or `is`.
fn fold_plural(word: &mut String) {
    let len = word.len();
    if len > 4 && word.ends_with("ies") {
        word.truncate(len - 3);
        word.push('y');
    } else if len > 3
        && word.ends_with('s')
        && !(word.ends_with("ss") || word.ends_with("us") || word.ends_with("is"))
    {
        word.truncate(len - 1);
    }
}

/// The words of `text` as [`for_each_token`] yields them.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_token(text, |w| out.push(w.to_owned()));
    out
}

/// The length of a free slot.
const ABSENT: u32 = u32::MAX;

/// BM25 term-frequency saturation (backends that rank on their server use
/// the same constants, so every backend scores alike).
pub const BM25_K1: f32 = 1.2;
/// BM25 length normalisation.
pub const BM25_B: f32 = 0.75;

/// BM25's inverse document frequency of a word found in `df` of `docs`
/// documents (the `+ 1` inside the log keeps it positive).
pub fn bm25_idf(docs: f64, df: f64) -> f64 {
    (1.0 + (docs - df + 0.5) / (df + 0.5)).ln()
}

/// BM25's score for a word with inverse document frequency `idf` occurring
/// `tf` times in a document of `len` words, when documents average
/// `avg_len` words ([`BM25_K1`], [`BM25_B`]). A document's score is the sum
/// over the query's distinct words. Every backend that ranks on the client
/// calls this, so they all score alike.
pub fn bm25_weight(idf: f64, tf: f64, len: f64, avg_len: f64) -> f64 {
    let (k1, b) = (f64::from(BM25_K1), f64::from(BM25_B));
    idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * len / avg_len))
}

/// The distinct words of `text` (as [`for_each_token`] yields them), each
/// with how often it occurs, sorted by word; and the number of words.
///
/// ```
/// let (counts, len) = loomflow_core::memory::text::term_counts("Cats chase cats");
/// assert_eq!(counts, [("cat".to_owned(), 2), ("chase".to_owned(), 1)]);
/// assert_eq!(len, 3);
/// ```
pub fn term_counts(text: &str) -> (Vec<(String, u32)>, u32) {
    let mut words = tokens(text);
    let len = words.len() as u32;
    words.sort_unstable();
    let mut counts: Vec<(String, u32)> = Vec::new();
    for w in words {
        match counts.last_mut() {
            Some((last, n)) if *last == w => *n += 1,
            _ => counts.push((w, 1)),
        }
    }
    (counts, len)
}

/// An in-process inverted index ranking documents by BM25 (k1 =
/// [`BM25_K1`], b = [`BM25_B`]). Documents are numbered by the caller (dense `u32` slots).
///
/// ```
/// use loomflow_core::memory::text::Bm25Index;
/// let mut index = Bm25Index::default();
/// index.insert(0, "the cat sat on the mat");
/// index.insert(1, "dogs chase cats");
/// index.insert(2, "a cat and a cat");
/// let hits = index.search("cat", 10, |_| true);
/// assert_eq!(hits[0].0, 2); // two mentions in a short text
/// assert_eq!(hits.len(), 3); // "cats" counts as "cat"
/// assert!(index.search("dog", 10, |_| true).len() == 1);
/// ```
#[derive(Debug, Default, Clone)]
pub struct Bm25Index {
    postings: HashMap<Box<str>, Vec<(u32, u32)>>,
    /// Word count by slot; `ABSENT` for a free slot.
    lengths: Vec<u32>,
    live: usize,
    total_len: u64,
}

impl Bm25Index {
    /// Indexes document `doc`. Re-inserting a slot without removing it
    /// first double-counts it.
    pub fn insert(&mut self, doc: u32, text: &str) {
        let (counts, len) = term_counts(text);
        for (word, tf) in counts {
            match self.postings.get_mut(word.as_str()) {
                Some(list) => list.push((doc, tf)),
                None => {
                    self.postings.insert(word.into_boxed_str(), vec![(doc, tf)]);
                }
            }
        }
        let slot = doc as usize;
        if self.lengths.len() <= slot {
            self.lengths.resize(slot + 1, ABSENT);
        }
        if self.lengths[slot] == ABSENT {
            self.live += 1;
        } else {
            self.total_len -= u64::from(self.lengths[slot]);
        }
        self.lengths[slot] = len;
        self.total_len += u64::from(len);
    }

    /// Removes document `doc`, which was indexed with `text`.
    pub fn remove(&mut self, doc: u32, text: &str) {
        let Some(len) = self.lengths.get_mut(doc as usize) else {
            return;
        };
        if *len == ABSENT {
            return;
        }
        self.total_len -= u64::from(std::mem::replace(len, ABSENT));
        self.live -= 1;
        for_each_token(text, |w| {
            if let Some(list) = self.postings.get_mut(w) {
                list.retain(|(d, _)| *d != doc);
                if list.is_empty() {
                    self.postings.remove(w);
                }
            }
        });
    }

    /// How many documents it holds.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The `limit` best documents for `query` that `admit` accepts, best
    /// first, with their BM25 scores. Documents sharing no word with the
    /// query are never returned.
    pub fn search(
        &self,
        query: &str,
        limit: usize,
        mut admit: impl FnMut(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let n = self.live as f32;
        if n == 0.0 || limit == 0 {
            return Vec::new();
        }
        let avg_len = (self.total_len as f32 / n).max(1.0);
        let mut words = tokens(query);
        words.sort_unstable();
        words.dedup();
        let mut scores: HashMap<u32, f32> = HashMap::new();
        for word in &words {
            let Some(list) = self.postings.get(word.as_str()) else {
                continue;
            };
            let idf = bm25_idf(f64::from(n), list.len() as f64);
            for &(doc, tf) in list {
                let len = self.lengths.get(doc as usize).copied().unwrap_or(0);
                let s = bm25_weight(idf, f64::from(tf), f64::from(len), f64::from(avg_len)) as f32;
                *scores.entry(doc).or_default() += s;
            }
        }
        let mut hits: Vec<(u32, f32)> = scores.into_iter().collect();
        top_k(&mut hits, limit, &mut admit);
        hits
    }
}

/// Keeps the `k` highest-scoring admitted entries of `hits`, best first
/// (ties: lower slot first, so results are deterministic).
pub(crate) fn top_k(hits: &mut Vec<(u32, f32)>, k: usize, admit: &mut impl FnMut(u32) -> bool) {
    let better = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    hits.sort_unstable_by(better);
    let mut kept = 0;
    let mut i = 0;
    while i < hits.len() && kept < k {
        if admit(hits[i].0) {
            hits.swap(kept, i);
            kept += 1;
        }
        i += 1;
    }
    hits.truncate(kept);
}

/// The constant of reciprocal-rank fusion (Cormack et al.): a document at
/// rank `r` (1-based) contributes `weight / (RRF_K + r)`.
pub const RRF_K: f32 = 60.0;

/// Reciprocal-rank fusion of two ranked lists of ids, best first: the vector
/// ranking weighted by `alpha`, the keyword ranking by `1 - alpha`. Returns
/// every id in either list with its fused score, best first.
///
/// ```
/// use loomflow_core::memory::text::fuse;
/// let fused = fuse(&["a", "b", "c"], &["c", "a"], 0.5);
/// assert_eq!(fused[0].0, "a"); // high in both
/// assert_eq!(fused.len(), 3);
/// ```
pub fn fuse<T: Clone + Eq + std::hash::Hash>(
    vector: &[T],
    keyword: &[T],
    alpha: f32,
) -> Vec<(T, f32)> {
    let mut scores: Vec<(T, f32)> = Vec::with_capacity(vector.len() + keyword.len());
    let mut at: HashMap<&T, usize> = HashMap::with_capacity(vector.len() + keyword.len());
    let lists = [(vector, alpha), (keyword, 1.0 - alpha)];
    for (list, weight) in lists {
        for (rank, id) in list.iter().enumerate() {
            let s = weight / (RRF_K + rank as f32 + 1.0);
            match at.get(id) {
                Some(&i) => scores[i].1 += s,
                None => {
                    at.insert(id, scores.len());
                    scores.push((id.clone(), s));
                }
            }
        }
    }
    // Stable: equal scores keep vector-list order, then keyword-list order.
    scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    scores
}

/// Cosine similarity of two vectors (0.0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (dot, na, nb) = a
        .iter()
        .zip(b)
        .fold((0.0f32, 0.0f32, 0.0f32), |(d, x, y), (p, q)| {
            (d + p * q, x + p * p, y + q * q)
        });
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// How well `query` matches `text` by shared words: the fraction of the
/// query's words found in `text` (0.0 to 1.0). Fact recall without an
/// embedder ranks by this.
pub fn word_overlap(query_words: &[String], text: &str) -> f32 {
    if query_words.is_empty() {
        return 0.0;
    }
    let mut found = vec![false; query_words.len()];
    for_each_token(text, |w| {
        for (i, q) in query_words.iter().enumerate() {
            if q == w {
                found[i] = true;
            }
        }
    });
    found.iter().filter(|f| **f).count() as f32 / query_words.len() as f32
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn tokens_lowercase_and_split_unicode() {
        assert_eq!(
            tokens("Ça VA, Zoë? 42 km/h"),
            ["ça", "va", "zoë", "42", "km", "h"]
        );
        assert!(tokens("the and of").is_empty());
        assert_eq!(
            tokens("cats cities glass status analysis bus its works"),
            ["cat", "city", "glass", "status", "analysis", "bus", "work"]
        );
    }

    #[test]
    fn bm25_prefers_rare_words_and_forgets_removed_docs() {
        let mut index = Bm25Index::default();
        index.insert(0, "rome trip planning");
        index.insert(1, "trip trip trip");
        index.insert(2, "paris trip");
        // "rome" is rare, "trip" is everywhere.
        let hits = index.search("rome trip", 3, |_| true);
        assert_eq!(hits[0].0, 0);
        assert_eq!(hits.len(), 3);
        index.remove(0, "rome trip planning");
        let hits = index.search("rome", 3, |_| true);
        assert!(hits.is_empty());
        assert_eq!(index.len(), 2);
        // The filter skips, it does not shorten the list.
        let hits = index.search("trip", 1, |d| d != 1);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn fusion_weights_the_lists() {
        let v = ["a", "b"];
        let k = ["b", "a"];
        assert_eq!(fuse(&v, &k, 1.0)[0].0, "a");
        assert_eq!(fuse(&v, &k, 0.0)[0].0, "b");
        assert_eq!(fuse(&v, &k, 0.0)[1].1, 1.0 / 62.0);
    }
}
