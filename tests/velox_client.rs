//! The Velox offload core against a mock Velox server of either generation, without PHP:
//! build identity (request ids, record, ETag), status mapping, retries and polling by error
//! class, long builds, validation against both generations, path checks, streaming,
//! single-flight, cache and client disconnects.
mod velox_mock;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use rr::body::Body;
use rr::config::{RetryConfig, VeloxConfig};
use rr::velox::{BuildOrder, Outcome, Velox};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use velox_mock::{artifact, Behaviour, BuildState, Generation, Mock};

const ORDER: &str = r#"{"rr_version":"v2025.1.2","target_platform":{"os":"linux","arch":"amd64"},
  "plugins":[{"module_name":"github.com/roadrunner-server/http/v5","tag":"v5.2.7"}],"note":"kept"}"#;

fn config(mock: &Mock) -> VeloxConfig {
    let mut config = VeloxConfig::new(mock.url());
    config.build_timeout = Duration::from_secs(60);
    config.retry = RetryConfig {
        max_attempts: 3,
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        backoff_multiplier: 2.0,
    };
    config.artifacts_dir = vec![mock.artifacts_dir().to_path_buf()];
    config
}

fn velox(config: VeloxConfig) -> Velox {
    Velox::new(config).unwrap()
}

fn order(json: &str) -> BuildOrder {
    BuildOrder {
        body: Bytes::from(json.to_string()),
        ..BuildOrder::default()
    }
}

async fn get(velox: &Velox, order: BuildOrder) -> Response<Body> {
    velox.respond(order, &Method::GET, &HeaderMap::new()).await
}

async fn body(response: Response<Body>) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

/// The status and the `code` of a JSON error answer (checking its shape on the way).
async fn error(response: Response<Body>) -> (u16, String) {
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/json");
    let json: Value = serde_json::from_slice(&body(response).await).unwrap();
    assert!(
        json["error"].is_string() && json["request_id"].is_string(),
        "{json}"
    );
    (status, json["code"].as_str().unwrap().to_string())
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn success_is_streamed_byte_exact_with_headers() {
    let mock = Mock::start(Behaviour::success(300_000));
    let velox = velox(config(&mock));
    let mut order = order(ORDER);
    for (name, value) in [
        ("x-custom", "kept"),
        ("x-velox-build", "1"),
        ("content-type", "application/json"),
        ("content-encoding", "identity"),
        ("content-length", "12"),
    ] {
        order.headers.insert(name, HeaderValue::from_static(value));
    }
    let response = get(&velox, order).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["content-length"], "300000");
    assert_eq!(
        headers["content-disposition"],
        r#"attachment; filename="rr-linux-amd64""#
    );
    assert_eq!(headers["x-velox-cache"], "MISS");
    assert_eq!(headers["x-custom"], "kept");
    assert!(headers.get("x-velox-build").is_none() && headers.get("content-encoding").is_none());
    assert!(body(response).await == artifact(1, 300_000), "bytes differ");

    let calls = mock.calls();
    assert_eq!(calls.len(), 1);
    let sent = &calls[0].body;
    assert_eq!(sent["note"], "kept", "unknown fields are forwarded");
    let id = uuid::Uuid::parse_str(sent["request_id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 5, "derived from the spec");
    assert_eq!(velox.metrics().outcome(Outcome::Success), 1);
}

#[tokio::test]
async fn gzip_order_windows_target_and_legacy_reply() {
    let mock = Mock::start(Behaviour::LegacySuccess { size: 10 });
    let velox = velox(config(&mock));
    let json = ORDER.replace("linux", "windows");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, json.as_bytes()).unwrap();
    let order = BuildOrder {
        body: gz.finish().unwrap().into(),
        gzip: true,
        headers: HeaderMap::new(),
    };
    let response = get(&velox, order).await;
    assert_eq!(response.status(), StatusCode::OK);
    let disposition = &response.headers()["content-disposition"];
    assert_eq!(
        disposition,
        r#"attachment; filename="rr-windows-amd64.exe""#
    );
    assert_eq!(body(response).await, artifact(0, 10));
}

#[tokio::test]
async fn invalid_orders_are_400_without_calling_velox() {
    let mock = Mock::start(Behaviour::success(1));
    let velox = velox(config(&mock));
    let id = "b66d5617-64dd-419b-a68b-b002938320ab";
    for json in [
        "{not json".to_string(),
        r#"{"plugins":[{"module_name":"m","tag":"t"}]}"#.to_string(),
        r#"{"rr_version":"latest","plugins":[{"module_name":"m","tag":"t"}]}"#.to_string(),
        r#"{"rr_version":"v1.2.3","plugins":[]}"#.to_string(),
        format!(r#"{{"request_id":"{id}","rr_version":"v1.2.3","plugins":[{{"tag":"t"}}]}}"#),
    ] {
        let response = get(&velox, order(&json)).await;
        let (status, code) = error(response).await;
        assert_eq!((status, code.as_str()), (400, "invalid_request"), "{json}");
    }
    let given = format!(r#"{{"request_id":"{id}","rr_version":"v1"}}"#);
    let json: Value =
        serde_json::from_slice(&body(get(&velox, order(&given)).await).await).unwrap();
    assert_eq!(json["request_id"], id, "PHP's request id is echoed");
    assert_eq!(mock.call_count(), 0);
    assert_eq!(velox.metrics().outcome(Outcome::Invalid), 6);
}

/// docs/velox.md's retry table against the mock: the client's status and code, and how many
/// calls each class makes.
#[tokio::test]
async fn connect_errors_are_retried_by_class_with_stable_codes() {
    let mock = Mock::start(Behaviour::success(1));
    let mut config = config(&mock);
    config.retry.max_attempts = 2;
    config.retry.initial_delay = Duration::from_millis(5);
    let cases = [
        ("invalid_argument", 400, "invalid_request", 1),
        ("not_found", 502, "velox_error", 1),
        ("permission_denied", 502, "velox_error", 1),
        ("unauthenticated", 502, "velox_error", 1),
        ("unimplemented", 502, "velox_error", 1),
        ("internal", 502, "velox_error", 1),
        ("unknown", 502, "velox_error", 1),
        ("resource_exhausted", 503, "velox_unavailable", 2),
        ("unavailable", 503, "velox_unavailable", 2),
        ("canceled", 502, "velox_error", 2),
        ("deadline_exceeded", 502, "velox_error", 2),
    ];
    for (code, status, client_code, calls) in cases {
        mock.set_default(Behaviour::Connect(code));
        let before = mock.call_count();
        let velox = velox(config.clone());
        let (got_status, got) = error(get(&velox, order(ORDER)).await).await;
        assert_eq!((got_status, got.as_str()), (status, client_code), "{code}");
        assert_eq!(mock.call_count() - before, calls, "{code}");
    }
    mock.set_default(Behaviour::LegacyFailure);
    let (status, code) = error(get(&velox(config), order(ORDER)).await).await;
    assert_eq!((status, code.as_str()), (422, "build_failed"));
}

#[tokio::test]
async fn retries_follow_the_backoff_schedule_then_give_up() {
    let mock = Mock::start(Behaviour::Connect("unavailable"));
    let velox = velox(config(&mock));
    let (status, code) = error(get(&velox, order(ORDER)).await).await;
    assert_eq!((status, code.as_str()), (503, "velox_unavailable"));
    let calls = mock.calls();
    assert_eq!(calls.len(), 3, "max_attempts in total");
    assert!(calls[1].at - calls[0].at >= Duration::from_millis(50));
    assert!(
        calls[2].at - calls[1].at >= Duration::from_millis(100),
        "doubled"
    );
    let metrics = velox.metrics();
    assert_eq!((metrics.upstream_calls, metrics.retries), (3, 2));
}

/// Deterministic failures cost a full build each: answered after one call, with their own
/// code and a short message; Velox's text (paths, go output) only in the log.
#[tokio::test]
async fn deterministic_failures_are_answered_at_once_with_their_own_code() {
    let go_output = format!(
        "building plugins: compile: go failed: exit status 1\n{}",
        "/tmp/velox-build/5f1c9a3e/plugins.go:12:2: undefined: http.Plugin\n".repeat(120)
    );
    let cases = [
        (go_output.as_str(), "build_failed"),
        (
            "verifyResolvedVersions: plugin github.com/roadrunner-server/http/v5 resolved to \
             v5.3.0 (you requested v5.2.7); use a [[replaces]] entry",
            "version_conflict",
        ),
        (
            "downloading template: unexpected status code 404 from \
             https://github.com/roadrunner-server/roadrunner/archive/refs/tags/v2099.1.1.zip",
            "unknown_version",
        ),
    ];
    for generation in [Generation::Tag, Generation::Master] {
        for (message, code) in cases {
            let mock = Mock::start_as(
                generation,
                Behaviour::FailBuild {
                    message: message.to_string(),
                    time: Duration::from_secs(287),
                },
            );
            mock.set_scale(Duration::from_micros(100));
            let velox = velox(config(&mock));
            let response = get(&velox, order(ORDER)).await;
            assert_eq!(response.status(), 422, "{generation:?} {code}");
            let json: Value = serde_json::from_slice(&body(response).await).unwrap();
            assert_eq!(json["code"], code);
            let text = json["error"].as_str().unwrap();
            assert!(
                text.len() < 100 && !text.contains("/tmp/") && !text.contains("http"),
                "{text}"
            );
            assert_eq!(mock.call_count(), 1, "{generation:?} {code}: not retried");
            assert_eq!(velox.metrics().outcome(Outcome::BuildFailed), 1);
        }
    }
}

#[tokio::test]
async fn windows_is_refused_by_master_and_built_by_the_tag() {
    let windows = ORDER.replace("linux", "windows");
    let master = Mock::start_as(Generation::Master, Behaviour::success(8));
    let (status, code) = error(get(&velox(config(&master)), order(&windows)).await).await;
    assert_eq!((status, code.as_str()), (422, "unsupported_target"));
    assert_eq!(master.call_count(), 1);
    let tag = Mock::start_as(Generation::Tag, Behaviour::success(8));
    let response = get(&velox(config(&tag)), order(&windows)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body(response).await, artifact(1, 8));
}

#[tokio::test]
async fn transient_failures_are_retried_then_the_build_arrives() {
    let mock = Mock::start(Behaviour::success(7));
    let no_host = "downloading template: Get \"https://api.github.com/repos/roadrunner-server/\
                   roadrunner/zipball/v2025.1.2\": dial tcp: lookup api.github.com: no such host";
    mock.then(Behaviour::Close).then(Behaviour::Fail {
        code: "internal",
        message: no_host.into(),
    });
    let response = get(&velox(config(&mock)), order(ORDER)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.call_count(), 3);
}

/// A cold build takes 287 s (measured); rr's old 180 s per-call timeout cut it and master
/// restarted it at every retry. Now only connecting is bounded: a build much longer than
/// `connect_timeout` ends in one uncut call on both generations.
#[tokio::test]
async fn a_build_of_several_minutes_finishes_in_one_call() {
    for generation in [Generation::Tag, Generation::Master] {
        let mock = Mock::start_as(generation, Behaviour::slow(64, Duration::from_secs(287)));
        mock.set_scale(Duration::from_millis(4)); // 287 s of build: 1.15 s
        let mut config = config(&mock);
        config.connect_timeout = Duration::from_millis(250);
        let response = get(&velox(config), order(ORDER)).await;
        assert_eq!(response.status(), StatusCode::OK, "{generation:?}");
        assert_eq!(body(response).await, artifact(1, 64));
        let calls = mock.calls();
        assert_eq!(calls.len(), 1, "{generation:?}");
        assert!(!calls[0].aborted);
        assert_eq!(mock.builds().len(), 1);
        assert_eq!(mock.builds()[0].state, BuildState::Done);
    }
}

/// Another rr (a second process, or one restarted) asks for a spec whose build is in
/// progress: Velox answers 409 until it is done, and rr polls well past `max_attempts`, then
/// gets the cached build. On the tag this needs the same request id for the same spec.
#[tokio::test]
async fn a_409_is_polled_until_the_build_in_progress_is_done() {
    for generation in [Generation::Tag, Generation::Master] {
        let mock = Mock::start_as(generation, Behaviour::success(512));
        mock.hold();
        let mut config = config(&mock);
        config.retry.initial_delay = Duration::from_millis(5);
        config.retry.max_delay = Duration::from_millis(10);
        let (first, second) = (velox(config.clone()), velox(config));
        let one = tokio::spawn(async move { body(get(&first, order(ORDER)).await).await });
        eventually("the first build runs", || mock.builds().len() == 1).await;
        let two = tokio::spawn(async move {
            let response = get(&second, order(ORDER)).await;
            (response.status(), body(response).await)
        });
        eventually("several polls answered 409", || mock.answered(409) >= 6).await;
        mock.release();
        let (status, bytes) = two.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{generation:?}");
        assert_eq!(bytes, artifact(1, 512));
        assert_eq!(one.await.unwrap(), artifact(1, 512));
        assert_eq!(mock.builds().len(), 1, "{generation:?}: one build for both");
    }
}

#[tokio::test]
async fn polling_ends_at_build_timeout() {
    let mock = Mock::start(Behaviour::Connect("already_exists"));
    let mut config = config(&mock);
    config.retry.initial_delay = Duration::from_millis(5);
    config.retry.max_delay = Duration::from_millis(10);
    config.build_timeout = Duration::from_millis(1500);
    let (status, code) = error(get(&velox(config), order(ORDER)).await).await;
    assert_eq!((status, code.as_str()), (504, "build_timeout"));
    assert!(mock.call_count() > 3, "polled past max_attempts");
}

#[tokio::test]
async fn build_timeout_is_504_and_drops_the_call() {
    let mock = Mock::start(Behaviour::Hang);
    let mut config = config(&mock);
    config.build_timeout = Duration::from_millis(300);
    let velox = velox(config);
    let (status, code) = error(get(&velox, order(ORDER)).await).await;
    assert_eq!((status, code.as_str()), (504, "build_timeout"));
    eventually("the mock sees the hang-up", || mock.calls()[0].aborted).await;
    assert_eq!(velox.metrics().outcome(Outcome::Timeout), 1);
}

#[tokio::test]
async fn connection_refused_is_502_after_max_attempts() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mock = Mock::start(Behaviour::Hang);
    let mut config = config(&mock);
    config.server_url = format!("http://{port}");
    let velox = velox(config);
    let (status, code) = error(get(&velox, order(ORDER)).await).await;
    assert_eq!((status, code.as_str()), (502, "velox_unreachable"));
    assert_eq!(velox.metrics().upstream_calls, 3);
}

#[tokio::test]
async fn malformed_replies_are_502_without_retry() {
    let mock = Mock::start(Behaviour::success(1));
    let velox = velox(config(&mock));
    for body in ["not json", r#"{"path":"#, "[]"] {
        mock.then(Behaviour::Raw {
            status: 200,
            content_type: "application/json",
            body: body.into(),
        });
        let before = mock.call_count();
        let (status, code) = error(get(&velox, order(ORDER)).await).await;
        assert_eq!((status, code.as_str()), (502, "velox_bad_reply"), "{body}");
        assert_eq!(mock.call_count() - before, 1);
    }
}

#[tokio::test]
async fn unusable_paths_are_500() {
    let mock = Mock::start(Behaviour::success(1));
    let velox = velox(config(&mock));
    let root = mock.artifacts_dir();
    let outside = tempfile::NamedTempFile::new_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    std::fs::write(root.join("rr"), b"x").unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("escape")).unwrap();
    let cases = [
        (String::new(), "no_artifact"),
        (outside.path().display().to_string(), "artifact_unavailable"),
        (
            root.join("sub/../rr").display().to_string(),
            "artifact_unavailable",
        ),
        ("rr".to_string(), "artifact_unavailable"),
        (
            root.join("escape").display().to_string(),
            "artifact_unavailable",
        ),
        (
            root.join("sub").display().to_string(),
            "artifact_unavailable",
        ),
        (
            root.join("missing").display().to_string(),
            "artifact_unavailable",
        ),
        ("/dev/null".to_string(), "artifact_unavailable"),
    ];
    for (path, expected) in cases {
        mock.then(Behaviour::Path(path.clone()));
        let (status, code) = error(get(&velox, order(ORDER)).await).await;
        assert_eq!((status, code.as_str()), (500, expected), "{path:?}");
    }
    let metrics = velox.metrics();
    assert_eq!(metrics.outcome(Outcome::NoFile), 1);
    assert_eq!(metrics.outcome(Outcome::StreamError), 7);
}

#[tokio::test]
async fn one_gigabyte_sparse_artifact_head_and_range() {
    const GB: u64 = 1 << 30;
    let mock = Mock::start(Behaviour::Success {
        size: GB,
        sparse: true,
        time: Duration::ZERO,
    });
    let velox = velox(config(&mock));
    let head = velox
        .respond(order(ORDER), &Method::HEAD, &HeaderMap::new())
        .await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], GB.to_string());
    assert_eq!(head.headers()["accept-ranges"], "bytes");
    assert!(body(head).await.is_empty());

    let mut range = HeaderMap::new();
    range.insert("range", HeaderValue::from_static("bytes=1073741000-"));
    let part = velox.respond(order(ORDER), &Method::GET, &range).await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    let content_range = format!("bytes 1073741000-{}/{GB}", GB - 1);
    assert_eq!(part.headers()["content-range"], content_range.as_str());
    assert_eq!(part.headers()["content-length"], "824");
    assert_eq!(body(part).await, vec![0u8; 824]);
}

#[tokio::test]
async fn ten_concurrent_identical_orders_make_one_call() {
    let mock = Mock::start(Behaviour::slow(4096, Duration::from_millis(300)));
    let velox = velox(config(&mock));
    // Different request ids (generated), same spec; plugin order must not matter either.
    let responses =
        futures_util::future::join_all((0..10).map(|_| get(&velox, order(ORDER)))).await;
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await, artifact(1, 4096));
    }
    assert_eq!(mock.call_count(), 1);
}

#[tokio::test]
async fn cache_hit_skips_velox_and_force_rebuild_skips_the_cache() {
    let mock = Mock::start(Behaviour::success(2048));
    let cache_dir = tempfile::tempdir().unwrap();
    let mut config = config(&mock);
    config.cache.enabled = true;
    config.cache.dir = cache_dir.path().join("cache");
    let velox = velox(config.clone());
    let first = get(&velox, order(ORDER)).await;
    assert_eq!(first.headers()["x-velox-cache"], "MISS");
    assert_eq!(body(first).await, artifact(1, 2048));
    let second = get(&velox, order(ORDER)).await;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(second.headers()["x-velox-cache"], "HIT");
    assert_eq!(body(second).await, artifact(1, 2048));
    assert_eq!(mock.call_count(), 1);
    assert_eq!(velox.metrics().cache_hits, 1);

    let forced = ORDER.replacen('{', r#"{"force_rebuild":true,"#, 1);
    let third = get(&velox, order(&forced)).await;
    assert_eq!(third.headers()["x-velox-cache"], "MISS");
    assert_eq!(mock.call_count(), 2);

    // Velox deletes its copies; ours survive, and a restart finds them.
    std::fs::remove_dir_all(mock.artifacts_dir()).unwrap();
    let restarted = Velox::new(config).unwrap();
    let fourth = get(&restarted, order(ORDER)).await;
    assert_eq!(fourth.headers()["x-velox-cache"], "HIT");
    assert_eq!(
        body(fourth).await,
        artifact(2, 2048),
        "the forced build replaced it"
    );
    assert_eq!(mock.call_count(), 2);
}

#[tokio::test]
async fn force_rebuild_does_not_join_a_plain_flight() {
    let mock = Mock::start(Behaviour::slow(16, Duration::from_millis(200)));
    let velox = velox(config(&mock));
    let forced = ORDER.replacen('{', r#"{"force_rebuild":true,"#, 1);
    // The forced order is sent once Velox builds the plain one: sent first, it could be the
    // flight the plain one joins (a fresh build serves a plain order), which is not this case.
    let forced_second = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while mock.builds().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the plain build never started"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        get(&velox, order(&forced)).await
    };
    let (a, b) = tokio::join!(get(&velox, order(ORDER)), forced_second);
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    // Velox itself answers the second 409 while the first builds; rr waits, then rebuilds.
    assert_eq!(mock.builds().len(), 2);
}

/// A real hyper server around `Velox::respond`, as the connection task will run it.
async fn serve(velox: Arc<Velox>) -> std::net::SocketAddr {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let velox = velox.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let velox = velox.clone();
                    async move {
                        let (parts, _) = req.into_parts();
                        let response = velox.respond(order(ORDER), &parts.method, &parts.headers);
                        Ok::<_, std::convert::Infallible>(response.await)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn client_disconnect_aborts_the_velox_call_without_retry() {
    let mock = Mock::start(Behaviour::Hang);
    let velox = Arc::new(velox(config(&mock)));
    let addr = serve(velox.clone()).await;
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = b"GET /build HTTP/1.1\r\nhost: rr\r\n\r\n";
    tokio::io::AsyncWriteExt::write_all(&mut client, request)
        .await
        .unwrap();
    eventually("the build reaches velox", || mock.call_count() == 1).await;
    drop(client);
    eventually("the mock sees the hang-up", || mock.calls()[0].aborted).await;
    // Longer than any backoff: a retry would have shown up by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mock.call_count(), 1);
    assert_eq!(velox.metrics().outcome(Outcome::Canceled), 1);
}

#[tokio::test]
async fn shared_call_is_aborted_only_when_both_waiters_are_gone() {
    let mock = Mock::start(Behaviour::Hang);
    let velox = Arc::new(velox(config(&mock)));
    let spawn = || {
        let velox = velox.clone();
        tokio::spawn(async move { get(&velox, order(ORDER)).await })
    };
    let (one, two) = (spawn(), spawn());
    eventually("the build reaches velox", || mock.call_count() == 1).await;
    one.abort();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!mock.calls()[0].aborted, "one waiter is still there");
    two.abort();
    eventually("the mock sees the hang-up", || mock.calls()[0].aborted).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mock.call_count(), 1);
}

async fn send(
    velox: &Velox,
    json: &str,
    method: Method,
    headers: &[(&str, &str)],
) -> Response<Body> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    velox.respond(order(json), &method, &map).await
}

fn etag(response: &Response<Body>) -> String {
    response.headers()["etag"].to_str().unwrap().to_string()
}

/// On the newest tag, which keys its cache by request id too, every GET, HEAD and Range of
/// one spec gets the same build: rr records it, and asks Velox with the spec's own request
/// id, so even a restarted rr (record lost) gets Velox's cached build instead of a new one.
#[tokio::test]
async fn one_spec_is_one_artifact_for_get_head_and_range_on_the_tag() {
    let mock = Mock::start_as(Generation::Tag, Behaviour::success(10_000));
    let velox = velox(config(&mock));
    let full = send(&velox, ORDER, Method::GET, &[]).await;
    assert_eq!(full.status(), StatusCode::OK);
    let tag = etag(&full);
    assert!(tag.starts_with('"'), "a strong tag: {tag}");
    assert_eq!(body(full).await, artifact(1, 10_000));
    let head = send(&velox, ORDER, Method::HEAD, &[]).await;
    assert_eq!((head.status(), etag(&head)), (StatusCode::OK, tag.clone()));
    let part = send(
        &velox,
        ORDER,
        Method::GET,
        &[("range", "bytes=9000-"), ("if-range", &tag)],
    )
    .await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body(part).await, artifact(1, 10_000)[9000..]);
    // PHP sending its own, fresh request id each time changes nothing either.
    let with_id = ORDER.replacen(
        '{',
        r#"{"request_id":"b66d5617-64dd-419b-a68b-b002938320ab","#,
        1,
    );
    let same = send(&velox, &with_id, Method::GET, &[("range", "bytes=0-9")]).await;
    assert_eq!(body(same).await, artifact(1, 10_000)[..10]);
    assert_eq!(mock.call_count(), 1, "served from rr's record");

    let restarted = self::velox(config(&mock));
    let again = send(
        &restarted,
        ORDER,
        Method::GET,
        &[("range", "bytes=5000-"), ("if-range", &tag)],
    )
    .await;
    assert_eq!(
        again.status(),
        StatusCode::PARTIAL_CONTENT,
        "Velox's cached build, same file"
    );
    assert_eq!(body(again).await, artifact(1, 10_000)[5000..]);
    assert_eq!(mock.call_count(), 2);
    assert_eq!(mock.builds().len(), 1, "the tag built once");
    let ids: Vec<Value> = mock
        .calls()
        .iter()
        .map(|c| c.body["request_id"].clone())
        .collect();
    assert_eq!(ids[0], ids[1], "the spec's own request id, both times");
}

/// A download resumed with `If-Range` continues only the build it started with: once that
/// file is gone (Velox's cache expired) or replaced (a forced rebuild), the client gets the
/// new build whole, with its new tag.
#[tokio::test]
async fn a_resumed_download_never_mixes_builds() {
    for generation in [Generation::Tag, Generation::Master] {
        let mock = Mock::start_as(generation, Behaviour::success(4000));
        let velox = velox(config(&mock));
        let first = send(&velox, ORDER, Method::GET, &[]).await;
        let first_tag = etag(&first);
        assert_eq!(body(first).await, artifact(1, 4000));

        mock.expire_cache();
        let resumed = [("range", "bytes=1000-"), ("if-range", first_tag.as_str())];
        let second = send(&velox, ORDER, Method::GET, &resumed).await;
        assert_eq!(
            second.status(),
            StatusCode::OK,
            "{generation:?}: the whole new build"
        );
        let second_tag = etag(&second);
        assert_ne!(second_tag, first_tag);
        assert_eq!(body(second).await, artifact(2, 4000));

        let forced = ORDER.replacen('{', r#"{"force_rebuild":true,"#, 1);
        let third = send(&velox, &forced, Method::GET, &[]).await;
        assert_eq!(body(third).await, artifact(3, 4000));
        let resumed = [("range", "bytes=1000-"), ("if-range", second_tag.as_str())];
        let fourth = send(&velox, ORDER, Method::GET, &resumed).await;
        assert_eq!(fourth.status(), StatusCode::OK, "{generation:?}");
        let fourth_tag = etag(&fourth);
        assert_eq!(body(fourth).await, artifact(3, 4000));
        let resumed = [("range", "bytes=3990-"), ("if-range", fourth_tag.as_str())];
        let fifth = send(&velox, ORDER, Method::GET, &resumed).await;
        assert_eq!(fifth.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(body(fifth).await, artifact(3, 4000)[3990..]);
        let unchanged = send(
            &velox,
            ORDER,
            Method::GET,
            &[("if-none-match", &fourth_tag)],
        )
        .await;
        assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(mock.builds().len(), 3, "{generation:?}");
    }
}

/// The client hangs up mid-build. Master cancels the build with its caller; the tag builds
/// on and caches the result, which the next request gets without a new build.
#[tokio::test]
async fn master_cancels_a_build_whose_caller_left_and_the_tag_builds_on() {
    for generation in [Generation::Master, Generation::Tag] {
        let mock = Mock::start_as(generation, Behaviour::success(100));
        mock.hold();
        let velox = Arc::new(velox(config(&mock)));
        let addr = serve(velox.clone()).await;
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = b"GET /build HTTP/1.1\r\nhost: rr\r\n\r\n";
        tokio::io::AsyncWriteExt::write_all(&mut client, request)
            .await
            .unwrap();
        eventually("the build runs", || mock.builds().len() == 1).await;
        drop(client);
        eventually("the mock sees the hang-up", || mock.calls()[0].aborted).await;
        match generation {
            Generation::Master => {
                eventually("canceled", || {
                    mock.builds()[0].state == BuildState::Canceled
                })
                .await
            }
            Generation::Tag => {
                assert_eq!(mock.builds()[0].state, BuildState::Running);
                mock.release();
                eventually("built on", || mock.builds()[0].state == BuildState::Done).await;
            }
        }
        mock.release();
        let response = get(&velox, order(ORDER)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let builds = mock.builds();
        let expected = match generation {
            Generation::Master => 2,
            Generation::Tag => 1,
        };
        assert_eq!(builds.len(), expected, "{generation:?}");
        assert_eq!(body(response).await, artifact(expected as u64, 100));
    }
}

/// Posts `body` to the mock as a Velox client would; the status and the JSON (Null if none).
async fn post(mock: &Mock, body: &str) -> (u16, Value) {
    let reply = reqwest::Client::new()
        .post(format!("{}{}", mock.url(), rr::velox::BUILD_PATH))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = reply.status().as_u16();
    let json = serde_json::from_slice(&reply.bytes().await.unwrap()).unwrap_or(Value::Null);
    (status, json)
}

/// docs/velox.md's validation table, row by row: what each Velox generation answers (the
/// mock, sent the body as is) and what rr does (400 without calling Velox, or a build).
#[tokio::test]
async fn validation_matches_both_generations_case_by_case() {
    const ID: &str = "b66d5617-64dd-419b-a68b-b002938320ab";
    let p = r#"{"module_name":"github.com/roadrunner-server/http/v5","tag":"v5.2.7"}"#;
    let with = |fields: &str| format!(r#"{{"request_id":"{ID}",{fields}}}"#);
    let plain = |fields: &str| {
        with(&format!(
            r#""rr_version":"v2025.1.2","plugins":[{p}],{fields}"#
        ))
    };
    // (row, body, tag accepts, master accepts, rr accepts)
    let rows: Vec<(&str, String, bool, bool, bool)> = vec![
        ("empty body", String::new(), false, false, false),
        ("malformed JSON", "{not json".into(), false, false, false),
        ("not an object", "[1]".into(), false, false, false),
        (
            "no request_id",
            format!(r#"{{"rr_version":"v2025.1.2","plugins":[{p}]}}"#),
            false,
            false,
            true,
        ),
        (
            "empty request_id",
            format!(r#"{{"request_id":"","rr_version":"v2025.1.2","plugins":[{p}]}}"#),
            false,
            false,
            false,
        ),
        (
            "request_id not a UUID",
            format!(r#"{{"request_id":"nope","rr_version":"v2025.1.2","plugins":[{p}]}}"#),
            false,
            false,
            false,
        ),
        (
            "upper-case request_id",
            format!(
                r#"{{"request_id":"{}","rr_version":"v2025.1.2","plugins":[{p}]}}"#,
                ID.to_uppercase()
            ),
            true,
            true,
            true,
        ),
        (
            "nil request_id",
            format!(
                r#"{{"request_id":"00000000-0000-0000-0000-000000000000","rr_version":"v2025.1.2","plugins":[{p}]}}"#
            ),
            true,
            true,
            true,
        ),
        (
            "request_id and requestId",
            plain(&format!(r#""requestId":"{ID}""#)),
            false,
            false,
            false,
        ),
        (
            "rr_version twice",
            plain(r#""rr_version":"master""#),
            false,
            false,
            false,
        ),
        (
            "tag twice in a plugin",
            with(r#""rr_version":"master","plugins":[{"module_name":"m","tag":"v1","tag":"v2"}]"#),
            false,
            false,
            false,
        ),
        (
            "an unknown field twice",
            plain(r#""colour":"blue","colour":"red""#),
            true,
            true,
            true,
        ),
        (
            "no rr_version",
            with(&format!(r#""plugins":[{p}]"#)),
            false,
            false,
            false,
        ),
        (
            "rr_version latest",
            with(&format!(r#""rr_version":"latest","plugins":[{p}]"#)),
            false,
            false,
            false,
        ),
        (
            "rr_version with a trailing newline",
            with(&format!(r#""rr_version":"v2025.1.2\n","plugins":[{p}]"#)),
            false,
            false,
            false,
        ),
        (
            "rr_version a number",
            with(&format!(r#""rr_version":2025,"plugins":[{p}]"#)),
            false,
            false,
            false,
        ),
        (
            "rr_version a commit",
            with(&format!(r#""rr_version":"0123abc","plugins":[{p}]"#)),
            true,
            true,
            true,
        ),
        (
            "plugins empty",
            with(r#""rr_version":"v2025.1.2","plugins":[]"#),
            false,
            false,
            false,
        ),
        (
            "plugin without tag",
            with(r#""rr_version":"v2025.1.2","plugins":[{"module_name":"m"}]"#),
            false,
            false,
            false,
        ),
        (
            "plugin with empty module_name",
            with(r#""rr_version":"v2025.1.2","plugins":[{"module_name":"","tag":"v1"}]"#),
            false,
            false,
            false,
        ),
        (
            "force_rebuild a string",
            plain(r#""force_rebuild":"true""#),
            false,
            false,
            false,
        ),
        (
            "target_platform.os empty",
            plain(r#""target_platform":{"os":"","arch":"amd64"}"#),
            true,
            true,
            true,
        ),
        (
            "target_platform a string",
            plain(r#""target_platform":"linux""#),
            false,
            false,
            false,
        ),
        (
            "unknown field",
            plain(r#""colour":"blue""#),
            true,
            true,
            true,
        ),
        (
            "lowerCamelCase names",
            format!(
                r#"{{"requestId":"{ID}","rrVersion":"master","forceRebuild":false,"plugins":[{{"moduleName":"m","tag":"v1"}}]}}"#
            ),
            true,
            true,
            true,
        ),
        (
            "null fields",
            plain(r#""target_platform":null,"force_rebuild":null,"race":null"#),
            true,
            true,
            true,
        ),
        (
            "replaces entry without new",
            plain(r#""replaces":[{"old":"a"}]"#),
            true,
            false,
            false,
        ),
        (
            "race a string",
            plain(r#""race":"true""#),
            true,
            false,
            false,
        ),
        ("debug a number", plain(r#""debug":1"#), true, false, false),
        (
            "excludes module a number",
            plain(r#""excludes":[{"module":5}]"#),
            true,
            false,
            false,
        ),
        (
            "replaces, excludes, race, debug",
            plain(
                r#""replaces":[{"old":"a","new":"b"}],"excludes":[{"module":"m","version":"v1"}],"race":true,"debug":false"#,
            ),
            true,
            true,
            true,
        ),
    ];
    let tag = Mock::start_as(Generation::Tag, Behaviour::success(1));
    let master = Mock::start_as(Generation::Master, Behaviour::success(1));
    for (row, body, tag_ok, master_ok, rr_ok) in rows {
        for (mock, ok) in [(&tag, tag_ok), (&master, master_ok)] {
            let (status, json) = post(mock, &body).await;
            let expected = if ok { 200 } else { 400 };
            assert_eq!(
                status,
                expected,
                "{row}: {:?} said {json}",
                mock.generation()
            );
            if !ok {
                assert_eq!(json["code"], "invalid_argument", "{row}");
            }
        }
        // rr refuses only what a Velox refuses, and lets through only what master builds
        // (the request id aside, which rr fills in).
        assert!(rr_ok || !(tag_ok && master_ok), "{row}");
        assert!(!rr_ok || master_ok || row == "no request_id", "{row}");
        let before = master.call_count();
        let velox = velox(config(&master));
        let response = get(&velox, order(&body)).await;
        let calls = master.call_count() - before;
        if rr_ok {
            assert_eq!((response.status(), calls), (StatusCode::OK, 1), "{row}");
        } else {
            let (status, code) = error(response).await;
            assert_eq!(
                (status, code.as_str(), calls),
                (400, "invalid_request", 0),
                "{row}"
            );
        }
    }
}

/// What Velox refuses that rr let through is still the client's 400, not a 502.
#[tokio::test]
async fn a_velox_refusal_is_the_clients_400_naming_the_fields() {
    let mock = Mock::start(Behaviour::success(1));
    // A rule a newer Velox checks that rr does not know about.
    mock.then(Behaviour::Raw {
        status: 400,
        content_type: "application/json",
        body: json!({
            "code": "invalid_argument",
            "message": "validation error: plugins[0].tag: value must match /^v/",
            "details": [{"type": "buf.validate.Violations", "value": "",
                "debug": {"violations": [{"field": {"elements": [
                    {"fieldName": "plugins", "index": "0"}, {"fieldName": "tag"}]},
                    "ruleId": "string.pattern", "message": "value must match /^v/"}]}}]
        })
        .to_string(),
    });
    let velox = velox(config(&mock));
    let response = get(&velox, order(ORDER)).await;
    assert_eq!(response.status(), 400);
    let json: Value = serde_json::from_slice(&body(response).await).unwrap();
    assert_eq!(json["code"], "invalid_request");
    assert_eq!(
        json["error"],
        "the build server refused the build request: plugins[0].tag"
    );
    assert_eq!(mock.call_count(), 1, "not retried");
    assert_eq!(velox.metrics().outcome(Outcome::Invalid), 1);
}

/// The mock itself, against the measured facts it models.
#[tokio::test]
async fn the_mock_answers_like_each_generation() {
    let http = reqwest::Client::new();
    for generation in [Generation::Tag, Generation::Master] {
        let mock = Mock::start_as(generation, Behaviour::success(3));
        let url = format!("{}{}", mock.url(), rr::velox::BUILD_PATH);
        let missing = http
            .post(format!("{}/nope", mock.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        assert_eq!(
            missing.headers()["content-type"],
            "text/plain; charset=utf-8"
        );
        assert_eq!(missing.text().await.unwrap(), "404 page not found\n");
        let get = http.get(&url).send().await.unwrap();
        assert_eq!(get.status(), 405);
        assert_eq!(get.headers()["allow"], "POST");
        assert!(get.headers().get("content-type").is_none());
        let text = http
            .post(&url)
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(text.status(), 415);
        assert!(text.bytes().await.unwrap().is_empty());

        let spec = r#"{"request_id":"b66d5617-64dd-419b-a68b-b002938320ab","rr_version":"v2025.1.2",
            "plugins":[{"module_name":"github.com/roadrunner-server/http/v5","tag":"v5.2.7"}]}"#;
        let first = http
            .post(&url)
            .header("content-type", "application/json; charset=utf-8")
            .body(spec)
            .send()
            .await
            .unwrap();
        assert_eq!(
            first.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        assert_eq!(first.headers()["accept-encoding"], "gzip");
        let first: Value = first.json().await.unwrap();
        let (_, second) = post(&mock, spec).await;
        assert_eq!(
            first["path"], second["path"],
            "the path is reused while cached"
        );
        assert!(first["path"].as_str().unwrap().ends_with("/rr"));
        match generation {
            Generation::Tag => {
                assert!(first["logs"].as_str().unwrap().len() > 15_000);
                assert_eq!(second["logs"], velox_mock::CACHED_LOGS);
            }
            Generation::Master => {
                assert!(first.get("logs").is_none() && second.get("logs").is_none());
            }
        }
        assert_eq!(mock.builds().len(), 1);

        let (_, one) = post(&mock, r#"{"request_id":"b66d5617-64dd-419b-a68b-b002938320ab","rr_version":"v2025.1.2","plugins":[]}"#).await;
        let (_, two) = post(&mock, r#"{"rr_version":"x","plugins":[]}"#).await;
        let violations = &one["details"][0]["debug"]["violations"];
        assert_eq!(one["details"][0]["type"], "buf.validate.Violations");
        assert_eq!(
            violations[0]["field"]["elements"][0]["fieldName"],
            "plugins"
        );
        match generation {
            Generation::Tag => {
                assert_eq!(
                    one["message"],
                    "validation error:\n - plugins: value is required [required]"
                );
                assert!(two["message"].as_str().unwrap().starts_with("validation error:\n - request_id: value is empty, which is not a valid UUID [string.uuid_empty]\n - rr_version: rr_version must be a semantic version"));
            }
            Generation::Master => {
                assert_eq!(
                    one["message"],
                    "validation error: plugins: value is required"
                );
                assert!(two["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("validation errors:\n - request_id: value is empty"));
            }
        }
        let (status, empty) = post(&mock, "").await;
        assert_eq!(status, 400);
        assert_eq!(
            empty["message"],
            "unmarshal message: zero-length payload is not a valid JSON object"
        );

        // A second identical build while one is in progress.
        mock.hold();
        let forced = spec.replacen('{', r#"{"force_rebuild":true,"#, 1);
        let running = tokio::spawn({
            let mock_url = url.clone();
            let forced = forced.clone();
            async move {
                reqwest::Client::new()
                    .post(mock_url)
                    .header("content-type", "application/json")
                    .body(forced)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        });
        eventually("the build runs", || mock.builds().len() == 2).await;
        let (status, busy) = post(&mock, &forced).await;
        assert_eq!(
            (status, busy["code"].as_str()),
            (409, Some("already_exists"))
        );
        let message = busy["message"].as_str().unwrap();
        match generation {
            Generation::Tag => assert_eq!(message, "build is already in progress"),
            Generation::Master => {
                assert!(
                    message.starts_with("build ") && message.ends_with(" is already in progress")
                )
            }
        }
        // The tag keys by request id too: another id is another build, not a 409.
        let other_id = forced.replace("b66d5617", "c66d5617");
        if generation == Generation::Tag {
            let other = tokio::spawn({
                let mock_url = url.clone();
                async move {
                    reqwest::Client::new()
                        .post(mock_url)
                        .header("content-type", "application/json")
                        .body(other_id)
                        .send()
                        .await
                        .unwrap()
                        .status()
                }
            });
            eventually("a second build runs", || mock.builds().len() == 3).await;
            mock.release();
            assert_eq!(other.await.unwrap(), 200);
        } else {
            let (status, _) = post(&mock, &other_id).await;
            assert_eq!(status, 409, "master keys by spec only");
        }
        mock.release();
        assert_eq!(running.await.unwrap(), 200);
    }
}
