//! The plain-Rust request handed from tokio to the PHP thread.
pub mod cgi;
pub mod cookie;
pub mod form;
pub mod forwarded;
pub mod id;
pub mod multipart;
pub mod spool;
pub mod target;

use bytes::Bytes;
use std::net::SocketAddr;

/// Everything PHP may ask about one request. Built in tokio, read on the PHP thread.
#[derive(Debug)]
pub struct RequestData {
    pub remote_addr: SocketAddr,
    /// "HTTP/1.0", "HTTP/1.1" or "HTTP/2.0".
    pub protocol: &'static str,
    pub method: http::Method,
    /// The request target in parts (scheme, authority, path, query), checked once.
    pub target: target::Target,
    pub headers: http::HeaderMap,
    /// Raw body, in memory or spooled to a temp file (`spool`); empty when the body was
    /// multipart (its parts are in `form` and `uploads`).
    pub body: spool::RequestBody,
    /// Fields of an urlencoded or multipart body, PHP-style nested keys.
    pub form: Option<form::Tree<Bytes>>,
    /// Files of a multipart body, PHP-style nested keys; the files are deleted on drop.
    pub uploads: form::Tree<multipart::Upload>,
}

impl RequestData {
    /// A request with no headers or body, for tests: `target` is a path with an optional query.
    #[cfg(test)]
    pub fn for_test(method: http::Method, target: &str) -> RequestData {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (target, None),
        };
        RequestData {
            remote_addr: "127.0.0.1:1".parse().unwrap(),
            protocol: "HTTP/1.1",
            method,
            target: target::Target::from_parts(false, Some("h".into()), path.into(), query)
                .unwrap(),
            headers: http::HeaderMap::new(),
            body: spool::RequestBody::default(),
            form: None,
            uploads: form::Tree::new(),
        }
    }
}
