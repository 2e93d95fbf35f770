//! Starting a worker process: the same php binary, argv and environment as the master, plus
//! `RR_POOL_FD` naming its end of a fresh socketpair. Re-executed, never forked from the
//! master: it has tokio threads (see docs/pool.md). In template mode the template is started
//! this way and the workers are forked from it ([`Fork`]). A worker's stdout and stderr go to
//! the master's log.
use crate::ipc;
use crate::ipc::claim::{Claim, CLAIM_ENV};
use crate::server::Bound;
use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Interest};
use tokio::net::UnixStream;
use tokio::process::Command;
use tokio::task::JoinHandle;

/// Lines of a worker's output kept for the message when it cannot boot.
const TAIL_LINES: usize = 20;

/// How to start a worker: what this process was started with.
#[derive(Clone)]
pub struct Spawner {
    exe: PathBuf,
    args: Vec<OsString>,
    addrs: String,
}

impl Spawner {
    pub fn from_self(bound: &[Bound]) -> std::io::Result<Spawner> {
        let exe = std::fs::read_link("/proc/self/exe")?;
        let cmdline = std::fs::read("/proc/self/cmdline")?;
        let args = cmdline
            .split(|b| *b == 0)
            .skip(1)
            .map(|a| OsString::from_vec(a.to_vec()))
            .collect::<Vec<_>>();
        // /proc/self/cmdline ends with a NUL: drop the empty last piece.
        let args = match args.last().is_some_and(|a| a.is_empty()) {
            true => args[..args.len() - 1].to_vec(),
            false => args,
        };
        let addrs = bound
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        Ok(Spawner { exe, args, addrs })
    }

    /// Starts worker number `id`; call inside the runtime.
    pub fn spawn(&self, id: u64) -> std::io::Result<Process> {
        self.exec(Some(id))
    }

    /// Starts the template process (`http.pool.template`): a worker that forks the others.
    pub fn spawn_template(&self) -> std::io::Result<Process> {
        self.exec(None)
    }

    fn exec(&self, id: Option<u64>) -> std::io::Result<Process> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let theirs = OwnedFd::from(theirs);
        let fd = theirs.as_raw_fd();
        let (claim, claim_fd) = Claim::create()?;
        let claim_raw = claim_fd.as_raw_fd();
        let mut cmd = Command::new(&self.exe);
        // Only the master talks to systemd: a worker must not say READY or feed the watchdog.
        for name in crate::systemd::ENV_VARS {
            cmd.env_remove(name);
        }
        cmd.args(&self.args)
            .env(ipc::FD_ENV, fd.to_string())
            .env(CLAIM_ENV, claim_raw.to_string())
            .env(ipc::ADDRS_ENV, &self.addrs)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // Its own process group: a Ctrl-C on the terminal reaches the master only, which
            // then drains and stops the workers in order.
            .process_group(0)
            .kill_on_drop(true);
        match id {
            Some(id) => cmd.env(ipc::ID_ENV, id.to_string()),
            None => cmd.env(ipc::ID_ENV, "template").env(ipc::TEMPLATE_ENV, "1"),
        };
        let master = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec only async-signal-safe calls run (fcntl, signal,
        // sigemptyset, pthread_sigmask, prctl, getppid, close_range, close), on the child's own
        // state.
        unsafe {
            cmd.pre_exec(move || {
                // The descriptors the worker must inherit: its channel and its claim word.
                for inherited in [fd, claim_raw] {
                    if libc::fcntl(inherited, libc::F_SETFD, 0) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // PHP opens its streams and sockets without close-on-exec: a connection the
                // master's script opened (Redis, a database) would otherwise live on in every
                // worker and template (and trip the template's check).
                close_others([fd, claim_raw]);
                // The thread forking may run with http.pool.master_scheduling: the worker
                // starts normal and sets http.pool.worker_scheduling itself.
                crate::runtime::scheduling::reset()?;
                // SIGUSR1 (passed on by the master: reopen the log file) would end a worker
                // whose script has not installed rr's handler yet; ignored until then.
                if libc::signal(libc::SIGUSR1, libc::SIG_IGN) == libc::SIG_ERR {
                    return Err(std::io::Error::last_os_error());
                }
                ipc::child::setup(master)
            });
        }
        let mut child = cmd.spawn()?;
        drop((theirs, claim_fd));
        let pid = child.id().unwrap_or(0);
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let mut process = Process::new(pid, Child::Exec(child), ours, claim)?;
        if let Some(out) = out {
            process.read_output(out, "stdout");
        }
        if let Some(err) = err {
            process.read_output(err, "stderr");
        }
        Ok(process)
    }
}

/// Closes every descriptor above stderr except the two in `keep` (between fork and exec:
/// system calls only, no allocation). Before Linux 5.9 close_range does not exist and the
/// descriptors are closed one by one.
fn close_others(keep: [std::os::fd::RawFd; 2]) {
    let (lo, hi) = (
        keep[0].min(keep[1]) as libc::c_uint,
        keep[0].max(keep[1]) as libc::c_uint,
    );
    // SAFETY: close_range and close only close descriptors of this (forked) process.
    unsafe {
        let mut ok = true;
        let mut next: libc::c_uint = 3;
        for k in [lo, hi] {
            if k >= next {
                if k > next {
                    ok &= libc::close_range(next, k - 1, 0) == 0;
                }
                next = k + 1;
            }
        }
        ok &= libc::close_range(next, libc::c_uint::MAX, 0) == 0;
        if !ok {
            for fd in 3..65536 {
                if !keep.contains(&fd) {
                    libc::close(fd);
                }
            }
        }
    }
}

/// Whether a failed start is the machine's state (out of descriptors, processes or memory), not
/// the script's fault: retried, never counted as a boot failure.
pub fn for_lack_of_resources(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOMEM)
    )
}

/// What the template needs to fork a worker ([`Fork::theirs`], sent with the order) and what
/// the master keeps to talk to it once its pid is known.
pub struct Fork {
    /// Its channel, stdout, stderr and claim word.
    pub theirs: [OwnedFd; 4],
    channel: std::os::unix::net::UnixStream,
    claim: Claim,
    out: OwnedFd,
    err: OwnedFd,
}

impl Fork {
    /// A socketpair and two pipes; the worker's ends go to the template.
    pub fn new() -> std::io::Result<Fork> {
        let (channel, theirs) = std::os::unix::net::UnixStream::pair()?;
        let (out, out_w) = pipe()?;
        let (err, err_w) = pipe()?;
        let (claim, claim_fd) = Claim::create()?;
        Ok(Fork {
            theirs: [OwnedFd::from(theirs), out_w, err_w, claim_fd],
            channel,
            claim,
            out,
            err,
        })
    }

    /// The template forked it as `pid` (now a child of this process, see docs/pool.md).
    pub fn started(self, pid: u32) -> std::io::Result<Process> {
        drop(self.theirs);
        let child = Child::ForkedChild(ForkedChild::new(pid));
        let mut process = Process::new(pid, child, self.channel, self.claim)?;
        process.read_output(
            tokio::net::unix::pipe::Receiver::from_owned_fd(self.out)?,
            "stdout",
        );
        process.read_output(
            tokio::net::unix::pipe::Receiver::from_owned_fd(self.err)?,
            "stderr",
        );
        Ok(process)
    }
}

/// A pipe whose read end (ours, non-blocking for the runtime) stays in the master.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two-int array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned these descriptors; F_SETFL on our read end only.
    unsafe {
        let (r, w) = (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]));
        libc::fcntl(fds[0], libc::F_SETFL, libc::O_NONBLOCK);
        Ok((r, w))
    }
}

/// The worker process itself: re-executed (a tokio child) or forked from the template.
pub enum Child {
    Exec(tokio::process::Child),
    ForkedChild(ForkedChild),
}

/// A worker forked from the template. Its parent died at once, so it is this (subreaper)
/// process's child: its exit is seen on a pidfd and reaped with waitpid.
pub struct ForkedChild {
    pid: u32,
    pidfd: Option<AsyncFd<OwnedFd>>,
    reaped: bool,
}

impl ForkedChild {
    fn new(pid: u32) -> ForkedChild {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        // SAFETY: the kernel just gave us this descriptor.
        let owned = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        let pidfd = owned.and_then(|fd| {
            // SAFETY: the AsyncFd owns the OwnedFd, so it stays open and the same descriptor
            // until the AsyncFd is dropped.
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok()
        });
        ForkedChild {
            pid,
            pidfd,
            reaped: false,
        }
    }

    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        loop {
            let mut status = 0;
            // SAFETY: waitpid on one pid with a status int we own; WNOHANG never blocks.
            let got = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, libc::WNOHANG) };
            if got == self.pid as libc::pid_t {
                self.reaped = true;
                return Ok(ExitStatus::from_raw(status));
            }
            if got == -1 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                // Not our child (no subreaper): wait for its end without a status.
                self.exited().await;
                self.reaped = true;
                return Err(std::io::Error::other(format!("exit status unknown: {e}")));
            }
            self.exited().await;
        }
    }

    /// Returns once the process has ended (the pidfd turns readable), or after a tick.
    async fn exited(&self) {
        match &self.pidfd {
            Some(fd) => match fd.readable().await {
                Ok(mut guard) => guard.retain_ready(),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            },
            None => {
                // SAFETY: kill with signal 0 only checks that the process exists.
                while unsafe { libc::kill(self.pid as libc::pid_t, 0) } == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    if is_zombie(self.pid) {
                        return;
                    }
                }
            }
        }
    }

    fn kill(&self) {
        if !self.reaped {
            // SAFETY: the pid is our unreaped child (or zombie), so it names that process.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

impl Drop for ForkedChild {
    /// As `kill_on_drop` for re-executed workers.
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running worker process.
pub struct Process {
    pub pid: u32,
    child: Child,
    pub channel: UnixStream,
    /// Decides, with the worker, who runs a request sent ahead (see [`Claim`]).
    pub claim: Claim,
    tail: Arc<Mutex<VecDeque<String>>>,
    readers: Vec<JoinHandle<()>>,
}

/// The pids this master waits for itself (workers, templates): [`reap_strays`] leaves them.
static OWN: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

fn own() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    OWN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends `signal` to every worker and template this master waits for (SIGUSR1: reopen the log
/// file). Each was started with SIGUSR1 ignored until its script installs rr's handler, so one
/// still booting does not die of it.
pub fn signal_own(signal: libc::c_int) {
    for &pid in own().iter() {
        // SAFETY: kill takes any pid. These are children not yet reaped (a zombie ignores
        // signals), or, in the instant between a reap and its removal from the set, a pid the
        // kernel hands out again only after wrapping around pid_max.
        unsafe { libc::kill(pid as libc::pid_t, signal) };
    }
}

/// Template mode makes the master a child subreaper, so any orphan below it (say, a daemon a
/// worker script started) becomes its child: reap those that ended, so no zombie piles up.
pub fn reap_strays() {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    let children: Vec<u32> = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    for pid in children {
        if !own().contains(&pid) && is_zombie(pid) {
            let mut status = 0;
            // SAFETY: reaps one ended child that no worker or template handle waits for.
            unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
            tracing::debug!(pid, status, "reaped a stray process");
        }
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

impl Process {
    fn new(
        pid: u32,
        child: Child,
        channel: std::os::unix::net::UnixStream,
        claim: Claim,
    ) -> std::io::Result<Process> {
        own().insert(pid);
        channel.set_nonblocking(true)?;
        Ok(Process {
            pid,
            child,
            channel: UnixStream::from_std(channel)?,
            claim,
            tail: Arc::new(Mutex::new(VecDeque::new())),
            readers: Vec::new(),
        })
    }

    fn read_output(&mut self, pipe: impl AsyncRead + Unpin + Send + 'static, stream: &'static str) {
        let reader = tokio::spawn(forward(pipe, self.pid, stream, self.tail.clone()));
        self.readers.push(reader);
    }

    /// Whether it was forked from the template (its memory is shared with it).
    pub fn is_forked(&self) -> bool {
        matches!(self.child, Child::ForkedChild(_))
    }

    /// SIGKILL, for a worker past `exec_ttl` or `destroy_timeout`.
    pub fn kill(&mut self) {
        match &mut self.child {
            Child::Exec(child) => {
                let _ = child.start_kill();
            }
            Child::ForkedChild(forked) => forked.kill(),
        }
    }

    /// Waits for the process to end and reaps it.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = match &mut self.child {
            Child::Exec(child) => child.wait().await,
            Child::ForkedChild(forked) => forked.wait().await,
        };
        own().remove(&self.pid);
        status
    }

    /// The last lines the worker wrote, once its pipes have closed (it exited; at most 1 s
    /// for a grandchild that kept them open).
    pub async fn output_tail(&mut self) -> String {
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), reader).await;
        }
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// The memory a worker is judged by (bytes): its resident set, or in template mode its
/// private memory (Private_Clean + Private_Dirty of /proc/<pid>/smaps_rollup), because pages
/// still shared with the template would be counted in every worker's RSS.
pub fn memory(pid: u32, forked: bool) -> Option<u64> {
    let (file, fields): (_, &[&str]) = match forked {
        false => ("status", &["VmRSS:"]),
        true => ("smaps_rollup", &["Private_Clean:", "Private_Dirty:"]),
    };
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    let mut kb = 0;
    for field in fields {
        let line = text.lines().find(|l| l.starts_with(field))?;
        kb += line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    }
    Some(kb * 1024)
}

/// Reads a pipe of the worker line by line into the master's log.
async fn forward(
    pipe: impl AsyncRead + Unpin,
    pid: u32,
    stream: &'static str,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        tracing::info!(target: "rr::worker", pid, stream, "{line}");
        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}
