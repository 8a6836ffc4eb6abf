//! A client's inbox over HTTP, for consumers that are not sockets and for operators:
//! peek, ack, and unsubscribe.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::Names;
use super::{ApiError, ApiState, JsonBody};
use crate::broker::Acked;
use crate::error::Error;
use crate::names::{ClientId, MessageId, QueueName};

/// Default and largest page of a peek.
const PEEK_DEFAULT: usize = 100;
const PEEK_MAX: usize = 1000;

#[derive(Deserialize)]
pub struct PeekQuery {
    limit: Option<String>,
}

/// `GET .../clients/{client}/messages?limit=`: the oldest unacked messages, without acking.
pub async fn peek(
    State(state): State<ApiState>,
    Names((queue, client)): Names<(QueueName, ClientId)>,
    Query(query): Query<PeekQuery>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(
        json!({ "queue": queue, "clientId": client, "messages": messages }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    ids: Vec<MessageId>,
}

/// `POST .../clients/{client}/acks` with `{ids}`: removes them from the inbox. Unknown and
/// already acked ids are not errors; `removed` counts what was really removed.
pub async fn ack(
    State(state): State<ApiState>,
    Names((queue, client)): Names<(QueueName, ClientId)>,
    JsonBody(body): JsonBody<AckBody>,
) -> Result<Json<Value>, ApiError> {
    let removed = state
        .broker
        .ack(&client, Some(&queue), &body.ids)?
        .committed()
        .await?;
    let acked = Acked::new(&body.ids, &removed);
    Ok(Json(
        json!({ "ok": true, "removed": acked.removed, "results": acked.results }),
    ))
}

/// `DELETE .../clients/{client}`: ends the subscription and drops its inbox.
pub async fn unsubscribe(
    State(state): State<ApiState>,
    Names((queue, client)): Names<(QueueName, ClientId)>,
) -> Result<Json<Value>, ApiError> {
    let dropped = state
        .broker
        .unsubscribe(&client, &queue)?
        .committed()
        .await?;
    Ok(Json(
        json!({ "ok": true, "queue": queue, "clientId": client, "dropped": dropped }),
    ))
}
