//! queuehub: a durable message-queue server that speaks socket.io.
//!
//! Anything that can send an HTTP POST publishes a message `{queue, event, payload}`;
//! socket.io clients subscribe to queues as a durable `clientId`, receive messages live,
//! catch up on what they missed (`getAll`) and acknowledge each message (`received`).
//!
//! Layout (see ARCHITECTURE.md for the invariants):
//! - [`config`]: one [`config::Config`] from flags, `QUEUEHUB_*` variables, a TOML file and a
//!   preset;
//! - [`app`]: builds everything and runs until a shutdown signal;
//! - [`serve`]: the accept loop: header timeout, per-address connection limit, HTTP/1.1;
//! - [`broker`]: publish, fan-out, inboxes, catch-up, acks: the only place with queue logic;
//! - [`store`]: the storage trait and its engines (embedded redb, Redis, memory);
//! - [`api`]: the HTTP API (only place that knows HTTP);
//! - [`socket`]: the socket.io API (only place that knows socket.io);
//! - [`compat`]: the classroom preset: a lab's event and field aliases and routing, as data;
//! - [`host`]: the machine's name and kernel, and the process's CPU time (from `/proc`);
//! - [`names`], [`error`]: validated names and the error type shared by all layers;
//! - [`json`]: client JSON read strictly (no key twice in one object), for both transports.

pub mod api;
pub mod app;
pub mod auth;
pub mod beanstalk;
pub mod broker;
pub mod compat;
pub mod config;
pub mod error;
pub mod hash;
pub mod host;
pub mod json;
pub mod names;
pub mod proxy_header;
pub mod relay;
pub mod serve;
pub mod socket;
pub mod store;
pub mod telemetry;

pub use app::Application;
pub use config::Config;
