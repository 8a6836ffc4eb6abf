//! Broker behaviour that needs a store failing on demand: a failed commit changes nothing,
//! is reported as `store_unavailable`, and the broker recovers by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::*;
use crate::names::EventName;
use crate::store::memory::MemoryStore;
use crate::store::{Op, Snapshot, Store, StoreError};

/// A memory store whose commits fail while `failing` is set, and wait while `held` is; it
/// counts the payloads read from it.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    failing: AtomicBool,
    held: AtomicBool,
    read: AtomicUsize,
}

#[async_trait]
impl Store for FlakyStore {
    async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        while self.held.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Failed("the disk went away".into()));
        }
        self.inner.commit(ops).await
    }
    async fn load(&self) -> Result<Snapshot, StoreError> {
        self.inner.load().await
    }
    async fn payloads(&self, seqs: Vec<u64>) -> Result<Vec<Option<String>>, StoreError> {
        self.read.fetch_add(seqs.len(), Ordering::SeqCst);
        self.inner.payloads(seqs).await
    }
    fn engine(&self) -> &'static str {
        "flaky"
    }
}

/// Applies a mutation and waits for its commit: the sync and the async error, as one.
trait CommittedNow<T> {
    async fn committed_now(self) -> Result<T, Error>;
}

impl<T> CommittedNow<T> for Result<Pending<T>, Error> {
    async fn committed_now(self) -> Result<T, Error> {
        self?.committed().await
    }
}

fn message(queue: &QueueName, n: i32) -> NewMessage {
    NewMessage::new(
        queue.clone(),
        EventName::parse("e").unwrap(),
        json!(n),
        SOURCE_HTTP,
    )
}

#[tokio::test]
async fn a_failed_commit_changes_nothing_and_the_broker_recovers() {
    let store = Arc::new(FlakyStore::default());
    let queue = QueueName::parse("orders").unwrap();
    let client = ClientId::parse("acme").unwrap();
    let broker = open_subscribed(store.clone(), BrokerConfig::default(), &client, &queue).await;
    broker
        .publish(vec![message(&queue, 1)])
        .committed_now()
        .await
        .unwrap();

    store.failing.store(true, Ordering::SeqCst);
    let err = broker
        .publish(vec![message(&queue, 2), message(&queue, 3)])
        .committed_now()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "store_unavailable");
    store.failing.store(false, Ordering::SeqCst);

    // The index is rebuilt from the store in the background; then writes work again.
    let mut published = None;
    for _ in 0..100 {
        match broker
            .publish(vec![message(&queue, 4)])
            .committed_now()
            .await
        {
            Ok(p) => {
                published = Some(p);
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), "store_unavailable");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    assert!(published.is_some(), "the broker accepts writes again");
    let summary = &broker.queues()[0];
    assert_eq!(
        summary.pending[&client], 2,
        "messages 1 and 4, not the failed 2 and 3"
    );
    assert_eq!(summary.counters.published, 2);
    let peeked = broker.peek(&queue, &client, 10).await.unwrap();
    let payloads: Vec<_> = peeked.iter().map(|e| e.payload.value()).collect();
    assert_eq!(payloads, vec![json!(1), json!(4)]);
    broker.close().await;
}

#[tokio::test]
async fn after_close_mutations_are_refused_as_shutting_down() {
    let broker = Broker::open(Arc::new(MemoryStore::new()), BrokerConfig::default())
        .await
        .unwrap();
    broker.close().await;
    let queue = QueueName::parse("q").unwrap();
    let err = broker
        .publish(vec![message(&queue, 1)])
        .committed_now()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "shutting_down");
}

#[tokio::test]
async fn a_message_acked_by_every_subscriber_is_deleted_from_the_store() {
    let store = Arc::new(MemoryStore::new());
    let broker = Broker::open(store.clone(), BrokerConfig::default())
        .await
        .unwrap();
    let queue = QueueName::parse("q").unwrap();
    let (a, b) = (ClientId::parse("a").unwrap(), ClientId::parse("b").unwrap());
    for client in [&a, &b] {
        broker
            .subscribe(
                client,
                std::slice::from_ref(&queue),
                SubscriptionRecord::default(),
            )
            .committed_now()
            .await
            .unwrap();
    }
    let id = broker
        .publish(vec![message(&queue, 1)])
        .committed_now()
        .await
        .unwrap()[0]
        .id
        .clone();
    assert_eq!(
        store.load().await.unwrap().messages.len(),
        1,
        "stored once for two inboxes"
    );
    broker
        .ack(&a, None, std::slice::from_ref(&id))
        .committed_now()
        .await
        .unwrap();
    assert_eq!(
        store.load().await.unwrap().messages.len(),
        1,
        "b still references it"
    );
    broker
        .ack(&b, None, std::slice::from_ref(&id))
        .committed_now()
        .await
        .unwrap();
    assert!(
        store.load().await.unwrap().messages.is_empty(),
        "no inbox references it any more"
    );
    broker.close().await;
}

/// A broker on a memory store with client `c` subscribed to queue `q`.
async fn subscribed(config: BrokerConfig) -> (Broker, QueueName, ClientId) {
    let queue = QueueName::parse("q").unwrap();
    let client = ClientId::parse("c").unwrap();
    let broker = open_subscribed(Arc::new(MemoryStore::new()), config, &client, &queue).await;
    (broker, queue, client)
}

/// A broker on `store` with `client` subscribed to `queue`.
async fn open_subscribed(
    store: Arc<dyn Store>,
    config: BrokerConfig,
    client: &ClientId,
    queue: &QueueName,
) -> Broker {
    let broker = Broker::open(store, config).await.unwrap();
    broker
        .subscribe(
            client,
            std::slice::from_ref(queue),
            SubscriptionRecord::default(),
        )
        .committed_now()
        .await
        .unwrap();
    broker
}

async fn publish_with_id(broker: &Broker, queue: &QueueName, id: &str) -> Published {
    let mut m = message(queue, 1);
    m.id = Some(MessageId::parse(id).unwrap());
    broker
        .publish(vec![m])
        .committed_now()
        .await
        .unwrap()
        .remove(0)
}

#[tokio::test]
async fn a_repeated_id_is_recognised_after_the_message_is_acked_within_the_window() {
    let (broker, queue, client) = subscribed(BrokerConfig::default()).await;
    let first = publish_with_id(&broker, &queue, "x").await;
    broker
        .ack(&client, None, std::slice::from_ref(&first.id))
        .committed_now()
        .await
        .unwrap();
    let again = publish_with_id(&broker, &queue, "x").await;
    assert!(again.duplicate);
    assert_eq!(again.published_at, first.published_at);
    assert_eq!(
        broker.queues()[0].pending[&client],
        0,
        "nothing new was stored"
    );
    broker.close().await;
}

#[tokio::test]
async fn after_the_dedupe_window_an_acked_id_is_a_new_message() {
    let config = BrokerConfig {
        dedupe_window: Duration::ZERO,
        ..BrokerConfig::default()
    };
    let (broker, queue, client) = subscribed(config).await;
    let first = publish_with_id(&broker, &queue, "x").await;
    // Still stored: still a duplicate, whatever the window.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(publish_with_id(&broker, &queue, "x").await.duplicate);
    broker
        .ack(&client, None, std::slice::from_ref(&first.id))
        .committed_now()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = publish_with_id(&broker, &queue, "x").await;
    assert!(!again.duplicate);
    assert_eq!(broker.queues()[0].pending[&client], 1);
    broker.close().await;
}

/// The race seen in the classroom: a message waits for a first subscriber, the subscriber
/// takes it (in the index) before the publish's commit is on disk, and its `getAll` right
/// after must still send it (it read as gone, so neither the live push nor the catch-up sent
/// it).
#[tokio::test]
async fn a_catch_up_waits_for_a_message_whose_publish_is_still_being_committed() {
    let store = Arc::new(FlakyStore::default());
    let broker = Broker::open(store.clone(), BrokerConfig::default())
        .await
        .unwrap();
    let queue = QueueName::parse("driver").unwrap();
    let client = ClientId::parse("driver").unwrap();
    store.held.store(true, Ordering::SeqCst);
    let publish = broker.publish(vec![message(&queue, 7)]).unwrap();
    let subscribe = broker
        .subscribe(
            &client,
            std::slice::from_ref(&queue),
            SubscriptionRecord::default(),
        )
        .unwrap();
    let mut catch_up = broker.catch_up(client.clone(), None, None, None).unwrap();
    let page = {
        let broker = broker.clone();
        tokio::spawn(async move { broker.next_page(&mut catch_up).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!page.is_finished(), "the page waits for the commit");
    store.held.store(false, Ordering::SeqCst);
    let page = page.await.unwrap().unwrap();
    let payloads: Vec<_> = page.iter().map(|e| e.payload.value()).collect();
    assert_eq!(payloads, vec![json!(7)]);
    publish.committed().await.unwrap();
    assert_eq!(subscribe.committed().await.unwrap(), 1);
    broker.close().await;
}

#[tokio::test]
async fn acks_applied_together_are_each_checked_and_applied_in_order_as_if_alone() {
    let store = Arc::new(MemoryStore::new());
    let config = BrokerConfig {
        max_batch: 2,
        ..BrokerConfig::default()
    };
    let broker = Broker::open(store.clone(), config).await.unwrap();
    let queue = QueueName::parse("q").unwrap();
    let [a, b, stranger] = ["a", "b", "stranger"].map(|c| ClientId::parse(c).unwrap());
    for client in [&a, &b] {
        broker
            .subscribe(client, std::slice::from_ref(&queue), Default::default())
            .committed_now()
            .await
            .unwrap();
    }
    let mut published = Vec::new();
    for n in 1..=3 {
        let batch = broker.publish(vec![message(&queue, n)]);
        published.extend(batch.committed_now().await.unwrap());
    }
    let [m1, m2, m3] = [0, 1, 2].map(|n| published[n].id.clone());
    let ack = |client: &ClientId, ids: &[&MessageId]| AckRequest {
        client: client.clone(),
        queue: None,
        ids: ids.iter().map(|id| (*id).clone()).collect(),
    };
    let outcomes = broker
        .ack_all(&[
            ack(&a, &[&m1]),
            ack(&a, &[&m1]),
            ack(&stranger, &[&m1]),
            ack(&b, &[&m1, &m2]),
            ack(&a, &[&m2, &m3, &m1]),
            ack(&a, &[&m2, &m3]),
        ])
        .committed_now()
        .await
        .unwrap();
    let outcomes: Vec<Result<Vec<bool>, &str>> = outcomes
        .iter()
        .map(|o| o.clone().map_err(|e| e.code().as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            Ok(vec![true]),
            Ok(vec![false]),
            Err("not_subscribed"),
            Ok(vec![true, true]),
            Err("batch_too_large"),
            Ok(vec![true, true]),
        ]
    );
    let stored = store.load().await.unwrap();
    let left: Vec<u64> = stored.messages.iter().map(|m| m.seq).collect();
    assert_eq!(left, [published[2].seq], "only b still holds m3");
    let counters = stored.counters.iter().find(|(q, _)| *q == queue).unwrap().1;
    assert_eq!(counters.acked, 5, "every removal counted, written once");
    broker.close().await;
}

/// A delayed message that becomes due while a catch-up is under way is the live push's to
/// send, like a message published after the catch-up started: the catch-up leaves it out,
/// or a subscriber that reconnected just then got it twice, once from each.
#[tokio::test]
async fn a_catch_up_leaves_out_a_delayed_message_that_became_due_after_it_started() {
    let (broker, queue, client) = subscribed(BrokerConfig::default()).await;
    let mut early = message(&queue, 1);
    early.deliver_at_ms = Some(message::now_ms() + 50);
    let mut late = message(&queue, 2);
    late.deliver_at_ms = Some(message::now_ms() + 1000);
    broker
        .publish(vec![early, late])
        .committed_now()
        .await
        .unwrap();
    let scheduled = || broker.queues().iter().map(|q| q.scheduled).sum::<usize>();
    let due = |left: usize| async move {
        for _ in 0..200 {
            if scheduled() == left {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the delayed messages did not come due");
    };
    due(1).await;
    // The first is in the inbox now, the second still scheduled (for most of a second: the
    // margin for a busy machine between these two lines).
    let mut catch_up = broker.catch_up(client.clone(), None, None, None).unwrap();
    due(0).await;
    let page = broker.next_page(&mut catch_up).await.unwrap();
    let payloads: Vec<String> = page.iter().map(|e| e.payload.text().to_owned()).collect();
    assert_eq!(
        payloads,
        ["1"],
        "only what was due when the catch-up started"
    );
    assert!(broker.next_page(&mut catch_up).await.unwrap().is_empty());
    let mut again = broker.catch_up(client, None, None, None).unwrap();
    assert_eq!(
        broker.next_page(&mut again).await.unwrap().len(),
        2,
        "the next one has both"
    );
}

/// Payloads published since the broker opened are kept in memory until their message is
/// deleted: a catch-up of them reads nothing from the store. After a restart (nothing kept)
/// the same catch-up reads them all, with the same result.
#[tokio::test]
async fn a_catch_up_takes_the_payloads_kept_in_memory_and_reads_the_others() {
    let store = Arc::new(FlakyStore::default());
    let queue = QueueName::parse("q").unwrap();
    let client = ClientId::parse("c").unwrap();
    let catch_up = |broker: Broker| {
        let client = client.clone();
        async move {
            let mut catch_up = broker.catch_up(client, None, None, None).unwrap();
            let mut payloads = Vec::new();
            loop {
                let page = broker.next_page(&mut catch_up).await.unwrap();
                if page.is_empty() {
                    return payloads;
                }
                payloads.extend(page.iter().map(|e| e.payload.text().to_owned()));
            }
        }
    };
    let broker = open_subscribed(store.clone(), BrokerConfig::default(), &client, &queue).await;
    let messages: Vec<_> = (0..100).map(|n| message(&queue, n)).collect();
    broker.publish(messages).committed_now().await.unwrap();
    let expected: Vec<String> = (0..100).map(|n| n.to_string()).collect();
    assert_eq!(catch_up(broker.clone()).await, expected);
    assert_eq!(store.read.load(Ordering::SeqCst), 0, "all kept in memory");
    broker.close().await;

    let broker = Broker::open(store.clone(), BrokerConfig::default())
        .await
        .unwrap();
    assert_eq!(catch_up(broker.clone()).await, expected);
    assert_eq!(
        store.read.load(Ordering::SeqCst),
        100,
        "nothing is kept across a restart: each read once"
    );
    broker.close().await;
}
