//! Secured HTTP: with API keys configured, the keyed sub-routers of [`super::routes`] get the
//! key check as a layer ([`keyed`]): their requests need `Authorization: Bearer <key>` (401
//! `unauthorized` otherwise). Which routes are keyed is decided by the sub-router a route is
//! declared in, never by matching its path: always open are the health check, the dashboard
//! page (its data needs the key) and the OpenAPI document; queue stats and metrics are open
//! only with `--public-stats`; everything else, peeking into an inbox and unknown paths
//! included, needs the key.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{Method, header::WWW_AUTHENTICATE};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;

use super::{ApiError, ApiState, openapi};
use crate::auth::{Security, unauthorized};

/// `router` with the key check on every route (and its fallback, if it has one), each
/// marked in the OpenAPI document as needing the key. Without API keys (open mode) the
/// router is returned as it is.
pub fn keyed(router: OpenApiRouter<ApiState>, security: &Arc<Security>) -> OpenApiRouter<ApiState> {
    if !security.api_keys.enabled() {
        return router;
    }
    let mut router = router.layer(from_fn_with_state(Arc::clone(security), require_key));
    openapi::require_key(router.get_openapi_mut());
    router
}

/// The bearer token of a request, if any.
fn bearer(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Lets a request through if it carries a valid key, or is a CORS preflight (which carries
/// no credentials).
async fn require_key(
    State(security): State<Arc<Security>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    match bearer(&request) {
        Some(key) if security.api_keys.accepts(key) => next.run(request).await,
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
