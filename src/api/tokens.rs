//! `POST /v1/tokens`: mints a socket token for a client (API key required, like every write).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState, ErrorBody, JsonBody};
use crate::auth::Claims;
use crate::broker::message::{format_ms, now_ms};
use crate::error::{Code, Error};
use crate::names::ClientId;

/// The longest a minted token lives: 30 days.
const MAX_TTL_SECS: u64 = 30 * 24 * 3600;

/// The body of `POST /v1/tokens`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    client_id: ClientId,
    /// Queues it may subscribe to; default: its own queue (named after the client).
    subscribe: Option<Vec<String>>,
    /// Queues it may publish to; default: none.
    publish: Option<Vec<String>>,
    /// Lifetime in seconds; default one hour, at most 30 days.
    #[schema(minimum = 1, maximum = 2_592_000)]
    ttl_secs: Option<u64>,
}

/// A minted token and what it allows. (Fields in the order the answer has always had.)
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MintedToken {
    pub client_id: ClientId,
    /// RFC 3339, UTC.
    pub expires_at: String,
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
    /// An HS256 JWT, for the socket handshake's `auth: {token}`.
    pub token: String,
}

/// Signs a token with the server's `--token-secret`.
#[utoipa::path(post, path = "/v1/tokens", tag = "admin",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "The token", body = MintedToken),
        (status = 400, description = "`malformed_json`, `invalid_json`", body = ErrorBody),
        (status = 404, description = "`tokens_disabled`: no `--token-secret`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_field`, `invalid_name`", body = ErrorBody),
    ))]
pub async fn mint(
    State(state): State<ApiState>,
    JsonBody(request): JsonBody<TokenRequest>,
) -> Result<Json<MintedToken>, ApiError> {
    let tokens = state.security.tokens.as_ref().ok_or_else(|| {
        Error::new(
            Code::TokensDisabled,
            "start queuehub with --token-secret to mint socket tokens",
        )
    })?;
    let ttl = request.ttl_secs.unwrap_or(3600);
    if ttl == 0 || ttl > MAX_TTL_SECS {
        return Err(
            Error::invalid_field(format!("ttlSecs must be from 1 to {MAX_TTL_SECS}")).into(),
        );
    }
    let exp = now_ms() / 1000 + ttl;
    let claims = Claims {
        subscribe: request
            .subscribe
            .unwrap_or_else(|| vec![request.client_id.to_string()]),
        publish: request.publish.unwrap_or_default(),
        sub: request.client_id,
        exp,
    };
    let token = tokens.sign(&claims);
    Ok(Json(MintedToken {
        client_id: claims.sub,
        expires_at: format_ms(exp * 1000),
        publish: claims.publish,
        subscribe: claims.subscribe,
        token,
    }))
}
