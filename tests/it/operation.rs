//! Running queuehub: configuration from the environment, several listen addresses, memory
//! mode, graceful shutdown.

use serde_json::json;

use crate::helpers::{Http, ServerProcess, SocketClient, data_dir, unique};

#[tokio::test]
async fn queuehub_environment_variables_configure_it_and_every_address_serves_everything() {
    let (_dir, path) = data_dir();
    let server = ServerProcess::start_with(
        &[],
        &[
            ("QUEUEHUB_LISTEN", "127.0.0.1:0,127.0.0.1:0"),
            ("QUEUEHUB_DATA_DIR", path.to_str().unwrap()),
        ],
        2,
        None,
    );
    assert_eq!(server.urls.len(), 2);
    assert_ne!(server.urls[0], server.urls[1]);
    let (queue, client) = (unique("q"), unique("c"));
    // Subscribe through the second address, publish through the first.
    let mut socket = SocketClient::connect(&server.urls[1]).await;
    socket.subscribe(&client, &queue).await;
    let receipt = server.publish(&queue, "e", json!(1)).await;
    assert_eq!(socket.take("e", 1).await[0]["id"], receipt["id"]);
    for url in &server.urls {
        let status = reqwest::get(format!("{url}/healthz"))
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200);
    }
    assert!(
        path.join("queuehub.redb").exists(),
        "the store is in QUEUEHUB_DATA_DIR"
    );
    server.terminate();
}

#[tokio::test]
async fn memory_mode_writes_nothing_and_forgets_on_restart() {
    // Run where the default data dir would be created, and check that it is not.
    let cwd = tempfile::tempdir().unwrap();
    let args = ["--memory", "--listen", "127.0.0.1:0"];
    let server = ServerProcess::start_with(&args, &[], 1, Some(cwd.path()));
    let queue = unique("q");
    server.publish(&queue, "e", json!(1)).await;
    let (status, _) = server.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(status, 200);
    server.terminate();
    let written: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(written.is_empty(), "memory mode wrote {written:?}");

    let server = ServerProcess::start_with(&args, &[], 1, Some(cwd.path()));
    let (status, _) = server.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(status, 404, "memory mode keeps nothing across restarts");
}

#[tokio::test]
async fn sigterm_closes_sockets_and_exits_cleanly() {
    let (_dir, path) = data_dir();
    let server = ServerProcess::start(&path).await;
    let socket = SocketClient::connect(&server.url).await;
    socket.subscribe(&unique("c"), &unique("q")).await;
    // terminate() asserts a zero exit status after SIGTERM, with a socket still connected.
    server.terminate();
}

#[tokio::test]
async fn metrics_are_in_prometheus_text_format() {
    let (_dir, path) = data_dir();
    let server = ServerProcess::start(&path).await;
    let queue = unique("q");
    server.publish(&queue, "e", json!(1)).await;
    let text = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(&format!(
            "queuehub_messages_published_total{{queue=\"{queue}\"}} 1"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("queuehub_waiting{{queue=\"{queue}\"}} 1")),
        "{text}"
    );
    assert!(text.contains("# TYPE queuehub_stored_messages gauge"));
}
