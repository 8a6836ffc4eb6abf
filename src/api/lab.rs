//! HTTP routes declared by a preset (the lab's API server), such as
//! `POST /delivery/{store}/{code}` → queue `{store}`, event `delivered`. Each publishes one
//! message and answers like `POST /v1/queues/{queue}/messages`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use serde_json::Value;

use super::{ApiError, ApiState, publish};
use crate::broker::{NewMessage, SOURCE_HTTP};
use crate::compat::HttpRoute;

/// The preset's routes, each a `POST`.
pub fn routes(routes: &[HttpRoute]) -> Router<ApiState> {
    let mut router = Router::new();
    for route in routes {
        let route = Arc::new(route.clone());
        let path = route.path.clone();
        router = router.route(
            &path,
            post(
                move |state: State<ApiState>,
                      params: Path<HashMap<String, String>>,
                      body: Bytes| { publish_to(route, state, params, body) },
            ),
        );
    }
    router
}

async fn publish_to(
    route: Arc<HttpRoute>,
    State(state): State<ApiState>,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // The lab's clients may send no body, or JSON without a content type: be lenient.
    let body: Option<Value> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(crate::json::from_slice(&body)?)
    };
    let (queue, payload) = route.message(&params, body)?;
    let message = NewMessage::new(queue, route.event.clone(), payload, SOURCE_HTTP);
    let published = state.broker.publish(vec![message])?.committed().await?;
    Ok(publish::created(published, true))
}
