//! Engine state that php-fpm gets fresh for every request and a long-lived worker must set up
//! and reset by hand: SAPI headers and status, output buffers, shutdown functions, the session
//! module, the stat cache, the time limit and `ignore_user_abort`; with [`super::settings`], the
//! error handlers, timezone, locale and umask; with [`super::directives`], ini settings.
use super::directives::{Directives, Scope};
use super::ffi::{self, eg, pg, sg, SHUTDOWN_FUNCTIONS};
use super::settings::{Handlers, Settings};
use crate::request::form::{Node, Tree};
use crate::request::multipart::Upload;
use crate::request::RequestData;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::ffi::{zend_module_entry, zval, HashTable};
use ext_php_rs::types::{ZendCallable, ZendHashTable, Zval};
use ext_php_rs::zend::try_catch;
use std::ffi::CString;
use std::os::raw::{c_char, c_int};

/// What the worker had before the request, put back after it.
pub struct Saved {
    headers_sent: u8,
    no_headers: bool,
    response_code: c_int,
    request_method: *const c_char,
    proto_num: c_int,
    exit_status: c_int,
    /// The worker's own shutdown functions, set aside while the request registers its own.
    shutdown_functions: *mut HashTable,
    /// The worker's error and exception handlers, under those the request sets.
    handlers: Handlers,
    /// A `header_register_callback()` of the worker's: not the request's to run.
    header_callback: Zval,
    /// Keeps `SG(request_info).request_method` valid during the request.
    _method: CString,
}

/// Settings read once, at the first `handle()`.
pub struct Boot {
    pub time_limit: i64,
    pub ignore_user_abort: bool,
    pub implicit_flush: bool,
    pub output_buffering: i64,
    pub settings: Settings,
}

impl Boot {
    pub fn read() -> Boot {
        // SAFETY: PHP thread; plain reads of engine globals.
        let (time_limit, ignore_user_abort, implicit_flush, output_buffering) = unsafe {
            (
                (*eg()).timeout_seconds,
                (*pg()).ignore_user_abort,
                (*pg()).implicit_flush,
                (*pg()).output_buffering,
            )
        };
        Boot {
            time_limit,
            ignore_user_abort,
            implicit_flush,
            output_buffering,
            settings: Settings::read(),
        }
    }
}

fn call(function: &str, args: Vec<&dyn ext_php_rs::convert::IntoZvalDyn>) {
    if let Ok(f) = ZendCallable::try_from_name(function) {
        let _ = f.try_call(args);
    }
}

extern "C" {
    fn php_output_start_user(handler: *mut zval, chunk_size: usize, flags: c_int) -> c_int;
}

/// `PHP_OUTPUT_HANDLER_STDFLAGS`: cleanable, flushable, removable.
const OUTPUT_HANDLER_STDFLAGS: c_int = 0x70;

/// The temp files of a request's uploads, for `is_uploaded_file()` and `move_uploaded_file()`.
pub fn upload_paths(uploads: &Tree<Upload>, out: &mut Vec<String>) {
    for (_, node) in uploads.entries() {
        match node {
            Node::Leaf(upload) => {
                if let Some(path) = upload.tmp_name.as_ref().and_then(|p| p.to_str()) {
                    out.push(path.to_owned());
                }
            }
            Node::Map(sub) => upload_paths(sub, out),
        }
    }
}

/// An undefined zval (IS_UNDEF), what PHP keeps in a slot that holds nothing.
fn undef() -> Zval {
    let mut zv = Zval::new();
    zv.u1.type_info = 0;
    zv
}

/// The SAPI and engine state for a new request.
pub fn begin(req: &RequestData, uploads: &[String], boot: &Boot) -> Saved {
    let method = CString::new(req.method.as_str()).unwrap_or_default();
    // SAFETY: PHP thread, between requests: nothing else uses these globals now. Strings we
    // free were emalloc'd by PHP's header code; the list holds sapi_header_structs.
    let saved = unsafe {
        let sg = sg();
        let headers = &raw mut (*sg).sapi_headers;
        ffi::zend_llist_clean(&raw mut (*headers).headers);
        for s in [
            &raw mut (*headers).mimetype,
            &raw mut (*headers).http_status_line,
        ] {
            if !(*s).is_null() {
                ext_php_rs::alloc::efree((*s).cast());
                *s = std::ptr::null_mut();
            }
        }
        let saved = Saved {
            headers_sent: (*sg).headers_sent,
            no_headers: (*sg).request_info.no_headers,
            response_code: (*headers).http_response_code,
            request_method: (*sg).request_info.request_method,
            proto_num: (*sg).request_info.proto_num,
            exit_status: (*eg()).exit_status,
            shutdown_functions: SHUTDOWN_FUNCTIONS,
            handlers: Handlers::mark(),
            header_callback: std::ptr::replace(&raw mut (*sg).callback_func, undef()),
            _method: method,
        };
        (*headers).http_response_code = 200;
        (*headers).send_default_content_type = 1;
        (*sg).headers_sent = 0;
        // The output layer's own "sent" flag: left set, ini_set('zlib.output_compression')
        // and friends fail with "headers already sent" on every later request.
        ffi::output_globals.flags &= !ffi::PHP_OUTPUT_SENT;
        (*sg).request_info.no_headers = true;
        (*sg).request_info.request_method = saved._method.as_ptr();
        // php-fpm never sets it, so PHP answers a Location with 302 even for a POST.
        (*sg).request_info.proto_num = 1000;
        (*sg).post_read = 0;
        (*sg).read_post_bytes = 0;
        // php://input keeps one temp stream per request; empty it for this body.
        let body = (*sg).request_info.request_body;
        if !body.is_null() {
            ffi::truncate(body);
        }
        if !uploads.is_empty() && (*sg).rfc1867_uploaded_files.is_null() {
            // Keys are what PHP looks up; the values are freed by the table's destructor.
            let mut ht = ZendHashTable::new();
            for path in uploads {
                let _ = ht.insert(path.as_str(), path.as_str());
            }
            (*sg).rfc1867_uploaded_files = ht.into_raw();
        }
        SHUTDOWN_FUNCTIONS = std::ptr::null_mut();
        // Output must reach ub_write at the request's end: buffers the worker opened (the CLI's
        // own with output_buffering set) would swallow it, so they are flushed out now.
        ffi::php_output_end_all();
        // implicit_flush (on in the CLI) would turn every echo into a flush().
        ffi::php_output_set_implicit_flush(0);
        // php-fpm opens the default buffer at request start when output_buffering is set.
        if boot.output_buffering > 0 {
            let chunk = if boot.output_buffering > 1 {
                boot.output_buffering
            } else {
                0
            };
            php_output_start_user(
                std::ptr::null_mut(),
                chunk as usize,
                OUTPUT_HANDLER_STDFLAGS,
            );
        }
        saved
    };
    // SAFETY: PHP thread, between two scripts: PHP's request start has no cached stat() of the
    // previous request's last file (a file changed since would report its old size and times).
    unsafe { ffi::php_clear_stat_cache(false, std::ptr::null(), 0) };
    // SAFETY: plain read on the PHP thread.
    if unsafe { !(*pg()).last_error_message.is_null() } {
        // A fresh request has no last error; it also tells exit() from a fatal error later.
        call("error_clear_last", vec![]);
    }
    if boot.time_limit > 0 {
        // Each request gets the whole limit, as under php-fpm.
        call("set_time_limit", vec![&boot.time_limit]);
    }
    saved
}

/// End of the request, before the answer is sent: the request's shutdown functions run (their
/// output is part of the answer), then (`collect`, `rr.cycles=request`) its garbage is
/// collected, then all its output buffers are flushed. `Err` when a destructor ended in a fatal
/// error (the buffers are left as they are: the worker stops).
pub fn end_script(saved: &Saved, collect: bool) -> Result<(), Bailout> {
    // SAFETY: PHP thread. The table is the request's own (the worker's was set aside in
    // `begin`); PHP's functions run and free it, with their own zend_try, as at request end.
    unsafe {
        if !SHUTDOWN_FUNCTIONS.is_null() {
            ffi::php_call_shutdown_functions();
            if let Some(what) = super::settle_exception("a shutdown function") {
                tracing::error!("{what}");
            }
            ffi::php_free_shutdown_functions();
        }
        SHUTDOWN_FUNCTIONS = saved.shutdown_functions;
    }
    // After the shutdown functions, as PHP's request end destroys the objects after them, and
    // while output and headers still make this request's answer.
    if collect {
        collect_garbage()?;
    }
    // SAFETY: PHP thread, between the request's code and its answer.
    unsafe {
        // Forced, as PHP's request shutdown ends them: a handler that made itself immutable
        // (zlib.output_compression and ob_gzhandler do once they first emit) refuses a plain
        // php_output_end(), and left on the stack it would keep its rest of this answer and
        // go on compressing into the next one.
        ffi::php_output_end_all();
    }
    Ok(())
}

/// A fatal error (a longjmp out of the VM) ended PHP code rr called.
pub struct Bailout;

/// Destroys the request's objects caught in reference cycles now, as php-fpm's request end
/// destroys every object: left to PHP's cycle collector, which runs when enough garbage has
/// piled up, their destructors would run during a later request, and a cookie, header or
/// output one of them produced for this request's user would go into another user's answer.
pub fn collect_garbage() -> Result<(), Bailout> {
    // SAFETY: PHP thread, no PHP code running; an exception a destructor throws is left
    // pending for us, a fatal error in one is caught here.
    let collected = try_catch(|| unsafe { ffi::zend_gc_collect_cycles() });
    if collected.is_err() {
        return Err(Bailout);
    }
    if let Some(what) = super::settle_exception("a destructor") {
        tracing::error!("{what}");
    }
    Ok(())
}

/// `rr.cycles=between`: PHP's cycle collector does not run by itself while a request runs, so
/// it can never destroy an earlier request's garbage during this one. Returns whether it was
/// on, for [`resume_collector`].
pub fn pause_collector() -> bool {
    // SAFETY: PHP thread; flips a flag of PHP's collector.
    unsafe { ffi::gc_enable(false) }
}

/// The collector's flag back as [`pause_collector`] found it, without collecting (the script
/// ends after a fatal error).
pub fn collector_back(was_on: bool) {
    // SAFETY: PHP thread; sets a flag of PHP's collector.
    unsafe { ffi::gc_enable(was_on) };
}

/// Between requests (`rr.cycles=between`): the collector back as it was, and a collection now
/// when it would have run by itself (PHP's threshold of possible cycles reached).
pub fn resume_collector(was_on: bool) -> Result<(), Bailout> {
    collector_back(was_on);
    // SAFETY: PHP thread; reads PHP's collector counters.
    let due = unsafe {
        let mut status = ffi::zend_gc_status::default();
        ffi::zend_gc_get_status(&mut status);
        was_on && status.num_roots >= status.threshold
    };
    if due {
        collect_garbage()?;
    }
    Ok(())
}

/// Writes and closes the session and clears the session module's per-request state (id, data,
/// save handlers), as its request shutdown and startup do under php-fpm; in between, the
/// `session.*` ini settings the request changed are put back. Above all
/// `session.save_handler`: `session_set_save_handler()` sets it to `user`, and kept after the
/// handler is freed it makes the next request's `session_start()` fail ("Failed to initialize
/// storage module: user").
pub fn reset_session(directives: &mut Directives) {
    module_hooks(c"session", true, false);
    directives.restore(Scope::Session);
    module_hooks(c"session", false, true);
}

/// zlib's request startup, once `$_SERVER` is the request's: it forgets the previous client's
/// encoding and starts `zlib.output_compression` if this client accepts gzip.
pub fn start_zlib() {
    module_hooks(c"zlib", false, true);
}

/// zlib's request shutdown, after the request's buffers were flushed: `ob_gzhandler`'s state
/// is freed and the output handler may be registered again by the next request.
pub fn end_zlib() {
    module_hooks(c"zlib", true, false);
}

/// Runs a loaded module's request shutdown and/or startup hook, as php-fpm's request cycle does.
fn module_hooks(name: &std::ffi::CStr, shutdown: bool, startup: bool) {
    // SAFETY: PHP thread, no PHP code running; module_registry maps names to module entries
    // (zval IS_PTR); request hooks take (type, module_number).
    unsafe {
        let bytes = name.to_bytes();
        let zv = ext_php_rs::ffi::zend_hash_str_find(
            &raw const ffi::module_registry,
            name.as_ptr(),
            bytes.len(),
        );
        if zv.is_null() {
            return;
        }
        let module = (*zv).value.ptr.cast::<zend_module_entry>();
        let number = (*module).module_number;
        if shutdown {
            if let Some(hook) = (*module).request_shutdown_func {
                hook(ffi::MODULE_PERSISTENT, number);
            }
        }
        if startup {
            if let Some(hook) = (*module).request_startup_func {
                hook(ffi::MODULE_PERSISTENT, number);
            }
        }
    }
}

impl Saved {
    pub fn exit_status(&self) -> c_int {
        self.exit_status
    }
}

/// A fatal error ends the worker script: the request's shutdown functions and then the
/// worker's own run at its end, as PHP's request shutdown calls them.
pub fn after_fatal(saved: &Saved) {
    // SAFETY: PHP thread. Both tables hold IS_PTR entries owned by the table they are in; the
    // worker's entries are moved behind the request's and their old table freed without its
    // destructor, so each entry is owned exactly once.
    unsafe {
        let worker = saved.shutdown_functions;
        if worker.is_null() {
            return;
        }
        if SHUTDOWN_FUNCTIONS.is_null() {
            SHUTDOWN_FUNCTIONS = worker;
            return;
        }
        for (_, entry) in (*worker).iter() {
            let mut copy = std::ptr::read(entry);
            ext_php_rs::ffi::zend_hash_next_index_insert(SHUTDOWN_FUNCTIONS, &raw mut copy);
        }
        (*worker).pDestructor = None;
        ffi::zend_hash_destroy(worker);
        ext_php_rs::alloc::efree(worker.cast());
    }
}

/// After the answer went out: the worker's SAPI state, ini settings, time limit, abort setting,
/// timezone, locale and umask back.
pub fn restore(saved: Saved, boot: &Boot, directives: &mut Directives) {
    // Last, as at php-fpm's request end: shutdown functions, output handlers and the session
    // write ran under the request's handlers and settings.
    saved.handlers.restore();
    // A request that set an mbstring encoding gets mbstring's request shutdown and startup
    // around the ini restore, as the session module does: the shutdown forgets that the
    // encoding was set, so restoring `default_charset` gives mbstring its value back again.
    let mbstring = super::setters::end();
    if mbstring {
        module_hooks(c"mbstring", true, false);
    }
    directives.restore(Scope::Rest);
    if mbstring {
        module_hooks(c"mbstring", false, true);
        super::setters::reapply();
    }
    boot.settings.restore();
    // SAFETY: PHP thread; restoring values read in `begin`.
    unsafe {
        let sg = sg();
        ffi::zend_llist_clean(&raw mut (*sg).sapi_headers.headers);
        // A callback the request registered and that never ran (the request failed) is
        // dropped, as php-fpm's request end drops it.
        drop(std::ptr::replace(
            &raw mut (*sg).callback_func,
            saved.header_callback,
        ));
        (*sg).fci_cache = std::mem::zeroed();
        (*sg).sapi_headers.http_response_code = saved.response_code;
        (*sg).headers_sent = saved.headers_sent;
        (*sg).request_info.no_headers = saved.no_headers;
        (*sg).request_info.request_method = saved.request_method;
        (*sg).request_info.proto_num = saved.proto_num;
        ffi::php_output_set_implicit_flush(c_int::from(boot.implicit_flush));
        let uploaded = std::mem::replace(&mut (*sg).rfc1867_uploaded_files, std::ptr::null_mut());
        if !uploaded.is_null() {
            drop(ZBox::from_raw(uploaded));
        }
    }
    // SAFETY: plain reads of engine globals on the PHP thread.
    let (limit, abort) = unsafe { ((*eg()).timeout_seconds, (*pg()).ignore_user_abort) };
    if limit != boot.time_limit {
        call("set_time_limit", vec![&boot.time_limit]);
    }
    if abort != boot.ignore_user_abort {
        call("ignore_user_abort", vec![&boot.ignore_user_abort]);
    }
}
