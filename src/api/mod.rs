//! The HTTP API (axum): one resource per file, all calling the [`Broker`].
//!
//! Every error is `{"error": {"code", "message"}}` with a fitting status; see [`ApiError`].
//! Request bodies go through [`JsonBody`], which checks the content type, the size and the
//! JSON before a handler runs.

mod body;
mod dashboard;
mod guard;
mod health;
mod inbox;
mod lab;
mod publish;
mod queues;
mod tokens;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::json;

use crate::auth::Security;
use crate::broker::Broker;
use crate::config::Config;
use crate::error::{Code, Error, ErrorKind};

pub use body::JsonBody;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub broker: Broker,
    /// Counts connected sockets, for `/metrics`.
    pub sockets: std::sync::Arc<dyn Fn() -> usize + Send + Sync>,
    /// API keys and the token secret (secured mode).
    pub security: std::sync::Arc<Security>,
}

/// The API's routes, a preset's lab routes and the dashboard page.
pub fn router(state: ApiState, config: &Config) -> Router {
    let max_body_bytes = config.max_body_bytes;
    Router::new()
        .merge(lab::routes(&config.http_routes))
        .merge(dashboard::routes(config.dashboard_dir.as_deref()))
        .route("/v1/queues", get(queues::list))
        .route("/v1/queues/{queue}", get(queues::detail))
        .route("/v1/queues/{queue}/messages", post(publish::to_queue))
        .route("/v1/messages", post(publish::batch))
        .route("/v1/queues/{queue}/kick", post(queues::kick))
        .route(
            "/v1/queues/{queue}/clients/{client}/messages",
            get(inbox::peek),
        )
        .route("/v1/queues/{queue}/clients/{client}/acks", post(inbox::ack))
        .route(
            "/v1/queues/{queue}/clients/{client}",
            delete(inbox::unsubscribe),
        )
        .route("/v1/tokens", post(tokens::mint))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::require_key,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// What a connection over its address's limit (`--max-connections-per-ip`) is answered,
/// whatever it asks: 429 `too_many_connections`.
pub fn too_many_connections(max: usize) -> Router {
    let error = Error::new(
        Code::TooManyConnections,
        format!("this address already has {max} connections, the limit"),
    );
    Router::new().fallback(move || std::future::ready(ApiError(error.clone())))
}

async fn not_found() -> ApiError {
    ApiError(Error::new(
        Code::NotFound,
        "no such route; see docs/API.md for the API reference",
    ))
}

/// An [`Error`] as an HTTP response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        Self(err)
    }
}

/// The HTTP status of each kind of error.
fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Malformed => StatusCode::BAD_REQUEST,
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::Limit => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Full => StatusCode::INSUFFICIENT_STORAGE,
        ErrorKind::Unavailable | ErrorKind::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status(self.0.kind());
        if status.is_server_error() {
            tracing::warn!(
                code = %self.0.code(),
                message = self.0.message(),
                "request failed"
            );
        }
        (status, axum::Json(json!({ "error": self.0 }))).into_response()
    }
}
