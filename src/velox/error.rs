//! Why a build order did not end in a streamed artifact, and the one table from that to the
//! client's HTTP answer.
use crate::body::{self, Body};
use http::{header, HeaderValue, Response, StatusCode};
use std::fmt;
use std::time::Duration;

/// Cloned because one failed flight is reported to every client waiting on it.
#[derive(Debug, Clone, PartialEq)]
pub enum VeloxError {
    /// The config cannot be used (bad URL, HTTP client set-up failed); only from `Velox::new`.
    Config(String),
    /// PHP's build request is not valid JSON or not a valid build request.
    InvalidRequest(String),
    /// Velox could not be reached (connection refused, reset, closed mid-reply).
    Unreachable(String),
    /// The last attempt did not get an answer within `request_timeout`.
    AttemptTimeout(Duration),
    /// Velox answered with an error; `code` is its Connect (or legacy) code, lowercased.
    Upstream { code: String, message: String },
    /// Velox answered something that is not a reply we know.
    MalformedReply(String),
    /// The whole build took longer than `build_timeout`.
    BuildTimeout(Duration),
    /// Velox reported success without a path.
    NoFile,
    /// The artifact cannot be streamed (outside the roots, missing, not a regular file, ...).
    Stream(String),
    /// A bug or a lost task on our side.
    Internal(String),
}

impl VeloxError {
    /// The table: every error's HTTP status and machine-readable code.
    pub fn status_and_code(&self) -> (StatusCode, &str) {
        match self {
            VeloxError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            VeloxError::Unreachable(_) => (StatusCode::BAD_GATEWAY, "velox_unreachable"),
            VeloxError::AttemptTimeout(_) => (StatusCode::BAD_GATEWAY, "velox_timeout"),
            VeloxError::Upstream { code, .. } => (StatusCode::BAD_GATEWAY, code.as_str()),
            VeloxError::MalformedReply(_) => (StatusCode::BAD_GATEWAY, "velox_bad_reply"),
            VeloxError::BuildTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "build_timeout"),
            VeloxError::NoFile => (StatusCode::INTERNAL_SERVER_ERROR, "no_artifact"),
            VeloxError::Stream(_) => (StatusCode::INTERNAL_SERVER_ERROR, "artifact_unavailable"),
            VeloxError::Config(_) | VeloxError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }

    /// The JSON error answer `{error, code, request_id}`.
    pub fn into_response(&self, request_id: &str) -> Response<Body> {
        let (status, code) = self.status_and_code();
        let json = serde_json::json!({
            "error": self.to_string(),
            "code": code,
            "request_id": request_id,
        });
        let mut response = Response::new(body::full(json.to_string()));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl fmt::Display for VeloxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VeloxError::Config(why) => write!(f, "velox config: {why}"),
            VeloxError::InvalidRequest(why) => write!(f, "invalid build request: {why}"),
            VeloxError::Unreachable(why) => write!(f, "velox unreachable: {why}"),
            VeloxError::AttemptTimeout(after) => {
                write!(f, "velox did not answer within {}s", after.as_secs_f64())
            }
            VeloxError::Upstream { code, message } => write!(f, "velox error {code}: {message}"),
            VeloxError::MalformedReply(why) => write!(f, "malformed velox reply: {why}"),
            VeloxError::BuildTimeout(after) => {
                write!(f, "build not finished within {}s", after.as_secs_f64())
            }
            VeloxError::NoFile => f.write_str("the build produced no file"),
            VeloxError::Stream(why) => write!(f, "cannot stream the artifact: {why}"),
            VeloxError::Internal(why) => write!(f, "internal error: {why}"),
        }
    }
}

impl std::error::Error for VeloxError {}
