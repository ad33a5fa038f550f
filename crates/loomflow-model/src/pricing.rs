//! What a model call costs: a price table per million tokens for the current
//! models of each provider (an October 2026 snapshot of the official list
//! prices), gateway ids canonicalised, per-model overrides, long-context
//! tiers and cache-read / cache-write rates.
//!
//! ```
//! use loomflow_model::pricing::{cost_usd, canonical_model_name};
//! use loomflow_model::Usage;
//!
//! let usage = Usage { input_tokens: 1_000_000, output_tokens: 1_000_000, ..Usage::default() };
//! assert_eq!(cost_usd("gpt-4.1-mini-2026-05-13", &usage, None), 0.40 + 1.60);
//! assert_eq!(canonical_model_name("anthropic/claude-haiku-5.5"), "claude-haiku-5-5");
//! assert_eq!(cost_usd("openrouter/some-model:free", &usage, None), 0.0);
//! ```

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use crate::message::Usage;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rates {
    /// Uncached input.
    pub input: f64,
    /// Output.
    pub output: f64,
    /// Input served from the prompt cache; when absent, the provider's
    /// discount applies to `input` (OpenAI 0.5×, 0.25× for GPT-4.1, 0.1× for
    /// GPT-5 and later; Anthropic, Gemini and DeepSeek 0.1×).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
}

impl Rates {
    /// Rates for input and output, cached input at the provider's discount.
    pub fn new(input: f64, output: f64) -> Self {
        Self {
            input,
            output,
            cached_input: None,
        }
    }

    /// Sets an absolute cached-input rate (for gateways whose cache price is
    /// not the usual fraction of the input price).
    pub fn with_cached_input(mut self, rate: f64) -> Self {
        self.cached_input = Some(rate);
        self
    }
}

/// Which prompt-cache lifetime was written (Anthropic bills 1.25× input for
/// five minutes, 2× for an hour).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheTtl {
    /// Five minutes (the default).
    #[default]
    FiveMinutes,
    /// One hour.
    OneHour,
}

impl std::str::FromStr for CacheTtl {
    type Err = crate::error::ConfigError;

    /// `"5m"` or `"1h"`; anything else is a [`ConfigError`](crate::ConfigError)
    /// listing both.
    ///
    /// ```
    /// use loomflow_model::pricing::CacheTtl;
    /// assert_eq!("1h".parse::<CacheTtl>().unwrap(), CacheTtl::OneHour);
    /// let err = "2h".parse::<CacheTtl>().unwrap_err().to_string();
    /// assert!(err.contains(r#"valid choices are "5m", "1h""#), "{err}");
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "5m" => Ok(Self::FiveMinutes),
            "1h" => Ok(Self::OneHour),
            other => Err(crate::error::ConfigError::invalid(
                "prompt_caching.ttl",
                format!("unknown cache lifetime {other:?}; valid choices are \"5m\", \"1h\""),
            )),
        }
    }
}

/// The list prices, by model id; lookups fall back to the longest prefix.
pub static PRICES: &[(&str, Rates)] = &[
    (
        "gpt-6-astra",
        Rates {
            input: 10.0,
            output: 50.0,
            cached_input: Some(1.0),
        },
    ),
    (
        "gpt-6.1-sol",
        Rates {
            input: 2.0,
            output: 10.0,
            cached_input: Some(0.1),
        },
    ),
    (
        "gpt-6-sol",
        Rates {
            input: 2.0,
            output: 10.0,
            cached_input: Some(0.2),
        },
    ),
    (
        "gpt-6-luna",
        Rates {
            input: 0.1,
            output: 0.5,
            cached_input: Some(0.01),
        },
    ),
    (
        "gpt-5.6-sol",
        Rates {
            input: 4.0,
            output: 20.0,
            cached_input: Some(0.4),
        },
    ),
    (
        "gpt-5.6-terra",
        Rates {
            input: 2.0,
            output: 12.0,
            cached_input: Some(0.2),
        },
    ),
    (
        "gpt-5.6-luna",
        Rates {
            input: 0.2,
            output: 1.2,
            cached_input: Some(0.02),
        },
    ),
    (
        "gpt-5.5",
        Rates {
            input: 5.0,
            output: 30.0,
            cached_input: Some(0.5),
        },
    ),
    (
        "gpt-5.5-pro",
        Rates {
            input: 30.0,
            output: 180.0,
            cached_input: Some(30.0),
        },
    ),
    (
        "gpt-5.4",
        Rates {
            input: 2.5,
            output: 15.0,
            cached_input: Some(0.25),
        },
    ),
    (
        "gpt-5.4-mini",
        Rates {
            input: 0.75,
            output: 4.5,
            cached_input: Some(0.075),
        },
    ),
    (
        "gpt-5.4-nano",
        Rates {
            input: 0.2,
            output: 1.25,
            cached_input: Some(0.02),
        },
    ),
    (
        "gpt-5.4-pro",
        Rates {
            input: 30.0,
            output: 180.0,
            cached_input: Some(30.0),
        },
    ),
    (
        "gpt-5.3-codex",
        Rates {
            input: 1.75,
            output: 14.0,
            cached_input: Some(0.175),
        },
    ),
    (
        "gpt-5.2",
        Rates {
            input: 1.75,
            output: 14.0,
            cached_input: Some(0.175),
        },
    ),
    (
        "gpt-5.2-pro",
        Rates {
            input: 21.0,
            output: 168.0,
            cached_input: Some(21.0),
        },
    ),
    (
        "gpt-5.1",
        Rates {
            input: 1.25,
            output: 10.0,
            cached_input: Some(0.125),
        },
    ),
    (
        "gpt-5-search-api",
        Rates {
            input: 1.25,
            output: 10.0,
            cached_input: Some(0.125),
        },
    ),
    (
        "gpt-5",
        Rates {
            input: 1.25,
            output: 10.0,
            cached_input: Some(0.125),
        },
    ),
    (
        "gpt-5-pro",
        Rates {
            input: 15.0,
            output: 120.0,
            cached_input: Some(15.0),
        },
    ),
    (
        "gpt-5-mini",
        Rates {
            input: 0.25,
            output: 2.0,
            cached_input: Some(0.025),
        },
    ),
    (
        "gpt-5-nano",
        Rates {
            input: 0.05,
            output: 0.4,
            cached_input: Some(0.005),
        },
    ),
    (
        "chat-latest",
        Rates {
            input: 5.0,
            output: 30.0,
            cached_input: Some(0.5),
        },
    ),
    (
        "gpt-4.1",
        Rates {
            input: 2.0,
            output: 8.0,
            cached_input: Some(0.5),
        },
    ),
    (
        "gpt-4.1-mini",
        Rates {
            input: 0.4,
            output: 1.6,
            cached_input: Some(0.1),
        },
    ),
    (
        "gpt-4.1-nano",
        Rates {
            input: 0.1,
            output: 0.4,
            cached_input: Some(0.025),
        },
    ),
    (
        "gpt-4o",
        Rates {
            input: 2.5,
            output: 10.0,
            cached_input: Some(1.25),
        },
    ),
    (
        "gpt-4o-2024-05-13",
        Rates {
            input: 5.0,
            output: 15.0,
            cached_input: Some(5.0),
        },
    ),
    (
        "gpt-4o-mini",
        Rates {
            input: 0.15,
            output: 0.6,
            cached_input: Some(0.075),
        },
    ),
    (
        "gpt-4-turbo",
        Rates {
            input: 10.0,
            output: 30.0,
            cached_input: Some(10.0),
        },
    ),
    (
        "gpt-4",
        Rates {
            input: 30.0,
            output: 60.0,
            cached_input: Some(30.0),
        },
    ),
    (
        "gpt-3.5-turbo",
        Rates {
            input: 0.5,
            output: 1.5,
            cached_input: Some(0.5),
        },
    ),
    (
        "o1",
        Rates {
            input: 15.0,
            output: 60.0,
            cached_input: Some(7.5),
        },
    ),
    (
        "o1-pro",
        Rates {
            input: 150.0,
            output: 600.0,
            cached_input: Some(150.0),
        },
    ),
    (
        "o1-preview",
        Rates {
            input: 15.0,
            output: 60.0,
            cached_input: Some(7.5),
        },
    ),
    (
        "o1-mini",
        Rates {
            input: 3.0,
            output: 12.0,
            cached_input: Some(1.5),
        },
    ),
    (
        "o3-pro",
        Rates {
            input: 20.0,
            output: 80.0,
            cached_input: Some(20.0),
        },
    ),
    (
        "o3",
        Rates {
            input: 2.0,
            output: 8.0,
            cached_input: Some(0.5),
        },
    ),
    (
        "o3-mini",
        Rates {
            input: 1.1,
            output: 4.4,
            cached_input: Some(0.55),
        },
    ),
    (
        "o4-mini",
        Rates {
            input: 1.1,
            output: 4.4,
            cached_input: Some(0.275),
        },
    ),
    (
        "claude-fable-5-1",
        Rates {
            input: 10.0,
            output: 50.0,
            cached_input: Some(0.25),
        },
    ),
    (
        "claude-mythos-5-1",
        Rates {
            input: 10.0,
            output: 50.0,
            cached_input: Some(0.25),
        },
    ),
    (
        "claude-fable-5",
        Rates {
            input: 10.0,
            output: 50.0,
            cached_input: None,
        },
    ),
    (
        "claude-mythos-5",
        Rates {
            input: 10.0,
            output: 50.0,
            cached_input: None,
        },
    ),
    (
        "claude-fable",
        Rates {
            input: 10.0,
            output: 50.0,
            cached_input: None,
        },
    ),
    (
        "claude-mythos",
        Rates {
            input: 10.0,
            output: 50.0,
            cached_input: None,
        },
    ),
    (
        "claude-opus-5-5",
        Rates {
            input: 4.0,
            output: 20.0,
            cached_input: Some(0.2),
        },
    ),
    (
        "claude-opus-5",
        Rates {
            input: 5.0,
            output: 25.0,
            cached_input: None,
        },
    ),
    (
        "claude-opus-4-8",
        Rates {
            input: 5.0,
            output: 25.0,
            cached_input: None,
        },
    ),
    (
        "claude-opus-4-7",
        Rates {
            input: 5.0,
            output: 25.0,
            cached_input: None,
        },
    ),
    (
        "claude-opus-4-6",
        Rates {
            input: 5.0,
            output: 25.0,
            cached_input: None,
        },
    ),
    (
        "claude-opus-4-5",
        Rates {
            input: 5.0,
            output: 25.0,
            cached_input: None,
        },
    ),
    (
        "claude-opus-4-1",
        Rates {
            input: 15.0,
            output: 75.0,
            cached_input: None,
        },
    ),
    (
        "claude-opus-4-0",
        Rates {
            input: 15.0,
            output: 75.0,
            cached_input: None,
        },
    ),
    (
        "claude-opus-4-20250514",
        Rates {
            input: 15.0,
            output: 75.0,
            cached_input: None,
        },
    ),
    (
        "claude-opus",
        Rates {
            input: 5.0,
            output: 25.0,
            cached_input: None,
        },
    ),
    (
        "claude-sonnet-5-5",
        Rates {
            input: 2.0,
            output: 10.0,
            cached_input: Some(0.1),
        },
    ),
    (
        "claude-sonnet-5",
        Rates {
            input: 2.0,
            output: 10.0,
            cached_input: None,
        },
    ),
    (
        "claude-sonnet-4-6",
        Rates {
            input: 3.0,
            output: 15.0,
            cached_input: None,
        },
    ),
    (
        "claude-sonnet-4-5",
        Rates {
            input: 3.0,
            output: 15.0,
            cached_input: None,
        },
    ),
    (
        "claude-sonnet-4-0",
        Rates {
            input: 3.0,
            output: 15.0,
            cached_input: None,
        },
    ),
    (
        "claude-sonnet-4-20250514",
        Rates {
            input: 3.0,
            output: 15.0,
            cached_input: None,
        },
    ),
    (
        "claude-sonnet",
        Rates {
            input: 3.0,
            output: 15.0,
            cached_input: None,
        },
    ),
    (
        "claude-haiku-5-5",
        Rates {
            input: 0.1,
            output: 0.5,
            cached_input: None,
        },
    ),
    (
        "claude-haiku-4-5",
        Rates {
            input: 1.0,
            output: 5.0,
            cached_input: None,
        },
    ),
    (
        "claude-haiku",
        Rates {
            input: 1.0,
            output: 5.0,
            cached_input: None,
        },
    ),
    (
        "claude-3-5-sonnet",
        Rates {
            input: 3.0,
            output: 15.0,
            cached_input: None,
        },
    ),
    (
        "claude-3-5-haiku",
        Rates {
            input: 0.8,
            output: 4.0,
            cached_input: None,
        },
    ),
    (
        "claude-3-opus",
        Rates {
            input: 15.0,
            output: 75.0,
            cached_input: None,
        },
    ),
    (
        "claude-3-haiku",
        Rates {
            input: 0.25,
            output: 1.25,
            cached_input: None,
        },
    ),
    (
        "jev",
        Rates {
            input: 0.042,
            output: 0.0,
            cached_input: None,
        },
    ),
    (
        "deepseek-flash",
        Rates {
            input: 0.3,
            output: 1.2,
            cached_input: Some(0.006),
        },
    ),
    (
        "deepseek-v4-flash",
        Rates {
            input: 0.3,
            output: 1.2,
            cached_input: Some(0.006),
        },
    ),
    (
        "deepseek-v4-pro",
        Rates {
            input: 1.32,
            output: 3.96,
            cached_input: Some(0.044),
        },
    ),
    (
        "deepseek-chat",
        Rates {
            input: 0.28,
            output: 0.42,
            cached_input: None,
        },
    ),
    (
        "deepseek-reasoner",
        Rates {
            input: 0.28,
            output: 0.42,
            cached_input: None,
        },
    ),
    (
        "mistral-large",
        Rates {
            input: 3.0,
            output: 9.0,
            cached_input: None,
        },
    ),
    (
        "mistral-medium",
        Rates {
            input: 2.7,
            output: 8.1,
            cached_input: None,
        },
    ),
    (
        "mistral-small",
        Rates {
            input: 1.0,
            output: 3.0,
            cached_input: None,
        },
    ),
    (
        "command-r-plus",
        Rates {
            input: 3.0,
            output: 15.0,
            cached_input: None,
        },
    ),
    (
        "command-r",
        Rates {
            input: 0.15,
            output: 0.6,
            cached_input: None,
        },
    ),
    (
        "gemini-1.5-pro",
        Rates {
            input: 1.25,
            output: 5.0,
            cached_input: None,
        },
    ),
    (
        "gemini-1.5-flash",
        Rates {
            input: 0.075,
            output: 0.3,
            cached_input: None,
        },
    ),
    (
        "gemini-2.0-flash",
        Rates {
            input: 0.1,
            output: 0.4,
            cached_input: None,
        },
    ),
    (
        "gemini-2.5-pro",
        Rates {
            input: 1.25,
            output: 10.0,
            cached_input: Some(0.125),
        },
    ),
    (
        "gemini-2.5-flash",
        Rates {
            input: 0.3,
            output: 2.5,
            cached_input: Some(0.03),
        },
    ),
    (
        "gemini-2.5-flash-lite",
        Rates {
            input: 0.1,
            output: 0.4,
            cached_input: Some(0.01),
        },
    ),
    (
        "gemini-3-pro",
        Rates {
            input: 2.0,
            output: 12.0,
            cached_input: Some(0.2),
        },
    ),
    (
        "gemini-3-flash",
        Rates {
            input: 0.5,
            output: 3.0,
            cached_input: Some(0.05),
        },
    ),
];

/// Long-context tiers: above this many prompt tokens, the whole request bills
/// at the higher rates.
static LONG_CONTEXT: &[(&str, u64, Rates)] = &[
    (
        "claude-haiku-5-5",
        100000,
        Rates {
            input: 0.5,
            output: 2.5,
            cached_input: Some(0.05),
        },
    ),
    (
        "gpt-6-astra",
        272000,
        Rates {
            input: 20.0,
            output: 75.0,
            cached_input: Some(2.0),
        },
    ),
    (
        "gpt-6.1-sol",
        272000,
        Rates {
            input: 4.0,
            output: 15.0,
            cached_input: Some(0.2),
        },
    ),
    (
        "gpt-6-sol",
        272000,
        Rates {
            input: 4.0,
            output: 15.0,
            cached_input: Some(0.4),
        },
    ),
    (
        "gpt-6-luna",
        272000,
        Rates {
            input: 0.2,
            output: 0.75,
            cached_input: Some(0.02),
        },
    ),
    (
        "gpt-5.6-sol",
        272000,
        Rates {
            input: 8.0,
            output: 30.0,
            cached_input: Some(0.8),
        },
    ),
    (
        "gpt-5.6-terra",
        272000,
        Rates {
            input: 4.0,
            output: 18.0,
            cached_input: Some(0.4),
        },
    ),
    (
        "gpt-5.6-luna",
        272000,
        Rates {
            input: 0.4,
            output: 1.8,
            cached_input: Some(0.04),
        },
    ),
    (
        "gpt-5.5",
        272000,
        Rates {
            input: 10.0,
            output: 45.0,
            cached_input: Some(1.0),
        },
    ),
    (
        "gpt-5.5-pro",
        272000,
        Rates {
            input: 60.0,
            output: 270.0,
            cached_input: Some(60.0),
        },
    ),
    (
        "gpt-5.4",
        272000,
        Rates {
            input: 5.0,
            output: 22.5,
            cached_input: Some(0.5),
        },
    ),
    (
        "gpt-5.4-pro",
        272000,
        Rates {
            input: 60.0,
            output: 270.0,
            cached_input: Some(60.0),
        },
    ),
];

/// Models that share a long-context prefix but have no such tier.
const NO_LONG_CONTEXT: &[&str] = &["gpt-5.4-mini", "gpt-5.4-nano"];

/// Per-model cache-read multipliers that beat the provider default.
const CACHE_READ_OVERRIDE: &[(&str, f64)] = &[("gpt-6", 0.1), ("gpt-5", 0.1), ("gpt-4.1", 0.25)];

/// OpenAI bills cache writes only on these families, at 1.25× input.
const CACHE_WRITE_OVERRIDE: &[(&str, f64)] = &[("gpt-6", 1.25), ("gpt-5.6", 1.25)];

/// Vendor prefixes whose models keep the vendor's own capabilities and
/// prices behind a gateway.
const GATEWAY_VENDORS: &[&str] = &["anthropic/", "openai/", "deepseek/", "google/"];

/// The vendor's own id for a gateway model name, used for every table lookup
/// (prices, capabilities, token limits): `anthropic/claude-haiku-5.5` →
/// `claude-haiku-5-5`, `openai/gpt-5-mini:free` → `gpt-5-mini`. Names without
/// a known vendor prefix come back unchanged. The name sent on the wire is
/// never changed.
pub fn canonical_model_name(name: &str) -> String {
    canonical(name, true)
}

fn canonical(name: &str, strip_variant: bool) -> String {
    let stripped = name.trim();
    let stripped = stripped.strip_prefix('~').unwrap_or(stripped);
    let lowered = stripped.to_ascii_lowercase();
    let Some(vendor) = GATEWAY_VENDORS.iter().find(|v| lowered.starts_with(**v)) else {
        return name.to_owned();
    };
    let mut model = &stripped[vendor.len()..];
    if strip_variant {
        model = model.split(':').next().unwrap_or(model);
    }
    if model.to_ascii_lowercase().starts_with("claude-") {
        model.replace('.', "-")
    } else {
        model.to_owned()
    }
}

fn longest_prefix<'t, T>(table: &'t [(&str, T)], model: &str) -> Option<&'t T> {
    table
        .iter()
        .filter(|(key, _)| model.starts_with(key))
        .max_by_key(|(key, _)| key.len())
        .map(|(_, v)| v)
}

fn provider_for(model: &str) -> &'static str {
    if model.starts_with("claude-") {
        "anthropic"
    } else if model.starts_with("gemini-") {
        "gemini"
    } else if model.starts_with("deepseek") {
        "deepseek"
    } else {
        "openai"
    }
}

/// The list rates for `model` (exact id, then longest prefix, after
/// canonicalising gateway ids); `None` for a model the table does not know.
pub fn rates_for(model: &str) -> Option<Rates> {
    let model = canonical(model, false);
    PRICES
        .iter()
        .find(|(key, _)| *key == model)
        .map(|(_, r)| *r)
        .or_else(|| longest_prefix(PRICES, &model).copied())
}

fn warn_unknown(model: &str) {
    static WARNED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut warned = WARNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if warned.insert(model.to_owned()) {
        tracing::warn!(
            model,
            "cost estimation: unknown model; every call is reported as $0.00, so cost budgets are \
             not enforced for it. Set the adapter's price override (`.price(Rates::new(in, out))`)"
        );
    }
}

/// The USD cost of one call's `usage` on `model`, with `override_rates`
/// (the adapter's per-model override) taking precedence over the table.
/// Token buckets are separate, as in [`Usage`]: uncached input, cache hits,
/// cache writes (billed at the five-minute rate) and output. A model the
/// table does not know costs 0.0 and is warned about once.
pub fn cost_usd(model: &str, usage: &Usage, override_rates: Option<Rates>) -> f64 {
    cost_usd_with_ttl(model, usage, override_rates, CacheTtl::FiveMinutes)
}

/// [`cost_usd`] with the cache-write lifetime stated.
pub fn cost_usd_with_ttl(
    model: &str,
    usage: &Usage,
    override_rates: Option<Rates>,
    ttl: CacheTtl,
) -> f64 {
    if model.is_empty() || (override_rates.is_none() && model.ends_with(":free")) {
        return 0.0;
    }
    let canonical = canonical(model, false);
    let rates = match override_rates.or_else(|| rates_for(&canonical)) {
        Some(r) => r,
        None => {
            warn_unknown(&canonical);
            return 0.0;
        }
    };
    let prompt = usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens;
    let rates = match longest_prefix_tier(&canonical) {
        Some((threshold, tier))
            if override_rates.is_none()
                && prompt > threshold
                && !NO_LONG_CONTEXT.iter().any(|m| canonical.starts_with(m)) =>
        {
            tier
        }
        _ => rates,
    };
    let provider = provider_for(&canonical);
    let cached_rate = rates.cached_input.unwrap_or_else(|| {
        let mult = longest_prefix(CACHE_READ_OVERRIDE, &canonical)
            .copied()
            .unwrap_or(match provider {
                "openai" => 0.5,
                _ => 0.1,
            });
        rates.input * mult
    });
    let write_mult = longest_prefix(CACHE_WRITE_OVERRIDE, &canonical)
        .copied()
        .unwrap_or(match (provider, ttl) {
            ("anthropic", CacheTtl::FiveMinutes) => 1.25,
            ("anthropic", CacheTtl::OneHour) => 2.0,
            _ => 0.0,
        });
    let total = usage.input_tokens as f64 * rates.input
        + usage.cached_input_tokens as f64 * cached_rate
        + usage.cache_write_tokens as f64 * rates.input * write_mult
        + usage.output_tokens as f64 * rates.output;
    total / 1_000_000.0
}

fn longest_prefix_tier(model: &str) -> Option<(u64, Rates)> {
    LONG_CONTEXT
        .iter()
        .filter(|(key, _, _)| model.starts_with(key))
        .max_by_key(|(key, _, _)| key.len())
        .map(|(_, t, r)| (*t, *r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, cached: u64, write: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            cached_input_tokens: cached,
            cache_write_tokens: write,
            output_tokens: output,
            cost_usd: 0.0,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn cache_rates_follow_the_provider() {
        // Anthropic: cache hits at 0.1x, 5-minute writes at 1.25x input.
        let c = cost_usd("claude-haiku-4-5", &usage(0, 1_000_000, 1_000_000, 0), None);
        assert!(close(c, 0.1 + 1.25), "{c}");
        // OpenAI GPT-4.1: absolute cached rate from the table; writes free.
        let c = cost_usd("gpt-4.1", &usage(0, 1_000_000, 1_000_000, 0), None);
        assert!(close(c, 0.5), "{c}");
        // GPT-4o-mini's table entry carries its cached rate.
        let c = cost_usd("gpt-4o-mini", &usage(0, 1_000_000, 0, 0), None);
        assert!(close(c, 0.075), "{c}");
    }

    #[test]
    fn long_context_tier_bills_the_whole_request() {
        let small = cost_usd("gpt-5.4", &usage(100_000, 0, 0, 0), None);
        assert!(close(small, 0.25), "{small}");
        let big = cost_usd("gpt-5.4", &usage(300_000, 0, 0, 0), None);
        assert!(close(big, 1.5), "{big}");
        let mini = cost_usd("gpt-5.4-mini", &usage(300_000, 0, 0, 0), None);
        assert!(close(mini, 0.225), "{mini}");
    }

    #[test]
    fn overrides_and_unknowns() {
        let u = usage(1_000_000, 0, 0, 0);
        assert!(close(
            cost_usd("my-model", &u, Some(Rates::new(3.0, 4.0))),
            3.0
        ));
        assert_eq!(cost_usd("my-model", &u, None), 0.0);
        assert!(close(
            cost_usd("anthropic/claude-sonnet-4.6", &u, None),
            3.0
        ));
        assert_eq!(
            rates_for("deepseek/deepseek-chat").map(|r| r.input),
            Some(0.28)
        );
    }
}
