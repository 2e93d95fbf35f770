//! SIGTERM, SIGINT and SIGQUIT (php-fpm's and nginx's graceful stop) start a graceful shutdown;
//! in a pool master, SIGHUP reloads the workers, elsewhere it is ignored (single-process mode
//! has nothing to reload); SIGUSR1 opens the log file again by name (a pool master passes it on
//! to its workers). The handlers are registered through PHP's own
//! signal layer (`zend_sigaction`), so PHP's deferral of signals in critical sections still
//! applies and a handler the script installs later with `pcntl_signal()` replaces ours.
use std::os::raw::c_int;

extern "C" {
    fn zend_sigaction(signo: c_int, act: *const libc::sigaction, oldact: *mut libc::sigaction);
}

extern "C" fn on_stop_signal(_signo: c_int) {
    crate::server::request_stop();
}

extern "C" fn on_reload_signal(_signo: c_int) {
    crate::pool::request_reload();
}

extern "C" fn on_reopen_signal(_signo: c_int) {
    crate::logging::request_reopen();
}

extern "C" fn on_reopen_signal_master(_signo: c_int) {
    crate::logging::request_reopen();
    crate::pool::request_log_reopen();
}

/// SIGHUP without a pool: nothing to reload, and a hangup must not end the server (its
/// default action). A handler, not SIG_IGN, so processes the script starts get the default.
extern "C" fn on_hangup(_signo: c_int) {}

pub fn install(master: bool) {
    for signo in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGHUP,
        libc::SIGUSR1,
    ] {
        let handler = match signo {
            libc::SIGHUP if master => on_reload_signal as extern "C" fn(c_int),
            libc::SIGHUP => on_hangup as extern "C" fn(c_int),
            libc::SIGUSR1 if master => on_reopen_signal_master as extern "C" fn(c_int),
            libc::SIGUSR1 => on_reopen_signal as extern "C" fn(c_int),
            _ => on_stop_signal as extern "C" fn(c_int),
        };
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" action; we set the handler
        // to a function that only stores an atomic (async-signal-safe). zend_sigaction copies it.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as usize;
            libc::sigemptyset(&mut action.sa_mask);
            zend_sigaction(signo, &action, std::ptr::null_mut());
        }
    }
}
