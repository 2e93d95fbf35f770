//! Pool mode limits with real processes: max_jobs, max_worker_memory, exec_ttl, ttl,
//! idle_ttl, the queue and allocate_timeout.
mod common;
use common::client;
use common::pool::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[test]
fn max_jobs_10_with_1000_requests_restarts_100_times_without_a_failure() {
    let php = start(json!({"http.pool.num_workers": 2, "http.pool.max_jobs": 10}));
    let statuses = load(&php, "/", 4, 250).join().unwrap();
    assert_eq!(statuses.len(), 1000);
    assert!(all_ok(&statuses), "{statuses:?}");
    // Every worker that reached 10 jobs was replaced; the (at most 2) workers still up hold
    // the rest, fewer than 10 each: 100 restarts, or 99 when 10 jobs sit with the survivors.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (restarts, leftover) = loop {
        let restarts = metric(&php, "rr_pool_worker_restarts_total{reason=\"max_jobs\"}");
        let leftover: u64 = workers(&php)
            .iter()
            .filter(|w| w["state"] != "stopping")
            .map(|w| w["jobs"].as_u64().unwrap())
            .sum();
        if restarts * 10 + leftover == 1000 || Instant::now() > deadline {
            break (restarts, leftover);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        restarts * 10 + leftover,
        1000,
        "{restarts} restarts, {leftover} jobs left"
    );
    assert!(restarts >= 99, "{restarts}");
    assert_eq!(metric(&php, "rr_pool_jobs_total"), 1000);
    assert_eq!(
        metric(&php, "rr_pool_worker_restarts_total{reason=\"crash\"}"),
        0
    );
}

#[test]
fn max_worker_memory_retires_a_leaking_worker_after_its_response() {
    let php =
        start(json!({"http.pool.num_workers": 1, "http.pool.supervisor.max_worker_memory": 48}));
    let first = idle_workers(&php, 1)[0];
    let mut pids = Vec::new();
    // Memory is read at most every 250 ms per worker (docs/pool.md): leak at a pace that
    // crosses the limit within a few readings.
    for _ in 0..60 {
        let resp = client().get(php.url("/leak")).send().unwrap();
        assert_eq!(resp.status(), 200);
        pids.push(resp.text().unwrap().parse::<u64>().unwrap());
        if pids.last() != Some(&first) {
            break;
        }
        std::thread::sleep(Duration::from_millis(40));
    }
    // The leaking worker answered each of its requests, then was replaced.
    assert_eq!(pids[0], first);
    assert!(pids.iter().any(|p| *p != first), "{pids:?}");
    assert!(
        metric(
            &php,
            "rr_pool_worker_restarts_total{reason=\"max_worker_memory\"}"
        ) >= 1
    );
    assert!(php.wait_for_log("above max_worker_memory"));
}

#[test]
fn exec_ttl_kills_the_worker_answers_504_and_a_fresh_worker_serves() {
    let php = start(json!({"http.pool.num_workers": 1, "http.pool.supervisor.exec_ttl": "300ms"}));
    let first = idle_workers(&php, 1)[0];
    let resp = client().get(php.url("/slow?ms=5000")).send().unwrap();
    assert_eq!(resp.status(), 504);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["code"], "exec_timeout");
    let next: u64 = client()
        .get(php.url("/"))
        .send()
        .unwrap()
        .text()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(next, first);
    assert_eq!(
        metric(&php, "rr_pool_worker_restarts_total{reason=\"exec_ttl\"}"),
        1
    );
    // SAFETY: kill(pid, 0) only checks that the process exists.
    assert_ne!(
        unsafe { libc::kill(first as i32, 0) },
        0,
        "the slow worker was killed"
    );
}

#[test]
fn a_full_queue_answers_503_at_once_and_readiness_says_so() {
    let php = start(json!({"http.pool.num_workers": 1, "http.pool.max_queue_size": 1}));
    idle_workers(&php, 1);
    assert_eq!(
        client()
            .get(side_url(&php, "status", "/ready"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let busy = {
        let url = php.url("/slow?ms=1500");
        std::thread::spawn(move || client().get(url).send().unwrap().status())
    };
    std::thread::sleep(Duration::from_millis(200));
    let queued = {
        let url = php.url("/slow?ms=10");
        std::thread::spawn(move || client().get(url).send().unwrap().status())
    };
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let resp = client().get(php.url("/")).send().unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v: Value = resp.json().unwrap();
    assert_eq!(v["code"], "queue_full");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "answered at once"
    );
    assert_eq!(
        client()
            .get(side_url(&php, "status", "/ready"))
            .send()
            .unwrap()
            .status(),
        503
    );
    assert_eq!(
        client()
            .get(side_url(&php, "status", "/health"))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(busy.join().unwrap(), 200);
    assert_eq!(queued.join().unwrap(), 200);
    assert_eq!(metric(&php, "rr_http_requests_total{status=\"503\"}"), 1);
}

#[test]
fn allocate_timeout_answers_503_when_no_worker_frees_up() {
    let php = start(json!({"http.pool.num_workers": 1, "http.pool.allocate_timeout": "200ms"}));
    idle_workers(&php, 1);
    let busy = {
        let url = php.url("/slow?ms=1500");
        std::thread::spawn(move || client().get(url).send().unwrap().status())
    };
    std::thread::sleep(Duration::from_millis(200));
    let resp = client().get(php.url("/")).send().unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(resp.json::<Value>().unwrap()["code"], "no_worker");
    assert_eq!(busy.join().unwrap(), 200);
}

#[test]
fn ttl_and_idle_ttl_replace_idle_workers() {
    let php = start(json!({"http.pool.num_workers": 1, "http.pool.supervisor.idle_ttl": "300ms"}));
    let first = idle_workers(&php, 1)[0];
    assert_eq!(
        metric_reaches(
            &php,
            "rr_pool_worker_restarts_total{reason=\"idle_ttl\"}",
            1
        ),
        1
    );
    let next = idle_workers(&php, 1)[0];
    assert_ne!(next, first);
    assert_eq!(client().get(php.url("/")).send().unwrap().status(), 200);

    let php = start(json!({"http.pool.num_workers": 1, "http.pool.supervisor.ttl": "1s"}));
    let first = idle_workers(&php, 1)[0];
    // Busy past its ttl: it finishes the request, then goes.
    let resp = client().get(php.url("/slow?ms=1200")).send().unwrap();
    assert_eq!(resp.text().unwrap(), first.to_string());
    assert_eq!(
        metric_reaches(&php, "rr_pool_worker_restarts_total{reason=\"ttl\"}", 1),
        1
    );
    assert_ne!(idle_workers(&php, 1)[0], first);
}

/// Opens `n` TCP connections to `addr` and keeps them open (idle: no request sent).
fn idle_connections(addr: std::net::SocketAddr, n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect()
}

#[test]
fn connections_beyond_max_connections_get_503_and_the_pool_serves_on() {
    let php = start(json!({"http.pool.num_workers": 1, "http.max_connections": 8}));
    idle_workers(&php, 1);
    let held = idle_connections(php.addr, 8);
    // Requests are read in order of acceptance: one request on a held connection proves the
    // master took all eight before the ninth.
    let mut first = held[0].try_clone().unwrap();
    std::io::Write::write_all(&mut first, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 512];
    let n = std::io::Read::read(&mut first, &mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let refused = php.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.contains("\"code\":\"connection_limit\""),
        "{refused}"
    );
    drop(held);
    drop(first);
    // Places free up as connections close.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = client().get(php.url("/")).send().unwrap();
        if resp.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still refused");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn running_out_of_descriptors_degrades_and_never_stops_the_master() {
    // 64 descriptors, no connection limit below that: accepts hit EMFILE, and replacing the
    // worker (max_jobs 1) cannot create its channel.
    let mut opts = pool_options(json!({
        "http.pool.num_workers": 1,
        "http.pool.max_jobs": 1,
        "http.max_connections": 10000,
    }));
    opts.nofile = Some(64);
    let php = common::Php::start_with("pool.php", opts);
    idle_workers(&php, 1);
    let url = php.url("/");
    // A connection taken before the descriptors run out.
    let mut keep = std::net::TcpStream::connect(php.addr).unwrap();
    keep.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let ask = |keep: &mut std::net::TcpStream| {
        std::io::Write::write_all(keep, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 512];
        let n = std::io::Read::read(keep, &mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = ask(&mut keep);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Wait for its replacement, then exhaust the master's descriptors.
    idle_workers(&php, 1);
    let held = idle_connections(php.addr, 100);
    assert!(php.wait_for_log("accept failed"), "{}", php.stderr());
    // This answer retires the worker; its replacement cannot be started for now.
    let second = ask(&mut keep);
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(
        php.wait_for_log("cannot start a worker now"),
        "{}",
        php.stderr()
    );
    // Descriptors come back: the pool starts its worker again and serves.
    drop(held);
    let third = ask(&mut keep);
    assert!(third.starts_with("HTTP/1.1 200"), "{third}");
    let resp = client().get(&url).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(metric(&php, "rr_pool_spawn_failures_total") >= 1);
    assert_eq!(
        metric(
            &php,
            "rr_pool_worker_restarts_total{reason=\"boot_failure\"}"
        ),
        0
    );
    let log = php.stderr();
    assert!(!log.contains("giving up"), "{log}");
}

#[test]
fn the_status_and_metrics_addresses_close_silent_connections_like_the_main_one() {
    let php = start(json!({"http.pool.num_workers": 1, "http.read_header_timeout": "1s"}));
    for what in ["status", "metrics"] {
        let url = side_url(&php, what, "/");
        let addr = url.trim_start_matches("http://").trim_end_matches('/');
        let mut silent = std::net::TcpStream::connect(addr).unwrap();
        // The main listener's head timeout: closed by the server, not by this read's timeout.
        silent
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut buf = [0u8; 64];
        let n = std::io::Read::read(&mut silent, &mut buf).unwrap();
        assert_eq!(n, 0, "{what}: the server closed it");
    }
}
