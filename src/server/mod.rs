//! The embedded HTTP server: listeners, connections, limits, error answers, graceful shutdown.
//!
//! Everything here runs on the tokio runtime and sees plain Rust values only; requests leave
//! through a [`Submitter`] and answers come back as [`crate::dispatch::Reply`].
mod abort;
mod access;
mod connection;
pub mod error;
pub mod framing;
mod heads;
mod limit;
mod listener;
mod release;
pub mod service;
pub mod shutdown;
pub mod stats;
mod tls;
mod woken;

use crate::config::Config;
use crate::dispatch::Submitter;
pub use heads::{FramingFault, Noted};
pub(crate) use limit::nofile_limit;
pub use limit::ConnectionLimit;
pub use listener::side_loop;
use listener::Listener;
use service::Context;
use shutdown::Coordinator;
pub use shutdown::Shutdown;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;

/// An address the server listens on.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub addr: SocketAddr,
    pub tls: bool,
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }
}

#[derive(Debug)]
pub enum StartError {
    Runtime(std::io::Error),
    Bind {
        addr: SocketAddr,
        key: &'static str,
        source: std::io::Error,
    },
    Tls(tls::TlsError),
    Velox(crate::velox::VeloxError),
    /// Pool mode could not start.
    Pool(PoolStartError),
    /// `http.static.dir` cannot be resolved any more.
    Static(std::path::PathBuf, std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Bind { addr, key, source } => {
                write!(f, "cannot listen on {addr} ({key}): {source}")
            }
            StartError::Tls(e) => write!(f, "{e}"),
            StartError::Runtime(e) => write!(f, "cannot start the I/O runtime: {e}"),
            StartError::Velox(e) => write!(f, "velox: {e}"),
            StartError::Pool(e) => write!(f, "pool: {e}"),
            StartError::Static(dir, e) => write!(f, "http.static.dir {}: {e}", dir.display()),
        }
    }
}

impl std::error::Error for StartError {}

/// Why pool mode could not start.
#[derive(Debug)]
pub enum PoolStartError {
    /// This process is marked a pool worker, but `RR_POOL_FD` names no usable channel.
    Channel(crate::ipc::ChannelError),
    /// Template mode: the master cannot become the subreaper of the workers forked from it.
    Subreaper(std::io::Error),
    /// This php's command line cannot be read, so no worker can be started like it.
    CommandLine(std::io::Error),
    /// `http.watch`: the file watcher cannot start.
    Watch(std::io::Error),
}

impl std::fmt::Display for PoolStartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolStartError::Channel(e) => write!(f, "{e}"),
            PoolStartError::Subreaper(e) => write!(
                f,
                "http.pool.template: cannot become the child subreaper of forked workers: {e}"
            ),
            PoolStartError::CommandLine(e) => write!(f, "cannot find this php's command line: {e}"),
            PoolStartError::Watch(e) => write!(f, "http.watch: {e}"),
        }
    }
}

pub struct Server {
    coordinator: Coordinator,
    pub bound: Vec<Bound>,
    pub stats: Arc<stats::HttpStats>,
    /// Present when `velox.server_url` is set (the metrics read it).
    pub velox: Option<Arc<crate::velox::Velox>>,
    /// The client connections open, and the limit (the metrics read it).
    pub connections: ConnectionLimit,
    /// The queue to PHP (the metrics and readiness read its depth).
    pub queue: Submitter,
}

impl Server {
    /// Binds every listener (errors surface here, synchronously) and starts serving on `handle`.
    pub fn start(
        config: Arc<Config>,
        handle: &Handle,
        submitter: Submitter,
    ) -> Result<Server, StartError> {
        let _entered = handle.enter();
        let mut listeners = vec![Listener {
            socket: bind(config.http.address, "http.address")?,
            tls: None,
        }];
        if let Some(ssl) = &config.http.ssl {
            listeners.push(Listener {
                socket: bind(ssl.address, "http.ssl.address")?,
                tls: Some(tls::acceptor(&ssl.cert, &ssl.key).map_err(StartError::Tls)?),
            });
        }
        let coordinator = Coordinator::new();
        // One limit for the plain and the TLS listener together.
        let limit = ConnectionLimit::new(config.http.max_connections);
        limit::presize_descriptor_table();
        let bound = listeners
            .iter()
            .map(|l| Bound {
                addr: l
                    .socket
                    .local_addr()
                    .expect("a bound socket has an address"),
                tls: l.tls.is_some(),
            })
            .collect();
        let velox = match &config.velox {
            Some(v) => Some(Arc::new(
                crate::velox::Velox::new(v.clone()).map_err(StartError::Velox)?,
            )),
            None => None,
        };
        let static_files = match &config.http.static_files {
            Some(files) => Some(
                crate::static_files::StaticFiles::new(files)
                    .map_err(|e| StartError::Static(files.dir.clone(), e))?,
            ),
            None => None,
        };
        let stats = Arc::new(stats::HttpStats::default());
        let queue = submitter.clone();
        let ctx = Arc::new(Context {
            config,
            submitter,
            velox: velox.clone(),
            stats: stats.clone(),
            static_files,
        });
        for l in listeners {
            handle.spawn(listener::accept_loop(
                l,
                ctx.clone(),
                limit.clone(),
                coordinator.shutdown(),
                coordinator.guard(),
            ));
        }
        handle.spawn(release::after_bursts(limit.clone(), coordinator.shutdown()));
        handle.spawn(on_stop_request(coordinator.trigger_handle()));
        Ok(Server {
            coordinator,
            bound,
            stats,
            velox,
            connections: limit,
            queue,
        })
    }

    pub fn shutdown(&self) -> Shutdown {
        self.coordinator.shutdown()
    }

    /// A handle that starts the graceful shutdown from another task.
    pub fn trigger(&self) -> shutdown::Trigger {
        self.coordinator.trigger_handle()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.coordinator.is_triggered()
    }

    /// Stop accepting; connections finish their current request and close.
    pub fn begin_shutdown(&self) {
        self.coordinator.trigger();
    }

    /// Waits (at most `timeout`) until every connection has ended; false on timeout.
    pub async fn drained(&mut self, timeout: Duration) -> bool {
        self.coordinator.trigger();
        tokio::time::timeout(timeout, self.coordinator.drained())
            .await
            .is_ok()
    }
}

fn bind(addr: SocketAddr, key: &'static str) -> Result<tokio::net::TcpListener, StartError> {
    let fail = |source| StartError::Bind { addr, key, source };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(fail)?;
    socket.set_reuseaddr(true).map_err(fail)?;
    socket.bind(addr).map_err(fail)?;
    socket.listen(4096).map_err(fail)
}

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks the server to shut down gracefully. Async-signal-safe: the SIGTERM/SIGINT handlers
/// (installed through PHP's own signal layer by `src/php`) call it.
pub fn request_stop() {
    STOP_REQUESTED.store(true, Ordering::Relaxed);
}

/// Whether a SIGTERM/SIGINT (or `stop()` in a pool worker) asked this process to stop.
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::Relaxed)
}

/// Turns a stop request into the shutdown signal (checked every 50 ms: a signal handler can
/// only set a flag).
async fn on_stop_request(trigger: shutdown::Trigger) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if STOP_REQUESTED.load(Ordering::Relaxed) {
                    tracing::info!("stop signal received: shutting down gracefully");
                    return trigger.fire();
                }
            }
            _ = trigger.fired() => return,
        }
    }
}
