//! A small socket.io client over one WebSocket (tokio-tungstenite), made for load: one task
//! owns the connection, reads every frame that is ready, and writes what it has to say in
//! one flush (frames are fed, not sent one by one). There is no channel per frame and no
//! task per socket besides the caller's own.
//!
//! Only the main namespace `/` and text packets; pings are answered inside [`Socket::recv`].

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::events;
use crate::protocol::{self, Packet};
use crate::target::Target;

/// Frames read in one [`Socket::recv`] before its writes are flushed.
const READ_BATCH: usize = 512;

/// The WebSocket's buffers. tungstenite zeroes its whole read buffer before every read
/// (128 KiB by default); deliveries are a few hundred bytes, so 16 KiB reads cost an eighth.
fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(16 * 1024)
}

/// One socket.io connection; see the module docs.
pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames to send at the next flush.
    out: Vec<String>,
    next_ack: u64,
}

impl Socket {
    /// Opens the WebSocket transport directly (`/socket.io/?EIO=4&transport=websocket`),
    /// reads the engine.io open packet, joins namespace `/` and waits until it is accepted,
    /// all before `deadline`.
    pub async fn connect(target: &Target, deadline: Instant) -> Result<Socket> {
        let url = target.socket_io_url();
        let (ws, _) = timeout_at(
            deadline,
            // Nagle off: a delivery's ack should leave at once, not wait for more bytes.
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config()), true),
        )
        .await
        .context("timed out opening the WebSocket")?
        .with_context(|| format!("opening {url}"))?;
        let mut socket = Socket {
            ws,
            out: Vec::new(),
            next_ack: 1,
        };
        match timeout_at(deadline, socket.handshake()).await {
            Ok(result) => result.map(|()| socket),
            Err(_) => bail!("timed out in the socket.io handshake"),
        }
    }

    async fn handshake(&mut self) -> Result<()> {
        let first = self.next_text().await?;
        if !matches!(protocol::parse(&first)?, Packet::Open(_)) {
            bail!("expected the engine.io open packet, got {first:.80}");
        }
        self.send(protocol::CONNECT.to_owned());
        self.flush().await?;
        loop {
            let frame = self.next_text().await?;
            match protocol::parse(&frame)? {
                Packet::Connect(_) => return Ok(()),
                Packet::ConnectError(why) => bail!("the server refused the socket: {why}"),
                Packet::Ping => {
                    self.send(protocol::PONG.to_owned());
                    self.flush().await?;
                }
                _ => {}
            }
        }
    }

    async fn next_text(&mut self) -> Result<String> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
                Some(Ok(Message::Close(_))) | None => bail!("the server closed the connection"),
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err).context("reading the WebSocket"),
            }
        }
    }

    /// Queues a frame for the next flush.
    pub fn send(&mut self, frame: String) {
        self.out.push(frame);
    }

    /// Queues an event that asks for an answer; returns its ack id.
    pub fn emit_with_ack(&mut self, name: &str, data: &impl Serialize) -> u64 {
        let id = self.next_ack;
        self.next_ack += 1;
        self.send(protocol::event_with_ack(id, name, data));
        id
    }

    /// Writes every queued frame with one flush.
    pub async fn flush(&mut self) -> Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        for frame in self.out.drain(..) {
            self.ws
                .feed(Message::text(frame))
                .await
                .context("writing the WebSocket")?;
        }
        self.ws.flush().await.context("writing the WebSocket")
    }

    /// Waits for at least one frame, reads every frame that is ready then (up to a batch),
    /// answers pings, hands every other packet to `on_packet` (which may queue frames with
    /// [`Socket::send`] through the given `Vec`), and flushes what was queued. Fails when the
    /// connection closes.
    pub async fn recv(
        &mut self,
        mut on_packet: impl FnMut(Packet<'_>, &mut Vec<String>),
    ) -> Result<()> {
        let first = self.ws.next().await;
        self.handle(first, &mut on_packet)?;
        for _ in 1..READ_BATCH {
            match self.ws.next().now_or_never() {
                Some(message) => self.handle(message, &mut on_packet)?,
                None => break,
            }
        }
        self.flush().await
    }

    fn handle(
        &mut self,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        on_packet: &mut impl FnMut(Packet<'_>, &mut Vec<String>),
    ) -> Result<()> {
        match message {
            Some(Ok(Message::Text(text))) => match protocol::parse(text.as_str())? {
                Packet::Ping => self.out.push(protocol::PONG.to_owned()),
                Packet::Close | Packet::Disconnect => bail!("the server closed the socket"),
                packet => on_packet(packet, &mut self.out),
            },
            Some(Ok(Message::Close(_))) | None => bail!("the server closed the connection"),
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(err).context("reading the WebSocket"),
        }
        Ok(())
    }

    /// Sends an event and waits (until `deadline`) for its answer; packets that arrive
    /// meanwhile go to `on_packet`.
    pub async fn call(
        &mut self,
        name: &str,
        data: &impl Serialize,
        deadline: Instant,
        mut on_packet: impl FnMut(Packet<'_>, &mut Vec<String>),
    ) -> Result<Value> {
        let id = self.emit_with_ack(name, data);
        self.flush().await?;
        let mut answer = None;
        let wait = async {
            while answer.is_none() {
                self.recv(|packet, out| match packet {
                    Packet::Ack { id: got, args } if got == id => {
                        answer = Some(events::answer(args))
                    }
                    other => on_packet(other, out),
                })
                .await?;
            }
            anyhow::Ok(())
        };
        timeout_at(deadline, wait)
            .await
            .with_context(|| format!("no answer to {name} in time"))??;
        Ok(answer.unwrap_or(Value::Null))
    }

    /// Says goodbye (engine.io close) and closes the WebSocket, waiting at most a second.
    pub async fn close(mut self) {
        self.out.push("1".to_owned());
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = self.flush().await;
            let _ = self.ws.close(None).await;
        })
        .await;
    }
}
