//! Test harness: starts the real `php` binary with the built extension and a fixture script,
//! on an ephemeral port, and stops it when dropped.
#![allow(dead_code)]
pub mod pool;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The extension under test: $RR_EXT, else the release build, else the debug build.
pub fn extension() -> PathBuf {
    if let Ok(path) = std::env::var("RR_EXT") {
        return PathBuf::from(path);
    }
    for profile in ["release", "debug"] {
        let path = root().join("target").join(profile).join("librr.so");
        if path.exists() {
            return path;
        }
    }
    panic!("no built extension: run `cargo build --release` first (or set RR_EXT)");
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

pub struct Php {
    pub child: Child,
    pub addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    /// The threads copying stdout and stderr: done once the pipes closed.
    readers: Vec<std::thread::JoinHandle<()>>,
}

pub struct Options<'a> {
    pub ini: Vec<(&'a str, String)>,
    pub env: Vec<(&'a str, String)>,
    pub args: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// The process's descriptor limit (RLIMIT_NOFILE), when not inherited.
    pub nofile: Option<u64>,
    /// Close the read end of php's stderr once it said "rr listening on": every later write
    /// to stderr fails with EPIPE (`stderr()` then shows only what came before).
    pub close_stderr_once_listening: bool,
    /// The file `logs.output` names, when it names one: "rr listening on" is read there.
    pub log_file: Option<PathBuf>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            ini: vec![("rr.address", "127.0.0.1:0".to_string())],
            env: vec![],
            args: vec![],
            cwd: None,
            nofile: None,
            close_stderr_once_listening: false,
            log_file: None,
        }
    }
}

/// A started php process and the readers of its output.
struct Spawned {
    child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    lines: mpsc::Receiver<String>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn spawn(script: &Path, opts: &Options) -> Spawned {
    let mut cmd = Command::new("php");
    cmd.arg("-n")
        .arg("-d")
        .arg(format!("extension={}", extension().display()));
    for (k, v) in &opts.ini {
        cmd.arg("-d").arg(format!("{k}={v}"));
    }
    cmd.arg(script).args(&opts.args);
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    if let Some(cwd) = &opts.cwd {
        cmd.current_dir(cwd);
    }
    cmd.env_remove("RR_CONFIG");
    if let Some(n) = opts.nofile {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit between fork and exec only changes the child's own limit.
        unsafe {
            cmd.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("php starts");
    let stderr = Arc::new(Mutex::new(String::new()));
    let stdout = Arc::new(Mutex::new(String::new()));
    let (lines_tx, lines_rx) = mpsc::channel();
    let err_pipe = child.stderr.take().unwrap();
    let captured = stderr.clone();
    let close_once_listening = opts.close_stderr_once_listening;
    let err_reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(err_pipe).lines();
        while let Some(Ok(line)) = lines.next() {
            captured.lock().unwrap().push_str(&format!("{line}\n"));
            if close_once_listening && line.contains("rr listening on ") {
                // Closed before the test hears of it: its first request already finds EPIPE.
                drop(lines);
                let _ = lines_tx.send(line);
                break;
            }
            let _ = lines_tx.send(line);
        }
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let captured = stdout.clone();
    let out_reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out_pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            captured
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Spawned {
        child,
        stderr,
        stdout,
        lines: lines_rx,
        readers: vec![err_reader, out_reader],
    }
}

impl Php {
    /// Starts `tests/fixtures/<name>` and waits until it listens.
    pub fn start(name: &str) -> Php {
        Php::start_with(name, Options::default())
    }

    pub fn start_with(name: &str, opts: Options) -> Php {
        let script = fixture(name);
        let Spawned {
            mut child,
            stderr,
            stdout,
            lines,
            readers,
        } = spawn(&script, &opts);
        let lines = match &opts.log_file {
            Some(path) => tail(path.clone()),
            None => lines,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut addr, mut tls_addr) = (None, None);
        while Instant::now() < deadline {
            match lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(rest) = line.split("rr listening on ").nth(1) {
                        // Text or JSON logs: the address ends at a quote or whitespace.
                        let end = rest
                            .find(|c: char| c == '"' || c.is_whitespace())
                            .unwrap_or(rest.len());
                        let (scheme, a) = rest[..end].split_once("://").unwrap();
                        let a: SocketAddr = a.parse().unwrap();
                        if scheme == "https" {
                            tls_addr = Some(a);
                        } else {
                            addr = Some(a);
                        }
                        let wants_tls = opts.ini.iter().any(|(_, v)| v.contains("ssl"))
                            || opts.env.iter().any(|(k, _)| *k == "RR_TEST_TLS");
                        if addr.is_some() && (!wants_tls || tls_addr.is_some()) {
                            break;
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "{name} exited ({status}) before listening:\n{}",
                            stderr.lock().unwrap()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    panic!(
                        "{name} exited ({status}) before listening:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
        }
        let Some(addr) = addr else {
            let _ = child.kill();
            panic!(
                "{name} did not listen within 20 s:\n{}",
                stderr.lock().unwrap()
            );
        };
        Php {
            child,
            addr,
            tls_addr,
            stderr,
            stdout,
            readers,
        }
    }

    /// Runs a script that is expected to fail before listening; returns (status, stderr).
    pub fn run_to_end(
        name: &str,
        opts: Options,
        timeout: Duration,
    ) -> (ExitStatus, String, String) {
        let Spawned {
            mut child,
            stderr,
            stdout,
            readers,
            ..
        } = spawn(&fixture(name), &opts);
        let status = wait_timeout(&mut child, timeout).unwrap_or_else(|| {
            let _ = child.kill();
            panic!(
                "{name} still running after {timeout:?}:\n{}",
                stderr.lock().unwrap()
            )
        });
        output_read(&readers);
        let err = stderr.lock().unwrap().clone();
        let out = stdout.lock().unwrap().clone();
        (status, err, out)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// Waits for the process to exit (and its output to be read); panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match wait_timeout(&mut self.child, timeout) {
            Some(status) => {
                output_read(&self.readers);
                status
            }
            None => panic!("php still running after {timeout:?}:\n{}", self.stderr()),
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until stderr contains `needle`, for at most [`LOG_WAIT`]: a line the server
    /// writes at once may still be late on a machine whose cores are busy.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + LOG_WAIT;
        while Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// One raw HTTP/1.1 exchange over TCP: sends `request` bytes, reads until close or timeout.
    pub fn raw(&self, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// How long [`Php::wait_for_log`] waits: long enough for a loaded machine, since a test that
/// passes returns as soon as the line is there.
pub const LOG_WAIT: Duration = Duration::from_secs(60);

impl Drop for Php {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until the output readers saw the pipes close (a process the script started may keep
/// them open: at most 5 s).
/// The lines written to a file (which may not exist yet), as they come, until the receiver
/// is dropped or for start_with's 20 s.
fn tail(path: PathBuf) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(25);
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let complete = text.rfind('\n').map_or(0, |i| i + 1);
            if complete > seen {
                for line in text[seen..complete].lines() {
                    if tx.send(line.to_string()).is_err() {
                        return;
                    }
                }
                seen = complete;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    rx
}

fn output_read(readers: &[std::thread::JoinHandle<()>]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub fn h2_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The paths `pid`'s descriptors name inside `dir` (a file renamed within it shows its new name).
pub fn open_files_in(pid: i32, dir: &Path) -> Vec<PathBuf> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return vec![];
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.starts_with(dir))
        .collect()
}

/// Polls `done` every 20 ms; fails the test after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A file's text, empty when it cannot be read.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A small tmpfs mounted on a new temp directory, to fill a disk in a test; unmounted (and the
/// directory removed) when dropped.
pub struct SmallFs {
    dir: Option<tempfile::TempDir>,
}

impl SmallFs {
    /// `size` as mount(8) takes it (`1m`). None, with the reason printed, where mounting is not
    /// allowed (not root, a container without CAP_SYS_ADMIN): the caller then skips.
    pub fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::Builder::new()
            .prefix("rr-small-")
            .tempdir()
            .unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=1777"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(SmallFs { dir: Some(dir) }),
            Ok(out) => {
                eprintln!(
                    "skipped: cannot mount a {size} tmpfs to fill ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount(8) to fill a {size} tmpfs: {e}");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        // Lazy: a process of the test still holding a file there lets go of it later.
        let _ = Command::new("umount").arg("-l").arg(dir.path()).status();
        drop(dir);
    }
}
