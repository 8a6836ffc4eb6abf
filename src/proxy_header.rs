//! The PROXY protocol's version 2 header (HAProxy's `proxy-protocol.txt`, section 2.2), with
//! which a standby node tells the active node whose connection it relays (`crate::relay`).
//!
//! A relayed connection starts with the header: the client's address and port, the address it
//! reached, and one TLV of the custom range (`0xE0`) holding the active node's relay secret.
//! The active node accepts the header only with that secret, which it made up at start and
//! gave only to its advert in Redis: a client that sends a header of its own cannot pass for
//! another address. A connection that does not start with the header's signature is a client's
//! own, and its first bytes are left where they are.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The twelve bytes every version 2 header starts with.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Version 2, command PROXY.
const PROXY: u8 = 0x21;
/// TCP over IPv4 and over IPv6.
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;

/// The TLV type of the relay secret (the first of the range left to applications).
const SECRET_TLV: u8 = 0xE0;

/// The longest header this side reads (addresses and the secret need far less).
const MAX_LENGTH: usize = 512;

/// The header that tells the active node that `client` reached this relay at `local`.
pub fn encode(client: SocketAddr, local: SocketAddr, secret: &str) -> Vec<u8> {
    let (family, addresses) = match (client.ip(), local.ip()) {
        (IpAddr::V4(source), IpAddr::V4(destination)) => {
            let mut addresses = Vec::with_capacity(12);
            addresses.extend_from_slice(&source.octets());
            addresses.extend_from_slice(&destination.octets());
            (TCP4, addresses)
        }
        (source, destination) => {
            let mut addresses = Vec::with_capacity(36);
            addresses.extend_from_slice(&to_v6(source).octets());
            addresses.extend_from_slice(&to_v6(destination).octets());
            (TCP6, addresses)
        }
    };
    let secret = secret.as_bytes();
    let length = addresses.len() + 4 + 3 + secret.len();
    let mut header = Vec::with_capacity(16 + length);
    header.extend_from_slice(&SIGNATURE);
    header.push(PROXY);
    header.push(family);
    header.extend_from_slice(&u16::try_from(length).unwrap_or(u16::MAX).to_be_bytes());
    header.extend_from_slice(&addresses);
    header.extend_from_slice(&client.port().to_be_bytes());
    header.extend_from_slice(&local.port().to_be_bytes());
    header.push(SECRET_TLV);
    header.extend_from_slice(&u16::try_from(secret.len()).unwrap_or(0).to_be_bytes());
    header.extend_from_slice(secret);
    header
}

fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The two addresses a relay's header names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relayed {
    /// The client's.
    pub client: SocketAddr,
    /// The one the client connected to, on the relaying node.
    pub entered_at: SocketAddr,
}

/// Reads a relay's header off `stream` if it starts with one, within `limit`: the addresses
/// it names, or `None` for a connection that does not start with a header (nothing is
/// consumed then). A header without `secret`, or malformed, is an error: the connection
/// must be closed.
pub async fn read(
    stream: &mut TcpStream,
    secret: &str,
    limit: Duration,
) -> io::Result<Option<Relayed>> {
    tokio::time::timeout(limit, read_header(stream, secret))
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request in time",
            ))
        })
}

async fn read_header(stream: &mut TcpStream, secret: &str) -> io::Result<Option<Relayed>> {
    // Peek until the bytes differ from the signature or all sixteen fixed bytes are there.
    let mut fixed = [0u8; 16];
    loop {
        let seen = stream.peek(&mut fixed).await?;
        if seen == 0 {
            return Ok(None); // closed before a byte: hyper (or the door) sees the same
        }
        let compared = seen.min(SIGNATURE.len());
        if fixed[..compared] != SIGNATURE[..compared] {
            return Ok(None);
        }
        if seen >= fixed.len() {
            break;
        }
        // A client's own bytes never match the signature this far; a relay sends the header in
        // one write. Wait for the rest.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stream.read_exact(&mut fixed).await?;
    let length = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if fixed[12] != PROXY || length > MAX_LENGTH {
        return Err(invalid("not a PROXY version 2 header"));
    }
    let mut rest = vec![0u8; length];
    stream.read_exact(&mut rest).await?;
    parse(fixed[13], &rest, secret).map(Some)
}

/// The addresses in a header's body (after the sixteen fixed bytes), if it carries `secret`.
fn parse(family: u8, body: &[u8], secret: &str) -> io::Result<Relayed> {
    let (relayed, tlvs) = match family {
        TCP4 if body.len() >= 12 => {
            let ip = |at: usize| -> IpAddr {
                let octets: [u8; 4] = body[at..at + 4].try_into().expect("four bytes");
                IpAddr::from(octets)
            };
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            let relayed = Relayed {
                client: SocketAddr::new(ip(0), port(8)),
                entered_at: SocketAddr::new(ip(4), port(10)),
            };
            (relayed, &body[12..])
        }
        TCP6 if body.len() >= 36 => {
            let ip = |at: usize| -> IpAddr {
                let octets: [u8; 16] = body[at..at + 16].try_into().expect("sixteen bytes");
                let ip = std::net::Ipv6Addr::from(octets);
                ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4)
            };
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            let relayed = Relayed {
                client: SocketAddr::new(ip(0), port(32)),
                entered_at: SocketAddr::new(ip(16), port(34)),
            };
            (relayed, &body[36..])
        }
        _ => return Err(invalid("a PROXY header without a TCP address")),
    };
    let mut tlvs = tlvs;
    while tlvs.len() >= 3 {
        let length = usize::from(u16::from_be_bytes([tlvs[1], tlvs[2]]));
        let value = tlvs
            .get(3..3 + length)
            .ok_or_else(|| invalid("a truncated PROXY TLV"))?;
        if tlvs[0] == SECRET_TLV && value == secret.as_bytes() {
            return Ok(relayed);
        }
        tlvs = &tlvs[3 + length..];
    }
    Err(invalid("a PROXY header without this node's relay secret"))
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(header: &[u8]) -> (u8, &[u8]) {
        (header[13], &header[16..])
    }

    #[test]
    fn a_header_names_the_client_only_with_the_secret() {
        let client: SocketAddr = "10.1.2.3:4567".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let header = encode(client, local, "s3cret");
        assert_eq!(&header[..12], &SIGNATURE);
        let (family, rest) = body(&header);
        let relayed = parse(family, rest, "s3cret").unwrap();
        assert_eq!((relayed.client, relayed.entered_at), (client, local));
        assert!(parse(family, rest, "other").is_err());
        assert!(parse(family, &rest[..rest.len() - 1], "s3cret").is_err());
    }

    #[test]
    fn ipv6_clients_and_mixed_families_round_trip() {
        let client: SocketAddr = "[2001:db8::7]:9".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let header = encode(client, local, "k");
        let (family, rest) = body(&header);
        assert_eq!(family, TCP6);
        assert_eq!(parse(family, rest, "k").unwrap().client, client);
    }

    #[tokio::test]
    async fn a_connection_without_a_header_keeps_its_bytes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut stream = TcpStream::connect(address).await.unwrap();
            stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            let mut relayed = TcpStream::connect(address).await.unwrap();
            let mut header = encode("10.0.0.9:1".parse().unwrap(), address, "k");
            header.extend_from_slice(b"use t\r\n");
            relayed.write_all(&header).await.unwrap();
            (stream, relayed)
        });
        let (mut plain, _) = listener.accept().await.unwrap();
        let (mut relayed, _) = listener.accept().await.unwrap();
        let limit = Duration::from_secs(5);
        assert_eq!(read(&mut plain, "k", limit).await.unwrap(), None);
        let mut first = [0u8; 3];
        plain.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"GET");
        assert_eq!(
            read(&mut relayed, "k", limit)
                .await
                .unwrap()
                .map(|r| r.client),
            Some("10.0.0.9:1".parse().unwrap())
        );
        let mut next = [0u8; 5];
        relayed.read_exact(&mut next).await.unwrap();
        assert_eq!(&next, b"use t");
        drop(writer.await.unwrap());
    }
}
