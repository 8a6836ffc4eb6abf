//! The socket.io protocol (v5) over engine.io v4, as the text frames of one WebSocket: what the
//! bench parses ([`parse`]) and what it sends ([`event`], [`event_with_ack`]). Pure functions,
//! no I/O; [`crate::socket`] does the I/O.
//!
//! Over the WebSocket transport every WebSocket text frame is one engine.io packet: its first
//! character is the engine.io type (`0` open, `1` close, `2` ping, `3` pong, `4` message); a
//! message carries one socket.io packet, whose first character is its type (`0` connect, `1`
//! disconnect, `2` event, `3` ack, `4` connect error), then an optional namespace (`/name,`),
//! an optional ack id (digits), then JSON. So an event is `42["name",{...}]`, an event that
//! asks for an answer `42<id>["name",{...}]`, and the answer `43<id>[{...}]`.

use serde::Serialize;

/// One engine.io packet (and the socket.io packet inside a message), borrowing the frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `0{...}`: the server's handshake (sid, pingInterval, pingTimeout, maxPayload).
    Open(&'a str),
    /// `1`: the server closes the engine.io session.
    Close,
    /// `2`: a heartbeat; answer [`PONG`] or the server drops the connection.
    Ping,
    /// `3`: the answer to a ping.
    Pong,
    /// `40{...}`: the namespace accepted this socket.
    Connect(&'a str),
    /// `41`: the namespace disconnected this socket.
    Disconnect,
    /// `42[...]` or `42<id>[...]`: an event; `args` is the JSON array `["name", arg...]`.
    Event { ack: Option<u64>, args: &'a str },
    /// `43<id>[...]`: the answer to our event number `id`; `args` is the JSON array.
    Ack { id: u64, args: &'a str },
    /// `44{...}`: the namespace refused this socket (the JSON says why).
    ConnectError(&'a str),
    /// Anything the bench does not use (upgrade, noop, binary packets).
    Other(&'a str),
}

/// The engine.io pong, the answer to [`Packet::Ping`].
pub const PONG: &str = "3";

/// The socket.io connect packet for the main namespace `/`, without auth.
pub const CONNECT: &str = "40";

/// A frame that is not a packet of this protocol.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a socket.io frame ({reason}): {frame:.80}")]
pub struct ProtocolError {
    reason: &'static str,
    frame: String,
}

fn error(reason: &'static str, frame: &str) -> ProtocolError {
    ProtocolError {
        reason,
        frame: frame.to_owned(),
    }
}

/// Parses one text frame.
pub fn parse(frame: &str) -> Result<Packet<'_>, ProtocolError> {
    let mut chars = frame.chars();
    match chars.next() {
        Some('0') => Ok(Packet::Open(&frame[1..])),
        Some('1') => Ok(Packet::Close),
        Some('2') => Ok(Packet::Ping),
        Some('3') => Ok(Packet::Pong),
        Some('4') => parse_message(frame),
        Some('5' | '6') => Ok(Packet::Other(frame)),
        _ => Err(error("unknown engine.io packet type", frame)),
    }
}

/// The socket.io packet inside an engine.io message (`frame` starts with `4`).
fn parse_message(frame: &str) -> Result<Packet<'_>, ProtocolError> {
    let kind = frame
        .as_bytes()
        .get(1)
        .ok_or_else(|| error("empty message", frame))?;
    let rest = skip_namespace(&frame[2..]);
    match kind {
        b'0' => Ok(Packet::Connect(rest)),
        b'1' => Ok(Packet::Disconnect),
        b'2' => {
            let (ack, args) = split_id(rest);
            check_array(args, frame)?;
            Ok(Packet::Event { ack, args })
        }
        b'3' => {
            let (id, args) = split_id(rest);
            let id = id.ok_or_else(|| error("ack without an id", frame))?;
            check_array(args, frame)?;
            Ok(Packet::Ack { id, args })
        }
        b'4' => Ok(Packet::ConnectError(rest)),
        b'5' | b'6' => Ok(Packet::Other(frame)),
        _ => Err(error("unknown socket.io packet type", frame)),
    }
}

/// Drops a namespace prefix (`/name,`), which servers send for namespaces other than `/`.
fn skip_namespace(rest: &str) -> &str {
    match rest.strip_prefix('/') {
        Some(after) => after.find(',').map_or("", |comma| &after[comma + 1..]),
        None => rest,
    }
}

/// Splits leading digits (an ack id) from the JSON after them.
fn split_id(rest: &str) -> (Option<u64>, &str) {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    (rest[..digits].parse().ok(), &rest[digits..])
}

fn check_array(args: &str, frame: &str) -> Result<(), ProtocolError> {
    if args.starts_with('[') && args.ends_with(']') {
        Ok(())
    } else {
        Err(error("arguments are not a JSON array", frame))
    }
}

/// `42["name",data]`: an event without an answer.
pub fn event(name: &str, data: &impl Serialize) -> String {
    let mut frame = String::from("42");
    push_args(&mut frame, name, data);
    frame
}

/// `42<id>["name",data]`: an event the server answers with `43<id>[...]`.
pub fn event_with_ack(id: u64, name: &str, data: &impl Serialize) -> String {
    let mut frame = format!("42{id}");
    push_args(&mut frame, name, data);
    frame
}

fn push_args(frame: &mut String, name: &str, data: &impl Serialize) {
    // Serializing a &str or a derived struct into JSON cannot fail.
    let name = serde_json::to_string(name).unwrap_or_default();
    let data = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    frame.reserve(name.len() + data.len() + 3);
    frame.push('[');
    frame.push_str(&name);
    frame.push(',');
    frame.push_str(&data);
    frame.push(']');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn engine_io_packets_parse_by_their_first_character() {
        let open = r#"0{"sid":"abc","pingInterval":25000}"#;
        assert_eq!(
            parse(open),
            Ok(Packet::Open(r#"{"sid":"abc","pingInterval":25000}"#))
        );
        assert_eq!(parse("1"), Ok(Packet::Close));
        assert_eq!(parse("2"), Ok(Packet::Ping));
        assert_eq!(parse("3"), Ok(Packet::Pong));
        assert_eq!(parse("6"), Ok(Packet::Other("6")));
        assert!(parse("").is_err());
        assert!(parse("x").is_err());
        assert!(parse("4").is_err(), "a message needs a socket.io type");
    }

    #[test]
    fn connect_and_connect_error_carry_their_json() {
        assert_eq!(
            parse(r#"40{"sid":"s1"}"#),
            Ok(Packet::Connect(r#"{"sid":"s1"}"#))
        );
        assert_eq!(parse("40"), Ok(Packet::Connect("")));
        assert_eq!(parse("41"), Ok(Packet::Disconnect));
        assert_eq!(
            parse(r#"44{"message":"no"}"#),
            Ok(Packet::ConnectError(r#"{"message":"no"}"#))
        );
    }

    #[test]
    fn events_parse_with_and_without_an_ack_id() {
        assert_eq!(
            parse(r#"42["bench",{"id":"1"}]"#),
            Ok(Packet::Event {
                ack: None,
                args: r#"["bench",{"id":"1"}]"#
            })
        );
        assert_eq!(
            parse(r#"4217["getAll",{}]"#),
            Ok(Packet::Event {
                ack: Some(17),
                args: r#"["getAll",{}]"#
            })
        );
        assert!(parse(r#"42{"not":"an array"}"#).is_err());
    }

    #[test]
    fn acks_need_an_id() {
        assert_eq!(
            parse(r#"43123[{"ok":true}]"#),
            Ok(Packet::Ack {
                id: 123,
                args: r#"[{"ok":true}]"#
            })
        );
        assert!(parse(r#"43[{"ok":true}]"#).is_err());
    }

    #[test]
    fn a_namespace_prefix_is_skipped() {
        assert_eq!(
            parse(r#"42/caps,5["pickup",{}]"#),
            Ok(Packet::Event {
                ack: Some(5),
                args: r#"["pickup",{}]"#
            })
        );
        assert_eq!(
            parse(r#"40/caps,{"sid":"x"}"#),
            Ok(Packet::Connect(r#"{"sid":"x"}"#))
        );
    }

    #[test]
    fn events_encode_as_the_server_expects() {
        let data = json!({"clientId": "c\"1", "queue": "q"});
        assert_eq!(
            event("subscribe", &data),
            r#"42["subscribe",{"clientId":"c\"1","queue":"q"}]"#
        );
        assert_eq!(
            event_with_ack(7, "getAll", &json!({})),
            r#"427["getAll",{}]"#
        );
        // What we send parses back as what we meant.
        let frame = event_with_ack(9, "publish", &json!([1]));
        assert_eq!(
            parse(&frame),
            Ok(Packet::Event {
                ack: Some(9),
                args: r#"["publish",[1]]"#
            })
        );
    }
}
