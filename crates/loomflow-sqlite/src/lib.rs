//! SQLite storage for loomflow: the embedded default.
//!
//! [`SqliteJournal`] keeps durable runs (steps, run epochs, checkpoints,
//! signals) in one file in WAL mode. Use it for a single machine; use
//! `loomflow-postgres` when several workers share runs.
//!
//! [`SqliteMemory`] keeps long-term memory (episodes with their embeddings,
//! bi-temporal facts, working blocks) in one file, partitioned by user and
//! namespace, with recall through an in-process HNSW + BM25 index.
//!
//! [`SqliteAuditLog`] keeps signed, hash-chained audit logs, safe with
//! several processes appending.

mod audit;
mod busy;
mod journal;
mod memory;

pub use audit::SqliteAuditLog;
pub use journal::{Durability, SqliteJournal};
pub use memory::SqliteMemory;
