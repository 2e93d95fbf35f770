//! The Connect JSON call to Velox: one attempt, the reply parsing, and the retry loop with
//! exponential backoff.
use super::metrics::Metrics;
use super::VeloxError;
use crate::config::{RetryConfig, VeloxConfig};
use bytes::Bytes;
use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The RPC path under `server_url`.
pub const BUILD_PATH: &str = "/api.service.v1.BuildService/Build";

/// A reply larger than this is not a Velox reply (logs of a big build are well below it).
const MAX_REPLY: usize = 16 << 20;

/// What a successful build reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// Empty when the build produced nothing.
    pub path: String,
    pub logs: Option<String>,
}

/// How one attempt failed, and whether another attempt may help.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub error: VeloxError,
    pub retryable: bool,
}

/// The delay before retry number `n` (0 for the first retry): `initial × multiplier^n`,
/// capped at `max_delay`.
pub fn backoff(retry: &RetryConfig, n: u32) -> Duration {
    let factor = retry.backoff_multiplier.powi(n.min(1024) as i32);
    let secs = retry.initial_delay.as_secs_f64() * factor;
    // The cap is applied before converting: a huge float would panic in from_secs_f64.
    Duration::from_secs_f64(secs.min(retry.max_delay.as_secs_f64()))
}

/// Reads Velox's answer: status first, then the JSON, never the bytes as such.
pub fn parse_reply(status: u16, body: &[u8]) -> Result<Built, Failure> {
    // Retry where Velox may answer differently later: it is busy (409, the build in progress
    // will finish), overloaded or failed on its side (5xx).
    let retryable = status == 409 || status >= 500;
    let malformed = |why: String| Failure {
        error: VeloxError::MalformedReply(format!("HTTP {status}: {why}")),
        retryable,
    };
    let json: Value = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(_) => return Err(malformed("not a JSON object".into())),
        Err(_) => return Err(malformed(format!("not JSON: {}", snippet(body)))),
    };
    let string = |name: &str| json.get(name).and_then(Value::as_str).map(str::to_string);
    if status == 200 {
        return match json.get("success") {
            Some(Value::Bool(false)) => Err(Failure {
                error: VeloxError::Upstream {
                    code: string("code").map_or("build_error".into(), |c| c.to_lowercase()),
                    message: string("error").unwrap_or_default(),
                },
                retryable: false,
            }),
            _ => Ok(Built {
                path: string("path").unwrap_or_default(),
                logs: string("logs"),
            }),
        };
    }
    match string("code") {
        Some(code) => {
            let code = code.to_lowercase();
            let retryable = retryable || code == "unavailable" || code == "already_exists";
            let message = string("message").or_else(|| string("error"));
            Err(Failure {
                error: VeloxError::Upstream {
                    code,
                    message: message.unwrap_or_default(),
                },
                retryable,
            })
        }
        None => Err(malformed("no error code".into())),
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]);
    text.chars().filter(|c| !c.is_control()).collect()
}

/// One HTTP call, bounded by `timeout`.
pub async fn attempt(
    http: &reqwest::Client,
    url: &str,
    body: Bytes,
    timeout: Duration,
) -> Result<Built, Failure> {
    let call = async {
        let reply = http
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("Connect-Protocol-Version", "1")
            .body(body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = reply.status().as_u16();
        let bytes = read_limited(reply).await?;
        parse_reply(status, &bytes)
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(Failure {
            error: VeloxError::AttemptTimeout(timeout),
            retryable: true,
        }),
    }
}

async fn read_limited(mut reply: reqwest::Response) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    while let Some(chunk) = reply.chunk().await.map_err(unreachable)? {
        if out.len() + chunk.len() > MAX_REPLY {
            return Err(Failure {
                error: VeloxError::MalformedReply("reply too large".into()),
                retryable: false,
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn unreachable(e: reqwest::Error) -> Failure {
    // The full chain says why (refused, reset, closed); reqwest's own Display does not.
    let mut why = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        why = format!("{why}: {inner}");
        source = inner.source();
    }
    Failure {
        error: VeloxError::Unreachable(why),
        retryable: true,
    }
}

/// The retry loop: at most `max_attempts` calls, backoff between them. The caller bounds the
/// whole with `build_timeout`.
pub async fn build(
    http: &reqwest::Client,
    config: &VeloxConfig,
    body: Bytes,
    log: &BuildLog<'_>,
    metrics: &Metrics,
) -> Result<Built, VeloxError> {
    let url = format!("{}{BUILD_PATH}", config.server_url.trim_end_matches('/'));
    let max = config.retry.max_attempts.max(1);
    let mut number = 1;
    loop {
        log.attempts.store(number, Relaxed);
        metrics.upstream_call();
        let started = Instant::now();
        let result = attempt(http, &url, body.clone(), config.request_timeout).await;
        let failure = match result {
            Ok(built) => return Ok(built),
            Err(failure) => failure,
        };
        log.attempt_failed(number, started, &failure);
        if !failure.retryable || number >= max {
            return Err(failure.error);
        }
        tokio::time::sleep(backoff(&config.retry, number - 1)).await;
        metrics.retry();
        number += 1;
    }
}

/// The fields every log line of one build carries.
pub struct BuildLog<'a> {
    pub request_id: &'a str,
    pub hash: &'a str,
    /// Attempts made so far; read for the final log line even when the build timed out.
    pub attempts: AtomicU32,
}

impl BuildLog<'_> {
    fn attempt_failed(&self, attempt: u32, started: Instant, failure: &Failure) {
        tracing::warn!(
            request_id = self.request_id,
            spec_hash = self.hash,
            attempt,
            duration_ms = started.elapsed().as_millis() as u64,
            retryable = failure.retryable,
            error = %failure.error,
            "velox attempt failed"
        );
    }
}
