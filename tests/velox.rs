//! Velox builds offloaded from a real php worker to Rust, against a mock Velox server that
//! speaks the real protocol (tests/velox_mock).
mod common;
mod velox_mock;
use common::{client, Options, Php};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use velox_mock::{artifact, Behaviour, Generation, Mock};

fn worker(mock: &Mock, extra: serde_json::Value) -> Php {
    let mut options = serde_json::json!({
        "velox.server_url": mock.url(),
        "velox.artifacts_dir": mock.artifacts_dir(),
        "velox.retry.initial_delay": "10ms",
        "velox.retry.max_delay": "20ms",
        "velox.cache.enabled": false,
    });
    options
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_OPTIONS", options.to_string()));
    Php::start_with("velox.php", opts)
}

fn header(response: &reqwest::blocking::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn velox_build_streams_the_artifact_while_the_worker_serves_others() {
    let build_time = Duration::from_millis(1500);
    let mock = Mock::start(Behaviour::slow(300_000, build_time));
    let php = worker(&mock, serde_json::json!({}));
    let url = php.url("/build");
    let started = Instant::now();
    let build = std::thread::spawn(move || client().get(url).send().unwrap());
    while mock.call_count() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "Velox was never called"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The build is in progress upstream; the one PHP worker is free for other requests.
    let plain = client().get(php.url("/plain")).send().unwrap();
    assert_eq!(plain.text().unwrap(), "plain");
    assert!(
        started.elapsed() < build_time,
        "a plain request waited for the build ({:?})",
        started.elapsed()
    );

    let response = build.join().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "application/octet-stream"
    );
    assert_eq!(header(&response, "content-length"), "300000");
    assert!(header(&response, "content-disposition").starts_with("attachment; filename=\"rr-"));
    assert_eq!(header(&response, "x-built-by"), "php");
    assert_eq!(header(&response, "x-velox-cache"), "MISS");
    assert!(response.headers().get("x-velox-build").is_none());
    assert!(response.bytes().unwrap().as_ref() == artifact(1, 300_000).as_slice());

    let calls = mock.calls();
    assert_eq!(calls.len(), 1);
    let sent = &calls[0].body;
    assert_eq!(sent["rr_version"], "v2025.1.2");
    let id = sent["request_id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "a generated UUID: {id}");
    assert_eq!(&id[14..15], "5", "derived from the spec: {id}");
}

#[test]
fn respond_with_x_velox_build_plain_or_gzip_is_a_build_with_php_headers_forwarded() {
    // The tag builds Windows targets; master refuses them.
    let mock = Mock::start_as(Generation::Tag, Behaviour::success(1000));
    let php = worker(&mock, serde_json::json!({}));
    let response = client().get(php.url("/header?os=windows")).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-built-by"), "respond");
    for hop in ["keep-alive", "upgrade"] {
        assert!(response.headers().get(hop).is_none(), "{hop} went out");
    }
    assert_eq!(
        header(&response, "content-type"),
        "application/octet-stream"
    );
    assert_eq!(
        header(&response, "content-disposition"),
        "attachment; filename=\"rr-windows-amd64.exe\""
    );
    assert_eq!(response.bytes().unwrap().len(), 1000);

    let response = client().get(php.url("/gzip")).send().unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-encoding").is_none());
    assert_eq!(response.bytes().unwrap().len(), 1000);
    let calls = mock.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].body["plugins"][0]["tag"], "v5.2.7");
}

#[test]
fn an_invalid_build_request_is_400_without_calling_velox() {
    let mock = Mock::start(Behaviour::success(10));
    let php = worker(&mock, serde_json::json!({}));
    let response = client().get(php.url("/invalid")).send().unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().unwrap();
    assert_eq!(body["code"], "invalid_request");
    assert!(
        body["error"].as_str().unwrap().contains("plugins"),
        "{body}"
    );
    assert!(body["request_id"].is_string(), "{body}");
    assert_eq!(mock.call_count(), 0);
}

/// Against the newest tag (which rebuilt for every fresh request id): the download, a HEAD
/// and a resumed download with `If-Range` are one build, one Velox call.
#[test]
fn a_range_request_resumes_the_download_of_the_same_build() {
    let mock = Mock::start_as(Generation::Tag, Behaviour::success(10_000));
    let php = worker(&mock, serde_json::json!({}));
    let full = client().get(php.url("/build")).send().unwrap();
    assert_eq!(full.status(), 200);
    let etag = header(&full, "etag");
    assert!(etag.starts_with('"'), "a strong ETag: {etag}");
    assert_eq!(
        full.bytes().unwrap().as_ref(),
        artifact(1, 10_000).as_slice()
    );
    let head = client().head(php.url("/build")).send().unwrap();
    assert_eq!(header(&head, "etag"), etag);
    let response = client()
        .get(php.url("/build"))
        .header("Range", "bytes=9000-")
        .header("If-Range", &etag)
        .send()
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(header(&response, "content-range"), "bytes 9000-9999/10000");
    assert_eq!(
        response.bytes().unwrap().as_ref(),
        &artifact(1, 10_000)[9000..]
    );
    assert_eq!(mock.call_count(), 1);
    assert_eq!(mock.builds().len(), 1);
}

#[test]
fn a_client_that_hangs_up_aborts_the_velox_call_without_retry() {
    let mock = Mock::start(Behaviour::Hang);
    let php = worker(&mock, serde_json::json!({}));
    let mut conn = TcpStream::connect(php.addr).unwrap();
    conn.write_all(b"GET /build HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    while mock.call_count() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "Velox was never called"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(conn);
    while !mock.calls()[0].aborted {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the Velox call outlived its client"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200)); // longer than the retry delays
    assert_eq!(mock.call_count(), 1, "a canceled build must not be retried");
    // The worker is still fine.
    assert_eq!(
        client().get(php.url("/")).send().unwrap().text().unwrap(),
        "plain"
    );
}

#[test]
fn misuse_is_an_exception_naming_the_problem() {
    let mock = Mock::start(Behaviour::success(10));
    let php = worker(&mock, serde_json::json!({}));
    let response = client().get(php.url("/not-a-spec")).send().unwrap();
    assert_eq!(response.status(), 409);
    let text = response.text().unwrap();
    assert!(
        text.starts_with("TypeError: RR\\velox_build(): $buildRequest must be an array or a JSON string, int given"),
        "{text}"
    );

    // After velox_build() the request is answered: respond() throws, the build still arrives.
    let response = client().get(php.url("/twice")).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().unwrap().len(), 10);
    assert!(
        php.wait_for_log("RR\\Exception: RR\\Worker::respond(): no request is pending"),
        "{}",
        php.stderr()
    );
}

#[test]
fn without_velox_configured_a_build_is_an_exception() {
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_OPTIONS", "{}".into()));
    let php = Php::start_with("velox.php", opts);
    let response = client().get(php.url("/build")).send().unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.text().unwrap(),
        "RR\\Exception: RR\\velox_build(): Velox builds are off: set velox.server_url in the configuration"
    );
    let mut conn = TcpStream::connect(php.addr).unwrap();
    conn.write_all(b"GET /header HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 409"), "{answer}");
    assert!(answer.contains("Velox builds are off"), "{answer}");
}

#[test]
fn in_pool_mode_the_master_runs_the_build_and_the_one_worker_is_free() {
    let build_time = Duration::from_millis(1500);
    let mock = Mock::start(Behaviour::slow(100_000, build_time));
    let php = worker(
        &mock,
        serde_json::json!({"http.pool.num_workers": 1, "metrics.address": "127.0.0.1:0"}),
    );
    let url = php.url("/build");
    let started = Instant::now();
    let build = std::thread::spawn(move || client().get(url).send().unwrap());
    while mock.call_count() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "Velox was never called"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The only worker handed the build over and serves the next request at once.
    assert_eq!(
        client()
            .get(php.url("/plain"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "plain"
    );
    assert!(mock.call_count() == 1 && !build.is_finished());
    let response = build.join().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-built-by"), "php");
    assert!(response.bytes().unwrap().as_ref() == artifact(1, 100_000).as_slice());

    let log = php.stderr();
    let addr = log.split("rr metrics on http://").nth(1).unwrap();
    let addr: String = addr.chars().take_while(|c| !c.is_whitespace()).collect();
    let metrics = client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("rr_velox_builds_total{outcome=\"success\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("rr_velox_build_duration_seconds_count 1"));
}

/// A compile error costs a full build: answered at once with a stable code and a short
/// message; Velox's text, with the build server's paths and go output, is in rr's log only.
#[test]
fn a_failed_build_gets_a_short_answer_and_the_log_the_whole_error() {
    let go_output = format!(
        "building plugins: compile: go failed: exit status 1\n{}",
        "/tmp/velox-build/7d2e/plugin.go:12:2: undefined: http.Plugin\n".repeat(100)
    );
    let mock = Mock::start(Behaviour::FailBuild {
        message: go_output,
        time: Duration::from_secs(120),
    });
    mock.set_scale(Duration::from_millis(1));
    let php = worker(&mock, serde_json::json!({}));
    let response = client().get(php.url("/build")).send().unwrap();
    assert_eq!(response.status(), 422);
    let text = response.text().unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["code"], "build_failed");
    assert_eq!(body["error"], "the build failed");
    assert!(!text.contains("/tmp/velox-build"), "{text}");
    assert_eq!(mock.call_count(), 1, "not retried");
    assert!(
        php.wait_for_log("/tmp/velox-build/7d2e/plugin.go:12:2"),
        "{}",
        php.stderr()
    );
}

/// Every regular file below `dir`.
fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            out.extend(files_below(&path));
        } else if kind.is_file() {
            out.push(path);
        }
    }
    out
}

/// An artifact swapped for a link to a file outside `artifacts_dir` after its build (by anyone
/// who can write there) is never followed: every open checks the path again and opens it as it
/// was checked (beneath the directory, no link), so the file outside is never sent, whether the
/// answer comes from rr's record of the build or from a new build of the same spec. The old
/// build opened the recorded path by name and sent it.
#[test]
fn an_artifact_swapped_for_a_link_out_of_the_artifacts_dir_is_never_sent() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mock = Mock::start(Behaviour::success(1000));
    let php = worker(&mock, serde_json::json!({}));
    let first = client().get(php.url("/build")).send().unwrap();
    assert_eq!(first.status(), 200);
    let built = first.bytes().unwrap();
    assert_eq!(built.as_ref(), artifact(1, 1000).as_slice());
    let files = files_below(mock.artifacts_dir());
    assert_eq!(files.len(), 1, "{files:?}");
    let path = files[0].clone();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    std::fs::write(&secret, b"not yours ".repeat(100)).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let swapper = std::thread::spawn({
        let (stop, path, secret, built) =
            (stop.clone(), path.clone(), secret.clone(), built.clone());
        move || {
            let (link, real) = (path.with_extension("link"), path.with_extension("real"));
            while !stop.load(Ordering::Relaxed) {
                std::os::unix::fs::symlink(&secret, &link).unwrap();
                std::fs::rename(&link, &path).unwrap();
                std::fs::write(&real, &built).unwrap();
                std::fs::rename(&real, &path).unwrap();
            }
        }
    });
    let (mut sent, mut refused) = (0, 0);
    for _ in 0..1500 {
        let response = client().get(php.url("/build")).send().unwrap();
        let status = response.status();
        let body = response.bytes().unwrap();
        assert!(
            !body.windows(9).any(|w| w == b"not yours"),
            "the file outside the artifacts dir was sent ({status})"
        );
        if status == 200 {
            assert_eq!(body, built);
            sent += 1;
        } else {
            refused += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    eprintln!("{sent} answers with the artifact, {refused} refused while it was a link");
    // The artifact back in place: served again.
    std::fs::write(&path, &built).unwrap();
    let again = client().get(php.url("/build")).send().unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.bytes().unwrap(), built);
}
