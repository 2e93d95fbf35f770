//! The status address (health, readiness, the workers list, reload) and the metrics address
//! (Prometheus text). Small HTTP/1.1 servers on their own listeners, apart from the app's.
use super::message::{Control, State};
use super::metrics::{self, PoolStats};
use crate::body::{self, Body};
use crate::config::HttpConfig;
use crate::server::stats::HttpStats;
use crate::server::{side_loop, ConnectionLimit};
use crate::velox::Velox;
use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// What both endpoints read.
pub struct Shared {
    pub pool: Arc<PoolStats>,
    pub http: Arc<HttpStats>,
    pub velox: Option<Arc<Velox>>,
    pub control: mpsc::UnboundedSender<Control>,
    /// Not ready once the server drains: load balancers should stop sending.
    pub shutdown: crate::server::Shutdown,
}

#[derive(Clone, Copy)]
pub enum Endpoint {
    Status,
    Metrics,
}

/// Connections each side address serves at once (beyond: 503 and a close).
const SIDE_CONNECTIONS: usize = 64;

/// Binds now (errors surface at start) and serves in the background, with the main
/// listener's timeouts and header limit (`http`).
pub fn start(
    addr: SocketAddr,
    endpoint: Endpoint,
    shared: Arc<Shared>,
    http: HttpConfig,
) -> std::io::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std_listener)?;
    let bound = listener.local_addr()?;
    let handler = move |req, _fragment| {
        let shared = shared.clone();
        async move { route(endpoint, &shared, req).await }
    };
    let limit = ConnectionLimit::new(SIDE_CONNECTIONS);
    tokio::spawn(side_loop(listener, http, limit, handler));
    Ok(bound)
}

async fn route(endpoint: Endpoint, shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let pool = &shared.pool;
    match (endpoint, req.method(), req.uri().path()) {
        (Endpoint::Metrics, &Method::GET, _) => {
            let text = metrics::render(pool, &shared.http, shared.velox.as_deref());
            text_response(StatusCode::OK, "text/plain; version=0.0.4", text)
        }
        (Endpoint::Status, &Method::GET, "/health") => check(pool.healthy(), pool),
        (Endpoint::Status, &Method::GET, "/ready") => {
            check(pool.ready() && !shared.shutdown.is_triggered(), pool)
        }
        (Endpoint::Status, &Method::GET, "/workers") => {
            let (tx, rx) = oneshot::channel();
            let _ = shared.control.send(Control::List(tx));
            match rx.await {
                Ok(list) => json(StatusCode::OK, serde_json::json!({ "workers": list })),
                Err(_) => json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({ "workers": [] }),
                ),
            }
        }
        (Endpoint::Status, &Method::POST, "/reload") => {
            let _ = shared.control.send(Control::Reload);
            json(
                StatusCode::ACCEPTED,
                serde_json::json!({ "reload": "started" }),
            )
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": "not found" }),
        ),
    }
}

fn check(ok: bool, pool: &PoolStats) -> Response<Body> {
    let status = match ok {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    json(
        status,
        serde_json::json!({
            "status": if ok { "ok" } else { "unavailable" },
            "idle": pool.count(State::Idle),
            "busy": pool.count(State::Busy),
            "booting": pool.count(State::Booting),
            "queue": pool.queue_depth(),
            "boot": pool.boot_report(),
        }),
    )
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
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
