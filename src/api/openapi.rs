//! `GET /openapi.json`: the OpenAPI 3.1 document of this server's HTTP API.
//!
//! The document is generated, not written: each route's `#[utoipa::path]` (beside its
//! handler) and the types of its bodies describe it, and [`super::routes`] adds a route to
//! the router and to the document in one call. Routes that have no handler of their own (the
//! dashboard's files, a preset's lab routes) are described here with [`route`]. What depends
//! on the configuration is filled in as the server starts: the lab routes, and which
//! operations need the API key ([`require_key`]).
//!
//! The document is open in every mode: it describes the API and holds no data
//! (docs/DECISIONS.md).

use std::sync::Arc;

use axum::Extension;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::MethodRouter;
use utoipa::openapi::path::{HttpMethod, Operation, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, LicenseBuilder, OpenApi, Ref, RefOr, ResponseBuilder, Tag,
};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::Security;

/// The name of the API key's security scheme in the document.
pub const KEY_SCHEME: &str = "apiKey";

/// The document as served, serialized once at start.
#[derive(Clone)]
pub struct Document(Arc<str>);

impl Document {
    pub fn new(document: &OpenApi) -> Self {
        // An OpenApi value always serializes: its maps have string keys.
        let json = serde_json::to_string(document).unwrap_or_default();
        Self(Arc::from(json))
    }
}

/// This server's HTTP API, as OpenAPI 3.1.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((
        status = 200,
        description = "This document: every route of this server, its lab routes included",
        content_type = "application/json",
        body = Object,
    )),
)]
pub async fn document(Extension(document): Extension<Document>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], document.0.to_string())
}

/// Adds `path` to `router` and its description `item` to the document, in one call.
pub fn route<S: Clone + Send + Sync + 'static>(
    router: OpenApiRouter<S>,
    path: &str,
    method_router: MethodRouter<S>,
    item: PathItem,
) -> OpenApiRouter<S> {
    let mut router = router.route(path, method_router);
    let paths = &mut router.get_openapi_mut().paths.paths;
    match paths.get_mut(path) {
        Some(existing) => existing.merge_operations(item),
        None => {
            paths.insert(path.to_owned(), item);
        }
    }
    router
}

/// A `GET` that answers a file of `content_type`.
pub fn file(summary: &str, content_type: &str) -> PathItem {
    let mut operation = Operation::new();
    operation.tags = Some(vec!["dashboard".into()]);
    operation.summary = Some(summary.into());
    let ok = ResponseBuilder::new()
        .description("The file")
        .content(content_type, ContentBuilder::new().build())
        .build();
    operation
        .responses
        .responses
        .insert("200".into(), ok.into());
    PathItem::new(HttpMethod::Get, operation)
}

/// A response of `status` whose body is the component schema `schema`.
pub fn json_response(operation: &mut Operation, status: &str, description: &str, schema: &str) {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build();
    let response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .build();
    operation
        .responses
        .responses
        .insert(status.into(), response.into());
}

/// Every operation of a path.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Marks every operation of `document` as needing the API key, answered 401 without it.
pub fn require_key(document: &mut OpenApi) {
    for item in document.paths.paths.values_mut() {
        for operation in operations(item) {
            let needs_key = SecurityRequirement::new(KEY_SCHEME, Vec::<String>::new());
            operation.security = Some(vec![needs_key]);
            json_response(
                operation,
                "401",
                "`unauthorized`: no valid API key",
                "ErrorBody",
            );
        }
    }
}

/// Adds the answer of the HTTP rate limit (`--max-requests-per-sec`) to every operation.
pub fn rate_limited(document: &mut OpenApi) {
    for item in document.paths.paths.values_mut() {
        for operation in operations(item) {
            let responses = &mut operation.responses.responses;
            match responses.get_mut("429") {
                Some(RefOr::T(response)) => {
                    response.description.push_str("; `rate_limited`");
                }
                _ => json_response(
                    operation,
                    "429",
                    "`rate_limited`: over the address's request rate",
                    "ErrorBody",
                ),
            }
        }
    }
}

/// Fills in what no route says: the title, version and license, the tags, and (in secured
/// mode) the API key's security scheme.
pub fn describe(mut document: OpenApi, security: &Security) -> OpenApi {
    document.info = InfoBuilder::new()
        .title("queuehub")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "A durable message-queue server that speaks socket.io. This is its HTTP API; \
             docs/API.md is the reference for people, docs/asyncapi.json describes the \
             socket.io events. Errors are `{\"error\": {\"code\", \"message\"}}`.",
        ))
        .license(Some(LicenseBuilder::new().name("MIT").build()))
        .build();
    document.tags = Some(
        [
            ("publish", "Publish messages"),
            ("inbox", "A client's inbox: peek, ack, unsubscribe"),
            ("stats", "Queue stats and metrics"),
            ("admin", "Dead letters and tokens"),
            ("lab", "Routes of the preset in use"),
            ("health", "Liveness"),
            ("dashboard", "The dashboard page's files"),
            ("meta", "This document"),
        ]
        .into_iter()
        .map(|(name, description)| {
            let mut tag = Tag::new(name);
            tag.description = Some(description.into());
            tag
        })
        .collect(),
    );
    if security.api_keys.enabled() {
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some("An API key: `Authorization: Bearer <key>`".into());
        document
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(KEY_SCHEME, SecurityScheme::Http(scheme));
    }
    document
}
