//! HTTP routes declared by a preset (the lab's API server), such as
//! `POST /delivery/{store}/{code}` → queue `{store}`, event `delivered`. Each publishes one
//! message and answers like `POST /v1/queues/{queue}/messages`. They are described in the
//! OpenAPI document as the server starts, from the preset.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use serde_json::Value;
use utoipa::openapi::path::{HttpMethod, Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::{ContentBuilder, Required};
use utoipa_axum::router::OpenApiRouter;

use super::openapi::{self, json_response};
use super::{ApiError, ApiState, publish};
use crate::broker::{NewMessage, SOURCE_HTTP};
use crate::compat::HttpRoute;

/// The preset's routes, each a `POST`.
pub fn routes(routes: &[HttpRoute]) -> OpenApiRouter<ApiState> {
    let mut router = OpenApiRouter::new();
    for route in routes {
        let route = Arc::new(route.clone());
        let path = route.path.clone();
        let description = describe(&route);
        let handler = post(
            move |state: State<ApiState>, params: Path<HashMap<String, String>>, body: Bytes| {
                publish_to(route, state, params, body)
            },
        );
        router = openapi::route(router, &path, handler, description);
    }
    router
}

/// The OpenAPI description of a lab route.
fn describe(route: &HttpRoute) -> PathItem {
    let mut operation = Operation::new();
    operation.tags = Some(vec!["lab".into()]);
    operation.summary = Some(format!(
        "Publishes the event '{}' (a route of the preset in use)",
        route.event
    ));
    let parameters = route
        .path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(utoipa::schema!(String)))
                .build()
                .into()
        })
        .collect::<Vec<_>>();
    if !parameters.is_empty() {
        operation.parameters = Some(parameters);
    }
    let body = RequestBodyBuilder::new()
        .description(Some(
            "The payload: a JSON object (path parameters are added to it), or no body",
        ))
        .content("application/json", ContentBuilder::new().build())
        .build();
    operation.request_body = Some(body.into());
    json_response(&mut operation, "201", "Stored", "Published");
    for (status, codes) in [
        ("400", "`malformed_json`, `invalid_json`"),
        ("422", "`invalid_field`, `invalid_name`"),
        ("503", "`store_unavailable`, `shutting_down`"),
        ("507", "`inbox_full`, `storage_full`"),
    ] {
        json_response(&mut operation, status, codes, "ErrorBody");
    }
    PathItem::new(HttpMethod::Post, operation)
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
