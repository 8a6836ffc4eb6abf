//! `GET /openapi.json`: open in every mode, valid OpenAPI 3.1 (structurally: every reference
//! resolves, every path parameter is declared), and true to the router: every documented
//! operation is served, and no undocumented method is served on a documented path.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with_args};

const KEY: &str = "openapi-test-key";

/// The methods an OpenAPI path item may hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(app: &TestApp) -> Value {
    let response = app
        .http
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 200, "open without a key");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.expect("JSON")
}

/// Every `$ref` anywhere in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                found.push(target.clone());
            }
            map.values().for_each(|v| references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

/// The operations of the document: (method, path, operation).
fn operations(doc: &Value) -> Vec<(Method, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                found.push((method, path.clone(), operation.clone()));
            }
        }
    }
    found
}

/// Checks what OpenAPI 3.1 asks of a document's structure.
fn check_structure(doc: &Value) {
    let version = doc["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3.1."), "{version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let mut refs = Vec::new();
    references(doc, &mut refs);
    assert!(!refs.is_empty());
    for target in refs {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{target} points outside components/schemas"));
        assert!(schemas.contains_key(name), "{target} does not exist");
    }
    let schemes = &doc["components"]["securitySchemes"];
    let mut ids = Vec::new();
    for (method, path, operation) in operations(doc) {
        let label = format!("{method} {path}");
        let responses = operation["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{label} has no responses");
        for (status, response) in responses {
            assert!(status.parse::<u16>().is_ok(), "{label}: status {status}");
            assert!(response["description"].is_string(), "{label} {status}");
        }
        // Each `{name}` of the path is a required path parameter.
        let declared: Vec<&str> = operation["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path" && p["required"] == true)
                    .filter_map(|p| p["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        for segment in path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                assert!(declared.contains(&name), "{label}: {{{name}}} undeclared");
            }
        }
        for requirement in operation["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(schemes.get(scheme).is_some(), "{label}: scheme {scheme}");
            }
        }
        if let Some(id) = operation["operationId"].as_str() {
            assert!(!ids.contains(&id.to_owned()), "operationId {id} twice");
            ids.push(id.to_owned());
        }
    }
}

#[tokio::test]
async fn the_document_is_open_in_every_mode_and_valid_openapi_3_1() {
    for args in [
        &[][..],
        &["--api-key", KEY][..],
        &["--preset", "caps", "--api-key", KEY, "--public-stats"][..],
    ] {
        let app = spawn_app_with_args(args).await;
        let doc = document(&app).await;
        check_structure(&doc);
        let secured = args.contains(&"--api-key");
        let publish = &doc["paths"]["/v1/queues/{queue}/messages"]["post"];
        assert_eq!(publish["security"].is_array(), secured, "{args:?}");
        let stats = &doc["paths"]["/v1/queues"]["get"];
        let public = args.contains(&"--public-stats");
        assert_eq!(stats["security"].is_array(), secured && !public, "{args:?}");
        assert!(doc["paths"]["/healthz"]["get"]["security"].is_null());
        assert!(doc["paths"]["/openapi.json"]["get"].is_object());
        app.stop().await;
    }
}

/// A request for `path` with every `{parameter}` filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment.starts_with('{') {
            true => "sample",
            false => segment,
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn send(app: &TestApp, method: Method, path: &str) -> (u16, Value) {
    let request = app
        .http
        .request(method.clone(), format!("{}{}", app.url, concrete(path)))
        .bearer_auth(KEY);
    let request = match method {
        Method::POST => request.json(&json!({"queue": "sample", "event": "e", "ids": []})),
        _ => request,
    };
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_documented_operation_is_served_and_no_other_method_on_its_path() {
    let app = spawn_app_with_args(&["--preset", "caps", "--api-key", KEY]).await;
    let doc = document(&app).await;
    let operations = operations(&doc);
    assert!(operations.len() >= 18, "{} operations", operations.len());
    for (method, path, _) in &operations {
        let (status, body) = send(&app, method.clone(), path).await;
        let label = format!("{method} {path}");
        assert_ne!(status, 405, "{label} is documented but not served");
        assert_ne!(body["error"]["code"], "not_found", "{label}: {body}");
        assert_ne!(status, 401, "{label} refused the key: {body}");
    }
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for path in paths {
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ] {
            let documented = operations.iter().any(|(m, p, _)| *m == method && p == path);
            // A GET also answers HEAD; everything else not documented is not served.
            if !documented {
                let (status, _) = send(&app, method.clone(), path).await;
                assert_eq!(status, 405, "{method} {path} is served but not documented");
            }
        }
    }
    app.stop().await;
}
