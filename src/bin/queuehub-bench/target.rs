//! The server under load: its `http://host:port` URL, the addresses it resolves to, and the
//! rule that only loopback addresses are a load target unless `--allow-remote` says so.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use hyper::Uri;

/// A resolved server address; see the module docs.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` as given, for the HTTP `Host` header and the WebSocket URL.
    pub authority: String,
    /// Where to connect.
    pub addr: SocketAddr,
}

impl Target {
    /// Parses `url` (`http://host:port`, nothing after the port but an optional `/`) and
    /// resolves it. A host that resolves to any address outside 127.0.0.0/8 and ::1 is
    /// refused unless `allow_remote`.
    pub async fn resolve(url: &str, allow_remote: bool) -> Result<Target> {
        let authority = authority(url)?;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&authority)
            .await
            .with_context(|| format!("resolving {authority}"))?
            .collect();
        let Some(&addr) = addrs.first() else {
            bail!("{authority} resolves to no address");
        };
        if !allow_remote && let Some(remote) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            bail!(
                "{authority} resolves to {remote}, which is not a loopback address; \
                 the bench loads only this machine unless --allow-remote is given"
            );
        }
        Ok(Target { authority, addr })
    }

    /// The socket.io WebSocket endpoint.
    pub fn socket_io_url(&self) -> String {
        format!(
            "ws://{}/socket.io/?EIO=4&transport=websocket",
            self.authority
        )
    }
}

/// `host:port` of an `http://` URL (port 80 if none is given).
fn authority(url: &str) -> Result<String> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("'{url}' is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("'{url}': only http:// URLs are supported (the bench speaks plain HTTP and ws://)");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        bail!("'{url}': give the server's root URL, without a path");
    }
    let host = uri.host().context("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    Ok(if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_reduce_to_their_authority() {
        assert_eq!(
            authority("http://127.0.0.1:3000").unwrap(),
            "127.0.0.1:3000"
        );
        assert_eq!(
            authority("http://localhost:3000/").unwrap(),
            "localhost:3000"
        );
        assert_eq!(authority("http://[::1]:8080").unwrap(), "[::1]:8080");
        assert_eq!(authority("http://127.0.0.1").unwrap(), "127.0.0.1:80");
        assert!(authority("https://127.0.0.1:3000").is_err());
        assert!(authority("http://127.0.0.1:3000/v1").is_err());
        assert!(authority("not a url").is_err());
    }

    #[tokio::test]
    async fn only_loopback_is_a_target_without_allow_remote() {
        let target = Target::resolve("http://127.0.0.1:3000", false)
            .await
            .unwrap();
        assert_eq!(target.addr, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(
            target.socket_io_url(),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert!(Target::resolve("http://[::1]:3000", false).await.is_ok());
        // A literal address resolves without any lookup on the network.
        let refused = Target::resolve("http://192.0.2.1:3000", false).await;
        assert!(refused.unwrap_err().to_string().contains("--allow-remote"));
        assert!(Target::resolve("http://192.0.2.1:3000", true).await.is_ok());
    }
}
