//! Bi-temporal facts: (subject, predicate, object) triples with the time
//! they hold in the world (`valid_from` .. `valid_until`) and the time they
//! were learned (`recorded_at`), and the rule that makes a newer value of a
//! (subject, predicate) close the older one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One extracted semantic triple, e.g. (`alice`, `lives_in`, `Paris`).
///
/// `valid_from` .. `valid_until` is when it holds in the world (`None`:
/// still holds); `recorded_at` is when it was learned. A fact is never
/// edited except to close its validity when a different object supersedes
/// it (see [`plan_supersession`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    /// `fact_` followed by a ULID.
    pub id: String,
    /// Who or what the fact is about.
    pub subject: String,
    /// The relation, canonical (see [`canonical_predicate`]).
    pub predicate: String,
    /// The value.
    pub object: String,
    /// How sure the extractor was, 0.0 to 1.0.
    pub confidence: f32,
    /// When it started to hold.
    pub valid_from: DateTime<Utc>,
    /// When it stopped holding; `None` while it holds.
    pub valid_until: Option<DateTime<Utc>>,
    /// When it was learned.
    pub recorded_at: DateTime<Utc>,
    /// Where it came from (episode ids, documents).
    pub sources: Vec<String>,
}

impl Fact {
    /// A fact valid from now, learned now, with confidence 1.0. The
    /// predicate is canonicalised.
    ///
    /// ```
    /// use loomflow_core::memory::Fact;
    /// let fact = Fact::new("alice", "Lives In", "Paris").unwrap();
    /// assert_eq!(fact.predicate, "lives_in");
    /// assert!(fact.id.starts_with("fact_"));
    /// assert!(fact.holds_at(chrono::Utc::now()));
    /// ```
    pub fn new(
        subject: impl Into<String>,
        predicate: &str,
        object: impl Into<String>,
    ) -> Result<Self, InvalidFact> {
        let subject = subject.into();
        let object = object.into();
        if subject.trim().is_empty() {
            return Err(InvalidFact::EmptySubject);
        }
        if object.trim().is_empty() {
            return Err(InvalidFact::EmptyObject);
        }
        let now = Utc::now();
        Ok(Self {
            id: format!("fact_{}", ulid::Ulid::new()),
            subject,
            predicate: canonical_predicate(predicate)?,
            object,
            confidence: 1.0,
            valid_from: now,
            valid_until: None,
            recorded_at: now,
            sources: Vec::new(),
        })
    }

    /// The same fact, valid from `at`.
    pub fn valid_from(mut self, at: DateTime<Utc>) -> Self {
        self.valid_from = at;
        self
    }

    /// The same fact, valid until `at`.
    pub fn valid_until(mut self, at: DateTime<Utc>) -> Self {
        self.valid_until = Some(at);
        self
    }

    /// The same fact with `confidence` (clamped to 0.0..=1.0).
    pub fn confidence(mut self, confidence: f32) -> Self {
        self.confidence = if confidence.is_nan() {
            0.0
        } else {
            confidence.clamp(0.0, 1.0)
        };
        self
    }

    /// The same fact, also sourced from `source`.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.sources.push(source.into());
        self
    }

    /// The fact as a store keeps it: subject and object not blank, the
    /// predicate canonical, confidence in 0.0..=1.0. Stores call this on
    /// every fact they are given, since the fields are public.
    pub fn validated(mut self) -> Result<Self, InvalidFact> {
        if self.subject.trim().is_empty() {
            return Err(InvalidFact::EmptySubject);
        }
        if self.object.trim().is_empty() {
            return Err(InvalidFact::EmptyObject);
        }
        self.predicate = canonical_predicate(&self.predicate)?;
        if let Some(until) = self.valid_until
            && until < self.valid_from
        {
            return Err(InvalidFact::EndsBeforeStart {
                valid_from: self.valid_from,
                valid_until: until,
            });
        }
        let confidence = self.confidence;
        Ok(self.confidence(confidence))
    }

    /// Whether it holds at `at`: `valid_from <= at < valid_until`.
    pub fn holds_at(&self, at: DateTime<Utc>) -> bool {
        self.valid_from <= at && self.valid_until.is_none_or(|until| at < until)
    }

    /// Whether its validity overlaps `other`'s.
    fn overlaps(&self, other: &Fact) -> bool {
        self.valid_until.is_none_or(|u| other.valid_from < u)
            && other.valid_until.is_none_or(|u| self.valid_from < u)
    }
}

/// Why a fact was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidFact {
    /// The subject is empty.
    #[error("a fact needs a subject (who or what it is about); got an empty one")]
    EmptySubject,
    /// The object is empty.
    #[error("a fact needs an object (its value); got an empty one")]
    EmptyObject,
    /// The predicate has no letter or digit.
    #[error(
        "the predicate `{0}` has no letter or digit; name the relation, e.g. `lives_in` or `name is`"
    )]
    EmptyPredicate(String),
    /// `valid_until` is before `valid_from`.
    #[error(
        "a fact cannot stop holding ({valid_until}) before it starts ({valid_from}); \
         swap the two times or leave `valid_until` unset"
    )]
    EndsBeforeStart {
        /// When it starts.
        valid_from: DateTime<Utc>,
        /// The earlier end.
        valid_until: DateTime<Utc>,
    },
}

/// The canonical form of a predicate: lower snake case, so that `NameIs`,
/// `name-is`, `name is` and `NAME_IS` are one relation (`name_is`).
///
/// Words are split at case changes (`HTTPCode` → `http_code`) and at any
/// run of characters that are not letters or digits.
///
/// ```
/// use loomflow_core::memory::canonical_predicate;
/// for p in ["NameIs", "name-is", "name is", "  NAME_IS ", "name.is"] {
///     assert_eq!(canonical_predicate(p).unwrap(), "name_is");
/// }
/// assert_eq!(canonical_predicate("worksAtHTTPCompany").unwrap(), "works_at_http_company");
/// assert!(canonical_predicate("--").is_err());
/// ```
pub fn canonical_predicate(predicate: &str) -> Result<String, InvalidFact> {
    let chars: Vec<char> = predicate.chars().collect();
    let mut out = String::with_capacity(predicate.len() + 4);
    // A word ends at a non-alphanumeric run, before an upper-case letter
    // that follows a lower-case letter or digit, and before the last upper
    // of an acronym that a lower-case letter follows (`HTTPCode`).
    let mut pending_break = false;
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            pending_break = true;
            continue;
        }
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1).copied();
        let case_break = c.is_uppercase()
            && prev.is_some_and(|p| {
                p.is_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_uppercase() && next.is_some_and(char::is_lowercase))
            });
        if !out.is_empty() && (pending_break || case_break) {
            out.push('_');
        }
        pending_break = false;
        out.extend(c.to_lowercase());
    }
    if out.is_empty() {
        return Err(InvalidFact::EmptyPredicate(predicate.to_owned()));
    }
    Ok(out)
}

/// What storing a new fact changes in the facts already stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Supersession {
    /// Stored facts to close: (fact id, its new `valid_until`).
    pub close: Vec<(String, DateTime<Utc>)>,
    /// The new fact's own `valid_until`, when a stored fact that starts
    /// later supersedes it (a backfilled fact).
    pub new_valid_until: Option<DateTime<Utc>>,
}

impl Supersession {
    /// Carries the plan out on copies: sets `new`'s `valid_until` if the
    /// plan says so and returns the stored facts of `existing` it closes,
    /// with their new `valid_until`, ready to be written back.
    pub fn apply(&self, existing: &[Fact], new: &mut Fact) -> Vec<Fact> {
        if let Some(until) = self.new_valid_until {
            new.valid_until = Some(until);
        }
        self.close
            .iter()
            .filter_map(|(id, until)| {
                let mut closed = existing.iter().find(|f| &f.id == id)?.clone();
                closed.valid_until = Some(*until);
                Some(closed)
            })
            .collect()
    }
}

/// The valid-time rule (as in Zep/Graphiti and the reference): among the
/// user's stored facts with the new fact's subject and predicate, a
/// different object, and validity that overlaps the new fact's,
///
/// - a stored fact that started no later than the new one ends where the
///   new one starts;
/// - a stored fact that started later ends the new one where it starts.
///
/// The outcome does not depend on the order the facts arrive in, and no
/// interval is closed before it opens. `existing` must hold one user's
/// facts; facts with the same object are left alone (a repeat, not a
/// change).
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use loomflow_core::memory::{Fact, plan_supersession};
/// let jan = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
/// let jun = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
/// let paris = Fact::new("alice", "lives_in", "Paris").unwrap().valid_from(jan);
/// let rome = Fact::new("alice", "lives in", "Rome").unwrap().valid_from(jun);
/// let plan = plan_supersession(&[paris.clone()], &rome);
/// assert_eq!(plan.close, vec![(paris.id.clone(), jun)]);
/// assert_eq!(plan.new_valid_until, None);
/// ```
pub fn plan_supersession(existing: &[Fact], new: &Fact) -> Supersession {
    let mut plan = Supersession::default();
    for old in existing {
        if old.id == new.id
            || old.subject != new.subject
            || old.predicate != new.predicate
            || old.object == new.object
            || !old.overlaps(new)
        {
            continue;
        }
        if old.valid_from <= new.valid_from {
            plan.close.push((old.id.clone(), new.valid_from));
        } else {
            // Overlapping, so `old.valid_from` is before the new fact's end.
            let end = plan
                .new_valid_until
                .map_or(old.valid_from, |u| u.min(old.valid_from));
            plan.new_valid_until = Some(end);
        }
    }
    plan
}

/// Applies [`plan_supersession`] to an in-memory list of one user's facts
/// and appends `new`: what a store does in one transaction. Returns `new`
/// as stored.
pub fn supersede_and_push(facts: &mut Vec<Fact>, mut new: Fact) -> Fact {
    let plan = plan_supersession(facts, &new);
    for (id, until) in &plan.close {
        if let Some(old) = facts.iter_mut().find(|f| &f.id == id) {
            old.valid_until = Some(*until);
        }
    }
    if let Some(until) = plan.new_valid_until {
        new.valid_until = Some(until);
    }
    facts.push(new.clone());
    new
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn at(month: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, month, 1, 0, 0, 0).unwrap()
    }

    fn fact(object: &str, from: u32) -> Fact {
        Fact::new("alice", "lives_in", object)
            .unwrap()
            .valid_from(at(from))
    }

    fn intervals(facts: &[Fact]) -> Vec<(String, DateTime<Utc>, Option<DateTime<Utc>>)> {
        let mut v: Vec<_> = facts
            .iter()
            .map(|f| (f.object.clone(), f.valid_from, f.valid_until))
            .collect();
        v.sort_by_key(|(_, from, _)| *from);
        v
    }

    #[test]
    fn arrival_order_does_not_change_the_outcome() {
        let (paris, rome, oslo) = (fact("Paris", 1), fact("Rome", 6), fact("Oslo", 9));
        let want = vec![
            ("Paris".to_owned(), at(1), Some(at(6))),
            ("Rome".to_owned(), at(6), Some(at(9))),
            ("Oslo".to_owned(), at(9), None),
        ];
        let orders = [
            [&paris, &rome, &oslo],
            [&oslo, &rome, &paris],
            [&rome, &oslo, &paris],
            [&oslo, &paris, &rome],
        ];
        for order in orders {
            let mut facts = Vec::new();
            for f in order {
                supersede_and_push(&mut facts, f.clone());
            }
            assert_eq!(intervals(&facts), want);
        }
    }

    #[test]
    fn no_interval_is_closed_before_it_opens() {
        let mut facts = Vec::new();
        supersede_and_push(&mut facts, fact("Rome", 6));
        supersede_and_push(&mut facts, fact("Paris", 1));
        for f in &facts {
            if let Some(until) = f.valid_until {
                assert!(until >= f.valid_from, "{f:?}");
            }
        }
        // A fact that ended before the new one starts is not touched.
        let mut facts = vec![fact("Paris", 1).valid_until(at(3))];
        supersede_and_push(&mut facts, fact("Rome", 6));
        assert_eq!(facts[0].valid_until, Some(at(3)));
    }

    #[test]
    fn other_subjects_predicates_and_repeats_are_left_alone() {
        let mut facts = vec![
            fact("Paris", 1),
            Fact::new("bob", "lives_in", "Paris")
                .unwrap()
                .valid_from(at(1)),
            Fact::new("alice", "works_at", "Acme")
                .unwrap()
                .valid_from(at(1)),
        ];
        supersede_and_push(&mut facts, fact("Paris", 3));
        assert!(facts.iter().all(|f| f.valid_until.is_none()));
        supersede_and_push(&mut facts, fact("Rome", 6));
        let closed: Vec<_> = facts
            .iter()
            .filter(|f| f.valid_until.is_some())
            .map(|f| (f.subject.as_str(), f.object.as_str()))
            .collect();
        assert_eq!(closed, [("alice", "Paris"), ("alice", "Paris")]);
    }

    #[test]
    fn holds_at_is_half_open() {
        let f = fact("Paris", 1).valid_until(at(6));
        assert!(f.holds_at(at(1)));
        assert!(f.holds_at(at(5)));
        assert!(!f.holds_at(at(6)));
        assert!(!f.holds_at(Utc.with_ymd_and_hms(2025, 12, 31, 0, 0, 0).unwrap()));
    }

    #[test]
    fn predicates_canonicalise() {
        for (raw, want) in [
            ("NameIs", "name_is"),
            ("name-is", "name_is"),
            ("name is", "name_is"),
            ("name__is", "name_is"),
            ("HTTPCode", "http_code"),
            ("livesIn2026", "lives_in2026"),
            ("préfère", "préfère"),
            ("Est Né À", "est_né_à"),
        ] {
            assert_eq!(canonical_predicate(raw).unwrap(), want, "{raw}");
        }
        let err = canonical_predicate(" - ").unwrap_err();
        assert!(err.to_string().contains("no letter or digit"), "{err}");
        assert_eq!(
            Fact::new(" ", "is", "x").unwrap_err(),
            InvalidFact::EmptySubject
        );
    }
}
