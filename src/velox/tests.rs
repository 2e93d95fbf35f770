//! Unit tests of the pure parts: order checks, spec hash, backoff, reply parsing, error table,
//! cache eviction, single-flight bookkeeping, metrics.
use super::cache::Cache;
use super::client::{backoff, parse_reply, Built};
use super::flight::Flights;
use super::metrics::Metrics;
use super::order::{is_rr_version, is_uuid, Spec};
use super::*;
use crate::config::RetryConfig;
use http_body_util::BodyExt;
use std::io::Write;

const PLUGIN: &str = r#"{"module_name":"github.com/roadrunner-server/http/v5","tag":"v5.2.7"}"#;

fn parse(json: &str) -> Result<Spec, VeloxError> {
    Spec::parse(json.as_bytes(), false).map_err(|(e, _)| e)
}

fn order(version: &str, plugins: &str) -> String {
    format!(r#"{{"rr_version":"{version}","plugins":[{plugins}]}}"#)
}

#[test]
fn rr_version_rule_matches_velox() {
    for ok in [
        "v2025.1.2",
        "v1.2.3-rc.1",
        "master",
        "abcdef0",
        &"a".repeat(40),
    ] {
        assert!(is_rr_version(ok), "{ok}");
    }
    for bad in [
        "",
        "2025.1.2",
        "v1.2",
        "v1..3",
        "main",
        "abcdef",
        &"a".repeat(41),
        "ABCDEF0",
    ] {
        assert!(!is_rr_version(bad), "{bad}");
    }
}

#[test]
fn uuid_must_be_hyphenated() {
    assert!(is_uuid("b66d5617-64dd-419b-a68b-b002938320ab"));
    assert!(!is_uuid("b66d561764dd419ba68bb002938320ab"));
    assert!(!is_uuid("b66d5617-64dd-419b-a68b-b002938320aZ"));
}

#[test]
fn missing_request_id_is_generated_and_forwarded() {
    let spec = parse(&order("v2025.1.2", PLUGIN)).unwrap();
    assert!(is_uuid(&spec.request_id));
    assert_eq!(spec.json["request_id"], spec.request_id.as_str());
}

#[test]
fn unknown_fields_are_kept_and_camel_case_accepted() {
    let json = r#"{"requestId":"b66d5617-64dd-419b-a68b-b002938320ab","rrVersion":"master",
        "targetPlatform":{"os":"windows","arch":"amd64"},"forceRebuild":true,"extra":{"a":1},
        "plugins":[{"moduleName":"m","tag":"v1"}]}"#;
    let spec = parse(json).unwrap();
    assert_eq!(spec.request_id, "b66d5617-64dd-419b-a68b-b002938320ab");
    assert!(spec.force_rebuild);
    assert_eq!(
        (spec.os.as_deref(), spec.arch.as_deref()),
        (Some("windows"), Some("amd64"))
    );
    assert_eq!(spec.json["extra"]["a"], 1);
    assert!(
        !spec.json.contains_key("request_id"),
        "PHP's own spelling is kept"
    );
    assert_eq!(file_name(&spec), "rr-windows-amd64.exe");
}

#[test]
fn invalid_orders_are_refused_with_a_reason() {
    let cases = [
        ("not json", "malformed JSON"),
        ("[1]", "not a JSON object"),
        (
            r#"{"plugins":[{"module_name":"m","tag":"t"}]}"#,
            "rr_version",
        ),
        (&order("2025", PLUGIN), "rr_version"),
        (&order("v1.2.3", ""), "plugins"),
        (&order("v1.2.3", r#"{"module_name":"m"}"#), "plugins[0]"),
        (
            &order("v1.2.3", r#"{"module_name":"","tag":"t"}"#),
            "plugins[0]",
        ),
        (&order("v1.2.3", "1"), "plugins[0]"),
        (
            r#"{"request_id":"nope","rr_version":"master","plugins":[{"module_name":"m","tag":"t"}]}"#,
            "request_id",
        ),
    ];
    for (json, reason) in cases {
        match parse(json) {
            Err(VeloxError::InvalidRequest(why)) => assert!(why.contains(reason), "{json}: {why}"),
            other => panic!("{json}: {other:?}"),
        }
    }
}

#[test]
fn gzip_body_is_accepted_and_garbage_gzip_refused() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(order("master", PLUGIN).as_bytes()).unwrap();
    let spec = Spec::parse(&gz.finish().unwrap(), true).unwrap();
    assert_eq!(spec.json["rr_version"], "master");
    let (error, id) = Spec::parse(b"not gzip", true).unwrap_err();
    assert!(matches!(error, VeloxError::InvalidRequest(_)));
    assert!(is_uuid(&id));
}

#[test]
fn spec_hash_ignores_request_id_and_plugin_order_only() {
    let a = r#"{"module_name":"a","tag":"v1"}"#;
    let b = r#"{"module_name":"b","tag":"v2"}"#;
    let one = parse(&order("v1.0.0", &format!("{a},{b}"))).unwrap();
    let two = parse(&order("v1.0.0", &format!("{b},{a}"))).unwrap();
    assert_ne!(one.request_id, two.request_id);
    assert_eq!(one.hash, two.hash);
    assert_eq!(one.normalized, "v1.0.0|||a@v1|b@v2");
    assert_eq!(one.hash.len(), 64);
    let other_tag = parse(&order(
        "v1.0.0",
        &format!(r#"{a},{{"module_name":"b","tag":"v3"}}"#),
    ));
    assert_ne!(one.hash, other_tag.unwrap().hash);
    let forced = r#"{"rr_version":"v1.0.0","force_rebuild":true,"plugins":[{"module_name":"a","tag":"v1"}]}"#;
    let plain = parse(&order("v1.0.0", a)).unwrap();
    assert_eq!(parse(forced).unwrap().hash, plain.hash);
    let debug =
        r#"{"rr_version":"v1.0.0","debug":true,"plugins":[{"module_name":"a","tag":"v1"}]}"#;
    assert_ne!(parse(debug).unwrap().hash, plain.hash);
}

#[test]
fn backoff_grows_and_is_capped() {
    let retry = RetryConfig {
        max_attempts: 10,
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(1000),
        backoff_multiplier: 2.0,
    };
    let ms: Vec<u128> = (0..6).map(|n| backoff(&retry, n).as_millis()).collect();
    assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
    assert_eq!(backoff(&retry, u32::MAX), Duration::from_millis(1000));
}

#[test]
fn replies_are_parsed_not_compared() {
    let ok = parse_reply(200, b" {\n \"logs\" : \"x\", \"path\":\"/tmp/a/rr\"}").unwrap();
    assert_eq!(
        ok,
        Built {
            path: "/tmp/a/rr".into(),
            logs: Some("x".into())
        }
    );
    let legacy = parse_reply(
        200,
        br#"{"success":true,"path":"/p","build_id":"b","duration_ms":5}"#,
    );
    assert_eq!(legacy.unwrap().path, "/p");
    assert_eq!(parse_reply(200, b"{}").unwrap().path, "");

    let failed = parse_reply(
        200,
        br#"{"success":false,"error":"boom","code":"BUILD_ERROR"}"#,
    );
    let failed = failed.unwrap_err();
    assert!(!failed.retryable);
    assert_eq!(
        failed.error,
        VeloxError::Upstream {
            code: "build_error".into(),
            message: "boom".into()
        }
    );
    let cases = [
        (400, "invalid_argument", false),
        (409, "already_exists", true),
        (500, "internal", true),
        (503, "unavailable", true),
        (404, "not_found", false),
        (429, "resource_exhausted", false),
    ];
    for (status, code, retryable) in cases {
        let body = format!(r#"{{"code":"{code}","message":"m"}}"#);
        let failure = parse_reply(status, body.as_bytes()).unwrap_err();
        assert_eq!(failure.retryable, retryable, "{code}");
        assert_eq!(failure.error.status_and_code().1, code);
    }
    let html = parse_reply(502, b"<html>bad gateway</html>").unwrap_err();
    assert!(html.retryable && matches!(html.error, VeloxError::MalformedReply(_)));
    let garbage = parse_reply(200, b"{\"path\":").unwrap_err();
    assert!(!garbage.retryable && matches!(garbage.error, VeloxError::MalformedReply(_)));
}

#[tokio::test]
async fn error_table_gives_status_code_and_json() {
    let secs = Duration::from_secs(1);
    let cases = [
        (
            VeloxError::InvalidRequest("x".into()),
            400,
            "invalid_request",
        ),
        (
            VeloxError::Unreachable("x".into()),
            502,
            "velox_unreachable",
        ),
        (VeloxError::AttemptTimeout(secs), 502, "velox_timeout"),
        (
            VeloxError::Upstream {
                code: "internal".into(),
                message: "m".into(),
            },
            502,
            "internal",
        ),
        (
            VeloxError::MalformedReply("x".into()),
            502,
            "velox_bad_reply",
        ),
        (VeloxError::BuildTimeout(secs), 504, "build_timeout"),
        (VeloxError::NoFile, 500, "no_artifact"),
        (VeloxError::Stream("x".into()), 500, "artifact_unavailable"),
        (VeloxError::Internal("x".into()), 500, "internal"),
    ];
    for (error, status, code) in cases {
        let response = error.into_response("rid");
        assert_eq!(response.status().as_u16(), status, "{error}");
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            "application/json"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["code"], code);
        assert_eq!(json["request_id"], "rid");
        assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
}

fn hash(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

#[test]
fn cache_evicts_least_recently_used_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::write(&src, [0u8; 40]).unwrap();
    let cache = Cache::open(dir.path().join("cache"), 100);
    for n in 1..=2 {
        cache.store(&hash(n), &src).unwrap();
    }
    assert!(cache.lookup(&hash(1)).is_some(), "1 is now the most recent");
    cache.store(&hash(3), &src).unwrap();
    assert!(cache.contains(&hash(1)) && cache.contains(&hash(3)));
    assert!(!cache.contains(&hash(2)));
    assert!(
        !dir.path().join("cache").join(hash(2)).exists(),
        "evicted file removed"
    );
    assert_eq!(cache.size(), 80);

    // Too big for the cache at all: refused, nothing evicted.
    std::fs::write(&src, [0u8; 101]).unwrap();
    assert!(cache.store(&hash(4), &src).is_err());
    assert_eq!(cache.size(), 80);
}

#[test]
fn cache_indexes_existing_files_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    for (n, age) in [(1, old), (2, std::time::SystemTime::now())] {
        let path = dir.path().join(hash(n));
        std::fs::write(&path, [1u8; 30]).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(age)
            .unwrap();
    }
    std::fs::write(dir.path().join("unrelated"), b"x").unwrap();
    let cache = Cache::open(dir.path().to_path_buf(), 70);
    assert_eq!(cache.size(), 60);
    let src = dir.path().join("src");
    std::fs::write(&src, [2u8; 30]).unwrap();
    let stored = cache.store(&hash(3), &src).unwrap();
    assert_eq!(std::fs::read(stored).unwrap(), [2u8; 30]);
    assert!(!cache.contains(&hash(1)), "the oldest mtime goes first");
    assert!(cache.contains(&hash(2)));
}

#[tokio::test]
async fn flight_is_shared_and_aborted_with_its_last_ticket() {
    let flights: Flights<u32> = Flights::default();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let (_hold, hold_rx) = tokio::sync::oneshot::channel::<()>();
    struct Flag(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Flag(dropped.clone());
    let one = flights.join("k", || async move {
        let _flag = flag;
        let _ = started_tx.send(());
        let _ = hold_rx.await;
        1
    });
    let two = flights.join("k", || async { 2 });
    assert!(one.leader && !two.leader);
    started_rx.await.unwrap();
    drop(one);
    tokio::task::yield_now().await;
    assert!(
        !dropped.load(std::sync::atomic::Ordering::SeqCst),
        "a waiter is left"
    );
    drop(two);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        dropped.load(std::sync::atomic::Ordering::SeqCst),
        "aborted with the last"
    );
    assert!(flights.is_empty());
    let mut three = flights.join("k", || async { 3 });
    assert!(three.leader);
    assert_eq!(three.wait().await, Some(3));
}

#[test]
fn metrics_count_outcomes_and_bucket_durations() {
    let metrics = Metrics::default();
    metrics.finished(Outcome::Success, Duration::from_millis(50));
    metrics.finished(Outcome::Canceled, Duration::from_secs(7));
    metrics.finished(Outcome::Timeout, Duration::from_secs(10_000));
    metrics.retry();
    let snap = metrics.snapshot();
    assert_eq!(snap.outcome(Outcome::Success), 1);
    assert_eq!(snap.outcome(Outcome::Canceled), 1);
    assert_eq!(snap.outcome(Outcome::NoFile), 0);
    assert_eq!(snap.duration_buckets[0], (0.1, 1));
    assert_eq!(snap.duration_buckets[4], (10.0, 1));
    assert_eq!(snap.duration_buckets.last().unwrap().1, 1);
    assert_eq!(snap.duration_count, 3);
    assert_eq!(snap.retries, 1);
}
