//! The response body type every part of the server produces.
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};

/// A boxed, `Send` response body whose errors are plain I/O errors.
pub type Body = BoxBody<Bytes, std::io::Error>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// rr's own error body, the same from every part of the server that answers on its own:
/// `{"error": message, "code": code}`.
pub fn error_json(code: &str, message: &str) -> String {
    serde_json::json!({ "error": message, "code": code }).to_string()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}
