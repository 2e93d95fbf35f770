//! Superglobal mode (`RR\Worker::handle()`): one request run the way php-fpm would run a script,
//! inside the long-lived worker. See docs/superglobals.md for what is set up and reset.
//!
//! The cycle: superglobals and SAPI state in; `$app` called under `zend_try`; `exit()` and
//! uncaught exceptions end the request (never the worker), an exception first going to the
//! exception handler if one is set; shutdown functions, output buffers and the session closed as
//! at php-fpm's request end; `header_register_callback()`'s callback run and the answer sent;
//! state (handlers, ini settings, ...) reset. A fatal
//! error (bailout) leaves the VM in a state only PHP's own request shutdown can clean up, so
//! the client gets a 500 and the bailout goes on: the worker script ends cleanly.
mod capture;
mod directives;
mod ffi;
mod globals;
mod leaks;
mod name;
mod setters;
mod settings;
mod state;

use crate::php::worker::with_engine;
use crate::request::cgi::Script;
use crate::request::spool::BodyReader;
use crate::request::RequestData;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::flags::DataType;
use ext_php_rs::types::{ZendCallable, ZendObject, Zval};
use ext_php_rs::zend::{try_catch, CatchError, ExecutorGlobals};
use std::cell::Cell;
use std::panic::AssertUnwindSafe;

pub use capture::{install, uninstall};
pub use name::{rename, restore as restore_name};
/// A request's uploads as PHP sees them: `$_FILES` and the temp files PHP may move.
pub struct Uploads {
    files: Zval,
    paths: Vec<String>,
}

/// Built while the engine (which owns the uploads) is borrowed. Empty unless `req` is a POST.
pub fn uploads(
    req: &RequestData,
    tree: &crate::request::form::Tree<crate::request::multipart::Upload>,
) -> Uploads {
    let empty = crate::request::form::Tree::new();
    let tree = if globals::posted(req) { tree } else { &empty };
    let mut paths = Vec::new();
    state::upload_paths(tree, &mut paths);
    Uploads {
        files: globals::files(tree),
        paths,
    }
}

/// What the worker looked like before its first request.
struct Worker {
    boot: state::Boot,
    /// The CLI's `$_SERVER`, given back between requests.
    server: Option<Zval>,
    order: String,
    leaks: Option<leaks::Snapshot>,
    /// `rr.cycles`: when a request's garbage in reference cycles is destroyed.
    cycles: super::ini::Cycles,
    /// The ini entries changed (by the worker) as the current request began.
    directives: directives::Directives,
}

thread_local! {
    static WORKER: Cell<Option<Worker>> = const { Cell::new(None) };
}

/// How one call of `$app` ended.
enum Outcome {
    Done,
    Failed(String),
    /// A fatal error unwound the stack (PHP 8 turns most into an unwind_exit).
    Fatal,
    /// A fatal error longjmp'd out of the VM.
    Bailout,
}

/// `E_ERROR | E_CORE_ERROR | E_COMPILE_ERROR | E_USER_ERROR | E_RECOVERABLE_ERROR | E_PARSE`.
const E_FATAL_ERRORS: i32 = 1 | 16 | 64 | 256 | 4096 | 4;

/// Whether the pending unwind_exit comes from a fatal error rather than `exit()`: the last error
/// (cleared when the request began) is a fatal one.
fn fatal_pending() -> bool {
    // SAFETY: PHP thread; plain reads of engine globals and of the pending exception object.
    unsafe {
        let ex = (*ffi::eg()).exception;
        let pg = ffi::pg();
        !ex.is_null()
            && ffi::zend_is_unwind_exit(ex)
            && !(*pg).last_error_message.is_null()
            && (*pg).last_error_type & E_FATAL_ERRORS != 0
    }
}

fn order() -> String {
    // SAFETY: PHP thread; ini strings owned by PHP for the process lifetime.
    let (request, variables) = unsafe {
        (
            ffi::c_bytes((*ffi::pg()).request_order),
            ffi::c_bytes((*ffi::pg()).variables_order),
        )
    };
    let order = if request.is_empty() {
        variables
    } else {
        request
    };
    String::from_utf8_lossy(order).into_owned()
}

fn first_call() -> Worker {
    globals::arm();
    Worker {
        boot: state::Boot::read(),
        server: globals::take("_SERVER"),
        order: order(),
        leaks: super::ini::debug_leaks().then(leaks::Snapshot::take),
        // Checked by `RR\\Worker::handle()` before its first request.
        cycles: super::ini::cycles().unwrap_or(super::ini::Cycles::Request),
        directives: directives::Directives::default(),
    }
}

/// Clears a pending exception left by PHP code: `exit()` is the normal end of a request. Returns
/// the description of any other throwable, for the log.
pub(super) fn settle_exception(during: &str) -> Option<String> {
    let ex = uncaught()?;
    Some(describe(&ex, during))
}

/// The pending exception, taken; None for none or `exit()`'s unwind_exit.
fn uncaught() -> Option<ZBox<ZendObject>> {
    let ex = ExecutorGlobals::take_exception()?;
    // SAFETY: `ex` is a live object we now own.
    (!unsafe { ffi::zend_is_unwind_exit(&raw const *ex) }).then_some(ex)
}

fn describe(ex: &ZendObject, during: &str) -> String {
    let text = |method: &str| {
        ex.try_call_method(method, vec![])
            .ok()
            .and_then(|v| v.string().or_else(|| v.long().map(|l| l.to_string())))
            .unwrap_or_default()
    };
    let class = ex.get_class_name().unwrap_or_default();
    format!(
        "uncaught {class} in {during}: {} in {}:{}",
        text("getMessage"),
        text("getFile"),
        text("getLine")
    )
}

/// How a call into PHP ended. An uncaught exception goes to the exception handler when one is
/// set and `handler` allows, as PHP's script end does (`zend_user_exception_handler`).
fn ended(
    called: Result<Result<Zval, ext_php_rs::error::Error>, CatchError>,
    during: &str,
    handler: bool,
) -> Outcome {
    match called {
        Ok(Ok(_)) => Outcome::Done,
        Ok(Err(_)) if fatal_pending() => Outcome::Fatal,
        Ok(Err(_)) => match uncaught() {
            None => Outcome::Done,
            Some(ex) if handler => to_exception_handler(ex, during),
            Some(ex) => Outcome::Failed(describe(&ex, during)),
        },
        Err(CatchError::Bailout) => Outcome::Bailout,
        Err(_) => Outcome::Failed("internal error (panic) in rr".into()),
    }
}

/// An uncaught exception with `set_exception_handler()`'s handler (the request's or the
/// worker's) set: the handler gets it and the request ends as the handler leaves it (php-fpm
/// answers with the output and head so far, 200 unless set). Without a handler, or when the
/// handler throws too, the request failed (php-fpm: a fatal "Uncaught" error, 500).
fn to_exception_handler(mut ex: ZBox<ZendObject>, during: &str) -> Outcome {
    let what = describe(&ex, during);
    // SAFETY: PHP thread; a copy of the handler zval (IS_UNDEF when none is set), its
    // refcount raised so the handler may replace itself while it runs.
    let handler = unsafe { (*ffi::eg()).user_exception_handler.shallow_clone() };
    if matches!(handler.get_type(), DataType::Undef) {
        return Outcome::Failed(what);
    }
    let Ok(callable) = ZendCallable::new(&handler) else {
        return Outcome::Failed(what);
    };
    let mut arg = Zval::new();
    arg.set_object(&mut ex);
    let called = try_catch(AssertUnwindSafe(|| callable.try_call(vec![&arg])));
    match ended(called, "the exception handler", false) {
        Outcome::Failed(inner) => {
            Outcome::Failed(format!("{inner}, thrown while handling the {what}"))
        }
        other => other,
    }
}

/// One request: `data` in, `$app` called, the answer out, state reset. After a fatal error
/// the worker script ends instead (see the module comment). Unflushed output past `held`
/// bytes (`http.output_buffer_size`) starts streaming.
pub fn run(
    app: &ZendCallable,
    data: &RequestData,
    input: BodyReader,
    uploads: Uploads,
    script: &Script,
    held: usize,
) {
    // Taken out for the request, so nothing here holds a borrow while PHP code runs.
    let mut worker = WORKER.take().unwrap_or_else(first_call);
    worker.directives.mark();
    setters::begin();
    globals::install(data, uploads.files, script, &worker.order);
    let saved = state::begin(data, &uploads.paths, &worker.boot);
    capture::start(input, held);
    state::start_zlib();
    let between = worker.cycles == super::ini::Cycles::Between;
    let collector_was_on = between && state::pause_collector();
    let called = try_catch(AssertUnwindSafe(|| app.try_call(vec![])));
    if crate::engine::copy::is_copy() {
        // `$app` forked (pcntl_fork()) and this is the copy: it answers nothing (the request is
        // the worker's), so what it echoed is dropped; its exit(), fatal error or exception
        // stays pending and ends it. The request state is not put back: the copy ends.
        capture::stop();
        if let Err(CatchError::Bailout) = called {
            // SAFETY: as for a bailout below.
            unsafe { ext_php_rs::zend::bailout() }
        }
        return;
    }
    let outcome = ended(called, "RR\\Worker::handle()", true);
    match outcome {
        Outcome::Bailout => {
            capture::stop();
            report_fatal();
            state::after_fatal(&saved);
            // SAFETY: we are inside the zend_try of PHP's script execution (handle() is called
            // from the script); going on with the bailout is what the error was doing.
            unsafe { ext_php_rs::zend::bailout() }
        }
        Outcome::Fatal => {
            // The unwind_exit stays pending: the worker script ends as php-fpm's would.
            capture::stop();
            report_fatal();
            state::after_fatal(&saved);
            state::restore(saved, &worker.boot, &mut worker.directives);
            if between {
                state::collector_back(collector_was_on);
            }
            return;
        }
        _ => {}
    }
    if state::end_script(&saved, !between).is_err() {
        // A fatal error in a destructor: the worker stops, as for one in `$app` (the request's
        // shutdown functions already ran).
        capture::stop();
        report_fatal();
        // SAFETY: as for a bailout out of `$app` above.
        unsafe { ext_php_rs::zend::bailout() }
    }
    if matches!(outcome, Outcome::Done) {
        capture::before_head();
    }
    state::end_zlib();
    state::reset_session(&mut worker.directives);
    match outcome {
        // Unanswered: a 500. Streaming: the answer is cut off, so the client cannot take what
        // was sent for all of it (php-fpm ends it as if complete). Unsent output is dropped.
        Outcome::Failed(what) => fail(what),
        _ => capture::finish(),
    }
    capture::stop();
    globals::clear(worker.server.as_ref());
    // SAFETY: PHP thread; exit() set the exit code the worker process must not inherit.
    unsafe { (*ffi::eg()).exit_status = saved.exit_status() };
    state::restore(saved, &worker.boot, &mut worker.directives);
    // What became garbage only as the request's state was cleared ($_SESSION, its handlers):
    // destroyed now, between requests (output to the worker's stdout), never in the next one.
    // With `rr.cycles=between`, all of it, only once the collector would have run by itself.
    let collected = match between {
        false => state::collect_garbage(),
        true => state::resume_collector(collector_was_on),
    };
    if collected.is_err() {
        tracing::error!(
            "fatal error in a destructor after RR\\Worker::handle()'s request; the worker stops"
        );
        // SAFETY: as above; the answer was sent.
        unsafe { ext_php_rs::zend::bailout() }
    }
    if let Some(snapshot) = &worker.leaks {
        snapshot.compare();
    }
    WORKER.set(Some(worker));
}

/// A fatal error ended `$app`: the client gets a 500, the log the error; PHP ends the script.
fn report_fatal() {
    // SAFETY: PHP thread; the last error fields are PHP's, read before it frees them.
    let message = unsafe {
        let pg = ffi::pg();
        let text = |s: *mut ext_php_rs::ffi::zend_string| match s.as_ref() {
            Some(s) => String::from_utf8_lossy(std::slice::from_raw_parts(
                s.val.as_ptr().cast::<u8>(),
                s.len,
            ))
            .into_owned(),
            None => String::new(),
        };
        format!(
            "{} in {}:{}",
            text((*pg).last_error_message),
            text((*pg).last_error_file),
            (*pg).last_error_lineno
        )
    };
    fail(format!(
        "fatal error in RR\\Worker::handle(): {message}; the worker stops"
    ));
}

/// The request failed: see [`crate::engine::Worker::fail`]. Logged here when it was answered
/// already (a refused head).
fn fail(what: String) {
    let failed = with_engine("RR\\Worker::handle", |e| Ok(e.fail(what.clone())));
    if !matches!(failed, Ok(Ok(()))) {
        tracing::error!("{what}");
    }
}

/// Request startup, before the worker script's first line: the setters of settings that are no
/// ini entry are watched from here on, so the worker's own choices are known.
pub fn start() {
    setters::watch();
}

/// Request shutdown: drop every zval rr kept, while PHP's allocator is still alive.
pub fn finish() {
    drop(WORKER.take());
    setters::unwatch();
}
