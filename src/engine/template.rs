//! The template process (`http.pool.template`): it runs the script's bootstrap once, and at its
//! first `waitRequest()` tells the master it booted, then forks one warm worker per `Fork`
//! order instead of serving. Each fork is doubled (template → short-lived middle → worker) so
//! the worker is re-parented to the master, which is a child subreaper and reaps it like any
//! other worker (see docs/pool.md, "Template mode").
use crate::config::TemplateConnections;
use crate::ipc::{self, fds, Frame, FrameReader, ReadError};
use bytes::BytesMut;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// How the template's fork loop ended.
pub enum Outcome {
    /// This process is a freshly forked worker: serve on `channel`.
    Worker(UnixStream),
    /// The master said stop, or is gone: the template's `waitRequest()` returns null.
    Stop,
}

/// Whether this process was started as the template.
pub fn is_template() -> bool {
    std::env::var_os(ipc::TEMPLATE_ENV).is_some()
}

/// The template's loop: report `Booted`, then fork on each order until told to stop.
/// `connections`: whether connected sockets may cross the fork (see `connections`).
pub fn serve(channel: &mut UnixStream, connections: TemplateConnections) -> Outcome {
    let fd = channel.as_raw_fd();
    let checked = single_threaded().and_then(|()| match connections {
        TemplateConnections::Allow => Ok(()),
        TemplateConnections::Refuse => match super::connections::open(&[fd]) {
            found if found.is_empty() => Ok(()),
            found => Err(ForkError::Connections(found)),
        },
    });
    if let Err(e) = checked {
        tracing::error!("{e}");
        let _ = write(channel, &Frame::Error(e.to_string()));
        return Outcome::Stop;
    }
    if write(channel, &Frame::Booted).is_err() {
        return Outcome::Stop;
    }
    // Fork orders and Stop only: small frames.
    let mut reader = FrameReader::new(4096).limit(4096);
    let mut received: VecDeque<OwnedFd> = VecDeque::new();
    loop {
        let frame = match reader.next_blocking(|buf| fds::recv(fd, buf, &mut received)) {
            Ok(Some(frame)) => frame,
            // A signal: SIGUSR1 asks for the log file to be opened again; then read on.
            Ok(None) => {
                crate::logging::reopen_if_requested();
                continue;
            }
            Err(ReadError::Closed) => return Outcome::Stop,
            Err(e) => {
                tracing::error!("rr pool template: {e}: stopping");
                return Outcome::Stop;
            }
        };
        let id = match frame {
            Frame::Fork { id } => id,
            Frame::Stop => return Outcome::Stop,
            other => {
                tracing::error!("rr pool template: unexpected frame {other:?}: stopping");
                return Outcome::Stop;
            }
        };
        if received.len() < 4 {
            tracing::error!("rr pool template: a fork order came without its descriptors");
            return Outcome::Stop;
        }
        let given: Vec<OwnedFd> = received.drain(..4).collect();
        let reply = match fork_worker(id, given) {
            Ok(Side::Worker(worker)) => return Outcome::Worker(worker),
            Ok(Side::Template(pid)) => Frame::Forked { id, pid },
            Err(e) => Frame::ForkFailed {
                id,
                message: e.to_string(),
            },
        };
        if write(channel, &reply).is_err() {
            return Outcome::Stop;
        }
    }
}

/// Which side of a fork this process is on.
enum Side {
    /// The new worker, with its channel.
    Worker(UnixStream),
    /// The template, which forked the worker with this pid.
    Template(u32),
}

/// Why the template cannot fork a worker.
#[derive(Debug)]
enum ForkError {
    /// Another thread is alive (its locks could stay taken in the children).
    Threads(usize),
    /// `/proc/self/task` cannot be read.
    Proc(std::io::Error),
    /// A system call failed.
    Sys(&'static str, std::io::Error),
    /// The middle child did not report the worker's pid.
    SecondFork(i32),
    /// The new worker could not take over its descriptors.
    MissingDescriptors,
    /// The master exited before the worker was re-parented to it.
    MasterGone(std::io::Error),
    /// Connected sockets are open at the first fork (`http.pool.template_connections`).
    Connections(Vec<super::connections::Connection>),
}

impl std::fmt::Display for ForkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForkError::Threads(n) => write!(
                f,
                "rr pool template: this process has {n} threads at its first waitRequest(); a \
                 template must be single-threaded to be forked safely (something in the bootstrap \
                 started a thread): turn http.pool.template off or remove the thread"
            ),
            ForkError::Proc(e) => write!(f, "rr pool template: cannot read /proc/self/task: {e}"),
            ForkError::Sys(call, e) => write!(f, "{call}: {e}"),
            ForkError::SecondFork(status) => {
                write!(f, "the second fork failed (middle child status {status})")
            }
            ForkError::MissingDescriptors => f.write_str("missing descriptors"),
            ForkError::MasterGone(e) => write!(f, "death signal: {e}"),
            ForkError::Connections(found) => f.write_str(&super::connections::refusal(found)),
        }
    }
}

/// fork() copies only the calling thread: with another thread alive (an extension's, a
/// library's), its locks could stay taken forever in the children.
fn single_threaded() -> Result<(), ForkError> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .map_err(ForkError::Proc)?;
    match threads {
        1 => Ok(()),
        n => Err(ForkError::Threads(n)),
    }
}

/// Forks worker `id` from this process; `given` is its channel, stdout, stderr and claim word.
fn fork_worker(id: u64, given: Vec<OwnedFd>) -> Result<Side, ForkError> {
    single_threaded()?;
    let mut pids = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two-int array we own.
    if unsafe { libc::pipe2(pids.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(ForkError::Sys("pipe", std::io::Error::last_os_error()));
    }
    // SAFETY: getppid has no arguments; the template's parent is the master.
    let master = unsafe { libc::getppid() };
    // SAFETY: pipe2 just returned these two descriptors to us.
    let (pid_r, pid_w) = unsafe { (OwnedFd::from_raw_fd(pids[0]), OwnedFd::from_raw_fd(pids[1])) };
    // SAFETY: this process is single-threaded (checked above), so the child is a full copy in
    // a consistent state; the middle child only forks again, writes and _exits.
    match unsafe { libc::fork() } {
        -1 => Err(ForkError::Sys("fork", std::io::Error::last_os_error())),
        0 => {
            drop(pid_r);
            // SAFETY: getpid has no arguments.
            let middle = unsafe { libc::getpid() };
            // SAFETY: still single-threaded: this is the middle child.
            let worker = unsafe { libc::fork() };
            if worker == 0 {
                super::copy::adopted();
                drop(pid_w);
                match adopt(id, given, (middle, master)) {
                    Ok(channel) => return Ok(Side::Worker(channel)),
                    Err(e) => {
                        crate::logging::to_stderr(format_args!(
                            "rr pool: a forked worker could not start: {e}"
                        ));
                        // SAFETY: as below; this process must not act as the template.
                        unsafe { libc::_exit(70) }
                    }
                }
            }
            let pid = worker.max(0) as u32;
            let mut w = std::fs::File::from(pid_w);
            let _ = w.write_all(&pid.to_le_bytes());
            // SAFETY: _exit ends the middle child at once, running no destructor or atexit
            // handler of the template's state it shares.
            unsafe { libc::_exit(0) }
        }
        middle => {
            drop(pid_w);
            drop(given);
            let mut bytes = [0u8; 4];
            let read = std::fs::File::from(pid_r).read_exact(&mut bytes);
            let mut status = 0;
            // SAFETY: reaps our own middle child, which exits right after the write.
            unsafe { libc::waitpid(middle, &mut status, 0) };
            let pid = u32::from_le_bytes(bytes);
            match (read, pid) {
                (Ok(()), pid) if pid > 0 => Ok(Side::Template(pid)),
                _ => Err(ForkError::SecondFork(status)),
            }
        }
    }
}

/// In the new worker: its pipes become stdout and stderr, its channel is the one it got, and
/// the environment says who it is.
fn adopt(
    id: u64,
    given: Vec<OwnedFd>,
    (middle, master): (libc::pid_t, libc::pid_t),
) -> Result<UnixStream, ForkError> {
    // Re-parented to the master (a subreaper) once the middle child has exited: only then
    // does the death signal follow the master.
    // SAFETY: as above; usleep only sleeps.
    while unsafe { libc::getppid() } == middle {
        unsafe { libc::usleep(200) };
    }
    ipc::child::setup(master).map_err(ForkError::MasterGone)?;
    let mut given = given.into_iter();
    let (Some(channel), Some(out), Some(err), Some(claim)) =
        (given.next(), given.next(), given.next(), given.next())
    else {
        return Err(ForkError::MissingDescriptors);
    };
    for (fd, target) in [(&out, 1), (&err, 2)] {
        // SAFETY: dup2 onto the standard descriptors of this (single-threaded) process; the
        // result does not carry close-on-exec, so the script's own children inherit them.
        if unsafe { libc::dup2(fd.as_raw_fd(), target) } == -1 {
            return Err(ForkError::Sys("dup2", std::io::Error::last_os_error()));
        }
    }
    drop((out, err));
    let fd = channel.into_raw_fd();
    std::env::set_var(ipc::FD_ENV, fd.to_string());
    std::env::set_var(ipc::claim::CLAIM_ENV, claim.into_raw_fd().to_string());
    std::env::set_var(ipc::ID_ENV, id.to_string());
    std::env::remove_var(ipc::TEMPLATE_ENV);
    // SAFETY: the descriptor came from the master with this order; nothing else owns it.
    Ok(unsafe { UnixStream::from_raw_fd(fd) })
}

fn write(channel: &mut UnixStream, frame: &Frame) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    channel.write_all(&out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_process_with_threads_is_refused_by_name() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let extra = std::thread::spawn(move || rx.recv());
        let err = super::single_threaded().unwrap_err().to_string();
        assert!(
            err.contains("threads") && err.contains("single-threaded"),
            "{err}"
        );
        drop(tx);
        let _ = extra.join();
    }
}
