//! Who a socket is, in secured mode: checked once at connect (in socketioxide's connect
//! middleware, so a refused socket gets `connect_error` and never reaches the handlers), then
//! enforced on every event.
//!
//! A socket presents `auth: {token}` (or `?token=` in the query string, for socket.io 2.x
//! clients, which send no auth payload), or, as a trusted backend, `auth: {apiKey}` (or
//! `?apiKey=`). A token binds the socket to one client and lists the queues it may use; an
//! API key may act as any client. With API keys and no token secret no token can be checked,
//! so every socket needs the key. (A token secret without API keys does not start.)

use serde_json::Value;
use socketioxide::extract::SocketRef;

use crate::auth::{Claims, Security, forbidden, unauthorized};
use crate::error::Error;
use crate::names::{ClientId, QueueName};

/// What a socket proved at connect.
#[derive(Clone, Debug)]
pub enum Identity {
    /// Open mode: nothing was asked.
    Open,
    /// A token: this client, these queues.
    Client(Claims),
    /// An API key: a trusted backend, any client.
    Trusted,
}

/// A credential from the handshake's `auth` payload, else from the query string.
fn credential(socket: &SocketRef, auth: Option<&Value>, name: &str) -> Option<String> {
    let from_auth = auth
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
        .map(str::to_owned);
    from_auth.or_else(|| query(socket, name))
}

/// A query-string parameter of the socket's handshake request, percent-decoded.
pub fn query(socket: &SocketRef, name: &str) -> Option<String> {
    query_value(socket.req_parts().uri.query()?, name)
}

/// The first value of `name` in a query string, decoded as browsers and socket.io clients
/// encode it (`application/x-www-form-urlencoded`: `%XX` escapes, and `+` for a space), so
/// `?clientId=a%20b` is `a b` and `?apiKey=k%2B%2F%3D` is `k+/=`.
fn query_value(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

impl Identity {
    /// Checks the socket's credential against `security`. In open mode everyone is `Open`.
    pub fn check(
        security: &Security,
        socket: &SocketRef,
        auth: Option<&Value>,
    ) -> Result<Self, Error> {
        if !security.secured() {
            return Ok(Identity::Open);
        }
        if let Some(key) = credential(socket, auth, "apiKey") {
            return if security.api_keys.accepts(&key) {
                Ok(Identity::Trusted)
            } else {
                Err(unauthorized("the API key is not valid"))
            };
        }
        let Some(tokens) = &security.tokens else {
            return Err(unauthorized(
                "queuehub is in secured mode: connect with auth: {apiKey}",
            ));
        };
        let token = credential(socket, auth, "token").ok_or_else(|| {
            unauthorized("queuehub is in secured mode: connect with auth: {token} (or ?token= for socket.io 2.x clients)")
        })?;
        Ok(Identity::Client(tokens.verify(&token)?))
    }

    /// The client id the socket is bound to, if any.
    pub fn client(&self) -> Option<&ClientId> {
        match self {
            Identity::Client(claims) => Some(&claims.sub),
            Identity::Open | Identity::Trusted => None,
        }
    }

    /// The client an event acts as: the token's client (an event naming another is
    /// refused), else the event's `clientId`, else `fallback`.
    pub fn acting_as(
        &self,
        given: Option<ClientId>,
        fallback: Option<&ClientId>,
    ) -> Result<ClientId, Error> {
        match self {
            Identity::Client(claims) => match given {
                Some(other) if other != claims.sub => Err(forbidden(format!(
                    "this socket's token is for '{}'; it cannot act as '{other}'",
                    claims.sub
                ))),
                _ => Ok(claims.sub.clone()),
            },
            Identity::Open | Identity::Trusted => given
                .or_else(|| fallback.cloned())
                .ok_or_else(|| Error::invalid_field("missing field `clientId`")),
        }
    }

    /// Refuses subscribing to (and so reading and acking) `queue` unless allowed.
    pub fn check_subscribe(&self, queue: &QueueName) -> Result<(), Error> {
        match self {
            Identity::Client(claims) if !claims.may_subscribe(queue) => Err(forbidden(format!(
                "this socket's token does not allow subscribing to '{queue}'"
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses publishing to `queue` unless allowed.
    pub fn check_publish(&self, queue: &QueueName) -> Result<(), Error> {
        match self {
            Identity::Client(claims) if !claims.may_publish(queue) => Err(forbidden(format!(
                "this socket's token does not allow publishing to '{queue}'"
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::query_value;

    #[test]
    fn query_values_are_percent_decoded() {
        let query = "EIO=4&transport=websocket&clientId=a%20b&apiKey=k%2B%2F%3Dey";
        assert_eq!(query_value(query, "clientId").as_deref(), Some("a b"));
        assert_eq!(query_value(query, "apiKey").as_deref(), Some("k+/=ey"));
        assert_eq!(
            query_value("clientId=a+b", "clientId").as_deref(),
            Some("a b")
        );
        assert_eq!(query_value("token=x.y=", "token").as_deref(), Some("x.y="));
        assert_eq!(
            query_value("client%49d=c", "clientId").as_deref(),
            Some("c")
        );
        assert_eq!(query_value("clientId", "clientId").as_deref(), Some(""));
        assert_eq!(query_value("other=1", "clientId"), None);
    }
}
