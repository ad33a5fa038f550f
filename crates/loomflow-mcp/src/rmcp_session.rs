//! [`Session`] on the official Rust SDK (`rmcp`). Everything of the SDK is in
//! this module.

// Sampling is deprecated by the MCP spec (SEP-2577) but servers still ask
// for it; the SDK marks its types deprecated.
#![allow(deprecated)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{FutureExt as _, StreamExt as _};
use loomflow_core::journal::CallContext;
use loomflow_core::message::{ContentPart, Image, Message, Role};
use loomflow_core::model::{FinishReason, ModelRequest};
use loomflow_core::redact::redact;
use rmcp::handler::client::progress::ProgressDispatcher;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotificationParam,
    ClientCapabilities, ClientConfig, ClientRequest, ContentBlock, CreateMessageRequestParams,
    CreateMessageResult, ErrorData, GetPromptRequestParams, Implementation,
    ReadResourceRequestParams, RequestId, ResourceContents, SamplingCapability, SamplingMessage,
    SamplingMessageContentBlock, ServerResult,
};
use rmcp::model::{JsonRpcMessage, ServerNotification};
use rmcp::service::{
    PeerRequestOptions, RequestContext, RunningService, RxJsonRpcMessage, TxJsonRpcMessage,
};
use rmcp::transport::Transport;
use rmcp::{ClientHandler, Peer, RoleClient, ServiceError, ServiceExt};
use serde_json::{Map, Value};

use crate::content::{
    McpPrompt, McpResource, PromptArgument, ResourceBody, ResourceContent, blob_line, decoded_len,
};
use crate::session::{CallOutput, Hooks, RemoteTool, Session, SessionError};
use crate::spec::{McpServerSpec, McpTransport};

/// Connects to the server `spec` describes and completes the MCP handshake.
pub(crate) async fn connect(spec: &McpServerSpec, hooks: Hooks) -> Result<RmcpSession, String> {
    let progress = ProgressDispatcher::new();
    fn watch<T>(inner: T, progress: &ProgressDispatcher, hooks: &Hooks) -> Watched<T> {
        Watched {
            inner,
            progress: progress.clone(),
            on_tools_changed: hooks.on_tools_changed.clone(),
        }
    }
    let handler = Handler {
        hooks: hooks.clone(),
    };
    // The handshake, over the transport the spec names; `url` says where
    // in an error.
    let (service, url) = match &spec.transport {
        McpTransport::Stdio { command, args, env } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args).envs(env).kill_on_drop(true);
            let transport = rmcp::transport::TokioChildProcess::builder(cmd)
                .stderr(std::process::Stdio::null())
                .spawn()
                .map(|(t, _)| t)
                .map_err(|e| {
                    format!(
                        "cannot start `{command}`: {e} (check `command` and that it is installed)"
                    )
                })?;
            (
                handler.serve(watch(transport, &progress, &hooks)).await,
                None,
            )
        }
        McpTransport::Http { url, headers } => {
            use rmcp::transport::StreamableHttpClientTransport;
            use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
            let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
            for (name, value) in headers {
                let header = http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| format!("`headers`: {name:?} is not an HTTP header name ({e})"))?;
                let value = http::HeaderValue::from_str(value).map_err(|e| {
                    format!("`headers`: the value of {name:?} is not a valid header value ({e})")
                })?;
                config.custom_headers.insert(header, value);
            }
            let transport =
                StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
            let service = handler.serve(watch(transport, &progress, &hooks)).await;
            (service, Some(url.as_str()))
        }
    };
    let service = service.map_err(|e| handshake_error(url, &e.to_string()))?;
    Ok(RmcpSession {
        server: spec.name.clone(),
        peer: service.peer().clone(),
        service: tokio::sync::RwLock::new(service),
        progress,
    })
}

/// Why the handshake with a server (at `url`, over HTTP) failed, without
/// the SDK's transport type names; a refusal for want of credentials says
/// which setting to check.
fn handshake_error(url: Option<&str>, message: &str) -> String {
    let with = url.map(|u| format!(" with {u}")).unwrap_or_default();
    if url.is_some() && message.contains("Auth required") {
        return format!(
            "the MCP handshake{with} failed: the server wants authorization (HTTP 401); \
             check the `headers` (Authorization) of this server"
        );
    }
    redact(&format!(
        "the MCP handshake{with} failed: {}",
        tidy(message)
    ))
    .into_owned()
}

/// An SDK error without the transport's type name it carries
/// (`Transport [rmcp::…<…>] error: …`).
fn tidy(message: &str) -> String {
    match (message.find("Transport ["), message.find("] error: ")) {
        (Some(start), Some(end)) if start < end => {
            format!(
                "{}{}",
                &message[..start],
                &message[end + "] error: ".len()..]
            )
        }
        _ => message.to_owned(),
    }
}

/// Answers what a server asks of the client.
struct Handler {
    hooks: Hooks,
}

/// A transport that notices, in wire order, what the registry must know
/// before the answer that follows it: progress reports (told to the call
/// that asked, before its result) and `tools/list_changed` (so the next turn
/// sees the new list). The SDK's own handlers run each notification on a
/// task of its own, which can come after the answer.
struct Watched<T> {
    inner: T,
    progress: ProgressDispatcher,
    on_tools_changed: Arc<dyn Fn() + Send + Sync>,
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Watched<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let message = self.inner.receive().await;
        if let Some(JsonRpcMessage::Notification(n)) = &message {
            match &n.notification {
                ServerNotification::ProgressNotification(p) => {
                    self.progress.handle_notification(p.params.clone()).await;
                }
                ServerNotification::ToolListChangedNotification(_) => {
                    (self.on_tools_changed)();
                }
                _ => {}
            }
        }
        message
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        if self.hooks.sampler.is_some() {
            capabilities.sampling = Some(SamplingCapability::default());
        }
        ClientConfig::new(
            capabilities,
            Implementation::new("loomflow", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let Some(model) = &self.hooks.sampler else {
            return Err(ErrorData::invalid_request(
                "this client answers no sampling requests (no sampling model is configured)",
                None,
            ));
        };
        let messages = sampling_messages(&params);
        let mut request = ModelRequest::new(&messages);
        request.max_tokens = Some(params.max_tokens);
        request.temperature = params.temperature;
        let completion = model.complete(request).await.map_err(|e| {
            ErrorData::internal_error(redact(&format!("sampling failed: {e}")).into_owned(), None)
        })?;
        let stop = match completion.finish_reason {
            FinishReason::Length => CreateMessageResult::STOP_REASON_END_MAX_TOKEN,
            _ => CreateMessageResult::STOP_REASON_END_TURN,
        };
        Ok(CreateMessageResult::new(
            SamplingMessage::new(
                rmcp::model::Role::Assistant,
                SamplingMessageContentBlock::text(completion.text),
            ),
            model.name().to_owned(),
        )
        .with_stop_reason(stop))
    }
}

/// An MCP role as loomflow's.
fn role(role: &rmcp::model::Role) -> Role {
    match role {
        rmcp::model::Role::User => Role::User,
        rmcp::model::Role::Assistant => Role::Assistant,
    }
}

/// A sampling request as the messages a loomflow model takes.
fn sampling_messages(params: &CreateMessageRequestParams) -> Vec<Message> {
    let mut messages = Vec::with_capacity(params.messages.len() + 1);
    if let Some(system) = params.system_prompt.as_deref().filter(|s| !s.is_empty()) {
        messages.push(Message::system(system));
    }
    for message in &params.messages {
        let mut out = Message::text(role(&message.role), "");
        for block in message.content.clone().into_vec() {
            out.content.push(match block {
                SamplingMessageContentBlock::Text(t) => ContentPart::Text { text: t.text },
                SamplingMessageContentBlock::Image(i) => ContentPart::Image {
                    image: Image::Base64 {
                        media_type: i.mime_type,
                        data: i.data,
                    },
                },
                SamplingMessageContentBlock::Audio(a) => ContentPart::Text {
                    text: format!("[audio {}, {} bytes]", a.mime_type, decoded_len(&a.data)),
                },
                other => ContentPart::Text {
                    text: serde_json::to_string(&other).unwrap_or_default(),
                },
            });
        }
        messages.push(out);
    }
    messages
}

type Service = RunningService<RoleClient, Handler>;

/// A connection through `rmcp`.
pub(crate) struct RmcpSession {
    server: String,
    /// The running session: shared by requests that drive rounds through
    /// the local handler (resources, prompts), taken alone to close it.
    service: tokio::sync::RwLock<Service>,
    /// Its peer, for plain requests.
    peer: Peer<RoleClient>,
    progress: ProgressDispatcher,
}

impl RmcpSession {
    fn peer(&self) -> Result<&Peer<RoleClient>, SessionError> {
        match self.peer.is_transport_closed() {
            false => Ok(&self.peer),
            true => Err(SessionError::Closed),
        }
    }
}

fn session_error(e: ServiceError) -> SessionError {
    match e {
        ServiceError::TransportClosed | ServiceError::TransportSend(_) => SessionError::Closed,
        ServiceError::Timeout { .. } => SessionError::Timeout,
        ServiceError::McpError(e) => SessionError::Failed(e.message.into_owned()),
        other => SessionError::Failed(other.to_string()),
    }
}

/// Tells the server a request was abandoned when the caller drops it (a
/// cancelled run), so it stops working on it.
struct CancelOnDrop {
    peer: Peer<RoleClient>,
    id: Option<RequestId>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let peer = self.peer.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let params = CancelledNotificationParam::new(
                    Some(id),
                    Some("the caller stopped waiting".into()),
                );
                let _ = peer.notify_cancelled(params).await;
            });
        }
    }
}

#[async_trait]
impl Session for RmcpSession {
    async fn tools(&self) -> Result<Vec<RemoteTool>, SessionError> {
        let tools = self.peer()?.list_all_tools().await.map_err(session_error)?;
        Ok(tools
            .into_iter()
            .map(|tool| {
                let hints = tool.annotations.as_ref();
                let read_only = hints.and_then(|a| a.read_only_hint) == Some(true);
                // MCP's default for destructiveHint is true; a read-only
                // tool is not destructive whatever it says.
                let destructive =
                    !read_only && hints.and_then(|a| a.destructive_hint).unwrap_or(true);
                RemoteTool {
                    name: tool.name.to_string(),
                    description: tool.description.as_deref().unwrap_or_default().to_owned(),
                    input_schema: (*tool.input_schema).clone(),
                    destructive,
                }
            })
            .collect())
    }

    async fn call(
        &self,
        tool: &str,
        args: Option<Map<String, Value>>,
        timeout: Duration,
        call: Option<&CallContext>,
    ) -> Result<CallOutput, SessionError> {
        let peer = self.peer()?;
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = args;
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let options = PeerRequestOptions::with_timeout(timeout);
        let handle = peer
            .send_request_with_option(request, options)
            .await
            .map_err(session_error)?;
        let mut abandon = CancelOnDrop {
            peer: peer.clone(),
            id: Some(handle.id.clone()),
        };
        let call = call.filter(|c| c.reports_progress());
        let mut progress = match call {
            Some(_) => Some(self.progress.subscribe(handle.progress_token.clone()).await),
            None => None,
        };
        let response = handle.await_response();
        tokio::pin!(response);
        let response = loop {
            let next = async {
                match progress.as_mut() {
                    Some(p) => p.next().await,
                    None => std::future::pending().await,
                }
            };
            // Progress first: reports come before the answer, in order.
            tokio::select! {
                biased;
                Some(p) = next => {
                    if let Some(call) = call {
                        call.progress(p.progress, p.total, p.message).await;
                    }
                }
                response = &mut response => break response,
            }
        };
        // Reports the server sent before its answer are queued by now
        // (`Watched`): tell the rest.
        if let (Some(call), Some(progress)) = (call, progress.as_mut()) {
            while let Some(Some(p)) = progress.next().now_or_never() {
                call.progress(p.progress, p.total, p.message).await;
            }
        }
        // Answered, or timed out (the SDK cancelled it on the server).
        abandon.id = None;
        match response.map_err(session_error)? {
            ServerResult::CallToolResult(result) => Ok(call_output(result)),
            _ => Err(SessionError::Failed(
                "the server answered the call with something other than a tool result \
                 (a task or a request for input, which loomflow does not drive)"
                    .into(),
            )),
        }
    }

    async fn resources(&self) -> Result<Vec<McpResource>, SessionError> {
        let listed = self
            .peer()?
            .list_all_resources()
            .await
            .map_err(session_error)?;
        Ok(listed
            .into_iter()
            .map(|r| McpResource {
                server: self.server.clone(),
                uri: r.uri,
                name: r.name,
                description: r.description,
                mime_type: r.mime_type,
            })
            .collect())
    }

    async fn read_resource(&self, uri: &str) -> Result<Vec<ResourceContent>, SessionError> {
        self.peer()?;
        let read = self
            .service
            .read()
            .await
            .read_resource(ReadResourceRequestParams::new(uri))
            .await
            .map_err(session_error)?;
        Ok(read.contents.into_iter().map(resource_content).collect())
    }

    async fn prompts(&self) -> Result<Vec<McpPrompt>, SessionError> {
        let listed = self
            .peer()?
            .list_all_prompts()
            .await
            .map_err(session_error)?;
        Ok(listed
            .into_iter()
            .map(|p| McpPrompt {
                server: self.server.clone(),
                name: p.name,
                description: p.description,
                arguments: p
                    .arguments
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| PromptArgument {
                        name: a.name,
                        description: a.description,
                        required: a.required == Some(true),
                    })
                    .collect(),
            })
            .collect())
    }

    async fn prompt(
        &self,
        name: &str,
        args: Map<String, Value>,
    ) -> Result<Vec<Message>, SessionError> {
        self.peer()?;
        let mut params = GetPromptRequestParams::new(name);
        params.arguments = (!args.is_empty()).then_some(args);
        let got = self
            .service
            .read()
            .await
            .get_prompt(params)
            .await
            .map_err(session_error)?;
        Ok(got
            .messages
            .into_iter()
            .map(|m| {
                let mut message = Message::text(role(&m.role), "");
                message.content.push(content_part(m.content));
                message
            })
            .collect())
    }

    fn is_closed(&self) -> bool {
        self.peer.is_transport_closed()
    }

    async fn close(&self) {
        let _ = self.service.write().await.close().await;
    }
}

/// A server's resource contents in our terms.
fn resource_content(contents: ResourceContents) -> ResourceContent {
    match contents {
        ResourceContents::TextResourceContents {
            uri,
            mime_type,
            text,
            ..
        } => ResourceContent {
            uri,
            mime_type,
            body: ResourceBody::Text(text),
        },
        ResourceContents::BlobResourceContents {
            uri,
            mime_type,
            blob,
            ..
        } => ResourceContent {
            uri,
            mime_type,
            body: ResourceBody::Blob { base64: blob },
        },
        // A kind of contents newer than this SDK version knows: its JSON.
        other => ResourceContent {
            uri: String::new(),
            mime_type: None,
            body: ResourceBody::Text(serde_json::to_string(&other).unwrap_or_default()),
        },
    }
}

/// One content block as a content part: text and images as themselves,
/// embedded resources through [`ResourceContent::to_content_part`],
/// audio and links as a line saying what they are.
fn content_part(block: ContentBlock) -> ContentPart {
    match block {
        ContentBlock::Text(t) => ContentPart::Text { text: t.text },
        ContentBlock::Image(i) => ContentPart::Image {
            image: Image::Base64 {
                media_type: i.mime_type,
                data: i.data,
            },
        },
        ContentBlock::Resource(r) => resource_content(r.resource).to_content_part(),
        other => ContentPart::Text {
            text: placeholder(&other),
        },
    }
}

/// What the model reads for a block that is not text.
fn placeholder(block: &ContentBlock) -> String {
    match block {
        ContentBlock::Text(t) => t.text.clone(),
        ContentBlock::Image(i) => {
            format!("[image {}, {} bytes]", i.mime_type, decoded_len(&i.data))
        }
        ContentBlock::Audio(a) => {
            format!("[audio {}, {} bytes]", a.mime_type, decoded_len(&a.data))
        }
        ContentBlock::Resource(r) => match &r.resource {
            ResourceContents::TextResourceContents { text, .. } => text.clone(),
            ResourceContents::BlobResourceContents {
                uri,
                mime_type,
                blob,
                ..
            } => blob_line(uri, mime_type.as_deref(), blob),
            other => serde_json::to_string(other).unwrap_or_default(),
        },
        ContentBlock::ResourceLink(link) => match &link.description {
            Some(d) => format!("[resource {} ({}): {d}]", link.uri, link.name),
            None => format!("[resource {} ({})]", link.uri, link.name),
        },
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// A call's result as the model reads it. Structured content as it is,
/// when the blocks beside it are text (its serialised form, by the spec's
/// advice). Otherwise the blocks, one per line, where an image, audio or
/// binary block is a line naming its type and size and a resource link
/// names its URI (to read with `read_resource`): a server that mirrors an
/// image into its structured content does not send the model base64.
fn call_output(result: CallToolResult) -> CallOutput {
    let is_error = result.is_error == Some(true);
    let all_text = result
        .content
        .iter()
        .all(|b| matches!(b, ContentBlock::Text(_)));
    if let Some(structured) = result.structured_content.filter(|_| all_text) {
        return CallOutput {
            output: structured,
            is_error,
        };
    }
    let text = match result.content.as_slice() {
        [ContentBlock::Text(t)] => t.text.clone(),
        blocks => blocks
            .iter()
            .map(placeholder)
            .collect::<Vec<_>>()
            .join("\n"),
    };
    CallOutput {
        output: Value::String(text),
        is_error,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mixed_results_read_as_lines_with_placeholders() {
        let result: CallToolResult = serde_json::from_value(serde_json::json!({
            "content": [
                {"type": "text", "text": "Here is the image:"},
                {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
                {"type": "resource_link", "uri": "demo://r/1", "name": "one"},
                {"type": "resource", "resource": {"uri": "demo://r/2", "mimeType": "application/gzip", "blob": "H4sIAAAA"}}
            ]
        }))
        .unwrap();
        let out = call_output(result);
        assert!(!out.is_error);
        assert_eq!(
            out.output,
            "Here is the image:\n[image image/png, 8 bytes]\n[resource demo://r/1 (one)]\n[binary application/gzip, 6 bytes: demo://r/2]"
        );
    }
}
