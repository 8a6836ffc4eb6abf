//! The store contract, checked against every engine: what is committed is what loads, deletes
//! remove, missing payloads read as `None`, and (for the embedded engine) commits survive
//! reopening.
//!
//! Exported behind the `conformance` feature (as tower-sessions exports its store tests), so
//! that an engine outside this file runs the same checks without copying them:
//!
//! ```ignore
//! queuehub::store::conformance::check(&my_store).await;                 // an empty store
//! queuehub::store::conformance::agrees_with_memory(&other, 7, 200).await; // another empty one
//! ```

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
            job: None,
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

/// A message put again under its seq (a job released with a new priority, or buried) keeps
/// its inbox entries and loads with the new meta and payload.
async fn a_message_put_again_replaces_its_meta(store: &dyn Store) {
    let mut job = message(60, "jobs");
    job.meta.job = Some(JobMeta {
        priority: 7,
        ttr_ms: Some(1_000),
        buried: false,
        delay_ms: None,
    });
    store
        .commit(vec![Op::PutMessage(job.clone()), inbox("jobs", "jobs", 60)])
        .await
        .unwrap();
    job.meta.job = Some(JobMeta {
        priority: u32::MAX,
        ttr_ms: None,
        buried: true,
        delay_ms: Some(5_000),
    });
    job.meta.deliver_at_ms = Some(5_000);
    store
        .commit(vec![Op::PutMessage(job.clone())])
        .await
        .unwrap();
    let snapshot = store.load().await.unwrap();
    let meta = snapshot.messages.iter().find(|m| m.seq == 60).unwrap();
    assert_eq!(meta, &job.meta);
    assert!(snapshot.inbox.contains(&(name("jobs"), name("jobs"), 60)));
    assert_eq!(
        store.payloads(vec![60]).await.unwrap(),
        vec![Some(job.payload)]
    );
}

/// Runs the contract's fixed checks against `store`, which must start empty. Panics (with
/// what differed) if the engine breaks the contract.
pub async fn check(store: &dyn Store) {
    committed_state_loads_back(store).await;
    deletes_remove_and_missing_removes_are_harmless(store).await;
    names_stored_under_older_rules_still_load(store).await;
    a_long_inbox_loads_back_whole_after_removals(store).await;
    a_message_put_again_replaces_its_meta(store).await;
    runs_of_deleted_messages_go_and_a_message_put_again_after_its_delete_stays(store).await;
}

/// One batch deletes runs of consecutive messages, lone ones, ones never stored, and one that
/// the same batch then puts again: exactly the deleted ones are gone, the one put again is
/// there with its new payload, and the messages between the runs are untouched.
async fn runs_of_deleted_messages_go_and_a_message_put_again_after_its_delete_stays(
    store: &dyn Store,
) {
    let seqs = 20_100..=20_140u64;
    let before = stored_seqs(store).await;
    store
        .commit(
            seqs.clone()
                .map(|seq| Op::PutMessage(message(seq, "runs")))
                .collect(),
        )
        .await
        .unwrap();
    let mut deleted: Vec<u64> = (20_101..=20_110).collect();
    deleted.extend([20_112, 20_114, 20_115, 20_139, 20_140, 20_141]);
    deleted.extend(20_120..=20_130);
    let mut batch: Vec<Op> = deleted.iter().map(|seq| Op::DeleteMessage(*seq)).collect();
    let mut again = message(20_125, "runs");
    again.payload = "\"again\"".into();
    batch.push(Op::PutMessage(again));
    store.commit(batch).await.unwrap();

    let mut got = stored_seqs(store).await;
    got.retain(|seq| !before.contains(seq));
    got.sort_unstable();
    let want: Vec<u64> = seqs
        .clone()
        .filter(|seq| !deleted.contains(seq) || *seq == 20_125)
        .collect();
    assert_eq!(got, want, "messages left after the deletions");
    let payloads = store
        .payloads(vec![20_100, 20_105, 20_111, 20_125, 20_130])
        .await
        .unwrap();
    assert_eq!(
        payloads,
        vec![
            Some("{\"n\":20100}".to_owned()),
            None,
            Some("{\"n\":20111}".to_owned()),
            Some("\"again\"".to_owned()),
            None,
        ]
    );
}

/// Thousands of entries in one inbox, across engine-internal boundaries, added and removed in
/// batches: what remains loads back exactly, beside another client's entries for the same seqs.
async fn a_long_inbox_loads_back_whole_after_removals(store: &dyn Store) {
    let before = sorted(store.load().await.unwrap()).inbox;
    let seqs = 5_000..8_200u64;
    let add =
        |client: &str| -> Vec<Op> { seqs.clone().map(|seq| inbox(client, "long", seq)).collect() };
    store.commit(add("reader")).await.unwrap();
    store.commit(add("other")).await.unwrap();
    // Removes every third entry, and a whole range, in separate commits, plus some never added.
    let remove = |filter: &dyn Fn(u64) -> bool| -> Vec<Op> {
        (4_990..8_300u64)
            .filter(|seq| filter(*seq))
            .map(|seq| Op::RemoveFromInbox {
                client: name("reader"),
                queue: name("long"),
                seq,
            })
            .collect()
    };
    store.commit(remove(&|seq| seq % 3 == 0)).await.unwrap();
    store
        .commit(remove(&|seq| (6_000..7_100).contains(&seq)))
        .await
        .unwrap();
    let mut want = before;
    for seq in seqs.clone() {
        want.push((name("other"), name("long"), seq));
        if seq % 3 != 0 && !(6_000..7_100).contains(&seq) {
            want.push((name("reader"), name("long"), seq));
        }
    }
    want.sort();
    let got = sorted(store.load().await.unwrap()).inbox;
    assert_eq!(got.len(), want.len(), "inbox entries after removals");
    assert_eq!(got, want);
}

/// The sequence numbers of the messages `store` loads.
async fn stored_seqs(store: &dyn Store) -> Vec<u64> {
    let snapshot = store.load().await.unwrap();
    snapshot.messages.iter().map(|m| m.seq).collect()
}

/// Applies the same `batches` random batches of ops (from `seed`) to `store` and to a memory
/// store, and after each commit compares what both load and the payloads both read back.
/// `store` must start empty. Panics on the first difference, naming the batch.
pub async fn agrees_with_memory(store: &dyn Store, seed: u64, batches: usize) {
    let reference = MemoryStore::new();
    let mut random = Random(seed.max(1));
    for n in 0..batches {
        let batch: Vec<Op> = (0..random.below(12) + 1).map(|_| random.op()).collect();
        store.commit(batch.clone()).await.unwrap();
        reference.commit(batch.clone()).await.unwrap();
        let (got, want) = (store.load().await.unwrap(), reference.load().await.unwrap());
        assert_eq!(
            sorted(got),
            sorted(want),
            "after batch {n} (seed {seed}): {batch:?}"
        );
        let seqs: Vec<u64> = [0].iter().chain(&SEQS).copied().collect();
        assert_eq!(
            store.payloads(seqs.clone()).await.unwrap(),
            reference.payloads(seqs).await.unwrap(),
            "payloads after batch {n} (seed {seed})"
        );
    }
}

/// A snapshot with every list in one order, so that engines that list keys in different
/// orders compare equal.
fn sorted(mut snapshot: Snapshot) -> Snapshot {
    snapshot.sort();
    snapshot
}

/// Sequence numbers of the random world: few, so that ops hit each other, and spread so that
/// they straddle the boundaries an engine may group entries by (the embedded engine's chunks of
/// 1024).
const SEQS: [u64; 12] = [
    1,
    2,
    3,
    1022,
    1023,
    1024,
    1025,
    2048,
    4095,
    70_000,
    1 << 40,
    u64::MAX / 2,
];

/// A small xorshift generator: the same seed gives the same ops on every engine and run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }

    fn seq(&mut self) -> u64 {
        SEQS[self.below(SEQS.len() as u64) as usize]
    }

    fn client(&mut self) -> ClientId {
        name(self.pick(&["acme", "flowers", "driver"]))
    }

    fn queue(&mut self) -> QueueName {
        name(self.pick(&["orders", "jobs", "jobs.dead"]))
    }

    fn op(&mut self) -> Op {
        match self.below(12) {
            0 | 1 => {
                let seq = self.seq();
                let mut stored = message(seq, self.pick(&["orders", "jobs"]));
                stored.payload = format!("{{\"v\":{}}}", self.below(1000));
                stored.meta.deliver_at_ms = (self.below(3) == 0).then(|| self.below(5_000));
                stored.meta.job = (self.below(3) == 0).then(|| JobMeta {
                    priority: self.below(3) as u32,
                    ttr_ms: (self.below(2) == 0).then(|| self.below(5_000)),
                    buried: self.below(2) == 0,
                    delay_ms: (self.below(2) == 0).then(|| self.below(5_000)),
                });
                Op::PutMessage(stored)
            }
            2 => Op::DeleteMessage(self.seq()),
            3 => Op::PutSubscription {
                client: self.client(),
                queue: self.queue(),
                record: SubscriptionRecord {
                    mode: if self.below(2) == 0 {
                        Mode::Work
                    } else {
                        Mode::Broadcast
                    },
                    max_deliveries: (self.below(2) == 0).then(|| self.below(5) as u32),
                    ..SubscriptionRecord::default()
                },
            },
            4 => Op::DeleteSubscription {
                client: self.client(),
                queue: self.queue(),
            },
            5 | 6 => Op::AddToInbox {
                client: self.client(),
                queue: self.queue(),
                seq: self.seq(),
            },
            7 => Op::RemoveFromInbox {
                client: self.client(),
                queue: self.queue(),
                seq: self.seq(),
            },
            8 => Op::SetAttempts {
                client: self.client(),
                queue: self.queue(),
                seq: self.seq(),
                attempts: self.below(6) as u32,
            },
            9 => match self.below(2) {
                0 => Op::AddWaiting {
                    queue: self.queue(),
                    seq: self.seq(),
                },
                _ => Op::RemoveWaiting {
                    queue: self.queue(),
                    seq: self.seq(),
                },
            },
            10 => match self.below(2) {
                0 => Op::PutReceipt(Receipt {
                    id: name(&format!("m{}", self.seq())),
                    queue: self.queue(),
                    event: name("delivered"),
                    published_at_ms: self.below(10_000),
                    recipients: self.below(3) as usize,
                    deliver_at_ms: None,
                }),
                _ => Op::DeleteReceipt {
                    queue: self.queue(),
                    id: name(&format!("m{}", self.seq())),
                },
            },
            _ => Op::PutCounters {
                queue: self.queue(),
                counters: Counters {
                    published: self.below(100),
                    acked: self.below(100),
                    expired: self.below(3),
                    rejected: self.below(3),
                    dead_lettered: self.below(3),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::embedded::EmbeddedStore;
    use super::*;

    #[tokio::test]
    async fn memory_store_meets_the_contract() {
        check(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn embedded_store_meets_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        check(&store).await;
    }

    #[tokio::test]
    async fn the_embedded_store_agrees_with_the_memory_store_on_random_ops() {
        for seed in 1..=8 {
            let dir = tempfile::tempdir().unwrap();
            let store = EmbeddedStore::open(dir.path()).unwrap();
            agrees_with_memory(&store, seed, 60).await;
        }
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
}
