//! Secured mode is all or nothing: every HTTP route, the lab routes of a preset included, in
//! each mode (open, `--api-key`, `--api-key` with `--token-secret`, and with
//! `--public-stats`), what sockets must present in each, and a token secret without an API
//! key stopping the server at start.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use queuehub::auth::{Claims, Tokens};
use queuehub::names::ClientId;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, SocketClient, TestApp, WAIT, spawn_app_with_args, unique};

const KEY: &str = "route-test-key";
const SECRET: &str = "a route test secret, long enough";

/// Who may use a route without a key in secured mode.
#[derive(Clone, Copy, PartialEq)]
enum Access {
    /// Always open: health, the dashboard page, CORS preflight.
    Open,
    /// Queue stats and metrics: open with `--public-stats`.
    Stats,
    /// Everything else: reads, writes, minting.
    Key,
}

/// One request of the tour and the status it gets when it is let through.
struct Route {
    method: Method,
    path: String,
    body: Option<Value>,
    access: Access,
    allowed: u16,
}

fn route(method: Method, path: impl Into<String>, body: Option<Value>, access: Access) -> Route {
    Route {
        method,
        path: path.into(),
        body,
        access,
        allowed: 200,
    }
}

impl Route {
    fn answers(mut self, status: u16) -> Self {
        self.allowed = status;
        self
    }
}

/// A server mode: its flags and what they switch on.
struct Mode {
    args: &'static [&'static str],
    api_key: bool,
    tokens: bool,
    public_stats: bool,
}

/// Every route of `src/api/mod.rs` and of the caps preset, in an order where each is
/// answered the same way in every mode: `queue` doubles as the subscribed client's id.
fn every_route(queue: &str, mode: &Mode) -> Vec<Route> {
    use Access::*;
    let message = json!({"event": "e", "payload": 1});
    let inbox = format!("/v1/queues/{queue}/clients/{queue}");
    vec![
        route(Method::GET, "/healthz", None, Open),
        route(Method::GET, "/dashboard", None, Open),
        route(Method::GET, "/dashboard/dashboard.js", None, Open),
        route(
            Method::POST,
            format!("/v1/queues/{queue}/messages"),
            Some(message),
            Key,
        )
        .answers(201),
        route(
            Method::POST,
            "/v1/messages",
            Some(json!([{"queue": queue, "event": "e", "payload": 2}])),
            Key,
        )
        .answers(201),
        route(
            Method::POST,
            format!("/delivery/{queue}/code-1"),
            Some(json!({})),
            Key,
        )
        .answers(201),
        route(Method::POST, "/pickup", Some(json!({"orderId": 1})), Key).answers(201),
        route(Method::GET, "/v1/queues", None, Stats),
        route(Method::GET, format!("/v1/queues/{queue}"), None, Stats),
        route(Method::GET, "/metrics", None, Stats),
        route(Method::GET, format!("{inbox}/messages"), None, Key),
        route(
            Method::POST,
            format!("{inbox}/acks"),
            Some(json!({"ids": ["no-such-id"]})),
            Key,
        ),
        route(
            Method::POST,
            format!("/v1/queues/{queue}/kick"),
            Some(json!({})),
            Key,
        ),
        route(
            Method::POST,
            "/v1/tokens",
            Some(json!({"clientId": "mallory"})),
            Key,
        )
        .answers(if mode.tokens { 200 } else { 404 }),
        route(Method::DELETE, inbox, None, Key),
        route(Method::GET, "/no-such-route", None, Key).answers(404),
    ]
}

/// The operation of the OpenAPI document that `route` is a request of, if any.
fn documented<'d>(document: &'d Value, route: &Route) -> Option<&'d Value> {
    let segments: Vec<&str> = route.path.split('/').collect();
    let method = route.method.as_str().to_lowercase();
    document["paths"]
        .as_object()?
        .iter()
        .find_map(|(path, item)| {
            let template: Vec<&str> = path.split('/').collect();
            let matches = template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || t.starts_with('{'));
            matches.then(|| item.get(&method)).flatten()
        })
}

async fn send(app: &TestApp, route: &Route, key: Option<&str>) -> (u16, Value) {
    let mut request = app
        .http
        .request(route.method.clone(), format!("{}{}", app.url, route.path));
    if let Some(body) = &route.body {
        request = request.json(body);
    }
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A CORS preflight carries no credentials: it is answered in every mode.
async fn preflight(app: &TestApp, queue: &str) -> u16 {
    app.http
        .request(
            Method::OPTIONS,
            format!("{}/v1/queues/{queue}/messages", app.url),
        )
        .header("Origin", "http://lab.example")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("preflight sent")
        .status()
        .as_u16()
}

fn token(client: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    Tokens::new(SECRET).unwrap().sign(&Claims {
        sub: ClientId::parse(client).unwrap(),
        subscribe: vec!["*".into()],
        publish: vec![],
        exp,
    })
}

/// Walks every route without credentials (and, where refused, with the key), then checks
/// what a socket must present.
async fn check_mode(mode: Mode) {
    let mut args = vec!["--preset", "caps"];
    args.extend_from_slice(mode.args);
    let app = spawn_app_with_args(&args).await;
    let queue = unique("q");
    let auth = mode.api_key.then(|| json!({"apiKey": KEY}));
    let backend = SocketClient::connect_with_auth(&app.url, auth).await;
    backend.subscribe(&queue, &queue).await;

    assert_eq!(preflight(&app, &queue).await, 200, "CORS preflight");
    let openapi = route(Method::GET, "/openapi.json", None, Access::Open);
    let (status, document) = send(&app, &openapi, None).await;
    assert_eq!(status, 200, "the OpenAPI document is open in every mode");
    for route in every_route(&queue, &mode) {
        let open = !mode.api_key
            || route.access == Access::Open
            || (route.access == Access::Stats && mode.public_stats);
        let label = format!("{} {}", route.method, route.path);
        if route.path != "/no-such-route" {
            let operation = documented(&document, &route)
                .unwrap_or_else(|| panic!("{label} is not in /openapi.json"));
            assert_eq!(
                operation["security"].is_array(),
                !open,
                "/openapi.json says whether {label} needs the key"
            );
        }
        let (status, body) = send(&app, &route, None).await;
        if open {
            assert_eq!(status, route.allowed, "{label} without a key: {body}");
            continue;
        }
        assert_eq!(status, 401, "{label} without a key: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{label}: {body}");
        let (status, body) = send(&app, &route, Some("not-the-key")).await;
        assert_eq!(status, 401, "{label} with a wrong key: {body}");
        let (status, body) = send(&app, &route, Some(KEY)).await;
        assert_eq!(status, route.allowed, "{label} with the key: {body}");
    }

    check_sockets(&app, &mode).await;
    app.stop().await;
}

/// Open mode takes any socket; with an API key only, a socket needs the key (no token can
/// be checked); with a token secret too, a token or the key.
async fn check_sockets(app: &TestApp, mode: &Mode) {
    let url = &app.url;
    let bare = SocketClient::refused(url, "/", None).await;
    let with_key = SocketClient::refused(url, "/", Some(json!({"apiKey": KEY}))).await;
    let key_in_query = SocketClient::refused(&format!("{url}/?apiKey={KEY}"), "/", None).await;
    let wrong_key = SocketClient::refused(url, "/", Some(json!({"apiKey": "nope"}))).await;
    let with_token = SocketClient::refused(url, "/", Some(json!({"token": token("t")}))).await;
    if !mode.api_key {
        assert_eq!(bare, None, "open mode takes a socket without credentials");
        return;
    }
    assert!(
        bare.as_deref().is_some_and(|m| m.contains("secured mode")),
        "{bare:?}"
    );
    assert_eq!(with_key, None, "auth: {{apiKey}}");
    assert_eq!(key_in_query, None, "?apiKey=");
    assert!(
        wrong_key
            .as_deref()
            .is_some_and(|m| m.contains("the API key is not valid")),
        "a wrong key is refused: {wrong_key:?}"
    );
    if mode.tokens {
        assert_eq!(with_token, None, "a valid token");
    } else {
        assert!(
            with_token.as_deref().is_some_and(|m| m.contains("apiKey")),
            "without --token-secret no token can be checked: {with_token:?}"
        );
    }
}

#[tokio::test]
async fn in_open_mode_every_route_and_socket_is_open() {
    check_mode(Mode {
        args: &[],
        api_key: false,
        tokens: false,
        public_stats: false,
    })
    .await;
}

#[tokio::test]
async fn with_an_api_key_only_every_route_and_every_socket_needs_the_key() {
    check_mode(Mode {
        args: &["--api-key", KEY],
        api_key: true,
        tokens: false,
        public_stats: false,
    })
    .await;
}

#[tokio::test]
async fn with_an_api_key_and_a_token_secret_every_route_needs_the_key_and_sockets_a_token() {
    check_mode(Mode {
        args: &["--api-key", KEY, "--token-secret", SECRET],
        api_key: true,
        tokens: true,
        public_stats: false,
    })
    .await;
}

#[tokio::test]
async fn public_stats_open_the_stats_and_metrics_and_nothing_else() {
    check_mode(Mode {
        args: &["--api-key", KEY, "--token-secret", SECRET, "--public-stats"],
        api_key: true,
        tokens: true,
        public_stats: true,
    })
    .await;
}

#[tokio::test]
async fn a_token_secret_without_an_api_key_stops_the_build() {
    use clap::Parser;
    let cli = queuehub::config::Cli::try_parse_from(["queuehub", "--token-secret", SECRET]);
    let err = queuehub::Config::from_cli(cli.unwrap()).unwrap_err();
    assert!(err.to_string().contains("--api-key"), "{err}");

    // A Config built by hand (as an embedding program would) is refused by the build too.
    let config = queuehub::Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        storage: queuehub::config::Storage::Memory,
        security: std::sync::Arc::new(queuehub::auth::Security {
            tokens: Some(Tokens::new(SECRET).unwrap()),
            ..Default::default()
        }),
        ..queuehub::Config::default()
    };
    let Err(err) = queuehub::Application::build(config).await else {
        panic!("a token secret without an API key must not build");
    };
    assert!(err.to_string().contains("--api-key"), "{err}");
}

#[test]
fn the_binary_with_a_token_secret_and_no_api_key_exits_naming_the_missing_flag() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_queuehub"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--memory",
            "--token-secret",
            SECRET,
        ])
        .env_remove("QUEUEHUB_API_KEY")
        .env_remove("QUEUEHUB_API_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > WAIT {
            let _ = child.kill();
            panic!("queuehub kept running with a token secret and no API key");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{status}");
    assert!(
        stderr.contains("--api-key") && stderr.contains("--token-secret"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_start_up_log_says_which_mode_is_in_force() {
    let open = ServerProcess::start_with(&["--listen", "127.0.0.1:0", "--memory"], &[], 1, None);
    let secured = ServerProcess::start_with(
        &[
            "--listen",
            "127.0.0.1:0",
            "--memory",
            "--api-key",
            KEY,
            "--token-secret",
            SECRET,
        ],
        &[],
        1,
        None,
    );
    let line = |server: &ServerProcess, mode: &str| {
        server
            .log()
            .into_iter()
            .find(|line| line.contains(mode))
            .unwrap_or_else(|| panic!("no {mode:?} line in {:?}", server.log()))
    };
    let open_line = line(&open, "open mode");
    assert!(
        open_line.contains("WARN") && open_line.contains("anyone"),
        "{open_line}"
    );
    let secured_line = line(&secured, "secured mode");
    assert!(
        secured_line.contains("INFO") && secured_line.contains("token"),
        "{secured_line}"
    );
    assert!(!secured_line.contains(KEY), "the key is never logged");
}

/// One cross-origin answer: what was asked, its status, and its `access-control-*` headers.
#[derive(Debug)]
struct CrossOrigin {
    request: &'static str,
    status: u16,
    headers: Vec<(String, String)>,
}

impl CrossOrigin {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a page of another origin gets from `app`: a GET, a publish, the preflight of that
/// publish, and an engine.io long-polling handshake (where socket.io in a browser starts),
/// each with an `Origin` header.
async fn cross_origin_answers(app: &TestApp) -> Vec<CrossOrigin> {
    let queue = unique("q");
    let publish = format!("{}/v1/queues/{queue}/messages", app.url);
    let requests = [
        (
            "GET /v1/queues",
            app.http.get(format!("{}/v1/queues", app.url)),
        ),
        (
            "POST /v1/queues/{queue}/messages",
            app.http
                .post(&publish)
                .json(&json!({"event": "e", "payload": 1})),
        ),
        (
            "OPTIONS /v1/queues/{queue}/messages (preflight)",
            app.http
                .request(Method::OPTIONS, &publish)
                .header("Access-Control-Request-Method", "POST")
                .header("Access-Control-Request-Headers", "content-type"),
        ),
        (
            "GET /socket.io/ (polling handshake)",
            app.http
                .get(format!("{}/socket.io/?EIO=4&transport=polling", app.url)),
        ),
    ];
    let mut answers = Vec::new();
    for (label, request) in requests {
        let response = request
            .header("Origin", "http://lab.example")
            .send()
            .await
            .expect("request sent");
        let headers = response
            .headers()
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("access-control-"))
            .map(|(name, value)| {
                let value = value.to_str().unwrap_or_default().to_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        answers.push(CrossOrigin {
            request: label,
            status: response.status().as_u16(),
            headers,
        });
    }
    answers
}

/// README: `--cors` defaults to false, and allows any origin when set. Without it no answer
/// lets another origin in (no `access-control-*` header at all, and the preflight is not
/// answered as one); with it every answer says `access-control-allow-origin: *`.
#[tokio::test]
async fn without_cors_no_origin_is_allowed_and_with_it_any_origin_is() {
    let closed = spawn_app_with_args(&[]).await;
    let answers = cross_origin_answers(&closed).await;
    closed.stop().await;
    for answer in &answers {
        assert!(
            answer.headers.is_empty(),
            "without --cors, {} answered {} with {:?}",
            answer.request,
            answer.status,
            answer.headers
        );
    }
    assert_eq!(answers[0].status, 200, "{answers:?}");
    assert_eq!(answers[1].status, 201, "{answers:?}");
    assert!(
        !(200..300).contains(&answers[2].status),
        "without --cors there is no preflight to answer: {answers:?}"
    );

    let open = spawn_app_with_args(&["--cors"]).await;
    let answers = cross_origin_answers(&open).await;
    open.stop().await;
    for answer in &answers {
        assert!(
            (200..300).contains(&answer.status),
            "with --cors, {answer:?}"
        );
        assert_eq!(
            answer.header("access-control-allow-origin"),
            Some("*"),
            "with --cors, {answer:?}"
        );
    }
    let preflight = &answers[2];
    assert!(
        preflight
            .header("access-control-allow-methods")
            .is_some_and(|m| m == "*" || m.contains("POST")),
        "{preflight:?}"
    );
}
