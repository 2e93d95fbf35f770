//! Everything the server answers on its own, and the one table from error to HTTP response.
use super::framing::FramingError;
use super::heads::FramingFault;
use crate::body::{self, Body};
use crate::request::forwarded::ForwardedError;
use crate::request::target::TargetError;
use http::{header, HeaderValue, Response, StatusCode};

/// Why the server answered instead of PHP.
#[derive(Debug)]
pub enum HttpError {
    /// Body larger than `http.max_request_size`.
    BodyTooLarge { limit: u64 },
    /// The client paused longer than `http.body_timeout` while sending the body.
    BodyTimeout,
    /// A body that could not be read or parsed (multipart framing, client reset mid-body).
    BadRequest(String),
    /// The queue of requests waiting for PHP is full.
    QueueFull,
    /// The worker is shutting down or its script ended.
    Unavailable,
    /// PHP did not answer within `http.request_timeout`.
    Timeout,
    /// The script ended, threw or exited while this request was pending.
    WorkerGone,
    /// The worker called `RR\Worker::error()`.
    WorkerError,
    /// Pool: the worker process died while running the request.
    WorkerCrashed,
    /// Pool: the request ran longer than `http.pool.supervisor.exec_ttl`.
    ExecTimeout,
    /// Pool: no worker was free within `http.pool.allocate_timeout`.
    NoWorker,
    /// `http.static`: a `..` path or a link out of the directory.
    Forbidden(&'static str),
    /// `sendFile()` named a file that does not exist.
    FileNotFound,
    /// The request target or its authority broke a rule of docs/request-target.md.
    BadTarget(TargetError),
    /// The request body's framing is one rr refuses (see `heads`).
    BadFraming(FramingFault),
    /// A trusted proxy forwarded a scheme or host that is not one (`http.trusted_subnets`).
    BadForwarded(ForwardedError),
    /// PHP's answer declared a length its body contradicts.
    BadResponse(FramingError),
    /// Anything else on our side (I/O error writing an upload, unreadable file, ...).
    Internal(&'static str),
}

impl HttpError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            HttpError::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            HttpError::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            HttpError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            HttpError::QueueFull => (StatusCode::SERVICE_UNAVAILABLE, "queue_full"),
            HttpError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            HttpError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "request_timeout"),
            HttpError::WorkerGone => (StatusCode::INTERNAL_SERVER_ERROR, "worker_gone"),
            HttpError::WorkerError => (StatusCode::INTERNAL_SERVER_ERROR, "worker_error"),
            HttpError::WorkerCrashed => (StatusCode::BAD_GATEWAY, "worker_crashed"),
            HttpError::ExecTimeout => (StatusCode::GATEWAY_TIMEOUT, "exec_timeout"),
            HttpError::NoWorker => (StatusCode::SERVICE_UNAVAILABLE, "no_worker"),
            HttpError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden_path"),
            HttpError::FileNotFound => (StatusCode::NOT_FOUND, "file_not_found"),
            HttpError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            HttpError::BadTarget(TargetError::Method(_)) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            HttpError::BadTarget(e) if e.is_host() => (StatusCode::BAD_REQUEST, "bad_host"),
            HttpError::BadTarget(_) => (StatusCode::BAD_REQUEST, "bad_target"),
            HttpError::BadFraming(FramingFault::LengthAndChunked) => {
                (StatusCode::BAD_REQUEST, "bad_framing")
            }
            HttpError::BadFraming(FramingFault::Coding(_)) => {
                (StatusCode::NOT_IMPLEMENTED, "unsupported_transfer_encoding")
            }
            HttpError::BadForwarded(ForwardedError::Host(_)) => {
                (StatusCode::BAD_REQUEST, "bad_host")
            }
            HttpError::BadForwarded(_) => (StatusCode::BAD_REQUEST, "bad_forwarded"),
            HttpError::BadResponse(_) => (StatusCode::INTERNAL_SERVER_ERROR, "bad_response"),
        }
    }

    fn message(&self) -> String {
        match self {
            HttpError::BodyTooLarge { limit } => format!("request body exceeds {limit} bytes"),
            HttpError::BodyTimeout => {
                "the request body stopped arriving (http.body_timeout)".into()
            }
            HttpError::BadRequest(why) => format!("bad request: {why}"),
            HttpError::QueueFull => "server busy: too many requests waiting".into(),
            HttpError::Unavailable => "server is shutting down".into(),
            HttpError::Timeout => "the application did not answer in time".into(),
            HttpError::WorkerGone => "the application ended without answering".into(),
            HttpError::WorkerError => "the application reported an error".into(),
            HttpError::WorkerCrashed => "the worker died while handling the request".into(),
            HttpError::ExecTimeout => "the request exceeded the execution time limit".into(),
            HttpError::NoWorker => "server busy: no worker became free in time".into(),
            HttpError::Forbidden(why) => format!("forbidden: {why}"),
            HttpError::FileNotFound => "file not found".into(),
            HttpError::Internal(what) => format!("internal error: {what}"),
            HttpError::BadTarget(e) => format!("bad request: {e}"),
            HttpError::BadForwarded(e) => format!("bad request: {e}"),
            HttpError::BadFraming(e @ FramingFault::LengthAndChunked) => {
                format!("bad request: {e}")
            }
            HttpError::BadFraming(e) => e.to_string(),
            // The values go to the log; the client learns only that the answer was broken.
            HttpError::BadResponse(_) => "the application's answer could not be framed".into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// The response: status, a JSON body `{error, code}`, and the headers that go with it.
    pub fn into_response(self) -> Response<Body> {
        let (status, code) = self.status_and_code();
        let mut response = Response::new(body::full(body::error_json(code, &self.message())));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match self {
            HttpError::QueueFull | HttpError::Unavailable | HttpError::NoWorker => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            HttpError::BadTarget(TargetError::Method(_)) => {
                headers.insert(
                    header::ALLOW,
                    HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
                );
            }
            // The worker's state is unknown, or the client's next request would start where
            // hyper's reading of this body ends: don't reuse this connection.
            HttpError::WorkerGone
            | HttpError::WorkerCrashed
            | HttpError::ExecTimeout
            | HttpError::BadFraming(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn every_error_is_json_with_its_status() {
        let cases = [
            (HttpError::BodyTooLarge { limit: 10 }, 413),
            (HttpError::BadRequest("x".into()), 400),
            (HttpError::QueueFull, 503),
            (HttpError::Unavailable, 503),
            (HttpError::Timeout, 504),
            (HttpError::WorkerGone, 500),
            (HttpError::WorkerError, 500),
            (HttpError::WorkerCrashed, 502),
            (HttpError::ExecTimeout, 504),
            (HttpError::NoWorker, 503),
            (HttpError::Forbidden("x"), 403),
            (HttpError::FileNotFound, 404),
            (HttpError::Internal("io"), 500),
            (HttpError::BadTarget(TargetError::Fragment), 400),
            (HttpError::BadTarget(TargetError::HostMissing), 400),
            (
                HttpError::BadForwarded(ForwardedError::Proto("ftp".into())),
                400,
            ),
            (HttpError::BadFraming(FramingFault::LengthAndChunked), 400),
            (
                HttpError::BadFraming(FramingFault::Coding("gzip".into())),
                501,
            ),
            (
                HttpError::BadTarget(TargetError::Method(http::Method::TRACE)),
                405,
            ),
            (
                HttpError::BadResponse(FramingError::LengthMismatch {
                    declared: 1,
                    actual: 2,
                }),
                500,
            ),
        ];
        for (error, status) in cases {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(
                json["error"].is_string() && json["code"].is_string(),
                "{json}"
            );
        }
    }
}
