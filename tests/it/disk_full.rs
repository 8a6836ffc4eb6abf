//! A full disk: writes are refused with `storage_full` (507) and change nothing, what was
//! answered before stays, reads keep working, and queuehub recovers by itself when space
//! returns. The disk is "filled" by lowering the real binary's file-size limit to the size of
//! its store file, so that growing the file fails with EFBIG exactly as a full disk fails with
//! ENOSPC.

use serde_json::{Value, json};

use crate::helpers::{Http, ServerProcess, SocketClient, WAIT, data_dir, unique};

/// Publishes are this big so that a few of them must grow the store file.
fn big_payload(n: usize) -> Value {
    json!({ "n": n, "filler": "x".repeat(200_000) })
}

async fn publish_with_id(server: &ServerProcess, queue: &str, id: &str, n: usize) -> (u16, Value) {
    server
        .post(
            &format!("/v1/queues/{queue}/messages"),
            json!({ "id": id, "event": "filled", "payload": big_payload(n) }),
        )
        .await
}

#[tokio::test]
async fn a_full_disk_refuses_writes_with_507_keeps_what_was_answered_and_recovers() {
    let (_dir, path) = data_dir();
    let (queue, client) = (unique("orders"), unique("acme"));
    let server = ServerProcess::start_with_fillable_disk(&path).await;
    let socket = SocketClient::connect(&server.url).await;
    socket.subscribe(&client, &queue).await;

    let mut answered = Vec::new();
    for n in 0..3 {
        let id = format!("before-{n}");
        let (status, body) = publish_with_id(&server, &queue, &id, n).await;
        assert_eq!(status, 201, "{body}");
        answered.push(id);
    }
    let first = Value::String(answered[0].clone());

    // Fill the disk: the store file may not grow any more.
    let size = std::fs::metadata(path.join("queuehub.redb")).unwrap().len();
    server.limit_file_size(Some(size));
    // The file may still have free pages, so some publishes can still fit; within 50 of 200 KB
    // it must have had to grow.
    let mut refused = false;
    for n in 0..50 {
        let id = format!("during-{n}");
        let (status, body) = publish_with_id(&server, &queue, &id, n).await;
        match status {
            201 => answered.push(id),
            507 => {
                assert_eq!(body["error"]["code"], "storage_full", "{body}");
                refused = true;
                break;
            }
            other => panic!("publish on a full disk answered {other}: {body}"),
        }
    }
    assert!(refused, "the disk never filled up");

    // While it is full, every write is refused the same way, on both transports, and the
    // server keeps serving reads and keeps its sockets.
    for n in 0..3 {
        let id = format!("still-full-{n}");
        let (status, body) = publish_with_id(&server, &queue, &id, n).await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (507, json!("storage_full"))
        );
    }
    let reply = socket
        .call(
            "publish",
            json!({"queue": queue, "event": "filled", "id": "by-socket", "payload": big_payload(0)}),
        )
        .await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["code"], "storage_full", "{reply}");
    // An ack frees space, so it may still fit; if not, it is refused the same way.
    let reply = socket.ack(&client, &first).await;
    let acked_while_full = reply["ok"] == true;
    if acked_while_full {
        assert_eq!(reply["removed"], true, "{reply}");
    } else {
        assert_eq!(reply["error"]["code"], "storage_full", "{reply}");
    }
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);

    // Space returns: queuehub takes writes again without a restart.
    server.limit_file_size(None);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = publish_with_id(&server, &queue, "after", 0).await;
        if status == 201 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recovery: {status} {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    answered.push("after".to_owned());
    let reply = socket.ack(&client, &first).await;
    assert_eq!(reply["removed"], !acked_while_full, "acked once: {reply}");
    answered.remove(0);

    // Exactly the answered publishes are stored, in order; nothing refused was half-written,
    // and that is still true after a crash.
    assert_eq!(server.inbox_ids(&queue, &client).await, answered);
    server.kill_9();
    let server = ServerProcess::start(&path).await;
    assert_eq!(server.inbox_ids(&queue, &client).await, answered);
    let (_, stats) = server.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["published"], answered.len() + 1, "{stats}");
    assert_eq!(stats["acked"], 1, "{stats}");
}
