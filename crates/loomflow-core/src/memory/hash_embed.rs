//! [`HashEmbedder`]: a deterministic, offline embedder by feature hashing.

use async_trait::async_trait;
use loomflow_model::{Embedder, ModelError};

use super::text::for_each_token;

/// A deterministic embedder that needs no model and no network: every word
/// (stop-words dropped) and every character trigram of a word is hashed
/// into one of `dimensions` buckets with a hashed sign, and the vector is
/// L2-normalised. Texts that share words or word pieces get a positive
/// cosine similarity; the same text always gets the same vector, on every
/// platform and release.
///
/// It is lexical, not semantic ("car" and "automobile" share nothing); use a
/// real model (`loomflow::openai::OpenAiEmbedder`) when meaning matters. The reference's hash embedder seeded Python's
/// random generator from a SHA-256 of the whole text, so only identical
/// texts were similar; this one is not vector-compatible with it.
///
/// ```
/// use loomflow_core::memory::HashEmbedder;
/// use loomflow_core::memory::text::cosine;
/// use loomflow_core::Embedder;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let e = HashEmbedder::default();
/// let v = e.embed(&["trip to Rome", "Rome trip photos", "tax forms"]).await.unwrap();
/// assert_eq!(v[0].len(), 384);
/// assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]));
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashEmbedder {
    dimensions: usize,
}

impl HashEmbedder {
    /// An embedder making `dimensions`-long vectors (at least 8).
    pub fn new(dimensions: usize) -> Self {
        Self {
            dimensions: dimensions.max(8),
        }
    }

    /// The vector of one text.
    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dimensions];
        let mut add = |bytes: &[u8], weight: f32| {
            let h = fnv1a(bytes);
            let bucket = (h % self.dimensions as u64) as usize;
            let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
            v[bucket] += sign * weight;
        };
        for_each_token(text, |word| {
            add(word.as_bytes(), 1.0);
            // Trigrams of the padded word let "rome" meet "roman".
            let padded: Vec<char> = std::iter::once('^')
                .chain(word.chars())
                .chain(std::iter::once('$'))
                .collect();
            let mut buf = [0u8; 12];
            for tri in padded.windows(3) {
                let mut n = 0;
                for c in tri {
                    n += c.encode_utf8(&mut buf[n..]).len();
                }
                // A different salt keeps trigram and word buckets apart.
                let mut salted = [0u8; 13];
                salted[0] = 0x1f;
                salted[1..=n].copy_from_slice(&buf[..n]);
                add(&salted[..=n], 0.5);
            }
        });
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

impl Default for HashEmbedder {
    /// 384 dimensions, the size of the common small sentence models.
    fn default() -> Self {
        Self::new(384)
    }
}

/// 64-bit FNV-1a: tiny, fast, and stable across platforms and releases.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[async_trait]
impl Embedder for HashEmbedder {
    fn name(&self) -> &str {
        "hash"
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::text::cosine;

    #[test]
    fn vectors_are_stable_and_normalised() {
        let e = HashEmbedder::new(64);
        let a = e.embed_one("Paris in spring");
        assert_eq!(a, e.embed_one("paris, in SPRING!"));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!(e.embed_one("the of and").iter().all(|x| *x == 0.0));
        // Pinned so a change to the hashing shows up as a failing test:
        // stored vectors would stop matching new queries.
        assert_eq!(fnv1a(b"rome"), 0xa35c_181f_f0ca_b454);
    }

    #[test]
    fn word_pieces_are_similar() {
        let e = HashEmbedder::default();
        let rome = e.embed_one("rome");
        assert!(cosine(&rome, &e.embed_one("roman")) > 0.2);
        assert!(cosine(&rome, &e.embed_one("kettle")).abs() < 0.2);
    }
}
