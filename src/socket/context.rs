//! [`Session`]: what an event handler knows about the socket it serves (the broker, the
//! socket, who it is and which dialect it speaks), and the small helpers every handler
//! needs ([`parse`], [`Session::client`], [`Session::consumer_id`]).
//!
//! The bottom of the socket layer's event side: the handlers in `events/` import from here,
//! and this module imports none of them (nor the connection or the event router that use it).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde_json::Value;
use socketioxide::extract::SocketRef;

use super::flow::Flow;
use super::identity::Identity;
use super::lane::Lane;
pub use super::live::consumer_id;
use super::registry::{Key, LiveSockets};
use super::reply::Reply;
use crate::broker::{Broker, CatchUp};
use crate::compat::Dialect;
use crate::error::{Error, from_json_error};
use crate::names::ClientId;

/// A catch-up waiting its turn on a socket's catch-up lane, and the reply to send when it is
/// done (`None`: nobody asked, as with a dialect's `catch_up_on_subscribe`).
pub type CatchUpJob = (CatchUp, Option<Reply>);

/// What a handler knows about the socket it serves. Built once the socket has connected;
/// shared by its event task, its catch-up task and its disconnect handler.
pub struct Session {
    pub socket: SocketRef,
    pub broker: Broker,
    /// The client id given at connect (`auth: {clientId}` or `?clientId=`), used when an
    /// event omits `clientId`.
    pub client: Option<ClientId>,
    /// The lab dialect of this socket's namespace, if any.
    pub dialect: Option<Arc<Dialect>>,
    /// What the socket proved at connect (secured mode).
    pub identity: Identity,
    /// The clients this socket has subscribed as, named when it disconnects.
    pub acted_for: Arc<Mutex<BTreeSet<ClientId>>>,
    /// The `getAll`s waiting behind the one that streams (see `events/get_all.rs`).
    pub catch_ups: Lane<Box<CatchUpJob>>,
    /// Which sockets receive which subscriptions' live pushes.
    pub sockets: LiveSockets,
    /// Wakes this socket's pushes waiting for room when its client acks (see `flow`).
    pub flow: Flow,
}

impl Session {
    /// How the broker names this socket as a work-mode worker.
    pub fn consumer_id(&self) -> String {
        consumer_id(&self.socket)
    }

    /// This socket receives the live pushes of `keys` from now on.
    pub fn join(&self, keys: impl IntoIterator<Item = Key>) {
        self.sockets.join(&self.consumer_id(), keys);
    }

    /// This socket no longer receives the live pushes of `keys`.
    pub fn leave(&self, keys: &[Key]) {
        self.sockets.leave(&self.consumer_id(), keys);
    }

    /// The event's `clientId`, else the one given at connect.
    pub fn client(&self, given: Option<ClientId>) -> Result<ClientId, Error> {
        self.identity.acting_as(given, self.client.as_ref())
    }
}

/// Parses an event's payload into `T`; a payload that is not an object is an `invalid_field`.
pub fn parse<T: DeserializeOwned>(data: Value) -> Result<T, Error> {
    if !data.is_object() {
        return Err(Error::invalid_field(
            "the event's payload must be a JSON object",
        ));
    }
    serde_json::from_value(data).map_err(|e| from_json_error(&e))
}
