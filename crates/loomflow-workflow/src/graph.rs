//! The graph builder, its validation, and the compiled form the scheduler
//! runs.

use std::collections::HashMap;
use std::sync::Arc;

use loomflow_core::Tone;
use loomflow_core::audit::AuditLog;
use loomflow_core::memory::{Memory, MemorySpec};

use crate::error::WorkflowError;
use crate::node::{IntoNode, Node, NodeName};
use crate::router::{Dest, Router};
use crate::{END, START, Workflow};

/// Caps and settings of a workflow.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub max_steps: u32,
    pub max_visits_per_node: u32,
    pub max_concurrency: usize,
    pub response_tone: Option<Tone>,
    pub event_buffer: usize,
    pub needs_input: bool,
    pub journal: Option<std::sync::Arc<dyn loomflow_core::Journal>>,
    pub memory: Option<Arc<dyn Memory>>,
    /// Whether the Agents using `memory` recall and extract facts.
    pub memory_facts: bool,
    /// A declarative file's `memory` key, for the caller to open.
    pub memory_spec: Option<MemorySpec>,
    /// Where step entries go (and the Agents inside without a log).
    pub audit: Option<Arc<dyn AuditLog>>,
    /// A declarative file's `audit_log` key, for the caller to open.
    pub audit_spec: Option<loomflow_core::audit::AuditSpec>,
    /// Where this workflow's spans and metrics go.
    pub telemetry: Option<loomflow_core::telemetry::Telemetry>,
    /// A declarative file's `telemetry` key, for the caller to open.
    pub telemetry_spec: Option<loomflow_core::telemetry::TelemetrySpec>,
    /// A declarative file's agents' `[[mcp]]` servers, for the caller to
    /// connect.
    pub mcp: Vec<crate::file::AgentMcp>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_steps: 100,
            max_visits_per_node: 25,
            max_concurrency: 8,
            response_tone: None,
            event_buffer: 64,
            needs_input: false,
            journal: None,
            memory: None,
            memory_facts: true,
            memory_spec: None,
            audit: None,
            audit_spec: None,
            telemetry: None,
            telemetry_spec: None,
            mcp: Vec::new(),
        }
    }
}

/// An edge as declared.
#[derive(Debug, Clone)]
pub(crate) enum Declared {
    Edge(Dest),
    Router(Router),
}

/// The entry as declared.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    Node(String),
    Router(Router),
}

/// Builds a [`Workflow`]: nodes, edges, routers, caps. Problems are collected
/// and reported by [`build`](Self::build), which validates the whole graph.
///
/// ```
/// use loomflow_workflow::{Router, Workflow, END};
///
/// async fn classify(text: String) -> String {
///     if text.contains("invoice") { "billing".into() } else { "tech".into() }
/// }
/// async fn billing(_: String) -> String { "refund issued".into() }
/// async fn tech(_: String) -> String { "ticket opened".into() }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let wf = Workflow::builder("triage")
///     .add_node("classify", classify)
///     .add_node("billing", billing)
///     .add_node("tech", tech)
///     .set_start("classify")
///     .add_router(
///         "classify",
///         Router::text(|label| label.trim().to_lowercase())
///             .route("billing", "billing")
///             .route("tech", "tech"),
///     )
///     .add_edge("billing", END)
///     .add_edge("tech", END)
///     .build()
///     .unwrap();
/// let result = wf.run("my invoice is wrong").await.unwrap();
/// assert_eq!(result.visited, ["classify", "billing"]);
/// assert_eq!(result.output, "refund issued");
/// # });
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until build() is called"]
pub struct WorkflowBuilder {
    pub(crate) name: String,
    pub(crate) nodes: Vec<(String, NodeHandle)>,
    pub(crate) edges: Vec<(String, Declared)>,
    pub(crate) start: Option<Entry>,
    pub(crate) errors: Vec<WorkflowError>,
    pub(crate) settings: Settings,
}

/// A node handle that prints as its name.
#[derive(Clone)]
pub(crate) struct NodeHandle(pub Arc<dyn Node>);

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Node")
    }
}

impl WorkflowBuilder {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            nodes: Vec::new(),
            edges: Vec::new(),
            start: None,
            errors: Vec::new(),
            settings: Settings::default(),
        }
    }

    /// Adds node `name`: an async fn, a [`blocking`](crate::blocking) sync
    /// fn, an [`Agent`](loomflow_core::Agent), a [`Workflow`], or any
    /// [`Node`].
    pub fn add_node<M>(mut self, name: impl Into<String>, node: impl IntoNode<M>) -> Self {
        let name = name.into();
        if name.is_empty() || name == START || name == END {
            self.errors.push(WorkflowError::ReservedName {
                workflow: self.name.clone(),
                node: name,
            });
        } else if self.nodes.iter().any(|(n, _)| *n == name) {
            self.errors.push(WorkflowError::DuplicateNode {
                workflow: self.name.clone(),
                node: name,
            });
        } else {
            self.nodes.push((name, NodeHandle(node.into_node())));
        }
        self
    }

    /// Adds an edge. `source` may be [`START`] (same as
    /// [`set_start`](Self::set_start)); `target` may be [`END`]. Several
    /// edges from one source fan out: the targets run concurrently on the
    /// same value. A node with several in-edges is an AND-join: it runs once
    /// everything that can still reach it has delivered, and receives the
    /// values as an array in edge-declaration order.
    pub fn add_edge(mut self, source: &str, target: &str) -> Self {
        if target == START {
            self.errors.push(WorkflowError::InvalidEdge {
                workflow: self.name.clone(),
                message: format!("`{source} -> START`: START cannot be an edge's target"),
            });
            return self;
        }
        if source == END {
            self.errors.push(WorkflowError::InvalidEdge {
                workflow: self.name.clone(),
                message: format!("`END -> {target}`: END cannot be an edge's source"),
            });
            return self;
        }
        if source == START {
            if target == END {
                self.errors.push(WorkflowError::InvalidEdge {
                    workflow: self.name.clone(),
                    message: "`START -> END`: the start must be a node".into(),
                });
                return self;
            }
            return self.set_start(target);
        }
        let dest = Dest::parse(target);
        let duplicate = self
            .edges
            .iter()
            .any(|(s, d)| s == source && matches!(d, Declared::Edge(x) if *x == dest));
        if !duplicate {
            self.edges.push((source.to_owned(), Declared::Edge(dest)));
        }
        self
    }

    /// Adds a router on `source` (or on [`START`], to branch on the input).
    /// A router must be the only way out of its source.
    pub fn add_router(mut self, source: &str, router: Router) -> Self {
        if source == END {
            self.errors.push(WorkflowError::InvalidEdge {
                workflow: self.name.clone(),
                message: "END cannot have a router".into(),
            });
            return self;
        }
        if source == START {
            return self.entry(Entry::Router(router));
        }
        self.edges
            .push((source.to_owned(), Declared::Router(router)));
        self
    }

    /// Makes `node` the entry point. Setting the start twice is an error.
    pub fn set_start(self, node: &str) -> Self {
        self.entry(Entry::Node(node.to_owned()))
    }

    fn entry(mut self, entry: Entry) -> Self {
        let label = |e: &Entry| match e {
            Entry::Node(n) => n.clone(),
            Entry::Router(_) => "a router on START".to_owned(),
        };
        match &self.start {
            Some(first) => self.errors.push(WorkflowError::StartSetTwice {
                workflow: self.name.clone(),
                first: label(first),
                second: label(&entry),
            }),
            None => self.start = Some(entry),
        }
        self
    }

    /// Caps the node steps of one run (default 100).
    pub fn max_steps(mut self, n: u32) -> Self {
        self.settings.max_steps = n;
        self
    }

    /// Caps how often one node may run in one run (default 25).
    pub fn max_visits_per_node(mut self, n: u32) -> Self {
        self.settings.max_visits_per_node = n;
        self
    }

    /// Caps how many nodes run at once (default 8).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.settings.max_concurrency = n.max(1);
        self
    }

    /// A response tone for the Agents inside this workflow (nested ones
    /// included) that did not set their own.
    pub fn response_tone(mut self, tone: impl Into<Tone>) -> Self {
        self.settings.response_tone = Some(tone.into());
        self
    }

    /// A long-term memory for the Agents inside this workflow (nested
    /// workflows' included) that have none of their own: each is seeded
    /// from it and stores its run in it, under the run's user and session.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use loomflow_core::{Agent, memory::InMemoryMemory};
    /// use loomflow_workflow::{Step, Workflow};
    ///
    /// let agent = Agent::builder().model("echo").build().unwrap();
    /// let wf = Workflow::chain([Step::named("answer", agent)])
    ///     .memory(Arc::new(InMemoryMemory::new()))
    ///     .build()
    ///     .unwrap();
    /// # let _ = wf;
    /// ```
    pub fn memory(mut self, memory: Arc<dyn Memory>) -> Self {
        self.settings.memory = Some(memory);
        self
    }

    /// Whether the Agents that use the workflow's memory recall facts from
    /// it and extract facts into it (default true; a memory spec's
    /// `with_facts = false` in a workflow file sets false). Agents with a
    /// memory of their own are not affected.
    pub fn memory_facts(mut self, facts: bool) -> Self {
        self.settings.memory_facts = facts;
        self
    }

    /// Records every step in `log`: `step_started`, then `step_completed`
    /// or `step_failed`, with `{"workflow", "step"}` and, for a failure,
    /// the error (secrets redacted), under the run's user and session. The
    /// Agents (and nested workflows) inside that have no log of their own
    /// write to it too, so one log holds the whole run.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use loomflow_core::audit::{AuditLog, AuditQuery, AuditSecret, InMemoryAuditLog};
    /// use loomflow_workflow::{Step, Workflow};
    ///
    /// async fn shout(s: String) -> String { s.to_uppercase() }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let log = Arc::new(InMemoryAuditLog::new(AuditSecret::new("k3y")));
    /// let wf = Workflow::chain([Step::named("shout", shout)])
    ///     .audit_log_arc(log.clone())
    ///     .build()
    ///     .unwrap();
    /// wf.run("hi").user("alice").await.unwrap();
    /// let actions: Vec<String> =
    ///     log.query(&AuditQuery::all()).await.unwrap().into_iter().map(|e| e.action).collect();
    /// assert_eq!(actions, ["step_started", "step_completed"]);
    /// # });
    /// ```
    pub fn audit_log(self, log: impl AuditLog) -> Self {
        self.audit_log_arc(Arc::new(log))
    }

    /// [`audit_log`](Self::audit_log) with a shared log.
    pub fn audit_log_arc(mut self, log: Arc<dyn AuditLog>) -> Self {
        self.settings.audit = Some(log);
        self
    }

    /// Records this workflow's runs in `telemetry` (a `loom.workflow` span,
    /// a `loom.workflow.step` span per node, and the Agents inside without
    /// telemetry of their own under them). See
    /// [`loomflow_core::telemetry`].
    pub fn telemetry(mut self, telemetry: loomflow_core::telemetry::Telemetry) -> Self {
        self.settings.telemetry = Some(telemetry);
        self
    }

    /// Journals every run: each node is a step (`node:<name>#<visit>`)
    /// recorded under the run's user and session, and the Agents inside are
    /// journaled under their node. Running the same session and input again
    /// after a crash replays the finished nodes and continues from the
    /// first unfinished one (see [`loomflow_core::journal`]).
    pub fn journal(mut self, journal: std::sync::Arc<dyn loomflow_core::Journal>) -> Self {
        self.settings.journal = Some(journal);
        self
    }

    /// Events buffered for a slow stream consumer before the run waits
    /// (default 64).
    pub fn event_buffer(mut self, n: usize) -> Self {
        self.settings.event_buffer = n.max(1);
        self
    }

    /// Renames the workflow.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Validates the graph and builds the workflow.
    pub fn build(mut self) -> Result<Workflow, WorkflowError> {
        if !self.errors.is_empty() {
            return Err(self.errors.swap_remove(0));
        }
        let graph = Graph::compile(&self)?;
        Ok(Workflow::from_parts(self.name, graph, self.settings))
    }
}

/// A fixed-size bit set over node indices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    pub fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }
    pub fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    pub fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    pub fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    pub fn union(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }
    pub fn reset(&mut self) {
        self.0.iter_mut().for_each(|w| *w = 0);
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    /// Set bits, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + b)
            })
        })
    }
}

/// A compiled destination: node index and edge-declaration index, or END.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum To {
    Node { node: usize, decl: u32 },
    End,
}

/// How a node's output leaves it.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    /// Plain edges (fan-out), in declaration order; `End` edges included.
    Edges(Vec<To>),
    /// A router.
    Router {
        router: Router,
        routes: HashMap<String, To>,
        default: Option<To>,
    },
}

/// The entry, compiled.
#[derive(Debug, Clone)]
pub(crate) enum Start {
    Node(usize),
    Router {
        router: Router,
        routes: HashMap<String, Option<usize>>,
        default: Option<Option<usize>>,
    },
}

/// The validated graph.
#[derive(Clone)]
pub(crate) struct Graph {
    pub names: Vec<NodeName>,
    pub nodes: Vec<Arc<dyn Node>>,
    pub out: Vec<Out>,
    pub start: Start,
    /// Per node, the nodes reachable through forward (non-back) edges.
    pub reach: Vec<Bits>,
    /// Depth along forward edges, for picking the output among branches.
    pub rank: Vec<u32>,
    /// Declared edges, for rendering: (source, label, target, dashed).
    pub drawn: Vec<(String, Option<String>, String, bool)>,
}

impl Graph {
    fn compile(b: &WorkflowBuilder) -> Result<Self, WorkflowError> {
        let wf = &b.name;
        let index: HashMap<&str, usize> = b
            .nodes
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.as_str(), i))
            .collect();
        let n = b.nodes.len();
        let lookup = |src: &str, dst: &str| -> Result<usize, WorkflowError> {
            index
                .get(dst)
                .copied()
                .ok_or_else(|| WorkflowError::UnknownNode {
                    workflow: wf.clone(),
                    edge: format!("`{src} -> {dst}`"),
                    node: dst.to_owned(),
                })
        };

        // Edges per source, checking names and router exclusivity.
        let mut decl = 0u32;
        let mut next_decl = || {
            decl += 1;
            decl
        };
        let mut out: Vec<Option<Out>> = vec![None; n];
        let mut drawn = Vec::new();
        for (src, declared) in &b.edges {
            let Some(&s) = index.get(src.as_str()) else {
                let target = match declared {
                    Declared::Edge(d) => d.label().to_owned(),
                    Declared::Router(_) => "router".to_owned(),
                };
                return Err(WorkflowError::UnknownNode {
                    workflow: wf.clone(),
                    edge: format!("`{src} -> {target}`"),
                    node: src.clone(),
                });
            };
            match declared {
                Declared::Edge(dest) => {
                    let to = match dest {
                        Dest::End => To::End,
                        Dest::Node(d) => To::Node {
                            node: lookup(src, d)?,
                            decl: next_decl(),
                        },
                    };
                    drawn.push((src.clone(), None, dest.label().to_owned(), false));
                    match &mut out[s] {
                        None => out[s] = Some(Out::Edges(vec![to])),
                        Some(Out::Edges(v)) => v.push(to),
                        Some(Out::Router { .. }) => {
                            return Err(WorkflowError::RouterBesideEdges {
                                workflow: wf.clone(),
                                source_node: src.clone(),
                            });
                        }
                    }
                }
                Declared::Router(router) => {
                    if out[s].is_some() {
                        return Err(WorkflowError::RouterBesideEdges {
                            workflow: wf.clone(),
                            source_node: src.clone(),
                        });
                    }
                    let mut routes = HashMap::new();
                    let mut seen: HashMap<usize, u32> = HashMap::new();
                    let mut compile = |dest: &Dest| -> Result<To, WorkflowError> {
                        Ok(match dest {
                            Dest::End => To::End,
                            Dest::Node(d) => {
                                let node = lookup(src, d)?;
                                let decl = *seen.entry(node).or_insert_with(&mut next_decl);
                                To::Node { node, decl }
                            }
                        })
                    };
                    for (key, dest) in &router.routes {
                        routes.insert(key.clone(), compile(dest)?);
                        drawn.push((
                            src.clone(),
                            Some(key.clone()),
                            dest.label().to_owned(),
                            false,
                        ));
                    }
                    let default = match &router.default {
                        Some(d) => {
                            drawn.push((
                                src.clone(),
                                Some("default".into()),
                                d.label().to_owned(),
                                true,
                            ));
                            Some(compile(d)?)
                        }
                        None => None,
                    };
                    out[s] = Some(Out::Router {
                        router: router.clone(),
                        routes,
                        default,
                    });
                }
            }
        }
        let out: Vec<Out> = out
            .into_iter()
            .map(|o| o.unwrap_or(Out::Edges(Vec::new())))
            .collect();

        let start = match &b.start {
            None => {
                return Err(WorkflowError::NoStart {
                    workflow: wf.clone(),
                });
            }
            Some(Entry::Node(name)) => Start::Node(lookup("START", name)?),
            Some(Entry::Router(router)) => {
                let resolve = |d: &Dest| match d {
                    Dest::Node(name) => lookup("START", name).map(Some),
                    Dest::End => Ok(None),
                };
                let mut routes = HashMap::new();
                for (key, dest) in &router.routes {
                    routes.insert(key.clone(), resolve(dest)?);
                }
                let default = router.default.as_ref().map(resolve).transpose()?;
                Start::Router {
                    router: router.clone(),
                    routes,
                    default,
                }
            }
        };

        // Successors (all potential destinations) per node.
        let succ: Vec<Vec<usize>> = out
            .iter()
            .map(|o| {
                let mut v: Vec<usize> = Vec::new();
                let mut push = |t: &To| {
                    if let To::Node { node, .. } = t
                        && !v.contains(node)
                    {
                        v.push(*node);
                    }
                };
                match o {
                    Out::Edges(ts) => ts.iter().for_each(&mut push),
                    Out::Router {
                        router,
                        routes,
                        default,
                    } => {
                        for (k, _) in &router.routes {
                            if let Some(t) = routes.get(k) {
                                push(t);
                            }
                        }
                        if let Some(t) = default {
                            push(t);
                        }
                    }
                }
                v
            })
            .collect();

        // Every node must be able to reach END.
        let ends: Vec<bool> = out
            .iter()
            .map(|o| match o {
                Out::Edges(ts) => ts.contains(&To::End),
                Out::Router {
                    routes, default, ..
                } => routes.values().any(|t| *t == To::End) || *default == Some(To::End),
            })
            .collect();
        let mut reaches_end = ends.clone();
        loop {
            let mut changed = false;
            for i in 0..n {
                if !reaches_end[i] && succ[i].iter().any(|&j| reaches_end[j]) {
                    reaches_end[i] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let stuck: Vec<String> = (0..n)
            .filter(|&i| !reaches_end[i])
            .map(|i| b.nodes[i].0.clone())
            .collect();
        if !stuck.is_empty() {
            return Err(WorkflowError::NoPathToEnd {
                workflow: wf.clone(),
                nodes: stuck,
            });
        }

        // Back edges by DFS from the entries, then every node in order.
        let mut roots: Vec<usize> = Vec::new();
        match &start {
            Start::Node(s) => roots.push(*s),
            Start::Router {
                router,
                routes,
                default,
            } => {
                for (k, _) in &router.routes {
                    if let Some(Some(t)) = routes.get(k) {
                        roots.push(*t);
                    }
                }
                if let Some(Some(t)) = default {
                    roots.push(*t);
                }
            }
        }
        roots.extend(0..n);
        let mut state = vec![0u8; n];
        let mut back = vec![Vec::<usize>::new(); n];
        let mut postorder = Vec::with_capacity(n);
        for root in roots {
            if state[root] != 0 {
                continue;
            }
            state[root] = 1;
            let mut stack = vec![(root, 0usize)];
            while let Some(&mut (node, ref mut i)) = stack.last_mut() {
                if let Some(&child) = succ[node].get(*i) {
                    *i += 1;
                    if state[child] == 1 {
                        back[node].push(child);
                    } else if state[child] == 0 {
                        state[child] = 1;
                        stack.push((child, 0));
                    }
                } else {
                    state[node] = 2;
                    postorder.push(node);
                    stack.pop();
                }
            }
        }
        let forward: Vec<Vec<usize>> = (0..n)
            .map(|i| {
                succ[i]
                    .iter()
                    .copied()
                    .filter(|j| !back[i].contains(j))
                    .collect()
            })
            .collect();
        let mut rank = vec![0u32; n];
        for &node in postorder.iter().rev() {
            for &d in &forward[node] {
                rank[d] = rank[d].max(rank[node] + 1);
            }
        }
        // Reach in reverse topological order (postorder): a node reaches its
        // forward successors and everything they reach.
        let mut reach = vec![Bits::new(n); n];
        for &node in &postorder {
            let mut bits = Bits::new(n);
            for &d in &forward[node] {
                bits.set(d);
                bits.union(&reach[d]);
            }
            reach[node] = bits;
        }

        Ok(Self {
            names: b
                .nodes
                .iter()
                .map(|(n, _)| NodeName::from(n.as_str()))
                .collect(),
            nodes: b.nodes.iter().map(|(_, h)| h.0.clone()).collect(),
            out,
            start,
            reach,
            rank,
            drawn,
        })
    }
}
