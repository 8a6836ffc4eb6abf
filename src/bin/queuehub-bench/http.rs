//! HTTP/1.1 for the publishers: one keep-alive connection per concurrent publisher, spoken
//! with hyper's client connection API directly.
//!
//! Why hyper and not reqwest: hyper is already how the server speaks HTTP, so the bench adds
//! no client stack to the product's dependencies; and a `--concurrency C` run then holds
//! exactly C connections, each with one request in flight, with no connection pool between
//! the bench and what it measures.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use crate::target::Target;

/// One HTTP connection to the server.
pub struct HttpConn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl HttpConn {
    /// Opens a connection (the task driving it ends when this value is dropped).
    pub async fn connect(target: &Target) -> Result<HttpConn> {
        let stream = TcpStream::connect(target.addr)
            .await
            .with_context(|| format!("connecting to {}", target.addr))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(HttpConn {
            sender,
            host: target.authority.clone(),
        })
    }

    /// Sends a request and reads the whole answer: its status and body.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(u16, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.host);
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        self.sender
            .ready()
            .await
            .context("the HTTP connection closed")?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// POSTs a JSON body; `Ok` only for a 2xx answer.
    pub async fn post(&mut self, path: &str, body: Bytes) -> Result<Bytes> {
        let (status, answer) = self.request(Method::POST, path, Some(body)).await?;
        if !(200..300).contains(&status) {
            bail!("POST {path}: {status} {}", String::from_utf8_lossy(&answer));
        }
        Ok(answer)
    }

    /// GETs a JSON document.
    pub async fn get_json(&mut self, path: &str) -> Result<(u16, Value)> {
        let (status, body) = self.request(Method::GET, path, None).await?;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}
