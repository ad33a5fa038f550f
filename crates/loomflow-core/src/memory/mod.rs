//! Long-term memory: what a user's runs leave behind for later runs.
//!
//! This module starts with the part every backend shares: [`Fact`], the
//! bi-temporal (subject, predicate, object) triple, the canonical form of
//! its predicate ([`canonical_predicate`]) and the valid-time supersession
//! rule ([`plan_supersession`]) that a store applies when a new value of a
//! (subject, predicate) arrives, in whatever order facts arrive.

mod fact;

pub use fact::{
    Fact, InvalidFact, Supersession, canonical_predicate, plan_supersession, supersede_and_push,
};
