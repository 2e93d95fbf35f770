//! What operators see: `php -m`, `php --ri rr`, structured and access logs, and in
//! single-process mode the status and metrics addresses (pool mode's: tests/pool*.rs).
mod common;
use common::pool::{metric, pool_options, side_url, wait_metric};
use common::{client, extension, Options, Php};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

fn php(args: &[&str]) -> String {
    let out = Command::new("php")
        .arg("-n")
        .arg("-d")
        .arg(format!("extension={}", extension().display()))
        .args(args)
        .env_remove("RR_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn php_lists_the_module_and_ri_shows_version_and_effective_settings() {
    assert!(php(&["-m"]).lines().any(|l| l == "rr"));
    let info = php(&[
        "-d",
        "rr.address=127.0.0.1:9999",
        "-d",
        "rr.io_driver=thread",
        "--ri",
        "rr",
    ]);
    assert!(
        info.contains(&format!("version => {}", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );
    assert!(info.contains("http.address => 127.0.0.1:9999"), "{info}");
    assert!(info.contains("http.io_driver => thread"), "{info}");
    assert!(info.contains("http.request_timeout => "), "{info}");
}

#[test]
fn ri_reports_a_configuration_error_instead_of_failing() {
    let info = php(&["-d", "rr.io_driver=fast", "--ri", "rr"]);
    assert!(
        info.contains("configuration error") && info.contains("fast"),
        "{info}"
    );
}

#[test]
fn access_logs_and_json_logs() {
    let mut opts = Options::default();
    opts.ini.push(("rr.access_logs", "1".into()));
    opts.env.push((
        "RR_TEST_OPTIONS",
        serde_json::json!({"logs.encoding": "json"}).to_string(),
    ));
    let php = Php::start_with("echo.php", opts);
    assert_eq!(
        client()
            .get(php.url("/logged?x=1"))
            .send()
            .unwrap()
            .status(),
        201
    );
    assert!(php.wait_for_log("/logged?x=1"), "{}", php.stderr());
    let line = php
        .stderr()
        .lines()
        .find(|l| l.contains("/logged?x=1"))
        .unwrap()
        .to_string();
    let entry: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(entry["target"], "rr::access");
    assert_eq!(entry["fields"]["status"], 201);
    assert_eq!(entry["fields"]["method"], "GET");
    assert_eq!(
        entry["fields"]["remote"]
            .as_str()
            .unwrap()
            .split(':')
            .next(),
        Some("127.0.0.1")
    );
}

const SOON: Duration = Duration::from_secs(20);

fn get(url: &str) -> (u16, Value) {
    let resp = client().get(url).send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn metrics_text(php: &Php) -> String {
    client()
        .get(side_url(php, "metrics", "/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

/// Polls the status address's `path` until `done` holds for its answer; fails with `what`.
fn wait_status(php: &Php, path: &str, what: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
    let url = side_url(php, "status", path);
    let deadline = Instant::now() + SOON;
    loop {
        let (status, body) = get(&url);
        if done(status, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {status} {body}\n{}",
            php.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_single_process_serves_health_readiness_and_prometheus_metrics() {
    let php = Php::start_with("pool.php", pool_options(json!({"http.queue_size": 7})));
    let (status, health) = get(&side_url(&php, "status", "/health"));
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["mode"], "single");
    assert_eq!(health["php"], "waiting");
    assert_eq!(health["queue"], 0);
    let (status, ready) = get(&side_url(&php, "status", "/ready"));
    assert_eq!(status, 200, "{ready}");
    // The pool's own routes are not there: nothing to list or reload.
    assert_eq!(get(&side_url(&php, "status", "/workers")).0, 404);
    let reload = client()
        .post(side_url(&php, "status", "/reload"))
        .send()
        .unwrap();
    assert_eq!(reload.status(), 404);

    for _ in 0..5 {
        assert_eq!(client().get(php.url("/")).send().unwrap().status(), 200);
    }
    assert_eq!(
        client().get(php.url("/error")).send().unwrap().status(),
        500
    );
    wait_metric(
        &php,
        "rr_http_requests_total{status=\"200\"}",
        SOON,
        "the answers are counted by status",
        |n| n >= 5,
    );
    assert_eq!(metric(&php, "rr_http_requests_total{status=\"500\"}"), 1);
    assert!(metric(&php, "rr_http_request_duration_seconds_count") >= 6);
    assert_eq!(metric(&php, "rr_http_queue_size"), 7);
    assert_eq!(metric(&php, "rr_http_queue_depth"), 0);
    assert!(metric(&php, "rr_http_connections_max") > 0);
    assert!(metric(&php, "process_resident_memory_bytes") > 1 << 20);
    assert!(metric(&php, "process_open_fds") > 3);
    let text = metrics_text(&php);
    for family in [
        "# TYPE rr_http_requests_in_flight gauge",
        "# TYPE rr_http_connections gauge",
        "# TYPE process_cpu_seconds_total counter",
        "# TYPE process_start_time_seconds gauge",
        "# TYPE rr_uptime_seconds gauge",
        "# TYPE rr_stream_bytes_total counter",
    ] {
        assert!(text.contains(family), "{family} in\n{text}");
    }
    assert!(
        text.contains(&format!(
            "rr_info{{version=\"{}\",mode=\"single\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(!text.contains("rr_pool_"), "no pool families: {text}");
}

#[test]
fn single_process_health_follows_php_a_stuck_request_makes_it_unhealthy() {
    let php = Php::start_with(
        "pool.php",
        pool_options(json!({"http.request_timeout": "1s"})),
    );
    let url = php.url("/slow?ms=3000");
    let slow = std::thread::spawn(move || client().get(url).send().unwrap().status().as_u16());
    wait_metric(
        &php,
        "rr_http_requests_in_flight",
        SOON,
        "the slow request is in flight",
        |n| n == 1,
    );
    // Another request waits in the queue behind it.
    let url = php.url("/");
    let queued = std::thread::spawn(move || client().get(url).send().unwrap().status().as_u16());
    wait_metric(
        &php,
        "rr_http_queue_depth",
        SOON,
        "one request queued",
        |n| n == 1,
    );
    // Past http.request_timeout the client has its 504 and PHP still runs: stuck.
    let health = wait_status(&php, "/health", "PHP stuck", |status, body| {
        status == 503 && body["php"] == "stuck"
    });
    assert!(health["busy_seconds"].as_f64().unwrap() > 1.0, "{health}");
    assert_eq!(get(&side_url(&php, "status", "/ready")).0, 503);
    assert_eq!(slow.join().unwrap(), 504);
    // PHP comes back: healthy again, and the queued request (whose client also gave up at
    // request_timeout) is skipped.
    wait_status(&php, "/health", "PHP back", |status, body| {
        status == 200 && body["php"] == "waiting"
    });
    assert_eq!(queued.join().unwrap(), 504);
    wait_metric(&php, "rr_http_requests_in_flight", SOON, "none left", |n| {
        n == 0
    });
    assert_eq!(client().get(php.url("/")).send().unwrap().status(), 200);
}

#[test]
fn the_single_process_is_not_ready_while_it_drains_for_shutdown() {
    let mut php = Php::start_with("pool.php", pool_options(json!({})));
    // Not /slow: the signal would cut its usleep() short.
    let url = php.url("/spin?ms=3000");
    let slow = std::thread::spawn(move || client().get(url).send().unwrap().status().as_u16());
    wait_status(&php, "/health", "PHP busy", |_, body| body["php"] == "busy");
    php.signal(libc::SIGTERM);
    let ready = wait_status(&php, "/ready", "not ready while draining", |status, _| {
        status == 503
    });
    // Draining is not a failure: PHP is still healthy.
    assert_eq!(ready["php"], "busy", "{ready}");
    assert_eq!(slow.join().unwrap(), 200);
    assert!(php.wait_exit(SOON).success(), "{}", php.stderr());
}

#[test]
fn the_single_process_status_addresses_have_the_main_listeners_limits() {
    let php = Php::start_with(
        "pool.php",
        pool_options(json!({"http.read_header_timeout": "1s", "http.max_header_size": 8192})),
    );
    for what in ["status", "metrics"] {
        let url = side_url(&php, what, "/");
        let addr = url.trim_start_matches("http://").trim_end_matches('/');
        let mut big = std::net::TcpStream::connect(addr).unwrap();
        big.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let header = "v".repeat(20_000);
        big.write_all(
            format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {header}\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut answer = String::new();
        let _ = big.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 431"), "{what}: {answer}");
        let mut silent = std::net::TcpStream::connect(addr).unwrap();
        // The main listener's head timeout: closed by the server, not by this read's timeout.
        silent
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut buf = [0u8; 64];
        let n = silent.read(&mut buf).unwrap();
        assert_eq!(n, 0, "{what}: the server closed it");
    }
}

/// A load balancer's `HEAD /health` got a 404 (so did a POST to it), and the 404's body had
/// no `code`, unlike every other error rr answers.
#[test]
fn the_status_address_answers_head_and_wrong_methods_as_http_says() {
    let php = Php::start_with("pool.php", pool_options(json!({})));
    for path in ["/health", "/ready"] {
        let head = client()
            .head(side_url(&php, "status", path))
            .send()
            .unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(head.text().unwrap(), "", "HEAD {path} has no body");
        let post = client()
            .post(side_url(&php, "status", path))
            .send()
            .unwrap();
        assert_eq!(post.status(), 405, "POST {path}");
        assert_eq!(post.headers()["allow"], "GET, HEAD");
        let body: Value = post.json().unwrap();
        assert_eq!(body["code"], "method_not_allowed", "{body}");
    }
    let (status, body) = get(&side_url(&php, "status", "/nope"));
    assert_eq!(
        (status, &body["code"]),
        (404, &json!("not_found")),
        "{body}"
    );
    let head = client()
        .head(side_url(&php, "metrics", "/metrics"))
        .send()
        .unwrap();
    assert_eq!(head.status(), 200);
    let post = client()
        .post(side_url(&php, "metrics", "/metrics"))
        .send()
        .unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
}
