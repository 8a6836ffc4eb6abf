//! The HTTP API (axum): one resource per file, all calling the [`Broker`].
//!
//! Every error is `{"error": {"code", "message"}}` with a fitting status; see [`ApiError`].
//! Request bodies go through [`JsonBody`], which checks the content type, the size and the
//! JSON before a handler runs.
//!
//! Every route is declared once, in [`routes`], with the `#[utoipa::path]` description of its
//! handler: the same call adds it to the router and to the OpenAPI document served at
//! `GET /openapi.json` ([`openapi`]). Who may use a route is decided by the sub-router it is
//! in: open, stats (open with `--public-stats`) or keyed ([`guard`]), not by its path.

mod body;
mod dashboard;
mod guard;
mod health;
mod inbox;
mod lab;
mod metrics;
pub mod openapi;
mod publish;
mod queues;
mod rate;
mod tokens;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Security;
use crate::broker::Broker;
use crate::config::Config;
use crate::error::{Code, Error, ErrorKind};

pub use body::JsonBody;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub broker: Broker,
    /// Counts connected sockets by the node they came through (an address), for `/metrics`.
    pub sockets: std::sync::Arc<dyn Fn() -> Vec<(String, usize)> + Send + Sync>,
    /// API keys and the token secret (secured mode).
    pub security: std::sync::Arc<Security>,
}

/// Every route of the API, a preset's lab routes and the dashboard page, each with its
/// OpenAPI description, in three groups:
/// - open in every mode: the health check, the dashboard page, the OpenAPI document;
/// - stats (queue stats and metrics): open with `--public-stats`, else keyed;
/// - keyed: everything else, and any unknown path (401 before 404).
///
/// With API keys configured, the keyed groups get the key check as a layer
/// ([`guard::keyed`]), which also marks their operations as needing the key in the document.
pub fn routes(config: &Config) -> OpenApiRouter<ApiState> {
    let security = &config.security;
    let open = OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(openapi::document))
        .merge(dashboard::routes(config.dashboard_dir.as_deref()));
    let stats = OpenApiRouter::new()
        .routes(routes!(queues::list))
        .routes(routes!(queues::detail))
        .routes(routes!(metrics::metrics));
    let stats = match security.public_stats {
        true => stats,
        false => guard::keyed(stats, security),
    };
    let keyed = OpenApiRouter::new()
        .routes(routes!(publish::to_queue))
        .routes(routes!(publish::batch))
        .routes(routes!(queues::kick))
        .routes(routes!(inbox::peek))
        .routes(routes!(inbox::ack))
        .routes(routes!(inbox::unsubscribe))
        .routes(routes!(tokens::mint))
        .merge(lab::routes(&config.http_routes))
        .fallback(not_found);
    let keyed = guard::keyed(keyed, security);
    let mut api = open.merge(stats).merge(keyed);
    let document = api.get_openapi_mut();
    *document = openapi::describe(document.clone(), security);
    if config.max_requests_per_sec.is_some() {
        openapi::rate_limited(document);
    }
    api
}

/// The API's routes, a preset's lab routes, the dashboard page and `/openapi.json`.
pub fn router(state: ApiState, config: &Config) -> Router {
    let (router, document) = routes(config).split_for_parts();
    let router = router
        .layer(axum::Extension(openapi::Document::new(&document)))
        .layer(DefaultBodyLimit::max(config.max_body_bytes));
    let router = match rate::Limit::new(config.max_requests_per_sec) {
        Some(limit) => router.layer(axum::middleware::from_fn_with_state(limit, rate::limit)),
        None => router,
    };
    router.with_state(state)
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

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: Error,
}

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
        (status, axum::Json(ErrorBody { error: self.0 })).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_table_of_the_api_reference_gives_each_code_its_http_status() {
        let api = include_str!("../../docs/API.md");
        for code in Code::ALL {
            let row = format!("| `{code}` | ");
            let line = api.lines().find(|line| line.starts_with(&row));
            let Some(line) = line else {
                panic!("docs/API.md has no row for `{code}`");
            };
            let documented = line[row.len()..].split(' ').next().unwrap_or_default();
            let status = status(code.kind()).as_u16().to_string();
            // `—`: the code is never an HTTP answer (socket only, or only logged).
            if documented != "—" {
                assert_eq!(documented, status, "docs/API.md's status for `{code}`");
            }
        }
    }
}
