//! The index against the store it caches: the store is the truth. Random mutations are
//! applied to a live index, their ops committed to the memory store, and an index rebuilt
//! from what the store then holds must equal the live one in everything that is durable.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::broker::message::{NewMessage, SharedPayload};
use crate::store::memory::MemoryStore;
use crate::store::{Mode, Store};

/// What of an index must survive a rebuild: everything but what lives in memory only (which
/// worker holds what, ack deadlines, pooled payloads, the ordered head last pushed, attempt
/// counts of plain broadcast inboxes: DECISIONS 3 and 19).
#[derive(Debug, PartialEq)]
struct Durable {
    messages: BTreeMap<u64, (MessageMeta, u32)>,
    queues: BTreeMap<String, DurableQueue>,
    clients: BTreeMap<String, BTreeSet<String>>,
    receipts: BTreeMap<(String, String), Receipt>,
    scheduled: BTreeSet<(u64, u64)>,
    expiring: BTreeSet<(u64, u64)>,
}

#[derive(Debug, PartialEq)]
struct DurableQueue {
    /// Per subscriber: its options and its inbox (seq → attempts, where they are durable).
    subscribers: BTreeMap<String, (SubscriptionRecord, BTreeMap<u64, u32>)>,
    waiting: BTreeSet<u64>,
    ids: BTreeMap<String, u64>,
    counters: Counters,
    scheduled: usize,
}

impl Durable {
    fn of(index: &Index) -> Self {
        let stored = |seq: &u64| index.messages.contains_key(seq);
        let queues = index
            .queues
            .iter()
            .map(|(name, queue)| {
                let subscribers = queue
                    .subscribers
                    .iter()
                    .map(|(client, s)| {
                        let durable_attempts = s.is_dispatched();
                        let inbox = s
                            .inbox
                            .iter()
                            .map(|(seq, n)| (*seq, if durable_attempts { *n } else { 0 }))
                            .collect();
                        (client.to_string(), (s.record.clone(), inbox))
                    })
                    .collect();
                let queue = DurableQueue {
                    subscribers,
                    waiting: queue.waiting.clone(),
                    ids: queue
                        .ids
                        .iter()
                        .map(|(id, seq)| (id.to_string(), *seq))
                        .collect(),
                    counters: queue.counters,
                    scheduled: queue.scheduled,
                };
                (name.to_string(), queue)
            })
            // A queue that holds nothing and never counted anything is not stored at all.
            .filter(|(_, q)| {
                !(q.subscribers.is_empty()
                    && q.waiting.is_empty()
                    && q.ids.is_empty()
                    && q.counters == Counters::default()
                    && q.scheduled == 0)
            })
            .collect();
        Self {
            messages: index
                .messages
                .iter()
                .map(|(seq, e)| (*seq, ((*e.meta).clone(), e.refs)))
                .collect(),
            queues,
            clients: index
                .clients
                .iter()
                .filter(|(_, queues)| !queues.is_empty())
                .map(|(c, queues)| {
                    (
                        c.to_string(),
                        queues.iter().map(|q| q.to_string()).collect(),
                    )
                })
                .collect(),
            receipts: index
                .receipts
                .by_key
                .iter()
                .map(|((q, id), r)| ((q.to_string(), id.to_string()), r.clone()))
                .collect(),
            // Timer entries of messages that are gone are dropped lazily by the live index.
            scheduled: index
                .scheduled
                .iter()
                .filter(|(_, s)| stored(s))
                .copied()
                .collect(),
            expiring: index
                .expiring
                .iter()
                .filter(|(_, s)| stored(s))
                .copied()
                .collect(),
        }
    }
}

/// One random mutation, on a small world: three queues, three clients, two events, a few
/// publisher-chosen ids, three worker sockets.
#[derive(Clone, Debug)]
enum Step {
    Publish {
        queue: u8,
        event: u8,
        id: Option<u8>,
        delay: Option<u8>,
        ttl: Option<u8>,
    },
    Subscribe {
        client: u8,
        queue: u8,
        work: bool,
        ordered: bool,
        max_deliveries: Option<u8>,
        only_event: Option<u8>,
    },
    Unsubscribe {
        client: u8,
        queue: u8,
    },
    /// Acks the `pick`-th stored messages (by position, so that acks hit), and one unknown id.
    Ack {
        client: u8,
        queue: Option<u8>,
        pick: Vec<u8>,
    },
    Attach {
        client: u8,
        queue: u8,
        worker: u8,
    },
    Detach {
        worker: u8,
    },
    /// Dispatches (work mode, ordered heads); messages delivered too often are dead-lettered
    /// the way the broker does it.
    Dispatch {
        client: u8,
        queue: u8,
    },
    /// A catch-up page (counts broadcast attempts in memory).
    CatchUp {
        client: u8,
    },
    /// Time passes: due messages wake, TTLs and ack deadlines run out, old receipts go.
    Tick {
        ms: u16,
    },
    Rejected {
        queue: u8,
    },
    /// Moves the oldest waiting message of a queue away, as a kick does.
    TakeWaiting {
        queue: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..3u8, 0..2u8, proptest::option::of(0..6u8), proptest::option::weighted(0.2, 1..50u8), proptest::option::weighted(0.2, 1..80u8))
            .prop_map(|(queue, event, id, delay, ttl)| Step::Publish { queue, event, id, delay, ttl }),
        2 => (0..3u8, 0..3u8, any::<bool>(), proptest::bool::weighted(0.2), proptest::option::weighted(0.3, 1..4u8), proptest::option::weighted(0.2, 0..2u8))
            .prop_map(|(client, queue, work, ordered, max_deliveries, only_event)| Step::Subscribe { client, queue, work, ordered, max_deliveries, only_event }),
        1 => (0..3u8, 0..3u8).prop_map(|(client, queue)| Step::Unsubscribe { client, queue }),
        3 => (0..3u8, proptest::option::of(0..3u8), proptest::collection::vec(any::<u8>(), 0..4))
            .prop_map(|(client, queue, pick)| Step::Ack { client, queue, pick }),
        2 => (0..3u8, 0..3u8, 0..3u8).prop_map(|(client, queue, worker)| Step::Attach { client, queue, worker }),
        1 => (0..3u8).prop_map(|worker| Step::Detach { worker }),
        3 => (0..3u8, 0..3u8).prop_map(|(client, queue)| Step::Dispatch { client, queue }),
        1 => (0..3u8).prop_map(|client| Step::CatchUp { client }),
        2 => (1..120u16).prop_map(|ms| Step::Tick { ms }),
        1 => (0..4u8).prop_map(|queue| Step::Rejected { queue }),
        1 => (0..3u8).prop_map(|queue| Step::TakeWaiting { queue }),
    ]
}

fn queue(n: u8) -> QueueName {
    QueueName::parse(format!("q{n}")).unwrap()
}

fn client(n: u8) -> ClientId {
    ClientId::parse(format!("c{n}")).unwrap()
}

fn event(n: u8) -> EventName {
    EventName::parse(format!("e{n}")).unwrap()
}

/// Applies `step` at time `now`, returning its ops.
fn apply(index: &mut Index, step: &Step, now: &mut u64) -> Vec<Op> {
    let mut ops = Vec::new();
    let online = |_: &ClientId, _: &QueueName| false;
    match step {
        Step::Publish {
            queue: q,
            event: e,
            id,
            delay,
            ttl,
        } => {
            let mut message = NewMessage::new(queue(*q), event(*e), json!(*q), "http");
            message.id = id.map(|n| MessageId::parse(format!("m{n}")).unwrap());
            message.deliver_at_ms = delay.map(|d| *now + u64::from(d));
            message.ttl_ms = ttl.map(u64::from);
            let text = message.payload.to_string();
            index.publish(&message, text, *now, &online, &mut ops);
        }
        Step::Subscribe {
            client: c,
            queue: q,
            work,
            ordered,
            max_deliveries,
            only_event,
        } => {
            let record = SubscriptionRecord {
                events: only_event.map(|e| vec![event(e)]),
                mode: if *work { Mode::Work } else { Mode::Broadcast },
                ack_timeout_ms: work.then_some(40),
                max_deliveries: max_deliveries.filter(|_| *work).map(u32::from),
                ordered: *ordered && !*work,
            };
            index.subscribe(&client(*c), &queue(*q), record, &mut ops);
        }
        Step::Unsubscribe {
            client: c,
            queue: q,
        } => {
            let _ = index.unsubscribe(&client(*c), &queue(*q), &mut ops);
        }
        Step::Ack {
            client: c,
            queue: q,
            pick,
        } => {
            let stored: Vec<MessageId> =
                index.messages.values().map(|e| e.meta.id.clone()).collect();
            let mut ids: Vec<MessageId> = pick
                .iter()
                .filter(|_| !stored.is_empty())
                .map(|p| stored[usize::from(*p) % stored.len()].clone())
                .collect();
            ids.push(MessageId::parse("never-published").unwrap());
            // As the broker does: the counters of the queues it touched, written after.
            if let Ok((_, touched)) = index.ack(&client(*c), q.map(queue).as_ref(), &ids, &mut ops)
            {
                for q in &touched {
                    index.put_counters(q, &mut ops);
                }
            }
        }
        Step::Attach {
            client: c,
            queue: q,
            worker,
        } => {
            let _ = index.attach(&client(*c), &queue(*q), format!("w{worker}"), 1);
        }
        Step::Detach { worker } => {
            index.detach(&format!("w{worker}"));
        }
        Step::Dispatch {
            client: c,
            queue: q,
        } => {
            let (c, q) = (client(*c), queue(*q));
            let dispatched = index.dispatch(&c, &q, *now, &mut ops);
            // Pooled messages become ready once committed (here: at once).
            for (seq, _) in dispatched.pooled {
                index.pool_ready(&c, &q, seq, SharedPayload::of(&json!(null)));
            }
            for meta in dispatched.dead {
                if index.dead_letter(&c, &q, meta.seq, &mut ops) {
                    let dead = NewMessage::new(
                        q.dead_letter().unwrap(),
                        meta.event.clone(),
                        json!("dead"),
                        meta.source.as_ref(),
                    );
                    index.publish(&dead, "\"dead\"".into(), *now, &online, &mut ops);
                }
            }
            index.ordered_head(&c, &q, *now, true, &mut ops);
        }
        Step::CatchUp { client: c } => {
            let filter = InboxFilter {
                client: client(*c),
                queue: None,
                event: None,
                skip_dispatched: true,
                woken_by: None,
            };
            let _ = index.inbox_page(&filter, (0, u64::MAX), 10, *now, true);
        }
        Step::Tick { ms } => {
            *now += u64::from(*ms);
            for meta in index.due(*now, 100) {
                index.wake(&meta, &online, &mut ops);
            }
            index.expire_due(*now, &mut ops);
            index.expire_inflight(*now, &mut Vec::new());
            index.expire_receipts(now.saturating_sub(200), &mut ops);
        }
        Step::Rejected { queue: q } => index.count_rejected(&queue(*q), &mut ops),
        Step::TakeWaiting { queue: q } => {
            let q = queue(*q);
            if let Some(seq) = index
                .queues
                .get(&q)
                .and_then(|s| s.waiting.first().copied())
            {
                index.take_waiting(&q, seq, &mut ops);
            }
        }
    }
    ops
}

fn rebuilt(store: &MemoryStore) -> Index {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    Index::from_snapshot(runtime.block_on(store.load()).unwrap())
}

fn commit(store: &MemoryStore, ops: Vec<Op>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(store.commit(ops)).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Commits may hold several mutations (group commit): `commit_every` sets how many.
    #[test]
    fn an_index_rebuilt_from_the_store_equals_the_live_one(
        steps in proptest::collection::vec(step(), 1..80),
        commit_every in 1..5usize,
    ) {
        let store = MemoryStore::new();
        let mut live = Index::from_snapshot(Snapshot::default());
        let mut now = 1_000_000;
        let mut queued = Vec::new();
        for (n, step) in steps.iter().enumerate() {
            queued.extend(apply(&mut live, step, &mut now));
            if (n + 1) % commit_every == 0 {
                commit(&store, std::mem::take(&mut queued));
                prop_assert_eq!(Durable::of(&rebuilt(&store)), Durable::of(&live), "after step {}: {:?}", n, step);
            }
        }
        commit(&store, queued);
        prop_assert_eq!(Durable::of(&rebuilt(&store)), Durable::of(&live));
    }
}

fn publish(index: &mut Index, q: u8, id: Option<&str>, ops: &mut Vec<Op>) -> PublishOutcome {
    let mut message = NewMessage::new(queue(q), event(0), json!(1), "http");
    message.id = id.map(|id| MessageId::parse(id).unwrap());
    index.publish(&message, "1".into(), 1_000, &|_, _| false, ops)
}

#[test]
fn a_message_without_subscribers_waits_and_the_first_subscriber_takes_it() {
    let mut index = Index::default();
    let mut ops = Vec::new();
    let outcome = publish(&mut index, 0, None, &mut ops);
    assert!(outcome.recipients.is_empty() && outcome.workers.is_empty());
    assert_eq!(index.queues[&queue(0)].waiting.len(), 1);
    let pending = index.subscribe(
        &client(0),
        &queue(0),
        SubscriptionRecord::default(),
        &mut ops,
    );
    assert_eq!(pending, 1, "the first subscriber takes the waiting message");
    assert!(index.queues[&queue(0)].waiting.is_empty());
    let second = index.subscribe(
        &client(1),
        &queue(0),
        SubscriptionRecord::default(),
        &mut ops,
    );
    assert_eq!(second, 0, "the second finds nothing waiting");
}

#[test]
fn a_repeated_publisher_id_returns_the_first_receipt_and_changes_nothing() {
    let mut index = Index::default();
    index.subscribe(
        &client(0),
        &queue(0),
        SubscriptionRecord::default(),
        &mut Vec::new(),
    );
    let first = publish(&mut index, 0, Some("order-1"), &mut Vec::new());
    let mut ops = Vec::new();
    let again = publish(&mut index, 0, Some("order-1"), &mut ops);
    assert!(again.duplicate && !first.duplicate);
    assert_eq!(again.receipt, first.receipt);
    assert!(ops.is_empty(), "a duplicate writes nothing: {ops:?}");
    assert_eq!(index.messages.len(), 1);
}

#[test]
fn an_ack_removes_per_id_and_deletes_a_message_when_its_last_inbox_lets_go() {
    let mut index = Index::default();
    for c in 0..2 {
        index.subscribe(
            &client(c),
            &queue(0),
            SubscriptionRecord::default(),
            &mut Vec::new(),
        );
    }
    let id = publish(&mut index, 0, None, &mut Vec::new()).receipt.id;
    let unknown = MessageId::parse("unknown").unwrap();
    let mut ops = Vec::new();
    let (removed, _) = index
        .ack(
            &client(0),
            None,
            &[id.clone(), id.clone(), unknown],
            &mut ops,
        )
        .unwrap();
    assert_eq!(
        removed,
        [true, false, false],
        "a repeat and an unknown id remove nothing"
    );
    assert!(
        !ops.iter().any(|op| matches!(op, Op::DeleteMessage(_))),
        "c1 still holds it"
    );
    let mut ops = Vec::new();
    index.ack(&client(1), None, &[id], &mut ops).unwrap();
    assert!(ops.iter().any(|op| matches!(op, Op::DeleteMessage(_))));
    assert!(index.messages.is_empty());
    assert_eq!(index.queues[&queue(0)].counters.acked, 2);
}

#[test]
fn an_ack_by_a_client_that_is_not_subscribed_is_an_error() {
    let mut index = Index::default();
    let err = index
        .ack(
            &client(0),
            None,
            &[MessageId::parse("x").unwrap()],
            &mut Vec::new(),
        )
        .unwrap_err();
    assert_eq!(err.code(), "not_subscribed");
}
