//! `unsubscribe {clientId, queue}`: ends the subscription and drops its inbox; ack
//! `{ok, dropped}`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::reply::Reply;
use super::session::{Session, parse};
use crate::error::Error;
use crate::names::{ClientId, QueueName};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Unsubscribe {
    client_id: Option<ClientId>,
    queue: QueueName,
}

async fn unsubscribe(session: &Session, data: Value) -> Result<Value, Error> {
    let request: Unsubscribe = parse(data)?;
    let client = session.client(request.client_id)?;
    let dropped = session.broker.unsubscribe(&client, &request.queue).await?;
    tracing::info!(client = %client, queue = %request.queue, dropped, "unsubscribed");
    Ok(json!({ "clientId": client, "queue": request.queue, "dropped": dropped }))
}

/// Handles one `unsubscribe` event.
pub async fn handle(session: &Session, data: Value, reply: Reply) {
    reply.send(unsubscribe(session, data).await).await;
}
