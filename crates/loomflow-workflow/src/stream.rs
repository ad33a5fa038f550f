//! [`WorkflowStream`]: a workflow run's events.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use loomflow_core::{Event, EventSink};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::WorkflowError;
use crate::workflow::{WorkflowRequest, WorkflowResult};

enum State {
    Pending(Box<WorkflowRequest>),
    Running(JoinHandle<Result<WorkflowResult, WorkflowError>>),
    Done,
}

/// A workflow run's [`Event`]s through a bounded channel: `workflow_started`,
/// `workflow_step_started` / `workflow_step_completed` (or
/// `workflow_step_failed` and `error`), `workflow_completed`, with the events
/// of Agent and Workflow nodes in between, attributed by [`Event::node`].
///
/// The run starts on the first poll, as its own task (so it needs a tokio
/// runtime); a slow consumer slows it down; dropping the stream cancels it.
/// After the stream ends, [`result`](Self::result) returns the outcome.
pub struct WorkflowStream {
    state: State,
    rx: Option<mpsc::Receiver<Event>>,
}

impl std::fmt::Debug for WorkflowStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Pending(_) => "pending",
            State::Running(_) => "running",
            State::Done => "done",
        };
        f.debug_struct("WorkflowStream")
            .field("state", &state)
            .finish()
    }
}

impl WorkflowStream {
    pub(crate) fn new(request: WorkflowRequest) -> Self {
        Self {
            state: State::Pending(Box::new(request)),
            rx: None,
        }
    }

    fn start(&mut self) {
        if let State::Pending(_) = self.state
            && let State::Pending(request) = std::mem::replace(&mut self.state, State::Done)
        {
            let (tx, rx) = mpsc::channel(request.event_buffer());
            self.rx = Some(rx);
            let run = request.execute(Some(EventSink::new(tx)));
            self.state = State::Running(tokio::spawn(loomflow_core::telemetry::carry(run)));
        }
    }

    /// Drains the events left and returns the run's result (or its error).
    pub async fn result(mut self) -> Result<WorkflowResult, WorkflowError> {
        self.start();
        if let Some(rx) = &mut self.rx {
            while rx.recv().await.is_some() {}
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::Running(handle) => match handle.await {
                Ok(result) => result,
                Err(e) if e.is_cancelled() => Err(WorkflowError::Cancelled),
                Err(e) => Err(WorkflowError::Internal(format!(
                    "workflow task failed: {e}"
                ))),
            },
            State::Pending(_) | State::Done => Err(WorkflowError::Internal(
                "WorkflowStream::result called after the run was already collected".into(),
            )),
        }
    }
}

impl Stream for WorkflowStream {
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

impl Drop for WorkflowStream {
    fn drop(&mut self) {
        if let State::Running(handle) = &self.state {
            handle.abort();
        }
    }
}
