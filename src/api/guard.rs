//! Secured HTTP: with API keys configured, every request except the open reads needs
//! `Authorization: Bearer <key>` (401 `unauthorized` otherwise). Always open: the health check
//! and the dashboard page (its data needs the key). Queue stats and metrics are open only with
//! `--public-stats`. Peeking into an inbox never is.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{Method, header::WWW_AUTHENTICATE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};
use crate::auth::unauthorized;

/// Whether `method` `path` may be used without a key.
fn is_open(method: &Method, path: &str, public_stats: bool) -> bool {
    if method == Method::OPTIONS {
        return true; // CORS preflight carries no credentials
    }
    if method != Method::GET {
        return false;
    }
    let stats = matches!(path, "/metrics" | "/v1/queues")
        || (path.starts_with("/v1/queues/") && !path.contains("/clients/"));
    path == "/healthz" || path.starts_with("/dashboard") || (public_stats && stats)
}

/// The bearer token of a request, if any.
pub fn bearer(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Lets a request through if it needs no key or carries a valid one.
pub async fn require_key(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let keys = &state.security.api_keys;
    let public_stats = state.security.public_stats;
    if !keys.enabled() || is_open(request.method(), request.uri().path(), public_stats) {
        return next.run(request).await;
    }
    match bearer(&request) {
        Some(key) if keys.accepts(key) => next.run(request).await,
        Some(_) => refuse("the API key is not valid"),
        None => refuse("this route needs 'Authorization: Bearer <api key>'"),
    }
}

fn refuse(message: &str) -> Response {
    let mut response = ApiError(unauthorized(message)).into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        "Bearer".parse().expect("static header value"),
    );
    response
}
