//! `selftest`: the bench's own ceiling. A trivial server of the same protocol runs inside
//! the bench (its own one-thread runtime): it stores nothing, checks nothing, and fans each
//! published message out to the sockets subscribed to its queue as one preformatted frame.
//! What the bench measures against it is the most it can measure on this machine.
//!
//! The trivial server speaks just enough: engine.io open and connect, `subscribe` (answered
//! `{ok: true, pending: 0}`), `received` (ignored), `POST /v1/queues/{q}/messages` and
//! `POST /v1/messages` (arrays).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::protocol::{self, Packet};

/// The trivial server, running until dropped.
pub struct TrivialServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TrivialServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sockets subscribed to each queue: the sender of each one's writer.
#[derive(Default)]
struct Hub {
    // std Mutex: held only to clone or push senders, never across an await.
    queues: Mutex<HashMap<String, Vec<mpsc::UnboundedSender<Arc<str>>>>>,
    next_id: AtomicU64,
}

/// Starts the trivial server on a free loopback port, on its own thread and runtime.
pub fn start() -> Result<TrivialServer> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("binding the trivial server")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let thread = std::thread::spawn(move || {
        runtime.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            let hub = Arc::new(Hub::default());
            tokio::select! {
                () = accept(listener, hub) => {}
                _ = stopped => {}
            }
        });
    });
    Ok(TrivialServer {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

async fn accept(listener: tokio::net::TcpListener, hub: Arc<Hub>) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        let hub = hub.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| handle(request, hub.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn handle(request: Request<Incoming>, hub: Arc<Hub>) -> Result<Answer, hyper::Error> {
    let path = request.uri().path().to_owned();
    if path.starts_with("/socket.io") {
        return Ok(upgrade(request, hub));
    }
    let body = request.into_body().collect().await?.to_bytes();
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return Ok(answer(StatusCode::BAD_REQUEST, "{}"));
    };
    let queue = path
        .strip_prefix("/v1/queues/")
        .and_then(|rest| rest.strip_suffix("/messages"));
    match (queue, &json) {
        (Some(queue), _) => hub.publish(queue, &json),
        (None, Value::Array(batch)) if path == "/v1/messages" => {
            for message in batch {
                hub.publish(message["queue"].as_str().unwrap_or(""), message);
            }
        }
        _ => return Ok(answer(StatusCode::NOT_FOUND, "{}")),
    }
    Ok(answer(StatusCode::CREATED, r#"{"ok":true}"#))
}

impl Hub {
    /// Sends `message` to every socket subscribed to `queue`, as one shared frame.
    fn publish(&self, queue: &str, message: &Value) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let envelope = serde_json::json!({"id": id.to_string(), "queue": queue,
            "event": message["event"], "payload": message["payload"]});
        let event = message["event"].as_str().unwrap_or("message");
        let frame: Arc<str> = protocol::event(event, &envelope).into();
        let subscribers = match self.queues.lock() {
            Ok(queues) => queues.get(queue).cloned().unwrap_or_default(),
            Err(_) => return,
        };
        for subscriber in subscribers {
            let _ = subscriber.send(frame.clone());
        }
    }

    fn subscribe(&self, queue: &str, socket: mpsc::UnboundedSender<Arc<str>>) {
        if let Ok(mut queues) = self.queues.lock() {
            queues.entry(queue.to_owned()).or_default().push(socket);
        }
    }
}

/// Answers a WebSocket upgrade and serves the socket once upgraded.
fn upgrade(mut request: Request<Incoming>, hub: Arc<Hub>) -> Answer {
    let Some(key) = request.headers().get("sec-websocket-key") else {
        return answer(StatusCode::BAD_REQUEST, "websocket only");
    };
    let accept = derive_accept_key(key.as_bytes());
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(&mut request).await {
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            serve_socket(ws, hub).await;
        }
    });
    let mut response = answer(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::UPGRADE,
        "websocket".parse().expect("static header"),
    );
    headers.insert(
        hyper::header::CONNECTION,
        "Upgrade".parse().expect("static header"),
    );
    if let Ok(accept) = accept.parse() {
        headers.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// One socket: a writer task that sends every queued frame with one flush, and this reader.
async fn serve_socket<S>(ws: WebSocketStream<S>, hub: Arc<Hub>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Arc<str>>();
    let writer = tokio::spawn(async move {
        let mut frames = Vec::with_capacity(256);
        while rx.recv_many(&mut frames, 256).await > 0 {
            for frame in frames.drain(..) {
                if sink.feed(Message::text(&*frame)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let open = r#"0{"sid":"trivial","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
    let _ = tx.send(open.into());
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        match protocol::parse(text.as_str()) {
            Ok(Packet::Connect(_)) => {
                let _ = tx.send(r#"40{"sid":"trivial"}"#.into());
            }
            Ok(Packet::Event { ack, args }) => {
                let Ok((name, data)) = serde_json::from_str::<(String, Value)>(args) else {
                    continue;
                };
                if name == "subscribe" {
                    hub.subscribe(data["queue"].as_str().unwrap_or(""), tx.clone());
                }
                if let Some(id) = ack {
                    let _ = tx.send(format!(r#"43{id}[{{"ok":true,"pending":0}}]"#).into());
                }
            }
            Ok(Packet::Close) | Err(_) => break,
            Ok(_) => {}
        }
    }
    drop(tx);
    writer.abort();
}
