//! Routers: a classifier picks one way out of a node.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::node::BoxError;

/// Turns a node's output into a routing key.
///
/// Sync closures over `&Value` are classifiers already; wrap async ones with
/// [`Router::from_async`].
#[async_trait]
pub trait Classifier: Send + Sync + 'static {
    /// The routing key for `value`.
    async fn classify(&self, value: &Value) -> Result<String, BoxError>;
}

#[async_trait]
impl<F, K> Classifier for F
where
    F: Fn(&Value) -> K + Send + Sync + 'static,
    K: Into<String>,
{
    async fn classify(&self, value: &Value) -> Result<String, BoxError> {
        Ok(self(value).into())
    }
}

struct AsyncClassifier<F, Fut> {
    f: F,
    _fut: PhantomData<fn() -> Fut>,
}

#[async_trait]
impl<F, Fut, K, E> Classifier for AsyncClassifier<F, Fut>
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<K, E>> + Send + 'static,
    K: Into<String>,
    E: Into<BoxError>,
{
    async fn classify(&self, value: &Value) -> Result<String, BoxError> {
        (self.f)(value.clone())
            .await
            .map(Into::into)
            .map_err(Into::into)
    }
}

struct TextClassifier<F>(F);

#[async_trait]
impl<F, K> Classifier for TextClassifier<F>
where
    F: Fn(&str) -> K + Send + Sync + 'static,
    K: Into<String>,
{
    async fn classify(&self, value: &Value) -> Result<String, BoxError> {
        Ok(match value {
            Value::String(s) => (self.0)(s).into(),
            other => (self.0)(&other.to_string()).into(),
        })
    }
}

/// Where a route leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dest {
    Node(String),
    End,
}

impl Dest {
    pub(crate) fn parse(target: &str) -> Self {
        if target == crate::END {
            Self::End
        } else {
            Self::Node(target.to_owned())
        }
    }

    pub(crate) fn label(&self) -> &str {
        match self {
            Self::Node(n) => n,
            Self::End => "END",
        }
    }
}

/// A conditional edge: the classifier's key picks the route; unknown keys
/// take the default, or fail the run without one.
///
/// ```
/// use loomflow_workflow::{Router, END};
/// use serde_json::Value;
///
/// let router = Router::new(|v: &Value| if v.as_i64() < Some(3) { "again" } else { "done" })
///     .route("again", "draft")
///     .route("done", END);
/// ```
#[derive(Clone)]
pub struct Router {
    pub(crate) classifier: Arc<dyn Classifier>,
    pub(crate) routes: Vec<(String, Dest)>,
    pub(crate) default: Option<Dest>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.routes)
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

impl Router {
    /// A router over a classifier (a sync `Fn(&Value) -> impl Into<String>`
    /// or any [`Classifier`]).
    pub fn new(classifier: impl Classifier) -> Self {
        Self {
            classifier: Arc::new(classifier),
            routes: Vec::new(),
            default: None,
        }
    }

    /// A router whose classifier reads the output as text (a string as is,
    /// anything else as JSON).
    pub fn text<F, K>(classify: F) -> Self
    where
        F: Fn(&str) -> K + Send + Sync + 'static,
        K: Into<String> + 'static,
    {
        Self::new(TextClassifier(classify))
    }

    /// A router over an async classifier (one that calls a model, say).
    pub fn from_async<F, Fut, K, E>(classify: F) -> Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<K, E>> + Send + 'static,
        K: Into<String> + 'static,
        E: Into<BoxError> + 'static,
    {
        Self::new(AsyncClassifier {
            f: classify,
            _fut: PhantomData,
        })
    }

    /// Sends key `key` to `target` (a node name or [`END`](crate::END)).
    pub fn route(mut self, key: impl Into<String>, target: &str) -> Self {
        let key = key.into();
        let dest = Dest::parse(target);
        match self.routes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = dest,
            None => self.routes.push((key, dest)),
        }
        self
    }

    /// Adds several routes.
    pub fn routes<K, T>(mut self, routes: impl IntoIterator<Item = (K, T)>) -> Self
    where
        K: Into<String>,
        T: AsRef<str>,
    {
        for (k, t) in routes {
            self = self.route(k, t.as_ref());
        }
        self
    }

    /// Where keys without a route go.
    pub fn default_route(mut self, target: &str) -> Self {
        self.default = Some(Dest::parse(target));
        self
    }
}
