//! `GET /v1/queues`, `GET /v1/queues/{queue}` (stats) and `POST /v1/queues/{queue}/kick`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::{Names, strict};
use axum::body::Bytes;

use super::{ApiError, ApiState};
use crate::broker::stats::{QueueDetail, QueueSummary};
use crate::names::QueueName;

/// Every queue with subscribers, waiting and pending counts, and lifetime counters.
pub async fn list(State(state): State<ApiState>) -> Json<Value> {
    let queues: Vec<QueueSummary> = state.broker.queues();
    Json(json!({ "queues": queues }))
}

/// One queue with its subscribers and whether they are connected.
pub async fn detail(
    State(state): State<ApiState>,
    Names(queue): Names<QueueName>,
) -> Result<Json<QueueDetail>, ApiError> {
    Ok(Json(state.broker.queue(&queue)?))
}

/// Body of a kick: how many dead letters to move back at most.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct KickBody {
    #[serde(default)]
    limit: Option<usize>,
}

/// Default and largest number of messages one kick moves.
const KICK_LIMIT: usize = 1000;

/// Moves messages waiting in `<queue>.dead` back into `queue`.
pub async fn kick(
    State(state): State<ApiState>,
    Names(queue): Names<QueueName>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    // The body is optional: an empty one means the defaults.
    let body: KickBody = if body.is_empty() {
        KickBody::default()
    } else {
        strict(&body)?
    };
    let limit = body.limit.unwrap_or(KICK_LIMIT).min(KICK_LIMIT);
    let kicked = state.broker.kick(&queue, limit).await?;
    Ok(Json(json!({ "queue": queue, "kicked": kicked })))
}
