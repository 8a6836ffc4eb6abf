//! `GET /dashboard`: the live dashboard page and its files, built into the binary (no build
//! step, nothing to install). The page talks to the `/dashboard` socket.io namespace through
//! the official socket.io browser client, vendored unchanged in `assets/dashboard/vendor/`
//! (its version, source and license are in `assets/dashboard/vendor/README.md`) and served
//! with its license under `/dashboard/vendor/`.

use std::path::Path;

use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;

use super::{ApiState, openapi};

/// The page's files: (path, content type, content).
const FILES: [(&str, &str, &str); 5] = [
    (
        "/dashboard",
        "text/html; charset=utf-8",
        include_str!("../../assets/dashboard/index.html"),
    ),
    (
        "/dashboard/dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard/dashboard.js"),
    ),
    (
        "/dashboard/vendor/socket.io.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard/vendor/socket.io.min.js"),
    ),
    (
        "/dashboard/vendor/socket.io-client.LICENSE",
        "text/plain; charset=utf-8",
        include_str!("../../assets/dashboard/vendor/socket.io-client.LICENSE"),
    ),
    (
        "/dashboard/dashboard.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/dashboard/dashboard.css"),
    ),
];

/// Routes for the dashboard's files: the built-in copies, or those in `dir`.
pub fn routes(dir: Option<&Path>) -> OpenApiRouter<ApiState> {
    let mut router = OpenApiRouter::new();
    for (path, content_type, built_in) in FILES {
        let on_disk = dir.map(|dir| {
            let name = path.strip_prefix("/dashboard/").unwrap_or("index.html");
            dir.join(name)
        });
        let summary = match path {
            "/dashboard" => "The dashboard page",
            _ => "A file of the dashboard page",
        };
        let description = openapi::file(summary, content_type);
        router = openapi::route(
            router,
            path,
            get(move || async move {
                let body = match &on_disk {
                    Some(file) => match tokio::fs::read_to_string(file).await {
                        Ok(text) => text,
                        Err(err) => {
                            return (StatusCode::NOT_FOUND, err.to_string()).into_response();
                        }
                    },
                    None => built_in.to_owned(),
                };
                (
                    [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
                    body,
                )
                    .into_response()
            }),
            description,
        );
    }
    router
}
