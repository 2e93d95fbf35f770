//! A mock Velox build server speaking the real protocol (`shared/velox-protocol.md`): one
//! Connect JSON route, Velox's request validation, scriptable replies, and a record of every
//! call (body, time, whether the caller hung up before the reply).
// Each test binary uses its own part of the mock.
#![allow(dead_code)]
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BUILD_PATH: &str = "/api.service.v1.BuildService/Build";

/// What the mock does with one valid build call.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Writes `rr` (or `rr.exe`) of `size` bytes into its artifacts dir after `delay`, and
    /// answers `{path, logs}`. Sparse files are all zeros; others hold `i % 251` at offset i.
    Success {
        size: u64,
        sparse: bool,
        delay: Duration,
    },
    /// Answers success with this path, whatever it is.
    Path(String),
    /// A Connect error with its HTTP status.
    Connect(&'static str),
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
            delay: Duration::ZERO,
        }
    }

    pub fn slow(size: u64, delay: Duration) -> Behaviour {
        Behaviour::Success {
            size,
            sparse: false,
            delay,
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

/// One call the mock received.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub body: Value,
    /// The caller went away before the reply was produced.
    pub aborted: bool,
}

struct RecordedCall {
    at: Instant,
    body: Value,
    aborted: Arc<AtomicBool>,
}

struct State {
    script: Mutex<VecDeque<Behaviour>>,
    default: Mutex<Behaviour>,
    calls: Mutex<Vec<RecordedCall>>,
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
    /// Starts on 127.0.0.1:0 in its own thread and runtime, so a hanging handler never
    /// blocks the test's runtime.
    pub fn start(default: Behaviour) -> Mock {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(State {
            script: Mutex::default(),
            default: Mutex::new(default),
            calls: Mutex::default(),
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

    /// Where built files go: the root to allow in rr's `artifacts_dir`.
    pub fn artifacts_dir(&self) -> &Path {
        &self.state.dir
    }

    /// The next calls get these behaviours, in order; then the default again.
    pub fn then(&self, behaviour: Behaviour) -> &Self {
        self.state.script.lock().unwrap().push_back(behaviour);
        self
    }

    pub fn set_default(&self, behaviour: Behaviour) {
        *self.state.default.lock().unwrap() = behaviour;
    }

    pub fn calls(&self) -> Vec<Call> {
        let calls = self.state.calls.lock().unwrap();
        calls
            .iter()
            .map(|c| Call {
                at: c.at,
                body: c.body.clone(),
                aborted: c.aborted.load(SeqCst),
            })
            .collect()
    }

    pub fn call_count(&self) -> usize {
        self.state.calls.lock().unwrap().len()
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
    replied: bool,
}

impl Pending {
    fn replied(mut self) {
        self.replied = true;
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
        return Ok(reply(
            404,
            "text/plain; charset=utf-8",
            "404 page not found\n",
        ));
    }
    if req.method() != Method::POST {
        let mut response = reply(405, "text/plain", "");
        response
            .headers_mut()
            .insert(header::ALLOW, "POST".parse().unwrap());
        return Ok(response);
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !matches!(
        content_type,
        "application/json" | "application/json; charset=utf-8"
    ) {
        return Ok(reply(415, "", ""));
    }
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let aborted = Arc::new(AtomicBool::new(false));
    state.calls.lock().unwrap().push(RecordedCall {
        at: Instant::now(),
        body: json.clone(),
        aborted: aborted.clone(),
    });
    let pending = Pending {
        aborted,
        replied: false,
    };
    if let Err(message) = validate(&body) {
        pending.replied();
        return Ok(connect_error("invalid_argument", &message));
    }
    let behaviour = state.script.lock().unwrap().pop_front();
    let behaviour = behaviour.unwrap_or_else(|| state.default.lock().unwrap().clone());
    let windows = field(&json, "target_platform")
        .and_then(|p| p.get("os"))
        .is_some_and(|os| os == "windows");
    let result = act(&state, behaviour, windows).await;
    pending.replied();
    result
}

async fn act(state: &State, behaviour: Behaviour, windows: bool) -> Result<Reply, std::io::Error> {
    let json = |value: Value| reply(200, "application/json", &value.to_string());
    Ok(match behaviour {
        Behaviour::Success {
            size,
            sparse,
            delay,
        } => {
            tokio::time::sleep(delay).await;
            let path = write_artifact(&state.dir, size, sparse, windows);
            json(serde_json::json!({"path": path, "logs": "go: building rr"}))
        }
        Behaviour::Path(path) => json(serde_json::json!({ "path": path })),
        Behaviour::Connect(code) => connect_error(code, "scripted failure"),
        Behaviour::Raw {
            status,
            content_type,
            body,
        } => reply(status, content_type, &body),
        Behaviour::LegacySuccess { size } => {
            let path = write_artifact(&state.dir, size, false, windows);
            json(serde_json::json!({
                "success": true, "path": path, "build_id": "b1", "duration_ms": 58234
            }))
        }
        Behaviour::LegacyFailure => json(serde_json::json!({
            "success": false, "error": "go build failed", "code": "BUILD_ERROR"
        })),
        Behaviour::Hang => std::future::pending().await,
        Behaviour::Close => return Err(std::io::Error::other("closing as scripted")),
    })
}

/// Velox's BuildRequest rules (protovalidate), snake_case or lowerCamelCase.
fn validate(body: &[u8]) -> Result<(), String> {
    if body.is_empty() {
        return Err("unmarshal message: empty body".into());
    }
    let json: Value =
        serde_json::from_slice(body).map_err(|e| format!("unmarshal message: {e}"))?;
    let bad = |why: &str| Err(format!("validation error: {why}"));
    let uuid = field(&json, "request_id").and_then(Value::as_str);
    if !uuid.is_some_and(|id| uuid::Uuid::try_parse(id).is_ok() && id.len() == 36) {
        return bad("request_id: value must be a valid UUID");
    }
    let version = field(&json, "rr_version")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !rr_version_ok(version) {
        return bad("rr_version: value does not match regex pattern");
    }
    let plugins = field(&json, "plugins").and_then(Value::as_array);
    let Some(plugins) = plugins.filter(|p| !p.is_empty()) else {
        return bad("plugins: value must contain at least 1 item(s)");
    };
    for plugin in plugins {
        for name in ["module_name", "tag"] {
            let value = field(plugin, name).and_then(Value::as_str).unwrap_or("");
            if value.is_empty() {
                return bad(&format!("plugins.{name}: value is required"));
            }
        }
    }
    Ok(())
}

/// Written independently of rr's own check, so a bug there is not mirrored here.
fn rr_version_ok(v: &str) -> bool {
    if v == "master" {
        return true;
    }
    if (7..=40).contains(&v.len()) && v.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        return true;
    }
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let parts: Vec<&str> = rest.splitn(3, '.').collect();
    parts.len() == 3
        && !parts[0].is_empty()
        && parts[0].chars().all(|c| c.is_ascii_digit())
        && !parts[1].is_empty()
        && parts[1].chars().all(|c| c.is_ascii_digit())
        && parts[2].starts_with(|c: char| c.is_ascii_digit())
}

fn field<'a>(json: &'a Value, snake: &str) -> Option<&'a Value> {
    let camel: String = snake
        .split('_')
        .enumerate()
        .map(|(i, part)| match i {
            0 => part.to_string(),
            _ => part[..1].to_uppercase() + &part[1..],
        })
        .collect();
    json.get(snake).or_else(|| json.get(&camel))
}

fn write_artifact(dir: &Path, size: u64, sparse: bool, windows: bool) -> String {
    let build = dir.join(uuid::Uuid::new_v4().simple().to_string());
    std::fs::create_dir(&build).unwrap();
    let path = build.join(if windows { "rr.exe" } else { "rr" });
    let file = std::fs::File::create(&path).unwrap();
    if sparse {
        file.set_len(size).unwrap();
    } else {
        std::fs::write(&path, pattern(size)).unwrap();
    }
    path.display().to_string()
}

/// The bytes of a non-sparse artifact of `size` bytes.
pub fn pattern(size: u64) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

fn connect_error(code: &str, message: &str) -> Reply {
    let body = serde_json::json!({ "code": code, "message": message });
    reply(connect_status(code), "application/json", &body.to_string())
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
