//! Between two `waitRequest()` requests: PHP's session module keeps the last request's session
//! (its id, and `$_SESSION`) in a long-lived worker, where php-fpm starts every request
//! without one. A request that never closed its session, or a next one that calls
//! `session_start()` without naming an id, resumed it: the next client was the previous user.
//! `handle()` resets the whole module (see `sapi::state::reset_session`); here only the id and
//! `$_SESSION` are forgotten, so save handlers the worker set before its loop stay.
use ext_php_rs::boxed::ZBox;
use ext_php_rs::ffi::zend_string;
use ext_php_rs::types::{ZendCallable, ZendStr};
use ext_php_rs::zend::ExecutorGlobals;
use std::os::raw::c_char;
use std::sync::OnceLock;

/// The head of `php_ps_globals` (ext/session/php_session.h, PHP 8.2): `PS(id)` is its third
/// member.
#[repr(C)]
struct SessionGlobals {
    save_path: *mut c_char,
    session_name: *mut c_char,
    id: *mut zend_string,
}

/// The session module's globals, looked up by name: absent when it is not loaded (a shared
/// `session.so` not enabled), and then nothing is left to forget.
fn globals() -> Option<*mut SessionGlobals> {
    static FOUND: OnceLock<usize> = OnceLock::new();
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks a symbol up.
    let found = *FOUND.get_or_init(|| unsafe {
        libc::dlsym(libc::RTLD_DEFAULT, c"ps_globals".as_ptr()) as usize
    });
    (found != 0).then_some(found as *mut SessionGlobals)
}

fn call(function: &str) -> Option<i64> {
    let f = ZendCallable::try_from_name(function).ok()?;
    f.try_call(vec![]).ok()?.long()
}

/// The request before this one is over: a session it left open is written and closed (as
/// php-fpm's request end writes it), and its id and `$_SESSION` are forgotten.
pub fn forget() {
    let Some(ps) = globals() else { return };
    let eg = ExecutorGlobals::get();
    // SAFETY: PHP thread, no PHP code running; PS(id) is NULL or a string the module owns.
    let has_id = unsafe { !(*ps).id.is_null() };
    if !has_id && eg.symbol_table.get("_SESSION").is_none() {
        return;
    }
    drop(eg);
    // PHP_SESSION_ACTIVE.
    if call("session_status") == Some(2) {
        tracing::warn!(
            "RR\\Worker::waitRequest(): the previous request left its session open: written and \
             closed now, so the next request cannot resume it (call session_write_close())"
        );
        let _ = call("session_write_close");
    }
    // SAFETY: as above; the module is not in a session any more, so its id is ours to release
    // (what its request shutdown does), and the table is the global scope.
    unsafe {
        let id = std::mem::replace(&mut (*ps).id, std::ptr::null_mut());
        if !id.is_null() {
            drop(ZBox::from_raw(id.cast::<ZendStr>()));
        }
    }
    let _ = ExecutorGlobals::get_mut().symbol_table.remove("_SESSION");
}
