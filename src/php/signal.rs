//! SIGTERM and SIGINT start a graceful shutdown. The handlers are registered through PHP's own
//! signal layer (`zend_sigaction`), so PHP's deferral of signals in critical sections still
//! applies and a handler the script installs later with `pcntl_signal()` replaces ours.
use std::os::raw::c_int;

extern "C" {
    fn zend_sigaction(signo: c_int, act: *const libc::sigaction, oldact: *mut libc::sigaction);
}

extern "C" fn on_stop_signal(_signo: c_int) {
    crate::server::request_stop();
}

pub fn install() {
    for signo in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" action; we set the handler
        // to a function that only stores an atomic (async-signal-safe). zend_sigaction copies it.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_stop_signal as extern "C" fn(c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            zend_sigaction(signo, &action, std::ptr::null_mut());
        }
    }
}
