//! The two servers the Nextcloud suite compares, over the same install: nginx + php-fpm (the
//! reference) and rr running examples/nextcloud/worker.php. Both listen on ephemeral loopback
//! ports and are stopped when dropped.
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub const SKIP: &str =
    "skipped: set RR_NEXTCLOUD_ROOT to an installed Nextcloud, see tests/nextcloud/README.md";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The install under test: RR_NEXTCLOUD_ROOT, and the env file tests/nextcloud/install.sh wrote
/// (RR_NEXTCLOUD_ENV, else `<root>/../rr-nextcloud-test.env`).
/// Opcache's sizes, the same for both servers (larger than PHP's defaults: 8 MB of interned
/// strings, 128 MB, 10,000 scripts; tests/nextcloud/servers.bash gives the same).
const OPCACHE_SIZES: [&str; 6] = [
    "-d",
    "opcache.interned_strings_buffer=32",
    "-d",
    "opcache.memory_consumption=256",
    "-d",
    "opcache.max_accelerated_files=20000",
];

pub struct Install {
    pub root: PathBuf,
    env_file: PathBuf,
    vars: HashMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub password: String,
    pub app_password: String,
}

impl Install {
    /// None when RR_NEXTCLOUD_ROOT is unset; a panic naming the problem when it is set but wrong.
    pub fn from_env() -> Option<Install> {
        let root = PathBuf::from(std::env::var_os("RR_NEXTCLOUD_ROOT")?);
        assert!(
            root.join("occ").is_file() && root.join("config/config.php").is_file(),
            "RR_NEXTCLOUD_ROOT={} is not an installed Nextcloud (no occ or config/config.php)",
            root.display()
        );
        let env_file = std::env::var_os("RR_NEXTCLOUD_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("../rr-nextcloud-test.env"));
        let text = std::fs::read_to_string(&env_file).unwrap_or_else(|e| {
            panic!(
                "{}: {e}: run tests/nextcloud/install.sh --root {} first (it creates the test users and app passwords)",
                env_file.display(),
                root.display()
            )
        });
        let vars: HashMap<String, String> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let database = vars.get("RR_NC_DATABASE").map_or("sqlite", String::as_str);
        let redis = vars
            .get("RR_NC_REDIS_SOCKET")
            .is_some_and(|s| !s.is_empty());
        if database != "sqlite" || redis {
            // The database server and Redis the install uses, running (idempotent).
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nextcloud/services.sh");
            let status = std::process::Command::new("bash")
                .arg(&script)
                .arg("start")
                .arg(&env_file)
                .status()
                .expect("bash");
            assert!(status.success(), "{} start failed", script.display());
        }
        Some(Install {
            root,
            env_file,
            vars,
        })
    }

    /// RR_NC_DATABASE: "sqlite", "pgsql" or "mysql".
    pub fn database(&self) -> &str {
        self.vars
            .get("RR_NC_DATABASE")
            .map_or("sqlite", String::as_str)
    }

    /// Restarts the database server (`services.sh restart-database`); returns once it accepts
    /// connections again.
    pub fn restart_database(&self) {
        let script = repo().join("tests/nextcloud/services.sh");
        let status = Command::new("bash")
            .arg(&script)
            .arg("restart-database")
            .arg(&self.env_file)
            .status()
            .expect("bash");
        assert!(
            status.success(),
            "{} restart-database failed",
            script.display()
        );
    }

    fn var(&self, key: &str) -> String {
        self.vars.get(key).cloned().unwrap_or_else(|| {
            panic!("{key} missing from the env file: rerun tests/nextcloud/install.sh")
        })
    }

    /// "admin", "alice" or "bob".
    pub fn user(&self, who: &str) -> User {
        let up = who.to_uppercase();
        User {
            name: self.var(&format!("RR_NC_{up}_USER")),
            password: self.var(&format!("RR_NC_{up}_PASSWORD")),
            app_password: self.var(&format!("RR_NC_{up}_APP_PASSWORD")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Fpm,
    Rr(Started),
}

/// How rr's pool starts its workers (`http.pool.template`). It decides what they share: forked
/// workers share the template's APCu (Nextcloud's `memcache.local`), as php-fpm's children
/// share one; re-executed workers have one each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Started {
    /// Forked from a booted template: the shipped rr.yaml (`template: true`).
    Forked,
    /// Each worker its own php process: that rr.yaml with `template: false` (and without
    /// `isolate`, which forks from the template: those paths run in place, the worker retired
    /// after).
    ReExecuted,
}

impl Started {
    /// RR_NEXTCLOUD_WORKERS: `forked` (unset: the shipped rr.yaml) or `re-executed`.
    pub fn from_env() -> Started {
        match std::env::var("RR_NEXTCLOUD_WORKERS").as_deref() {
            Err(_) | Ok("") | Ok("forked") => Started::Forked,
            Ok("re-executed") => Started::ReExecuted,
            Ok(other) => {
                panic!("RR_NEXTCLOUD_WORKERS must be `forked` or `re-executed`, got {other:?}")
            }
        }
    }

    /// The rr.yaml to run: `shipped` itself, or a copy in `dir` with `template: false`.
    fn config(self, shipped: &Path, dir: &Path) -> PathBuf {
        if self == Started::Forked {
            return shipped.to_path_buf();
        }
        let text = std::fs::read_to_string(shipped)
            .unwrap_or_else(|e| panic!("{}: {e}", shipped.display()));
        let mut lines = Vec::new();
        let (mut template, mut isolate) = (0, 0);
        for line in text.lines() {
            if line == "    template: true" {
                template += 1;
                lines.push("    template: false");
            } else if line.starts_with("    isolate: ") {
                isolate += 1;
            } else {
                lines.push(line);
            }
        }
        assert!(
            template == 1 && isolate <= 1,
            "{}: expected one `template: true` line (and at most one `isolate:`) under http.pool",
            shipped.display()
        );
        let copy = dir.join("rr.yaml");
        std::fs::write(&copy, lines.join("\n") + "\n").unwrap();
        copy
    }
}

/// A running server; dropping it stops every process it started.
pub struct Server {
    pub kind: Kind,
    pub port: u16,
    children: Vec<Child>,
    logs: Vec<PathBuf>,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn fill(template: &Path, values: &[(&str, String)]) -> String {
    let mut text =
        std::fs::read_to_string(template).unwrap_or_else(|e| panic!("{}: {e}", template.display()));
    for (k, v) in values {
        text = text.replace(&format!("@{k}@"), v);
    }
    text
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn spawn(cmd: &mut Command, out: &Path) -> Child {
    let log = std::fs::File::create(out).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

fn wait_until(what: &str, children: &mut [Child], logs: &[PathBuf], ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        for c in children.iter_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!(
                    "{what} exited ({status}) before it was ready:\n{}",
                    tail(logs)
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what} not ready within 30 s:\n{}",
            tail(logs)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tail(logs: &[PathBuf]) -> String {
    let mut out = String::new();
    for p in logs {
        if let Ok(text) = std::fs::read_to_string(p) {
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(40);
            out.push_str(&format!(
                "----- {} -----\n{}\n",
                p.display(),
                lines[from..].join("\n")
            ));
        }
    }
    out
}

impl Server {
    /// nginx (one process, no master) + php-fpm with `children` static children.
    pub fn fpm(install: &Install, children: usize) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("rr-nc-fpm.")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let port = free_port();
        let sock = d.join("php-fpm.sock");
        let values = [
            (
                "USER",
                if is_root() {
                    "user root;".into()
                } else {
                    String::new()
                },
            ),
            ("WORKERS", "1".into()),
            ("MASTER", "off".into()),
            ("DIR", d.display().to_string()),
            ("PORT", port.to_string()),
            ("ROOT", install.root.display().to_string()),
            ("FPM_SOCK", sock.display().to_string()),
            ("CHILDREN", children.to_string()),
        ];
        let templates = repo().join("tests/nextcloud");
        std::fs::write(
            d.join("nginx.conf"),
            fill(&templates.join("nginx.conf.in"), &values),
        )
        .unwrap();
        std::fs::write(
            d.join("php-fpm.conf"),
            fill(&templates.join("php-fpm.conf.in"), &values),
        )
        .unwrap();
        let logs = vec![
            d.join("php-fpm.out"),
            d.join("php-fpm.log"),
            d.join("nginx.out"),
            d.join("nginx-error.log"),
        ];
        let fpm_bin = ["php-fpm8.2", "php-fpm"]
            .into_iter()
            .find(|b| Command::new(b).arg("-v").output().is_ok())
            .expect("php-fpm (php8.2-fpm) is installed");
        let mut fpm = Command::new(fpm_bin);
        fpm.args(["-F", "-y"]).arg(d.join("php-fpm.conf"));
        fpm.args(["-d", "opcache.enable=1"]).args(OPCACHE_SIZES);
        if is_root() {
            fpm.arg("-R");
        }
        let mut children_procs = vec![spawn(&mut fpm, &logs[0])];
        wait_until("php-fpm", &mut children_procs, &logs, || sock.exists());
        let mut nginx = Command::new("nginx");
        nginx
            .arg("-e")
            .arg(d.join("nginx-error.log"))
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"));
        children_procs.push(spawn(&mut nginx, &logs[2]));
        wait_until("nginx", &mut children_procs, &logs, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Server {
            kind: Kind::Fpm,
            port,
            children: children_procs,
            logs,
            stderr: Arc::new(Mutex::new(String::new())),
            _dir: dir,
        }
    }

    /// rr with examples/nextcloud/worker.php and its rr.yaml; `workers` is
    /// http.pool.num_workers (RR_NUM_WORKERS, which that rr.yaml reads), started as
    /// `Started::from_env()` says.
    pub fn rr(install: &Install, workers: usize) -> Server {
        Server::rr_with_env(install, workers, &[])
    }

    /// `rr()` with extra environment variables for the worker script.
    pub fn rr_with_env(install: &Install, workers: usize, env: &[(&str, &str)]) -> Server {
        Server::rr_started(install, workers, Started::from_env(), env)
    }

    /// `rr_with_env()` with the workers started as `started` says.
    pub fn rr_started(
        install: &Install,
        workers: usize,
        started: Started,
        env: &[(&str, &str)],
    ) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("rr-nc-rr.")
            .tempdir()
            .unwrap();
        let example = repo().join("examples/nextcloud");
        let worker = example.join("worker.php");
        assert!(
            worker.is_file(),
            "{} does not exist yet (the Nextcloud worker is built on this branch)",
            worker.display()
        );
        let mut cmd = Command::new("php");
        cmd.arg("-d")
            .arg(format!("extension={}", rr_extension().display()))
            .args(["-d", "apc.enable_cli=1", "-d", "opcache.enable_cli=1"])
            .args(OPCACHE_SIZES)
            .args(["-d", "rr.address=127.0.0.1:0"]);
        let yaml = started.config(&example.join("rr.yaml"), dir.path());
        cmd.arg("-d").arg(format!("rr.config={}", yaml.display()));
        cmd.arg(&worker)
            .env("NEXTCLOUD_ROOT", &install.root)
            .env_remove("RR_CONFIG")
            .current_dir(&example);
        // "rr listening on" is an info line; the example logs warnings only by default.
        // Every kept service is checked against a fresh build at the end of every request; a
        // difference stops the worker and fails the test when the server is dropped.
        cmd.env("RR_NUM_WORKERS", workers.to_string())
            .env("RR_LOG_LEVEL", "info")
            .env("NEXTCLOUD_VERIFY_KEPT", "1")
            .envs(env.iter().copied());
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("php starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let captured = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                captured.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(rest) = line.split("rr listening on http://").nth(1) {
                        let addr: String = rest
                            .chars()
                            .take_while(|c| *c != '"' && !c.is_whitespace())
                            .collect();
                        break addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    panic!(
                        "rr exited ({status}) before listening:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("rr did not listen within 60 s:\n{}", stderr.lock().unwrap());
            }
        };
        Server {
            kind: Kind::Rr(started),
            port,
            children: vec![child],
            logs: vec![],
            stderr,
            _dir: dir,
        }
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Fpm => "nginx+php-fpm",
            Kind::Rr(Started::Forked) => "rr",
            Kind::Rr(Started::ReExecuted) => "rr (template: false)",
        }
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.origin(), path)
    }

    /// The last lines of the server's logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = tail(&self.logs);
        let err = self.stderr.lock().unwrap();
        let lines: Vec<&str> = err.lines().collect();
        let from = lines.len().saturating_sub(40);
        if !lines.is_empty() {
            out.push_str(&format!(
                "----- {} stderr -----\n{}\n",
                self.name(),
                lines[from..].join("\n")
            ));
        }
        out
    }

    /// Everything rr wrote to stderr so far (empty for php-fpm, whose logs are files).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Whether every process is still running (a crashed worker is a failure, even if the pool
    /// replaced it: the stderr log says so).
    pub fn alive(&mut self) -> bool {
        self.children
            .iter_mut()
            .all(|c| matches!(c.try_wait(), Ok(None)))
    }
}

fn rr_extension() -> PathBuf {
    if let Ok(p) = std::env::var("RR_EXT") {
        return PathBuf::from(p);
    }
    for profile in ["release", "debug"] {
        // librr.so first: it is what cargo just built (rr.so is a copy that may be older).
        for name in ["librr.so", "rr.so"] {
            let p = repo().join("target").join(profile).join(name);
            if p.exists() {
                return p;
            }
        }
    }
    panic!("no built extension: run `cargo build --release` first (or set RR_EXT)");
}

impl Drop for Server {
    fn drop(&mut self) {
        let differs = self
            .stderr
            .lock()
            .unwrap()
            .lines()
            .find(|l| l.contains("kept services differ from fresh builds"))
            .map(str::to_owned);
        // Reverse order: nginx before php-fpm. SIGTERM first (rr's master stops its workers,
        // fpm its children), SIGKILL to the whole group after 10 s.
        for child in self.children.iter_mut().rev() {
            let pid = child.id() as i32;
            // SAFETY: signalling a process (group) this harness started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            // SAFETY: as above; the group id is the child's pid (process_group(0)).
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.wait();
        }
        if let Some(line) = differs {
            if !std::thread::panicking() {
                panic!("a service kept across requests was not what a fresh build gives: {line}");
            }
        }
    }
}
