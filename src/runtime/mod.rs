//! The tokio runtime and which thread drives it.
//!
//! One current-thread runtime runs every connection. Its core can be held by one thread at a
//! time; a thread that calls `block_on` while another holds it waits for the core or for its own
//! future. rr uses that to choose who does the I/O:
//! - `Inline`: only the PHP thread, while it waits in `waitRequest()` (Swoole BASE's model).
//! - `Thread`: only the driver thread; PHP waits on channels (the classic thread hop).
//! - `Hybrid` (default): PHP drives while it waits; once PHP has been busy for `handoff`, the
//!   driver thread takes the core and gives it back as soon as PHP waits again. Short requests
//!   pay no thread hop and long ones stall nothing.
//!
//! See docs/architecture.md for the measurements behind the default.
pub mod scheduling;

use crate::config::IoDriver;
use scheduling::ThreadPolicy;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::Notify;

struct Shared {
    /// Bumped when PHP starts and stops waiting: even = PHP is waiting (driving), odd = busy.
    phase: AtomicU64,
    /// The driver thread is parked without a timeout: PHP must unpark it when it gets busy.
    asleep: AtomicBool,
    /// PHP started waiting again: the driver thread must hand the core back.
    php_waits: Notify,
    stop: AtomicBool,
}

/// Free descriptors a runtime must find when it is built: its epoll and waker, the signal
/// driver's socket pair (tokio panics when it cannot make that pair), the listener, and a few
/// connections and files so the server can do something.
const MIN_FREE_DESCRIPTORS: usize = 16;

/// Builds a runtime, or says that the descriptor limit is too low to run one (tokio's signal
/// driver panics instead of returning the error).
fn build(builder: &mut Builder) -> std::io::Result<Runtime> {
    if let Some(limit) = crate::server::nofile_limit() {
        let open = open_descriptors()?;
        check_descriptors(limit, open)?;
    }
    builder.build()
}

/// Descriptors this process has open now.
fn open_descriptors() -> std::io::Result<usize> {
    // The directory's own descriptor is among the entries while it is read.
    Ok(std::fs::read_dir("/proc/self/fd")?
        .count()
        .saturating_sub(1))
}

fn check_descriptors(limit: u64, open: usize) -> std::io::Result<()> {
    let free = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(open);
    if free >= MIN_FREE_DESCRIPTORS {
        return Ok(());
    }
    Err(std::io::Error::other(format!(
        "only {free} file descriptors are free (the soft RLIMIT_NOFILE is {limit} and {open} are \
         open); rr needs at least {MIN_FREE_DESCRIPTORS}: raise the limit (`ulimit -n`, systemd's \
         `LimitNOFILE=`)"
    )))
}

/// The runtime plus the policy for which thread drives it.
pub struct Driver {
    // Shared with the driver thread: only `Runtime::block_on` takes the core and drives the I/O
    // and timers (`Handle::block_on` on a current-thread runtime drives nothing).
    runtime: Option<Arc<Runtime>>,
    shared: Arc<Shared>,
    helper: Option<JoinHandle<()>>,
}

impl Driver {
    /// `policy`: the Linux scheduling policy of the driver thread (and the blocking threads
    /// it starts).
    pub fn new(mode: IoDriver, handoff: Duration, policy: ThreadPolicy) -> std::io::Result<Driver> {
        let runtime = Arc::new(build(
            Builder::new_current_thread()
                .enable_all()
                .thread_name("rr-blocking")
                .on_thread_start(block_signals),
        )?);
        let shared = Arc::new(Shared {
            phase: AtomicU64::new(1),
            asleep: AtomicBool::new(false),
            php_waits: Notify::new(),
            stop: AtomicBool::new(false),
        });
        let helper = match mode {
            IoDriver::Inline => None,
            IoDriver::Thread | IoDriver::Hybrid => {
                let runtime = runtime.clone();
                let shared = shared.clone();
                let handoff = (mode == IoDriver::Hybrid).then_some(handoff);
                Some(
                    std::thread::Builder::new()
                        .name("rr-io".into())
                        .spawn(move || {
                            block_signals();
                            policy.apply_or_warn();
                            drive(&runtime, &shared, handoff)
                        })?,
                )
            }
        };
        Ok(Driver {
            runtime: Some(runtime),
            shared,
            helper,
        })
    }

    /// A multi-thread runtime of `threads` worker threads (the pool master's
    /// `http.pool.master_threads` above 1): they drive the I/O; `wait` only blocks the caller.
    pub fn multi_thread(threads: usize, policy: ThreadPolicy) -> std::io::Result<Driver> {
        let runtime = Arc::new(build(
            Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .thread_name("rr-io")
                .on_thread_start(move || {
                    block_signals();
                    policy.apply_or_warn();
                }),
        )?);
        Ok(Driver {
            runtime: Some(runtime),
            shared: Arc::new(Shared {
                phase: AtomicU64::new(1),
                asleep: AtomicBool::new(false),
                php_waits: Notify::new(),
                stop: AtomicBool::new(false),
            }),
            helper: None,
        })
    }

    pub fn handle(&self) -> &Handle {
        self.runtime().handle()
    }

    fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().expect("runtime lives until drop")
    }

    /// Runs a future that completes at once (a reply handed to a connection) inside the runtime,
    /// so the tasks it wakes go on the local run queue instead of costing an eventfd write to
    /// wake the driver. They run at PHP's next `wait`, or in hybrid mode within `handoff` on the
    /// driver thread. When another thread holds the core, the future is polled without it, and
    /// the wake-up goes through the driver as usual.
    pub fn run_here<F: Future>(&self, fut: F) -> F::Output {
        self.runtime().block_on(fut)
    }

    /// Run `fut` to completion on the calling (PHP) thread, driving I/O while it waits.
    pub fn wait<F: Future>(&self, fut: F) -> F::Output {
        self.wait_unless(fut, |_| false)
    }

    /// As [`Driver::wait`]; when `passing(&out)` says PHP only passes by (a tick with nothing to
    /// do: it runs its signal handlers and waits again), a driver thread that went to sleep is
    /// left asleep. Waking it at every tick kept it looking at PHP every `handoff` forever: an
    /// idle process used 1.3% of a core. I/O waits for PHP's return from such a pass, as in
    /// `Inline` mode.
    pub fn wait_unless<F: Future>(
        &self,
        fut: F,
        passing: impl FnOnce(&F::Output) -> bool,
    ) -> F::Output {
        let shared = &self.shared;
        shared.phase.fetch_add(1, Ordering::AcqRel);
        shared.php_waits.notify_one();
        let out = self.runtime().block_on(fut);
        shared.phase.fetch_add(1, Ordering::SeqCst);
        // Only a driver thread that gave up watching needs a wake-up: no syscall per request.
        if shared.asleep.load(Ordering::SeqCst) && !passing(&out) {
            if let Some(helper) = &self.helper {
                helper.thread().unpark();
            }
        }
        out
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.php_waits.notify_one();
        if let Some(helper) = self.helper.take() {
            helper.thread().unpark();
            let _ = helper.join();
        }
        if let Some(runtime) = self.runtime.take().and_then(Arc::into_inner) {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// After this many looks at a waiting PHP thread, the driver thread parks until PHP gets busy.
const IDLE_LOOKS_BEFORE_SLEEP: u32 = 64;

/// The driver thread. With `handoff` it looks at PHP every `handoff` and takes the core when
/// PHP has stayed busy between two looks, handing it back as soon as PHP waits again. Without
/// it, it holds the core whenever it can.
fn drive(runtime: &Runtime, shared: &Shared, handoff: Option<Duration>) {
    let mut idle_looks = 0;
    while !shared.stop.load(Ordering::Acquire) {
        let phase = shared.phase.load(Ordering::SeqCst);
        if let Some(handoff) = handoff {
            if phase.is_multiple_of(2) {
                // PHP is waiting and drives the I/O itself.
                idle_looks += 1;
                if idle_looks >= IDLE_LOOKS_BEFORE_SLEEP {
                    shared.asleep.store(true, Ordering::SeqCst);
                    if shared.phase.load(Ordering::SeqCst) == phase {
                        std::thread::park();
                    }
                    shared.asleep.store(false, Ordering::SeqCst);
                    idle_looks = 0;
                } else {
                    std::thread::park_timeout(handoff);
                }
                continue;
            }
            idle_looks = 0;
            std::thread::park_timeout(handoff);
            if shared.phase.load(Ordering::SeqCst) != phase {
                continue; // PHP came back in time: nothing stalled.
            }
        }
        runtime.block_on(async {
            loop {
                let notified = shared.php_waits.notified();
                if shared.stop.load(Ordering::Acquire) {
                    return;
                }
                // Hybrid: hand the core back as soon as PHP waits again.
                if handoff.is_some() && shared.phase.load(Ordering::SeqCst) != phase {
                    return;
                }
                notified.await;
            }
        });
    }
}

/// Signals belong to the PHP thread (pcntl handlers, SIGTERM handling): keep them off ours.
pub fn block_signals() {
    // SAFETY: sigfillset initialises the set we own; pthread_sigmask only changes the calling
    // thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn driver(mode: IoDriver) -> Driver {
        Driver::new(mode, Duration::from_millis(1), ThreadPolicy::INHERITED).unwrap()
    }

    /// A task spawned while PHP is busy must make progress in every mode but Inline.
    fn progress_while_busy(mode: IoDriver) -> bool {
        let driver = driver(mode);
        let (tx, rx) = std::sync::mpsc::channel();
        driver.wait(async {});
        driver.handle().spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let _ = tx.send(());
        });
        let got = rx.recv_timeout(Duration::from_millis(500)).is_ok();
        // Once PHP waits again, everything completes in every mode.
        driver.wait(async { tokio::time::sleep(Duration::from_millis(1)).await });
        got
    }

    #[test]
    fn too_few_free_descriptors_is_an_error_that_names_the_limit() {
        let error = check_descriptors(8, 3).unwrap_err().to_string();
        assert!(
            error.contains("only 5 file descriptors are free"),
            "{error}"
        );
        assert!(error.contains("RLIMIT_NOFILE is 8"), "{error}");
        assert!(check_descriptors(8, 9).is_err(), "more open than the limit");
        assert!(check_descriptors(19, 3).is_ok());
        assert!(check_descriptors(u64::MAX, 3).is_ok());
    }

    #[test]
    fn hybrid_and_thread_drive_while_php_is_busy_inline_does_not() {
        assert!(progress_while_busy(IoDriver::Hybrid));
        assert!(progress_while_busy(IoDriver::Thread));
        assert!(!progress_while_busy(IoDriver::Inline));
    }

    #[test]
    fn a_pass_with_nothing_to_do_leaves_a_sleeping_driver_thread_asleep() {
        let driver = driver(IoDriver::Hybrid);
        let asleep = || driver.shared.asleep.load(Ordering::SeqCst);
        // PHP waits until the driver thread gives up watching it, then passes by (a tick).
        driver.wait_unless(
            async {
                while !asleep() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            |_| true,
        );
        std::thread::sleep(Duration::from_millis(20));
        assert!(asleep(), "a tick must not wake the driver thread");
        // A request is no pass: the driver thread wakes to watch PHP again.
        driver.wait(async {});
        let deadline = Instant::now() + Duration::from_secs(10);
        while asleep() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!asleep(), "a request wakes the driver thread");
    }

    #[test]
    fn php_gets_the_core_back_after_a_handoff() {
        let driver = driver(IoDriver::Hybrid);
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(3)); // PHP busy: the driver thread takes over
            let start = Instant::now();
            driver.wait(tokio::task::yield_now());
            assert!(start.elapsed() < Duration::from_millis(200));
        }
    }
}
