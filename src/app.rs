//! [`Application`]: builds queuehub from a [`Config`] (store, broker, HTTP API, socket.io),
//! binds every listen address, and runs until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::cors::CorsLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::api::{self, ApiState};
use crate::beanstalk::{self, Beanstalk};
use crate::broker::Broker;
use crate::config::{Config, DoorAddress, Storage};
use crate::relay::{self, Advert, Door, Relay};
use crate::serve::{self, Connections, Hang, PeerLimit};
use crate::socket;
use crate::store::Store;
use crate::store::embedded::EmbeddedStore;
use crate::store::memory::MemoryStore;
use crate::store::redis::RedisStore;
use crate::store::redis::connection::Target;

/// How long shutdown waits for connections to finish before it stops waiting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long shutdown lets requests in flight be answered before it hangs up on what is
/// still open (long polls wait for a message or the next ping, up to 25 s: not for them).
const REQUESTS_GRACE: Duration = Duration::from_secs(1);

/// A built server: bound, with its store loaded, not yet serving.
pub struct Application {
    listeners: Vec<TcpListener>,
    addresses: Vec<SocketAddr>,
    /// The beanstalk door's listeners (`--beanstalk-listen`), if it is open.
    beanstalk: Option<(Beanstalk, Vec<beanstalk::Listener>)>,
    beanstalk_addresses: Vec<SocketAddr>,
    connections: Connections,
    broker: Broker,
    io: SocketIo,
    dashboard: socket::dashboard::DashboardFeed,
    /// With Redis storage: the store, whose lease this node holds while it serves.
    redis: Option<Arc<RedisStore>>,
    /// With Redis storage: where this node serves, for standbys to relay to (`crate::relay`).
    advert: Option<String>,
}

/// The addresses `listeners` are bound to.
fn local_addresses(listeners: &[TcpListener]) -> anyhow::Result<Vec<SocketAddr>> {
    listeners
        .iter()
        .map(|listener| listener.local_addr().context("a listener has no address"))
        .collect()
}

/// The listeners of both doors, bound and not serving yet.
struct Bound {
    http: Vec<TcpListener>,
    beanstalk: Vec<TcpListener>,
    /// The beanstalk door's Unix sockets (never with Redis: standbys could not relay them).
    beanstalk_unix: Vec<beanstalk::Listener>,
}

/// Binds every `--listen` and `--beanstalk-listen` address.
async fn bind(config: &Config) -> anyhow::Result<Bound> {
    let mut tcp = Vec::new();
    let mut beanstalk_unix = Vec::new();
    for address in &config.beanstalk_listen {
        match address {
            DoorAddress::Tcp(address) => tcp.push(*address),
            DoorAddress::Unix(path) => beanstalk_unix
                .push(beanstalk::Listener::bind_unix(path).with_context(|| {
                    format!("cannot listen for beanstalk clients on {address}")
                })?),
        }
    }
    Ok(Bound {
        http: bind_all(&config.listen, "").await?,
        beanstalk: bind_all(&tcp, " for beanstalk clients").await?,
        beanstalk_unix,
    })
}

/// Binds each of `addresses`; an error says "cannot listen{what} on" the address.
async fn bind_all(addresses: &[SocketAddr], what: &str) -> anyhow::Result<Vec<TcpListener>> {
    let mut listeners = Vec::with_capacity(addresses.len());
    for address in addresses {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen{what} on {address}"))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Opens the store the configuration names. For Redis: connects, and waits (as a standby,
/// relaying connections on `bound` to the active node) until this node holds the database's
/// lease; the store is returned a second time as Redis.
async fn open_store(
    config: &Config,
    bound: Bound,
) -> anyhow::Result<(Arc<dyn Store>, Option<Arc<RedisStore>>, Bound)> {
    Ok(match &config.storage {
        Storage::Embedded(dir) => (
            Arc::new(
                EmbeddedStore::open_with_cache(dir, config.store_cache_bytes)
                    .with_context(|| format!("cannot open the store in {}", dir.display()))?,
            ),
            None,
            bound,
        ),
        Storage::Memory => (Arc::new(MemoryStore::new()), None, bound),
        Storage::Redis(url) => open_redis(config, bound, Target::Server(url), "Redis").await?,
        Storage::RedisCluster(seeds) => {
            open_redis(config, bound, Target::Cluster(seeds), "the Redis Cluster").await?
        }
    })
}

/// Connects to Redis (`name` in errors) and waits until this node holds the lease, relaying
/// the connections `bound` accepts to the active node meanwhile; gives the listeners back.
async fn open_redis(
    config: &Config,
    bound: Bound,
    target: Target<'_>,
    name: &str,
) -> anyhow::Result<(Arc<dyn Store>, Option<Arc<RedisStore>>, Bound)> {
    let (active_tx, active) = watch::channel(None);
    let beanstalk_unix = bound.beanstalk_unix;
    let (stop, relays) = relay_while_standing_by(bound.http, bound.beanstalk, &active);
    // A dead active node is taken over from once its address refuses connections (and its
    // lease shows no renewal), without waiting for its lease to run out.
    let (refusing_tx, refusing) = watch::channel(None);
    let watching = tokio::spawn(relay::watch_for_refusals(active.clone(), refusing_tx));
    let connected =
        RedisStore::connect_standing_by(target, config.redis_lease, &active_tx, &refusing)
            .await
            .with_context(|| format!("cannot connect to {name}"));
    drop(refusing);
    watching.abort();
    let _ = stop.send(true);
    let mut bound = Bound {
        http: Vec::new(),
        beanstalk: Vec::new(),
        beanstalk_unix,
    };
    for (door, relay) in relays {
        let listener = relay.await.context("a relay task failed")?;
        match door {
            Door::Http => bound.http.push(listener),
            Door::Beanstalk => bound.beanstalk.push(listener),
        }
    }
    let redis = Arc::new(connected?);
    Ok((Arc::clone(&redis) as Arc<dyn Store>, Some(redis), bound))
}

/// Starts relaying every listener of `bound` to the active node that `active` names, until
/// the returned sender says stop; each task gives its listener back, in order.
fn relay_while_standing_by(
    http: Vec<TcpListener>,
    beanstalk: Vec<TcpListener>,
    active: &watch::Receiver<Option<String>>,
) -> (watch::Sender<bool>, Vec<(Door, JoinHandle<TcpListener>)>) {
    let (stop, stopped) = watch::channel(false);
    let mut relays = Vec::new();
    let doors = (http.into_iter().map(|listener| (Door::Http, listener))).chain(
        beanstalk
            .into_iter()
            .map(|listener| (Door::Beanstalk, listener)),
    );
    let mut counts = [0usize; 2];
    let mut local = Vec::new();
    for (door, listener) in doors {
        let index = &mut counts[door as usize];
        if let Ok(address) = listener.local_addr() {
            local.push((door, address));
        }
        let relay = Relay {
            door,
            index: *index,
            active: active.clone(),
        };
        *index += 1;
        relays.push((door, tokio::spawn(relay.run(listener, stopped.clone()))));
    }
    // Say where this node relays once it knows an active node (not when it becomes active at
    // once).
    let mut first = active.clone();
    let mut until_stopped = stopped;
    tokio::spawn(async move {
        tokio::select! {
            known = first.wait_for(Option::is_some) => if known.is_ok() {
                for (door, address) in local {
                    let scheme = if let Door::Http = door { "http" } else { "beanstalk" };
                    tracing::info!("queuehub standing by, relaying on {scheme}://{address} to the active node");
                }
            },
            _ = until_stopped.wait_for(|stop| *stop) => {}
        }
    });
    (stop, relays)
}

impl Application {
    /// Checks that the security settings make sense (a token secret needs an API key), opens
    /// the store, rebuilds the broker's indexes, and binds every listen address (port 0 picks
    /// a free port; see [`Application::addresses`]).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.security.validate().map_err(anyhow::Error::msg)?;
        let bound = bind(&config).await?;
        let (store, redis, bound) = open_store(&config, bound).await?;
        let broker = Broker::open(store, config.broker.clone())
            .await
            .context("cannot load the store")?;
        let socket::SocketApi {
            layer: socket_layer,
            io,
            dashboard,
        } = socket::layer(
            broker.clone(),
            socket::SocketOptions {
                dialect: config.dialect.clone(),
                security: Arc::clone(&config.security),
                events_per_sec: config.max_events_per_sec,
                buffer: config.socket_buffer,
                ping_interval: config.ping_interval,
                ping_timeout: config.ping_timeout,
                connections: socket::ConnectionLimit::new(config.max_connections_per_ip),
            },
        );
        let sockets_io = io.clone();
        let state = ApiState {
            broker: broker.clone(),
            sockets: Arc::new(move || socket::sockets_by_node(&sockets_io)),
            security: Arc::clone(&config.security),
        };
        let api = api::router(state, &config).layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ));
        let mut router = api.layer(socket_layer).layer(TraceLayer::new_for_http());
        if config.cors_permissive {
            router = router.layer(CorsLayer::permissive());
        }
        // Every TCP connection counts for its address, sockets once more in the socket layer.
        let mut connections = Connections::new(
            router,
            api::too_many_connections(config.max_connections_per_ip.unwrap_or(0)),
            config.request_timeout,
            PeerLimit::new(config.max_connections_per_ip),
        );
        let addresses = local_addresses(&bound.http)?;
        let beanstalk_addresses = local_addresses(&bound.beanstalk)?;
        // With Redis, standbys relay their clients here (see `crate::relay`), naming each in a
        // header that carries this secret.
        let relay_secret = redis
            .is_some()
            .then(|| uuid::Uuid::new_v4().simple().to_string());
        if let Some(secret) = &relay_secret {
            connections = connections.accepting_relays(secret);
        }
        let advert = relay_secret.map(|secret| {
            let host = relay::advertised_host(config.advertise_host.as_deref());
            Advert::new(&addresses, &beanstalk_addresses, &host, &secret).to_text()
        });
        let listeners = bound.http;
        let beanstalk_listeners: Vec<beanstalk::Listener> = (bound.beanstalk.into_iter())
            .map(beanstalk::Listener::Tcp)
            .chain(bound.beanstalk_unix)
            .collect();
        let beanstalk = (!beanstalk_listeners.is_empty()).then(|| {
            let door = Beanstalk::new(broker.clone(), config.beanstalk_max_job_bytes);
            (door, beanstalk_listeners)
        });
        if beanstalk.is_some() && config.security.secured() {
            // The protocol has no way to authenticate: the door bypasses secured mode.
            tracing::warn!(
                "the beanstalk door (--beanstalk-listen) takes no credentials: whoever can reach                  it can put, reserve and delete jobs on every queue whose name is a tube name,                  whatever the API keys and tokens; listen on a private address only                  (docs/BEANSTALK.md, Security)"
            );
        }
        Ok(Self {
            listeners,
            addresses,
            beanstalk,
            beanstalk_addresses,
            connections,
            broker,
            io,
            dashboard,
            redis,
            advert,
        })
    }

    /// What the dashboard feed does (how many snapshots it built…), for tests and
    /// diagnostics.
    pub fn dashboard_feed(&self) -> socket::dashboard::FeedStats {
        self.dashboard.stats.clone()
    }

    /// The bound addresses, in the order of the configuration.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The bound beanstalk addresses (`--beanstalk-listen`), in the order of the
    /// configuration.
    pub fn beanstalk_addresses(&self) -> &[SocketAddr] {
        &self.beanstalk_addresses
    }

    /// Serves on every address until `shutdown` completes, then shuts down gracefully: stop
    /// accepting, close sockets, finish in-flight commits.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut servers = Vec::new();
        for listener in self.listeners {
            let accepting = serve::serve(listener, self.connections.clone(), stop_rx.clone());
            servers.push(tokio::spawn(accepting));
        }
        for address in &self.addresses {
            tracing::info!("queuehub listening on http://{address}");
        }
        if let Some((beanstalk, listeners)) = self.beanstalk {
            tokio::spawn(drain_on_sigusr1(beanstalk.clone()));
            for listener in listeners {
                let address = listener.address();
                let serving = beanstalk.clone().serve(listener, stop_rx.clone());
                servers.push(tokio::spawn(serving));
                tracing::info!("queuehub serving the beanstalk protocol on {address}");
            }
        }

        if let (Some(redis), Some(advert)) = (&self.redis, &self.advert) {
            // Standbys relay to this node from now on (the lease's renewals repeat it).
            if let Err(err) = redis.lease().advertise(advert).await {
                tracing::warn!(error = %err, "cannot advertise this node to standbys yet; retrying");
            }
        }

        // A node that lost its Redis lease to another must stop: that node serves now.
        let lost = self.redis.as_ref().map(|redis| redis.lease().lost());
        let lease_lost = async move {
            match lost {
                Some(lost) => lost.await,
                None => std::future::pending().await,
            }
        };
        let lost_lease = tokio::select! {
            () = shutdown => false,
            () = lease_lost => true,
        };
        tracing::info!("shutting down: closing sockets and finishing commits");
        let _ = stop_tx.send(true);
        // Sockets are hung up rather than closed by socket.io, whose close packet tells
        // python-socketio not to reconnect (DECISIONS 76): WebSockets at once, then, once
        // requests in flight had a moment to be answered, long polls and whatever is left.
        self.connections.hang_up(Hang::Upgraded);
        let servers = finish(servers, REQUESTS_GRACE).await;
        self.connections.hang_up(Hang::All);
        self.io.close().await;
        let servers = finish(servers, SHUTDOWN_GRACE).await;
        if !servers.is_empty() {
            tracing::warn!("connections still open after the grace period");
        }
        self.broker.close().await;
        if let Err(err) = self.dashboard.task.await {
            tracing::error!(error = %err, "dashboard task failed");
        }
        if let Some(redis) = &self.redis {
            redis.lease().release().await;
        }
        tracing::info!("queuehub stopped");
        if lost_lease {
            anyhow::bail!("this node lost its Redis lease to another node");
        }
        Ok(())
    }
}

/// Waits up to `limit` for the `servers` to end; returns those still running.
async fn finish(
    servers: Vec<tokio::task::JoinHandle<()>>,
    limit: Duration,
) -> Vec<tokio::task::JoinHandle<()>> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut running = Vec::new();
    for mut server in servers {
        match tokio::time::timeout_at(deadline, &mut server).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "server task failed"),
            Err(_) => running.push(server),
        }
    }
    running
}

/// Puts the beanstalk door in drain mode on SIGUSR1, as beanstalkd does (docs/BEANSTALK.md).
async fn drain_on_sigusr1(beanstalk: Beanstalk) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
            tracing::warn!("cannot listen for SIGUSR1: the beanstalk door has no drain mode");
            return;
        };
        while usr1.recv().await.is_some() {
            beanstalk.drain();
        }
    }
    #[cfg(not(unix))]
    drop(beanstalk);
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
