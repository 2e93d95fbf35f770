//! Template mode (`http.pool.template`): workers forked warm from one booted template process,
//! one-shot workers for isolated paths, `RR\Worker::retire()`. Real processes over loopback.
mod common;
use common::pool::*;
use common::{client, Options, Php};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A master of tests/fixtures/template.php whose bootstrap appends a line to `boot_file`.
fn start_template(options: Value, boot_file: &Path, extra_env: &[(&'static str, &str)]) -> Php {
    Php::start_with(
        "template.php",
        template_options(options, boot_file, extra_env),
    )
}

fn template_options(
    options: Value,
    boot_file: &Path,
    extra_env: &[(&'static str, &str)],
) -> Options<'static> {
    let mut opts = pool_options(options);
    opts.env
        .push(("RR_TEST_BOOT_FILE", boot_file.display().to_string()));
    for (k, v) in extra_env {
        opts.env.push((k, v.to_string()));
    }
    opts
}

/// The bootstrap runs so far: (pid, value computed at boot) per line.
fn boots(file: &Path) -> Vec<(u64, String)> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (pid, value) = l.split_once(' ').unwrap();
            (pid.parse().unwrap(), value.to_owned())
        })
        .collect()
}

fn get_json(php: &Php, path: &str) -> Value {
    let resp = client().get(php.url(path)).send().unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().unwrap()
}

fn alive(pid: u64) -> bool {
    // SAFETY: kill(pid, 0) only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

fn temp_file(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[test]
fn the_bootstrap_runs_once_and_a_killed_busy_worker_is_replaced_warm() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = temp_file(&dir, "boots");
    let php = start_template(
        json!({"http.pool.num_workers": 2, "http.pool.template": true}),
        &boot_file,
        &[],
    );
    let first = idle_workers(&php, 2);
    let booted = boots(&boot_file);
    assert_eq!(booted.len(), 1, "{booted:?}");
    let (template_pid, boot_value) = booted[0].clone();
    assert!(
        !first.contains(&template_pid),
        "the template serves nothing"
    );
    for _ in 0..10 {
        let v = get_json(&php, "/");
        assert_eq!(v["boot"], boot_value.as_str());
        assert_eq!(
            v["template"], false,
            "RR_POOL_TEMPLATE is not set in workers"
        );
        assert!(first.contains(&v["pid"].as_u64().unwrap()));
    }

    let pidfile = temp_file(&dir, "pid");
    let url = php.url(&format!("/slow?ms=5000&pidfile={}", pidfile.display()));
    let victim = std::thread::spawn(move || client().get(url).send().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&pidfile).map_or(true, |s| s.is_empty()) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid: u64 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    let traffic = load(&php, "/", 3, 50);
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: signalling a worker process of the master this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let resp = victim.join().unwrap();
    assert_eq!(resp.status(), 502);
    let statuses = traffic.join().unwrap();
    assert_eq!(statuses.len(), 150);
    assert!(all_ok(&statuses), "{statuses:?}");

    let now = idle_workers(&php, 2);
    assert!(!now.contains(&pid), "{now:?}");
    let replacement = *now.iter().find(|p| !first.contains(p)).unwrap();
    // The replacement was forked: no second bootstrap, and it has the template's boot value.
    assert_eq!(boots(&boot_file).len(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Two at once, so both workers answer.
        let a = std::thread::spawn({
            let url = php.url("/?ms=200");
            move || client().get(url).send().unwrap().json::<Value>().unwrap()
        });
        let b = get_json(&php, "/?ms=200");
        let a = a.join().unwrap();
        assert_eq!(a["boot"], boot_value.as_str());
        assert_eq!(b["boot"], boot_value.as_str());
        if [&a, &b].iter().any(|v| v["pid"] == replacement) {
            break;
        }
        assert!(Instant::now() < deadline, "the replacement never answered");
    }
    assert_eq!(
        metric(&php, "rr_pool_worker_restarts_total{reason=\"crash\"}"),
        1
    );
    assert_eq!(metric(&php, "rr_http_requests_total{status=\"502\"}"), 1);
    // The master reaps forked workers: the killed one is gone, not a zombie.
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(Instant::now() < deadline, "worker {pid} was not reaped");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn forked_workers_have_their_own_pids_random_state_and_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = temp_file(&dir, "boots");
    let mut php = start_template(
        json!({"http.pool.num_workers": 2, "http.pool.template": true}),
        &boot_file,
        &[],
    );
    let pids: HashSet<u64> = idle_workers(&php, 2).into_iter().collect();
    // Both workers busy at once: each answers one.
    let answers: Vec<Value> = (0..2)
        .map(|_| {
            let url = php.url("/?ms=400");
            std::thread::spawn(move || client().get(url).send().unwrap().json::<Value>().unwrap())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let (a, b) = (&answers[0], &answers[1]);
    assert_ne!(a["pid"], b["pid"]);
    assert!(pids.contains(&a["pid"].as_u64().unwrap()));
    assert!(pids.contains(&b["pid"].as_u64().unwrap()));
    // The template seeded both generators before forking; each worker re-seeded its own.
    assert_ne!(a["mt"], b["mt"], "{a} {b}");
    assert_ne!(a["lcg"], b["lcg"], "{a} {b}");
    assert_ne!(
        a["worker"], b["worker"],
        "RR_POOL_WORKER is each worker's number"
    );
    assert_eq!((&a["forked"], &b["forked"]), (&json!(true), &json!(true)));

    // RR\workers() lists the real pids.
    let v = get_json(&php, "/workers");
    let listed: HashSet<u64> = v["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, pids);
    assert!(pids.contains(&v["me"].as_u64().unwrap()));

    // A worker's stderr reaches the master's log with the worker's pid.
    let resp = client().get(php.url("/stderr")).send().unwrap();
    let pid: u64 = resp.text().unwrap().parse().unwrap();
    let needle = format!("stderr line from worker {pid}");
    assert!(php.wait_for_log(&needle));
    let log = php.stderr();
    let line = log.lines().find(|l| l.contains(&needle)).unwrap();
    assert!(line.contains(&format!("pid={pid}")), "{line}");

    // SIGTERM: workers and template stop, the master exits 0, nothing is left behind.
    let template = boots(&boot_file)[0].0;
    php.signal(libc::SIGTERM);
    assert_eq!(php.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(php.stdout().contains("master loop ended"));
    for pid in pids.iter().chain([&template]) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(*pid) {
            assert!(Instant::now() < deadline, "process {pid} still runs");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `template: false`: every worker is a process of its own, and `RR\forked()` says so (the
/// same script says true in forked workers, above).
#[test]
fn re_executed_workers_are_not_forked() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = temp_file(&dir, "boots");
    let php = start_template(
        json!({"http.pool.num_workers": 2, "http.pool.template": false}),
        &boot_file,
        &[],
    );
    let pids: HashSet<u64> = idle_workers(&php, 2).into_iter().collect();
    assert_eq!(boots(&boot_file).len(), 2, "each worker booted itself");
    for _ in 0..4 {
        let v = get_json(&php, "/");
        assert!(pids.contains(&v["pid"].as_u64().unwrap()), "{v}");
        assert_eq!(v["forked"], false, "{v}");
    }
}

#[test]
fn isolated_paths_get_a_fresh_fork_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = temp_file(&dir, "boots");
    let php = start_template(
        json!({"http.pool.num_workers": 1, "http.pool.template": true,
               "http.pool.isolate": ["/iso", "/admin/"]}),
        &boot_file,
        &[],
    );
    let in_place = idle_workers(&php, 1)[0];
    let mut isolated_pids = HashSet::new();
    for path in ["/iso", "/iso/a", "/iso/a?x=1", "/admin/x", "/iso/b"] {
        let v = get_json(&php, path);
        // The global counter as the template left it, plus this one request.
        assert_eq!(v["counter"], 1, "{path}: {v}");
        assert_eq!(v["forked"], true, "{path}: {v}");
        let pid = v["pid"].as_u64().unwrap();
        assert_ne!(pid, in_place, "{path} never reaches the in-place worker");
        assert!(isolated_pids.insert(pid), "{path}: pid {pid} served twice");
    }
    // Not isolated (segment-wise prefixes): the in-place worker's counter grows.
    let mut counters = Vec::new();
    for path in ["/", "/isolated", "/admin", "/x/iso"] {
        let v = get_json(&php, path);
        assert_eq!(v["pid"], in_place, "{path}");
        counters.push(v["counter"].as_u64().unwrap());
    }
    assert_eq!(counters, [1, 2, 3, 4]);
    // Several isolated requests at once: each its own process, none failed.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = php.url("/iso/slow?ms=200");
            std::thread::spawn(move || client().get(url).send().unwrap().json::<Value>().unwrap())
        })
        .collect();
    for h in handles {
        let v = h.join().unwrap();
        assert_eq!(v["counter"], 1);
        assert!(isolated_pids.insert(v["pid"].as_u64().unwrap()));
    }
    assert_eq!(boots(&boot_file).len(), 1, "one bootstrap for all of them");
    // One-shot workers are not restarts.
    let restarts: u64 = ["crash", "max_jobs", "retired"]
        .iter()
        .map(|r| {
            metric(
                &php,
                &format!("rr_pool_worker_restarts_total{{reason=\"{r}\"}}"),
            )
        })
        .sum();
    assert_eq!(restarts, 0);
}

#[test]
fn retire_replaces_the_worker_after_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    // waitRequest()/respond() and handle() with a template; handle() with re-executed workers.
    for (template, handle) in [(true, ""), (true, "1"), (false, "1")] {
        let boot_file = temp_file(&dir, &format!("boots-{template}-{handle}"));
        let php = start_template(
            json!({"http.pool.num_workers": 1, "http.pool.template": template}),
            &boot_file,
            &[("RR_TEST_HANDLE", handle)],
        );
        let before = idle_workers(&php, 1)[0];
        assert_eq!(get_json(&php, "/")["pid"], before);
        let v = get_json(&php, "/retire");
        assert_eq!(v, json!({"pid": before, "retired": true}));
        let next = get_json(&php, "/");
        assert_ne!(next["pid"], before, "template {template}");
        assert_eq!(next["counter"], 1, "a fresh worker");
        assert_eq!(
            metric_reaches(&php, "rr_pool_worker_restarts_total{reason=\"retired\"}", 1),
            1
        );
        let expected_boots = if template { 1 } else { 2 };
        assert_eq!(
            boots(&boot_file).len(),
            expected_boots,
            "template {template}"
        );
    }
}

#[test]
fn retire_without_a_pool_returns_false_and_warns_once() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = temp_file(&dir, "boots");
    let php = start_template(json!({}), &boot_file, &[]);
    for _ in 0..2 {
        let v = get_json(&php, "/retire");
        assert_eq!(v["retired"], false);
    }
    let pid = php.pid() as u64;
    assert_eq!(
        get_json(&php, "/")["pid"],
        pid,
        "the same process serves on"
    );
    let warnings = php
        .stderr()
        .matches("RR\\Worker::retire(): ignored")
        .count();
    assert_eq!(warnings, 1, "{}", php.stderr());
}

#[test]
fn workers_asking_for_a_reload_replace_every_worker_once() {
    let dir = tempfile::tempdir().unwrap();
    for template in [true, false] {
        let boot_file = temp_file(&dir, &format!("boots-{template}"));
        let php = start_template(
            json!({"http.pool.num_workers": 2, "http.pool.template": template}),
            &boot_file,
            &[],
        );
        let before = idle_workers(&php, 2);
        let generation = boot_status(&php)["generation"].as_u64().unwrap();
        // Both workers ask, each in its own request, held until both are in.
        let running = tempfile::tempdir().unwrap();
        let path = format!("/reload?wait=2&running={}", running.path().display());
        let asks: Vec<_> = (0..2)
            .map(|_| {
                let url = php.url(&path);
                std::thread::spawn(move || -> Value {
                    let resp = client().get(url).send().unwrap();
                    assert_eq!(resp.status(), 200);
                    resp.json().unwrap()
                })
            })
            .collect();
        let asked: HashSet<u64> = asks
            .into_iter()
            .map(|ask| {
                let v = ask.join().unwrap();
                assert_eq!(v["reloaded"], true, "{v}");
                v["pid"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(
            asked,
            before.iter().copied().collect(),
            "both workers asked"
        );
        // Every worker is replaced (their exits come after their asks: both asks were seen)...
        let deadline = Instant::now() + Duration::from_secs(60);
        let after = loop {
            let now = idle_workers(&php, 2);
            if now.iter().all(|p| !before.contains(p)) {
                break now;
            }
            assert!(
                Instant::now() < deadline,
                "{before:?} {now:?}\n{}",
                php.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // ...by one reload.
        let boot = boot_status(&php);
        assert_eq!(
            boot["generation"],
            generation + 1,
            "template {template}: {boot}"
        );
        assert_eq!(boot["reload_pending"], false, "{boot}");
        assert_eq!(idle_workers(&php, 2), after, "no further reload");
        if template {
            assert_eq!(boots(&boot_file).len(), 2, "one new template");
        }
    }
}

#[test]
fn reload_without_a_pool_returns_false_and_warns_once() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = temp_file(&dir, "boots");
    let php = start_template(json!({}), &boot_file, &[]);
    let pid = php.pid() as u64;
    for _ in 0..2 {
        let v = get_json(&php, "/reload");
        assert_eq!(v, json!({"pid": pid, "reloaded": false}));
    }
    let warnings = php
        .stderr()
        .matches("RR\\Worker::reload(): ignored")
        .count();
    assert_eq!(warnings, 1, "{}", php.stderr());
}

#[test]
fn reload_replaces_the_template_and_every_worker_with_zero_failed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = temp_file(&dir, "boots");
    let php = start_template(
        json!({"http.pool.num_workers": 2, "http.pool.template": true}),
        &boot_file,
        &[],
    );
    let before = idle_workers(&php, 2);
    let traffic = load(&php, "/?ms=5", 4, 150);
    std::thread::sleep(Duration::from_millis(200));
    php.signal(libc::SIGHUP);
    assert_eq!(
        metric_reaches(&php, "rr_pool_worker_restarts_total{reason=\"reload\"}", 2),
        2
    );
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
    // Each reload booted a new template (new code); the workers come from the newest.
    let booted = boots(&boot_file);
    assert_eq!(booted.len(), 3, "{booted:?}");
    for (old, _) in &booted[..2] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(*old) {
            assert!(Instant::now() < deadline, "old template {old} still runs");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(get_json(&php, "/")["boot"], booted[2].1.as_str());
}

#[test]
fn a_dead_template_is_replaced_while_its_workers_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = temp_file(&dir, "boots");
    let php = start_template(
        json!({"http.pool.num_workers": 2, "http.pool.template": true, "http.pool.max_jobs": 3,
               "http.pool.supervisor.exec_ttl": "1s"}),
        &boot_file,
        &[],
    );
    let workers_before = idle_workers(&php, 2);
    let (template, first_value) = boots(&boot_file)[0].clone();
    // SAFETY: signalling the template process of the master this test started.
    unsafe { libc::kill(template as i32, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while boots(&boot_file).len() < 2 {
        assert!(Instant::now() < deadline, "{}", php.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    let second_value = boots(&boot_file)[1].1.clone();
    // The workers forked from the dead template still serve (and are still the same).
    let v = get_json(&php, "/");
    assert_eq!(v["boot"], first_value.as_str());
    assert!(workers_before.contains(&v["pid"].as_u64().unwrap()));
    // max_jobs (3) replaces workers; replacements come from the new template.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get_json(&php, "/");
        if v["boot"] == second_value.as_str() {
            break;
        }
        assert!(Instant::now() < deadline, "{}", php.stderr());
    }
    assert!(
        metric_reaches(
            &php,
            "rr_pool_worker_restarts_total{reason=\"max_jobs\"}",
            1
        ) >= 1
    );
    // exec_ttl kills a forked worker like any other: 504, and a replacement.
    let resp = client().get(php.url("/?ms=3000")).send().unwrap();
    assert_eq!(resp.status(), 504);
    assert_eq!(
        metric_reaches(
            &php,
            "rr_pool_worker_restarts_total{reason=\"exec_ttl\"}",
            1
        ),
        1
    );
    idle_workers(&php, 2);
    assert_eq!(boots(&boot_file).len(), 2);
}

#[test]
fn max_worker_memory_measures_a_forked_workers_private_memory() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = temp_file(&dir, "boots");
    // 64 MB allocated at boot in the template is shared, not counted against each worker.
    let php = start_template(
        json!({"http.pool.num_workers": 1, "http.pool.template": true,
               "http.pool.supervisor.max_worker_memory": 32}),
        &boot_file,
        &[("RR_TEST_BOOT_ALLOC_MB", "64")],
    );
    let pid = idle_workers(&php, 1)[0];
    for _ in 0..5 {
        assert_eq!(get_json(&php, "/")["pid"], pid);
    }
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb: u64 = rss
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        rss_kb > 64 * 1024,
        "its RSS counts the shared pages: {rss_kb} kB"
    );
    let listed = workers(&php)[0]["memory"].as_u64().unwrap();
    assert!(listed > 0 && listed < 32 << 20, "private memory: {listed}");
    assert_eq!(
        metric(
            &php,
            "rr_pool_worker_restarts_total{reason=\"max_worker_memory\"}"
        ),
        0
    );
    // Growing its own memory past the limit replaces it.
    let v: Value = get_json(&php, "/?alloc_mb=48");
    assert_eq!(v["pid"], pid);
    assert_eq!(
        metric_reaches(
            &php,
            "rr_pool_worker_restarts_total{reason=\"max_worker_memory\"}",
            1
        ),
        1
    );
    assert_ne!(idle_workers(&php, 1)[0], pid);
}

fn config_error(options: Value) -> String {
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_OPTIONS", options.to_string()));
    let (status, stderr, stdout) =
        Php::run_to_end("config_error.php", opts, Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{stdout}{stderr}");
    stdout
}

#[test]
fn isolate_needs_the_template_and_paths_starting_with_a_slash() {
    let out = config_error(json!({"http.pool.num_workers": 2, "http.pool.isolate": "/admin"}));
    assert!(
        out.contains("ConfigException")
            && out.contains("http.pool.isolate")
            && out.contains("/admin")
            && out.contains("unless http.pool.template is true"),
        "{out}"
    );
    let out = config_error(
        json!({"http.pool.num_workers": 2, "http.pool.template": true,
                                  "http.pool.isolate": ["/ok", "admin"]}),
    );
    assert!(
        out.contains("http.pool.isolate")
            && out.contains("\"admin\" is not one")
            && out.contains("starting with '/'"),
        "{out}"
    );
}

#[test]
fn a_template_that_cannot_boot_backs_off_then_the_master_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = temp_file(&dir, "boots");
    let opts = template_options(
        json!({"http.pool.num_workers": 2, "http.pool.template": true}),
        &boot_file,
        &[("RR_TEST_BROKEN", "1")],
    );
    let started = Instant::now();
    let (status, stderr, stdout) = Php::run_to_end("template.php", opts, Duration::from_secs(30));
    let out = stderr + &stdout;
    assert_ne!(status.code(), Some(0), "{out}");
    assert!(
        out.contains("the template (or a worker forked from it) failed to boot 5 times in a row"),
        "{out}"
    );
    assert!(
        out.contains("syntax error"),
        "its own error is in the message: {out}"
    );
    assert!(out.contains("RR\\Exception"), "{out}");
    // Backoff 100 + 200 + 400 + 800 ms between the five attempts.
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

#[test]
fn template_and_workers_end_when_the_master_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = temp_file(&dir, "boots");
    let mut php = start_template(
        json!({"http.pool.num_workers": 2, "http.pool.template": true,
               "http.pool.isolate": ["/iso"]}),
        &boot_file,
        &[],
    );
    let mut pids = idle_workers(&php, 2);
    pids.push(boots(&boot_file)[0].0);
    // The spare one-shot worker, once forked (its pid is 0 until the template reports it).
    let deadline = Instant::now() + Duration::from_secs(20);
    let spare = loop {
        let forked: Vec<u64> = workers(&php)
            .iter()
            .filter(|w| w["isolated"] == true && w["state"] == "idle")
            .map(|w| w["pid"].as_u64().unwrap())
            .collect();
        if !forked.is_empty() {
            break forked;
        }
        assert!(Instant::now() < deadline, "no spare one-shot worker");
        std::thread::sleep(Duration::from_millis(20));
    };
    pids.extend(spare);
    assert_eq!(pids.len(), 4, "two workers, the template, a spare one-shot");
    php.signal(libc::SIGKILL);
    php.wait_exit(Duration::from_secs(5));
    // Their channels close: each leaves its loop and exits.
    for pid in pids {
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) && !zombie(pid) {
            assert!(
                Instant::now() < deadline,
                "process {pid} outlived the master"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn zombie(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn orphans_below_the_master_are_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = temp_file(&dir, "boots");
    let php = start_template(
        json!({"http.pool.num_workers": 1, "http.pool.template": true}),
        &boot_file,
        &[],
    );
    idle_workers(&php, 1);
    let resp = client().get(php.url("/orphan")).send().unwrap();
    let orphan: u64 = resp.text().unwrap().trim().parse().unwrap();
    // It ends after 0.3 s as the master's child (subreaper); the master reaps it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(orphan) {
        assert!(
            Instant::now() < deadline,
            "orphan {orphan} left behind (zombie: {})",
            zombie(orphan)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get_json(&php, "/")["counter"], 2, "the worker serves on");
}

#[test]
fn one_shot_workers_are_bounded_and_queue_under_the_usual_rules() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = temp_file(&dir, "boots");
    let running = temp_file(&dir, "running");
    std::fs::create_dir(&running).unwrap();
    let php = start_template(
        json!({"http.pool.num_workers": 2, "http.pool.template": true,
               "http.pool.isolate": ["/iso"], "http.pool.isolate_workers": 1,
               "http.pool.allocate_timeout": "2s"}),
        &boot_file,
        &[],
    );
    idle_workers(&php, 2);
    let slow = |ms: u64| {
        let url = php.url(&format!("/iso?ms={ms}&running={}", running.display()));
        std::thread::spawn(move || client().get(url).send().unwrap())
    };
    // Three at once with room for one: they run one after the other, each in its own process.
    let answers: Vec<Value> = (0..3)
        .map(|_| slow(150))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| {
            let resp = h.join().unwrap();
            assert_eq!(resp.status(), 200);
            resp.json().unwrap()
        })
        .collect();
    let pids: HashSet<_> = answers.iter().map(|v| v["pid"].clone()).collect();
    assert_eq!(pids.len(), 3);
    for v in &answers {
        assert_eq!(
            v["concurrent"], 1,
            "never two one-shot workers at once: {v}"
        );
    }
    // Waiting longer than allocate_timeout for the one slot: 503 with Retry-After.
    let first = slow(3000);
    std::thread::sleep(Duration::from_millis(300));
    let second = client().get(php.url("/iso?ms=10")).send().unwrap();
    assert_eq!(second.status(), 503);
    assert!(second.headers().contains_key("retry-after"));
    // The in-place workers are not held up by the isolated line.
    assert_eq!(client().get(php.url("/")).send().unwrap().status(), 200);
    assert_eq!(first.join().unwrap().status(), 200);
}

#[test]
fn idle_ttl_replaces_forked_workers_from_the_template() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = temp_file(&dir, "boots");
    let php = start_template(
        json!({"http.pool.num_workers": 1, "http.pool.template": true,
               "http.pool.supervisor.idle_ttl": "300ms"}),
        &boot_file,
        &[],
    );
    let first = idle_workers(&php, 1)[0];
    assert!(
        metric_reaches(
            &php,
            "rr_pool_worker_restarts_total{reason=\"idle_ttl\"}",
            2
        ) >= 2
    );
    let v = get_json(&php, "/");
    assert_ne!(v["pid"], first);
    assert_eq!(v["boot"], boots(&boot_file)[0].1.as_str());
    assert_eq!(boots(&boot_file).len(), 1);
}

#[test]
fn a_reload_whose_template_cannot_boot_keeps_the_old_template_forking() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = temp_file(&dir, "boots");
    let broken = temp_file(&dir, "broken");
    let broken_env = broken.display().to_string();
    let php = start_template(
        json!({"http.pool.num_workers": 2, "http.pool.template": true}),
        &boot_file,
        &[("RR_TEST_BROKEN_IF", &broken_env)],
    );
    let before = idle_workers(&php, 2);
    std::fs::write(&broken, "").unwrap();
    php.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&php, "rr_pool_boot_failures") < 3 {
        assert!(Instant::now() < deadline, "{}", php.stderr());
        let v = get_json(&php, "/");
        assert!(before.contains(&v["pid"].as_u64().unwrap()), "{v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(&php, "rr_pool_reload_pending"), 1);
    // A worker dies meanwhile: the old template forks its replacement (old code, warm).
    // SAFETY: signalling a worker process of the master this test started.
    unsafe { libc::kill(before[0] as i32, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let replaced = loop {
        let now = idle_workers(&php, 2);
        if !now.contains(&before[0]) {
            break now;
        }
        assert!(Instant::now() < deadline, "{}", php.stderr());
    };
    assert!(replaced.contains(&before[1]), "{replaced:?}");
    assert_eq!(boots(&boot_file).len(), 1, "no second bootstrap ran");
    // Fixed: the new template boots and replaces every worker.
    std::fs::remove_file(&broken).unwrap();
    let pending = "rr_pool_reload_pending";
    wait_metric(&php, pending, Duration::from_secs(60), "no reload", |n| {
        n == 0
    });
    let after = idle_workers(&php, 2);
    assert!(
        after.iter().all(|p| !replaced.contains(p)),
        "{replaced:?} {after:?}"
    );
    assert_eq!(boots(&boot_file).len(), 2);
}

#[test]
fn the_template_and_forked_workers_start_with_no_signal_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = temp_file(&dir, "boots");
    let php = start_template(
        json!({"http.pool.num_workers": 2, "http.pool.template": true}),
        &boot_file,
        &[],
    );
    let mut pids = idle_workers(&php, 2);
    pids.push(boots(&boot_file)[0].0);
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let blocked = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .unwrap()
            .trim();
        assert_eq!(blocked, "0000000000000000", "process {pid}");
    }
}
