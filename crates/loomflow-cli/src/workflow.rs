//! `loomflow run FILE.toml INPUT`: running a declarative workflow.

use std::io::Write;
use std::path::PathBuf;

use futures_util::StreamExt;
use loomflow::workflow::WorkflowRequest;
use loomflow::{EventKind, ModelChunk, Workflow};
use serde_json::Value;

use crate::RunArgs;

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn request(wf: &Workflow, args: &RunArgs, input: String) -> Result<WorkflowRequest, String> {
    if args.model.is_some()
        || args.instructions.is_some()
        || args.config.is_some()
        || args.tone.is_some()
    {
        return Err(
            "--config, --model, --instructions and --tone apply to agent runs; set them in the workflow file"
                .into(),
        );
    }
    let mut r = wf.run(input);
    if let Some(u) = &args.user {
        r = r.user(u.as_str());
    }
    if let Some(s) = &args.session {
        r = r.session(s.as_str());
    }
    Ok(r)
}

pub(crate) async fn run(args: &RunArgs, file: PathBuf, input: String) -> Result<(), String> {
    let (wf, telemetry) = prepare(args, &file).await?;
    let outcome = run_workflow(&wf, args, input).await;
    crate::drain_background().await;
    if let Some(t) = &telemetry {
        t.flushed().await;
    }
    outcome
}

/// The workflow in `file`, with what it names opened: the journal, memory,
/// audit log and telemetry.
pub(crate) async fn prepare(
    args: &RunArgs,
    file: &std::path::Path,
) -> Result<(Workflow, Option<loomflow::telemetry::Telemetry>), String> {
    let wf = Workflow::from_file(file).map_err(|e| e.to_string())?;
    // Journaled like agent runs: re-running a crashed session with the same
    // input resumes it.
    let spec = crate::journal::spec(args.runtime.as_deref(), None)?;
    let journal = loomflow::open_journal(&spec)
        .await
        .map_err(|e| e.to_string())?;
    let mut wf = wf.with_journal(journal);
    let configured = wf.memory_spec().cloned();
    if let Some((_, memory)) = crate::open_memory(args.memory.as_deref(), configured).await? {
        wf = wf.with_memory(memory);
    }
    if let Some(spec) = wf.audit_spec().cloned() {
        let log = loomflow::open_audit_log(&spec)
            .await
            .map_err(|e| format!("{}: audit_log: {e}", file.display()))?;
        wf = wf.with_audit_log(log);
    }
    let telemetry = crate::telemetry(args.trace, wf.telemetry_spec())
        .map_err(|e| format!("{}: telemetry: {e}", file.display()))?;
    for (agent, registry) in loomflow::connect_workflow_mcp(&wf)
        .await
        .map_err(|e| format!("{}: {e}", file.display()))?
    {
        crate::warn_unavailable(&format!("agents.{agent}: "), &registry);
    }
    if let Some(t) = &telemetry {
        wf = wf.with_telemetry(t.clone());
    }
    Ok((wf, telemetry))
}

async fn run_workflow(wf: &Workflow, args: &RunArgs, input: String) -> Result<(), String> {
    let request = request(wf, args, input)?;
    let mut out = std::io::stdout().lock();
    if !args.stream {
        let result = request.await.map_err(|e| e.to_string())?;
        let output = text(&result.output);
        let reason = result.interruption_reason.as_deref();
        return crate::print_result(&mut out, args.json, &result, &output, reason);
    }

    let mut events = request.stream();
    let mut fresh = true;
    while let Some(event) = events.next().await {
        if args.json {
            let json = serde_json::to_string(&event).map_err(|e| e.to_string())?;
            let _ = writeln!(out, "{json}");
            continue;
        }
        let nested = event.node.is_some();
        match &event.kind {
            EventKind::WorkflowStepStarted { node, .. } if !nested => {
                let _ = writeln!(out, "▶ {node}");
                fresh = true;
            }
            EventKind::WorkflowStepCompleted { node, .. } if !nested => {
                let _ = writeln!(out, "\n✓ {node}");
            }
            EventKind::WorkflowStepFailed { node, error, .. } if !nested => {
                let _ = writeln!(out, "\n✗ {node}: {error}");
            }
            EventKind::ModelChunk {
                chunk: ModelChunk::Text { text },
            } => {
                let indent = if fresh { "  " } else { "" };
                fresh = false;
                let _ = write!(out, "{indent}{text}");
                let _ = out.flush();
            }
            EventKind::ToolCall { call } => {
                let _ = writeln!(out, "\n  → {}({})", call.tool, call.args);
            }
            kind @ EventKind::ToolProgress { .. } => {
                if let Some(line) = kind.progress_line() {
                    let _ = writeln!(out, "    … {line}");
                }
            }
            _ => {}
        }
    }
    let result = events.result().await.map_err(|e| e.to_string())?;
    if args.json {
        return Ok(());
    }
    let visited: Vec<&str> = result.visited.iter().map(|n| n.as_str()).collect();
    let _ = writeln!(out, "visited: {}", visited.join(" → "));
    let _ = writeln!(out, "output: {}", text(&result.output));
    if let Some(reason) = &result.interruption_reason {
        eprintln!("(interrupted: {reason})");
    }
    Ok(())
}
