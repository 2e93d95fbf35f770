//! systemd's notifications (`sd_notify`) from a real php: the test owns the notify socket (a
//! Unix datagram socket in a temp dir, or an abstract one), hands it to php as systemd would
//! (`NOTIFY_SOCKET`, `WATCHDOG_USEC`), and reads what arrives, with the sender's pid (the
//! kernel's credentials). No timing is asserted beyond "arrives before a generous deadline".
mod common;
use common::pool::{pool_options, side_url, workers};
use common::{client, Options, Php};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One notification as received.
#[derive(Debug, Clone)]
struct Datagram {
    pid: Option<i32>,
    lines: Vec<String>,
}

impl Datagram {
    fn has(&self, line: &str) -> bool {
        self.lines.iter().any(|l| l == line)
    }

    fn value(&self, key: &str) -> Option<&str> {
        let prefix = format!("{key}=");
        self.lines.iter().find_map(|l| l.strip_prefix(&prefix))
    }
}

/// The service manager's side: a socket and everything received on it.
struct Notify {
    /// `NOTIFY_SOCKET` for php.
    address: String,
    incoming: mpsc::Receiver<Datagram>,
    seen: Vec<Datagram>,
    /// Where the next `wait_for` starts looking.
    cursor: usize,
    _dir: Option<tempfile::TempDir>,
}

impl Notify {
    fn at_path() -> Notify {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        Notify::reading(socket, path.display().to_string(), Some(dir))
    }

    fn in_abstract_namespace() -> Notify {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("rr-test-notify-{}-{nanos}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        Notify::reading(socket, format!("@{name}"), None)
    }

    fn reading(socket: UnixDatagram, address: String, dir: Option<tempfile::TempDir>) -> Notify {
        let on: libc::c_int = 1;
        // SAFETY: SO_PASSCRED with an int we own: the kernel then attaches the sender's
        // credentials to every datagram.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PASSCRED,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        let (tx, incoming) = mpsc::channel();
        // Reads until the test ends (the receiver is dropped), as systemd would: at once.
        std::thread::spawn(move || loop {
            let Ok(datagram) = receive(&socket) else {
                return;
            };
            if tx.send(datagram).is_err() {
                return;
            }
        });
        Notify {
            address,
            incoming,
            seen: Vec::new(),
            cursor: 0,
            _dir: dir,
        }
    }

    /// What systemd would set for php.
    fn configure(&self, opts: &mut Options, watchdog: Option<Duration>) {
        opts.env.push(("NOTIFY_SOCKET", self.address.clone()));
        if let Some(w) = watchdog {
            opts.env.push(("WATCHDOG_USEC", w.as_micros().to_string()));
        }
    }

    /// The first datagram after the last one waited for that holds `line`.
    fn wait_for(&mut self, line: &str, within: Duration, php: &Php) -> Datagram {
        let deadline = Instant::now() + within;
        loop {
            if let Some(i) = (self.cursor..self.seen.len()).find(|&i| self.seen[i].has(line)) {
                self.cursor = i + 1;
                return self.seen[i].clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .incoming
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok(datagram) => self.seen.push(datagram),
                Err(_) if Instant::now() < deadline => {}
                Err(_) => panic!(
                    "no {line} within {within:?}; received {:?}\n{}",
                    self.seen,
                    php.stderr()
                ),
            }
        }
    }

    /// Everything received so far (waiting a moment for stragglers).
    fn all(&mut self) -> &[Datagram] {
        while let Ok(d) = self.incoming.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(d);
        }
        &self.seen
    }

    /// The lines among `wanted` in the order they arrived (WATCHDOG and STATUS left out).
    fn sequence(&mut self, wanted: &[&str]) -> Vec<String> {
        self.all()
            .iter()
            .flat_map(|d| d.lines.iter())
            .filter(|l| wanted.contains(&l.as_str()))
            .cloned()
            .collect()
    }
}

/// One datagram with its sender's pid.
fn receive(socket: &UnixDatagram) -> std::io::Result<Datagram> {
    let mut buf = [0u8; 4096];
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr is valid; it points at the buffers above, which outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: recvmsg fills the buffers msg describes.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut pid = None;
    // SAFETY: walking the control messages the kernel wrote into `control`, as cmsg(3) shows.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_CREDENTIALS {
                let cred: libc::ucred = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                pid = Some(cred.pid);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let text = String::from_utf8_lossy(&buf[..n as usize]);
    Ok(Datagram {
        pid,
        lines: text.lines().map(str::to_owned).collect(),
    })
}

/// systemd's variables as the PHP code serving `/env` sees them (false: unset).
fn env_seen(php: &Php) -> Value {
    let v: Value = client()
        .get(php.url("/env"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v
}

fn none_set(env: &Value) -> bool {
    env["env"]
        .as_object()
        .unwrap()
        .values()
        .all(|v| *v == Value::Bool(false))
}

const SOON: Duration = Duration::from_secs(30);

#[test]
fn the_single_process_says_ready_feeds_the_watchdog_and_says_stopping() {
    let mut notify = Notify::at_path();
    let mut opts = pool_options(json!({}));
    notify.configure(&mut opts, Some(Duration::from_millis(400)));
    let mut php = Php::start_with("pool.php", opts);
    let ready = notify.wait_for("READY=1", SOON, &php);
    let status = ready.value("STATUS").unwrap_or_default();
    assert!(
        status.contains(&format!("serving on http://{}", php.addr))
            && status.contains("single process"),
        "{ready:?}"
    );
    assert_eq!(client().get(php.url("/")).send().unwrap().status(), 200);
    // The variables are rr's: taken out of the environment, so nothing the script starts
    // inherits them.
    let env = env_seen(&php);
    assert!(none_set(&env), "{env}");
    notify.wait_for("WATCHDOG=1", SOON, &php);
    notify.wait_for("WATCHDOG=1", SOON, &php);
    php.signal(libc::SIGTERM);
    let stopping = notify.wait_for("STOPPING=1", SOON, &php);
    assert!(
        stopping
            .value("STATUS")
            .is_some_and(|s| s.starts_with("stopping")),
        "{stopping:?}"
    );
    assert!(php.wait_exit(SOON).success(), "{}", php.stderr());
    assert_eq!(
        notify.sequence(&["READY=1", "RELOADING=1", "STOPPING=1"]),
        ["READY=1", "STOPPING=1"]
    );
    let pid = php.pid();
    assert!(
        notify.all().iter().all(|d| d.pid == Some(pid)),
        "{:?}",
        notify.all()
    );
}

#[test]
fn an_abstract_notify_socket_is_reached_too() {
    let mut notify = Notify::in_abstract_namespace();
    let mut opts = Options::default();
    notify.configure(&mut opts, None);
    let mut php = Php::start_with("pool.php", opts);
    notify.wait_for("READY=1", SOON, &php);
    php.signal(libc::SIGTERM);
    notify.wait_for("STOPPING=1", SOON, &php);
    assert!(php.wait_exit(SOON).success(), "{}", php.stderr());
    assert!(
        !notify
            .all()
            .iter()
            .any(|d| d.has("WATCHDOG=1") || d.has("RELOADING=1")),
        "no watchdog asked for, no reload: {:?}",
        notify.all()
    );
}

/// The master says READY=1 once its workers are up, RELOADING=1 / READY=1 around a reload,
/// STOPPING=1 at the end; workers never notify (every datagram comes from the master's pid)
/// and never see the variables.
fn a_pool_master_notifies(template: bool) {
    let mut notify = Notify::at_path();
    let mut opts = pool_options(json!({
        "http.pool.num_workers": 2,
        "http.pool.template": template,
    }));
    // Workers (or the template) take a while to boot: READY=1 must wait for them.
    opts.env.push(("RR_TEST_BOOT_MS", "300".into()));
    notify.configure(&mut opts, Some(Duration::from_millis(400)));
    let mut php = Php::start_with("pool.php", opts);
    let ready = notify.wait_for("READY=1", SOON, &php);
    let list = workers(&php);
    let in_place: Vec<&Value> = list.iter().filter(|w| w["isolated"] == false).collect();
    assert!(
        in_place.len() == 2
            && in_place
                .iter()
                .all(|w| w["state"] == "idle" || w["state"] == "busy"),
        "READY=1 before the workers were up: {list:?}"
    );
    let status = ready.value("STATUS").unwrap_or_default();
    assert_eq!(
        status,
        format!("serving on http://{}, 2 workers", php.addr),
        "{ready:?}"
    );
    let before: HashSet<u64> = in_place
        .iter()
        .map(|w| w["pid"].as_u64().unwrap())
        .collect();
    for _ in 0..4 {
        let env = env_seen(&php);
        assert!(none_set(&env), "a worker sees systemd's variables: {env}");
    }

    // SIGHUP in one run, the status address's reload in the other: the same announcements.
    match template {
        false => php.signal(libc::SIGHUP),
        true => {
            let resp = client()
                .post(side_url(&php, "status", "/reload"))
                .send()
                .unwrap();
            assert_eq!(resp.status(), 202);
        }
    }
    let reloading = notify.wait_for("RELOADING=1", SOON, &php);
    let usec: u64 = reloading
        .value("MONOTONIC_USEC")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {reloading:?}"));
    assert!(usec > 0);
    let reloaded = notify.wait_for("READY=1", SOON, &php);
    assert_eq!(reloaded.value("STATUS"), Some(status), "{reloaded:?}");
    let after: HashSet<u64> = workers(&php)
        .iter()
        .filter(|w| w["isolated"] == false && w["state"] != "stopping")
        .map(|w| w["pid"].as_u64().unwrap())
        .collect();
    assert!(
        after.is_disjoint(&before),
        "READY=1 before every old worker was replaced: {before:?} {after:?}"
    );
    notify.wait_for("WATCHDOG=1", SOON, &php);

    php.signal(libc::SIGTERM);
    notify.wait_for("STOPPING=1", SOON, &php);
    assert!(php.wait_exit(SOON).success(), "{}", php.stderr());
    assert_eq!(
        notify.sequence(&["READY=1", "RELOADING=1", "STOPPING=1"]),
        ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]
    );
    let master = php.pid();
    let senders: HashSet<Option<i32>> = notify.all().iter().map(|d| d.pid).collect();
    assert_eq!(senders, HashSet::from([Some(master)]), "{:?}", notify.all());
}

#[test]
fn a_pool_master_notifies_around_a_sighup_reload() {
    a_pool_master_notifies(false);
}

#[test]
fn a_template_pool_master_notifies_around_a_reload_from_the_status_address() {
    a_pool_master_notifies(true);
}

/// `systemd-analyze`, when this machine has it: CI installs it (.ci/setup), elsewhere the unit
/// checks are skipped with a note.
fn systemd_analyze() -> Option<std::process::Command> {
    let found = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing: .ci/setup installs the systemd package"
        );
        eprintln!("systemd-analyze not found: the example unit is not checked");
        return None;
    }
    let mut cmd = std::process::Command::new("systemd-analyze");
    cmd.current_dir(common::root().join("examples/systemd"));
    Some(cmd)
}

#[test]
fn the_example_unit_and_its_hardening_drop_in_parse_without_a_warning() {
    let Some(mut verify) = systemd_analyze() else {
        return;
    };
    // The drop-in in rr.service.d/ beside it is read too (an unknown key there is a warning).
    let out = verify.args(["verify", "./rr.service"]).output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn the_hardened_example_unit_rates_ok_in_systemd_analyze_security() {
    let Some(mut security) = systemd_analyze() else {
        return;
    };
    let out = security
        .args(["security", "--offline=true", "--no-pager", "./rr.service"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for rr.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    // systemd rates up to 3.9 "OK" (0 is fully confined, 10 not at all).
    assert!(level < 4.0, "exposure {level}:\n{text}");
}
