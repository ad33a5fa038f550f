//! SQLite storage for loomflow: the embedded default.
//!
//! [`SqliteJournal`] keeps durable runs (steps, run epochs, checkpoints,
//! signals) in one file in WAL mode. Use it for a single machine; use
//! `loomflow-postgres` when several workers share runs.

mod journal;

pub use journal::{Durability, SqliteJournal};
