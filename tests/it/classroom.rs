//! The classroom presets: the CAPS lab's events, fields and routes (`--preset caps`), and
//! each lab generation on its own preset (`caps-v2`, `caps-rooms`, `message-queue`), over
//! real socket.io clients and real HTTP; restarts with the real binary.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    Http, ServerProcess, SocketClient, data_dir, get_text, polling_session, spawn_app_with_args,
};

fn order(store: &str, id: &str) -> Value {
    json!({"store": store, "orderId": id, "customer": "Ada Lovelace", "address": "12 Analytical St"})
}

#[tokio::test]
async fn the_four_x_lab_runs_pickup_in_transit_and_delivered_through_its_queues() {
    let app = spawn_app_with_args(&["--preset", "caps"]).await;
    let mut vendor = SocketClient::connect_to(&app.url, "/caps", None).await;
    let mut driver = SocketClient::connect_to(&app.url, "/caps", None).await;
    assert_eq!(vendor.call("join", json!("acme-widgets")).await["ok"], true);
    let ack = driver
        .call("getAll", json!({"clientId": "driver", "event": "pickup"}))
        .await;
    assert_eq!(ack["count"], 0);

    vendor.emit("pickup", order("acme-widgets", "o-1")).await;
    let pickup = driver.take("pickup", 1).await.remove(0);
    assert_eq!(
        pickup["orderId"], "o-1",
        "the order's fields are on the event's argument"
    );
    assert_eq!(pickup["store"], "acme-widgets");
    assert_eq!(pickup["messageId"], pickup["id"]);
    driver
        .emit(
            "received",
            json!({"clientId": "driver", "event": "pickup", "messageId": pickup["messageId"]}),
        )
        .await;
    driver
        .emit("in-transit", order("acme-widgets", "o-1"))
        .await;
    driver.emit("delivered", order("acme-widgets", "o-1")).await;

    let in_transit = vendor.take("in-transit", 1).await.remove(0);
    let delivered = vendor.take("delivered", 1).await.remove(0);
    assert_eq!(delivered["orderId"], "o-1");
    for message in [&in_transit, &delivered] {
        let ack = vendor
            .call("received", json!({"clientId": "acme-widgets", "event": message["event"], "messageId": message["messageId"]}))
            .await;
        assert_eq!(ack["removed"], true, "{ack}");
    }
    assert_eq!(app.pending("acme-widgets", "acme-widgets").await, 0);
    assert_eq!(app.pending("driver", "driver").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_vendor_that_was_offline_catches_up_on_its_deliveries() {
    let app = spawn_app_with_args(&["--preset", "caps"]).await;
    // Nobody from 1-800-flowers is connected: the deliveries wait in its mailbox.
    for code in ["a", "b", "c"] {
        let (status, body) = app
            .post(&format!("/delivery/1-800-flowers/{code}"), json!({}))
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["queue"], "1-800-flowers");
        assert_eq!(body["event"], "delivered");
    }
    let mut vendor = SocketClient::connect_to(&app.url, "/caps", None).await;
    vendor
        .emit("join", json!({"storeName": "1-800-flowers"}))
        .await;
    let ack = vendor
        .call(
            "getAll",
            json!({"clientId": "1-800-flowers", "event": "delivered"}),
        )
        .await;
    assert_eq!(ack["count"], 3, "{ack}");
    let got = vendor.take("delivered", 3).await;
    let codes: Vec<&Value> = got.iter().map(|m| &m["code"]).collect();
    assert_eq!(codes, vec!["a", "b", "c"]);
    for message in &got {
        let ack = vendor
            .call(
                "received",
                json!({"clientId": "1-800-flowers", "messageId": message["messageId"]}),
            )
            .await;
        assert_eq!(ack["removed"], true, "{ack}");
    }
    let (_, peek) = app
        .get("/v1/queues/1-800-flowers/clients/1-800-flowers/messages")
        .await;
    assert_eq!(
        peek["messages"],
        json!([]),
        "the getAll acks emptied the mailbox"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_two_x_lab_dialect_subscribes_gets_all_and_acks_by_message_id() {
    let app = spawn_app_with_args(&["--preset", "caps"]).await;
    // The lab's API server emits app events as {clientID, payload}.
    let api = SocketClient::connect_to(&app.url, "/", None).await;
    let ack = api
        .call(
            "delivered",
            json!({"clientID": "acme-widgets", "payload": order("acme-widgets", "o-9")}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["queue"], "acme-widgets");

    let mut vendor = SocketClient::connect_to(&app.url, "/", None).await;
    vendor
        .emit(
            "subscribe",
            json!({"event": "delivered", "clientID": "acme-widgets"}),
        )
        .await;
    vendor
        .emit(
            "getall",
            json!({"clientID": "acme-widgets", "payload": "delivered"}),
        )
        .await;
    let message = vendor.take("delivered", 1).await.remove(0);
    assert_eq!(message["payload"]["orderId"], "o-9");
    assert!(message["messageID"].is_string());
    let ack = vendor
        .call("recieved", json!({"messageID": message["messageID"], "event": "delivered", "clientID": "acme-widgets"}))
        .await;
    assert_eq!(ack["removed"], true, "{ack}");
    assert_eq!(app.pending("acme-widgets", "acme-widgets").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn post_pickup_queues_the_order_for_the_driver() {
    let app = spawn_app_with_args(&["--preset", "caps"]).await;
    let (status, body) = app.post("/pickup", order("acme-widgets", "o-5")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["queue"], "driver");
    let mut driver = SocketClient::connect_to(&app.url, "/caps", None).await;
    let ack = driver
        .call("get-messages", json!({"clientId": "driver"}))
        .await;
    assert_eq!(ack["count"], 1, "{ack}");
    let pickup = driver.take("pickup", 1).await.remove(0);
    assert_eq!(pickup["customer"], "Ada Lovelace");
    // The driver's getAll made it a subscriber: new pickups now arrive live.
    app.post("/pickup", order("acme-widgets", "o-6")).await;
    assert_eq!(driver.take("pickup", 1).await[0]["orderId"], "o-6");
    app.stop().await;
}

#[tokio::test]
async fn a_lab_event_without_a_store_gets_a_clear_error() {
    let app = spawn_app_with_args(&["--preset", "caps"]).await;
    let socket = SocketClient::connect_to(&app.url, "/caps", None).await;
    let ack = socket.call("delivered", json!({"orderId": "o-1"})).await;
    assert_eq!(ack["ok"], false);
    assert_eq!(ack["error"]["code"], "invalid_field");
    let (status, _) = app.get("/v1/queues").await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn without_the_preset_lab_routes_and_namespaces_do_not_exist() {
    let app = crate::helpers::spawn_app().await;
    let (status, _) = app.post("/pickup", order("acme-widgets", "o-1")).await;
    assert_eq!(status, 404);
    let socket = SocketClient::connect(&app.url).await;
    let ack = socket.call("pickup", order("acme-widgets", "o-1")).await;
    assert_eq!(ack["error"]["code"], "unknown_event");
    // Joining a lab's namespace is refused with socket.io's connect error; `/` is served.
    for (namespace, joins) in [("/caps", false), ("/messages", false), ("/", true)] {
        let endpoint = polling_session(&app.http, &app.url).await;
        let join = if namespace == "/" {
            "40".to_owned()
        } else {
            format!("40{namespace},")
        };
        app.http.post(&endpoint).body(join).send().await.unwrap();
        let answer = get_text(&app.http, &endpoint).await;
        // Engine.IO packets (a ping may come first): `4` a message, then socket.io's `0`
        // (joined) or `4` (connect error) for the namespace.
        let expected = match (namespace, joins) {
            ("/", _) => "40".to_owned(),
            (_, true) => format!("40{namespace},"),
            (_, false) => format!("44{namespace},"),
        };
        assert!(
            answer
                .split('\u{1e}')
                .any(|packet| packet.starts_with(&expected)),
            "joining {namespace} without the preset: {answer:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_preset_allows_the_labs_browser_page_from_any_origin() {
    let app = spawn_app_with_args(&["--preset", "caps"]).await;
    let response = app
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/pickup", app.url))
        .header("origin", "http://localhost:8080")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    app.stop().await;
}

// ---- the socket.io-2 CAPS lab (`caps-v2`, and `caps` which also speaks it on `/`) ----

/// What a 2.x lab client emits: `{clientID: <the sender's own id>, payload}`.
fn from_sender(sender: &str, payload: Value) -> Value {
    json!({"clientID": sender, "payload": payload})
}

#[tokio::test]
async fn two_x_deliveries_go_to_the_store_the_order_names_never_to_the_sender() {
    for preset in ["caps-v2", "caps"] {
        let app = spawn_app_with_args(&["--preset", preset]).await;
        let driver = SocketClient::connect_to(&app.url, "/", None).await;
        let api = SocketClient::connect_to(&app.url, "/", None).await;
        let order = order("acme-widgets", "o-2x");
        for event in ["in-transit", "delivered"] {
            let ack = driver
                .call(event, from_sender("driver", order.clone()))
                .await;
            assert_eq!(ack["queue"], "acme-widgets", "{preset} {event}: {ack}");
        }
        let scanned = json!({"store": "acme-widgets", "code": "c-7"});
        let ack = api.call("delivered", from_sender("api", scanned)).await;
        assert_eq!(ack["queue"], "acme-widgets", "{preset}: {ack}");
        let (_, queues) = app.get("/v1/queues").await;
        let names: Vec<&Value> = queues["queues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| &q["queue"])
            .collect();
        assert!(
            !names.contains(&&json!("driver")) && !names.contains(&&json!("api")),
            "{preset}: {queues}"
        );

        let mut vendor = SocketClient::connect_to(&app.url, "/", None).await;
        vendor
            .emit(
                "subscribe",
                json!({"event": "delivered", "clientID": "acme-widgets"}),
            )
            .await;
        let ack = vendor
            .call(
                "getall",
                json!({"clientID": "acme-widgets", "event": "delivered"}),
            )
            .await;
        assert_eq!(ack["count"], 2, "{preset}: {ack}");
        let got = vendor.take("delivered", 2).await;
        assert_eq!(got[0]["payload"]["orderId"], "o-2x", "{preset}");
        assert_eq!(got[1]["payload"]["code"], "c-7", "{preset}");
        for message in &got {
            let ack = vendor
                .call("received", json!({"clientID": "acme-widgets", "messageID": message["messageID"], "event": "delivered"}))
                .await;
            assert_eq!(ack["removed"], true, "{preset}: {ack}");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn a_two_x_pickup_waits_for_the_driver_and_arrives_as_message_id_and_payload() {
    let app = spawn_app_with_args(&["--preset", "caps-v2"]).await;
    let vendor = SocketClient::connect_to(&app.url, "/", None).await;
    let ack = vendor
        .call(
            "pickup",
            from_sender("acme-widgets", order("acme-widgets", "o-p")),
        )
        .await;
    assert_eq!(ack["queue"], "driver", "{ack}");
    let mut driver = SocketClient::connect_to(&app.url, "/", None).await;
    driver
        .emit(
            "subscribe",
            json!({"event": "pickup", "clientID": "driver"}),
        )
        .await;
    driver
        .emit("getall", json!({"clientID": "driver", "event": "pickup"}))
        .await;
    let pickup = driver.take("pickup", 1).await.remove(0);
    assert_eq!(pickup["payload"], order("acme-widgets", "o-p"));
    assert!(pickup["messageID"].is_string(), "{pickup}");
    app.stop().await;
}

/// Starts the real binary with `preset` on a free port, its store in `dir`.
fn start_preset(preset: &str, dir: &std::path::Path) -> ServerProcess {
    let dir = dir.to_str().expect("utf-8 path");
    let args = [
        "--preset",
        preset,
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir,
    ];
    ServerProcess::start_with(&args, &[], 1, None)
}

#[tokio::test]
async fn a_two_x_delivery_survives_a_restart_before_the_store_connects() {
    let (_dir, path) = data_dir();
    let server = start_preset("caps-v2", &path);
    let api = SocketClient::connect_to(&server.url, "/", None).await;
    let ack = api
        .call(
            "delivered",
            from_sender("api", json!({"store": "flowers", "code": "r-1"})),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    server.kill_9();

    let server = start_preset("caps-v2", &path);
    let mut vendor = SocketClient::connect_to(&server.url, "/", None).await;
    let ack = vendor
        .call(
            "getall",
            json!({"clientID": "flowers", "payload": "delivered"}),
        )
        .await;
    assert_eq!(ack["count"], 1, "{ack}");
    assert_eq!(
        vendor.take("delivered", 1).await[0]["payload"]["code"],
        "r-1"
    );
}

// ---- the socket.io-4 message-queue demo (`message-queue`) ----

fn note(id: i64, text: &str) -> Value {
    json!({"messageId": id, "text": text, "clientId": "client2"})
}

#[tokio::test]
async fn the_message_queue_demo_delivers_the_senders_object_as_messages_and_acks_it() {
    let app = spawn_app_with_args(&["--preset", "message-queue"]).await;
    let mut receiver = SocketClient::connect_to(&app.url, "/messages", None).await;
    let sender = SocketClient::connect_to(&app.url, "/messages", None).await;
    let ack = receiver
        .call("get-messages", json!({"clientId": "client2"}))
        .await;
    assert_eq!(ack["count"], 0, "{ack}");

    let ack = sender.call("message", note(1, "hello")).await;
    assert_eq!(
        (ack["queue"].clone(), ack["id"].clone()),
        (json!("client2"), json!("1")),
        "{ack}"
    );
    let got = receiver.take("messages", 1).await.remove(0);
    assert_eq!(
        got,
        note(1, "hello"),
        "the argument is the sender's own object"
    );

    let ack = receiver.call("received", got).await;
    assert_eq!(ack["removed"], true, "{ack}");
    assert_eq!(app.pending("client2", "client2").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn the_message_queue_demo_catches_up_once_per_lab_id() {
    let app = spawn_app_with_args(&["--preset", "message-queue"]).await;
    let sender = SocketClient::connect_to(&app.url, "/messages", None).await;
    for message in [note(1, "first"), note(1, "first"), note(2, "second")] {
        assert_eq!(sender.call("message", message).await["ok"], true);
    }
    let (_, queue) = app.get("/v1/queues/client2").await;
    assert_eq!(
        queue["waiting"], 2,
        "the same messageId twice is one message: {queue}"
    );

    let mut receiver = SocketClient::connect_to(&app.url, "/messages", None).await;
    let ack = receiver
        .call("get-messages", json!({"clientId": "client2"}))
        .await;
    assert_eq!(ack["count"], 2, "{ack}");
    let got = receiver.take("messages", 2).await;
    assert_eq!(got, vec![note(1, "first"), note(2, "second")]);
    for message in got {
        assert_eq!(receiver.call("received", message).await["removed"], true);
    }
    assert_eq!(app.pending("client2", "client2").await, 0);
    // Once received, the lab may use its id again (its hub forgot it too).
    assert_eq!(sender.call("message", note(1, "again")).await["ok"], true);
    assert_eq!(receiver.take("messages", 1).await[0], note(1, "again"));
    app.stop().await;
}

#[tokio::test]
async fn a_demo_message_survives_a_restart_before_the_receiver_asks() {
    let (_dir, path) = data_dir();
    let server = start_preset("message-queue", &path);
    let sender = SocketClient::connect_to(&server.url, "/messages", None).await;
    assert_eq!(sender.call("message", note(5, "kept")).await["ok"], true);
    server.kill_9();

    let server = start_preset("message-queue", &path);
    let mut receiver = SocketClient::connect_to(&server.url, "/messages", None).await;
    let ack = receiver
        .call("get-messages", json!({"clientId": "client2"}))
        .await;
    assert_eq!(ack["count"], 1, "{ack}");
    let got = receiver.take("messages", 1).await.remove(0);
    assert_eq!(got, note(5, "kept"));
    assert_eq!(receiver.call("received", got).await["removed"], true);
}

// ---- the socket.io-4 CAPS lab with rooms (`caps-rooms`) ----

/// Connects to /caps and joins `store`'s room as the lab does (`join {storeName}`).
async fn join_room(url: &str, store: &str) -> SocketClient {
    let socket = SocketClient::connect_to(url, "/caps", None).await;
    let ack = socket.call("join", json!({"storeName": store})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    socket
}

/// Nothing but what `allowed` names arrives at `socket` for a moment.
async fn hears_nothing(socket: &mut SocketClient, who: &str) {
    let got = socket.drain(Duration::from_millis(300)).await;
    assert!(got.is_empty(), "{who} got {got:?}");
}

#[tokio::test]
async fn in_a_room_pickup_and_delivered_go_to_the_others_and_join_is_relayed() {
    let app = spawn_app_with_args(&["--preset", "caps-rooms"]).await;
    let mut driver = join_room(&app.url, "acme-widgets").await;
    let mut vendor = join_room(&app.url, "acme-widgets").await;
    let joined = driver.take("join", 1).await.remove(0);
    assert_eq!(joined, json!({"storeName": "acme-widgets"}));
    let mut elsewhere = join_room(&app.url, "1-800-flowers").await;

    let order = order("acme-widgets", "r-1");
    assert_eq!(vendor.call("pickup", order.clone()).await["ok"], true);
    assert_eq!(
        driver.take("pickup", 1).await.remove(0),
        order,
        "the order itself"
    );
    let ack = driver.call("in-transit", order.clone()).await;
    assert_eq!(ack["ok"], true, "in-transit is accepted: {ack}");
    assert_eq!(driver.call("delivered", order.clone()).await["ok"], true);
    assert_eq!(vendor.take("delivered", 1).await.remove(0), order);

    hears_nothing(&mut vendor, "the vendor (its own pickup, in-transit)").await;
    hears_nothing(&mut driver, "the driver (its own delivered)").await;
    hears_nothing(&mut elsewhere, "another store's room").await;
    assert_eq!(
        app.pending("acme-widgets", "acme-widgets").await,
        0,
        "sent is received"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_pickup_made_while_no_driver_was_in_the_room_waits_for_the_next_one() {
    let app = spawn_app_with_args(&["--preset", "caps-rooms"]).await;
    let mut vendor = join_room(&app.url, "acme-widgets").await;
    let order = order("acme-widgets", "r-2");
    assert_eq!(vendor.call("pickup", order.clone()).await["ok"], true);
    assert_eq!(app.pending("acme-widgets", "acme-widgets").await, 1);

    let mut driver = join_room(&app.url, "acme-widgets").await;
    assert_eq!(driver.take("pickup", 1).await.remove(0), order);
    assert_eq!(
        vendor.take("join", 1).await.len(),
        1,
        "the vendor hears the driver join"
    );
    hears_nothing(&mut vendor, "the vendor").await;
    assert_eq!(app.pending("acme-widgets", "acme-widgets").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_room_pickup_survives_a_restart_before_the_driver_joins() {
    let (_dir, path) = data_dir();
    let server = start_preset("caps-rooms", &path);
    let vendor = join_room(&server.url, "flowers").await;
    let order = order("flowers", "r-3");
    assert_eq!(vendor.call("pickup", order.clone()).await["ok"], true);
    server.kill_9();

    let server = start_preset("caps-rooms", &path);
    let mut driver = join_room(&server.url, "flowers").await;
    assert_eq!(driver.take("pickup", 1).await.remove(0), order);
}

// ---- under every preset ----

#[tokio::test]
async fn the_dashboard_works_under_every_built_in_preset() {
    for preset in queuehub::compat::builtin_names() {
        let app = spawn_app_with_args(&["--preset", preset]).await;
        let mut dashboard = SocketClient::connect_to(&app.url, "/dashboard", None).await;
        assert_eq!(dashboard.next().await.event, "snapshot", "{preset}");
        let id = app.publish("lab-queue", "delivered", json!({"n": 1})).await["id"].clone();
        loop {
            let received = dashboard.next().await;
            if received.event == "activity" && received.data["id"] == id {
                assert_eq!(received.data["kind"], "published", "{preset}");
                break;
            }
        }
        app.stop().await;
    }
}
