//! The store contract, checked against every engine: what is committed is what loads, deletes
//! remove, missing payloads read as `None`, and (for the embedded engine) commits survive
//! reopening.

use super::embedded::EmbeddedStore;
use super::memory::MemoryStore;
use super::*;

fn name<T: TryFrom<String>>(raw: &str) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(raw.to_owned()).unwrap()
}

fn message(seq: u64, queue: &str) -> StoredMessage {
    StoredMessage {
        meta: MessageMeta {
            seq,
            id: name(&format!("m{seq}")),
            queue: name(queue),
            event: name("delivered"),
            published_at_ms: 1_000 + seq,
            source: "http".into(),
            deliver_at_ms: None,
            expires_at_ms: Some(99_999),
        },
        payload: format!("{{\"n\":{seq}}}"),
    }
}

fn inbox(client: &str, queue: &str, seq: u64) -> Op {
    Op::AddToInbox {
        client: name(client),
        queue: name(queue),
        seq,
    }
}

async fn committed_state_loads_back(store: &dyn Store) {
    store
        .commit(vec![
            Op::PutMessage(message(1, "orders")),
            Op::PutMessage(message(2, "orders")),
            Op::PutMessage(message(3, "empty")),
            Op::PutSubscription {
                client: name("acme"),
                queue: name("orders"),
                record: SubscriptionRecord::default(),
            },
            inbox("acme", "orders", 1),
            inbox("acme", "orders", 2),
            Op::SetAttempts {
                client: name("acme"),
                queue: name("orders"),
                seq: 1,
                attempts: 3,
            },
            Op::AddWaiting {
                queue: name("empty"),
                seq: 3,
            },
            Op::PutReceipt(Receipt {
                id: name("m1"),
                queue: name("orders"),
                event: name("delivered"),
                published_at_ms: 1001,
                recipients: 1,
                deliver_at_ms: None,
            }),
            Op::PutCounters {
                queue: name("orders"),
                counters: Counters {
                    published: 2,
                    acked: 0,
                    expired: 0,
                    rejected: 3,
                    dead_lettered: 0,
                },
            },
        ])
        .await
        .unwrap();
    let snapshot = store.load().await.unwrap();
    assert_eq!(snapshot.messages.len(), 3);
    assert_eq!(snapshot.messages[0], message(1, "orders").meta);
    assert_eq!(snapshot.inbox.len(), 2);
    assert_eq!(
        snapshot.attempts,
        vec![(name("acme"), name("orders"), 1, 3)]
    );
    assert_eq!(snapshot.waiting, vec![(name("empty"), 3)]);
    assert_eq!(snapshot.subscriptions.len(), 1);
    assert_eq!(snapshot.receipts.len(), 1);
    assert_eq!(snapshot.counters[0].1.published, 2);
    let payloads = store.payloads(vec![2, 1, 99]).await.unwrap();
    assert_eq!(
        payloads,
        vec![Some("{\"n\":2}".into()), Some("{\"n\":1}".into()), None]
    );
}

async fn deletes_remove_and_missing_removes_are_harmless(store: &dyn Store) {
    store
        .commit(vec![
            Op::RemoveFromInbox {
                client: name("acme"),
                queue: name("orders"),
                seq: 1,
            },
            Op::DeleteMessage(1),
            Op::DeleteMessage(12345),
            Op::RemoveWaiting {
                queue: name("empty"),
                seq: 3,
            },
            Op::DeleteSubscription {
                client: name("nobody"),
                queue: name("orders"),
            },
            Op::DeleteReceipt {
                queue: name("orders"),
                id: name("m1"),
            },
        ])
        .await
        .unwrap();
    let snapshot = store.load().await.unwrap();
    assert_eq!(snapshot.messages.len(), 2);
    assert_eq!(snapshot.inbox, vec![(name("acme"), name("orders"), 2)]);
    assert!(
        snapshot.attempts.is_empty(),
        "removing an entry forgets its attempts"
    );
    assert!(snapshot.waiting.is_empty());
    assert!(snapshot.receipts.is_empty());
    assert_eq!(store.payloads(vec![1]).await.unwrap(), vec![None]);
}

/// A name as an older queuehub may have stored it, before `*` and events such as `error`
/// were refused at the edge.
fn old<T: crate::names::StoredName>(raw: &str) -> T {
    T::from_stored(raw.to_owned()).unwrap()
}

async fn names_stored_under_older_rules_still_load(store: &dyn Store) {
    let mut message = message(50, "orders");
    message.meta.queue = old("*");
    message.meta.event = old("error");
    store
        .commit(vec![
            Op::PutMessage(message),
            Op::PutSubscription {
                client: old("*"),
                queue: old("*"),
                record: SubscriptionRecord {
                    events: Some(vec![old("snapshot")]),
                    ..SubscriptionRecord::default()
                },
            },
            Op::AddToInbox {
                client: old("*"),
                queue: old("*"),
                seq: 50,
            },
            Op::PutReceipt(Receipt {
                id: name("m50"),
                queue: old("*"),
                event: old("error"),
                published_at_ms: 1050,
                recipients: 1,
                deliver_at_ms: None,
            }),
        ])
        .await
        .unwrap();
    let snapshot = store.load().await.expect("an older store still loads");
    let meta = snapshot.messages.iter().find(|m| m.seq == 50).unwrap();
    assert_eq!((meta.queue.as_str(), meta.event.as_str()), ("*", "error"));
    let (_, _, record) = snapshot
        .subscriptions
        .iter()
        .find(|(client, ..)| client.as_str() == "*")
        .unwrap();
    assert_eq!(record.events, Some(vec![old("snapshot")]));
    assert!(
        snapshot
            .receipts
            .iter()
            .any(|r| r.event.as_str() == "error")
    );
}

async fn conformance(store: &dyn Store) {
    committed_state_loads_back(store).await;
    deletes_remove_and_missing_removes_are_harmless(store).await;
    names_stored_under_older_rules_still_load(store).await;
}

#[tokio::test]
async fn memory_store_meets_the_contract() {
    conformance(&MemoryStore::new()).await;
}

#[tokio::test]
async fn embedded_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    conformance(&store).await;
}

#[tokio::test]
async fn embedded_store_keeps_commits_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        committed_state_loads_back(&store).await;
    }
    let reopened = EmbeddedStore::open(dir.path()).unwrap();
    let snapshot = reopened.load().await.unwrap();
    assert_eq!(snapshot.messages.len(), 3);
    assert_eq!(snapshot.inbox.len(), 2);
}

#[tokio::test]
async fn embedded_store_written_under_older_name_rules_reopens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        names_stored_under_older_rules_still_load(&store).await;
    }
    let reopened = EmbeddedStore::open(dir.path()).unwrap();
    let snapshot = reopened.load().await.expect("reopens");
    assert!(
        snapshot
            .messages
            .iter()
            .any(|m| m.event.as_str() == "error")
    );
}
