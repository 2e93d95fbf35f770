//! The Velox build offload: PHP hands over a build request, rr calls the Velox build server
//! and streams the built binary to the client while the PHP worker moves on.
//!
//! # Layout
//! - `order`    [`BuildOrder`] from PHP → validated `Spec` (request id, normalized spec, hash).
//! - `client`   one Connect JSON call and the reading of its reply.
//! - `retry`    the error classes: retry, poll a build in progress, or answer at once.
//! - `flight`   single-flight: one build task per spec, aborted when its last client is gone.
//! - `artifact` rr's record of each spec's artifact, and the strong ETag of its version.
//! - `cache`    the local artifact cache (LRU by size).
//! - `error`    [`VeloxError`] and the one table from it to the client's HTTP answer.
//! - `metrics`  counters and the duration histogram.
//!
//! This file is the service: record and cache lookup, flight, and the streamed answer.
mod artifact;
mod cache;
mod client;
mod error;
mod flight;
mod metrics;
mod order;
mod retry;
#[cfg(test)]
mod tests;

pub use client::BUILD_PATH;
pub use error::{BuildFailure, VeloxError};
pub use metrics::{MetricsSnapshot, Outcome};
pub use order::BuildOrder;

use crate::body::Body;
use crate::config::VeloxConfig;
use crate::stream::{self, Validators};
use artifact::Records;
use cache::Cache;
use flight::Flights;
use http::header::{
    CONTENT_DISPOSITION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, LAST_MODIFIED,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use metrics::Metrics;
use order::Spec;
use retry::BuildLog;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `HIT` when rr served its own record or cache of the spec's build, `MISS` when Velox was
/// asked.
pub const CACHE_HEADER: &str = "x-velox-cache";
/// PHP's trigger header; never forwarded.
pub const BUILD_HEADER: &str = "x-velox-build";

/// A streamed artifact answers `If-None-Match` with 304 and `If-Range` with its strong tag.
const VALIDATORS: Validators = Validators {
    etag: true,
    conditional: true,
};

/// The service; shared through an `Arc` by every connection.
pub struct Velox {
    shared: Arc<Shared>,
    /// What a flight yields: the checked artifact path, or why there is none.
    flights: Flights<Result<PathBuf, VeloxError>>,
}

/// What a build task needs after its clients are gone.
struct Shared {
    config: VeloxConfig,
    http: reqwest::Client,
    records: Records,
    cache: Option<Cache>,
    metrics: Metrics,
}

impl Shared {
    /// Where an artifact may be streamed from: Velox's artifact directories, and the local
    /// cache's when it is on.
    fn roots(&self) -> Vec<PathBuf> {
        let mut roots = self.config.artifacts_dir.clone();
        if self.cache.is_some() {
            roots.push(self.config.cache.dir.clone());
        }
        roots
    }
}

impl Velox {
    /// Sets the service up: the HTTP client, and the cache index when the cache is enabled
    /// (a directory listing, nothing more).
    pub fn new(config: VeloxConfig) -> Result<Velox, VeloxError> {
        let url = config.server_url.as_str();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(VeloxError::Config(format!(
                "server_url {url:?} is not http(s)"
            )));
        }
        // No request timeout: a call lasts as long as its build. Keepalive probes find a
        // Velox host that vanished without closing the connection.
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_keepalive_interval(Duration::from_secs(10))
            .tcp_keepalive_retries(6)
            .build()
            .map_err(|e| VeloxError::Config(format!("HTTP client: {e}")))?;
        let cache = config
            .cache
            .enabled
            .then(|| Cache::open(config.cache.dir.clone(), config.cache.max_size));
        let shared = Shared {
            config,
            http,
            records: Records::default(),
            cache,
            metrics: Metrics::default(),
        };
        Ok(Velox {
            shared: Arc::new(shared),
            flights: Flights::default(),
        })
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }

    /// Runs one build order to the client's answer. Dropping the future withdraws the client
    /// from its flight; the last one gone aborts the Velox call.
    pub async fn respond(
        &self,
        order: BuildOrder,
        method: &Method,
        request_headers: &HeaderMap,
    ) -> Response<Body> {
        let mut record = Record {
            metrics: &self.shared.metrics,
            started: Instant::now(),
            outcome: None,
        };
        let spec = match Spec::parse(&order.body, order.gzip) {
            Ok(spec) => spec,
            Err((error, request_id)) => return record.failed(&error, &request_id),
        };
        let mut headers = forwarded(order.headers, &spec);
        let shared = &self.shared;
        if !spec.force_rebuild {
            if let Some(response) = self.known(&spec, &headers, method, request_headers).await {
                shared.metrics.cache_hit();
                return record.done(Outcome::Success, response);
            }
        }
        shared.metrics.cache_miss();
        headers.insert(CACHE_HEADER, HeaderValue::from_static("MISS"));

        // A forced rebuild must not be satisfied by a build that may hit Velox's cache.
        let key = match spec.force_rebuild {
            true => format!("{}+force", spec.hash),
            false => spec.hash.clone(),
        };
        let (request_id, hash) = (spec.request_id.clone(), spec.hash.clone());
        let mut ticket = self
            .flights
            .join(&key, || run_build(self.shared.clone(), spec));
        if !ticket.leader {
            tracing::debug!(
                request_id,
                spec_hash = key,
                "velox build joined one in progress"
            );
        }
        let result = ticket.wait().await.unwrap_or_else(|| {
            Err(VeloxError::Internal(
                "the build task ended without a result".into(),
            ))
        });
        let path = match result {
            Ok(path) => path,
            Err(error) => return record.failed(&error, &request_id),
        };
        let roots = self.shared.roots();
        match serve(path, roots, &hash, headers, method, request_headers).await {
            Ok(response) => record.done(Outcome::Success, response),
            Err(e) => {
                tracing::warn!(request_id, error = %e, "velox artifact not streamable");
                record.failed(&VeloxError::Stream(e.to_string()), &request_id)
            }
        }
    }

    /// The answer from what rr already has for the spec: the record of its last build (Velox's
    /// file, while Velox keeps it), else the local cache. `None` when neither can serve it.
    async fn known(
        &self,
        spec: &Spec,
        headers: &HeaderMap,
        method: &Method,
        request_headers: &HeaderMap,
    ) -> Option<Response<Body>> {
        let shared = &self.shared;
        let mut headers = headers.clone();
        headers.insert(CACHE_HEADER, HeaderValue::from_static("HIT"));
        if let Some(path) = shared.records.get(&spec.hash) {
            let reply = serve(
                path.clone(),
                shared.roots(),
                &spec.hash,
                headers.clone(),
                method,
                request_headers,
            );
            match reply.await {
                Ok(response) => return Some(response),
                // Velox deleted it (after 30 minutes, or evicted): build it again.
                Err(e) => {
                    tracing::debug!(spec_hash = spec.hash, error = %e, "velox record stale");
                    shared.records.forget(&spec.hash, &path);
                }
            }
        }
        let cache = shared.cache.as_ref()?;
        let path = cache.lookup(&spec.hash)?;
        match serve(
            path.clone(),
            shared.roots(),
            &spec.hash,
            headers,
            method,
            request_headers,
        )
        .await
        {
            Ok(response) => {
                shared.records.set(&spec.hash, path);
                Some(response)
            }
            // Deleted behind our back: build it again.
            Err(e) => {
                tracing::warn!(spec_hash = spec.hash, error = %e, "velox cache entry unusable");
                cache.forget(&spec.hash);
                None
            }
        }
    }
}

/// Streams an artifact with the strong tag of its version; `If-Range` and `If-None-Match`
/// are judged against that tag. The path is checked again at every open (it must still be a
/// regular file under one of `roots`) and opened as it was checked: a path swapped for a link
/// out of the directories since the build is refused, never followed.
async fn serve(
    path: PathBuf,
    roots: Vec<PathBuf>,
    hash: &str,
    mut headers: HeaderMap,
    method: &Method,
    request_headers: &HeaderMap,
) -> Result<Response<Body>, stream::StreamError> {
    let opened = tokio::task::spawn_blocking(move || {
        let opened = stream::open_allowed(&path, &roots)?;
        let meta = opened
            .file()
            .metadata()
            .map_err(|e| stream::StreamError::from_io(&path, e))?;
        Ok::<_, stream::StreamError>((opened, meta))
    })
    .await
    .map_err(|e| stream::StreamError::Io {
        path: PathBuf::new(),
        source: std::io::Error::other(e),
    })?;
    let (opened, meta) = opened?;
    headers.insert(ETAG, artifact::etag(hash, &meta));
    Ok(stream::respond(
        opened,
        StatusCode::OK,
        headers,
        method,
        request_headers,
        VALIDATORS,
    ))
}

/// One flight: call Velox (retries, polling, `build_timeout`), check the path, store it in
/// the cache, record it.
async fn run_build(shared: Arc<Shared>, spec: Spec) -> Result<PathBuf, VeloxError> {
    let started = Instant::now();
    let config = &shared.config;
    let log = BuildLog {
        request_id: &spec.request_id,
        hash: &spec.hash,
        calls: AtomicU32::new(0),
    };
    let body = bytes::Bytes::from(serde_json::Value::Object(spec.json.clone()).to_string());
    let call = retry::build(&shared.http, config, body, &log, &shared.metrics);
    let result = match tokio::time::timeout(config.build_timeout, call).await {
        Ok(Ok(built)) if built.path.is_empty() => Err(VeloxError::NoFile),
        Ok(Ok(built)) => checked(&shared, &spec.hash, PathBuf::from(built.path)).await,
        Ok(Err(error)) => Err(error),
        Err(_) => Err(VeloxError::BuildTimeout(config.build_timeout)),
    };
    if let Ok(path) = &result {
        shared.records.set(&spec.hash, path.clone());
    }
    if tracing::enabled!(tracing::Level::INFO) {
        let (outcome, path) = match &result {
            Ok(path) => ("success", path.display().to_string()),
            Err(e) => (outcome_of(e).as_str(), String::new()),
        };
        let error = result.as_ref().err().map(ToString::to_string);
        tracing::info!(
            request_id = spec.request_id,
            spec_hash = spec.hash,
            calls = log.calls.load(Relaxed),
            duration_ms = started.elapsed().as_millis() as u64,
            path,
            outcome,
            error,
            "velox build"
        );
    }
    result
}

/// Only a file under `artifacts_dir` is streamed or cached. The path used from here on is
/// the cached copy when there is one (so later hits serve the very same file), else the
/// checked (canonical) one. The cached copy is made from the file as it was checked (opened
/// beneath its root, no link followed), not from whatever its path names a moment later.
async fn checked(shared: &Arc<Shared>, hash: &str, path: PathBuf) -> Result<PathBuf, VeloxError> {
    let job = {
        let shared = shared.clone();
        let hash = hash.to_string();
        move || {
            let opened = stream::open_allowed(&path, &shared.config.artifacts_dir)
                .inspect_err(|e| tracing::warn!(path = %path.display(), error = %e, "velox artifact refused"))
                .map_err(|e| VeloxError::Stream(e.to_string()))?;
            let real = opened.path().to_path_buf();
            let Some(cache) = &shared.cache else {
                return Ok(real);
            };
            match cache.store(&hash, opened.file()) {
                Ok(cached) => Ok(cached),
                Err(e) => {
                    tracing::warn!(spec_hash = hash, error = %e, "velox artifact not cached");
                    Ok(real)
                }
            }
        }
    };
    // Blocking pool: canonicalize and the cache copy touch the disk, maybe for a while.
    tokio::task::spawn_blocking(job)
        .await
        .unwrap_or_else(|e| Err(VeloxError::Internal(format!("artifact check: {e}"))))
}

/// PHP's headers minus the framing ones, plus the artifact's own.
fn forwarded(mut headers: HeaderMap, spec: &Spec) -> HeaderMap {
    // The validators are the artifact's own: a resumed download must match its version.
    for name in [
        CONTENT_TYPE,
        CONTENT_LENGTH,
        CONTENT_ENCODING,
        ETAG,
        LAST_MODIFIED,
    ] {
        headers.remove(name);
    }
    headers.remove(HeaderName::from_static(BUILD_HEADER));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    // PHP may name the download itself.
    if !headers.contains_key(CONTENT_DISPOSITION) {
        let value = format!("attachment; filename=\"{}\"", file_name(spec));
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(CONTENT_DISPOSITION, value);
        }
    }
    headers
}

/// `rr-<os>-<arch>[.exe]`, in Go's platform names; rr's own platform when none was asked.
pub(crate) fn file_name(spec: &Spec) -> String {
    let os = spec.os.clone().unwrap_or_else(|| go_os().to_string());
    let arch = spec.arch.clone().unwrap_or_else(|| go_arch().to_string());
    let clean = |s: &str| -> String {
        s.chars()
            .map(
                |c| match c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                    true => c,
                    false => '_',
                },
            )
            .collect()
    };
    let exe = if os == "windows" { ".exe" } else { "" };
    format!("rr-{}-{}{exe}", clean(&os), clean(&arch))
}

fn go_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

pub(crate) fn outcome_of(error: &VeloxError) -> Outcome {
    match error {
        VeloxError::InvalidRequest(_) | VeloxError::Refused { .. } => Outcome::Invalid,
        VeloxError::BuildFailed { .. } => Outcome::BuildFailed,
        VeloxError::BuildTimeout(_) => Outcome::Timeout,
        VeloxError::NoFile => Outcome::NoFile,
        VeloxError::Stream(_) => Outcome::StreamError,
        VeloxError::Unreachable(_)
        | VeloxError::Unavailable { .. }
        | VeloxError::Upstream { .. }
        | VeloxError::MalformedReply(_)
        | VeloxError::Config(_)
        | VeloxError::Internal(_) => Outcome::UpstreamError,
    }
}

/// Counts the order once: as its outcome, or as canceled if the future is dropped first.
struct Record<'a> {
    metrics: &'a Metrics,
    started: Instant,
    outcome: Option<Outcome>,
}

impl Record<'_> {
    fn done(&mut self, outcome: Outcome, response: Response<Body>) -> Response<Body> {
        self.outcome = Some(outcome);
        response
    }

    fn failed(&mut self, error: &VeloxError, request_id: &str) -> Response<Body> {
        self.done(outcome_of(error), error.into_response(request_id))
    }
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        let took: Duration = self.started.elapsed();
        self.metrics
            .finished(self.outcome.unwrap_or(Outcome::Canceled), took);
    }
}
