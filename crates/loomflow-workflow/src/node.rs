//! Nodes: the [`Node`] trait, and how async fns, sync fns, Agents and
//! Workflows become nodes.

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use loomflow_core::{Agent, EventSink, RunContext};
use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::Value;

/// Any error a node can return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a node produced. Serialisable: a journaled workflow records it as
/// the node's step.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", content = "value", rename_all = "snake_case")]
pub enum NodeOutcome {
    /// A value, passed along the node's out-edges.
    Done(Value),
    /// An Agent or Workflow came back interrupted (turn cap, budget, …): the
    /// workflow stops here and nothing downstream sees the partial output.
    Interrupted {
        /// The partial output.
        output: Value,
        /// Why (`max_turns_exceeded`, …).
        reason: String,
    },
}

/// What a node sees of the run besides its input.
#[derive(Debug, Clone, Copy)]
pub struct NodeContext<'a> {
    pub(crate) workflow: &'a str,
    pub(crate) node: &'a str,
    pub(crate) sink: Option<&'a EventSink>,
    pub(crate) input: Option<&'a Value>,
}

impl<'a> NodeContext<'a> {
    /// A context for running `node` outside a workflow (tests, custom
    /// schedulers).
    pub fn detached(workflow: &'a str, node: &'a str) -> Self {
        Self {
            workflow,
            node,
            sink: None,
            input: None,
        }
    }

    /// The workflow's name.
    pub fn workflow(&self) -> &str {
        self.workflow
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        self.node
    }

    /// Where to send the events of a run this node starts (an Agent, a
    /// nested Workflow), attributed to this node; `None` when nobody streams
    /// the workflow.
    pub fn events(&self) -> Option<EventSink> {
        self.sink.map(|s| s.nested(self.node))
    }

    /// The workflow run's original input, for nodes that asked for it
    /// ([`Workflow::route`](crate::Workflow::route) handlers).
    pub fn workflow_input(&self) -> Option<&Value> {
        self.input
    }
}

/// A workflow node. Implement it for anything the built-in conversions do
/// not cover; async fns, [`blocking`] sync fns, [`Agent`]s and
/// [`Workflow`](crate::Workflow)s are nodes already.
///
/// ```
/// use async_trait::async_trait;
/// use loomflow_workflow::{BoxError, Node, NodeContext, NodeOutcome};
/// use serde_json::{json, Value};
///
/// struct Shout;
///
/// #[async_trait]
/// impl Node for Shout {
///     async fn run(&self, input: Value, _cx: NodeContext<'_>) -> Result<NodeOutcome, BoxError> {
///         let text = input.as_str().ok_or("Shout needs a string")?;
///         Ok(NodeOutcome::Done(json!(text.to_uppercase())))
///     }
/// }
/// ```
#[async_trait]
pub trait Node: Send + Sync + 'static {
    /// Runs the node on `input` (the upstream output; an array in
    /// edge-declaration order for an AND-join).
    async fn run(&self, input: Value, cx: NodeContext<'_>) -> Result<NodeOutcome, BoxError>;

    /// A name to use when the node is added without one (sugar
    /// constructors): an Agent's or Workflow's name, a fn's name.
    fn default_name(&self) -> Option<String> {
        None
    }
}

/// Converts a value into a [`Node`]. `M` is a marker that keeps the
/// conversions for async fns and for `Node` types apart; let inference pick
/// it.
pub trait IntoNode<M>: Send + Sync + 'static {
    /// The node.
    fn into_node(self) -> Arc<dyn Node>;
}

#[doc(hidden)]
pub enum IsNode {}

impl<N: Node> IntoNode<IsNode> for N {
    fn into_node(self) -> Arc<dyn Node> {
        Arc::new(self)
    }
}

#[doc(hidden)]
pub enum IsArcNode {}

impl IntoNode<IsArcNode> for Arc<dyn Node> {
    fn into_node(self) -> Arc<dyn Node> {
        self
    }
}

#[doc(hidden)]
pub struct IsAsyncFn<I, O>(PhantomData<fn(I) -> O>);

impl<F, Fut, I, O> IntoNode<IsAsyncFn<I, O>> for F
where
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = O> + Send + 'static,
    I: DeserializeOwned + Send + 'static,
    O: IntoNodeResult + 'static,
{
    fn into_node(self) -> Arc<dyn Node> {
        Arc::new(FnNode {
            f: self,
            _io: PhantomData,
        })
    }
}

/// The input a node expected did not match what it was given. The scheduler
/// turns it into [`WorkflowError::InputMismatch`](crate::WorkflowError),
/// naming both nodes.
#[derive(Debug)]
pub struct InputMismatch {
    /// The expected type.
    pub expected: &'static str,
    /// What serde said.
    pub message: String,
}

impl fmt::Display for InputMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected `{}`: {}", self.expected, self.message)
    }
}

impl std::error::Error for InputMismatch {}

/// Deserialises a node's input, or says what was expected.
pub fn input_as<I: DeserializeOwned>(input: Value) -> Result<I, InputMismatch> {
    serde_json::from_value(input).map_err(|e| InputMismatch {
        expected: std::any::type_name::<I>(),
        message: e.to_string(),
    })
}

/// The last path segment of a fn item's type name (`my_crate::classify` →
/// `classify`, generics dropped); `None` for closures.
fn fn_name<F>() -> Option<String> {
    let full = std::any::type_name::<F>();
    let mut depth = 0usize;
    let mut start = 0;
    let bytes = full.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => depth += 1,
            b'>' => depth = depth.saturating_sub(1),
            b':' if depth == 0 && bytes.get(i + 1) == Some(&b':') => {
                start = i + 2;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    let last = &full[start..];
    let last = last.split('<').next().unwrap_or(last);
    (!last.is_empty() && !last.contains('{')).then(|| last.to_owned())
}

struct FnNode<F, I, O> {
    f: F,
    _io: PhantomData<fn(I) -> O>,
}

#[async_trait]
impl<F, Fut, I, O> Node for FnNode<F, I, O>
where
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = O> + Send + 'static,
    I: DeserializeOwned + Send + 'static,
    O: IntoNodeResult + 'static,
{
    async fn run(&self, input: Value, _cx: NodeContext<'_>) -> Result<NodeOutcome, BoxError> {
        let input = input_as::<I>(input)?;
        (self.f)(input).await.into_node_result()
    }

    fn default_name(&self) -> Option<String> {
        fn_name::<F>()
    }
}

/// A synchronous fn as a node. It runs on tokio's blocking pool, never on
/// the async worker threads, with the run's [`RunContext`] visible.
///
/// ```
/// use loomflow_workflow::{blocking, Workflow, END};
///
/// fn checksum(text: String) -> u64 {
///     text.bytes().map(u64::from).sum()
/// }
///
/// # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
/// let wf = Workflow::builder("sum")
///     .add_node("checksum", blocking(checksum))
///     .set_start("checksum")
///     .add_edge("checksum", END)
///     .build()
///     .unwrap();
/// assert_eq!(wf.run("ab").await.unwrap().output, 195);
/// # });
/// ```
pub fn blocking<F, I, O>(f: F) -> Blocking<F, I, O>
where
    F: Fn(I) -> O + Send + Sync + 'static,
    I: DeserializeOwned + Send + 'static,
    O: IntoNodeResult + Send + 'static,
{
    Blocking {
        f: Arc::new(f),
        _io: PhantomData,
    }
}

/// A synchronous fn node; see [`blocking`].
pub struct Blocking<F, I, O> {
    f: Arc<F>,
    _io: PhantomData<fn(I) -> O>,
}

#[async_trait]
impl<F, I, O> Node for Blocking<F, I, O>
where
    F: Fn(I) -> O + Send + Sync + 'static,
    I: DeserializeOwned + Send + 'static,
    O: IntoNodeResult + Send + 'static,
{
    async fn run(&self, input: Value, _cx: NodeContext<'_>) -> Result<NodeOutcome, BoxError> {
        let input = input_as::<I>(input)?;
        let f = self.f.clone();
        let out = loomflow_core::context::spawn_blocking(move || f(input)).await;
        match out {
            Ok(out) => out.into_node_result(),
            Err(e) if e.is_panic() => Err("the blocking node panicked".into()),
            Err(e) => Err(e.to_string().into()),
        }
    }

    fn default_name(&self) -> Option<String> {
        fn_name::<F>()
    }
}

/// What a node fn may return: a `Result` whose `Ok` serialises (the error
/// fails the node), [`NodeOutcome`], [`Json`] around any `Serialize` type,
/// or one of the common plain types.
pub trait IntoNodeResult: Send {
    /// The node's outcome.
    fn into_node_result(self) -> Result<NodeOutcome, BoxError>;
}

impl<T: Serialize + Send, E: Into<BoxError> + Send> IntoNodeResult for Result<T, E> {
    fn into_node_result(self) -> Result<NodeOutcome, BoxError> {
        let value = self.map_err(Into::into)?;
        Ok(NodeOutcome::Done(serde_json::to_value(value)?))
    }
}

impl IntoNodeResult for NodeOutcome {
    fn into_node_result(self) -> Result<NodeOutcome, BoxError> {
        Ok(self)
    }
}

impl IntoNodeResult for Value {
    fn into_node_result(self) -> Result<NodeOutcome, BoxError> {
        Ok(NodeOutcome::Done(self))
    }
}

impl IntoNodeResult for String {
    fn into_node_result(self) -> Result<NodeOutcome, BoxError> {
        Ok(NodeOutcome::Done(Value::String(self)))
    }
}

impl IntoNodeResult for &'static str {
    fn into_node_result(self) -> Result<NodeOutcome, BoxError> {
        Ok(NodeOutcome::Done(Value::String(self.to_owned())))
    }
}

impl IntoNodeResult for () {
    fn into_node_result(self) -> Result<NodeOutcome, BoxError> {
        Ok(NodeOutcome::Done(Value::Null))
    }
}

macro_rules! plain_results {
    ($($t:ty),*) => {$(
        impl IntoNodeResult for $t {
            fn into_node_result(self) -> Result<NodeOutcome, BoxError> {
                Ok(NodeOutcome::Done(Value::from(self)))
            }
        }
    )*};
}
plain_results!(
    bool, i8, i16, i32, i64, u8, u16, u32, u64, isize, usize, f32, f64
);

impl<T: Serialize + Send> IntoNodeResult for Vec<T> {
    fn into_node_result(self) -> Result<NodeOutcome, BoxError> {
        Ok(NodeOutcome::Done(serde_json::to_value(self)?))
    }
}

impl<T: Serialize + Send> IntoNodeResult for Option<T> {
    fn into_node_result(self) -> Result<NodeOutcome, BoxError> {
        Ok(NodeOutcome::Done(serde_json::to_value(self)?))
    }
}

/// Wraps any `Serialize` value as a node's output.
///
/// ```
/// use loomflow_workflow::Json;
///
/// #[derive(serde::Serialize)]
/// struct Ticket { id: u32 }
///
/// async fn open(_text: String) -> Json<Ticket> {
///     Json(Ticket { id: 7 })
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Json<T>(pub T);

impl<T: Serialize + Send> IntoNodeResult for Json<T> {
    fn into_node_result(self) -> Result<NodeOutcome, BoxError> {
        Ok(NodeOutcome::Done(serde_json::to_value(self.0)?))
    }
}

/// An Agent node runs the agent on its input (a string input as is, any
/// other value as JSON text) in the live run's user, session and metadata,
/// forwarding its events when the workflow is streamed. The output is the
/// agent's structured output when it has an output schema, else its answer
/// text. An interrupted agent interrupts the workflow.
#[async_trait]
impl Node for Agent {
    async fn run(&self, input: Value, cx: NodeContext<'_>) -> Result<NodeOutcome, BoxError> {
        let prompt = match input {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let mut request = self.run(prompt);
        if let Some(ctx) = RunContext::current() {
            request = request.session(ctx.session_id.clone());
            for (k, v) in ctx.metadata.iter() {
                request = request.metadata(k.clone(), v.clone());
            }
        }
        if let Some(sink) = cx.events() {
            request = request.events_to(sink);
        }
        let result = request.await?;
        let output = result.parsed.unwrap_or(Value::String(result.output));
        Ok(if result.interrupted {
            NodeOutcome::Interrupted {
                output,
                reason: result
                    .interruption_reason
                    .unwrap_or_else(|| "interrupted".into()),
            }
        } else {
            NodeOutcome::Done(output)
        })
    }

    fn default_name(&self) -> Option<String> {
        self.name().map(str::to_owned)
    }
}

/// A node's name: cheap to clone, compares with `&str`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(Arc<str>);

impl NodeName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, shared.
    pub(crate) fn shared(&self) -> Arc<str> {
        self.0.clone()
    }
}

impl From<&str> for NodeName {
    fn from(s: &str) -> Self {
        Self(s.into())
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for NodeName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for NodeName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for NodeName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for NodeName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl Serialize for NodeName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for NodeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self(s.into()))
    }
}

/// A node for the sugar constructors, with an optional explicit name.
///
/// Without a name, a step is named after its fn (`classify`), its Agent's
/// or Workflow's name, or `step_<i>`.
pub struct Step {
    pub(crate) name: Option<String>,
    pub(crate) node: Arc<dyn Node>,
}

impl Step {
    /// A step named after what it wraps.
    pub fn of<M>(node: impl IntoNode<M>) -> Self {
        Self {
            name: None,
            node: node.into_node(),
        }
    }

    /// A step with an explicit name.
    pub fn named<M>(name: impl Into<String>, node: impl IntoNode<M>) -> Self {
        Self {
            name: Some(name.into()),
            node: node.into_node(),
        }
    }

    pub(crate) fn name_or(&self, fallback: impl FnOnce() -> String) -> String {
        self.name
            .clone()
            .or_else(|| self.node.default_name())
            .unwrap_or_else(fallback)
    }
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step").field("name", &self.name).finish()
    }
}
