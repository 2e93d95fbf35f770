//! Starting a worker process: the same php binary, argv and environment as the master, plus
//! `RR_POOL_FD` naming its end of a fresh socketpair. Re-executed, never forked into: the
//! master has tokio threads (see docs/pool.md). Its stdout and stderr go to the master's log.
use crate::ipc;
use crate::server::Bound;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
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
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let theirs = OwnedFd::from(theirs);
        let fd = theirs.as_raw_fd();
        let mut cmd = Command::new(&self.exe);
        cmd.args(&self.args)
            .env(ipc::FD_ENV, fd.to_string())
            .env(ipc::ADDRS_ENV, &self.addrs)
            .env(ipc::ID_ENV, id.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // Its own process group: a Ctrl-C on the terminal reaches the master only, which
            // then drains and stops the workers in order.
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: between fork and exec only fcntl runs, which is async-signal-safe; it clears
        // close-on-exec on the one descriptor the worker must inherit.
        unsafe {
            cmd.pre_exec(move || match libc::fcntl(fd, libc::F_SETFD, 0) {
                -1 => Err(std::io::Error::last_os_error()),
                _ => Ok(()),
            });
        }
        let mut child = cmd.spawn()?;
        drop(theirs);
        ours.set_nonblocking(true)?;
        let channel = UnixStream::from_std(ours)?;
        let pid = child.id().unwrap_or(0);
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(forward(out, pid, "stdout", tail.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(forward(err, pid, "stderr", tail.clone())));
        }
        Ok(Process {
            pid,
            child,
            channel,
            tail,
            readers,
        })
    }
}

/// A running worker process.
pub struct Process {
    pub pid: u32,
    pub child: Child,
    pub channel: UnixStream,
    tail: Arc<Mutex<VecDeque<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Process {
    /// SIGKILL, for a worker past `exec_ttl` or `destroy_timeout`.
    pub fn kill(&mut self) {
        let _ = self.child.start_kill();
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
