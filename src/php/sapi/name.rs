//! `rr.sapi_name`: the SAPI name `php_sapi_name()` reports. Applications written for php-fpm
//! check it (Nextcloud skips sessions and trusted-domain checks under `cli`), so a worker may
//! present itself as `fpm-fcgi`. The `PHP_SAPI` constant was fixed before any extension
//! started and stays `cli`.
use ext_php_rs::ffi::sapi_module;
use std::ffi::CString;
use std::os::raw::c_char;
use std::sync::OnceLock;

/// The CLI's own name pointer, given back at module shutdown, and the name rr put in its place
/// (kept alive for the whole process: PHP holds the pointer).
struct Renamed {
    original: usize,
    _name: CString,
}

static RENAMED: OnceLock<Renamed> = OnceLock::new();

/// MINIT: report `name` from now on. Empty (the default) keeps the SAPI's own name; a name with
/// a NUL byte cannot be one and is refused with a warning.
pub fn rename(name: &str) {
    if name.is_empty() {
        return;
    }
    let Ok(c) = CString::new(name) else {
        crate::logging::to_stderr(format_args!(
            "rr: ini rr.sapi_name {name:?} contains a NUL byte: ignored"
        ));
        return;
    };
    // SAFETY: MINIT on the PHP thread, before any script: nothing reads sapi_module.name
    // concurrently. The new pointer stays valid: the CString lives in a process-wide static.
    unsafe {
        let m = &raw mut sapi_module;
        let original = (*m).name as usize;
        let ptr = c.as_ptr().cast_mut();
        if RENAMED.set(Renamed { original, _name: c }).is_ok() {
            (*m).name = ptr;
        }
    }
}

/// MSHUTDOWN: the SAPI's own name back.
pub fn restore() {
    let Some(renamed) = RENAMED.get() else { return };
    // SAFETY: module shutdown on the PHP thread; the original pointer is the SAPI's static name.
    unsafe {
        sapi_module.name = renamed.original as *mut c_char;
    }
}
