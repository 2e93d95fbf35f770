//! What every process the master starts does first, re-executed (between fork and exec) or
//! forked from the template (once it is the master's child).

/// What every process rr starts gets between fork and exec (or, forked from the template, once
/// it is the master's child): an empty signal mask (the thread that forked may be `rr-io`,
/// which blocks every signal) and death with the master (`PR_SET_PDEATHSIG`: a worker stuck in
/// a request would otherwise outlive a killed master). Async-signal-safe calls only.
/// Meant for a freshly forked child (or a single-threaded process): it changes the calling
/// thread's mask only.
pub fn setup(master: libc::pid_t) -> std::io::Result<()> {
    // SAFETY: sigemptyset initialises the set we own; pthread_sigmask reads it and changes
    // only the calling thread's mask.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
    // SAFETY: prctl with integer arguments only; getppid has no arguments.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == -1 {
            return Err(std::io::Error::last_os_error());
        }
        // The master died before the prctl: nothing would deliver the signal.
        if libc::getppid() != master {
            return Err(std::io::Error::other("the master exited"));
        }
    }
    Ok(())
}
