//! Minimal hyper 1.x hello-world server used as row (a) of rr's benchmark.
//!
//! Usage: hyper-baseline PORT [current|multi]
//!   current (default): single-threaded current_thread tokio runtime,
//!                      the fair comparison with one PHP worker thread.
//!   multi:             multi-thread runtime with one worker per core.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::builder()
        .status(200)
        .header("Content-Type", "text/plain")
        .body(Full::new(Bytes::from_static(b"Hello, World!")))
        .unwrap())
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            eprintln!("usage: hyper-baseline PORT [current|multi]");
            std::process::exit(2)
        });
    let mode = args.next().unwrap_or_else(|| "current".into());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let rt = match mode.as_str() {
        "current" => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        "multi" => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
        other => {
            eprintln!("unknown mode {other:?}: expected current or multi");
            std::process::exit(2)
        }
    };
    eprintln!("hyper-baseline listening on http://{addr} ({mode})");
    rt.block_on(serve(addr))
}
