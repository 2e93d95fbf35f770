//! The plain-Rust request handed from tokio to the PHP thread.
pub mod cgi;
pub mod cookie;
pub mod form;
pub mod multipart;

use bytes::Bytes;
use std::net::SocketAddr;

/// Everything PHP may ask about one request. Built in tokio, read on the PHP thread.
#[derive(Debug)]
pub struct RequestData {
    pub remote_addr: SocketAddr,
    /// "HTTP/1.0", "HTTP/1.1" or "HTTP/2.0".
    pub protocol: &'static str,
    pub method: http::Method,
    /// The full URL as the client asked for it: scheme://host/path?query.
    pub uri: String,
    pub headers: http::HeaderMap,
    /// Raw body; empty when the body was multipart (its parts are in `form` and `uploads`).
    pub body: Bytes,
    /// Fields of an urlencoded or multipart body, PHP-style nested keys.
    pub form: Option<form::Tree<Bytes>>,
    /// Files of a multipart body, PHP-style nested keys; the files are deleted on drop.
    pub uploads: form::Tree<multipart::Upload>,
    pub https: bool,
}
