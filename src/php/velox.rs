//! `RR\velox_build()`, and the `X-Velox-Build` header of `respond()`: both hand a build order to
//! Rust, which calls the Velox server and streams the binary while the worker moves on.
// PHP parameter names come from the Rust ones (`$buildRequest`); the macro drops item-level allows.
#![allow(non_snake_case)]
use super::convert;
use super::exception::{bad_type, bad_value, respond_error};
use super::worker::with_engine;
use crate::velox::{BuildOrder, BUILD_HEADER};
use bytes::Bytes;
use ext_php_rs::builders::ModuleBuilder;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendHashTable, Zval};
use http::header::CONTENT_ENCODING;
use http::{HeaderMap, HeaderName};

/// Answers the current request with a binary built by the Velox server (`velox.server_url`).
/// Returns at once: rr validates the request, calls Velox and streams the file.
/// The client gets a JSON error (`{error, code, request_id}`, codes in docs/velox.md) when the
/// build fails.
///
/// @param array<string, mixed>|string $buildRequest the build request, or its JSON text
/// @param array<string, string|string[]> $headers response headers to forward to the client
/// @throws \TypeError when $buildRequest is neither an array nor a string
/// @throws \ValueError when a header name or value is invalid
/// @throws \RR\Exception when no request is pending or Velox is not configured
#[php_function]
#[php(name = "RR\\velox_build")]
pub fn velox_build(buildRequest: &Zval, headers: Option<&ZendHashTable>) -> PhpResult<()> {
    let body = if let Some(text) = buildRequest.binary_slice::<u8>() {
        Bytes::copy_from_slice(text)
    } else if buildRequest.is_array() {
        let value = convert::json(buildRequest);
        Bytes::from(serde_json::to_vec(&value).map_err(|e| {
            bad_value(format!(
                "RR\\velox_build(): the build request cannot be encoded: {e}"
            ))
        })?)
    } else {
        return Err(bad_type(format!(
            "RR\\velox_build(): $buildRequest must be an array or a JSON string, {} given",
            convert::type_name(buildRequest)
        )));
    };
    let headers = super::worker::headers("RR\\velox_build", headers)?;
    submit("RR\\velox_build", order(body, headers))
}

/// Adds the functions of this file to the module.
pub fn register(module: ModuleBuilder) -> ModuleBuilder {
    module.function(wrap_function!(velox_build))
}

/// True when `respond()` headers ask for a build instead of a plain answer.
pub fn requested(headers: &HeaderMap) -> bool {
    // A name made once: `respond()` asks on every answer, and a `&str` is parsed at each look-up.
    static NAME: HeaderName = HeaderName::from_static(BUILD_HEADER);
    headers
        .get(&NAME)
        .is_some_and(|value| !value.as_bytes().iter().all(u8::is_ascii_whitespace))
}

/// The order for a body PHP produced, gzip-compressed when it said so.
pub fn order(body: Bytes, headers: HeaderMap) -> BuildOrder {
    let gzip = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    BuildOrder {
        body,
        gzip,
        headers,
    }
}

pub fn submit(caller: &str, order: BuildOrder) -> PhpResult<()> {
    with_engine(caller, |engine| {
        engine
            .velox_build(order)
            .map_err(|e| respond_error(caller, e))
    })
}
