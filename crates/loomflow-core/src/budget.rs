//! Spending caps: per run and per user, on tokens (input, output, total),
//! cost and wall clock, with soft warnings.
//!
//! The agent asks the budget before every model call. Over a cap, the run
//! stops cleanly: `interrupted`, `interruption_reason = "budget:<cap>"`
//! (`budget:max_tokens`, `budget:per_user_max_cost_usd`, …), the partial
//! result kept, and a `budget_exceeded` event. Past the soft-warning share
//! of a token or cost cap, a `budget_warning` event (once per run and cap).
//!
//! **Concurrency.** Per-user caps hold across concurrent runs of one user:
//! each admitted model call reserves the largest call seen so far for that
//! user, and close to the cap only one call is in flight at a time. So a
//! user overspends a cap by at most one call, plus, for calls admitted
//! together, what each used beyond the largest call seen before it.
//!
//! ```
//! use std::time::Duration;
//! use loomflow_core::budget::{BudgetConfig, StandardBudget};
//!
//! let budget = StandardBudget::new(BudgetConfig {
//!     max_tokens: Some(20_000),
//!     per_user_max_cost_usd: Some(5.0),
//!     max_wall_clock: Some(Duration::from_secs(120)),
//!     ..BudgetConfig::default()
//! });
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bounded::{BoundedMap, Bounds};
use crate::id::UserId;
use crate::message::Usage;

/// The caps; `None` leaves a dimension uncapped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Input plus output tokens, per run.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Input tokens (cached and cache writes included), per run.
    #[serde(default)]
    pub max_input_tokens: Option<u64>,
    /// Output tokens, per run.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    /// US dollars, per run.
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
    /// Wall clock per run.
    #[serde(default, with = "secs")]
    pub max_wall_clock: Option<Duration>,
    /// Input plus output tokens, per user across runs.
    #[serde(default)]
    pub per_user_max_tokens: Option<u64>,
    /// Input tokens, per user.
    #[serde(default)]
    pub per_user_max_input_tokens: Option<u64>,
    /// Output tokens, per user.
    #[serde(default)]
    pub per_user_max_output_tokens: Option<u64>,
    /// US dollars, per user.
    #[serde(default)]
    pub per_user_max_cost_usd: Option<f64>,
    /// Wall clock per user: time with at least one of the user's runs
    /// going.
    #[serde(default, with = "secs")]
    pub per_user_max_wall_clock: Option<Duration>,
    /// Share of a token or cost cap that triggers a `budget_warning`
    /// (default 0.8).
    #[serde(default = "default_soft")]
    pub soft_warning_at: f64,
}

fn default_soft() -> f64 {
    0.8
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            max_tokens: None,
            max_input_tokens: None,
            max_output_tokens: None,
            max_cost_usd: None,
            max_wall_clock: None,
            per_user_max_tokens: None,
            per_user_max_input_tokens: None,
            per_user_max_output_tokens: None,
            per_user_max_cost_usd: None,
            per_user_max_wall_clock: None,
            soft_warning_at: default_soft(),
        }
    }
}

/// Durations in config files are seconds (`max_wall_clock = 90`); the
/// reference's `max_wall_clock_minutes` is read by the agent config.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        use serde::de::Error;
        match Option::<f64>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
            Some(s) => Err(D::Error::custom(format!(
                "a wall clock must be a positive number of seconds, not {s}"
            ))),
        }
    }
}

impl BudgetConfig {
    fn has_user_caps(&self) -> bool {
        self.per_user_max_tokens.is_some()
            || self.per_user_max_input_tokens.is_some()
            || self.per_user_max_output_tokens.is_some()
            || self.per_user_max_cost_usd.is_some()
            || self.per_user_max_wall_clock.is_some()
    }

    /// Checks the values: positive caps, a soft share in (0, 1].
    pub fn validate(&self) -> Result<(), crate::error::ConfigError> {
        let bad = |field: &str, msg: String| Err(crate::error::ConfigError::invalid(field, msg));
        if !(self.soft_warning_at > 0.0 && self.soft_warning_at <= 1.0) {
            return bad(
                "budget.soft_warning_at",
                format!(
                    "{} is not a share in (0, 1]; 0.8 warns at 80% of a cap",
                    self.soft_warning_at
                ),
            );
        }
        for (name, cap) in [
            ("max_cost_usd", self.max_cost_usd),
            ("per_user_max_cost_usd", self.per_user_max_cost_usd),
        ] {
            if let Some(c) = cap
                && !(c.is_finite() && c >= 0.0)
            {
                return bad(
                    &format!("budget.{name}"),
                    format!("{c} is not a non-negative number of dollars"),
                );
            }
        }
        Ok(())
    }
}

/// What a run (or a user) has spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spend {
    /// Input tokens (cached and cache writes included).
    pub tokens_in: u64,
    /// Output tokens.
    pub tokens_out: u64,
    /// US dollars.
    pub cost_usd: f64,
}

impl Spend {
    /// Input plus output tokens.
    pub fn tokens_total(&self) -> u64 {
        self.tokens_in + self.tokens_out
    }

    fn add(&mut self, usage: &Usage) {
        self.tokens_in += usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens;
        self.tokens_out += usage.output_tokens;
        self.cost_usd += usage.cost_usd;
    }

    fn max(self, other: Spend) -> Spend {
        Spend {
            tokens_in: self.tokens_in.max(other.tokens_in),
            tokens_out: self.tokens_out.max(other.tokens_out),
            cost_usd: self.cost_usd.max(other.cost_usd),
        }
    }
}

/// A user's standing, from [`StandardBudget::usage_for`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct UserUsage {
    /// What the user's runs have spent.
    pub spend: Spend,
    /// Time with at least one of the user's runs going.
    pub wall_clock: Duration,
    /// Model calls admitted and not yet settled.
    pub in_flight: u32,
}

/// A model call the budget let through. Settle it with what the call used;
/// dropped unsettled (the call failed, or the run was cancelled), it frees
/// its reservation without a charge.
#[derive(Debug)]
#[must_use = "settle the admitted call with its usage"]
pub struct Admitted {
    /// Soft warnings now in force (`"tokens at 85%"`).
    pub warnings: Vec<Warning>,
    reservation: Option<(StandardBudget, UserId)>,
}

impl Admitted {
    /// Charges `usage` to the user and frees the reservation.
    pub fn settle(mut self, usage: &Usage) {
        if let Some((budget, user)) = self.reservation.take() {
            budget.settle(&user, usage);
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some((budget, user)) = self.reservation.take() {
            budget.release(&user);
        }
    }
}

/// A soft warning.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    /// Which cap (`max_tokens`, `per_user_max_cost_usd`, …).
    pub cap: &'static str,
    /// `"tokens at 85%"`, `"per-user cost at 91%"`, …
    pub message: String,
}

/// A reached cap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blocked {
    /// Which cap (`max_tokens`, …): the run's reason is `budget:<cap>`.
    pub cap: &'static str,
    /// The cap's value.
    pub limit: f64,
    /// Spent against the cap.
    pub spent: f64,
}

/// Per-user state.
#[derive(Debug, Default)]
struct UserState {
    spend: Spend,
    /// The largest single call seen (per dimension); `None` before the
    /// first settles.
    largest: Option<Spend>,
    in_flight: u32,
    active_runs: u32,
    active_since: Option<Instant>,
    wall: Duration,
}

impl UserState {
    fn wall_clock(&self, now: Instant) -> Duration {
        self.wall
            + self
                .active_since
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }
}

/// What one run has spent and since when, kept by the run.
#[derive(Debug, Clone, Copy)]
pub struct RunSpend {
    /// The run's spend so far.
    pub spend: Spend,
    /// When it started.
    pub started: Instant,
}

/// The standard budget: the caps of a [`BudgetConfig`], per-user state
/// bounded by [`Bounds`] (100,000 users, one idle day by default). Cheap to
/// clone; clones share state.
#[derive(Debug, Clone)]
pub struct StandardBudget {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: BudgetConfig,
    users: Mutex<BoundedMap<UserId, UserState>>,
    settled: tokio::sync::Notify,
}

type Check = (&'static str, Option<f64>, f64);

impl StandardBudget {
    /// A budget with `config` and the default per-user bounds.
    pub fn new(config: BudgetConfig) -> Self {
        Self::with_bounds(config, Bounds::default())
    }

    /// A budget with `config` and per-user state bounded by `bounds`.
    pub fn with_bounds(config: BudgetConfig, bounds: Bounds) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                users: Mutex::new(BoundedMap::new(bounds)),
                settled: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The caps.
    pub fn config(&self) -> &BudgetConfig {
        &self.shared.config
    }

    /// What `user` has spent (zero for a user never seen or expired).
    pub fn usage_for(&self, user: &UserId) -> UserUsage {
        let now = Instant::now();
        let mut users = self.lock();
        users
            .get_mut(user, now)
            .map_or_else(UserUsage::default, |s| UserUsage {
                spend: s.spend,
                wall_clock: s.wall_clock(now),
                in_flight: s.in_flight,
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BoundedMap<UserId, UserState>> {
        self.shared.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A run of `user` starts (its wall clock counts from now).
    pub fn run_started(&self, user: &UserId) {
        if self.shared.config.per_user_max_wall_clock.is_none() {
            return;
        }
        let now = Instant::now();
        let mut users = self.lock();
        let s = users.entry(user, now, UserState::default);
        if s.active_runs == 0 {
            s.active_since = Some(now);
        }
        s.active_runs += 1;
    }

    /// A run of `user` ended.
    pub fn run_finished(&self, user: &UserId) {
        if self.shared.config.per_user_max_wall_clock.is_none() {
            return;
        }
        let now = Instant::now();
        let mut users = self.lock();
        if let Some(s) = users.get_mut(user, now) {
            s.active_runs = s.active_runs.saturating_sub(1);
            if s.active_runs == 0
                && let Some(since) = s.active_since.take()
            {
                s.wall += now.saturating_duration_since(since);
            }
        }
    }

    /// Before a model call of a run of `user` that has spent `run`:
    /// admitted (with any soft warnings), or the cap reached. Close to a
    /// per-user cap while other calls of the user are in flight, waits for
    /// them to settle.
    pub async fn admit(&self, user: &UserId, run: &RunSpend) -> Result<Admitted, Blocked> {
        let cfg = &self.shared.config;
        let now = Instant::now();
        let run_checks: [Check; 5] = [
            (
                "max_tokens",
                cfg.max_tokens.map(|c| c as f64),
                run.spend.tokens_total() as f64,
            ),
            (
                "max_input_tokens",
                cfg.max_input_tokens.map(|c| c as f64),
                run.spend.tokens_in as f64,
            ),
            (
                "max_output_tokens",
                cfg.max_output_tokens.map(|c| c as f64),
                run.spend.tokens_out as f64,
            ),
            ("max_cost_usd", cfg.max_cost_usd, run.spend.cost_usd),
            (
                "max_wall_clock",
                cfg.max_wall_clock.map(|d| d.as_secs_f64()),
                now.saturating_duration_since(run.started).as_secs_f64(),
            ),
        ];
        if let Some(blocked) = first_reached(&run_checks) {
            return Err(blocked);
        }
        let mut warnings = soft_warnings(&run_checks[..4], cfg.soft_warning_at, "");
        if !cfg.has_user_caps() {
            return Ok(Admitted {
                warnings,
                reservation: None,
            });
        }
        loop {
            // Register for the wake-up before looking, so a settle between
            // the look and the wait is not missed.
            let settled = self.shared.settled.notified();
            {
                let now = Instant::now();
                let mut users = self.lock();
                let s = users.entry(user, now, UserState::default);
                let checks = user_checks(cfg, s, now);
                if let Some(blocked) = first_reached(&checks) {
                    return Err(blocked);
                }
                let fits = match s.largest {
                    // Nothing settled yet: the size of a call is unknown,
                    // so one at a time until one settles.
                    None => s.in_flight == 0,
                    Some(largest) => {
                        let reserve = f64::from(s.in_flight + 1);
                        let step = [
                            largest.tokens_total() as f64,
                            largest.tokens_in as f64,
                            largest.tokens_out as f64,
                            largest.cost_usd,
                        ];
                        s.in_flight == 0
                            || checks[..4].iter().zip(step).all(|((_, cap, spent), step)| {
                                cap.is_none_or(|cap| spent + reserve * step <= cap)
                            })
                    }
                };
                if fits {
                    s.in_flight += 1;
                    warnings.extend(soft_warnings(
                        &checks[..4],
                        cfg.soft_warning_at,
                        "per-user ",
                    ));
                    return Ok(Admitted {
                        warnings,
                        reservation: Some((self.clone(), user.clone())),
                    });
                }
            }
            settled.await;
        }
    }

    fn settle(&self, user: &UserId, usage: &Usage) {
        if !self.shared.config.has_user_caps() {
            return;
        }
        {
            let now = Instant::now();
            let mut users = self.lock();
            let s = users.entry(user, now, UserState::default);
            let mut step = Spend::default();
            step.add(usage);
            s.spend.add(usage);
            s.largest = Some(s.largest.map_or(step, |l| l.max(step)));
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.shared.settled.notify_waiters();
    }

    fn release(&self, user: &UserId) {
        if !self.shared.config.has_user_caps() {
            return;
        }
        {
            let mut users = self.lock();
            if let Some(s) = users.get_mut(user, Instant::now()) {
                s.in_flight = s.in_flight.saturating_sub(1);
            }
        }
        self.shared.settled.notify_waiters();
    }
}

fn user_checks(cfg: &BudgetConfig, s: &UserState, now: Instant) -> [Check; 5] {
    [
        (
            "per_user_max_tokens",
            cfg.per_user_max_tokens.map(|c| c as f64),
            s.spend.tokens_total() as f64,
        ),
        (
            "per_user_max_input_tokens",
            cfg.per_user_max_input_tokens.map(|c| c as f64),
            s.spend.tokens_in as f64,
        ),
        (
            "per_user_max_output_tokens",
            cfg.per_user_max_output_tokens.map(|c| c as f64),
            s.spend.tokens_out as f64,
        ),
        (
            "per_user_max_cost_usd",
            cfg.per_user_max_cost_usd,
            s.spend.cost_usd,
        ),
        (
            "per_user_max_wall_clock",
            cfg.per_user_max_wall_clock.map(|d| d.as_secs_f64()),
            s.wall_clock(now).as_secs_f64(),
        ),
    ]
}

/// The first cap reached (`spent >= cap`), in the reference's order.
fn first_reached(checks: &[Check]) -> Option<Blocked> {
    checks.iter().find_map(|&(cap, limit, spent)| {
        let limit = limit?;
        (spent >= limit).then_some(Blocked { cap, limit, spent })
    })
}

/// Warnings for the token and cost caps past `share`: `"tokens at 85%"`.
fn soft_warnings(checks: &[Check], share: f64, prefix: &str) -> Vec<Warning> {
    let mut out = Vec::new();
    for &(cap, limit, spent) in checks {
        let Some(limit) = limit.filter(|l| *l > 0.0) else {
            continue;
        };
        if spent / limit >= share {
            let what = if cap.ends_with("cost_usd") {
                "cost"
            } else if cap.ends_with("input_tokens") {
                "input tokens"
            } else if cap.ends_with("output_tokens") {
                "output tokens"
            } else {
                "tokens"
            };
            out.push(Warning {
                cap,
                message: format!("{prefix}{what} at {:.0}%", spent / limit * 100.0),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            ..Usage::default()
        }
    }

    #[tokio::test]
    async fn run_caps_block_in_order_and_warn() {
        let b = StandardBudget::new(BudgetConfig {
            max_tokens: Some(100),
            max_cost_usd: Some(1.0),
            ..BudgetConfig::default()
        });
        let alice = UserId::new("alice").unwrap();
        let mut run = RunSpend {
            spend: Spend::default(),
            started: Instant::now(),
        };
        assert!(b.admit(&alice, &run).await.unwrap().warnings.is_empty());
        run.spend.add(&usage(60, 25));
        let admitted = b.admit(&alice, &run).await.unwrap();
        assert_eq!(admitted.warnings[0].message, "tokens at 85%");
        run.spend.add(&usage(10, 5));
        assert_eq!(
            b.admit(&alice, &run).await.unwrap_err(),
            Blocked {
                cap: "max_tokens",
                limit: 100.0,
                spent: 100.0
            }
        );
    }

    #[tokio::test]
    async fn per_user_calls_serialise_until_one_settles() {
        let b = StandardBudget::new(BudgetConfig {
            per_user_max_tokens: Some(100),
            ..BudgetConfig::default()
        });
        let u = UserId::new("u").unwrap();
        let run = RunSpend {
            spend: Spend::default(),
            started: Instant::now(),
        };
        let first = b.admit(&u, &run).await.unwrap();
        // The second waits: the first call's size is unknown.
        let b2 = b.clone();
        let u2 = u.clone();
        let second =
            tokio::spawn(async move { b2.admit(&u2, &run).await.map(|a| a.warnings.len()) });
        tokio::task::yield_now().await;
        assert!(!second.is_finished());
        first.settle(&usage(30, 10));
        assert!(second.await.unwrap().is_ok());
        // The second's admission was dropped unsettled: released, uncharged.
        assert_eq!(b.usage_for(&u).in_flight, 0);
        assert_eq!(b.usage_for(&u).spend.tokens_total(), 40);
    }
}
