//! `subscribe {clientId, queue | queues, events?, mode?, ordered?, ...}`: a durable
//! subscription; ack `{ok, clientId, queues, pending}`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::reply::Reply;
use super::room;
use super::session::{Session, parse};
use crate::broker::{Pending, SubscriptionOptions};
use crate::error::Error;
use crate::names::{ClientId, EventName, QueueName};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subscribe {
    client_id: Option<ClientId>,
    queue: Option<QueueName>,
    queues: Option<Vec<QueueName>>,
    events: Option<Vec<EventName>>,
    mode: Option<String>,
    ordered: Option<bool>,
    prefetch: Option<Value>,
    ack_timeout_ms: Option<Value>,
    max_deliveries: Option<Value>,
}

impl Subscribe {
    /// The work-queue options arrive with issue 4; until then they are refused, not ignored.
    fn check_options(&self) -> Result<(), Error> {
        match self.mode.as_deref() {
            None | Some("broadcast") => {}
            Some("work") => {
                return Err(Error::unsupported(
                    "mode 'work' (shared work queues) is not supported by this version yet",
                ));
            }
            Some(other) => {
                return Err(Error::invalid_field(format!(
                    "mode must be 'broadcast' or 'work', not '{other}'"
                )));
            }
        }
        if self.ordered == Some(true) {
            return Err(Error::unsupported(
                "ordered subscriptions are not supported by this version yet",
            ));
        }
        let work_options = [&self.prefetch, &self.ack_timeout_ms, &self.max_deliveries];
        if work_options
            .iter()
            .any(|o| o.as_ref().is_some_and(|v| !v.is_null()))
        {
            return Err(Error::unsupported(
                "prefetch, ackTimeoutMs and maxDeliveries belong to work mode, which this version does not support yet",
            ));
        }
        Ok(())
    }

    fn queues(&mut self) -> Result<Vec<QueueName>, Error> {
        let mut queues = self.queues.take().unwrap_or_default();
        queues.extend(self.queue.take());
        queues.sort();
        queues.dedup();
        if queues.is_empty() {
            return Err(Error::invalid_field("subscribe needs 'queue' or 'queues'"));
        }
        Ok(queues)
    }
}

fn subscribe(session: &Session, data: Value) -> Result<(Pending<Value>, Vec<String>), Error> {
    let mut request: Subscribe = parse(data)?;
    request.check_options()?;
    let client = session.client(request.client_id.take())?;
    let queues = request.queues()?;
    let record = SubscriptionOptions {
        events: request.events.take(),
    };
    // Join first: a message committed right after the subscribe is pushed live rather than
    // only waiting in the inbox.
    let rooms: Vec<String> = queues.iter().map(|q| room(&client, q)).collect();
    session.socket.join(rooms.clone());
    let pending = match session.broker.subscribe(&client, &queues, record) {
        Ok(pending) => pending,
        Err(err) => {
            session.socket.leave(rooms);
            return Err(err);
        }
    };
    let pending = pending.map(|pending| {
        let names: Vec<&str> = queues.iter().map(QueueName::as_str).collect();
        tracing::info!(client = %client, queues = ?names, pending, "subscribed");
        json!({ "clientId": client, "queues": queues, "pending": pending })
    });
    Ok((pending, rooms))
}

/// Subscribes now (a `getAll` right after sees it); answers once it is durable. If the
/// commit fails, the socket leaves the rooms it joined.
pub fn handle(session: &Session, data: Value, reply: Reply) {
    match subscribe(session, data) {
        Err(err) => reply.when_committed(Err(err)),
        Ok((pending, rooms)) => {
            let socket = session.socket.clone();
            tokio::spawn(async move {
                let result = pending.committed().await;
                if result.is_err() {
                    socket.leave(rooms);
                }
                reply.send(result).await;
            });
        }
    }
}
