//! `RR\Worker`: the PHP face of [`crate::engine::Worker`]. One per process; the engine lives in
//! a thread-local on the PHP thread and is torn down at request shutdown (script end, exit(),
//! fatal error), so a pending client always gets an answer.
// PHP parameter names come from the Rust ones, and PHP callers use named arguments
// (`endOfStream: false`): those parameters are camelCase. The macro drops item-level allows.
#![allow(non_snake_case)]
use super::convert::{self, PhpArray};
use super::exception::{bad_type, bad_value, misuse, respond_error, ConfigErrorWrap};
use super::request::Request;
use super::{ini, interrupt};
use crate::config::{self, Config, Override, Sources};
use crate::engine::{self as engine, Wait};
use crate::request::cgi::Script;
use crate::request::multipart::Upload;
use crate::request::RequestData;
use crate::stream::FileReply;
use bytes::Bytes;
use ext_php_rs::binary_slice::BinarySlice;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendCallable, ZendHashTable, Zval};
use ext_php_rs::zend::ExecutorGlobals;
use http::{HeaderMap, StatusCode};
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Duration;

/// How often a waiting worker checks for PHP signal handlers to run.
const TICK: Duration = Duration::from_millis(50);

thread_local! {
    /// `rr.cycles` was checked (at the first `handle()`, where the worker reads it).
    static CYCLES_CHECKED: Cell<bool> = const { Cell::new(false) };
}

thread_local! {
    static ENGINE: RefCell<Option<engine::Worker>> = const { RefCell::new(None) };
    static STARTED: Cell<bool> = const { Cell::new(false) };
    static HANDLING: Cell<bool> = const { Cell::new(false) };
    static RETIRE_WARNED: Cell<bool> = const { Cell::new(false) };
    static RELOAD_WARNED: Cell<bool> = const { Cell::new(false) };
    /// What `beforeFork()` registered: run once in the template, before its first fork.
    static BEFORE_FORK: RefCell<Vec<Zval>> = const { RefCell::new(Vec::new()) };
    /// Where handle() says the entry script is; set at its first request.
    static SCRIPT: std::cell::OnceCell<Script> = const { std::cell::OnceCell::new() };
}

/// Waits for the next request (running PHP signal handlers every tick) and turns it into what
/// the caller hands to PHP; None when the server is shutting down. A request `build` cannot
/// prepare (its body lost on disk) is answered 500 with the reason logged, and the wait goes on.
fn next<T>(
    callable: &str,
    build: impl Fn(&mut engine::Worker, Box<RequestData>) -> Result<T, String>,
) -> PhpResult<Option<T>> {
    // Only the template ever registers one (beforeFork() keeps nothing elsewhere), so a
    // non-empty list means this is the template's first wait: no engine look-up per request.
    if BEFORE_FORK.with_borrow(|list| !list.is_empty()) {
        run_before_fork()?;
    }
    loop {
        let got = with_engine(callable, |engine| {
            Ok(match engine.wait(TICK) {
                Wait::Request(mut data) => {
                    // PHP never sees a form with fields missing, nor a body cut short: the
                    // client gets a 500.
                    let built = data
                        .load_deferred_fields()
                        .map_err(|e| format!("reading the request's form fields from disk: {e}"))
                        .and_then(|()| build(engine, data));
                    match built {
                        Ok(request) => Some(Some(request)),
                        Err(why) => {
                            if let Err(e) = engine.fail(why) {
                                tracing::error!("answering a request whose body was lost: {e}");
                            }
                            None
                        }
                    }
                }
                // A pool master stops with a reason when its workers could not be kept running.
                Wait::Stop => match engine.failure() {
                    Some(why) => return Err(misuse(format!("rr pool: {why}"))),
                    None => Some(None),
                },
                Wait::Tick => {
                    crate::logging::reopen_if_requested();
                    None
                }
                Wait::Forked => {
                    super::pool::reseed_after_fork();
                    None
                }
            })
        })?;
        if let Some(request) = got {
            return Ok(request);
        }
        // Outside the engine borrow: a handler may call back into the worker.
        if interrupt::run_pending() && interrupt::exception_pending() {
            return Ok(None);
        }
    }
}

/// `callable` is the PHP name, e.g. `RR\\Worker::respond`.
pub(super) fn with_engine<T>(
    callable: &str,
    f: impl FnOnce(&mut engine::Worker) -> PhpResult<T>,
) -> PhpResult<T> {
    if engine::copy::is_copy() {
        return Err(misuse(format!(
            "{callable}(): this process is a copy of the worker made by fork() (pcntl_fork()) \
             during a request: it cannot serve or answer requests (they are the worker's); \
             end it with exit()"
        )));
    }
    ENGINE.with_borrow_mut(|engine| match engine {
        Some(engine) => f(engine),
        None if STARTED.get() => Err(misuse(format!("{callable}(): the worker has stopped"))),
        None => Err(misuse(format!(
            "{callable}(): no RR\\Worker was started in this process; create it first"
        ))),
    })
}

/// Tears the engine down: called at request shutdown, whatever ended the script. A script
/// that ended with a request pending (`exit()`, a fatal error, leaving its loop) ends the
/// process with a non-zero code, so a supervisor (`Restart=on-failure`) sees the failure:
/// 255, PHP's code for a fatal error, unless the script chose one (`exit(3)`).
pub fn finish() {
    // Zvals must go while PHP's memory is still there (a template that never forked).
    drop(BEFORE_FORK.take());
    if engine::copy::is_copy() {
        // A copy forked by the application ends: what the engine holds is the worker's (its
        // clients' connections, its pool channel, a runtime whose threads were not copied), so
        // it is left alone, neither answered nor drained.
        if let Some(engine) = ENGINE.with_borrow_mut(Option::take) {
            std::mem::forget(engine);
        }
        return;
    }
    if let Some(engine) = ENGINE.with_borrow_mut(Option::take) {
        let unexpected = engine.has_pending();
        engine.finish();
        if unexpected {
            let mut globals = ExecutorGlobals::get_mut();
            if globals.exit_status == 0 {
                globals.exit_status = 255;
            }
        }
    }
}

/// The effective configuration the next worker would start with (for `php --ri rr`).
pub fn effective_config() -> Result<Config, String> {
    let (file, overrides) = ini::read();
    load_config(file, overrides).map_err(|e| e.0)
}

fn load_config(file: Option<String>, overrides: Vec<Override>) -> Result<Config, ConfigErrorWrap> {
    ini::check_names()?;
    let cwd = std::env::current_dir().unwrap_or_default();
    let env = std::env::var("RR_CONFIG").ok();
    let file = config::resolve_file(file.as_deref(), env.as_deref(), &cwd)?;
    Ok(Config::load(&Sources { file, overrides })?)
}

/// The template is about to fork: the application closes what it connected to at boot.
fn run_before_fork() -> PhpResult<()> {
    for close in BEFORE_FORK.take() {
        let callable = ZendCallable::new(&close)
            .map_err(|_| bad_value("RR\\Worker::beforeFork(): the callable is gone"))?;
        // An exception it throws stays pending and ends the template's boot with it.
        if callable.try_call(vec![]).is_err() {
            return Err(misuse(
                "RR\\Worker::beforeFork(): the callable failed: the template does not fork",
            ));
        }
    }
    Ok(())
}

/// `callable` is the PHP name, e.g. `RR\\Worker::respond`.
fn status(callable: &str, status: i64) -> PhpResult<StatusCode> {
    let code = u16::try_from(status)
        .ok()
        .filter(|s| (100..=599).contains(s))
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| {
            bad_value(format!(
                "{callable}(): status {status} is not an HTTP status (100-599)"
            ))
        })?;
    if code.is_informational() {
        // hyper's server has no way to send an interim answer (103 Early Hints) before the
        // final one; an answer with a 1xx status would be no answer at all.
        return Err(bad_value(format!(
            "{callable}(): status {status} is an interim (1xx) status, which rr cannot send: \
             send the final answer (with its Link headers for Early Hints) instead"
        )));
    }
    Ok(code)
}

/// PHP's header array as a `HeaderMap`; `callable` (e.g. `RR\\velox_build`) names the caller
/// in the `ValueError`.
pub(super) fn headers(callable: &str, headers: Option<&ZendHashTable>) -> PhpResult<HeaderMap> {
    match headers {
        Some(ht) => convert::header_map(ht).map_err(|e| bad_value(format!("{callable}(): {e}"))),
        None => Ok(HeaderMap::new()),
    }
}

fn upload_zval(upload: &Upload) -> Zval {
    let mut ht = ZendHashTable::with_capacity(5);
    let tmp = upload
        .tmp_name
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = ht.insert("name", convert::bytes_zval(&upload.name));
    let _ = ht.insert("mime", convert::bytes_zval(&upload.mime));
    let _ = ht.insert("size", upload.size as i64);
    let _ = ht.insert("error", i64::from(upload.error));
    let _ = ht.insert("tmpName", tmp);
    convert::array_zval(ht)
}

/// The worker: starts the embedded HTTP server and hands its requests to this script.
#[php_class]
#[php(name = "RR\\Worker")]
#[php(flags = ext_php_rs::flags::ClassFlags::Final)]
pub struct Worker;

#[php_impl]
impl Worker {
    /// Starts the server. `$options` override the configuration with dotted keys
    /// (`['http.address' => '127.0.0.1:0']`); `'config'` names the .rr.yaml file.
    ///
    /// @throws \RR\ConfigException on a bad configuration or an address that cannot be bound
    /// @throws \RR\Exception when a worker was already started in this process
    /// @throws \TypeError when an option's value is an object, a resource, INF or NAN
    pub fn __construct(options: Option<&ZendHashTable>) -> PhpResult<Self> {
        if STARTED.get() {
            return Err(misuse(
                "RR\\Worker: a worker was already started in this process; create one RR\\Worker and keep it",
            ));
        }
        let (mut file, mut overrides) = ini::read();
        for (key, value) in options
            .map(|o| o.iter().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let key = key.to_string();
            if key == "config" {
                let path = value.str().ok_or_else(|| {
                    bad_value("RR\\Worker option 'config' must be a file path string")
                })?;
                file = Some(path.to_string());
                continue;
            }
            let value = convert::config_value(value).map_err(|what| {
                bad_type(format!(
                    "RR\\Worker option '{key}': {what} is not a configuration value \
                     (a string, int, float, bool, array or null)"
                ))
            })?;
            overrides.push(Override {
                origin: "RR\\Worker option".to_string(),
                key,
                value,
            });
        }
        let config = load_config(file, overrides)?;
        // The config checked the file can be opened; this is for a change since then.
        crate::logging::init(&config.logs).map_err(|e| {
            let file = match &config.logs.output {
                crate::config::LogOutput::File(path) => path.display().to_string(),
                other => format!("{other:?}"),
            };
            ConfigErrorWrap(format!(
                "rr config: key 'logs.output': cannot open the log file \"{file}\": {e}"
            ))
        })?;
        // A pool worker (started with the master's channel) read the same configuration as
        // its master, which has said all this once already.
        if std::env::var_os(crate::ipc::FD_ENV).is_none() {
            for warning in &config.warnings {
                tracing::warn!("{warning}");
            }
        }
        let engine = engine::Worker::start(Arc::new(config)).map_err(ConfigErrorWrap::from)?;
        // Before "listening" is said: a signal sent once it is (SIGHUP, SIGTERM) finds rr's
        // handlers, not the default action.
        super::signal::install(engine.is_master());
        // A pool worker listens on nothing itself: the master announced its addresses.
        if !engine.is_pool_worker() {
            for bound in engine.bound() {
                tracing::info!("rr listening on {bound}");
            }
        }
        ENGINE.with_borrow_mut(|slot| *slot = Some(engine));
        STARTED.set(true);
        Ok(Worker)
    }

    /// Waits for the next request. Returns null when the server is shutting down: end the loop.
    /// PHP signal handlers (pcntl with async signals) run while it waits.
    pub fn wait_request(&self) -> PhpResult<Option<Request>> {
        super::session::forget();
        next("RR\\Worker::waitRequest", |engine, data| {
            let uploads = convert::array_zval(convert::tree(engine.uploads(), &upload_zval));
            let ids = engine.config().http.request_id.as_ref();
            Ok(Request::new(
                data,
                uploads,
                ids.map(|ids| ids.header.clone()),
            ))
        })
    }

    /// Superglobal mode: waits for a request, fills `$_SERVER`, `$_GET`, `$_POST`, `$_COOKIE`,
    /// `$_FILES`, `$_REQUEST` and `php://input` as php-fpm would, calls `$app`, sends what it
    /// echoed with its `header()`s and status, and resets the request state. `exit()` ends the
    /// request, not the worker. Returns false when the server is shutting down.
    ///
    /// @throws \RR\Exception when called from inside `$app`
    pub fn handle(&self, app: ZendCallable) -> PhpResult<bool> {
        if HANDLING.get() {
            return Err(misuse(
                "RR\\Worker::handle() cannot be called from inside the application it runs",
            ));
        }
        if !CYCLES_CHECKED.get() {
            super::ini::cycles().map_err(misuse)?;
            CYCLES_CHECKED.set(true);
        }
        let got = next("RR\\Worker::handle", |engine, data| {
            SCRIPT.with(|s| {
                // Resolved once, like php-fpm's from the web server config: a later chdir()
                // does not move DOCUMENT_ROOT.
                s.get_or_init(|| {
                    let c = &engine.config().http.script;
                    let root = c.document_root.clone();
                    let root = root.or_else(|| std::env::current_dir().ok());
                    Script {
                        document_root: root.map(|r| r.display().to_string()).unwrap_or_default(),
                        script_name: c.script_name.clone(),
                    }
                });
            });
            // Opened before PHP runs: php://input of a body file gone from disk would read
            // nothing, and the script would take an empty body for the whole one.
            let input = data.body.reader().map_err(|e| {
                let path = data.body.file().map(|p| p.display().to_string());
                format!(
                    "opening the request body file {}: {e}",
                    path.unwrap_or_default()
                )
            })?;
            let held = engine.config().http.output_buffer_size;
            let uploads = super::sapi::uploads(&data, engine.uploads());
            Ok((data, input, uploads, held))
        })?;
        let Some((data, input, uploads, held)) = got else {
            return Ok(false);
        };
        HANDLING.set(true);
        SCRIPT.with(|s| {
            if let Some(script) = s.get() {
                super::sapi::run(&app, &data, input, uploads, script, held);
            }
        });
        HANDLING.set(false);
        if engine::copy::is_copy() {
            // `$app` forked and this is the copy: its exit() (pending) ends it; one that
            // returned instead is told it cannot go on serving.
            if ExecutorGlobals::has_exception() {
                return Ok(false);
            }
            return with_engine("RR\\Worker::handle", |_| Ok(false));
        }
        Ok(true)
    }

    /// Answers the current request. With `$endOfStream` false the status and headers go out at
    /// once and each further `respond()` appends a chunk, until one passes true.
    /// Header values may be strings or lists of strings (several `Set-Cookie`).
    /// A non-empty `X-Velox-Build` header makes the body a Velox build request, as with
    /// `RR\velox_build()` (the status is then rr's to choose).
    ///
    /// @param array<string, string|string[]> $headers
    /// @throws \ValueError on an invalid status, header name or header value
    /// @throws \RR\Exception when no request is pending or the stream already ended
    #[php(defaults(endOfStream = true))]
    pub fn respond(
        &self,
        status: i64,
        body: Option<BinarySlice<u8>>,
        headers: Option<&ZendHashTable>,
        endOfStream: bool,
    ) -> PhpResult<()> {
        let code = self::status("RR\\Worker::respond", status)?;
        let map = self::headers("RR\\Worker::respond", headers)?;
        let body = body.map(|b| Bytes::copy_from_slice(&b)).unwrap_or_default();
        if endOfStream && super::velox::requested(&map) {
            return super::velox::submit("RR\\Worker::respond", super::velox::order(body, map));
        }
        with_engine("RR\\Worker::respond", |engine| {
            engine
                .respond(code, map, body, endOfStream)
                .map_err(|e| respond_error("RR\\Worker::respond", e))
        })
    }

    /// Answers with a file that Rust streams from disk (Content-Length, Range/206, HEAD); the
    /// worker is free at once. A missing file is a 404, an unreadable one a 500, each logged.
    /// A relative path is resolved against PHP's working directory at the call. A `$status` of
    /// 206 or 416 is taken as 200: the part sent is the one the request's Range asks for.
    ///
    /// @param array<string, string|string[]> $headers
    #[php(defaults(status = 200))]
    pub fn send_file(
        &self,
        path: String,
        status: i64,
        headers: Option<&ZendHashTable>,
    ) -> PhpResult<()> {
        let code = self::status("RR\\Worker::sendFile", status)?;
        let map = self::headers("RR\\Worker::sendFile", headers)?;
        if path.is_empty() || path.contains('\0') {
            return Err(bad_value(format!(
                "RR\\Worker::sendFile(): invalid path {path:?}"
            )));
        }
        // Made absolute now, against PHP's working directory: the file is opened later, by
        // another thread (or the pool's master), when PHP may have moved on or chdir()ed.
        let path = std::path::absolute(&path).map_err(|e| {
            bad_value(format!(
                "RR\\Worker::sendFile(): cannot resolve the relative path {path:?}: {e}"
            ))
        })?;
        let file = FileReply {
            path,
            status: code,
            headers: map,
        };
        with_engine("RR\\Worker::sendFile", |engine| {
            engine
                .send_file(file)
                .map_err(|e| respond_error("RR\\Worker::sendFile", e))
        })
    }

    /// Reports a failure for the current request: the client gets a 500 with a generic JSON
    /// body, the message goes to the log. A streamed answer in progress is cut off instead
    /// (its head is out): the client sees an incomplete transfer, never a complete one.
    pub fn error(&self, message: String) -> PhpResult<()> {
        with_engine("RR\\Worker::error", |engine| {
            engine
                .fail(message)
                .map_err(|e| respond_error("RR\\Worker::error", e))
        })
    }

    /// Starts a graceful shutdown: no new connections; `waitRequest()` returns null once the
    /// requests already received are answered.
    pub fn stop(&self) -> PhpResult<()> {
        with_engine("RR\\Worker::stop", |engine| {
            engine.stop();
            Ok(())
        })
    }

    /// Registers `$close`, run once in the template (`http.pool.template`) at its first
    /// `waitRequest()`, before it forks any worker: close there every connection opened at boot
    /// (database, Redis, Memcached, LDAP...) and let the workers reconnect lazily, or each
    /// forked worker would share the template's socket and read the others' replies. rr checks
    /// after it and refuses to fork while connected sockets remain
    /// (`http.pool.template_connections`). Never called in other processes.
    ///
    /// @throws \ValueError when $close is not callable
    pub fn before_fork(&self, close: &Zval) -> PhpResult<()> {
        if !close.is_callable() {
            return Err(bad_value(format!(
                "RR\\Worker::beforeFork(): $close must be callable, {} given",
                close.get_type()
            )));
        }
        // Only the template ever calls it; elsewhere nothing is kept.
        if with_engine("RR\\Worker::beforeFork", |e| Ok(e.role()))? == engine::Role::Template {
            BEFORE_FORK.with_borrow_mut(|list| list.push(close.shallow_clone()));
        }
        Ok(())
    }

    /// Asks for this worker to be replaced once the current request's answer is sent (its
    /// state is no longer trusted). In pool mode returns true: the master sends no further
    /// request to it (when called before the answer is sent; after it, at most the request
    /// already handed over), stops it and starts a replacement (forked from the template in
    /// template mode), counted as restart reason `retired`. Without a pool nothing can replace
    /// the process: returns false and logs a warning once.
    pub fn retire(&self) -> PhpResult<bool> {
        let retired = with_engine("RR\\Worker::retire", |engine| Ok(engine.retire()))?;
        if !retired && !RETIRE_WARNED.replace(true) {
            tracing::warn!(
                "RR\\Worker::retire(): ignored: nothing replaces this process (only a pool worker, http.pool.num_workers > 0, can be retired)"
            );
        }
        Ok(retired)
    }

    /// Asks the pool for a reload, as SIGHUP or `POST /reload` do: a new generation boots and
    /// replaces every worker one by one. Every worker of a generation may ask (each one sees
    /// the same change): one reload happens. True when the ask reached the master; without a
    /// pool (or in the template) nothing can reload: returns false and logs a warning once.
    pub fn reload(&self) -> PhpResult<bool> {
        let asked = with_engine("RR\\Worker::reload", |engine| Ok(engine.reload()))?;
        if !asked && !RELOAD_WARNED.replace(true) {
            tracing::warn!(
                "RR\\Worker::reload(): ignored: nothing can reload (only a pool worker, http.pool.num_workers > 0, asks its pool for a reload)"
            );
        }
        Ok(asked)
    }

    /// The addresses the server listens on, e.g. `["http://127.0.0.1:8080"]`.
    pub fn addresses(&self) -> PhpResult<PhpArray> {
        with_engine("RR\\Worker::addresses", |engine| {
            let mut ht = ZendHashTable::new();
            for bound in engine.bound() {
                let _ = ht.push(bound.to_string());
            }
            Ok(PhpArray(convert::array_zval(ht)))
        })
    }
}
