//! Engine state that php-fpm gets fresh for every request and a long-lived worker must set up
//! and reset by hand: SAPI headers and status, output buffers, shutdown functions, the session
//! module, the time limit and `ignore_user_abort`.
use super::ffi::{self, eg, pg, sg, SHUTDOWN_FUNCTIONS};
use ext_php_rs::ffi::{zend_module_entry, HashTable};
use ext_php_rs::types::ZendCallable;
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
    /// Output buffers the worker itself opened; the request's are closed down to this level.
    ob_level: c_int,
    /// The worker's own shutdown functions, set aside while the request registers its own.
    shutdown_functions: *mut HashTable,
    /// Keeps `SG(request_info).request_method` valid during the request.
    _method: CString,
}

/// Settings read once, at the first `handle()`.
pub struct Boot {
    pub time_limit: i64,
    pub ignore_user_abort: bool,
}

impl Boot {
    pub fn read() -> Boot {
        // SAFETY: PHP thread; plain reads of engine globals.
        unsafe {
            Boot {
                time_limit: (*eg()).timeout_seconds,
                ignore_user_abort: (*pg()).ignore_user_abort,
            }
        }
    }
}

fn call(function: &str, arg: &dyn ext_php_rs::convert::IntoZvalDyn) {
    if let Ok(f) = ZendCallable::try_from_name(function) {
        let _ = f.try_call(vec![arg]);
    }
}

/// The SAPI and engine state for a new request; `proto_num` is 1000 for HTTP/1.0 and so on.
pub fn begin(method: &str, proto_num: c_int, boot: &Boot) -> Saved {
    let method = CString::new(method).unwrap_or_default();
    // SAFETY: PHP thread, between requests: nothing else uses these globals now. Strings we
    // free were emalloc'd by PHP's header code; the list holds sapi_header_structs.
    let saved = unsafe {
        let sg = sg();
        let headers = &raw mut (*sg).sapi_headers;
        ffi::zend_llist_clean(&raw mut (*headers).headers);
        for s in [&raw mut (*headers).mimetype, &raw mut (*headers).http_status_line] {
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
            ob_level: ffi::php_output_get_level(),
            shutdown_functions: SHUTDOWN_FUNCTIONS,
            _method: method,
        };
        (*headers).http_response_code = 200;
        (*headers).send_default_content_type = 1;
        (*sg).headers_sent = 0;
        (*sg).request_info.no_headers = true;
        (*sg).request_info.request_method = saved._method.as_ptr();
        (*sg).request_info.proto_num = proto_num;
        (*sg).post_read = 0;
        (*sg).read_post_bytes = 0;
        // php://input keeps one temp stream per request; empty it for this body.
        let body = (*sg).request_info.request_body;
        if !body.is_null() {
            ffi::truncate(body);
        }
        SHUTDOWN_FUNCTIONS = std::ptr::null_mut();
        // implicit_flush (on in the CLI) would turn every echo into a flush().
        ffi::php_output_set_implicit_flush(0);
        saved
    };
    if boot.time_limit > 0 {
        // Each request gets the whole limit, as under php-fpm.
        call("set_time_limit", &boot.time_limit);
    }
    saved
}

/// End of the request, before the answer is sent: the request's shutdown functions run (their
/// output is part of the answer), then its output buffers are flushed down to the worker's.
pub fn end_script(saved: &Saved) {
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
        while ffi::php_output_get_level() > saved.ob_level {
            if ffi::php_output_end() != 0 {
                break;
            }
        }
    }
}

/// Writes and closes the session and clears the session module's per-request state (id, data,
/// save handlers), as its request shutdown and startup do under php-fpm.
pub fn reset_session() {
    // SAFETY: PHP thread, no PHP code running; module_registry maps names to module entries
    // (zval IS_PTR); the session module's request hooks take (type, module_number).
    unsafe {
        let zv = ext_php_rs::ffi::zend_hash_str_find(
            &raw const ffi::module_registry,
            c"session".as_ptr(),
            7,
        );
        if zv.is_null() {
            return;
        }
        let module = (*zv).value.ptr.cast::<zend_module_entry>();
        let number = (*module).module_number;
        if let Some(shutdown) = (*module).request_shutdown_func {
            shutdown(ffi::MODULE_PERSISTENT, number);
        }
        if let Some(startup) = (*module).request_startup_func {
            startup(ffi::MODULE_PERSISTENT, number);
        }
    }
}

/// After the answer went out: the worker's SAPI state, time limit and abort setting back.
pub fn restore(saved: Saved, boot: &Boot) {
    // SAFETY: PHP thread; restoring values read in `begin`.
    unsafe {
        let sg = sg();
        ffi::zend_llist_clean(&raw mut (*sg).sapi_headers.headers);
        (*sg).sapi_headers.http_response_code = saved.response_code;
        (*sg).headers_sent = saved.headers_sent;
        (*sg).request_info.no_headers = saved.no_headers;
        (*sg).request_info.request_method = saved.request_method;
        (*sg).request_info.proto_num = saved.proto_num;
        (*eg()).exit_status = saved.exit_status;
        ffi::php_output_set_implicit_flush(1);
    }
    // SAFETY: plain reads of engine globals on the PHP thread.
    let (limit, abort) = unsafe { ((*eg()).timeout_seconds, (*pg()).ignore_user_abort) };
    if limit != boot.time_limit {
        call("set_time_limit", &boot.time_limit);
    }
    if abort != boot.ignore_user_abort {
        call("ignore_user_abort", &boot.ignore_user_abort);
    }
}
