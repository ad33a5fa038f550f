//! The sugar constructors: chain, route, parallel.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::WorkflowError;
use crate::graph::WorkflowBuilder;
use crate::node::{BoxError, IntoNodeResult, Node, NodeContext, NodeOutcome, Step, input_as};
use crate::router::Router;
use crate::{END, Workflow};

/// Names for `steps`, de-duplicated with `_1`, `_2`, … suffixes.
fn unique_names(steps: &[Step], fallback: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let base = step.name_or(|| format!("{fallback}_{i}"));
        let mut name = base.clone();
        let mut j = 1;
        while names.contains(&name) {
            name = format!("{base}_{j}");
            j += 1;
        }
        names.push(name);
    }
    names
}

impl Workflow {
    /// A linear sequence: each step gets the previous step's output; the
    /// last step's output is the workflow's. Nodes are named after the steps
    /// (fn names, Agent and Workflow names, else `step_<i>`), de-duplicated.
    /// Returns the builder, to set caps, a name or a tone before `build()`.
    ///
    /// ```
    /// use loomflow_workflow::{Step, Workflow};
    ///
    /// async fn trim(s: String) -> String { s.trim().to_owned() }
    /// async fn shout(s: String) -> String { s.to_uppercase() }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let wf = Workflow::chain([Step::of(trim), Step::of(shout)]).build().unwrap();
    /// let r = wf.run("  hi ").await.unwrap();
    /// assert_eq!(r.output, "HI");
    /// assert_eq!(r.visited, ["trim", "shout"]);
    /// # });
    /// ```
    pub fn chain(steps: impl IntoIterator<Item = Step>) -> WorkflowBuilder {
        let steps: Vec<Step> = steps.into_iter().collect();
        let mut b = Workflow::builder("chain");
        if steps.is_empty() {
            b.errors.push(WorkflowError::Empty { what: "chain" });
            return b;
        }
        let names = unique_names(&steps, "step");
        for (name, step) in names.iter().zip(steps) {
            b = b.add_node(name.clone(), step.node);
        }
        b = b.set_start(&names[0]);
        for pair in names.windows(2) {
            b = b.add_edge(&pair[0], &pair[1]);
        }
        b.add_edge(&names[names.len() - 1], END)
    }

    /// Classify, then dispatch: the classifier's output (as trimmed text)
    /// picks the handler `routes[key]`, which receives the run's *original*
    /// input, not the label. Nodes are `classify`, `route_<key>` and
    /// `route_default`. Without a default, an unknown key fails the run.
    ///
    /// ```
    /// use loomflow_workflow::{Step, Workflow};
    ///
    /// async fn classify(q: String) -> String {
    ///     if q.contains("refund") { "billing".into() } else { "tech".into() }
    /// }
    /// async fn billing(q: String) -> String { format!("billing: {q}") }
    /// async fn tech(q: String) -> String { format!("tech: {q}") }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let wf = Workflow::route(
    ///     Step::of(classify),
    ///     [("billing", Step::of(billing)), ("tech", Step::of(tech))],
    ///     None,
    /// )
    /// .build()
    /// .unwrap();
    /// let r = wf.run("I want a refund").await.unwrap();
    /// assert_eq!(r.visited, ["classify", "route_billing"]);
    /// assert_eq!(r.output, "billing: I want a refund");
    /// # });
    /// ```
    pub fn route<K: Into<String>>(
        classifier: Step,
        routes: impl IntoIterator<Item = (K, Step)>,
        default: Option<Step>,
    ) -> WorkflowBuilder {
        let routes: Vec<(String, Step)> = routes.into_iter().map(|(k, s)| (k.into(), s)).collect();
        let mut b = Workflow::builder("route");
        if routes.is_empty() {
            b.errors.push(WorkflowError::Empty { what: "route" });
            return b;
        }
        b.settings.needs_input = true;
        b = b
            .add_node("classify", classifier.node)
            .set_start("classify");
        let mut router = Router::text(|label: &str| label.trim().to_owned());
        for (key, step) in routes {
            let name = format!("route_{key}");
            b = b
                .add_node(name.clone(), OriginalInput(step.node))
                .add_edge(&name, END);
            router = router.route(key, &name);
        }
        if let Some(step) = default {
            b = b
                .add_node("route_default", OriginalInput(step.node))
                .add_edge("route_default", END);
            router = router.default_route("route_default");
        }
        b.add_router("classify", router)
    }

    /// Fan-out: every step runs concurrently on the same input, inside one
    /// `fan_out` node; `merge` combines the results (in step order). See
    /// [`Parallel`] for the concurrency cap and the collect-errors mode.
    ///
    /// ```
    /// use loomflow_workflow::{Step, Workflow};
    ///
    /// async fn double(x: i64) -> i64 { x * 2 }
    /// async fn square(x: i64) -> i64 { x * x }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let wf = Workflow::parallel([Step::of(double), Step::of(square)])
    ///     .merge(|xs: Vec<i64>| xs.iter().sum::<i64>())
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(wf.run(3).await.unwrap().output, 15);
    /// # });
    /// ```
    pub fn parallel(steps: impl IntoIterator<Item = Step>) -> Parallel {
        Parallel {
            steps: steps.into_iter().collect(),
            merge: Merge::List,
            max_concurrency: None,
            name: "parallel".into(),
        }
    }
}

/// Runs the wrapped handler on the workflow's original input.
struct OriginalInput(Arc<dyn Node>);

#[async_trait]
impl Node for OriginalInput {
    async fn run(&self, input: Value, cx: NodeContext<'_>) -> Result<NodeOutcome, BoxError> {
        let original = cx.workflow_input().cloned().unwrap_or(input);
        self.0.run(original, cx).await
    }
}

type MergeFn = dyn Fn(Vec<Value>) -> Result<NodeOutcome, BoxError> + Send + Sync;
type CollectFn =
    dyn Fn(Vec<Result<Value, BoxError>>) -> Result<NodeOutcome, BoxError> + Send + Sync;

enum Merge {
    List,
    Values(Arc<MergeFn>),
    Collect(Arc<CollectFn>),
}

/// A fan-out under construction; see [`Workflow::parallel`].
#[must_use = "call build() to get the workflow"]
pub struct Parallel {
    steps: Vec<Step>,
    merge: Merge,
    max_concurrency: Option<usize>,
    name: String,
}

impl std::fmt::Debug for Parallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parallel")
            .field("steps", &self.steps)
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

impl Parallel {
    /// Combines the branch outputs (as `Vec<T>`, in step order). Without a
    /// merge, the output is the array of results. The first failing branch
    /// cancels the others and fails the run.
    pub fn merge<T, O, F>(mut self, merge: F) -> Self
    where
        T: DeserializeOwned,
        O: IntoNodeResult,
        F: Fn(Vec<T>) -> O + Send + Sync + 'static,
    {
        self.merge = Merge::Values(Arc::new(move |values: Vec<Value>| {
            let typed: Vec<T> = input_as(Value::Array(values))?;
            merge(typed).into_node_result()
        }));
        self
    }

    /// Collect-errors mode: a failing branch does not cancel the others; its
    /// error takes its slot in the results `merge` receives.
    pub fn collect_errors<O, F>(mut self, merge: F) -> Self
    where
        O: IntoNodeResult,
        F: Fn(Vec<Result<Value, BoxError>>) -> O + Send + Sync + 'static,
    {
        self.merge = Merge::Collect(Arc::new(move |results| merge(results).into_node_result()));
        self
    }

    /// Caps how many branches run at once (default: all).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n.max(1));
        self
    }

    /// Names the workflow (default `parallel`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The builder, to set caps or a tone before `build()`.
    pub fn into_builder(self) -> WorkflowBuilder {
        let mut b = Workflow::builder(self.name);
        if self.steps.is_empty() {
            b.errors.push(WorkflowError::Empty { what: "parallel" });
            return b;
        }
        let names = unique_names(&self.steps, "branch");
        let branches: Vec<(String, Arc<dyn Node>)> = names
            .into_iter()
            .zip(self.steps.into_iter().map(|s| s.node))
            .collect();
        let limit = self.max_concurrency.unwrap_or(branches.len());
        b.add_node(
            "fan_out",
            FanOut {
                branches,
                merge: self.merge,
                limit,
            },
        )
        .set_start("fan_out")
        .add_edge("fan_out", END)
    }

    /// Builds the workflow.
    pub fn build(self) -> Result<Workflow, WorkflowError> {
        self.into_builder().build()
    }
}

struct FanOut {
    branches: Vec<(String, Arc<dyn Node>)>,
    merge: Merge,
    limit: usize,
}

#[async_trait]
impl Node for FanOut {
    async fn run(&self, input: Value, cx: NodeContext<'_>) -> Result<NodeOutcome, BoxError> {
        let collect = matches!(self.merge, Merge::Collect(_));
        let sink = cx.events();
        let mut results: Vec<Option<Result<Value, BoxError>>> =
            (0..self.branches.len()).map(|_| None).collect();
        let mut interrupted: Option<(usize, Value, String)> = None;
        let mut running = FuturesUnordered::new();
        let mut next = 0;
        loop {
            while running.len() < self.limit && next < self.branches.len() {
                let (name, node) = &self.branches[next];
                let bcx = NodeContext {
                    workflow: cx.workflow,
                    node: name,
                    sink: sink.as_ref(),
                    input: cx.input,
                };
                let i = next;
                let value = input.clone();
                running.push(async move { (i, node.run(value, bcx).await) });
                next += 1;
            }
            let Some((i, outcome)) = running.next().await else {
                break;
            };
            match outcome {
                Ok(NodeOutcome::Done(v)) => results[i] = Some(Ok(v)),
                Ok(NodeOutcome::Interrupted { output, reason }) => {
                    if interrupted.as_ref().is_none_or(|(j, _, _)| i < *j) {
                        interrupted = Some((i, output, reason));
                    }
                    if !collect {
                        break;
                    }
                }
                Err(e) if collect => results[i] = Some(Err(e)),
                Err(e) => return Err(e),
            }
        }
        if let Some((i, output, reason)) = interrupted {
            return Ok(NodeOutcome::Interrupted {
                output,
                reason: format!("{}:{reason}", self.branches[i].0),
            });
        }
        let results = results.into_iter().map(|r| r.unwrap_or(Ok(Value::Null)));
        match &self.merge {
            Merge::List => Ok(NodeOutcome::Done(Value::Array(
                results.collect::<Result<Vec<_>, _>>()?,
            ))),
            Merge::Values(f) => f(results.collect::<Result<Vec<_>, _>>()?),
            Merge::Collect(f) => f(results.collect()),
        }
    }
}
