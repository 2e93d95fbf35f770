//! A mock Velox build server that behaves like the real ones (shared/velox-protocol.md,
//! "Measured against real Velox servers"), in either generation:
//! - `Generation::Tag` (v2025.2-beta.2) keys its cache and its in-progress check by spec AND
//!   request id, sends `logs`, keeps building when the caller hangs up, builds `rr.exe`;
//! - `Generation::Master` keys them by spec only, sends no `logs`, cancels a build whose caller
//!   hangs up, refuses Windows targets.
//!
//! Both cache a build at `<dir>/<hash>/rr` (the path reused while cached), answer a second
//! identical build in progress with 409, validate like protojson + protovalidate (`validate`),
//! and answer 404/405/415 as connect-go and net/http do. Builds take mock time, scaled to real
//! time by `set_scale`, and can be held until the test releases them, so tests synchronize on
//! events instead of racing sleeps. Every build writes different bytes (`artifact`), as real
//! builds embed their build time.
// Each test binary uses its own part of the mock.
#![allow(dead_code)]
mod validate;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub use validate::Accepted;

pub const BUILD_PATH: &str = "/api.service.v1.BuildService/Build";

/// What the tag says instead of logs on a cache hit.
pub const CACHED_LOGS: &str = "cached output, logs are available only on the first build";

/// Which Velox the mock is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// v2025.2-beta.2, the newest tag.
    Tag,
    /// Untagged master (velox/v3).
    Master,
}

/// What the mock does with one valid build call.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// A build as Velox runs it: a cache hit answers at once; an identical build in progress
    /// gets 409; otherwise building takes `time` (mock time, see `set_scale`), then writes
    /// `rr` (or `rr.exe`) of `size` bytes and answers `{path[, logs]}`. Sparse files are all
    /// zeros; others hold [`artifact`]`(build number, size)`.
    Success {
        size: u64,
        sparse: bool,
        time: Duration,
    },
    /// Like `Success` up to the end of `time`, then fails with `internal` and `message`
    /// (compile errors, version resolution: deterministic, and a full build each time).
    FailBuild { message: String, time: Duration },
    /// Answers success with this path, whatever it is.
    Path(String),
    /// A Connect error with its HTTP status and a scripted message.
    Connect(&'static str),
    /// A Connect error with this message, at once (network trouble, overload).
    Fail { code: &'static str, message: String },
    /// Any status, content type and body (malformed replies).
    Raw {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// The old `{success: true, path, build_id, duration_ms}` shape, with a file written.
    LegacySuccess { size: u64 },
    /// The old `{success: false, error, code}` shape.
    LegacyFailure,
    /// Never answers.
    Hang,
    /// Closes the connection without answering.
    Close,
}

impl Behaviour {
    pub fn success(size: u64) -> Behaviour {
        Behaviour::Success {
            size,
            sparse: false,
            time: Duration::ZERO,
        }
    }

    pub fn slow(size: u64, time: Duration) -> Behaviour {
        Behaviour::Success {
            size,
            sparse: false,
            time,
        }
    }
}

/// HTTP status for a Connect code, as connect-go maps them.
pub fn connect_status(code: &str) -> u16 {
    match code {
        "canceled" => 499,
        "invalid_argument" | "failed_precondition" | "out_of_range" => 400,
        "deadline_exceeded" => 504,
        "not_found" => 404,
        "already_exists" | "aborted" => 409,
        "permission_denied" => 403,
        "resource_exhausted" => 429,
        "unimplemented" => 501,
        "unavailable" => 503,
        "unauthenticated" => 401,
        _ => 500, // internal, unknown, data_loss
    }
}

/// The bytes of build number `build` of `size` bytes: every build differs from every other.
pub fn artifact(build: u64, size: u64) -> Vec<u8> {
    (0..size).map(|i| ((i + 7 * build) % 251) as u8).collect()
}

/// One call the mock received.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub body: Value,
    /// The caller went away before the reply was produced.
    pub aborted: bool,
    /// The status answered, once answered.
    pub status: Option<u16>,
}

/// One build the mock ran (cache hits and refusals are not builds).
#[derive(Debug, Clone, PartialEq)]
pub struct Build {
    /// From 1, in start order; the content of [`artifact`].
    pub number: u64,
    /// The cache and in-progress key: the spec (and, on the tag, the request id).
    pub key: String,
    pub request_id: String,
    pub state: BuildState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildState {
    Running,
    Done,
    Failed,
    /// Its caller hung up (master only).
    Canceled,
}

struct RecordedCall {
    at: Instant,
    body: Value,
    aborted: Arc<AtomicBool>,
    status: Arc<AtomicU16>,
}

struct State {
    generation: Generation,
    /// Real time per mock second.
    scale: Mutex<Duration>,
    script: Mutex<VecDeque<Behaviour>>,
    default: Mutex<Behaviour>,
    calls: Mutex<Vec<RecordedCall>>,
    builds: Mutex<Vec<Build>>,
    /// Key → path of the cached build.
    cache: Mutex<HashMap<String, String>>,
    in_progress: Mutex<HashSet<String>>,
    /// Builds do not finish while this is true.
    held: watch::Sender<bool>,
    files: AtomicU64,
    dir: PathBuf,
}

pub struct Mock {
    pub addr: SocketAddr,
    state: Arc<State>,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Mock {
    /// A master server; see [`Mock::start_as`].
    pub fn start(default: Behaviour) -> Mock {
        Mock::start_as(Generation::Master, default)
    }

    /// Starts on 127.0.0.1:0 in its own thread and runtime, so a hanging handler never
    /// blocks the test's runtime. One mock second is one real second until `set_scale`.
    pub fn start_as(generation: Generation, default: Behaviour) -> Mock {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(State {
            generation,
            scale: Mutex::new(Duration::from_secs(1)),
            script: Mutex::default(),
            default: Mutex::new(default),
            calls: Mutex::default(),
            builds: Mutex::default(),
            cache: Mutex::default(),
            in_progress: Mutex::default(),
            held: watch::channel(false).0,
            files: AtomicU64::new(0),
            dir: dir.path().canonicalize().unwrap(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn({
            let state = state.clone();
            move || serve(listener, state, stopped)
        });
        Mock {
            addr,
            state,
            _dir: dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn generation(&self) -> Generation {
        self.state.generation
    }

    /// Where built files go: the root to allow in rr's `artifacts_dir`.
    pub fn artifacts_dir(&self) -> &Path {
        &self.state.dir
    }

    /// The real time one mock second of build time takes.
    pub fn set_scale(&self, real_per_second: Duration) {
        *self.state.scale.lock().unwrap() = real_per_second;
    }

    /// Builds that reach their end wait there until `release`.
    pub fn hold(&self) {
        self.state.held.send_replace(true);
    }

    pub fn release(&self) {
        self.state.held.send_replace(false);
    }

    /// The next calls get these behaviours, in order; then the default again.
    pub fn then(&self, behaviour: Behaviour) -> &Self {
        self.state.script.lock().unwrap().push_back(behaviour);
        self
    }

    pub fn set_default(&self, behaviour: Behaviour) {
        *self.state.default.lock().unwrap() = behaviour;
    }

    /// Velox's cache expiry (30 minutes): every cached build is forgotten and its file deleted.
    pub fn expire_cache(&self) {
        let paths: Vec<String> = self
            .state
            .cache
            .lock()
            .unwrap()
            .drain()
            .map(|e| e.1)
            .collect();
        for path in paths {
            let _ = std::fs::remove_file(path);
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        let calls = self.state.calls.lock().unwrap();
        calls
            .iter()
            .map(|c| Call {
                at: c.at,
                body: c.body.clone(),
                aborted: c.aborted.load(SeqCst),
                status: Some(c.status.load(SeqCst)).filter(|s| *s != 0),
            })
            .collect()
    }

    pub fn call_count(&self) -> usize {
        self.state.calls.lock().unwrap().len()
    }

    /// Calls answered with `status` so far.
    pub fn answered(&self, status: u16) -> usize {
        let calls = self.state.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| c.status.load(SeqCst) == status)
            .count()
    }

    pub fn builds(&self) -> Vec<Build> {
        self.state.builds.lock().unwrap().clone()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        loop {
            let stream = tokio::select! {
                _ = &mut stopped => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(state.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

type Reply = Response<Full<Bytes>>;

/// Marks its call aborted if dropped before `replied()`: hyper drops the handler future when
/// the caller closes the connection.
struct Pending {
    aborted: Arc<AtomicBool>,
    status: Arc<AtomicU16>,
    replied: bool,
}

impl Pending {
    fn replied(mut self, reply: Result<Reply, std::io::Error>) -> Result<Reply, std::io::Error> {
        self.replied = true;
        if let Ok(reply) = &reply {
            self.status.store(reply.status().as_u16(), SeqCst);
        }
        reply
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.replied {
            self.aborted.store(true, SeqCst);
        }
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<hyper::body::Incoming>,
) -> Result<Reply, std::io::Error> {
    if req.uri().path() != BUILD_PATH {
        let mut response = reply(404, "text/plain; charset=utf-8", "404 page not found\n");
        let nosniff = HeaderValue::from_static("nosniff");
        response
            .headers_mut()
            .insert("x-content-type-options", nosniff);
        return Ok(response);
    }
    if req.method() != Method::POST {
        let mut response = reply(405, "", "");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Ok(response);
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !matches!(
        content_type.as_str(),
        "application/json" | "application/json; charset=utf-8"
    ) {
        return Ok(reply(415, "", ""));
    }
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let pending = Pending {
        aborted: Arc::new(AtomicBool::new(false)),
        status: Arc::new(AtomicU16::new(0)),
        replied: false,
    };
    state.calls.lock().unwrap().push(RecordedCall {
        at: Instant::now(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        aborted: pending.aborted.clone(),
        status: pending.status.clone(),
    });
    let connect = Connect { content_type };
    let request = match validate::check(state.generation, &body) {
        Ok(request) => request,
        Err(refusal) => {
            let details = match refusal.violations.is_empty() {
                true => Value::Null,
                false => validate::details(&refusal.violations),
            };
            let reply = connect.error("invalid_argument", &refusal.message, details);
            return pending.replied(Ok(reply));
        }
    };
    let behaviour = state.script.lock().unwrap().pop_front();
    let behaviour = behaviour.unwrap_or_else(|| state.default.lock().unwrap().clone());
    let result = act(&state, &connect, &request, behaviour).await;
    pending.replied(result)
}

/// How this call's Connect replies look: its content type echoed, `Accept-Encoding: gzip`.
struct Connect {
    content_type: String,
}

impl Connect {
    fn ok(&self, value: Value) -> Reply {
        self.json(200, value)
    }

    fn error(&self, code: &str, message: &str, details: Value) -> Reply {
        let mut body = json!({ "code": code, "message": message });
        if !details.is_null() {
            body["details"] = details;
        }
        self.json(connect_status(code), body)
    }

    fn json(&self, status: u16, value: Value) -> Reply {
        let mut response = reply(status, &self.content_type, &value.to_string());
        let gzip = HeaderValue::from_static("gzip");
        response.headers_mut().insert(header::ACCEPT_ENCODING, gzip);
        response
    }
}

async fn act(
    state: &Arc<State>,
    connect: &Connect,
    request: &Accepted,
    behaviour: Behaviour,
) -> Result<Reply, std::io::Error> {
    let none = Value::Null;
    Ok(match behaviour {
        Behaviour::Success { .. } | Behaviour::FailBuild { .. } => {
            return build(state, connect, request, behaviour).await
        }
        Behaviour::Path(path) => connect.ok(json!({ "path": path })),
        Behaviour::Connect(code) => connect.error(code, "scripted failure", none),
        Behaviour::Fail { code, message } => connect.error(code, &message, none),
        Behaviour::Raw {
            status,
            content_type,
            body,
        } => reply(status, content_type, &body),
        Behaviour::LegacySuccess { size } => {
            let n = state.files.fetch_add(1, SeqCst);
            let dir = state.dir.join(format!("legacy-{n}"));
            let path = write_artifact(&dir, 0, size, false, request.os == "windows");
            connect.ok(json!({
                "success": true, "path": path, "build_id": "b1", "duration_ms": 58234
            }))
        }
        Behaviour::LegacyFailure => connect.ok(json!({
            "success": false, "error": "go build failed", "code": "BUILD_ERROR"
        })),
        Behaviour::Hang => std::future::pending().await,
        Behaviour::Close => return Err(std::io::Error::other("closing as scripted")),
    })
}

/// Velox's build handler: the generation's key, cache, in-progress check, and the build.
async fn build(
    state: &Arc<State>,
    connect: &Connect,
    request: &Accepted,
    behaviour: Behaviour,
) -> Result<Reply, std::io::Error> {
    let master = state.generation == Generation::Master;
    let windows = request.os == "windows";
    if master && windows {
        let why = "velox v3 does not support Windows targets";
        return Ok(connect.error("internal", why, Value::Null));
    }
    let key = match state.generation {
        Generation::Tag => format!("{}|{}", request.spec, request.request_id),
        Generation::Master => request.spec.clone(),
    };
    let key = hex(&Sha256::digest(key.as_bytes()))[..16].to_string();
    let logs = |first: bool| match (master, first) {
        (true, _) => json!(null),
        (false, true) => json!(first_build_logs()),
        (false, false) => json!(CACHED_LOGS),
    };
    let answer = |path: String, logs: Value| {
        let mut body = json!({ "path": path });
        if !logs.is_null() {
            body["logs"] = logs;
        }
        connect.ok(body)
    };
    if !request.force_rebuild {
        let cached = state.cache.lock().unwrap().get(&key).cloned();
        if let Some(path) = cached.filter(|p| Path::new(p).exists()) {
            return Ok(answer(path, logs(false)));
        }
    }
    if !state.in_progress.lock().unwrap().insert(key.clone()) {
        let message = match state.generation {
            Generation::Tag => "build is already in progress".to_string(),
            Generation::Master => format!("build {key} is already in progress"),
        };
        return Ok(connect.error("already_exists", &message, Value::Null));
    }
    let number = {
        let mut builds = state.builds.lock().unwrap();
        let number = builds.len() as u64 + 1;
        builds.push(Build {
            number,
            key: key.clone(),
            request_id: request.request_id.clone(),
            state: BuildState::Running,
        });
        number
    };
    let running = Running {
        state: state.clone(),
        key: key.clone(),
        number,
    };
    let task = tokio::spawn(running.run(behaviour, windows));
    // Master's build lives in the caller's context: hanging up cancels it. The tag's goes on.
    let cancel = match master {
        true => Some(AbortOnDrop(task.abort_handle())),
        false => None,
    };
    let result = task.await;
    if let Some(cancel) = cancel {
        cancel.disarm();
    }
    match result {
        Ok(Ok(path)) => Ok(answer(path, logs(true))),
        Ok(Err(message)) => Ok(connect.error("internal", &message, Value::Null)),
        Err(_) => Err(std::io::Error::other("build task lost")),
    }
}

/// One build in progress; dropped unfinished (master, caller gone) it counts as canceled.
struct Running {
    state: Arc<State>,
    key: String,
    number: u64,
}

impl Running {
    async fn run(self, behaviour: Behaviour, windows: bool) -> Result<String, String> {
        let time = match &behaviour {
            Behaviour::Success { time, .. } | Behaviour::FailBuild { time, .. } => *time,
            _ => Duration::ZERO,
        };
        let real = time.mul_f64(self.state.scale.lock().unwrap().as_secs_f64());
        tokio::time::sleep(real).await;
        let mut held = self.state.held.subscribe();
        let _ = held.wait_for(|held| !held).await;
        let result = match behaviour {
            Behaviour::Success { size, sparse, .. } => {
                let dir = self.state.dir.join(&self.key);
                let path = write_artifact(&dir, self.number, size, sparse, windows);
                let mut cache = self.state.cache.lock().unwrap();
                cache.insert(self.key.clone(), path.clone());
                Ok(path)
            }
            Behaviour::FailBuild { message, .. } => Err(message),
            _ => unreachable!("only builds run"),
        };
        self.finish(match result {
            Ok(_) => BuildState::Done,
            Err(_) => BuildState::Failed,
        });
        result
    }

    fn finish(&self, to: BuildState) {
        self.state.in_progress.lock().unwrap().remove(&self.key);
        let mut builds = self.state.builds.lock().unwrap();
        let build = &mut builds[self.number as usize - 1];
        if build.state == BuildState::Running {
            build.state = to;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.finish(BuildState::Canceled);
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl AbortOnDrop {
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Go's output of a first build on the tag: about 20 KB.
fn first_build_logs() -> String {
    let line = "go: downloading github.com/roadrunner-server/http/v5 v5.2.7\n";
    line.repeat(20_000 / line.len())
}

/// Writes the file as a new one moved into place, as a rebuild at the same path is.
fn write_artifact(dir: &Path, build: u64, size: u64, sparse: bool, windows: bool) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(if windows { "rr.exe" } else { "rr" });
    let tmp = dir.join(format!(".build-{build}-{}", uuid::Uuid::new_v4().simple()));
    let file = std::fs::File::create(&tmp).unwrap();
    if sparse {
        file.set_len(size).unwrap();
    } else {
        std::fs::write(&tmp, artifact(build, size)).unwrap();
    }
    std::fs::rename(&tmp, &path).unwrap();
    path.display().to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn reply(status: u16, content_type: &str, body: &str) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    if !content_type.is_empty() {
        let value = content_type.parse().unwrap();
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
