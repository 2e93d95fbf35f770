//! rr: a PHP application server that lives inside `php`.
//!
//! # Layout
//! - [`config`]   one `Config` struct: defaults, `.rr.yaml`, ini and option overrides, validation.
//! - [`request`]  the plain-Rust request handed to PHP: form/query trees, cookies, multipart uploads,
//!   raw bodies spooled to temp files, `$_SERVER`.
//! - [`body`]     the response body type shared by the server and the streaming code.
//! - [`compress`] response compression: Accept-Encoding negotiation, gzip/br/zstd encoders.
//! - [`static_files`] `http.static`: asset files answered from disk before PHP.
//! - [`stream`]   file streaming to clients (sendFile, X-Sendfile): Range/206, HEAD, bounded buffers.
//! - [`dispatch`] how a request reaches the PHP thread and its answer comes back (a streamed
//!   answer waits for its client in memory, then a temp file).
//! - [`runtime`]  the tokio runtime and which thread drives it (PHP while it waits, a helper otherwise);
//!   the Linux scheduling policy of rr's threads.
//! - [`velox`]    the Velox build offload: request checks, client, single-flight, artifact cache.
//! - [`engine`]   what a PHP process runs behind `RR\Worker`, one engine per role: embedded,
//!   pool worker, template, master; wait, answer, stream, tear down.
//! - [`pool`]     pool mode's master machinery: its decisions as one pure state machine, the
//!   supervisor applying them, worker processes and their tasks, the template keeper, its
//!   status and metrics, what it tells systemd.
//! - [`observe`]  the status and metrics addresses in both modes: `/health`, `/ready`, the
//!   Prometheus text and the families both modes share; each mode adds its own.
//! - [`systemd`]  systemd's notifications (`sd_notify`): READY, RELOADING, STOPPING, STATUS,
//!   the watchdog.
//! - [`ipc`]      the wire between master and workers: frames, their codec and readers (async
//!   and blocking), answers as frames, the claim word of requests sent ahead, the workers list.
//! - [`logging`]  tracing set-up from the `logs` config; the log file, opened again on SIGUSR1.
//! - [`server`]   listeners, TLS, hyper connections, limits, error responses, graceful shutdown.
//! - [`php`]      the only module that touches ext-php-rs: classes, functions, ini, conversions.
//! - [`kdf`]      PBKDF2-HMAC-SHA1 for `RR\pbkdf2_sha1()` (the Nextcloud runtime's key derivations).
pub mod body;
pub mod compress;
pub mod config;
pub mod dispatch;
pub mod engine;
pub mod ipc;
pub mod kdf;
pub mod logging;
pub mod observe;
pub mod php;
pub mod pool;
pub mod request;
pub mod runtime;
pub mod server;
pub mod static_files;
pub mod stream;
pub mod systemd;
pub mod velox;
