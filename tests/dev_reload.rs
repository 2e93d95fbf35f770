//! Development reload with the real php binary: `http.watch` (a file watcher replaces the pool's
//! workers when a PHP file changes), `http.pool.debug` (a worker started for each request), the
//! configuration errors that keep both out of single-process mode, and the one warning line
//! naming the RoadRunner keys rr ignores.
mod common;
use common::pool::*;
use common::{client, Options, Php};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A temporary application directory with `app.php` returning `version`.
fn app(version: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.php");
    write_app(&file, version);
    (dir, file)
}

fn write_app(file: &Path, version: &str) {
    std::fs::write(file, format!("<?php\nreturn '{version}';\n")).unwrap();
}

/// An editor's save: the new text written beside the file, then renamed over it.
fn save_as_an_editor_does(file: &Path, text: &str) {
    let tmp = file.with_file_name(".app.php.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

fn start_app(file: &Path, options: Value) -> Php {
    let mut opts = pool_options(options);
    opts.env.push(("RR_TEST_APP", file.display().to_string()));
    Php::start_with("dev_reload.php", opts)
}

/// (version, pid) of one answer, which must be a 200.
fn get(php: &Php) -> (String, u64) {
    let resp = client().get(php.url("/")).send().unwrap();
    assert_eq!(resp.status(), 200, "{}", php.stderr());
    let v: Value = resp.json().unwrap();
    (
        v["version"].as_str().unwrap().to_owned(),
        v["pid"].as_u64().unwrap(),
    )
}

/// Requests until one answers with `version` (a reload takes the debounce plus a boot); fails
/// with the server's log after a generous deadline.
fn wait_for_version(php: &Php, version: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (seen, pid) = get(php);
        if seen == version {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "still {seen}, not {version}\n{}",
            php.stderr()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn a_watched_php_file_that_changes_replaces_the_workers() {
    let (dir, file) = app("v1");
    let php = start_app(
        &file,
        json!({
            "http.pool.num_workers": 2,
            "http.watch.paths": [dir.path()],
            "http.watch.debounce": "200ms",
        }),
    );
    let first = idle_workers(&php, 2);
    assert_eq!(get(&php).0, "v1");
    assert!(php.stderr().contains("rr watch: reloading workers when"));

    write_app(&file, "v2");
    wait_for_version(&php, "v2");
    // The rolling reload ends with every worker new and serving v2.
    wait_metric(
        &php,
        "rr_pool_reload_pending",
        Duration::from_secs(30),
        "reload",
        |n| n == 0,
    );
    let second = idle_workers(&php, 2);
    assert!(
        second.iter().all(|p| !first.contains(p)),
        "{first:?} {second:?}"
    );
    for _ in 0..4 {
        assert_eq!(get(&php).0, "v2");
    }
    let log = php.stderr();
    assert!(
        log.contains(&format!(
            "rr watch: {} changed: reloading workers",
            file.display()
        )),
        "{log}"
    );
    assert!(metric(&php, "rr_pool_generation") >= 1);

    // An editor's save (a temporary file renamed over the original) is one more reload.
    save_as_an_editor_does(&file, "<?php\nreturn 'v3';\n");
    wait_for_version(&php, "v3");
    wait_metric(
        &php,
        "rr_pool_reload_pending",
        Duration::from_secs(30),
        "reload",
        |n| n == 0,
    );

    // Files without a watched extension change nothing (ten times the debounce later, the
    // generation is the same; a slow watcher could only make this pass, never fail).
    let generation = metric(&php, "rr_pool_generation");
    std::fs::write(dir.path().join("notes.txt"), "not PHP").unwrap();
    std::fs::write(dir.path().join("app.php~"), "an editor's backup").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        metric(&php, "rr_pool_generation"),
        generation,
        "{}",
        php.stderr()
    );
    write_app(&file, "v4");
    wait_for_version(&php, "v4");
    assert!(metric(&php, "rr_pool_generation") > generation);
}

#[test]
fn a_broken_edit_keeps_the_old_code_serving_and_the_fix_takes_over() {
    let (dir, file) = app("v1");
    let php = start_app(
        &file,
        json!({
            "http.pool.num_workers": 1,
            "http.watch.paths": [dir.path()],
            "http.watch.debounce": "50ms",
        }),
    );
    let old = idle_workers(&php, 1);
    // A syntax error: the new worker cannot boot, the old one serves on.
    std::fs::write(&file, "<?php\nreturn 'v2'\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&php, "rr_pool_boot_failures") < 2 {
        assert!(Instant::now() < deadline, "{}", php.stderr());
        assert_eq!(get(&php), ("v1".to_owned(), old[0]));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(&php), ("v1".to_owned(), old[0]));
    assert_eq!(metric(&php, "rr_pool_reload_pending"), 1);
    let boot = boot_status(&php);
    let error = boot["last_boot_error"].as_str().unwrap_or_default();
    assert!(error.contains("syntax error"), "{boot}");
    assert!(php.stderr().contains("the running workers keep serving"));

    // Fixed: the save reloads at once (whatever backoff the failures reached).
    write_app(&file, "v3");
    let pid = wait_for_version(&php, "v3");
    assert_ne!(pid, old[0]);
    wait_metric(
        &php,
        "rr_pool_reload_pending",
        Duration::from_secs(30),
        "reload",
        |n| n == 0,
    );
    assert_eq!(metric(&php, "rr_pool_boot_failures"), 0);
    assert_eq!(idle_workers(&php, 1), [pid]);
}

#[test]
fn debug_mode_serves_every_request_with_a_new_worker() {
    let (_dir, file) = app("v1");
    let php = start_app(
        &file,
        json!({"http.pool.num_workers": 2, "http.pool.debug": true}),
    );
    let mut pids = Vec::new();
    for _ in 0..5 {
        let (version, pid) = get(&php);
        assert_eq!(version, "v1");
        pids.push(pid);
    }
    let mut distinct = pids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "{pids:?}");
    assert!(
        !pids.contains(&(php.pid() as u64)),
        "the master serves nothing"
    );

    // No watcher: the next request boots the new code.
    write_app(&file, "v2");
    assert_eq!(get(&php).0, "v2");

    // Requests at once each get their own worker, up to num_workers.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let url = php.url("/?ms=300");
            std::thread::spawn(move || {
                let v: Value = client().get(url).send().unwrap().json().unwrap();
                v["pid"].as_u64().unwrap()
            })
        })
        .collect();
    let slow: Vec<u64> = slow.into_iter().map(|h| h.join().unwrap()).collect();
    assert_ne!(slow[0], slow[1]);

    // Nothing is booted ahead of a request: once idle, the pool has no worker.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !workers(&php).is_empty() {
        assert!(Instant::now() < deadline, "{:?}", workers(&php));
        std::thread::sleep(Duration::from_millis(20));
    }
    let health = client()
        .get(side_url(&php, "status", "/health"))
        .send()
        .unwrap();
    assert_eq!(
        health.status(),
        200,
        "debug mode is healthy with no worker up"
    );
    // Ended one-shot workers are not restarts.
    assert_eq!(
        metric(&php, "rr_pool_worker_restarts_total{reason=\"crash\"}"),
        0
    );
}

#[test]
fn debug_mode_answers_a_broken_edit_with_502_and_serves_the_fix() {
    let (_dir, file) = app("v1");
    let php = start_app(
        &file,
        json!({"http.pool.num_workers": 1, "http.pool.debug": true}),
    );
    assert_eq!(get(&php).0, "v1");
    std::fs::write(&file, "<?php\nreturn 'v2'\n").unwrap();
    // More failures than would stop a pool that never booted: debug mode never gives up.
    for _ in 0..6 {
        let resp = client().get(php.url("/")).send().unwrap();
        assert_eq!(resp.status(), 502, "{}", php.stderr());
    }
    assert!(php.stderr().contains("syntax error"));
    assert!(php
        .stderr()
        .contains("the request it was started for gets 502"));
    write_app(&file, "v3");
    assert_eq!(get(&php).0, "v3");
    assert_eq!(metric(&php, "rr_pool_boot_failures"), 0);
}

/// The script's configuration error, from a process that must exit 2 before listening.
fn config_error(options: Value) -> String {
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_OPTIONS", options.to_string()));
    let (status, stderr, stdout) =
        Php::run_to_end("config_error.php", opts, Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{stdout}{stderr}");
    stdout
}

#[test]
fn watch_and_debug_need_pool_mode() {
    let dir = tempfile::tempdir().unwrap();
    let out = config_error(json!({"http.watch.paths": [dir.path()]}));
    assert!(
        out.contains("ConfigException")
            && out.contains("key 'http.watch.paths'")
            && out.contains("set http.pool.num_workers"),
        "{out}"
    );
    let out = config_error(json!({"http.pool.debug": true}));
    assert!(
        out.contains("key 'http.pool.debug'") && out.contains("set http.pool.num_workers"),
        "{out}"
    );
    let out = config_error(json!({
        "http.pool.num_workers": 1, "http.pool.template": true, "http.pool.debug": true
    }));
    assert!(out.contains("http.pool.template is true"), "{out}");
}

#[test]
fn the_roadrunner_keys_rr_ignores_are_named_in_one_warning_line() {
    let (_dir, file) = app("v1");
    let php = start_app(
        &file,
        json!({
            "http.pool.num_workers": 2,
            "rpc.listen": "tcp://127.0.0.1:6001",
            "server.command": "php worker.php",
            "http.middleware": ["gzip"],
            "http.pool.debug": false,
            "http.pool.supervisor.watch_tick": "1s",
            "logs.mode": "development",
        }),
    );
    // Once the workers booted: they read the same configuration, and say nothing of it.
    idle_workers(&php, 2);
    assert_eq!(get(&php).0, "v1");
    let log = php.stderr();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ignored by rr"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("WARN")
            && lines[0].ends_with(
                "http.middleware, http.pool.supervisor.watch_tick, logs.mode, rpc, server"
            ),
        "{log}"
    );
    // Acted on, so not named.
    assert!(!lines[0].contains("debug"), "{log}");
}
