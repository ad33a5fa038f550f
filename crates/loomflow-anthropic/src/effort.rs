//! Effort on Claude: adaptive thinking with `output_config.effort` on the
//! models that have it, a thinking budget on the extended-thinking-only ones.

use loomflow_model::Effort;
use loomflow_model::Effort::{High, Low, Max, Medium, Xhigh};

use crate::wire::Thinking;

/// How a model thinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Regime {
    /// `thinking: {type: adaptive}` + `output_config.effort` (these levels).
    Adaptive(&'static [Effort]),
    /// `thinking: {type: enabled, budget_tokens}`, plus `output_config.effort`
    /// at these levels where the model also takes it (Opus 4.5).
    Extended(Option<&'static [Effort]>),
}

const ALL: &[Effort] = &[Low, Medium, High, Xhigh, Max];
const NO_XHIGH: &[Effort] = &[Low, Medium, High, Max];

/// Per-model thinking support (Anthropic's effort and extended-thinking
/// docs), matched by longest prefix.
const MODELS: &[(&str, Regime)] = &[
    ("claude-fable", Regime::Adaptive(ALL)),
    ("claude-mythos-preview", Regime::Adaptive(NO_XHIGH)),
    ("claude-mythos", Regime::Adaptive(ALL)),
    ("claude-opus-5", Regime::Adaptive(ALL)),
    ("claude-opus-4-8", Regime::Adaptive(ALL)),
    ("claude-opus-4-7", Regime::Adaptive(ALL)),
    ("claude-opus-4-6", Regime::Adaptive(NO_XHIGH)),
    (
        "claude-opus-4-5",
        Regime::Extended(Some(&[Low, Medium, High])),
    ),
    ("claude-opus-4", Regime::Extended(None)),
    ("claude-sonnet-5", Regime::Adaptive(ALL)),
    ("claude-sonnet-4-6", Regime::Adaptive(NO_XHIGH)),
    ("claude-sonnet-4", Regime::Extended(None)),
    ("claude-sonnet-3-7", Regime::Extended(None)),
    ("claude-3-7-sonnet", Regime::Extended(None)),
    ("claude-haiku-5", Regime::Adaptive(ALL)),
    ("claude-haiku-4-5", Regime::Extended(None)),
];

/// The thinking regime of `model` (canonical name), if it thinks at all.
pub(crate) fn regime(model: &str) -> Option<Regime> {
    MODELS
        .iter()
        .filter(|(prefix, _)| model.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, r)| *r)
}

/// The thinking budget for an effort on the extended regime (1024 is the
/// API's minimum; the rest roughly tracks the dial).
pub(crate) fn budget(effort: Effort) -> u32 {
    match effort {
        Effort::Minimal => 1024,
        Effort::Low => 2048,
        Effort::Medium => 4096,
        Effort::High => 8192,
        Effort::Xhigh => 16384,
        Effort::Max => 32768,
    }
}

/// `thinking` and `output_config.effort` for `effort` under `regime`.
pub(crate) fn thinking_for(regime: Regime, effort: Effort) -> (Thinking, Option<&'static str>) {
    match regime {
        Regime::Adaptive(levels) => (Thinking::Adaptive, Some(effort.clamp_to(levels).as_str())),
        Regime::Extended(levels) => (
            Thinking::Enabled {
                budget_tokens: budget(effort),
            },
            levels.map(|l| effort.clamp_to(l).as_str()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_levels_clamp() {
        assert_eq!(
            regime("claude-opus-4-6-20260101"),
            Some(Regime::Adaptive(NO_XHIGH))
        );
        assert_eq!(regime("claude-opus-4-1"), Some(Regime::Extended(None)));
        assert_eq!(regime("claude-3-haiku-20240307"), None);
        let (t, e) = thinking_for(Regime::Adaptive(NO_XHIGH), Effort::Xhigh);
        assert!(matches!(t, Thinking::Adaptive));
        assert_eq!(e, Some("high"));
        let (t, e) = thinking_for(regime("claude-opus-4-5").unwrap(), Effort::Minimal);
        assert!(matches!(
            t,
            Thinking::Enabled {
                budget_tokens: 1024
            }
        ));
        assert_eq!(e, Some("low"));
    }
}
