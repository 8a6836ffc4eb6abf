//! `received {clientId, id | ids, queue?}`: acknowledges messages, removing them from the
//! client's inbox. Ack `{ok, removed: bool}` for one id, `{ok, removed: n, results}` for
//! `ids`. Unknown and repeated ids are answered `removed: false`, not errors.

use serde::Deserialize;
use serde_json::{Value, json};

use super::reply::Reply;
use super::session::{Session, parse};
use crate::error::Error;
use crate::names::{ClientId, MessageId, QueueName};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Received {
    client_id: Option<ClientId>,
    id: Option<MessageId>,
    ids: Option<Vec<MessageId>>,
    queue: Option<QueueName>,
}

async fn received(session: &Session, data: Value) -> Result<Value, Error> {
    let request: Received = parse(data)?;
    let client = session.client(request.client_id)?;
    let queue = request.queue.as_ref();
    match (request.id, request.ids) {
        (Some(id), None) => {
            let removed = session.broker.ack(&client, queue, &[id]).await?;
            Ok(json!({ "removed": removed.first().copied().unwrap_or(false) }))
        }
        (None, Some(ids)) => {
            let removed = session.broker.ack(&client, queue, &ids).await?;
            let results: Vec<Value> = ids
                .iter()
                .zip(&removed)
                .map(|(id, removed)| json!({ "id": id, "removed": removed }))
                .collect();
            let count = removed.iter().filter(|r| **r).count();
            Ok(json!({ "removed": count, "results": results }))
        }
        (Some(_), Some(_)) => Err(Error::invalid_field("send either 'id' or 'ids', not both")),
        (None, None) => Err(Error::invalid_field("missing field `id` (or `ids`)")),
    }
}

/// Handles one `received` event.
pub async fn handle(session: &Session, data: Value, reply: Reply) {
    reply.send(received(session, data).await).await;
}
