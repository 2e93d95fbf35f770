//! What a request changes in the process through PHP functions and php-fpm's request end puts
//! back: the error and exception handlers it set, the default timezone, the locale (the C
//! library's and intl's default) and the umask. Kept, the next request (another user's) would run under them: an error handler
//! closure holding the previous request's user writes into this one's answer.
use super::ffi::eg;
use ext_php_rs::convert::IntoZvalDyn;
use ext_php_rs::types::Zval;
use ext_php_rs::zend::Function;
use std::ffi::{CStr, CString};
use std::os::raw::c_int;

/// `LC_ALL` as PHP passes it to the C library.
const LC_ALL: i64 = libc::LC_ALL as i64;

/// The worker's own settings, read at its first request.
pub struct Settings {
    timezone: Option<String>,
    /// The C library's name for the whole locale (`LC_CTYPE=C.UTF-8;LC_NUMERIC=C;...`).
    locale: Option<CString>,
    umask: libc::mode_t,
    /// intl's default locale (`Locale::setDefault()`), None without intl.
    intl_locale: Option<String>,
}

/// How deep the handler stacks were when the request began: `set_error_handler()` and
/// `set_exception_handler()` push the handler they replace.
pub struct Handlers {
    error: c_int,
    exception: c_int,
}

/// Calls an internal function by name (a look-up in the function table and a direct call: no
/// callable checks, which cost as much again, as this runs after every request).
pub(super) fn call(function: &str, args: Vec<&dyn IntoZvalDyn>) -> Option<Zval> {
    Function::try_from_function(function)?.try_call(args).ok()
}

fn timezone() -> Option<String> {
    call("date_default_timezone_get", vec![])?.string()
}

fn intl_locale() -> Option<String> {
    call("locale_get_default", vec![])?.string()
}

/// The C library's current locale, read without changing it.
fn locale() -> Option<CString> {
    // SAFETY: setlocale with NULL only reads; the returned string is copied before any other
    // setlocale call can replace it (PHP thread, no PHP code runs in between).
    unsafe {
        let current = libc::setlocale(libc::LC_ALL, std::ptr::null());
        (!current.is_null()).then(|| CStr::from_ptr(current).to_owned())
    }
}

fn umask() -> libc::mode_t {
    // SAFETY: umask only swaps the process's file mode mask; it is put back at once.
    unsafe {
        let mask = libc::umask(0o022);
        libc::umask(mask);
        mask
    }
}

impl Settings {
    pub fn read() -> Settings {
        Settings {
            timezone: timezone(),
            locale: locale(),
            umask: umask(),
            intl_locale: intl_locale(),
        }
    }

    /// Puts back what the request changed; nothing is called when nothing changed but the
    /// timezone and intl locale lookups.
    pub fn restore(&self) {
        if let Some(boot) = &self.timezone {
            if timezone().as_ref() != Some(boot) {
                call("date_default_timezone_set", vec![boot]);
            }
        }
        if let Some(boot) = &self.locale {
            if locale().as_ref() != Some(boot) {
                // Through PHP's setlocale(), which keeps its own idea of LC_CTYPE in step.
                let name = boot.to_string_lossy().into_owned();
                call("setlocale", vec![&LC_ALL, &name]);
            }
        }
        if let Some(boot) = &self.intl_locale {
            if intl_locale().as_ref() != Some(boot) {
                call("locale_set_default", vec![boot]);
            }
        }
        // SAFETY: sets the process's file mode mask to the worker's (one system call; reading
        // it first would take two).
        unsafe { libc::umask(self.umask) };
    }
}

impl Handlers {
    pub fn mark() -> Handlers {
        // SAFETY: PHP thread; plain reads of the executor globals' stack depths.
        unsafe {
            Handlers {
                error: (*eg()).user_error_handlers.top,
                exception: (*eg()).user_exception_handlers.top,
            }
        }
    }

    /// Takes the handlers the request set off again, down to the worker's own.
    pub fn restore(&self) {
        pop(
            // SAFETY: PHP thread; a plain read of the stack depth.
            || unsafe { (*eg()).user_error_handlers.top },
            self.error,
            "restore_error_handler",
        );
        pop(
            // SAFETY: PHP thread; a plain read of the stack depth.
            || unsafe { (*eg()).user_exception_handlers.top },
            self.exception,
            "restore_exception_handler",
        );
    }
}

/// Calls `function` (which pops one handler) until the stack is `to` deep again.
fn pop(depth: impl Fn() -> c_int, to: c_int, function: &str) {
    let mut now = depth();
    while now > to {
        call(function, vec![]);
        let after = depth();
        if after >= now {
            break;
        }
        now = after;
    }
}
