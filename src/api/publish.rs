//! `POST /v1/queues/{queue}/messages` and `POST /v1/messages`: publish.
//!
//! Answers 201 with the receipt once the message is on disk. Publishing an id that this queue
//! has seen before answers the first receipt again, with the header `Idempotent-Replayed: true`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::body::Names;
use super::{ApiError, ApiState, JsonBody};
use crate::broker::message::PublishRequest;
use crate::broker::{Published, SOURCE_HTTP};
use crate::error::{Error, from_json_error};
use crate::names::QueueName;

const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// One message, or an array published as one atomic batch.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    Many(Vec<Value>),
    One(Value),
}

fn parse(value: Value, route: Option<&QueueName>) -> Result<crate::broker::NewMessage, Error> {
    let request: PublishRequest = serde_json::from_value(value).map_err(|e| from_json_error(&e))?;
    request.into_message(route, SOURCE_HTTP.to_owned())
}

/// 201 with the receipt of one publish (`one`), or the array of a batch's receipts; a replay
/// of ids seen before says so in a header.
pub(super) fn created(published: Vec<Published>, one: bool) -> Response {
    let body = match one {
        true => published.first().map(serde_json::to_value),
        false => Some(serde_json::to_value(&published)),
    }
    .and_then(Result::ok)
    .unwrap_or_default();
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if !published.is_empty() && published.iter().all(|p| p.duplicate) {
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// `POST /v1/queues/{queue}/messages` with `{event, payload, id?}`.
pub async fn to_queue(
    State(state): State<ApiState>,
    Names(queue): Names<QueueName>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let message = parse(body, Some(&queue))?;
    let published = state.broker.publish(vec![message])?.committed().await?;
    Ok(created(published, true))
}

/// `POST /v1/messages` with `{queue, event, payload, id?}` or an array of them.
pub async fn batch(
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<OneOrMany>,
) -> Result<Response, ApiError> {
    match body {
        OneOrMany::One(value) => {
            let published = state
                .broker
                .publish(vec![parse(value, None)?])?
                .committed()
                .await?;
            Ok(created(published, true))
        }
        OneOrMany::Many(values) => {
            let mut messages = Vec::with_capacity(values.len());
            for (index, value) in values.into_iter().enumerate() {
                let message = parse(value, None).map_err(|e| {
                    Error::new(e.code(), format!("message {index}: {}", e.message()))
                })?;
                messages.push(message);
            }
            let published = state.broker.publish(messages)?.committed().await?;
            Ok(created(published, false))
        }
    }
}
