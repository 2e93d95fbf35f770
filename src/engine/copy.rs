//! Copies of the worker made by the application: a request that calls `pcntl_fork()` gets a
//! second process holding everything the worker holds (its listening sockets, its clients'
//! connections, its pool channel). The copy must serve nothing and answer nothing: its answer
//! would go to the worker's client, and the requests it took to other users. A fork handler
//! marks every child; rr's own forks (the template's workers) clear the mark.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

static COPY: AtomicBool = AtomicBool::new(false);
static WATCH: Once = Once::new();

extern "C" fn forked() {
    COPY.store(true, Ordering::Relaxed);
}

/// From now on every child forked from this process is a copy (until [`adopted`]).
pub fn watch() {
    WATCH.call_once(|| {
        // SAFETY: registers a child handler that only stores to an atomic (async-signal-safe).
        let failed = unsafe { libc::pthread_atfork(None, None, Some(forked)) } != 0;
        if failed {
            tracing::warn!(
                "rr: cannot watch for fork(): a copy of the worker forked by a request is not told apart"
            );
        }
    });
}

/// Whether this process is a copy forked by the application.
pub fn is_copy() -> bool {
    COPY.load(Ordering::Relaxed)
}

/// This child was forked by rr itself to be a worker.
pub fn adopted() {
    COPY.store(false, Ordering::Relaxed);
}
