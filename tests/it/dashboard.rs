//! The `/dashboard` namespace and page: a full snapshot at connect, then activity and deltas
//! (only the queues that changed) as messages flow, and no work at all without a dashboard.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Http, SocketClient, WAIT, spawn_app, unique};

/// What a dashboard shows: the first snapshot with every delta merged in, as the page does.
#[derive(Default)]
struct View {
    queues: BTreeMap<String, Value>,
}

impl View {
    /// Applies a `snapshot` or `snapshot:delta` (and ignores any other event).
    fn apply(&mut self, event: &str, data: &Value) {
        let queues = data["queues"].as_array().cloned().unwrap_or_default();
        match event {
            "snapshot" => self.queues.clear(),
            "snapshot:delta" => {
                for gone in data["removed"].as_array().into_iter().flatten() {
                    self.queues.remove(gone.as_str().unwrap_or_default());
                }
            }
            _ => return,
        }
        for queue in queues {
            let name = queue["queue"].as_str().unwrap_or_default().to_owned();
            self.queues.insert(name, queue);
        }
    }

    /// The subscriber `client` of `queue`.
    fn subscriber(&self, queue: &str, client: &str) -> Option<&Value> {
        self.queues.get(queue)?["subscribers"]
            .as_array()?
            .iter()
            .find(|s| s["clientId"] == client)
    }

    fn pending(&self, queue: &str, client: &str) -> Option<u64> {
        self.subscriber(queue, client)?["pending"].as_u64()
    }
}

/// Reads events until the merged view satisfies `check` (it may already); returns the
/// activity seen on the way.
async fn until_view(
    dashboard: &mut SocketClient,
    view: &mut View,
    check: impl Fn(&View) -> bool,
) -> Vec<Value> {
    let mut activity = Vec::new();
    while !check(view) {
        let received = dashboard.next().await;
        if received.event == "activity" {
            activity.push(received.data);
        } else {
            view.apply(&received.event, &received.data);
        }
    }
    activity
}

#[tokio::test]
async fn the_dashboard_sees_publishes_and_acks_as_they_happen() {
    let app = spawn_app().await;
    let (queue, client) = (unique("orders"), unique("acme"));
    let mut dashboard = SocketClient::connect_to(&app.url, "/dashboard", None).await;
    let first = dashboard.next().await;
    assert_eq!(first.event, "snapshot");
    assert!(first.data["queues"].is_array());
    let mut view = View::default();
    view.apply(&first.event, &first.data);

    let mut worker = SocketClient::connect(&app.url).await;
    worker.subscribe(&client, &queue).await;
    let id = app.publish(&queue, "delivered", json!({"n": 1})).await["id"].clone();
    let activity = until_view(&mut dashboard, &mut view, |v| {
        v.pending(&queue, &client) == Some(1)
    })
    .await;
    assert!(
        activity
            .iter()
            .any(|a| a["kind"] == "published" && a["id"] == id),
        "the publish shows as activity: {activity:?}"
    );
    until_view(&mut dashboard, &mut view, |v| {
        v.subscriber(&queue, &client)
            .is_some_and(|sub| sub["connected"] == true)
    })
    .await;

    worker.take("delivered", 1).await;
    worker.ack(&client, &id).await;
    let activity = until_view(&mut dashboard, &mut view, |v| {
        v.pending(&queue, &client) == Some(0)
    })
    .await;
    assert!(
        activity
            .iter()
            .any(|a| a["kind"] == "acked" && a["queues"] == json!([queue])),
        "{activity:?}"
    );

    // A socket that subscribed as a client is named when it goes away.
    worker.disconnect().await;
    let activity = until_view(&mut dashboard, &mut view, |v| {
        v.subscriber(&queue, &client)
            .is_some_and(|sub| sub["connected"] == false)
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

/// Publishes one message to each of `queues`, 1000 to a batch.
async fn one_message_each(app: &crate::helpers::TestApp, queues: &[String]) {
    for chunk in queues.chunks(1000) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|q| json!({"queue": q, "event": "idle", "payload": null}))
            .collect();
        let (status, body) = app.post("/v1/messages", json!(batch)).await;
        assert_eq!(status, 201, "{body}");
    }
}

#[tokio::test]
async fn without_a_dashboard_the_feed_does_no_work_at_all() {
    let app = spawn_app().await;
    let queues: Vec<String> = (0..50).map(|n| unique(&format!("q{n}"))).collect();
    one_message_each(&app, &queues).await;
    let subscriber = SocketClient::connect(&app.url).await;
    subscriber.subscribe(&unique("c"), &queues[0]).await;
    let feed = &app.dashboard;
    assert_eq!(feed.activity_watchers(), 0, "nobody follows the activity");
    assert_eq!(
        (
            feed.wakeups(),
            feed.snapshots(),
            feed.deltas(),
            feed.queue_details()
        ),
        (0, 0, 0, 0),
        "the feed never woke"
    );

    // A dashboard comes and goes; then the feed is asleep again.
    let mut dashboard = SocketClient::connect_to(&app.url, "/dashboard", None).await;
    assert_eq!(dashboard.next().await.event, "snapshot");
    assert_eq!(feed.activity_watchers(), 1);
    dashboard.disconnect().await;
    for _ in 0..100 {
        if feed.activity_watchers() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(feed.activity_watchers(), 0, "the feed stopped following");
    let before = (feed.wakeups(), feed.snapshots(), feed.deltas());
    one_message_each(&app, &queues).await;
    subscriber.disconnect().await;
    assert_eq!(
        (feed.wakeups(), feed.snapshots(), feed.deltas()),
        before,
        "publishes and sockets do not wake a feed without dashboards"
    );
    app.stop().await;
}

#[tokio::test]
async fn with_many_idle_queues_a_dashboard_gets_them_once_then_only_what_changed() {
    const IDLE: usize = 2000;
    let app = spawn_app().await;
    let queues: Vec<String> = (0..IDLE).map(|n| unique(&format!("idle{n}"))).collect();
    one_message_each(&app, &queues).await;
    let mut dashboard = SocketClient::connect_to(&app.url, "/dashboard", None).await;
    let first = dashboard.next().await;
    assert_eq!(first.event, "snapshot");
    assert_eq!(first.data["queues"].as_array().map(Vec::len), Some(IDLE));
    let read_for_snapshot = app.dashboard.queue_details();
    assert_eq!(read_for_snapshot, IDLE as u64);

    let touched = &queues[7];
    app.publish(touched, "tick", json!(1)).await;
    let delta = loop {
        let received = tokio::time::timeout(WAIT, dashboard.next())
            .await
            .expect("a delta in time");
        match received.event.as_str() {
            "activity" => continue,
            "snapshot:delta" => break received.data,
            other => panic!("unexpected {other}: {:?}", received.data),
        }
    };
    let names: Vec<&str> = delta["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .filter_map(|q| q["queue"].as_str())
        .collect();
    assert_eq!(names, [touched.as_str()], "only the touched queue: {delta}");
    assert_eq!(delta["queues"][0]["waiting"], 2, "{delta}");
    assert_eq!(delta["removed"], json!([]));
    assert_eq!(delta["storedMessages"], IDLE + 1);
    assert_eq!(
        app.dashboard.queue_details() - read_for_snapshot,
        1,
        "the delta read one queue, not {IDLE}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_page_is_served_without_a_build_step() {
    let app = spawn_app().await;
    for (path, kind) in [
        ("/dashboard", "text/html"),
        ("/dashboard/dashboard.js", "text/javascript"),
        ("/dashboard/dashboard.css", "text/css"),
        ("/dashboard/vendor/socket.io.min.js", "text/javascript"),
        ("/dashboard/vendor/socket.io-client.LICENSE", "text/plain"),
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

/// The page loads the official socket.io browser client that is vendored in
/// `assets/dashboard/vendor/` (the version its README names), with its MIT license beside it;
/// the hand-written client it replaced is gone.
#[tokio::test]
async fn the_dashboard_serves_the_vendored_official_socket_io_client() {
    let app = spawn_app().await;
    let get = |path: &str| reqwest::get(format!("{}{path}", app.url));
    let page = get("/dashboard").await.unwrap().text().await.unwrap();
    assert!(
        page.contains(r#"<script src="/dashboard/vendor/socket.io.min.js"></script>"#),
        "{page}"
    );
    let readme = include_str!("../../assets/dashboard/vendor/README.md");
    let version = readme
        .lines()
        .find_map(|line| line.strip_prefix("- version: "))
        .expect("the vendor README names the version")
        .trim_matches('`');
    let bundle = get("/dashboard/vendor/socket.io.min.js")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        bundle.starts_with(&format!("/*!\n * Socket.IO v{version}\n")),
        "the served bundle is socket.io-client {version}: {}",
        &bundle[..80.min(bundle.len())]
    );
    assert!(bundle.contains("Released under the MIT License"));
    let license = get("/dashboard/vendor/socket.io-client.LICENSE")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(license.starts_with("The MIT License"), "{license}");
    let old = get("/dashboard/socketio-lite.js").await.unwrap();
    assert_eq!(
        old.status().as_u16(),
        404,
        "the hand-written client is gone"
    );
    app.stop().await;
}
