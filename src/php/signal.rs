//! SIGTERM and SIGINT start a graceful shutdown; in a pool master, SIGHUP reloads the workers. The handlers are registered through PHP's own
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

pub fn install(master: bool) {
    let reload = master.then_some(libc::SIGHUP);
    for signo in [libc::SIGTERM, libc::SIGINT].into_iter().chain(reload) {
        let handler = match signo {
            libc::SIGHUP => on_reload_signal as extern "C" fn(c_int),
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
