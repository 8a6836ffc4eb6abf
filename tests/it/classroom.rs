//! The classroom preset (`--preset caps`): the CAPS lab's events, fields and routes, over
//! real socket.io clients and real HTTP.

use serde_json::{Value, json};

use crate::helpers::{Http, SocketClient, spawn_app_with_args};

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
