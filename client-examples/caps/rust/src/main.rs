//! CAPS lab: the VENDOR in Rust (rust_socketio 0.6, async), namespace `/caps`.
//!
//! The same store as `js/vendor.js`: it sends `pickup` orders, hears when an order is
//! `in-transit`, thanks the driver for every `delivered` order and acknowledges each message
//! with `received` (the hub then removes it from the store's queue). Deliveries made while the
//! vendor was offline wait in its queue on the hub; on connect it asks for them with `getAll`.
//!
//! ```text
//! cargo run -- [store] [--orders N] [--wait-for N] [--every MS]
//! ```
//!
//! The hub: `$QUEUEHUB_URL` (default `http://127.0.0.1:3001`, the lab's hub port).
//!
//! Three things about rust_socketio 0.6 shape this code:
//! - `connect()` returns before the namespace is joined: the `Event::Connect` callback says
//!   when it is, so the vendor joins its queue there (which also covers reconnects).
//! - An ack's answer arrives wrapped in one more array (`[{ok, count}]`): [`first_value`]
//!   unwraps it.
//! - Callbacks run one at a time on the client's reader task; they must not wait for an
//!   answer from the hub (that answer could only be read after they return).

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload};
use serde_json::{json, Value};
use tokio::sync::Notify;

const NAMESPACE: &str = "/caps";
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the command line asked for.
struct Options {
    store: String,
    /// Send this many orders, then stop sending (`None`: keep sending).
    orders: Option<u64>,
    /// Exit once this many deliveries were thanked for (`None`: run until Ctrl-C).
    wait_for: Option<usize>,
    every: Duration,
}

/// What the callbacks share with `main`.
#[derive(Default)]
struct Vendor {
    /// Message ids of the deliveries already thanked for (delivery is at-least-once).
    thanked: Mutex<HashSet<String>>,
    /// Message ids sent with `received` whose answer has not come back yet.
    unanswered: Mutex<HashSet<String>>,
    /// `getAll`s the hub has finished since the last connect.
    catch_ups_done: Mutex<usize>,
    /// Woken on connect and whenever the vendor's progress changes.
    changed: Notify,
}

impl Vendor {
    fn thanked(&self) -> usize {
        self.thanked.lock().unwrap().len()
    }

    fn settled(&self) -> bool {
        self.unanswered.lock().unwrap().is_empty() && *self.catch_ups_done.lock().unwrap() >= 2
    }
}

/// The first value of a payload; ack answers come as `[[value]]`, events as `[value]`.
fn first_value(payload: &Payload) -> Value {
    let value = match payload {
        Payload::Text(values) => values.first().cloned().unwrap_or(Value::Null),
        _ => Value::Null,
    };
    match value {
        Value::Array(mut inner) if !inner.is_empty() => inner.swap_remove(0),
        other => other,
    }
}

/// Text of a field of a delivery (`orderId`, or `code` for POST /delivery/{store}/{code}).
fn text(delivery: &Value, field: &str) -> String {
    match &delivery[field] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `received`: the hub removes the message from our queue for good.
async fn acknowledge(
    client: &Client,
    vendor: &Arc<Vendor>,
    store: &str,
    event: &str,
    message_id: String,
) {
    vendor.unanswered.lock().unwrap().insert(message_id.clone());
    let answered = {
        let vendor = vendor.clone();
        let message_id = message_id.clone();
        move |_answer: Payload, _client: Client| {
            let vendor = vendor.clone();
            let message_id = message_id.clone();
            async move {
                vendor.unanswered.lock().unwrap().remove(&message_id);
                vendor.changed.notify_one();
            }
            .boxed()
        }
    };
    let data = json!({"clientId": store, "event": event, "messageId": message_id});
    if let Err(err) = client
        .emit_with_ack("received", data, ANSWER_TIMEOUT, answered)
        .await
    {
        eprintln!("{store}: could not ack {message_id}: {err}");
        vendor.unanswered.lock().unwrap().remove(&message_id);
    }
}

/// On every (re)connect: join our queue, then ask for what we missed.
async fn on_connect(client: Client, vendor: Arc<Vendor>, store: String) {
    println!("{store}: connected to the hub");
    if let Err(err) = client.emit("join", json!(store)).await {
        eprintln!("{store}: join failed: {err}");
    }
    *vendor.catch_ups_done.lock().unwrap() = 0;
    for event in ["in-transit", "delivered"] {
        let caught_up = {
            let vendor = vendor.clone();
            let store = store.clone();
            move |answer: Payload, _client: Client| {
                let vendor = vendor.clone();
                let count = first_value(&answer)["count"].clone();
                let store = store.clone();
                async move {
                    println!("{store}: caught up ({count} message(s) re-sent)");
                    *vendor.catch_ups_done.lock().unwrap() += 1;
                    vendor.changed.notify_one();
                }
                .boxed()
            }
        };
        let data = json!({"clientId": store, "event": event});
        if let Err(err) = client
            .emit_with_ack("getAll", data, ANSWER_TIMEOUT, caught_up)
            .await
        {
            eprintln!("{store}: getAll failed: {err}");
        }
    }
    vendor.changed.notify_one();
}

async fn on_in_transit(payload: Payload, client: Client, vendor: Arc<Vendor>, store: String) {
    let message = first_value(&payload);
    println!("{store}: order {} is in transit", text(&message, "orderId"));
    acknowledge(
        &client,
        &vendor,
        &store,
        "in-transit",
        text(&message, "messageId"),
    )
    .await;
}

async fn on_delivered(payload: Payload, client: Client, vendor: Arc<Vendor>, store: String) {
    let message = first_value(&payload);
    let message_id = text(&message, "messageId");
    if vendor.thanked.lock().unwrap().insert(message_id.clone()) {
        let mut order = text(&message, "orderId");
        if order.is_empty() {
            order = text(&message, "code");
        }
        println!("Thank you for delivering {order}");
    }
    acknowledge(&client, &vendor, &store, "delivered", message_id).await;
    vendor.changed.notify_one();
}

fn new_order(store: &str, number: u64) -> Value {
    const CUSTOMERS: [&str; 3] = ["Ada Lovelace", "Grace Hopper", "Alan Turing"];
    const ADDRESSES: [&str; 3] = [
        "1 Main St, Seattle, WA",
        "22 Pine St, Portland, OR",
        "7 Elm Ave, Boise, ID",
    ];
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let pick = (millis as usize).wrapping_add(number as usize);
    json!({
        "store": store,
        "orderId": format!("{store}-rs-{millis:x}-{number}"),
        "customer": CUSTOMERS[pick % CUSTOMERS.len()],
        "address": ADDRESSES[pick % ADDRESSES.len()],
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match read_options() {
        Ok(options) => options,
        Err(problem) => {
            eprintln!("caps-vendor: {problem}");
            eprintln!("usage: caps-vendor [store] [--orders N] [--wait-for N] [--every MS]");
            return ExitCode::from(2);
        }
    };
    let hub = std::env::var("QUEUEHUB_URL").unwrap_or_else(|_| "http://127.0.0.1:3001".into());
    let store = options.store.clone();
    let vendor = Arc::new(Vendor::default());
    let connected = Arc::new(Notify::new());

    let builder = ClientBuilder::new(hub.clone())
        .namespace(NAMESPACE)
        .on(Event::Connect, {
            let (vendor, store, connected) = (vendor.clone(), store.clone(), connected.clone());
            move |_payload, client| {
                connected.notify_one();
                on_connect(client, vendor.clone(), store.clone()).boxed()
            }
        })
        .on("in-transit", {
            let (vendor, store) = (vendor.clone(), store.clone());
            move |payload, client| {
                on_in_transit(payload, client, vendor.clone(), store.clone()).boxed()
            }
        })
        .on("delivered", {
            let (vendor, store) = (vendor.clone(), store.clone());
            move |payload, client| {
                on_delivered(payload, client, vendor.clone(), store.clone()).boxed()
            }
        })
        .on(Event::Error, {
            let store = store.clone();
            move |payload, _client| {
                let store = store.clone();
                async move { eprintln!("{store}: socket error: {payload:?}") }.boxed()
            }
        });

    let client = match builder.connect().await {
        Ok(client) => client,
        Err(err) => {
            eprintln!("{store}: cannot connect to {hub}{NAMESPACE}: {err}");
            return ExitCode::FAILURE;
        }
    };
    // connect() returned, but the namespace may not be joined yet: wait for Event::Connect.
    if tokio::time::timeout(ANSWER_TIMEOUT, connected.notified())
        .await
        .is_err()
    {
        eprintln!(
            "{store}: {hub}{NAMESPACE} did not accept the connection within {ANSWER_TIMEOUT:?}"
        );
        return ExitCode::FAILURE;
    }

    let mut sent = 0;
    let mut next_order = tokio::time::Instant::now();
    loop {
        if options.wait_for.is_some_and(|n| vendor.thanked() >= n) && vendor.settled() {
            break;
        }
        let sending = options.orders.is_none_or(|n| sent < n);
        if sending && tokio::time::Instant::now() >= next_order {
            sent += 1;
            let order = new_order(&store, sent);
            println!(
                "{store}: order {} for {} is ready for pickup",
                text(&order, "orderId"),
                text(&order, "customer")
            );
            if let Err(err) = client.emit("pickup", order).await {
                eprintln!("{store}: could not send the order: {err}");
            }
            next_order += options.every;
            continue;
        }
        // Wait for the next order, for a callback to report progress, or for Ctrl-C.
        let wake_up = if sending {
            next_order
        } else {
            tokio::time::Instant::now() + Duration::from_secs(3600)
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake_up) => {}
            _ = vendor.changed.notified() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    println!("{store}: {} deliveries thanked for, bye", vendor.thanked());
    let _ = client.disconnect().await;
    ExitCode::SUCCESS
}

fn read_options() -> Result<Options, String> {
    let mut options = Options {
        store: std::env::var("STORE").unwrap_or_else(|_| "acme-widgets".into()),
        orders: None,
        wait_for: None,
        every: Duration::from_secs(3),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if !arg.starts_with("--") {
            options.store = arg;
            continue;
        }
        let value: u64 = args
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{arg} needs a whole number"))?;
        match arg.as_str() {
            "--orders" => options.orders = Some(value),
            "--wait-for" => options.wait_for = Some(value as usize),
            "--every" => options.every = Duration::from_millis(value),
            _ => return Err(format!("unknown flag {arg}")),
        }
    }
    if options.wait_for.is_none() {
        options.wait_for = options.orders.map(|n| n as usize);
    }
    Ok(options)
}
