//! The transport limits under the API: the size of one socket.io packet, the time one HTTP
//! request (and its headers) may take, the connections one address may hold, and running out
//! of file descriptors. They are checked with raw clients (a bare WebSocket speaking the
//! Engine.IO/socket.io text protocol, a bare TCP connection speaking HTTP/1.1), because a
//! well-behaved client library would not send what these tests send.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    Http, ServerProcess, SocketClient, WAIT, data_dir, engine_io_websocket, next_text,
    polling_session, raw_socket, spawn_app_with, spawn_app_with_args, unique,
};

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
    let endpoint = polling_session(&app.http, &app.url).await;
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

/// Sends `request` one byte every `pace` until the server closes the connection; returns
/// how many bytes it sent by then, or `None` if the whole request went out (it was never
/// closed early).
async fn trickle(address: String, request: Vec<u8>, pace: Duration) -> Option<usize> {
    let mut tcp = TcpStream::connect(&address).await.ok()?;
    let mut buffer = [0u8; 512];
    for (sent, byte) in request.iter().enumerate() {
        tokio::select! {
            read = tcp.read(&mut buffer) => match read {
                // Whatever the server says (if anything), it must end with a close.
                Ok(0) | Err(_) => return Some(sent),
                Ok(_) => {}
            },
            () = tokio::time::sleep(pace) => {
                if tcp.write_all(&[*byte]).await.is_err() {
                    return Some(sent);
                }
            }
        }
    }
    None
}

/// Waits until the server closes `tcp` (EOF or reset).
async fn closed_by_server(mut tcp: TcpStream) {
    let mut buffer = [0u8; 512];
    while let Ok(n) = tcp.read(&mut buffer).await {
        if n == 0 {
            return;
        }
    }
}

#[tokio::test]
async fn connections_that_never_finish_their_headers_are_closed_while_others_are_served() {
    let app = spawn_app_with(|c| c.request_timeout = Duration::from_millis(300)).await;
    let address = app.url.trim_start_matches("http://").to_owned();
    // At one byte per 100 ms this request takes over 25 s: far longer than the 300 ms the
    // headers may take, and longer than the bound below.
    let slow = format!(
        "GET /healthz HTTP/1.1\r\nHost: {address}\r\nX-Slow: {}\r\n\r\n",
        "x".repeat(200)
    );
    let started = Instant::now();
    let tricklers: Vec<_> = (0..50)
        .map(|_| {
            let (address, slow) = (address.clone(), slow.clone().into_bytes());
            tokio::spawn(trickle(address, slow, Duration::from_millis(100)))
        })
        .collect();
    // Connections that send nothing at all are closed too.
    let mut silent = Vec::new();
    for _ in 0..5 {
        let tcp = TcpStream::connect(&address).await.unwrap();
        silent.push(tokio::spawn(closed_by_server(tcp)));
    }

    // Meanwhile the server answers everyone else.
    for _ in 0..5 {
        assert_eq!(
            app.get("/healthz").await.0,
            200,
            "healthz during the trickle"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The bound is the test's patience on a busy machine, not a measurement: the timeout is
    // 300 ms, and without it the connections would stay open for the whole 25 s request.
    for trickler in tricklers {
        let sent = tokio::time::timeout(WAIT, trickler)
            .await
            .expect("closed within the bound")
            .unwrap();
        assert!(
            sent.is_some(),
            "the server waited for the whole trickled request"
        );
    }
    for connection in silent {
        tokio::time::timeout(WAIT, connection)
            .await
            .expect("a silent connection is closed within the bound")
            .unwrap();
    }
    assert!(started.elapsed() < WAIT + Duration::from_secs(1));

    // A normal request, a socket.io client and a bare WebSocket still work.
    let queue = unique("q");
    let client = unique("c");
    let mut subscriber = SocketClient::connect(&app.url).await;
    subscriber.subscribe(&client, &queue).await;
    let receipt = app.publish(&queue, "e", json!("after the trickle")).await;
    assert_eq!(subscriber.take("e", 1).await[0]["id"], receipt["id"]);
    let mut raw = raw_socket(&app.url).await;
    raw.send(Message::text(publish_packet(&queue, 10)))
        .await
        .unwrap();
    let ack = next_text(&mut raw)
        .await
        .expect("an ack over the raw WebSocket");
    assert!(
        ack.starts_with("431") && ack.contains("\"ok\":true"),
        "{ack}"
    );
    app.stop().await;
}

#[tokio::test]
async fn engine_io_connections_over_the_per_address_limit_are_refused_with_429() {
    let app = spawn_app_with(|c| c.max_connections_per_ip = Some(3)).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            engine_io_websocket(&app.url)
                .await
                .expect("under the limit"),
        );
    }
    // A fourth engine.io connection, and any other HTTP connection, is refused.
    for _ in 0..3 {
        let Err((status, body)) = engine_io_websocket(&app.url).await else {
            panic!("a fourth connection from one address was accepted");
        };
        assert_eq!(status, 429, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
        assert_eq!(body["error"]["code"], "too_many_connections", "{body}");
    }
    let (status, body) = app.get("/healthz").await;
    assert_eq!(status, 429, "a plain HTTP connection counts too: {body}");

    // Closing one gives its place back (once the server has seen the close).
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    let deadline = Instant::now() + WAIT;
    let again = loop {
        match engine_io_websocket(&app.url).await {
            Ok(ws) => break ws,
            Err((429, _)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!("no place was given back: {other:?}"),
        }
    };
    assert!(
        engine_io_websocket(&app.url).await.is_err(),
        "the limit still holds"
    );
    drop(again);
    drop(open);
    app.stop().await;
}

/// CPU time (user + system) the process has used, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split(' ')
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::test]
async fn out_of_file_descriptors_the_server_pauses_accepting_and_recovers() {
    let (_dir, path) = data_dir();
    let server = ServerProcess::start(&path).await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let in_use = std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .unwrap()
        .count();
    server.limit_open_files(Some(in_use as u64 + 5));

    // More connections than descriptors left: the rest wait in the listen backlog and every
    // accept fails with EMFILE.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A loop that retried at once would burn a whole core; it pauses 100 ms instead. Half a
    // core is the bound: a busy machine may slow a spinning loop down, never speed it up.
    let before = cpu_ticks(server.pid());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_ticks(server.pid()) - before;
    assert!(
        used < 100,
        "the accept loop spun: {used} ticks of CPU in 2 s"
    );
    let reports = server
        .log()
        .iter()
        .filter(|line| line.contains("cannot accept connections"))
        .count();
    assert!(
        (1..=2).contains(&reports),
        "accept errors are logged, at most every 5 s: {reports} lines"
    );

    // Once descriptors are free again, the server serves as before.
    drop(held);
    server.limit_open_files(None);
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = tokio::time::timeout(Duration::from_secs(1), server.get("/healthz")).await;
        if let Ok((200, _)) = answer {
            break;
        }
        assert!(Instant::now() < deadline, "/healthz never answered again");
    }
}

#[tokio::test]
async fn an_address_over_its_http_request_rate_is_answered_429_rate_limited() {
    // One request per second, and a burst of one: the second at once is over the limit.
    let app = spawn_app_with_args(&["--max-requests-per-sec", "1"]).await;
    let get = || app.http.get(format!("{}/v1/queues", app.url)).send();
    assert_eq!(get().await.unwrap().status(), 200);
    let refused = get().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        retry_after, "1",
        "whole seconds until the next request fits"
    );
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "the API's error shape: {body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_a_request_rate_http_is_not_limited() {
    let app = spawn_app_with_args(&[]).await;
    for _ in 0..200 {
        let (status, body) = app.get("/healthz").await;
        assert_eq!(status, 200, "{body}");
    }
    app.stop().await;
}
