//! `POST /v1/tokens`: mints a socket token for a client (API key required, like every write).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState, JsonBody};
use crate::auth::Claims;
use crate::broker::message::{format_ms, now_ms};
use crate::error::{Code, Error};
use crate::names::ClientId;

/// The longest a minted token lives: 30 days.
const MAX_TTL_SECS: u64 = 30 * 24 * 3600;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    client_id: ClientId,
    /// Queues it may subscribe to; default: its own queue (named after the client).
    subscribe: Option<Vec<String>>,
    /// Queues it may publish to; default: none.
    publish: Option<Vec<String>>,
    /// Lifetime in seconds; default one hour.
    ttl_secs: Option<u64>,
}

/// Signs a token with the server's `--token-secret`.
pub async fn mint(
    State(state): State<ApiState>,
    JsonBody(request): JsonBody<TokenRequest>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "token": token,
        "clientId": claims.sub,
        "subscribe": claims.subscribe,
        "publish": claims.publish,
        "expiresAt": format_ms(exp * 1000),
    })))
}
