//! `GET /healthz`: liveness. (`GET /metrics` is in `metrics.rs`.)

use axum::response::IntoResponse;
use serde_json::json;

/// 200 once the server accepts publishes and socket connections (it binds only then).
pub async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}
