//! Template mode and connections opened at boot (issue 18's fork safety, generic in rr): a
//! template that connects to Redis (Debian's redis-server and php-redis) either closes the
//! connection in `RR\Worker::beforeFork()`, and its workers never share a socket nor read each
//! other's replies under concurrent load, or rr refuses to fork and names the peer.
mod common;
use common::pool::pool_options;
use common::{client, Php};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server of the test's own, on a unix socket in a temp dir (no TCP port).
struct Redis {
    child: Child,
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("redis.sock");
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--unixsocket",
            ])
            .arg(&socket)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package; .ci/setup installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis {
            child,
            socket,
            _dir: dir,
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(redis: &Redis, close: bool, connections: &str) -> Php {
    let mut opts = pool_options(json!({
        "http.pool.num_workers": 2,
        "http.pool.template": true,
        "http.pool.template_connections": connections,
        "http.pool.send_ahead": 0,
    }));
    // The tests run php with -n: php-redis and the igbinary it links against, by hand.
    opts.ini.push(("extension", "igbinary".into()));
    opts.ini.push(("extension", "redis".into()));
    opts.env
        .push(("RR_TEST_REDIS", redis.socket.display().to_string()));
    opts.env
        .push(("RR_TEST_CLOSE", if close { "1" } else { "0" }.into()));
    Php::start_with("fork_redis.php", opts)
}

/// Socket inodes each process holds open (`/proc/PID/fd`).
fn socket_inodes(pid: u64) -> BTreeSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|l| l.display().to_string())
                .filter(|l| l.starts_with("socket:"))
                .collect()
        })
        .unwrap_or_default()
}

/// Concurrent load: every answer, by worker pid.
fn load(php: &Php, threads: usize, each: usize) -> Vec<Value> {
    let url = php.url("/");
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let c = client();
                (0..each)
                    .map(|_| c.get(&url).send().unwrap().json::<Value>().unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

/// Which workers share a socket inode, and with what.
fn shared_sockets(pids: &BTreeSet<u64>) -> BTreeMap<String, Vec<u64>> {
    let mut holders: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for &pid in pids {
        for inode in socket_inodes(pid) {
            holders.entry(inode).or_default().push(pid);
        }
    }
    holders.retain(|_, p| p.len() > 1);
    holders
}

#[test]
fn workers_of_a_template_that_closes_its_connection_never_share_it() {
    let redis = Redis::start();
    let php = start(&redis, true, "refuse");
    let answers = load(&php, 6, 40);
    let pids: BTreeSet<u64> = answers.iter().map(|a| a["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids.len(), 2, "both workers served: {answers:?}");
    for a in &answers {
        assert_eq!(a["role"], "worker");
        assert_eq!(a["wrong"], 0, "a worker read another's reply: {a}");
    }
    let shared = shared_sockets(&pids);
    assert!(
        shared.is_empty(),
        "sockets shared between workers: {shared:?}"
    );
}

#[test]
fn a_template_that_keeps_its_connection_is_refused_naming_the_peer() {
    let redis = Redis::start();
    let mut php = start(&redis, false, "refuse");
    let status = php.wait_exit(Duration::from_secs(60));
    assert!(!status.success(), "the master went on: {status}");
    let log = php.stderr();
    let peer = format!("unix socket {}", redis.socket.display());
    assert!(
        log.contains("connections are open at the first waitRequest()") && log.contains(&peer),
        "{log}"
    );
}

#[test]
fn allowed_connections_are_inherited_by_every_worker() {
    // What the refusal protects from: with `allow` the template's socket is in both workers
    // (the /proc check above can fail).
    let redis = Redis::start();
    let php = start(&redis, false, "allow");
    let answers = load(&php, 1, 4);
    let pids: BTreeSet<u64> = answers.iter().map(|a| a["pid"].as_u64().unwrap()).collect();
    let workers: BTreeSet<u64> = common::pool::workers(&php)
        .iter()
        .map(|w| w["pid"].as_u64().unwrap())
        .collect();
    assert!(pids.is_subset(&workers));
    let shared = shared_sockets(&workers);
    assert!(
        !shared.is_empty(),
        "the template's Redis socket should be in every worker"
    );
}
