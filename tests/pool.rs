//! Pool mode with real processes: a master and re-executed worker processes over loopback.
//! The worker API, crashes, reload, boot failure, stop. Limits are in pool_limits.rs.
mod common;
use common::pool::*;
use common::{client, open_files_in, read, wait_until, Php};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn workers_serve_with_the_same_api_and_the_master_finishes_offloads() {
    let mut php = start(json!({"http.pool.num_workers": 2}));
    let pids = idle_workers(&php, 2);
    assert!(!pids.contains(&(php.pid() as u64)));
    // Two slow requests at once run in the two workers.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let url = php.url("/slow?ms=300");
            std::thread::spawn(move || client().get(url).send().unwrap().text().unwrap())
        })
        .collect();
    let served: HashSet<u64> = slow
        .into_iter()
        .map(|h| h.join().unwrap().parse().unwrap())
        .collect();
    assert_eq!(served, pids.iter().copied().collect::<HashSet<_>>());

    let form = reqwest::blocking::multipart::Form::new()
        .text("a[b]", "c")
        .part(
            "f",
            reqwest::blocking::multipart::Part::bytes(b"up!".to_vec()).file_name("u.txt"),
        );
    let resp = client()
        .post(php.url("/echo?x=1"))
        .header("X-Test", "yes")
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers().get_all("x-multi").iter().count(), 2);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["query"]["x"], "1");
    assert_eq!(v["parsed"]["a"]["b"], "c");
    assert_eq!(
        v["files"]["f"],
        json!({"name": "u.txt", "size": 3, "content": "up!"})
    );
    assert_eq!(v["header"], "yes");

    let resp = client().get(php.url("/stream")).send().unwrap();
    assert_eq!(resp.headers()["x-streamed"], "yes");
    assert_eq!(resp.text().unwrap(), "a;b;end");
    let file = client()
        .get(php.url("/file"))
        .header("Range", "bytes=0-4")
        .send()
        .unwrap();
    assert_eq!(file.status(), 206);
    assert_eq!(file.text().unwrap(), "<?php");
    // addresses() in a worker: the master's listeners.
    let v: Value = client()
        .get(php.url("/addresses"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v, json!([format!("http://{}", php.addr)]));
    // RR\workers() in a worker asks the master: the caller sees itself busy.
    let v: Value = client()
        .get(php.url("/workers"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let list = v["workers"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{v}");
    let me = list.iter().find(|w| w["pid"] == v["me"]).unwrap();
    assert_eq!(me["state"], "busy");
    assert!(me["memory"].as_u64().unwrap() > 1 << 20 && me["age"].as_f64().unwrap() > 0.0);
    let error = client().get(php.url("/error")).send().unwrap();
    assert_eq!(error.status(), 500);
    assert!(php.wait_for_log("pool error detail"));

    // Worker output reaches the master's log with the worker's pid.
    for pid in &pids {
        assert!(
            php.wait_for_log(&format!("worker booted pid={pid}")),
            "{}",
            php.stderr()
        );
        assert!(php.wait_for_log(&format!("worker says hello on stderr pid={pid}")));
    }
    // Counted as idle once the supervisor has seen the last answer go out.
    assert_eq!(
        metric_reaches(&php, "rr_pool_workers{state=\"idle\"}", 2),
        2
    );
    assert!(metric(&php, "rr_http_requests_total{status=\"200\"}") >= 3);
    assert!(metric(&php, "rr_stream_bytes_total") >= 5);
    php.signal(libc::SIGTERM);
    assert_eq!(php.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(
        php.stdout().contains("master loop ended"),
        "{}",
        php.stdout()
    );
}

#[test]
fn kill_9_of_a_busy_worker_under_load_fails_only_its_request_with_502() {
    let php = start(json!({"http.pool.num_workers": 2}));
    idle_workers(&php, 2);
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let url = php.url(&format!("/slow?ms=5000&pidfile={}", pidfile.display()));
    let victim = std::thread::spawn(move || client().get(url).send().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&pidfile).map_or(true, |s| s.is_empty()) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    let traffic = load(&php, "/", 4, 100);
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: signalling a worker process of the master this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let resp = victim.join().unwrap();
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["code"], "worker_crashed");
    let statuses = traffic.join().unwrap();
    assert_eq!(statuses.len(), 400);
    assert!(all_ok(&statuses), "{statuses:?}");
    // A replacement took the dead worker's place.
    let pids = idle_workers(&php, 2);
    assert!(!pids.contains(&(pid as u64)));
    assert_eq!(
        metric(&php, "rr_pool_worker_restarts_total{reason=\"crash\"}"),
        1
    );
    assert_eq!(metric(&php, "rr_http_requests_total{status=\"502\"}"), 1);

    // exit() mid-request is a crash too; the next request is served by a fresh worker.
    let resp = client().get(php.url("/exit")).send().unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(client().get(php.url("/")).send().unwrap().status(), 200);
    assert_eq!(
        metric_reaches(&php, "rr_pool_worker_restarts_total{reason=\"crash\"}", 2),
        2
    );
}

#[test]
fn reload_under_load_replaces_every_worker_with_zero_failed_requests() {
    let php = start(json!({"http.pool.num_workers": 2}));
    let before = idle_workers(&php, 2);
    let traffic = load(&php, "/slow?ms=5", 4, 150);
    std::thread::sleep(Duration::from_millis(200));
    php.signal(libc::SIGHUP);
    assert_eq!(
        metric_reaches(&php, "rr_pool_worker_restarts_total{reason=\"reload\"}", 2),
        2
    );
    // A GET does not reload; it says which method does.
    let resp = client()
        .get(side_url(&php, "status", "/reload"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    let resp = client()
        .post(side_url(&php, "status", "/reload"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(
        metric_reaches(&php, "rr_pool_worker_restarts_total{reason=\"reload\"}", 4),
        4
    );
    let statuses = traffic.join().unwrap();
    assert_eq!(statuses.len(), 600);
    assert!(all_ok(&statuses), "{statuses:?}");
    let after = idle_workers(&php, 2);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} {after:?}"
    );
}

/// Writes `value` into `file` as a PHP file returning it, with the same size and modification
/// time as the file it replaces: opcache's timestamp check cannot tell the two apart.
fn deploy(file: &std::path::Path, value: &str, mtime: Option<std::time::SystemTime>) {
    std::fs::write(file, format!("<?php return '{value}';\n")).unwrap();
    if let Some(mtime) = mtime {
        std::fs::File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
}

/// A deploy, then a reload (SIGHUP): every worker of the new generation runs the new code, the
/// code it loads at boot and the code it includes per request, with opcache on (as production
/// runs it), in template and in re-exec mode. The new files keep the old ones' size and
/// modification time, so no opcache memory a new generation shared with the old one could
/// pass its timestamp check: a reload must never serve yesterday's code.
#[test]
fn a_reload_serves_the_code_deployed_since_the_boot_with_opcache_on() {
    for template in [true, false] {
        let code = tempfile::tempdir().unwrap();
        let (boot, request) = (
            code.path().join("boot.php"),
            code.path().join("request.php"),
        );
        deploy(&boot, "boot-1", None);
        deploy(&request, "request-1", None);
        let mut opts =
            pool_options(json!({"http.pool.num_workers": 2, "http.pool.template": template}));
        opts.ini.push(("zend_extension", "opcache".to_string()));
        opts.ini.push(("opcache.enable_cli", "1".to_string()));
        // Cache the files even though they were written a moment ago (the default waits 2 s).
        opts.ini
            .push(("opcache.file_update_protection", "0".to_string()));
        opts.env
            .push(("RR_TEST_CODE_DIR", code.path().display().to_string()));
        let php = Php::start_with("deploy.php", opts);
        let before = idle_workers(&php, 2);
        let answer = |php: &Php| -> Value {
            let resp = client().get(php.url("/")).send().unwrap();
            assert_eq!(resp.status(), 200, "template {template}: {}", php.stderr());
            resp.json().unwrap()
        };
        // An answer from code `version`, both files cached by opcache.
        let ran = |php: &Php, version: u8| -> Value {
            let a = answer(php);
            assert_eq!(
                (&a["boot"], &a["request"], &a["cached"]),
                (
                    &json!(format!("boot-{version}")),
                    &json!(format!("request-{version}")),
                    &json!(true)
                ),
                "template {template}: {a}"
            );
            a
        };
        for _ in 0..4 {
            ran(&php, 1);
        }
        let mtimes = [&boot, &request].map(|f| std::fs::metadata(f).unwrap().modified().unwrap());
        deploy(&boot, "boot-2", Some(mtimes[0]));
        deploy(&request, "request-2", Some(mtimes[1]));
        // Without a reload, opcache goes on serving what it holds: the check is in play.
        let a = answer(&php);
        assert_eq!(a["request"], "request-1", "template {template}: {a}");
        php.signal(libc::SIGHUP);
        assert_eq!(
            metric_reaches(&php, "rr_pool_worker_restarts_total{reason=\"reload\"}", 2),
            2,
            "template {template}"
        );
        let after = idle_workers(&php, 2);
        assert!(
            after.iter().all(|p| !before.contains(p)),
            "template {template}: {before:?} {after:?}"
        );
        for _ in 0..6 {
            let a = ran(&php, 2);
            assert!(
                after.contains(&a["pid"].as_u64().unwrap()),
                "template {template}: {a}"
            );
        }
    }
}

#[test]
fn a_reload_under_sustained_load_replaces_every_worker() {
    let php = start(json!({"http.pool.num_workers": 2}));
    let before = idle_workers(&php, 2);
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = sustained_load(&php, "/", 6, stop.clone());
    // Traffic flows before the reload starts, and goes on until every worker was replaced.
    assert!(metric_reaches(&php, "rr_pool_jobs_total", 200) >= 200);
    php.signal(libc::SIGHUP);
    wait_metric(
        &php,
        "rr_pool_worker_restarts_total{reason=\"reload\"}",
        Duration::from_secs(60),
        "reload stuck",
        |n| n >= 2,
    );
    assert_eq!(metric(&php, "rr_pool_reload_pending"), 0);
    stop.store(true, Ordering::Relaxed);
    let statuses = traffic.join().unwrap();
    assert!(
        all_ok(&statuses),
        "{:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    let after = idle_workers(&php, 2);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} {after:?}"
    );
}

#[test]
fn a_reload_whose_workers_cannot_boot_keeps_the_old_ones_serving_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken");
    let mut opts = pool_options(json!({"http.pool.num_workers": 2}));
    opts.env
        .push(("RR_TEST_BROKEN_IF", broken.display().to_string()));
    let php = Php::start_with("pool.php", opts);
    let before = idle_workers(&php, 2);
    // A broken deploy, then a reload.
    std::fs::write(&broken, "").unwrap();
    php.signal(libc::SIGHUP);
    // Past the 5 failures that would be fatal at first start.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&php, "rr_pool_boot_failures") < 6 {
        assert!(Instant::now() < deadline, "{}", php.stderr());
        // The old workers serve meanwhile.
        let resp = client().get(php.url("/")).send().unwrap();
        assert_eq!(resp.status(), 200);
        let pid: u64 = resp.text().unwrap().parse().unwrap();
        assert!(before.contains(&pid), "{pid} not one of {before:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Said on the status address, in the metrics and in the log.
    let boot = boot_status(&php);
    assert_eq!(boot["reload_pending"], true, "{boot}");
    assert!(
        boot["last_boot_error"]
            .as_str()
            .unwrap()
            .contains("syntax error"),
        "{boot}"
    );
    assert_eq!(metric(&php, "rr_pool_reload_pending"), 1);
    assert!(php.stderr().contains("the running workers keep serving"));
    assert_eq!(idle_workers(&php, 2), before);
    // The deploy is fixed: the retries boot the new generation and the old one goes.
    std::fs::remove_file(&broken).unwrap();
    let pending = "rr_pool_reload_pending";
    wait_metric(&php, pending, Duration::from_secs(60), "no reload", |n| {
        n == 0
    });
    let after = idle_workers(&php, 2);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} {after:?}"
    );
    assert_eq!(metric(&php, "rr_pool_boot_failures"), 0);
}

#[test]
fn a_worker_that_cannot_boot_backs_off_then_the_master_exits_non_zero() {
    let mut opts = pool_options(json!({"http.pool.num_workers": 1}));
    opts.env.push(("RR_TEST_BROKEN", "1".into()));
    let started = Instant::now();
    let (status, stderr, stdout) = Php::run_to_end("pool.php", opts, Duration::from_secs(30));
    let out = stderr + &stdout;
    assert_ne!(status.code(), Some(0), "{out}");
    assert!(
        out.contains("workers failed to boot 5 times in a row"),
        "{out}"
    );
    assert!(
        out.contains("syntax error"),
        "the worker's own error is in the message: {out}"
    );
    assert!(out.contains("RR\\Exception"), "{out}");
    // Backoff 100 + 200 + 400 + 800 ms between the five attempts.
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(!out.contains("master loop ended"));
}

#[test]
fn sigterm_drains_in_flight_and_queued_requests_then_exits_0() {
    let mut php = start(json!({"http.pool.num_workers": 1}));
    let worker = idle_workers(&php, 1)[0];
    let requests: Vec<_> = (0..3)
        .map(|_| {
            let url = php.url("/slow?ms=300");
            std::thread::spawn(move || client().get(url).send().map(|r| r.status().as_u16()))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(150));
    let ready = side_url(&php, "status", "/ready");
    assert_eq!(client().get(&ready).send().unwrap().status(), 200);
    php.signal(libc::SIGTERM);
    // Draining (the queued requests take ~600 ms more): no longer ready.
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(client().get(&ready).send().unwrap().status(), 503);
    for r in requests {
        assert_eq!(r.join().unwrap().unwrap(), 200);
    }
    assert_eq!(
        php.wait_exit(Duration::from_secs(10)).code(),
        Some(0),
        "{}",
        php.stderr()
    );
    assert!(php.stdout().contains("master loop ended"));
    assert!(php.wait_for_log("worker loop ended"));
    // SAFETY: kill(pid, 0) only checks that the process exists.
    assert_ne!(
        unsafe { libc::kill(worker as i32, 0) },
        0,
        "the worker stopped too"
    );
}

#[test]
fn a_worker_slower_to_boot_than_boot_timeout_is_killed_and_counts_as_a_boot_failure() {
    let mut opts = pool_options(json!({
        "http.pool.num_workers": 1,
        "http.pool.boot_timeout": "300ms",
        "http.pool.allocate_timeout": "60s",
    }));
    opts.env.push(("RR_TEST_BOOT_MS", "5000".into()));
    let (status, stderr, stdout) = Php::run_to_end("pool.php", opts, Duration::from_secs(30));
    let out = stderr + &stdout;
    assert_ne!(status.code(), Some(0), "{out}");
    assert!(out.contains("did not boot within 300ms"), "{out}");
    assert!(
        out.contains("workers failed to boot 5 times in a row"),
        "{out}"
    );
}

#[test]
fn a_stray_pool_marker_without_its_socket_is_a_clear_config_error() {
    let mut opts = common::Options::default();
    opts.env.push(("RR_POOL_FD", "7".into()));
    let (status, stderr, stdout) =
        Php::run_to_end("config_error.php", opts, Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains("RR_POOL_FD=7 names no inherited socket"),
        "{stdout}"
    );
}

#[test]
fn superglobal_mode_runs_in_pool_workers_with_headers_cookies_and_exit() {
    let php = Php::start_with(
        "fpm_worker.php",
        pool_options(json!({"http.pool.num_workers": 2})),
    );
    let cookies = client().get(php.url("/cookies.php")).send().unwrap();
    assert_eq!(cookies.status(), 200);
    assert_eq!(
        cookies.headers()["content-type"],
        "text/plain;charset=UTF-8"
    );
    let set: Vec<_> = cookies.headers().get_all("set-cookie").iter().collect();
    assert_eq!(set.len(), 3, "{set:?}");
    assert!(
        set[1].to_str().unwrap().starts_with("raw=r%20aw"),
        "{set:?}"
    );

    // exit() ends each request, not the worker: the same processes keep serving.
    let mut pids = HashSet::new();
    for _ in 0..20 {
        let bye = client().get(php.url("/exit.php")).send().unwrap();
        assert_eq!(bye.headers()["x-before-exit"], "yes");
        assert_eq!(
            bye.text().unwrap(),
            "before exit\ndie message\nshutdown function ran\n"
        );
        let stats: Value = client()
            .get(php.url("/_stats"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        pids.insert(stats["pid"].as_i64().unwrap());
    }
    assert!(
        !pids.contains(&i64::from(php.pid())),
        "the master ran a request"
    );
    assert!(pids.len() <= 2, "workers were replaced: {pids:?}");
    for reason in ["crash", "max_jobs", "max_worker_memory"] {
        let line = format!("rr_pool_worker_restarts_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&php, &line), 0, "{reason}");
    }
}

/// A field of /proc/<pid>/status, e.g. "SigBlk".
fn proc_status(pid: u64, field: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

#[test]
fn workers_start_with_no_signal_blocked() {
    // The spawning thread may be the master's I/O thread, which blocks every signal.
    let php = start(json!({"http.pool.num_workers": 4, "http.pool.max_jobs": 1}));
    let mut seen = HashSet::new();
    for _ in 0..4 {
        for pid in idle_workers(&php, 4) {
            if seen.insert(pid) {
                assert_eq!(
                    proc_status(pid, "SigBlk"),
                    "0000000000000000",
                    "worker {pid}"
                );
            }
        }
        // Each answer replaces its worker (max_jobs 1): new spawns, from whichever thread.
        for _ in 0..4 {
            assert_eq!(client().get(php.url("/")).send().unwrap().status(), 200);
        }
    }
    assert!(seen.len() >= 8, "{seen:?}");
}

#[test]
fn a_worker_stuck_in_a_request_dies_with_a_killed_master() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let mut php = start(json!({"http.pool.num_workers": 1}));
    idle_workers(&php, 1);
    let url = php.url(&format!("/slow?ms=600000&pidfile={}", pidfile.display()));
    let _stuck = std::thread::spawn(move || client().get(url).send().map(|r| r.status()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|p| p.parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "the request never started");
        std::thread::sleep(Duration::from_millis(10));
    };
    php.signal(libc::SIGKILL);
    php.wait_exit(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    // SAFETY: kill(pid, 0) only checks that the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 && !proc_status(pid as u64, "State").starts_with('Z') {
        assert!(
            Instant::now() < deadline,
            "worker {pid} outlived the master"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_multi_threaded_master_serves_streams_and_reloads_under_load_without_a_failure() {
    let php = start(json!({"http.pool.num_workers": 2, "http.pool.master_threads": 2}));
    let before = idle_workers(&php, 2);
    let plain = load(&php, "/", 4, 100);
    let streams = {
        let url = php.url("/stream");
        std::thread::spawn(move || {
            let c = client();
            (0..100)
                .map(|_| c.get(&url).send().unwrap().text().unwrap())
                .collect::<Vec<_>>()
        })
    };
    php.signal(libc::SIGHUP);
    assert_eq!(
        metric_reaches(&php, "rr_pool_worker_restarts_total{reason=\"reload\"}", 2),
        2
    );
    let statuses = plain.join().unwrap();
    assert_eq!(statuses.len(), 400);
    assert!(all_ok(&statuses), "{statuses:?}");
    for body in streams.join().unwrap() {
        assert_eq!(body, "a;b;end");
    }
    let after = idle_workers(&php, 2);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} {after:?}"
    );
    // The master runs two runtime threads (its blocking pool shares the name, so at least two;
    // with one thread the master has a single rr-io thread and names its blocking pool
    // rr-blocking).
    let threads = std::fs::read_dir(format!("/proc/{}/task", php.pid()))
        .unwrap()
        .filter(|t| {
            let comm = t.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).unwrap_or_default().trim() == "rr-io"
        })
        .count();
    assert!(
        threads >= 2,
        "http.pool.master_threads: {threads} rr-io threads"
    );
}

/// The master's children: the template and every worker (a forked worker is re-parented to
/// the master). Not the template's middle child of a fork, which holds the log file open for
/// the moment it lives and then exits.
fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return vec![];
    };
    tasks
        .flatten()
        .flat_map(|task| {
            let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            list.split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// logrotate signals the master only (its pid file): the master passes SIGUSR1 on, and every
/// process of the pool (which each write the file) opens the log file again, the template's
/// forks included. Before, SIGUSR1 ended the master at once.
#[test]
fn sigusr1_to_the_master_opens_the_log_file_again_in_every_process() {
    for template in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("rr.log");
        let mut opts = pool_options(json!({
            "http.pool.num_workers": 2, "http.pool.template": template,
            "logs.output": log, "logs.level": "info", "http.access_logs": true,
        }));
        opts.log_file = Some(log.clone());
        let mut php = Php::start_with("pool.php", opts);
        // The master, two workers and the template: each has the file open.
        let processes = 3 + usize::from(template);
        let mut pids = vec![];
        wait_until("every process up", Duration::from_secs(20), || {
            pids = std::iter::once(php.pid())
                .chain(children(php.pid()))
                .collect();
            pids.len() == processes
                && pids
                    .iter()
                    .all(|&p| open_files_in(p, dir.path()) == [log.clone()])
        });
        assert_eq!(client().get(php.url("/")).send().unwrap().status(), 200);

        let rotated = dir.path().join("rr.log.1");
        std::fs::rename(&log, &rotated).unwrap();
        php.signal(libc::SIGUSR1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pids
            .iter()
            .all(|&p| open_files_in(p, dir.path()) == [log.clone()])
        {
            let files: Vec<_> = pids
                .iter()
                .map(|&p| (p, open_files_in(p, dir.path())))
                .collect();
            assert!(
                Instant::now() < deadline,
                "template {template}: not every process on the new file within 10 s \
                 (master {}): {files:?}",
                php.pid()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let url = php.url("/after-rotation");
        assert_eq!(client().get(url).send().unwrap().status(), 200);
        wait_until(
            "the access line in the new file",
            Duration::from_secs(10),
            || read(&log).contains("/after-rotation"),
        );
        assert!(!read(&rotated).contains("/after-rotation"));
        // The same processes: none died of the signal.
        let now: Vec<i32> = std::iter::once(php.pid())
            .chain(children(php.pid()))
            .collect();
        assert_eq!(now, pids, "template {template}");
        php.signal(libc::SIGTERM);
        assert_eq!(php.wait_exit(Duration::from_secs(20)).code(), Some(0));
    }
}
