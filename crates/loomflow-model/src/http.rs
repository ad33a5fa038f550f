//! Sending requests to a provider (feature `http`): the one place HTTP
//! failures become classified [`ModelError`]s, and the default client.

use bytes::Bytes;

use crate::error::{ConfigError, ModelError, parse_retry_after};
use crate::sse::ByteBody;

/// The HTTP client crate, for [`connection_setters!`](crate::connection_setters).
pub use reqwest;

/// A provider's response body, as the bytes arrive.
pub type HttpBody = ByteBody<Bytes, reqwest::Error>;

/// Sends `request` and returns its body as it streams in, when the status
/// is a success; failures as in [`send`].
pub async fn open_stream(
    request: reqwest::RequestBuilder,
    endpoint: &str,
) -> Result<HttpBody, ModelError> {
    Ok(Box::pin(send(request, endpoint).await?.bytes_stream()))
}

/// Sends `request` and returns the response when the status is a success.
/// A connection failure is [`ModelError::Transient`] naming `endpoint`; an
/// error status is classified by [`ModelError::from_http`] with the
/// `retry-after-ms` / `Retry-After` hint and the provider's error body.
pub async fn send(
    request: reqwest::RequestBuilder,
    endpoint: &str,
) -> Result<reqwest::Response, ModelError> {
    let response = request.send().await.map_err(|e| ModelError::Transient {
        message: format!("could not reach {endpoint}: {e}"),
        retry_after: None,
    })?;
    let status = response.status().as_u16();
    if status >= 400 {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = parse_retry_after(
            header("retry-after-ms").as_deref(),
            header("retry-after").as_deref(),
        );
        let text = response.text().await.unwrap_or_default();
        return Err(ModelError::from_http(status, retry_after, &text));
    }
    Ok(response)
}

/// Sends `request` and parses its JSON reply as `T` (`what` names the
/// reply in errors: "the embeddings response"). Failures as in [`send`]; a
/// connection lost while reading is transient; a body that does not parse
/// is [`ModelError::Other`] quoting the parser.
pub async fn receive_json<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
    endpoint: &str,
    what: &str,
) -> Result<T, ModelError> {
    let bytes =
        send(request, endpoint)
            .await?
            .bytes()
            .await
            .map_err(|e| ModelError::Transient {
                message: format!("the connection to {endpoint} failed while reading {what}: {e}"),
                retry_after: None,
            })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ModelError::other(format!("{what} from {endpoint} did not parse: {e}")))
}

/// The HTTP client adapters build when none is given: `client` if set,
/// else a fresh one with a 30 s connect timeout (request timeouts are set
/// per request).
pub fn client_or_default(client: Option<reqwest::Client>) -> Result<reqwest::Client, ConfigError> {
    match client {
        Some(c) => Ok(c),
        None => reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| ConfigError::invalid("http client", e.to_string())),
    }
}

/// The connection setters every provider builder shares: `api_key`,
/// `base_url`, `secrets`, `timeout` and `client`, writing the builder's
/// fields of those names (`api_key: Option<String>`, `base_url:
/// Option<String>`, `secrets: Option<Arc<dyn Secrets>>`, `timeout:
/// Duration`, `client: Option<reqwest::Client>`). The two provider-specific
/// doc lines are the arguments.
///
/// ```ignore
/// impl AcmeBuilder {
///     loomflow_model::connection_setters!(
///         base_url: "The base URL, up to and including `/v1`.",
///         timeout: "The whole-request timeout (default 600 s).",
///     );
/// }
/// ```
#[macro_export]
macro_rules! connection_setters {
    (base_url: $base_url_doc:literal, timeout: $timeout_doc:literal $(,)?) => {
        /// The API key (else the secrets store, else the provider's variable).
        pub fn api_key(mut self, key: impl Into<String>) -> Self {
            self.api_key = Some(key.into());
            self
        }

        #[doc = $base_url_doc]
        pub fn base_url(mut self, url: impl Into<String>) -> Self {
            self.base_url = Some(url.into());
            self
        }

        /// Where to look up the key (and base URL) before the environment.
        pub fn secrets(mut self, secrets: impl $crate::secrets::Secrets) -> Self {
            self.secrets = Some(::std::sync::Arc::new(secrets));
            self
        }

        #[doc = $timeout_doc]
        pub fn timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.timeout = timeout;
            self
        }

        /// A preconfigured HTTP client (proxies, custom roots, pooling).
        pub fn client(mut self, client: $crate::http::reqwest::Client) -> Self {
            self.client = Some(client);
            self
        }
    };
}
