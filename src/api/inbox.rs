//! A client's inbox over HTTP, for consumers that are not sockets and for operators:
//! peek, ack, and unsubscribe.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::body::Names;
use super::{ApiError, ApiState, ErrorBody, JsonBody};
use crate::broker::{Acked, Envelope};
use crate::error::Error;
use crate::names::{ClientId, MessageId, QueueName};

/// Default and largest page of a peek.
const PEEK_DEFAULT: usize = 100;
const PEEK_MAX: usize = 1000;

/// The query of a peek. `limit` is read as text and checked by the handler, so that a bad
/// one gets the API's error shape.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeekQuery {
    /// How many messages, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// A peek at an inbox. (Fields in the order the answer has always had.)
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Inbox {
    pub client_id: ClientId,
    /// The oldest unacked messages, oldest first.
    pub messages: Vec<Envelope>,
    pub queue: QueueName,
}

/// The body of an HTTP ack.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// Up to 1000 ids.
    ids: Vec<MessageId>,
}

/// The answer to an HTTP ack: `{ok: true, removed, results}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AckAnswer {
    /// Always `true`.
    pub ok: bool,
    #[serde(flatten)]
    pub acked: Acked,
}

/// The answer to an unsubscribe. (Fields in the order the answer has always had.)
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Unsubscribed {
    pub client_id: ClientId,
    /// How many unacked messages the dropped inbox held.
    pub dropped: usize,
    /// Always `true`.
    pub ok: bool,
    pub queue: QueueName,
}

/// `GET .../clients/{client}/messages?limit=`: the oldest unacked messages, without acking.
#[utoipa::path(get, path = "/v1/queues/{queue}/clients/{client}/messages", tag = "inbox",
    params(
        ("queue" = QueueName, Path, description = "The queue"),
        ("client" = ClientId, Path, description = "The subscribed client"),
        PeekQuery,
    ),
    responses(
        (status = 200, description = "The oldest unacked messages, as envelopes", body = Inbox),
        (status = 404, description = "`not_subscribed`", body = ErrorBody),
        (status = 422, description = "`invalid_field` (limit), `invalid_name`", body = ErrorBody),
    ))]
pub async fn peek(
    State(state): State<ApiState>,
    Names((queue, client)): Names<(QueueName, ClientId)>,
    Query(query): Query<PeekQuery>,
) -> Result<Json<Inbox>, ApiError> {
    let limit = match query.limit {
        None => PEEK_DEFAULT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=PEEK_MAX).contains(n))
            .ok_or_else(|| {
                Error::invalid_field(format!("limit must be a number from 1 to {PEEK_MAX}"))
            })?,
    };
    let messages = state.broker.peek(&queue, &client, limit).await?;
    Ok(Json(Inbox {
        client_id: client,
        messages,
        queue,
    }))
}

/// `POST .../clients/{client}/acks` with `{ids}`: removes them from the inbox. Unknown and
/// already acked ids are not errors; `removed` counts what was really removed.
#[utoipa::path(post, path = "/v1/queues/{queue}/clients/{client}/acks", tag = "inbox",
    params(
        ("queue" = QueueName, Path, description = "The queue"),
        ("client" = ClientId, Path, description = "The subscribed client"),
    ),
    request_body = AckBody,
    responses(
        (status = 200, description = "What was removed", body = AckAnswer),
        (status = 400, description = "`malformed_json`, `invalid_json`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_field`, `invalid_name`", body = ErrorBody),
        (status = 429, description = "`batch_too_large`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`, `shutting_down`", body = ErrorBody),
    ))]
pub async fn ack(
    State(state): State<ApiState>,
    Names((queue, client)): Names<(QueueName, ClientId)>,
    JsonBody(body): JsonBody<AckBody>,
) -> Result<Json<AckAnswer>, ApiError> {
    let removed = state
        .broker
        .ack(&client, Some(&queue), &body.ids)?
        .committed()
        .await?;
    Ok(Json(AckAnswer {
        ok: true,
        acked: Acked::new(&body.ids, &removed),
    }))
}

/// `DELETE .../clients/{client}`: ends the subscription and drops its inbox.
#[utoipa::path(delete, path = "/v1/queues/{queue}/clients/{client}", tag = "inbox",
    params(
        ("queue" = QueueName, Path, description = "The queue"),
        ("client" = ClientId, Path, description = "The subscribed client"),
    ),
    responses(
        (status = 200, description = "The subscription ended", body = Unsubscribed),
        (status = 404, description = "`not_subscribed`", body = ErrorBody),
        (status = 422, description = "`invalid_name`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`, `shutting_down`", body = ErrorBody),
    ))]
pub async fn unsubscribe(
    State(state): State<ApiState>,
    Names((queue, client)): Names<(QueueName, ClientId)>,
) -> Result<Json<Unsubscribed>, ApiError> {
    let dropped = state
        .broker
        .unsubscribe(&client, &queue)?
        .committed()
        .await?;
    Ok(Json(Unsubscribed {
        client_id: client,
        dropped,
        ok: true,
        queue,
    }))
}
