//! Why a build order did not end in a streamed artifact, and the one table from that to the
//! client's HTTP answer: a stable code and a short message. The full story (Velox's own
//! message, go output, paths on the build server) is in `Display`, which goes to the log only.
use crate::body::{self, Body};
use http::{header, HeaderValue, Response, StatusCode};
use std::fmt;
use std::time::Duration;

/// Cloned because one failed flight is reported to every client waiting on it.
#[derive(Debug, Clone, PartialEq)]
pub enum VeloxError {
    /// The config cannot be used (bad URL, HTTP client set-up failed); only from `Velox::new`.
    Config(String),
    /// PHP's build request is not valid JSON or not a valid build request (rr's own check).
    InvalidRequest(String),
    /// Velox refused the request as invalid (`invalid_argument`); `fields` are the ones its
    /// violations name, when it named them.
    Refused {
        message: String,
        fields: Vec<String>,
    },
    /// Velox's build failed in a way another attempt cannot fix.
    BuildFailed { kind: BuildFailure, message: String },
    /// Velox could not be reached (connection refused, reset, closed mid-reply).
    Unreachable(String),
    /// Velox was overloaded or shutting down (`unavailable`, `resource_exhausted`, a proxy's
    /// 502/503/504) at the last attempt.
    Unavailable { code: String, message: String },
    /// Any other error answer from Velox; `code` is its Connect code, lowercased.
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

/// The deterministic build failures, told apart by Velox's message (`retry::classify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildFailure {
    /// The build server cannot build for the requested platform.
    UnsupportedTarget,
    /// A plugin resolved to another version than the one asked for.
    VersionConflict,
    /// A requested version, tag or module does not exist.
    UnknownVersion,
    /// Compiling failed (go errors, a too old toolchain, ...).
    Compile,
}

impl VeloxError {
    /// The table: every error's HTTP status and stable machine-readable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        match self {
            VeloxError::InvalidRequest(_) | VeloxError::Refused { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            VeloxError::BuildFailed { kind, .. } => match kind {
                BuildFailure::UnsupportedTarget => (unprocessable, "unsupported_target"),
                BuildFailure::VersionConflict => (unprocessable, "version_conflict"),
                BuildFailure::UnknownVersion => (unprocessable, "unknown_version"),
                BuildFailure::Compile => (unprocessable, "build_failed"),
            },
            VeloxError::Unreachable(_) => (StatusCode::BAD_GATEWAY, "velox_unreachable"),
            VeloxError::Unavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "velox_unavailable")
            }
            VeloxError::Upstream { .. } => (StatusCode::BAD_GATEWAY, "velox_error"),
            VeloxError::MalformedReply(_) => (StatusCode::BAD_GATEWAY, "velox_bad_reply"),
            VeloxError::BuildTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "build_timeout"),
            VeloxError::NoFile => (StatusCode::INTERNAL_SERVER_ERROR, "no_artifact"),
            VeloxError::Stream(_) => (StatusCode::INTERNAL_SERVER_ERROR, "artifact_unavailable"),
            VeloxError::Config(_) | VeloxError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }

    /// What the client reads: short, and nothing of the build server's paths or output.
    pub fn client_message(&self) -> String {
        match self {
            // rr's own words about PHP's request: they name the field and nothing else.
            VeloxError::InvalidRequest(why) => format!("invalid build request: {why}"),
            VeloxError::Refused { fields, .. } if fields.is_empty() => {
                "the build server refused the build request".into()
            }
            VeloxError::Refused { fields, .. } => format!(
                "the build server refused the build request: {}",
                fields.join(", ")
            ),
            VeloxError::BuildFailed { kind, .. } => match kind {
                BuildFailure::UnsupportedTarget => {
                    "the build server cannot build for this target platform".into()
                }
                BuildFailure::VersionConflict => {
                    "a plugin resolved to another version than the one requested".into()
                }
                BuildFailure::UnknownVersion => "a requested version or tag does not exist".into(),
                BuildFailure::Compile => "the build failed".into(),
            },
            VeloxError::Unreachable(_) => "the build server cannot be reached".into(),
            VeloxError::Unavailable { .. } => {
                "the build server is busy or shutting down; try again later".into()
            }
            VeloxError::Upstream { code, .. } => format!("the build server failed ({code})"),
            VeloxError::MalformedReply(_) => "the build server's reply was not understood".into(),
            VeloxError::BuildTimeout(after) => {
                format!("the build did not finish within {}s", after.as_secs_f64())
            }
            VeloxError::NoFile => "the build produced no file".into(),
            VeloxError::Stream(_) => "the built file cannot be served".into(),
            VeloxError::Config(_) | VeloxError::Internal(_) => "internal error".into(),
        }
    }

    /// The JSON error answer `{error, code, request_id}`.
    pub fn into_response(&self, request_id: &str) -> Response<Body> {
        let (status, code) = self.status_and_code();
        let json = serde_json::json!({
            "error": self.client_message(),
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

/// The whole story, for the log.
impl fmt::Display for VeloxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VeloxError::Config(why) => write!(f, "velox config: {why}"),
            VeloxError::InvalidRequest(why) => write!(f, "invalid build request: {why}"),
            VeloxError::Refused { message, .. } => {
                write!(f, "velox refused the request: {message}")
            }
            VeloxError::BuildFailed { kind, message } => {
                write!(f, "velox build failed ({kind:?}): {message}")
            }
            VeloxError::Unreachable(why) => write!(f, "velox unreachable: {why}"),
            VeloxError::Unavailable { code, message } | VeloxError::Upstream { code, message } => {
                write!(f, "velox error {code}: {message}")
            }
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
