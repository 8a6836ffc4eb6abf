//! `GET /v1/queues`, `GET /v1/queues/{queue}` (stats) and `POST /v1/queues/{queue}/kick`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::body::{Names, strict};
use super::{ApiError, ApiState, ErrorBody};
use crate::broker::stats::{QueueDetail, QueueSummary};
use crate::names::QueueName;

/// `GET /v1/queues`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct QueueList {
    pub queues: Vec<QueueSummary>,
}

/// Every queue with subscribers, waiting and pending counts, and lifetime counters.
#[utoipa::path(get, path = "/v1/queues", tag = "stats",
    responses((status = 200, description = "Every queue", body = QueueList)))]
pub async fn list(State(state): State<ApiState>) -> Json<QueueList> {
    Json(QueueList {
        queues: state.broker.queues(),
    })
}

/// One queue with its subscribers and whether they are connected.
#[utoipa::path(get, path = "/v1/queues/{queue}", tag = "stats",
    params(("queue" = QueueName, Path, description = "The queue")),
    responses(
        (status = 200, description = "The queue in detail", body = QueueDetail),
        (status = 404, description = "`unknown_queue`", body = ErrorBody),
        (status = 422, description = "`invalid_name`", body = ErrorBody),
    ))]
pub async fn detail(
    State(state): State<ApiState>,
    Names(queue): Names<QueueName>,
) -> Result<Json<QueueDetail>, ApiError> {
    Ok(Json(state.broker.queue(&queue)?))
}

/// Body of a kick (optional): how many dead letters to move back at most.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KickBody {
    /// Default and maximum 1000.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000)]
    limit: Option<usize>,
}

/// The answer to a kick. (Fields in the order the answer has always had.)
#[derive(Serialize, utoipa::ToSchema)]
pub struct Kicked {
    /// How many messages moved back.
    pub kicked: usize,
    pub queue: QueueName,
}

/// Default and largest number of messages one kick moves.
const KICK_LIMIT: usize = 1000;

/// Moves messages waiting in `<queue>.dead` back into `queue`.
#[utoipa::path(post, path = "/v1/queues/{queue}/kick", tag = "admin",
    params(("queue" = QueueName, Path, description = "The queue whose dead letters move back")),
    request_body(content = Option<KickBody>, description = "Optional; empty means the defaults"),
    responses(
        (status = 200, description = "Moved back", body = Kicked),
        (status = 400, description = "`malformed_json`, `invalid_json`", body = ErrorBody),
        (status = 422, description = "`invalid_field`, `invalid_name`", body = ErrorBody),
    ))]
pub async fn kick(
    State(state): State<ApiState>,
    Names(queue): Names<QueueName>,
    body: Bytes,
) -> Result<Json<Kicked>, ApiError> {
    // The body is optional: an empty one means the defaults.
    let body: KickBody = if body.is_empty() {
        KickBody::default()
    } else {
        strict(&body)?
    };
    let limit = body.limit.unwrap_or(KICK_LIMIT).min(KICK_LIMIT);
    let kicked = state.broker.kick(&queue, limit).await?;
    Ok(Json(Kicked { kicked, queue }))
}
