//! [`JsonBody`]: the one way request bodies enter the API, and [`Name`], the one way names in
//! the URL path do. Both answer bad input with the API's JSON error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::error::{Code, Error, from_json_error};

/// A JSON request body of type `T`: 415 if the content type is not JSON, 413 if the body is
/// over the limit, 400 if it is not JSON or repeats a key in an object, 422 if it is JSON of
/// the wrong shape.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        strict(&json_bytes(req, state).await?).map(JsonBody)
    }
}

/// A JSON request body read strictly as [`JsonBody`] reads it, kept as a JSON value: for a
/// handler that takes the value apart itself (a batch, element by element), without reading
/// it into a type and back.
pub struct JsonValue(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for JsonValue {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(JsonValue(crate::json::from_slice(
            &json_bytes(req, state).await?,
        )?))
    }
}

/// The body of a request that says it is JSON: 415 if the content type is not JSON, 413 if
/// the body is over the limit.
async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        })
        .unwrap_or(false);
    if !is_json {
        return Err(ApiError(Error::new(
            Code::UnsupportedMediaType,
            "send the body as JSON with 'Content-Type: application/json'",
        )));
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError(Error::new(
                Code::BodyTooLarge,
                "the request body is larger than the server accepts",
            ))
        } else {
            ApiError(Error::malformed_json(rejection.body_text()))
        }
    })
}

/// Reads a JSON body strictly ([`crate::json`]: a key twice in one object is `invalid_json`),
/// then as `T` (`invalid_field` or `invalid_name` if it has the wrong shape).
pub fn strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = crate::json::from_slice(bytes)?;
    serde_json::from_value(value).map_err(|e| ApiError(from_json_error(&e)))
}

/// The path parameters of a route, parsed into validated names.
pub struct Names<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Names<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(names)| Names(names))
            .map_err(|rejection| ApiError(Error::invalid_name(rejection.body_text())))
    }
}
