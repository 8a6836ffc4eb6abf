//! Secured mode: API keys on HTTP, signed tokens on sockets, one client never reads or acks
//! another's inbox.

use std::sync::Arc;

use queuehub::auth::{ApiKeys, Claims, Security, Tokens};
use queuehub::names::ClientId;
use serde_json::{Value, json};

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    Http, RawSocket, SocketClient, TestApp, engine_io_websocket, next_text, spawn_app_with,
    spawn_app_with_args, unique,
};

const KEY: &str = "test-api-key";
const SECRET: &str = "a test secret, long enough";

/// An app in secured mode; `public_stats` opens queue stats (tests read them to check).
async fn secured_app(public_stats: bool) -> TestApp {
    spawn_app_with(|c| {
        c.security = Arc::new(Security {
            api_keys: ApiKeys::new([KEY.to_owned()]),
            tokens: Some(Tokens::new(SECRET).unwrap()),
            public_stats,
        });
    })
    .await
}

fn token(client: &str, subscribe: &[&str], publish: &[&str], exp: u64) -> String {
    Tokens::new(SECRET).unwrap().sign(&Claims {
        sub: ClientId::parse(client).unwrap(),
        subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        publish: publish.iter().map(|s| s.to_string()).collect(),
        exp,
    })
}

fn in_an_hour() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600
}

async fn post_with(app: &TestApp, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = app.http.post(format!("{}{path}", app.url)).json(&body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn stats_need_the_key_unless_public_stats_is_set() {
    let app = secured_app(false).await;
    assert_eq!(app.get("/v1/queues").await.0, 401);
    assert_eq!(app.get("/metrics").await.0, 401);
    assert_eq!(app.get("/healthz").await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn http_writes_need_the_api_key_while_public_stats_stay_open() {
    let app = secured_app(true).await;
    let queue = unique("q");
    let path = format!("/v1/queues/{queue}/messages");
    let body = json!({"event": "e", "payload": 1});
    let (status, answer) = post_with(&app, &path, None, body.clone()).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (401, json!("unauthorized"))
    );
    let (status, _) = post_with(&app, &path, Some("wrong"), body.clone()).await;
    assert_eq!(status, 401);
    let (status, _) = app.get("/v1/queues").await;
    assert_eq!(status, 200, "stats are open");
    assert_eq!(
        app.get(&format!("/v1/queues/{queue}")).await.0,
        404,
        "nothing was published"
    );
    let (status, _) = post_with(&app, &path, Some(KEY), body).await;
    assert_eq!(status, 201);
    let (status, _) = app
        .get(&format!("/v1/queues/{queue}/clients/someone/messages"))
        .await;
    assert_eq!(status, 401, "peeking into an inbox is not open");
    app.stop().await;
}

#[tokio::test]
async fn sockets_without_a_valid_token_get_connect_error() {
    let app = secured_app(true).await;
    let none = SocketClient::refused(&app.url, "/", None).await;
    assert!(
        none.as_deref().is_some_and(|m| m.contains("secured mode")),
        "{none:?}"
    );
    let expired = token("alice", &["*"], &[], 1);
    let refused = SocketClient::refused(&app.url, "/", Some(json!({"token": expired}))).await;
    assert!(
        refused.as_deref().is_some_and(|m| m.contains("expired")),
        "{refused:?}"
    );
    let forged = Tokens::new("another secret, also long")
        .unwrap()
        .sign(&Claims {
            sub: ClientId::parse("alice").unwrap(),
            subscribe: vec!["*".into()],
            publish: vec![],
            exp: in_an_hour(),
        });
    let refused = SocketClient::refused(&app.url, "/", Some(json!({"token": forged}))).await;
    assert!(
        refused.as_deref().is_some_and(|m| m.contains("signature")),
        "{refused:?}"
    );
    let good = token("alice", &["*"], &[], in_an_hour());
    assert_eq!(
        SocketClient::refused(&app.url, "/", Some(json!({"token": good}))).await,
        None
    );
    let dashboard = SocketClient::refused(
        &app.url,
        "/dashboard",
        Some(json!({"token": token("alice", &["*"], &[], in_an_hour())})),
    )
    .await;
    assert!(
        dashboard
            .as_deref()
            .is_some_and(|m| m.contains("the dashboard needs auth: {apiKey}")),
        "a client token does not open the dashboard: {dashboard:?}"
    );
    assert_eq!(
        SocketClient::refused(&app.url, "/dashboard", Some(json!({"apiKey": KEY}))).await,
        None
    );
    app.stop().await;
}

#[tokio::test]
async fn a_token_for_one_client_never_reads_or_acks_another_clients_inbox() {
    let app = secured_app(true).await;
    let (alice_q, bob_q) = (unique("alice"), unique("bob"));
    let bob = SocketClient::connect_with_auth(
        &app.url,
        Some(json!({"token": token("bob", &[&bob_q], &[], in_an_hour())})),
    )
    .await;
    assert_eq!(
        bob.call("subscribe", json!({"queue": bob_q})).await["ok"],
        true
    );
    let (_, receipt) = post_with(
        &app,
        &format!("/v1/queues/{bob_q}/messages"),
        Some(KEY),
        json!({"event": "e", "payload": "for bob"}),
    )
    .await;

    let alice_token = token("alice", &[&alice_q], &[&alice_q], in_an_hour());
    let alice =
        SocketClient::connect_with_auth(&app.url, Some(json!({"token": alice_token}))).await;
    let attempts = [
        ("subscribe", json!({"clientId": "bob", "queue": bob_q})),
        ("subscribe", json!({"queue": bob_q})),
        ("getAll", json!({"clientId": "bob"})),
        ("received", json!({"clientId": "bob", "id": receipt["id"]})),
        ("unsubscribe", json!({"clientId": "bob", "queue": bob_q})),
        (
            "publish",
            json!({"queue": bob_q, "event": "e", "payload": "spoof"}),
        ),
    ];
    for (event, data) in attempts {
        let ack = alice.call(event, data.clone()).await;
        assert_eq!(ack["error"]["code"], "forbidden", "{event} {data}: {ack}");
    }
    assert_eq!(
        app.pending(&bob_q, "bob").await,
        1,
        "bob's message is untouched"
    );
    assert_eq!(
        alice.call("subscribe", json!({"queue": alice_q})).await["clientId"],
        "alice"
    );
    let ack = alice
        .call(
            "publish",
            json!({"queue": alice_q, "event": "note", "payload": 1}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    app.stop().await;
}

#[tokio::test]
async fn an_api_key_holder_mints_tokens_and_trusted_backends_act_as_anyone() {
    let app = secured_app(true).await;
    let queue = unique("orders");
    let (status, _) = post_with(&app, "/v1/tokens", None, json!({"clientId": "carol"})).await;
    assert_eq!(status, 401);
    let (status, minted) = post_with(
        &app,
        "/v1/tokens",
        Some(KEY),
        json!({"clientId": "carol", "subscribe": [queue]}),
    )
    .await;
    assert_eq!(status, 200, "{minted}");
    let carol =
        SocketClient::connect_with_auth(&app.url, Some(json!({"token": minted["token"]}))).await;
    assert_eq!(
        carol.call("subscribe", json!({"queue": queue})).await["ok"],
        true
    );

    let backend = SocketClient::connect_with_auth(&app.url, Some(json!({"apiKey": KEY}))).await;
    let ack = backend
        .call(
            "subscribe",
            json!({"clientId": "anyone", "queue": unique("any")}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    app.stop().await;
}

#[tokio::test]
async fn socket_io_2_clients_can_send_the_token_in_the_query_string() {
    let app = secured_app(true).await;
    let url = format!(
        "{}/?token={}",
        app.url,
        token("dave", &["*"], &[], in_an_hour())
    );
    assert_eq!(SocketClient::refused(&url, "/", None).await, None);
    app.stop().await;
}

/// Joins `namespace` over a bare engine.io WebSocket; `Err` holds the `connect_error`.
async fn join(ws: &mut RawSocket, namespace: &str) -> Result<(), String> {
    let prefix = if namespace == "/" {
        String::new()
    } else {
        format!("{namespace},")
    };
    ws.send(Message::text(format!("40{prefix}"))).await.unwrap();
    let answer = next_text(ws).await.expect("an answer to the connect");
    if answer.starts_with(&format!("40{prefix}")) {
        Ok(())
    } else {
        assert!(answer.starts_with(&format!("44{prefix}")), "{answer}");
        Err(answer)
    }
}

#[tokio::test]
async fn an_address_over_its_socket_limit_is_refused_until_a_socket_leaves() {
    // One engine.io connection may carry a socket in each namespace: two TCP connections
    // stay under the limit of 2 while the third socket is over it.
    let app = spawn_app_with_args(&["--preset", "caps", "--max-connections-per-ip", "2"]).await;
    let mut first = engine_io_websocket(&app.url)
        .await
        .expect("first connection");
    join(&mut first, "/").await.expect("first socket");
    join(&mut first, "/caps").await.expect("second socket");
    let mut second = engine_io_websocket(&app.url)
        .await
        .expect("second connection");
    let refused = join(&mut second, "/").await.unwrap_err();
    assert!(
        refused.contains("too_many_connections") || refused.contains("connections"),
        "{refused}"
    );

    // Closing the first connection frees both sockets (and its TCP place).
    first.close(None).await.unwrap();
    drop(first);
    let mut admitted = Err(String::new());
    for _ in 0..50 {
        if let Ok(mut ws) = engine_io_websocket(&app.url).await {
            admitted = join(&mut ws, "/").await;
            if admitted.is_ok() {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(admitted, Ok(()), "a place was freed");
    app.stop().await;
}

#[tokio::test]
async fn handshake_query_values_are_percent_decoded() {
    // A key with the characters a query string must escape, sent escaped as clients do
    // (encodeURIComponent), and a client id with a space.
    let key = "k+/=ey";
    let app = spawn_app_with_args(&["--api-key", key, "--public-stats"]).await;
    let escaped = "k%2B%2F%3Dey";
    let with_key = format!("{}/?apiKey={escaped}", app.url);
    let accepted = SocketClient::refused(&with_key, "/", None).await;
    assert_eq!(accepted, None, "?apiKey={escaped} is the key {key}");
    let with_other_key = format!("{}/?apiKey=k%2Bey", app.url);
    let refused = SocketClient::refused(&with_other_key, "/", None).await;
    assert!(
        refused
            .as_deref()
            .is_some_and(|m| m.contains("the API key is not valid")),
        "another key is still refused: {refused:?}"
    );

    let url = format!("{}/?apiKey={escaped}&clientId=a%20b", app.url);
    let socket = SocketClient::connect(&url).await;
    let queue = unique("q");
    let ack = socket.call("subscribe", json!({ "queue": queue })).await;
    assert_eq!(ack["clientId"], "a b", "{ack}");
    let (status, detail) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["subscribers"][0]["clientId"], "a b", "{detail}");
    socket.disconnect().await;
    app.stop().await;
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Publishes `event` to `queue` over `socket`; the ack.
async fn publish_over(socket: &SocketClient, queue: &str) -> Value {
    socket
        .call(
            "publish",
            json!({"queue": queue, "event": "note", "payload": 1}),
        )
        .await
}

/// README: `POST /v1/tokens {clientId, subscribe?, publish?, ttlSecs?}`. A token minted with
/// `publish: [queue]` publishes there and nowhere else, one minted without `publish` nowhere
/// (docs/API.md: "publish nowhere" by default), and `ttlSecs` is its lifetime, from 1 s to 30
/// days: out of that range the mint is refused with 422 `invalid_field`.
#[tokio::test]
async fn a_minted_token_publishes_only_where_it_says_for_the_ttl_it_was_minted_with() {
    let app = secured_app(true).await;
    let (queue, other) = (unique("orders"), unique("elsewhere"));
    let asked = now_secs();
    let (status, minted) = post_with(
        &app,
        "/v1/tokens",
        Some(KEY),
        json!({"clientId": "frank", "subscribe": [queue], "publish": [queue], "ttlSecs": 600}),
    )
    .await;
    let answered = now_secs();
    assert_eq!(status, 200, "{minted}");
    assert_eq!(minted["publish"], json!([queue]), "{minted}");
    assert_eq!(minted["subscribe"], json!([queue]), "{minted}");
    let token = minted["token"].as_str().expect("a token");
    let claims = Tokens::new(SECRET).unwrap().verify(token).expect("valid");
    assert_eq!(claims.publish, vec![queue.clone()]);
    assert!(
        (asked + 600..=answered + 600).contains(&claims.exp),
        "ttlSecs 600 minted between {asked} and {answered} expires at {}",
        claims.exp
    );

    let frank = SocketClient::connect_with_auth(&app.url, Some(json!({"token": token}))).await;
    let ack = publish_over(&frank, &queue).await;
    assert_eq!(ack["ok"], true, "publish to {queue}: {ack}");
    let ack = publish_over(&frank, &other).await;
    assert_eq!(
        ack["error"]["code"], "forbidden",
        "publish to {other}: {ack}"
    );
    let (status, stats) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(status, 200, "the publish to {queue} is stored: {stats}");
    assert_eq!(
        app.get(&format!("/v1/queues/{other}")).await.0,
        404,
        "nothing reached {other}"
    );

    // Without `publish`, the token publishes nowhere, not even to a queue it subscribes to.
    let (status, minted) = post_with(
        &app,
        "/v1/tokens",
        Some(KEY),
        json!({"clientId": "grace", "subscribe": [queue]}),
    )
    .await;
    assert_eq!(status, 200, "{minted}");
    assert_eq!(minted["publish"], json!([]), "{minted}");
    let grace =
        SocketClient::connect_with_auth(&app.url, Some(json!({"token": minted["token"]}))).await;
    let ack = publish_over(&grace, &queue).await;
    assert_eq!(ack["error"]["code"], "forbidden", "{ack}");

    // ttlSecs: 1 to 2 592 000 (30 days), both ends included.
    for ttl in [json!(0), json!(2_592_001), json!(-1)] {
        let (status, body) = post_with(
            &app,
            "/v1/tokens",
            Some(KEY),
            json!({"clientId": "frank", "ttlSecs": ttl}),
        )
        .await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (422, &json!("invalid_field")),
            "ttlSecs {ttl}: {body}"
        );
        assert!(body.get("token").is_none(), "ttlSecs {ttl}: {body}");
    }
    for ttl in [1, 2_592_000] {
        let asked = now_secs();
        let (status, body) = post_with(
            &app,
            "/v1/tokens",
            Some(KEY),
            json!({"clientId": "frank", "ttlSecs": ttl}),
        )
        .await;
        assert_eq!(status, 200, "ttlSecs {ttl}: {body}");
        let token = body["token"].as_str().expect("a token");
        let exp = Tokens::new(SECRET)
            .unwrap()
            .verify(token)
            .expect("valid")
            .exp;
        assert!(
            (asked + ttl..=now_secs() + ttl).contains(&exp),
            "ttlSecs {ttl} expires at {exp}"
        );
    }
    frank.disconnect().await;
    grace.disconnect().await;
    app.stop().await;
}
