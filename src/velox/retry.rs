//! What each failed call gets, by error class (the table is in docs/velox.md, "Retries"):
//! transient faults are retried with backoff up to `max_attempts`, a build of the same spec in
//! progress (409) is polled until it is done, and deterministic failures are answered at once,
//! since another attempt would cost a full build and fail the same way.
use super::client::{self, Built, Fault, BUILD_PATH};
use super::error::BuildFailure;
use super::metrics::Metrics;
use super::VeloxError;
use crate::config::{RetryConfig, VeloxConfig};
use bytes::Bytes;
use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// What to do after a failed call.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Another attempt may succeed; this is the error if none is left.
    Retry(VeloxError),
    /// The same build is in progress on Velox: ask again later, until `build_timeout`.
    Poll,
    /// Another attempt would fail the same way.
    Answer(VeloxError),
}

/// Phrases of network trouble on Velox's side (fetching modules or the template), which an
/// `internal` error can carry; matched lowercased.
const TRANSIENT: [&str; 12] = [
    "no such host",
    "connection refused",
    "connection reset",
    "i/o timeout",
    "tls handshake timeout",
    "temporary failure in name resolution",
    "network is unreachable",
    "server misbehaving",
    "unexpected eof",
    "bad gateway",
    "service unavailable",
    "gateway timeout",
];

/// The table, as a pure function of the failed call.
pub fn classify(fault: &Fault) -> Verdict {
    let (code, message, details) = match fault {
        Fault::Transport(why) => return Verdict::Retry(VeloxError::Unreachable(why.clone())),
        // A proxy in front of Velox that lost it for a moment.
        Fault::Malformed { status, why } if matches!(status, 502..=504) => {
            return Verdict::Retry(VeloxError::Unavailable {
                code: format!("http_{status}"),
                message: why.clone(),
            })
        }
        Fault::Malformed { status, why } => {
            return Verdict::Answer(VeloxError::MalformedReply(format!("HTTP {status}: {why}")))
        }
        Fault::Error {
            code,
            message,
            details,
            ..
        } => (code.as_str(), message, details),
    };
    let upstream = || VeloxError::Upstream {
        code: code.to_string(),
        message: message.clone(),
    };
    match code {
        "already_exists" => Verdict::Poll,
        "invalid_argument" => Verdict::Answer(VeloxError::Refused {
            message: message.clone(),
            fields: violated_fields(details),
        }),
        "unavailable" | "resource_exhausted" => Verdict::Retry(VeloxError::Unavailable {
            code: code.to_string(),
            message: message.clone(),
        }),
        // Velox gave up on its side (shutting down, a deadline of its own): a new call is a
        // new chance.
        "canceled" | "deadline_exceeded" | "aborted" => Verdict::Retry(upstream()),
        "internal" | "unknown" | "build_error" => {
            let lower = message.to_lowercase();
            if lower.contains("does not support") || lower.contains("unsupported goos") {
                return Verdict::Answer(failed(BuildFailure::UnsupportedTarget, message));
            }
            if TRANSIENT.iter().any(|phrase| lower.contains(phrase)) {
                return Verdict::Retry(upstream());
            }
            if lower.contains("resolved to") || lower.contains("verifyresolvedversions") {
                return Verdict::Answer(failed(BuildFailure::VersionConflict, message));
            }
            if lower.contains("downloading template")
                || lower.contains("unknown revision")
                || lower.contains("invalid version")
            {
                return Verdict::Answer(failed(BuildFailure::UnknownVersion, message));
            }
            let compile = ["building plugins", "compile", "go failed", "exit status"];
            if code == "build_error" || compile.iter().any(|w| lower.contains(w)) {
                return Verdict::Answer(failed(BuildFailure::Compile, message));
            }
            // Anything else Velox calls internal costs a build too; answering beats guessing.
            Verdict::Answer(upstream())
        }
        _ => Verdict::Answer(upstream()),
    }
}

fn failed(kind: BuildFailure, message: &str) -> VeloxError {
    VeloxError::BuildFailed {
        kind,
        message: message.to_string(),
    }
}

/// The field paths Velox's validation violations name (`buf.validate.Violations` in the
/// error's details, as connect-go renders it in `debug`), at most a few, short ones only.
pub fn violated_fields(details: &Value) -> Vec<String> {
    let mut fields = Vec::new();
    let violations = details
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|detail| detail.pointer("/debug/violations")?.as_array())
        .flatten();
    for violation in violations {
        let path = match violation
            .pointer("/field/elements")
            .and_then(Value::as_array)
        {
            Some(elements) => field_path(elements),
            None => violation
                .get("fieldPath")
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        let safe = |p: &String| {
            p.len() <= 80
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.[]".contains(&b))
        };
        match path.filter(safe) {
            Some(path) if !fields.contains(&path) && fields.len() < 5 => fields.push(path),
            _ => {}
        }
    }
    fields
}

/// `[{fieldName: plugins, index: "0"}, {fieldName: tag}]` → `plugins[0].tag`.
fn field_path(elements: &[Value]) -> Option<String> {
    let mut path = String::new();
    for element in elements {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(element.get("fieldName")?.as_str()?);
        match element.get("index") {
            Some(Value::String(i)) => path.push_str(&format!("[{i}]")),
            Some(Value::Number(i)) => path.push_str(&format!("[{i}]")),
            _ => {}
        }
    }
    Some(path).filter(|p| !p.is_empty())
}

/// The delay before retry or poll number `n` (0 for the first): `initial × multiplier^n`,
/// capped at `max_delay`.
pub fn backoff(retry: &RetryConfig, n: u32) -> Duration {
    let factor = retry.backoff_multiplier.powi(n.min(1024) as i32);
    let secs = retry.initial_delay.as_secs_f64() * factor;
    // The cap is applied before converting: a huge float would panic in from_secs_f64.
    Duration::from_secs_f64(secs.min(retry.max_delay.as_secs_f64()))
}

/// Calls Velox until it brings a build or a verdict says stop. The caller bounds the whole
/// with `build_timeout`, which is also what ends polling.
pub async fn build(
    http: &reqwest::Client,
    config: &VeloxConfig,
    body: Bytes,
    log: &BuildLog<'_>,
    metrics: &Metrics,
) -> Result<Built, VeloxError> {
    let url = format!("{}{BUILD_PATH}", config.server_url.trim_end_matches('/'));
    let max = config.retry.max_attempts.max(1);
    let (mut failures, mut polls) = (0, 0);
    loop {
        let call = log.calls.fetch_add(1, Relaxed) + 1;
        metrics.upstream_call();
        let started = Instant::now();
        let fault = match client::attempt(http, &url, body.clone()).await {
            Ok(built) => return Ok(built),
            Err(fault) => fault,
        };
        let verdict = classify(&fault);
        log.call_failed(call, started, &fault, &verdict);
        let delay = match verdict {
            Verdict::Answer(error) => return Err(error),
            Verdict::Retry(error) => {
                failures += 1;
                if failures >= max {
                    return Err(error);
                }
                metrics.retry();
                backoff(&config.retry, failures - 1)
            }
            Verdict::Poll => {
                polls += 1;
                backoff(&config.retry, polls - 1)
            }
        };
        tokio::time::sleep(delay).await;
    }
}

/// The fields every log line of one build carries.
pub struct BuildLog<'a> {
    pub request_id: &'a str,
    pub hash: &'a str,
    /// Calls made so far; read for the final log line even when the build timed out.
    pub calls: AtomicU32,
}

impl BuildLog<'_> {
    fn call_failed(&self, call: u32, started: Instant, fault: &Fault, verdict: &Verdict) {
        let duration_ms = started.elapsed().as_millis() as u64;
        if *verdict == Verdict::Poll {
            tracing::debug!(
                request_id = self.request_id,
                spec_hash = self.hash,
                call,
                duration_ms,
                "velox build in progress elsewhere: polling"
            );
            return;
        }
        // Velox's whole message (go output, its paths) is for the log, not for the client.
        let (status, code, message) = match fault {
            Fault::Transport(why) => (0, "transport", why.as_str()),
            Fault::Error {
                status,
                code,
                message,
                ..
            } => (*status, code.as_str(), message.as_str()),
            Fault::Malformed { status, why } => (*status, "malformed", why.as_str()),
        };
        tracing::warn!(
            request_id = self.request_id,
            spec_hash = self.hash,
            call,
            duration_ms,
            status,
            code,
            retry = matches!(verdict, Verdict::Retry(_)),
            message,
            "velox call failed"
        );
    }
}
