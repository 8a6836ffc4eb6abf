//! The `/dashboard` namespace and page: a snapshot at connect, then activity and fresh
//! snapshots as messages flow.

use serde_json::{Value, json};

use crate::helpers::{Http, SocketClient, spawn_app, unique};

/// The subscriber `client` of `queue` as the snapshot shows it.
fn subscriber<'a>(snapshot: &'a Value, queue: &str, client: &str) -> Option<&'a Value> {
    snapshot["queues"]
        .as_array()?
        .iter()
        .find(|q| q["queue"] == queue)?["subscribers"]
        .as_array()?
        .iter()
        .find(|s| s["clientId"] == client)
}

fn pending_of(snapshot: &Value, queue: &str, client: &str) -> Option<u64> {
    subscriber(snapshot, queue, client)?["pending"].as_u64()
}

/// Reads events until a snapshot satisfies `check`; returns the activity seen on the way.
async fn until_snapshot(
    dashboard: &mut SocketClient,
    check: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut activity = Vec::new();
    loop {
        let received = dashboard.next().await;
        match received.event.as_str() {
            "snapshot" if check(&received.data) => return activity,
            "activity" => activity.push(received.data),
            _ => {}
        }
    }
}

#[tokio::test]
async fn the_dashboard_sees_publishes_and_acks_as_they_happen() {
    let app = spawn_app().await;
    let (queue, client) = (unique("orders"), unique("acme"));
    let mut dashboard = SocketClient::connect_to(&app.url, "/dashboard", None).await;
    let first = dashboard.next().await;
    assert_eq!(first.event, "snapshot");
    assert!(first.data["queues"].is_array());

    let mut worker = SocketClient::connect(&app.url).await;
    worker.subscribe(&client, &queue).await;
    let id = app.publish(&queue, "delivered", json!({"n": 1})).await["id"].clone();
    let activity = until_snapshot(&mut dashboard, |s| {
        pending_of(s, &queue, &client) == Some(1)
    })
    .await;
    assert!(
        activity
            .iter()
            .any(|a| a["kind"] == "published" && a["id"] == id),
        "the publish shows as activity: {activity:?}"
    );
    let online = until_snapshot(&mut dashboard, |s| {
        subscriber(s, &queue, &client).is_some_and(|sub| sub["connected"] == true)
    });
    // The last snapshot already shows the subscriber; the next one (after any change) too.
    app.publish(&unique("other"), "tick", json!(0)).await;
    online.await;

    worker.take("delivered", 1).await;
    worker.ack(&client, &id).await;
    let activity = until_snapshot(&mut dashboard, |s| {
        pending_of(s, &queue, &client) == Some(0)
    })
    .await;
    assert!(
        activity.iter().any(|a| a["kind"] == "acked"),
        "{activity:?}"
    );

    // A socket that subscribed as a client is named when it goes away.
    worker.disconnect().await;
    let activity = until_snapshot(&mut dashboard, |s| {
        subscriber(s, &queue, &client).is_some_and(|sub| sub["connected"] == false)
    })
    .await;
    assert!(
        activity
            .iter()
            .any(|a| a["kind"] == "disconnected" && a["client"] == client.as_str()),
        "{activity:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_page_is_served_without_a_build_step() {
    let app = spawn_app().await;
    for (path, kind) in [
        ("/dashboard", "text/html"),
        ("/dashboard/dashboard.js", "text/javascript"),
        ("/dashboard/socketio-lite.js", "text/javascript"),
        ("/dashboard/dashboard.css", "text/css"),
    ] {
        let response = reqwest::get(format!("{}{path}", app.url)).await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
    }
    app.stop().await;
}
