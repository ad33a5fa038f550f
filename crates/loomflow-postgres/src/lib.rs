//! Postgres storage for loomflow: the shared engine when one machine is not
//! enough.
//!
//! - [`PostgresJournal`]: durable runs (steps, run epochs, checkpoints,
//!   signals) that every connected process shares.

mod journal;

pub use journal::PostgresJournal;
