//! Accept loops. One bad accept never ends a loop: resets are ignored and running out of file
//! descriptors backs off instead of spinning.
use super::connection::{self, Protocol};
use super::heads::Noted;
use super::limit::{self, ConnectionLimit};
use super::service::{Context, Peer};
use super::shutdown::{DoneGuard, Shutdown};
use crate::body::Body;
use crate::config::HttpConfig;
use http::{Request, Response};
use hyper::body::Incoming;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub struct Listener {
    pub socket: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

pub async fn accept_loop(
    listener: Listener,
    ctx: Arc<Context>,
    limit: ConnectionLimit,
    mut shutdown: Shutdown,
    done: DoneGuard,
) {
    let h2c = ctx.config.http.h2c;
    loop {
        let accepted = tokio::select! {
            accepted = listener.socket.accept() => accepted,
            _ = shutdown.triggered() => return,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                handle_accept_error(e).await;
                continue;
            }
        };
        let Some(permit) = limit.acquire() else {
            tracing::debug!(remote = %addr, max = limit.max(), "http.max_connections reached: refusing");
            tokio::spawn(limit::refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (ctx, shutdown, done) = (ctx.clone(), shutdown.clone(), done.clone());
        match &listener.tls {
            None => {
                let peer = Peer { addr, https: false };
                let protocol = Protocol::Auto { h2c };
                tokio::spawn(async move {
                    connection::serve(stream, peer, protocol, ctx, shutdown, done).await;
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let header_timeout = ctx.config.http.read_header_timeout;
                    let tls = match tokio::time::timeout(header_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            return tracing::debug!(remote = %addr, "TLS handshake failed: {e}")
                        }
                        Err(_) => return tracing::debug!(remote = %addr, "TLS handshake timed out"),
                    };
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    let protocol = if h2 {
                        Protocol::Http2
                    } else {
                        Protocol::Auto { h2c: false }
                    };
                    let peer = Peer { addr, https: true };
                    connection::serve(tls, peer, protocol, ctx, shutdown, done).await;
                    drop(permit);
                });
            }
        }
    }
}

/// A side listener (the pool's status and metrics addresses): plain HTTP/1.1, the main
/// listener's head and idle timeouts and header limit, its own connection limit, and the same
/// back-off when descriptors run out.
pub async fn side_loop<H, F>(
    socket: TcpListener,
    http: HttpConfig,
    limit: ConnectionLimit,
    handler: H,
) where
    H: Fn(Request<Incoming>, Noted) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let http = Arc::new(http);
    loop {
        // Until the process ends: readiness is asked while the server drains.
        let (stream, addr) = match socket.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                handle_accept_error(e).await;
                continue;
            }
        };
        let Some(permit) = limit.acquire() else {
            tokio::spawn(limit::refuse(stream));
            continue;
        };
        let (http, handler) = (http.clone(), handler.clone());
        tokio::spawn(async move {
            let peer = Peer { addr, https: false };
            let protocol = Protocol::Auto { h2c: false };
            connection::serve_with(stream, peer, protocol, &http, None, handler).await;
            drop(permit);
        });
    }
}

async fn handle_accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    // EMFILE/ENFILE and friends: give the process a moment to free descriptors.
    tracing::error!("accept failed: {e}; retrying in 100ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
