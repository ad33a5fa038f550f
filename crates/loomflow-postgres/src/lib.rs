//! Postgres storage for loomflow: the shared engine when one machine is not
//! enough.
//!
//! - [`PostgresJournal`]: durable runs (steps, run epochs, checkpoints,
//!   signals) that every connected process shares.
//! - [`PostgresMemory`]: long-term memory (episodes, bi-temporal facts,
//!   working blocks) with vector recall through pgvector's HNSW index.
//! - [`RunQueue`] and [`Worker`]: submit runs to Postgres and execute them
//!   on any number of worker processes on any number of machines. A worker
//!   that dies loses its leases; another worker takes its runs over and
//!   resumes them from the journal.
//! - [`PostgresAuditLog`]: signed, hash-chained audit logs shared by every
//!   process that connects.

mod audit;
mod journal;
mod memory;
mod queue;
mod worker;

pub use audit::PostgresAuditLog;
pub use journal::PostgresJournal;
pub use memory::PostgresMemory;
pub use queue::{NewRun, QueueError, QueuedRun, RunQueue, RunStatus, StoredEvent, Submit};
pub use worker::{Worker, WorkerBuilder, WorkerReport};
