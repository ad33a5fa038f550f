use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::run::{RunRequest, RunResult, typed};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind, EventSink};
use crate::id::SessionId;

enum State {
    Pending(Box<RunRequest>),
    Running(JoinHandle<Result<RunResult>>),
    Done,
    NoRuntime,
}

const NO_RUNTIME: &str = "an agent's event stream must be polled inside a tokio runtime (use #[tokio::main] or a Runtime)";

/// A run's [`Event`]s, through a bounded channel.
///
/// The run starts on the first poll, as its own task. A consumer that stops
/// reading slows the run down (backpressure); dropping the stream cancels the
/// run. After the stream ends, [`EventStream::result`] returns the outcome.
///
/// ```
/// use futures_util::StreamExt;
/// use loomflow_core::Agent;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let agent = Agent::builder().model("echo").build().unwrap();
/// let mut events = agent.stream("hi there");
/// let mut kinds = Vec::new();
/// while let Some(event) = events.next().await {
///     kinds.push(event.kind_name());
/// }
/// assert_eq!(kinds, ["started", "model_chunk", "model_chunk", "model_chunk", "model_chunk", "completed"]);
/// assert_eq!(events.result().await.unwrap().output, "Echo: hi there");
/// # });
/// ```
pub struct EventStream<T = serde_json::Value> {
    state: State,
    rx: Option<mpsc::Receiver<Event>>,
    _out: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for EventStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Pending(_) => "pending",
            State::Running(_) => "running",
            State::Done => "done",
            State::NoRuntime => "no runtime",
        };
        f.debug_struct("EventStream")
            .field("state", &state)
            .finish()
    }
}

impl<T> EventStream<T> {
    pub(crate) fn new(request: RunRequest) -> Self {
        Self {
            state: State::Pending(Box::new(request)),
            rx: None,
            _out: PhantomData,
        }
    }

    fn start(&mut self) {
        if let State::Pending(_) = self.state {
            let State::Pending(request) = std::mem::replace(&mut self.state, State::Done) else {
                return;
            };
            let (tx, rx) = mpsc::channel(request.agent.inner.event_buffer);
            self.rx = Some(rx);
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    self.state = State::Running(runtime.spawn(crate::telemetry::carry(
                        request.execute(Some(EventSink::new(tx))),
                    )))
                }
                Err(_) => {
                    let _ = tx.try_send(Event::new(
                        SessionId::generate(),
                        EventKind::Error {
                            error_type: "ConfigError".into(),
                            message: NO_RUNTIME.into(),
                        },
                    ));
                    self.state = State::NoRuntime;
                }
            }
        }
    }
}

impl<T: DeserializeOwned> EventStream<T> {
    /// Drains any events left and returns the run's result (or its error).
    pub async fn result(mut self) -> Result<RunResult<T>> {
        self.start();
        if let Some(rx) = &mut self.rx {
            while rx.recv().await.is_some() {}
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::Running(handle) => match handle.await {
                Ok(result) => typed(result?),
                Err(e) if e.is_cancelled() => Err(Error::Cancelled),
                Err(e) => Err(Error::Internal(format!("run task failed: {e}"))),
            },
            State::NoRuntime => Err(Error::Config(crate::error::ConfigError::invalid(
                "runtime", NO_RUNTIME,
            ))),
            State::Pending(_) | State::Done => Err(Error::Internal(
                "EventStream::result called after the run was already collected".into(),
            )),
        }
    }
}

impl<T> Stream for EventStream<T> {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = self.get_mut();
        this.start();
        match &mut this.rx {
            Some(rx) => rx.poll_recv(cx),
            None => Poll::Ready(None),
        }
    }
}

impl<T> Drop for EventStream<T> {
    fn drop(&mut self) {
        if let State::Running(handle) = &self.state {
            handle.abort();
        }
    }
}
