//! One file per socket event, as mini-redis has one file per command. Each handler reads its
//! event's payload, applies it to the [`Broker`](crate::broker::Broker) and answers through
//! its [`Reply`](super::reply::Reply).
//!
//! Handlers import the [`Session`](super::context::Session) context and the socket layer's
//! leaf modules (`reply`, `rooms`, `envelope`, `lane`), never the event router
//! (`event.rs`) or the connection (`connection.rs`) that call them.

pub mod get_all;
pub mod publish;
pub mod received;
pub mod relay;
pub mod subscribe;
pub mod unsubscribe;
