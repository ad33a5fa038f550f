//! `loomflow submit`, `loomflow worker` and `loomflow status`: runs queued in
//! Postgres and the workers that execute them.

use std::sync::Arc;

use loomflow::config::AgentConfig;
use loomflow::journal::RuntimeSpec;
use loomflow::postgres::{PostgresJournal, QueuedRun, RunQueue, RunStatus, Worker};
use loomflow::{RunId, Workflow};

use crate::journal::{age, user};

/// The queue's database (shared by the queue commands).
#[derive(Debug, clap::Args)]
pub(crate) struct QueueAt {
    /// The Postgres database holding the queue and the journal
    /// (postgres://user:password@host/db).
    #[arg(long, value_name = "URL")]
    runtime: String,
}

impl QueueAt {
    fn url(&self) -> Result<&str, String> {
        match self.runtime.parse::<RuntimeSpec>() {
            Ok(RuntimeSpec::Postgres(_)) => Ok(&self.runtime),
            Ok(other) => Err(format!(
                "the run queue lives in Postgres, not `{other}`: pass --runtime postgres://…"
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn queue(&self) -> Result<RunQueue, String> {
        RunQueue::connect(self.url()?)
            .await
            .map_err(|e| e.to_string())
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct SubmitArgs {
    /// The job to run: the name a worker registered it under
    /// (`--agent NAME=…` or `--workflow NAME=…`).
    job: String,
    /// The input: JSON, or plain text sent as a JSON string.
    input: String,
    #[command(flatten)]
    at: QueueAt,
    /// The user the run belongs to (default: the anonymous bucket).
    #[arg(long, short)]
    user: Option<String>,
    /// The session (default: a fresh one). Runs of one session execute one
    /// at a time, in submission order.
    #[arg(long, short)]
    session: Option<String>,
    /// How many workers may claim the run before it is failed as abandoned.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// Wait for the run to finish (at most AGE, default 5m) and print its
    /// output.
    #[arg(long, value_name = "AGE", num_args = 0..=1, default_missing_value = "5m")]
    wait: Option<String>,
    /// With --wait, print the whole run as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    at: QueueAt,
    /// A job: an agent config file, registered under NAME (repeatable).
    #[arg(long, value_name = "NAME=CONFIG.toml")]
    agent: Vec<String>,
    /// A job: a workflow file, registered under NAME (repeatable).
    #[arg(long, value_name = "NAME=FILE.toml")]
    workflow: Vec<String>,
    /// Runs executed at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long a claimed run is held without renewal: a run of a worker
    /// that died waits this long before another worker takes it over.
    #[arg(long, value_name = "AGE", default_value = "30s")]
    lease: String,
    /// The worker's id (default: host:pid:random); unique among live
    /// workers.
    #[arg(long)]
    id: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// The run id `submit` printed.
    run_id: String,
    #[command(flatten)]
    at: QueueAt,
    /// The user the run belongs to (default: the anonymous bucket).
    #[arg(long, short)]
    user: Option<String>,
    /// Also print the run's events, one JSON object per line.
    #[arg(long)]
    events: bool,
    /// Print the run as JSON.
    #[arg(long)]
    json: bool,
}

fn named<'a>(flag: &'a str, spec: &'a str) -> Result<(&'a str, &'a str), String> {
    spec.split_once('=')
        .filter(|(name, file)| !name.is_empty() && !file.is_empty())
        .ok_or_else(|| format!("`{flag} {spec}`: write {flag} NAME=FILE.toml"))
}

/// Prints a finished run: its output (an agent's answer text, a workflow's
/// output, or the JSON result), or the whole run as JSON. A failed or
/// cancelled run is an error.
fn print_run(run: &QueuedRun, json: bool) -> Result<(), String> {
    if json {
        println!("{}", serde_json::to_string(run).map_err(|e| e.to_string())?);
    }
    match run.status {
        RunStatus::Succeeded => {
            if !json {
                let result = run.result.clone().unwrap_or_default();
                match &result["output"] {
                    serde_json::Value::String(s) => println!("{s}"),
                    serde_json::Value::Null => println!("{result}"),
                    other => println!("{other}"),
                }
            }
            Ok(())
        }
        RunStatus::Failed => Err(match &run.error {
            Some(e) => format!("run {} failed: {e}", run.run_id),
            None => format!("run {} failed", run.run_id),
        }),
        RunStatus::Cancelled => Err(format!("run {} was cancelled", run.run_id)),
        status => {
            if !json {
                println!("{status}");
            }
            Ok(())
        }
    }
}

pub(crate) async fn submit(args: SubmitArgs) -> Result<(), String> {
    let wait = args.wait.as_deref().map(age).transpose()?;
    let queue = args.at.queue().await?;
    let input: serde_json::Value =
        serde_json::from_str(&args.input).unwrap_or_else(|_| args.input.clone().into());
    let mut submit = queue
        .submit(args.job.as_str(), input)
        .max_attempts(args.max_attempts);
    if let Some(u) = &args.user {
        submit = submit.user(u.as_str());
    }
    if let Some(s) = &args.session {
        submit = submit.session(s.as_str());
    }
    let run_id = submit.await.map_err(|e| e.to_string())?;
    let Some(wait) = wait else {
        println!("{run_id}");
        return Ok(());
    };
    eprintln!("submitted {run_id}; waiting for a worker");
    let run = queue
        .wait(&user(args.user.as_deref())?, &run_id, wait)
        .await
        .map_err(|e| e.to_string())?;
    print_run(&run, args.json)
}

pub(crate) async fn status(args: StatusArgs) -> Result<(), String> {
    let queue = args.at.queue().await?;
    let user = user(args.user.as_deref())?;
    let run_id = RunId::new(&args.run_id).map_err(|e| e.to_string())?;
    let run = queue
        .get(&user, &run_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no run {run_id} for user {user} (check --user)"))?;
    if args.events {
        for e in queue
            .events(&user, &run_id, 0)
            .await
            .map_err(|e| e.to_string())?
        {
            println!("{}", serde_json::to_string(&e).map_err(|e| e.to_string())?);
        }
    }
    if !args.json {
        eprintln!(
            "{run_id}: {} ({} attempt(s), worker {})",
            run.status,
            run.attempts,
            run.worker.as_deref().unwrap_or("-")
        );
    }
    print_run(&run, args.json)
}

pub(crate) async fn worker(args: WorkerArgs) -> Result<(), String> {
    let url = args.at.url()?;
    if args.agent.is_empty() && args.workflow.is_empty() {
        return Err(
            "a worker needs at least one job: --agent NAME=CONFIG.toml or --workflow NAME=FILE.toml"
                .into(),
        );
    }
    let lease = age(&args.lease)?;
    let journal: Arc<dyn loomflow::Journal> = Arc::new(
        PostgresJournal::connect(url)
            .await
            .map_err(|e| e.to_string())?,
    );
    let queue = RunQueue::connect(url).await.map_err(|e| e.to_string())?;
    let mut builder = Worker::builder(queue)
        .concurrency(args.concurrency)
        .lease(lease);
    for spec in &args.agent {
        let (name, file) = named("--agent", spec)?;
        let agent = AgentConfig::from_file(file)
            .and_then(AgentConfig::into_builder)
            .and_then(|b| b.journal(journal.clone()).build())
            .map_err(|e| format!("--agent {name}: {e}"))?;
        builder = builder.job(name, agent);
    }
    for spec in &args.workflow {
        let (name, file) = named("--workflow", spec)?;
        let wf = Workflow::from_file(file).map_err(|e| format!("--workflow {name}: {e}"))?;
        builder = builder.job(name, wf.with_journal(journal.clone()));
    }
    if let Some(id) = &args.id {
        builder = builder.id(id.as_str());
    }
    let worker = builder.build().map_err(|e| e.to_string())?;
    eprintln!(
        "worker {} on {}: waiting for runs (Ctrl-C or SIGTERM stops it after the runs in flight)",
        worker.id(),
        loomflow::journal::redact_url(url)
    );
    let report = worker
        .run_until(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "worker stopped: {} succeeded, {} failed, {} lost",
        report.succeeded, report.failed, report.lost
    );
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM (how process managers ask a service to
/// stop).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
