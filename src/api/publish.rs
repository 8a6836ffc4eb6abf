//! `POST /v1/queues/{queue}/messages` and `POST /v1/messages`: publish.
//!
//! Answers 201 with the receipt once the message is on disk. Publishing an id that this queue
//! has seen before answers the first receipt again, with the header `Idempotent-Replayed: true`.

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::body::{JsonValue, Names};
use super::{ApiError, ApiState, ErrorBody, JsonBody};
use crate::broker::message::PublishRequest;
use crate::broker::{Published, SOURCE_HTTP};
use crate::error::{Error, from_json_error};
use crate::names::QueueName;

const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The body of `POST /v1/messages`: one message, or an array published as one atomic batch.
/// Each message is read as a [`PublishRequest`] in turn, so that an error names its index;
/// its schema is [`BatchShape`]'s.
pub enum OneOrMany {
    Many(Vec<Value>),
    One(Value),
}

impl From<Value> for OneOrMany {
    /// An array is a batch; anything else one message (which then says what is wrong with it).
    fn from(body: Value) -> Self {
        match body {
            Value::Array(messages) => OneOrMany::Many(messages),
            one => OneOrMany::One(one),
        }
    }
}

/// One message, or an array of up to 1000 published as one atomic batch (the schema of
/// [`OneOrMany`]).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // only its schema is used
enum BatchShape {
    /// Up to 1000 messages, published in one commit, all or nothing.
    Many(Vec<PublishRequest>),
    /// One message; `queue` is required.
    One(PublishRequest),
}

impl utoipa::PartialSchema for OneOrMany {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <BatchShape as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for OneOrMany {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <BatchShape as utoipa::ToSchema>::schemas(schemas);
    }
}

/// The answer to a publish: the receipt of one message, or the receipts of a batch in order.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Receipts {
    Many(Vec<Published>),
    One(Published),
}

fn parse(value: Value, route: Option<&QueueName>) -> Result<crate::broker::NewMessage, Error> {
    let request: PublishRequest = serde_json::from_value(value).map_err(|e| from_json_error(&e))?;
    request.into_message(route, SOURCE_HTTP.to_owned())
}

/// 201 with the receipt of one publish (`one`), or the array of a batch's receipts; a replay
/// of ids seen before says so in a header.
pub(super) fn created(mut published: Vec<Published>, one: bool) -> Response {
    let replayed = !published.is_empty() && published.iter().all(|p| p.duplicate);
    let body = match one && published.len() == 1 {
        true => Receipts::One(published.remove(0)),
        false => Receipts::Many(published),
    };
    // Written into a `Vec`: axum's `Json` writes piece by piece into a `BytesMut` through
    // `io::Write`, growing it from 128 bytes, which costs about 1 400 more instructions per
    // receipt of a batch (callgrind). Receipts always serialize; were that to fail, `Json`
    // answers it as before (500).
    let mut response = match serde_json::to_vec(&body) {
        Ok(text) => {
            let json = HeaderValue::from_static("application/json");
            (StatusCode::CREATED, [(CONTENT_TYPE, json)], text).into_response()
        }
        Err(_) => (StatusCode::CREATED, Json(body)).into_response(),
    };
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// `POST /v1/queues/{queue}/messages` with `{event, payload, id?}`.
#[utoipa::path(post, path = "/v1/queues/{queue}/messages", tag = "publish",
    params(("queue" = QueueName, Path, description = "The queue; the body may repeat it")),
    request_body = PublishRequest,
    responses(
        (status = 201, description = "Stored. A replayed id answers the first receipt with `Idempotent-Replayed: true`", body = Published,
            headers(("Idempotent-Replayed" = String, description = "`true` when the id was published before"))),
        (status = 400, description = "`malformed_json`, `invalid_json`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`, `body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_field`, `invalid_name`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`, `shutting_down`", body = ErrorBody),
        (status = 507, description = "`inbox_full`, `storage_full`", body = ErrorBody),
    ))]
pub async fn to_queue(
    State(state): State<ApiState>,
    Names(queue): Names<QueueName>,
    JsonBody(body): JsonBody<PublishRequest>,
) -> Result<Response, ApiError> {
    let message = body.into_message(Some(&queue), SOURCE_HTTP.to_owned())?;
    let published = state.broker.publish(vec![message])?.committed().await?;
    Ok(created(published, true))
}

/// `POST /v1/messages` with `{queue, event, payload, id?}` or an array of them.
#[utoipa::path(post, path = "/v1/messages", tag = "publish",
    request_body = OneOrMany,
    responses(
        (status = 201, description = "Stored: one receipt, or a batch's receipts in order", body = Receipts),
        (status = 400, description = "`malformed_json`, `invalid_json`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`, `body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_field`, `invalid_name`; in a batch the message names the index", body = ErrorBody),
        (status = 429, description = "`batch_too_large`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`, `shutting_down`", body = ErrorBody),
        (status = 507, description = "`inbox_full`, `storage_full`", body = ErrorBody),
    ))]
pub async fn batch(
    State(state): State<ApiState>,
    JsonValue(body): JsonValue,
) -> Result<Response, ApiError> {
    match OneOrMany::from(body) {
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
