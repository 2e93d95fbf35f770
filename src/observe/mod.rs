//! The status address (`/health`, `/ready`, and per mode more) and the metrics address
//! (Prometheus text), in both modes: small HTTP/1.1 servers on their own listeners, apart from
//! the app's, with the main listener's timeouts and header limit. What differs between the
//! single process and the pool master is a [`Mode`]: `crate::engine` implements it for the
//! single process, `crate::pool` for the master. docs/observability.md.
pub mod metrics;
mod process;

use crate::body::{self, Body};
use crate::config::{Config, HttpConfig};
use crate::server::{side_loop, ConnectionLimit, Shutdown, StartError};
use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
pub use metrics::{ServerMetrics, Text};
use serde_json::{Map, Value};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpListener;

/// An answer a mode's own route gives later (the pool's workers list asks the supervisor).
pub type Answer = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// What the side addresses ask of the mode running.
pub trait Mode: Send + Sync + 'static {
    /// `single` or `pool` (the `mode` field and label).
    fn name(&self) -> &'static str;
    /// Requests can run: `/health` is 200, and the systemd watchdog pings.
    fn healthy(&self) -> bool;
    /// More requests are welcome (`/ready`, before the shutdown is taken into account).
    fn ready(&self) -> bool;
    /// The fields `/health` and `/ready` show beside `status`.
    fn details(&self) -> Map<String, Value>;
    /// This mode's own metric families, after the shared ones.
    fn metrics(&self, _out: &mut Text) {}
    /// Another route of the status address (`HEAD` comes as `GET`); `None` is a 405 for a
    /// path in `paths()`, else a 404.
    fn route(&self, _method: &Method, _path: &str) -> Option<Answer> {
        None
    }
    /// The paths `route()` answers, with the methods each takes (the `Allow` of a 405).
    fn paths(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
}

/// The status address's own paths, in both modes.
const STATUS_PATHS: [(&str, &str); 2] = [("/health", "GET, HEAD"), ("/ready", "GET, HEAD")];

/// What both addresses read.
pub struct Side {
    pub server: ServerMetrics,
    pub mode: Arc<dyn Mode>,
    /// Not ready once the server drains: load balancers should stop sending.
    pub shutdown: Shutdown,
}

#[derive(Clone, Copy)]
enum Endpoint {
    Status,
    Metrics,
}

/// Connections each side address serves at once (beyond: 503 and a close).
const SIDE_CONNECTIONS: usize = 64;

/// Binds `status.address` and `metrics.address` when configured (errors surface here, at start)
/// and serves them in the background on the current runtime; logs `rr status on http://...`.
pub fn start(config: &Config, side: Side) -> Result<(), StartError> {
    let side = Arc::new(side);
    for (addr, endpoint, key) in [
        (config.status, Endpoint::Status, "status.address"),
        (config.metrics, Endpoint::Metrics, "metrics.address"),
    ] {
        let Some(addr) = addr else { continue };
        let bound = listen(addr, endpoint, side.clone(), config.http.clone())
            .map_err(|source| StartError::Bind { addr, key, source })?;
        tracing::info!("rr {} on http://{bound}", key.trim_end_matches(".address"));
    }
    Ok(())
}

fn listen(
    addr: SocketAddr,
    endpoint: Endpoint,
    side: Arc<Side>,
    http: HttpConfig,
) -> std::io::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std_listener)?;
    let bound = listener.local_addr()?;
    let handler = move |req, _noted| {
        let side = side.clone();
        async move { route(endpoint, &side, req).await }
    };
    let limit = ConnectionLimit::new(SIDE_CONNECTIONS);
    tokio::spawn(side_loop(listener, http, limit, handler));
    Ok(bound)
}

async fn route(endpoint: Endpoint, side: &Side, req: Request<Incoming>) -> Response<Body> {
    let mode = &side.mode;
    // HEAD is GET without the body (hyper leaves it out): load balancers check with HEAD.
    let method = match req.method() {
        &Method::HEAD => &Method::GET,
        method => method,
    };
    match (endpoint, method, req.uri().path()) {
        (Endpoint::Metrics, &Method::GET, _) => {
            let mut text = Text::new();
            metrics::server(&mut text, &side.server, mode.name());
            mode.metrics(&mut text);
            text_response(StatusCode::OK, "text/plain; version=0.0.4", text.finish())
        }
        (Endpoint::Status, &Method::GET, "/health") => check(mode.healthy(), side),
        (Endpoint::Status, &Method::GET, "/ready") => {
            check(mode.ready() && !side.shutdown.is_triggered(), side)
        }
        (Endpoint::Status, method, path) => match mode.route(method, path) {
            Some(answer) => answer.await,
            None => match STATUS_PATHS
                .iter()
                .chain(mode.paths())
                .find(|(p, _)| *p == path)
            {
                Some((_, allow)) => not_allowed(allow),
                None => error(StatusCode::NOT_FOUND, "not_found", "not found"),
            },
        },
        (Endpoint::Metrics, _, _) => not_allowed("GET, HEAD"),
    }
}

fn check(ok: bool, side: &Side) -> Response<Body> {
    let status = match ok {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut fields = Map::new();
    fields.insert(
        "status".into(),
        (if ok { "ok" } else { "unavailable" }).into(),
    );
    fields.insert("mode".into(), side.mode.name().into());
    fields.insert("queue".into(), side.server.queue.depth().into());
    fields.insert("in_flight".into(), side.server.http.in_flight().into());
    fields.extend(side.mode.details());
    json(status, Value::Object(fields))
}

/// rr's error body, as the main listener's.
fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    text_response(status, "application/json", body::error_json(code, message))
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, http::HeaderValue::from_static(allow));
    response
}

pub fn json(status: StatusCode, value: Value) -> Response<Body> {
    text_response(status, "application/json", value.to_string())
}

fn text_response(status: StatusCode, content_type: &'static str, text: String) -> Response<Body> {
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}
