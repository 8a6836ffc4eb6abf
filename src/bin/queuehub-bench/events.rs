//! The queue protocol's events as the bench uses them (docs/SPEC.md, section 4): what it sends
//! (`subscribe`, `received`, `getAll`), how it reads a delivery, and the [`Mark`] it puts in
//! every payload so that a delivery says which message it is and when it was sent.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::protocol;

/// The event name of every message the bench publishes.
pub const EVENT: &str = "bench";

/// What the bench writes into each payload: the message's number in the run (`n`, from 0)
/// and the microsecond, on the run's clock, it counts latency from (`t`). `p` pads the
/// payload to the size asked for.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mark<'a> {
    pub n: u64,
    pub t: u64,
    #[serde(default, skip_serializing_if = "str::is_empty", borrow)]
    pub p: Cow<'a, str>,
}

impl Mark<'_> {
    /// A mark whose payload JSON is about `size` bytes long (never less than the mark itself).
    pub fn padded(n: u64, t: u64, size: usize) -> Mark<'static> {
        const OVERHEAD: usize = r#"{"n":,"t":,"p":""}"#.len();
        let digits = |x: u64| x.checked_ilog10().unwrap_or(0) as usize + 1;
        let used = OVERHEAD + digits(n) + digits(t);
        Mark {
            n,
            t,
            p: Cow::Owned("x".repeat(size.saturating_sub(used))),
        }
    }
}

/// One message pushed to a subscriber: its server id (to ack it) and the bench's mark.
#[derive(Debug, PartialEq, Eq)]
pub struct Delivery<'a> {
    pub id: Cow<'a, str>,
    pub n: u64,
    pub t: u64,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    payload: Mark<'a>,
}

/// Reads a delivery of the bench's event from an event's arguments (`["bench",{envelope}]`);
/// `None` for any other event, or an envelope without a bench mark.
pub fn delivery(args: &str) -> Option<Delivery<'_>> {
    let (name, envelope): (Cow<str>, Envelope) = serde_json::from_str(args).ok()?;
    (name == EVENT).then_some(Delivery {
        id: envelope.id,
        n: envelope.payload.n,
        t: envelope.payload.t,
    })
}

/// The name of the event in `args` (`["name", ...]`).
pub fn name(args: &str) -> Option<String> {
    let list: Vec<Value> = serde_json::from_str(args).ok()?;
    list.first()?.as_str().map(str::to_owned)
}

/// The first argument of an ack answer (`[{"ok":true,...}]`).
pub fn answer(args: &str) -> Value {
    serde_json::from_str::<Vec<Value>>(args)
        .ok()
        .and_then(|list| list.into_iter().next())
        .unwrap_or(Value::Null)
}

/// Whether an ack answer says `ok: true`.
pub fn is_ok(answer: &Value) -> bool {
    answer.get("ok").and_then(Value::as_bool) == Some(true)
}

/// `received {clientId, id}`, sent without asking for an answer (errors would come back as
/// `mq:error` events, which the bench counts).
pub fn received(client_id: &str, id: &str) -> String {
    #[derive(Serialize)]
    struct Received<'a> {
        #[serde(rename = "clientId")]
        client_id: &'a str,
        id: &'a str,
    }
    protocol::event("received", &Received { client_id, id })
}

/// The `subscribe` payload: broadcast (the default), or `mode: "work"` with an optional
/// prefetch.
pub fn subscribe(client_id: &str, queue: &str, work: Option<Option<u32>>) -> Value {
    let mut data = json!({"clientId": client_id, "queue": queue});
    if let Some(prefetch) = work {
        data["mode"] = json!("work");
        if let Some(prefetch) = prefetch {
            data["prefetch"] = json!(prefetch);
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_yields_the_server_id_and_the_mark() {
        let args = r#"["bench",{"id":"019a","queue":"q","event":"bench",
            "payload":{"n":41,"t":1234,"p":"xx"},"clientId":"c","attempt":1}]"#;
        assert_eq!(
            delivery(args),
            Some(Delivery {
                id: "019a".into(),
                n: 41,
                t: 1234
            })
        );
    }

    #[test]
    fn other_events_and_foreign_payloads_are_not_deliveries() {
        assert_eq!(delivery(r#"["mq:error",{"code":"rate_limited"}]"#), None);
        assert_eq!(
            delivery(r#"["other",{"id":"1","payload":{"n":1,"t":2}}]"#),
            None
        );
        assert_eq!(delivery(r#"["bench",{"id":"1","payload":"text"}]"#), None);
        assert_eq!(
            name(r#"["mq:error",{"code":"x"}]"#).as_deref(),
            Some("mq:error")
        );
    }

    #[test]
    fn a_padded_mark_has_the_size_asked_for() {
        let mark = Mark::padded(123, 4_567_890, 200);
        assert_eq!(serde_json::to_string(&mark).unwrap().len(), 200);
        let small = Mark::padded(5, 6, 0);
        assert_eq!(serde_json::to_string(&small).unwrap(), r#"{"n":5,"t":6}"#);
    }

    #[test]
    fn acks_and_answers_are_read_and_written_as_the_api_says() {
        assert_eq!(
            received("c1", "m1"),
            r#"42["received",{"clientId":"c1","id":"m1"}]"#
        );
        let answer = answer(r#"[{"ok":true,"pending":3}]"#);
        assert!(is_ok(&answer));
        assert_eq!(answer["pending"], 3);
        assert!(!is_ok(&super::answer(
            r#"[{"ok":false,"error":{"code":"x"}}]"#
        )));
        assert_eq!(
            subscribe("w", "jobs", Some(Some(4))),
            json!({"clientId": "w", "queue": "jobs", "mode": "work", "prefetch": 4})
        );
        assert_eq!(
            subscribe("s", "q", None),
            json!({"clientId": "s", "queue": "q"})
        );
    }
}
