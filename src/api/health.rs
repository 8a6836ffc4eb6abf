//! `GET /healthz`: liveness. (`GET /metrics` is in `metrics.rs`.)

use serde::Serialize;

/// The answer of the health check: `{"status": "ok"}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(value_type = String, example = "ok")]
    status: &'static str,
}

/// 200 once the server accepts publishes and socket connections (it binds only then).
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The server accepts publishes and sockets", body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}
