//! Linux scheduling policies for rr's own threads: `http.pool.worker_scheduling` (a worker's
//! PHP thread) and `http.pool.master_scheduling` (the master's runtime threads). See
//! docs/pool.md, "Scheduling".
use crate::config::Scheduling;

/// A thread's policy and the setting it comes from (named in the warning when it cannot be set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadPolicy {
    pub setting: &'static str,
    pub scheduling: Scheduling,
}

impl ThreadPolicy {
    /// Whatever the thread inherited: nothing is set.
    pub const INHERITED: ThreadPolicy = ThreadPolicy {
        setting: "",
        scheduling: Scheduling::Normal,
    };

    /// Sets the policy on the calling thread; a failure is logged as a warning naming the
    /// setting, and the thread goes on with the policy it had (a sandbox may forbid the call;
    /// nothing else depends on it).
    pub fn apply_or_warn(self) {
        if let Err(e) = apply(self.scheduling) {
            tracing::warn!(
                "{}: {} could not be set ({e}); the thread runs with the normal policy",
                self.setting,
                self.scheduling.as_str()
            );
        }
    }
}

/// Sets `policy` on the calling thread; threads and processes it starts afterwards inherit
/// it. `Normal` leaves the thread as it is.
pub fn apply(policy: Scheduling) -> std::io::Result<()> {
    match policy {
        Scheduling::Normal => Ok(()),
        Scheduling::Batch => set(libc::SCHED_BATCH),
    }
}

/// Puts the calling thread back to the normal policy (`SCHED_OTHER`): what a process the
/// master starts does before exec, whatever the thread that forked it runs with. A single
/// system call: safe between fork and exec.
pub fn reset() -> std::io::Result<()> {
    set(libc::SCHED_OTHER)
}

fn set(policy: libc::c_int) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler on the calling thread (0) with an initialised parameter that
    // outlives the call; SCHED_BATCH and SCHED_OTHER need no privilege.
    match unsafe { libc::sched_setscheduler(0, policy, &param) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's policy (`SCHED_OTHER`, `SCHED_BATCH`, ...).
    fn current() -> std::io::Result<libc::c_int> {
        // SAFETY: sched_getscheduler on the calling thread only reads.
        match unsafe { libc::sched_getscheduler(0) } {
            -1 => Err(std::io::Error::last_os_error()),
            p => Ok(p),
        }
    }

    fn in_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().unwrap()
    }

    #[test]
    fn batch_is_set_on_the_calling_thread_and_inherited_by_its_threads() {
        let (inside, started) = in_thread(|| {
            apply(Scheduling::Batch).unwrap();
            (current().unwrap(), in_thread(current).unwrap())
        });
        assert_eq!(inside, libc::SCHED_BATCH);
        assert_eq!(started, libc::SCHED_BATCH);
        assert_eq!(
            current().unwrap(),
            libc::SCHED_OTHER,
            "other threads keep theirs"
        );
    }

    #[test]
    fn normal_changes_nothing_and_reset_goes_back_to_other() {
        let (after_normal, after_reset) = in_thread(|| {
            apply(Scheduling::Batch).unwrap();
            apply(Scheduling::Normal).unwrap();
            let after_normal = current().unwrap();
            reset().unwrap();
            (after_normal, current().unwrap())
        });
        assert_eq!(after_normal, libc::SCHED_BATCH);
        assert_eq!(after_reset, libc::SCHED_OTHER);
    }
}
