//! What survives: restarts, kill -9 under concurrent publishes, acks across restarts. These
//! run the real binary as a child process.

use std::sync::Arc;

use serde_json::json;

use crate::helpers::{Http, ServerProcess, SocketClient, data_dir, unique};

/// Reads a client's whole inbox by peeking and acking a page at a time; returns the ids.
async fn drain_inbox(
    server: &ServerProcess,
    queue: &str,
    client: &str,
) -> std::collections::HashSet<String> {
    let mut stored = std::collections::HashSet::new();
    loop {
        let ids = server.inbox_ids(queue, client).await;
        if ids.is_empty() {
            return stored;
        }
        let (status, _) = server
            .post(
                &format!("/v1/queues/{queue}/clients/{client}/acks"),
                json!({"ids": ids}),
            )
            .await;
        assert_eq!(status, 200);
        stored.extend(ids);
    }
}

#[tokio::test]
async fn messages_subscriptions_and_acks_survive_a_restart() {
    let (_dir, path) = data_dir();
    let (queue, client) = (unique("orders"), unique("acme"));
    let server = ServerProcess::start(&path).await;
    let socket = SocketClient::connect(&server.url).await;
    socket.subscribe(&client, &queue).await;
    let acked = server.publish(&queue, "delivered", json!({"n": 1})).await["id"].clone();
    let kept = server.publish(&queue, "delivered", json!({"n": 2})).await["id"].clone();
    assert_eq!(socket.ack(&client, &acked).await["removed"], true);
    let waiting = unique("nobody-yet");
    server.publish(&waiting, "e", json!("waits")).await;
    socket.disconnect().await;
    server.terminate();

    let server = ServerProcess::start(&path).await;
    assert_eq!(
        server.inbox_ids(&queue, &client).await,
        vec![kept.as_str().unwrap().to_owned()]
    );
    let (_, stats) = server.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(
        (stats["published"].clone(), stats["acked"].clone()),
        (json!(2), json!(1))
    );
    let (_, stats) = server.get(&format!("/v1/queues/{waiting}")).await;
    assert_eq!(stats["waiting"], 1);

    let mut socket = SocketClient::connect(&server.url).await;
    socket.subscribe(&client, &queue).await;
    assert_eq!(
        socket.call("getAll", json!({"clientId": client})).await["count"],
        1
    );
    let got = socket.take("delivered", 1).await;
    assert_eq!(got[0]["id"], kept);
    assert_eq!(got[0]["payload"], json!({"n": 2}));
}

#[tokio::test]
async fn a_repeated_id_is_still_recognised_after_a_restart() {
    let (_dir, path) = data_dir();
    let queue = unique("q");
    let server = ServerProcess::start(&path).await;
    let body = json!({"event": "e", "payload": 1, "id": "once"});
    let (_, first) = server
        .post(&format!("/v1/queues/{queue}/messages"), body.clone())
        .await;
    server.terminate();
    let server = ServerProcess::start(&path).await;
    let (status, again) = server
        .post(&format!("/v1/queues/{queue}/messages"), body)
        .await;
    assert_eq!(status, 201);
    assert_eq!(first, again);
    let (_, stats) = server.get(&format!("/v1/queues/{queue}")).await;
    assert_eq!(stats["waiting"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_publish_survives_kill_9_during_concurrent_publishes() {
    let (_dir, path) = data_dir();
    let queue = unique("crash");
    let server = ServerProcess::start(&path).await;
    let url = Arc::new(server.url.clone());
    let http = reqwest::Client::new();

    // Eight publishers publish as fast as they can; each remembers what was answered 201.
    let mut publishers = Vec::new();
    for worker in 0..8 {
        let (url, http, queue) = (Arc::clone(&url), http.clone(), queue.clone());
        publishers.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            for n in 0..100_000 {
                let result = http
                    .post(format!("{url}/v1/queues/{queue}/messages"))
                    .json(&json!({"event": "e", "payload": {"worker": worker, "n": n}}))
                    .send()
                    .await;
                let Ok(response) = result else { break };
                if response.status().as_u16() != 201 {
                    break;
                }
                let Ok(body) = response.json::<serde_json::Value>().await else {
                    break;
                };
                answered.push(body["id"].as_str().unwrap().to_owned());
            }
            answered
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    server.kill_9();
    let mut answered = Vec::new();
    for publisher in publishers {
        answered.extend(publisher.await.unwrap());
    }
    assert!(
        answered.len() > 100,
        "the load was real: {} publishes answered",
        answered.len()
    );

    let server = ServerProcess::start(&path).await;
    let (_, stats) = server.get(&format!("/v1/queues/{queue}")).await;
    let waiting = stats["waiting"].as_u64().unwrap() as usize;
    assert!(
        waiting >= answered.len(),
        "{waiting} stored < {} answered",
        answered.len()
    );

    // Every answered id is there: take them all into one inbox and read it back.
    let client = unique("auditor");
    let socket = SocketClient::connect(&server.url).await;
    socket.subscribe(&client, &queue).await;
    let stored = drain_inbox(&server, &queue, &client).await;
    let lost: Vec<&String> = answered.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} answered publishes lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_under_mixed_load_answered_publishes_survive_and_answered_acks_stay_acked() {
    use std::collections::HashSet;
    use std::sync::Mutex;

    let (_dir, path) = data_dir();
    let (queue, client) = (unique("mixed"), unique("c"));
    let server = ServerProcess::start(&path).await;
    let url = Arc::new(server.url.clone());
    let subscriber = SocketClient::connect(&server.url).await;
    subscriber.subscribe(&client, &queue).await;
    let http = reqwest::Client::new();
    let published = Arc::new(Mutex::new(Vec::<String>::new()));
    let acked = Arc::new(Mutex::new(HashSet::<String>::new()));
    // Ids sent in an ack whose answer may not have arrived: the crash can come after the
    // commit and before the answer, so these may rightly be gone.
    let ack_sent = Arc::new(Mutex::new(HashSet::<String>::new()));

    let mut tasks = Vec::new();
    for worker in 0..4 {
        let (url, http, queue, published) = (
            Arc::clone(&url),
            http.clone(),
            queue.clone(),
            Arc::clone(&published),
        );
        tasks.push(tokio::spawn(async move {
            for n in 0..100_000 {
                let Ok(response) = http
                    .post(format!("{url}/v1/queues/{queue}/messages"))
                    .json(&json!({"event": "e", "payload": {"worker": worker, "n": n}}))
                    .send()
                    .await
                else {
                    return;
                };
                let Ok(body) = response.json::<serde_json::Value>().await else {
                    return;
                };
                let Some(id) = body["id"].as_str() else {
                    return;
                };
                published.lock().unwrap().push(id.to_owned());
            }
        }));
    }
    // An acker: peeks and acks over HTTP, remembering every ack that was answered.
    {
        let (url, http, queue, client, acked, ack_sent) = (
            Arc::clone(&url),
            http.clone(),
            queue.clone(),
            client.clone(),
            Arc::clone(&acked),
            Arc::clone(&ack_sent),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok(response) = http
                    .get(format!(
                        "{url}/v1/queues/{queue}/clients/{client}/messages?limit=50"
                    ))
                    .send()
                    .await
                else {
                    return;
                };
                let Ok(page) = response.json::<serde_json::Value>().await else {
                    return;
                };
                let ids: Vec<serde_json::Value> = page["messages"]
                    .as_array()
                    .map(|m| m.iter().map(|e| e["id"].clone()).collect())
                    .unwrap_or_default();
                ack_sent
                    .lock()
                    .unwrap()
                    .extend(ids.iter().filter_map(|id| id.as_str().map(str::to_owned)));
                let Ok(response) = http
                    .post(format!("{url}/v1/queues/{queue}/clients/{client}/acks"))
                    .json(&json!({"ids": ids}))
                    .send()
                    .await
                else {
                    return;
                };
                let Ok(answer) = response.json::<serde_json::Value>().await else {
                    return;
                };
                for result in answer["results"].as_array().into_iter().flatten() {
                    if result["removed"] == true {
                        acked
                            .lock()
                            .unwrap()
                            .insert(result["id"].as_str().unwrap().to_owned());
                    }
                }
            }
        }));
    }
    // Catch-ups running at the same time.
    let catch_ups = {
        let client = client.clone();
        tokio::spawn(async move {
            for _ in 0..1000 {
                subscriber
                    .emit("getAll", json!({"clientId": client, "limit": 100}))
                    .await;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    server.kill_9();
    for task in tasks {
        let _ = task.await;
    }
    catch_ups.abort();
    let published = published.lock().unwrap().clone();
    let acked = acked.lock().unwrap().clone();
    let ack_sent = ack_sent.lock().unwrap().clone();
    assert!(
        published.len() > 100 && !acked.is_empty(),
        "real load: {} published, {} acked",
        published.len(),
        acked.len()
    );

    let server = ServerProcess::start(&path).await;
    let stored = drain_inbox(&server, &queue, &client).await;
    let back: Vec<&String> = acked.iter().filter(|id| stored.contains(*id)).collect();
    assert!(
        back.is_empty(),
        "{} acked messages came back, e.g. {:?}",
        back.len(),
        back.first()
    );
    let lost: Vec<&String> = published
        .iter()
        .filter(|id| !stored.contains(*id) && !ack_sent.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} answered publishes lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
}
