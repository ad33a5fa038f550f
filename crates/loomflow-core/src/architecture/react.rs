use std::sync::Arc;

use async_trait::async_trait;
use futures_util::future::join_all;
use tracing::Instrument;

use super::{AgentSession, Architecture, RunDeps, StepName};
use crate::error::Result;
use crate::message::{Message, ToolResult};

/// Reason and act: call the model; run the tools it asks for (all calls of a
/// turn concurrently, results appended in call order); repeat until it answers
/// without tool calls, an `ends_turn` tool succeeds, or the turn cap is hit
/// (`max_turns_exceeded`, a clean interruption with a partial result).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReAct {
    max_turns: Option<u32>,
}

impl ReAct {
    /// ReAct with the agent's turn cap.
    pub fn new() -> Self {
        Self::default()
    }

    /// Overrides the agent's turn cap.
    pub fn with_max_turns(max_turns: u32) -> Self {
        Self {
            max_turns: Some(max_turns),
        }
    }
}

#[async_trait]
impl Architecture for ReAct {
    fn name(&self) -> &str {
        "react"
    }

    async fn run(
        &self,
        session: &mut AgentSession,
        deps: &RunDeps<'_>,
        input: Message,
    ) -> Result<()> {
        if session.messages.is_empty() {
            // System, user, four tool rounds and the answer without
            // regrowing.
            session.messages.reserve(11);
        }
        if session.messages.is_empty() && !session.instructions.is_empty() {
            session
                .messages
                .push(Message::system(session.instructions.clone()));
        }
        session.messages.push(input);
        let max_turns = self.max_turns.unwrap_or(deps.max_turns);

        loop {
            if session.turns >= max_turns {
                session.interrupt("max_turns_exceeded");
                return Ok(());
            }
            // Counted once the call returns: a call the budget refuses is
            // not a turn taken.
            let turn = session.turns + 1;
            let span = crate::telemetry::spans::active()
                .then(|| crate::telemetry::turn(turn))
                .filter(|s| !s.is_disabled());
            let done = match span {
                None => one_turn(session, deps, turn).await?,
                // Boxed: the span would otherwise size every run's future.
                Some(span) => Box::pin(one_turn(session, deps, turn).instrument(span)).await?,
            };
            if done {
                return Ok(());
            }
        }
    }
}

/// One turn: the model call and the tools it asks for. True when the loop
/// is done (an answer without calls, or an `ends_turn` tool).
async fn one_turn(session: &mut AgentSession, deps: &RunDeps<'_>, turn: u32) -> Result<bool> {
    let defs = deps.tool_defs().await?;
    let request = deps.request(&session.messages).with_tools(&defs);
    let completion = deps.call_model(StepName::ModelCall(turn), request).await?;
    session.turns = turn;
    session.usage += completion.usage;
    session.output = completion.text;
    let calls = completion.tool_calls;
    let reasoning = completion.reasoning;
    if calls.is_empty() {
        session
            .messages
            .push(Message::assistant(session.output.clone(), calls).with_reasoning(reasoning));
        deps.checkpoint(session).await;
        return Ok(true);
    }

    // Calls are stamped (and possibly edited by an approver) in place, so
    // the assistant message records them as dispatched.
    let mut calls = calls;
    let results: Results = match calls.as_mut_slice() {
        // Boxed: the call's future is large and short-lived; inline it would
        // size this loop's future for the whole run.
        [one] => Results::One(Box::pin(deps.run_tool(&defs, one, turn, 0)).await?),
        many => Results::Many(
            join_all(
                many.iter_mut()
                    .enumerate()
                    .map(|(slot, c)| deps.run_tool(&defs, c, turn, slot)),
            )
            .await
            .into_iter()
            .collect::<Result<_>>()?,
        ),
    };
    session.messages.reserve(1 + results.len());
    session
        .messages
        .push(Message::assistant(session.output.clone(), calls).with_reasoning(reasoning));
    let assistant = session.messages.len() - 1;
    let mut ends_turn = false;
    for (slot, result) in results.enumerate() {
        let call = &session.messages[assistant].tool_calls[slot];
        let def = defs.iter().find(|d| d.name == call.tool);
        ends_turn |= result.ok && def.is_some_and(|d| d.ends_turn);
        let reply = Message::tool(
            call.id.clone(),
            Arc::from(call.tool.as_str()),
            deps.gate.model_text(result),
        );
        session.messages.push(reply);
    }
    deps.checkpoint(session).await;
    if ends_turn {
        session.ended_by_tool = true;
        return Ok(true);
    }
    Ok(false)
}

/// A turn's tool results, without a vector for the common single call.
enum Results {
    One(ToolResult),
    Many(Vec<ToolResult>),
}

impl Results {
    fn len(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Many(many) => many.len(),
        }
    }

    fn enumerate(self) -> impl Iterator<Item = (usize, ToolResult)> {
        let (one, many) = match self {
            Self::One(one) => (Some(one), Vec::new()),
            Self::Many(many) => (None, many),
        };
        one.into_iter().chain(many).enumerate()
    }
}
