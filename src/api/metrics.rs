//! `GET /metrics`: the broker's stats for Prometheus, encoded by `prometheus-client` at
//! scrape time.
//!
//! Nothing is counted twice: a [`Collector`] reads the same views as `GET /v1/queues`
//! ([`Broker::queues`], [`Broker::totals`]) when a scrape comes, and the library writes them
//! out. A scraper that asks for OpenMetrics (`Accept: application/openmetrics-text`, as
//! Prometheus does) gets OpenMetrics 1.0 text; anyone else gets the Prometheus text format
//! 0.0.4. Every metric is listed in docs/API.md.
//!
//! Labels: `queue` only. The unacked count per client (`GET /v1/queues/{queue}` has it) is
//! summed per queue here, with the largest inbox beside it, because the number of clients
//! has no limit and every label value is a series a Prometheus server keeps
//! (docs/DECISIONS.md).

use std::fmt;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::ApiState;
use crate::broker::Broker;
use crate::broker::stats::{QueueCounters, QueueSummary};

/// Every metric's name starts with this (and `_`).
const PREFIX: &str = "queuehub";

/// The OpenMetrics text `Content-Type`.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes every metric, in the format the scraper asked for.
#[utoipa::path(get, path = "/metrics", tag = "stats",
    responses((status = 200, description = "Every metric: OpenMetrics 1.0 text when the `Accept` header asks for it, else the Prometheus 0.0.4 text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(BrokerCollector {
        broker: state.broker.clone(),
        sockets: Arc::clone(&state.sockets),
    }));
    let openmetrics = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("application/openmetrics-text"));
    let mut body = String::new();
    let (encoded, content_type) = if openmetrics {
        let encoded = prometheus_client::encoding::text::encode(&mut body, &registry);
        (encoded, OPENMETRICS)
    } else {
        let encoded = prometheus_client::encoding::prometheus_text::encode(&mut body, &registry);
        (
            encoded,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )
    };
    match encoded {
        Ok(()) => ([(CONTENT_TYPE, content_type)], body).into_response(),
        // Writing into a String does not fail; should the encoder refuse something anyway,
        // the scrape fails visibly rather than with half an exposition.
        Err(fmt::Error) => {
            tracing::error!("encoding /metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Reads the broker's stats at each scrape.
struct BrokerCollector {
    broker: Broker,
    /// Counts connected sockets by node (the socket layer knows them, not the broker).
    sockets: Arc<dyn Fn() -> Vec<(String, usize)> + Send + Sync>,
}

impl fmt::Debug for BrokerCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerCollector").finish_non_exhaustive()
    }
}

impl Collector for BrokerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let totals = self.broker.totals();
        let queues = self.broker.queues();
        let e = &mut encoder;
        gauge(
            e,
            "stored_messages",
            "Messages stored (each payload once).",
            totals.stored_messages,
        )?;
        gauge(e, "queues", "Queues known.", totals.queues)?;
        let by_node = (self.sockets)();
        gauge(
            e,
            "sockets_connected",
            "Connected socket.io sockets.",
            by_node.iter().map(|(_, n)| n).sum::<usize>(),
        )?;
        let mut family = e.encode_descriptor(
            "sockets_connected_by_node",
            "Connected socket.io sockets by the address their client connected to: this node's, \
             or a standby's that relays them (with Redis).",
            None,
            MetricType::Gauge,
        )?;
        for (node, count) in &by_node {
            let labels = [("node", node.as_str())];
            ConstGauge::new(*count as i64).encode(family.encode_family(&labels)?)?;
        }
        counters(e, &queues)?;
        let per_queue: [QueueGauge; 5] = [
            ("waiting", "Messages waiting for a first subscriber.", |q| {
                q.waiting
            }),
            ("scheduled", "Delayed messages not due yet.", |q| {
                q.scheduled
            }),
            ("subscribers", "Subscribed clients.", |q| q.subscribers),
            (
                "pending",
                "Unacked messages, summed over the queue's subscribers' inboxes.",
                |q| q.pending.values().sum(),
            ),
            (
                "pending_max",
                "Unacked messages in the queue's longest inbox (its slowest subscriber).",
                |q| q.pending.values().copied().max().unwrap_or(0),
            ),
        ];
        for (name, help, value) in per_queue {
            let mut family = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for q in &queues {
                let labels = [("queue", q.queue.as_str())];
                ConstGauge::new(value(q)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// A gauge per queue: its name, its help, and how to read it from a queue's stats.
type QueueGauge = (&'static str, &'static str, fn(&QueueSummary) -> usize);

/// One gauge without labels.
fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: usize) -> fmt::Result {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

/// Every lifetime counter of every queue, as `messages_<counter>_total{queue}`.
fn counters(encoder: &mut DescriptorEncoder, queues: &[QueueSummary]) -> fmt::Result {
    // Destructured field by field, so a counter added to the stats does not compile until
    // it is exported here too.
    let all = |c: &QueueCounters| {
        let QueueCounters {
            published,
            acked,
            expired,
            rejected,
            dead_lettered,
        } = *c;
        [published, acked, expired, rejected, dead_lettered]
    };
    let families = [
        ("messages_published", "Messages published to the queue."),
        ("messages_acked", "Inbox entries acknowledged."),
        (
            "messages_expired",
            "Inbox entries and waiting messages whose TTL ran out.",
        ),
        (
            "messages_rejected",
            "Publishes to the queue that a limit refused.",
        ),
        (
            "messages_dead_lettered",
            "Messages moved to the dead-letter queue after too many deliveries.",
        ),
    ];
    for (index, (name, help)) in families.into_iter().enumerate() {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for q in queues {
            let labels = [("queue", q.queue.as_str())];
            ConstCounter::new(all(&q.counters)[index]).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}
