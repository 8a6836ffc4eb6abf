//! What a socket keeps of the HTTP request that opened it.
//!
//! socket.io keeps each socket's handshake request (its URI, headers and extensions) for as
//! long as the socket is open, so that handlers can read them (queuehub reads the query
//! string and the peer's address). hyper parses a request without copying: the URI and
//! every header value are slices of the connection's 8 KiB read buffer, so keeping any of
//! them keeps all 8 KiB, for every socket. [`compact`] copies them, once, into one buffer of
//! their own size before the socket layer sees the request, and keeps only the extensions
//! a socket needs: its peer's address and the pending WebSocket upgrade.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;

use crate::serve::EnteredAt;
use axum::http::{HeaderValue, Request, Uri};
use bytes::{Bytes, BytesMut};
use hyper::upgrade::OnUpgrade;
use tower::layer::util::Stack;
use tower::util::MapRequestLayer;

/// Where the socket.io (engine.io) endpoint is served: socketioxide's default path.
const ENGINE_PATH: &str = "/socket.io";

/// The socket layer with [`compact`] in front of it.
pub type Compacted<L> = Stack<L, MapRequestLayer<fn(Request<Body>) -> Request<Body>>>;

/// Puts [`compact`] in front of `socket_layer`.
pub fn in_front_of<L>(socket_layer: L) -> Compacted<L> {
    Stack::new(socket_layer, MapRequestLayer::new(compact as fn(_) -> _))
}

/// A socket.io request with its URI and header values copied out of the connection's read
/// buffer, and only the extensions a socket uses. Other requests pass unchanged.
pub fn compact(request: Request<Body>) -> Request<Body> {
    if !request.uri().path().starts_with(ENGINE_PATH) {
        return request;
    }
    let (mut parts, body) = request.into_parts();
    let uri = parts.uri.to_string();
    let values: usize = parts.headers.values().map(HeaderValue::len).sum();
    let mut text = BytesMut::with_capacity(uri.len() + values);
    text.extend_from_slice(uri.as_bytes());
    for value in parts.headers.values() {
        text.extend_from_slice(value.as_bytes());
    }
    let text: Bytes = text.freeze();
    if let Ok(copy) = Uri::from_maybe_shared(text.slice(..uri.len())) {
        parts.uri = copy;
    }
    let mut start = uri.len();
    for value in parts.headers.values_mut() {
        let end = start + value.len();
        if let Ok(mut copy) = HeaderValue::from_maybe_shared(text.slice(start..end)) {
            copy.set_sensitive(value.is_sensitive());
            *value = copy;
        }
        start = end;
    }
    let mut extensions = axum::http::Extensions::new();
    if let Some(peer) = parts.extensions.remove::<ConnectInfo<SocketAddr>>() {
        extensions.insert(peer);
    }
    if let Some(entered_at) = parts.extensions.remove::<EnteredAt>() {
        extensions.insert(entered_at);
    }
    if let Some(upgrade) = parts.extensions.remove::<OnUpgrade>() {
        extensions.insert(upgrade);
    }
    parts.extensions = extensions;
    Request::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_io_request_keeps_its_uri_headers_and_peer() {
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let mut request = Request::builder()
            .uri("/socket.io/?EIO=4&transport=websocket&clientId=a%20b")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("x-extra", "one")
            .header("x-extra", "two")
            .body(Body::empty())
            .unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(EnteredAt(peer));
        request.extensions_mut().insert(42_u32);
        let before = (request.uri().clone(), request.headers().clone());

        let request = compact(request);

        assert_eq!(request.uri(), &before.0);
        assert_eq!(request.headers(), &before.1);
        let extensions = request.extensions();
        assert_eq!(
            extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0),
            Some(peer)
        );
        assert_eq!(extensions.get::<EnteredAt>(), Some(&EnteredAt(peer)));
        assert_eq!(extensions.get::<u32>(), None);
    }

    #[test]
    fn other_requests_pass_unchanged() {
        let mut request = Request::builder()
            .uri("/v1/queues")
            .body(Body::empty())
            .unwrap();
        request.extensions_mut().insert(42_u32);
        assert_eq!(compact(request).extensions().get::<u32>(), Some(&42));
    }
}
