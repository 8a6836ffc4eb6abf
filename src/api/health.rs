//! `GET /healthz` (liveness) and `GET /metrics` (Prometheus text format).

use std::fmt::Write;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::Serialize;

use super::ApiState;

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

/// Escapes a label value for the Prometheus text format.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Counters and gauges per queue and per inbox.
#[utoipa::path(get, path = "/metrics", tag = "stats",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    let mut out = String::new();
    let totals = state.broker.totals();
    let queues = state.broker.queues();
    let _ = writeln!(
        out,
        "# HELP queuehub_stored_messages Messages stored (each payload once)."
    );
    let _ = writeln!(out, "# TYPE queuehub_stored_messages gauge");
    let _ = writeln!(out, "queuehub_stored_messages {}", totals.stored_messages);
    let _ = writeln!(out, "# HELP queuehub_queues Queues known.");
    let _ = writeln!(out, "# TYPE queuehub_queues gauge");
    let _ = writeln!(out, "queuehub_queues {}", totals.queues);
    let _ = writeln!(
        out,
        "# HELP queuehub_sockets_connected Connected socket.io sockets."
    );
    let _ = writeln!(out, "# TYPE queuehub_sockets_connected gauge");
    let _ = writeln!(out, "queuehub_sockets_connected {}", (state.sockets)());
    for (name, help, value) in [
        ("published", "Messages published to the queue.", 0),
        ("acked", "Inbox entries acknowledged.", 1),
        ("expired", "Messages expired by TTL.", 2),
    ] {
        let _ = writeln!(out, "# HELP queuehub_messages_{name}_total {help}");
        let _ = writeln!(out, "# TYPE queuehub_messages_{name}_total counter");
        for q in &queues {
            let count = [q.counters.published, q.counters.acked, q.counters.expired][value];
            let _ = writeln!(
                out,
                "queuehub_messages_{name}_total{{queue=\"{}\"}} {count}",
                label(q.queue.as_str())
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP queuehub_waiting Messages waiting for a first subscriber."
    );
    let _ = writeln!(out, "# TYPE queuehub_waiting gauge");
    for q in &queues {
        let _ = writeln!(
            out,
            "queuehub_waiting{{queue=\"{}\"}} {}",
            label(q.queue.as_str()),
            q.waiting
        );
    }
    let _ = writeln!(out, "# HELP queuehub_pending Unacked messages per inbox.");
    let _ = writeln!(out, "# TYPE queuehub_pending gauge");
    for q in &queues {
        for (client, pending) in &q.pending {
            let _ = writeln!(
                out,
                "queuehub_pending{{queue=\"{}\",client=\"{}\"}} {pending}",
                label(q.queue.as_str()),
                label(client.as_str())
            );
        }
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
