//! The transport limits under the API: the size of one socket.io packet and the time one HTTP
//! request may take. Both are checked with raw clients (a bare WebSocket speaking the
//! Engine.IO/socket.io text protocol, a bare TCP connection speaking HTTP/1.1), because a
//! well-behaved client library would not send what these tests send.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Http, SocketClient, WAIT, spawn_app_with, unique};

type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a bare WebSocket to socket.io and joins namespace `/`.
async fn raw_socket(url: &str) -> RawSocket {
    let ws_url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        url.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("websocket opens");
    let open = next_text(&mut ws).await.expect("engine.io open packet");
    assert!(open.starts_with('0'), "{open}");
    ws.send(Message::text("40")).await.unwrap();
    let joined = next_text(&mut ws).await.expect("namespace joined");
    assert!(joined.starts_with("40"), "{joined}");
    ws
}

/// The next text frame, answering pings; `None` once the server closed the connection.
async fn next_text(ws: &mut RawSocket) -> Option<String> {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the server answers or closes in time");
        match frame {
            Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                ws.send(Message::text("3")).await.ok()?;
            }
            Some(Ok(Message::Text(text))) => return Some(text.to_string()),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// A socket.io `publish` event asking for ack 1, with a payload of `size` characters.
fn publish_packet(queue: &str, size: usize) -> String {
    let event = json!(["publish", {"queue": queue, "event": "e", "payload": "x".repeat(size)}]);
    format!("421{event}")
}

#[tokio::test]
async fn a_socket_io_packet_over_the_limit_closes_that_socket_only() {
    // Payloads up to 1000 bytes: packets up to 1000 bytes + 64 KiB.
    let app = spawn_app_with(|c| c.broker.max_payload_bytes = 1_000).await;
    let (queue, client) = (unique("q"), unique("c"));
    let mut bystander = SocketClient::connect(&app.url).await;
    bystander.subscribe(&client, &queue).await;
    let mut raw = raw_socket(&app.url).await;

    // Under the packet limit, over the payload limit: an ordinary error in the ack.
    raw.send(Message::text(publish_packet(&queue, 5_000)))
        .await
        .unwrap();
    let ack = next_text(&mut raw).await.expect("an ack");
    assert!(
        ack.starts_with("431") && ack.contains("payload_too_large"),
        "{ack}"
    );

    // Over the packet limit: the engine refuses the packet and closes the connection.
    raw.send(Message::text(publish_packet(&queue, 100_000)))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut raw).await,
        None,
        "the oversized sender is closed"
    );

    // Nothing was published, and everyone else is served as before.
    let (_, stats) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["published"], 0, "{stats}");
    let receipt = app.publish(&queue, "e", json!("still here")).await;
    assert_eq!(bystander.take("e", 1).await[0]["id"], receipt["id"]);
    app.stop().await;
}

#[tokio::test]
async fn an_http_request_slower_than_the_timeout_is_answered_408_and_changes_nothing() {
    let app = spawn_app_with(|c| c.request_timeout = Duration::from_millis(300)).await;
    let queue = unique("q");
    let address = app.url.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    // Promise a 100-byte body and send only its start: a slow (or stalled) upload.
    let head = format!(
        "POST /v1/queues/{queue}/messages HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"event\":"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 1024];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut answer))
        .await
        .expect("answered in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    let (status, _) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(status, 404, "the stalled publish created nothing");
    app.publish(&queue, "e", json!("a prompt request is served"))
        .await;
    app.stop().await;
}

#[tokio::test]
async fn a_long_polling_post_over_the_packet_limit_is_refused() {
    let app = spawn_app_with(|c| c.broker.max_payload_bytes = 1_000).await;
    let queue = unique("q");
    let handshake = app
        .http
        .get(format!("{}/socket.io/?EIO=4&transport=polling", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let open: serde_json::Value = serde_json::from_str(handshake.trim_start_matches('0')).unwrap();
    let endpoint = format!(
        "{}/socket.io/?EIO=4&transport=polling&sid={}",
        app.url,
        open["sid"].as_str().unwrap()
    );
    let post = |body: String| app.http.post(&endpoint).body(body).send();
    assert!(post("40".into()).await.unwrap().status().is_success());

    // Under the limit the engine takes the packet (the payload limit then refuses it in the
    // ack); over it, the engine refuses the request itself.
    let under = post(publish_packet(&queue, 5_000)).await.unwrap().status();
    assert!(under.is_success(), "answered {under}");
    let over = post(publish_packet(&queue, 80_000)).await.unwrap().status();
    assert!(over.is_client_error(), "answered {over}");
    let (status, _) = app.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(status, 404, "nothing was published");
    app.stop().await;
}
