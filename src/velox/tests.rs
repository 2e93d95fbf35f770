//! Unit tests of the pure parts: order checks, spec hash, backoff, reply parsing, error table,
//! cache eviction, single-flight bookkeeping, metrics.
use super::artifact::{self, Records};
use super::cache::Cache;
use super::client::{parse_reply, Built, Fault};
use super::flight::Flights;
use super::metrics::Metrics;
use super::order::{is_rr_version, is_uuid, spec_uuid, Spec};
use super::retry::{backoff, classify, violated_fields, Verdict};
use super::*;
use crate::config::RetryConfig;
use http::StatusCode;
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
        "v2025.1.2\n",
        "v2025.1.2-rc\nx",
        "master\n",
    ] {
        assert!(!is_rr_version(bad), "{bad}");
    }
}

#[test]
fn uuid_must_be_hyphenated() {
    assert!(is_uuid("b66d5617-64dd-419b-a68b-b002938320ab"));
    assert!(!is_uuid("b66d561764dd419ba68bb002938320ab"));
    assert!(!is_uuid("b66d5617-64dd-419b-a68b-b002938320aZ"));
    assert!(
        is_uuid("B66D5617-64DD-419B-A68B-B002938320AB"),
        "upper case"
    );
    assert!(is_uuid("00000000-0000-0000-0000-000000000000"), "nil");
}

#[test]
fn spec_uuid_is_a_name_based_uuid_v5() {
    // RFC 9562's construction, checked against Python's uuid.uuid5(NAMESPACE_DNS, ...).
    let mut sha = <sha1::Sha1 as sha1::Digest>::new();
    sha1::Digest::update(&mut sha, uuid::Uuid::NAMESPACE_DNS.as_bytes());
    sha1::Digest::update(&mut sha, b"www.example.com");
    let digest = sha1::Digest::finalize(sha);
    let bytes: [u8; 16] = digest[..16].try_into().unwrap();
    let id = uuid::Builder::from_sha1_bytes(bytes).into_uuid();
    assert_eq!(id.to_string(), "2ed6657d-e927-568b-95e1-2665a8aea6a2");

    let id = spec_uuid("v1.0.0|||a@v1");
    assert!(is_uuid(&id));
    assert_eq!(id.as_bytes()[14], b'5', "version 5: {id}");
    assert_eq!(id, spec_uuid("v1.0.0|||a@v1"));
    assert_ne!(id, spec_uuid("v1.0.0|||a@v2"));
}

#[test]
fn missing_request_id_is_derived_from_the_spec_and_forwarded() {
    let spec = parse(&order("v2025.1.2", PLUGIN)).unwrap();
    assert_eq!(spec.request_id, spec_uuid(&spec.normalized));
    assert_eq!(spec.json["request_id"], spec.request_id.as_str());
    // The same build, spelt another way, gets the same id; another build another one.
    let same = r#"{"rrVersion":"v2025.1.2","requestId":null,"targetPlatform":{"os":""},
        "race":false,"replaces":[],
        "plugins":[{"moduleName":"github.com/roadrunner-server/http/v5","tag":"v5.2.7"}]}"#;
    let same = parse(same).unwrap();
    assert_eq!(
        (&same.request_id, &same.hash),
        (&spec.request_id, &spec.hash)
    );
    assert_eq!(same.json["request_id"], spec.request_id.as_str());
    assert!(!same.json.contains_key("requestId"), "one spelling only");
    let other = parse(&order("v2025.1.3", PLUGIN)).unwrap();
    assert_ne!(other.request_id, spec.request_id);
    // PHP's own id is kept, and does not change the spec's hash.
    let given = r#"{"request_id":"B66D5617-64DD-419B-A68B-B002938320AB","rr_version":"v2025.1.2",
        "plugins":[{"module_name":"github.com/roadrunner-server/http/v5","tag":"v5.2.7"}]}"#;
    let given = parse(given).unwrap();
    assert_eq!(given.request_id, "B66D5617-64DD-419B-A68B-B002938320AB");
    assert_eq!(given.hash, spec.hash);
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

/// The rr column of docs/velox.md's validation table, row by row (the Velox columns are
/// checked against the mock of both generations in tests/velox_client.rs).
#[test]
fn validation_follows_the_documented_table() {
    let id = "b66d5617-64dd-419b-a68b-b002938320ab";
    let p = PLUGIN;
    let refused: Vec<(String, &str)> = vec![
        ("".into(), "empty"),
        ("  \n".into(), "empty"),
        ("not json".into(), "malformed JSON"),
        ("[1]".into(), "not a JSON object"),
        (
            format!(r#"{{"plugins":[{p}]}}"#),
            "rr_version: value is required",
        ),
        (order("", p), "rr_version: value is required"),
        (order("2025", p), "rr_version: must be"),
        (order("v2025.1.2\\n", p), "rr_version: must be"),
        (
            format!(r#"{{"rr_version":5,"plugins":[{p}]}}"#),
            "rr_version: must be a string",
        ),
        (order("v1.2.3", ""), "plugins: value is required"),
        (
            r#"{"rr_version":"v1.2.3"}"#.into(),
            "plugins: value is required",
        ),
        (
            r#"{"rr_version":"v1.2.3","plugins":{}}"#.into(),
            "plugins: must be a list",
        ),
        (
            order("v1.2.3", r#"{"module_name":"m"}"#),
            "plugins[0].tag: value is required",
        ),
        (
            order("v1.2.3", r#"{"module_name":"","tag":"t"}"#),
            "plugins[0].module_name",
        ),
        (
            order("v1.2.3", r#"{"module_name":"m","tag":1}"#),
            "plugins[0].tag: must be a string",
        ),
        (order("v1.2.3", "1"), "plugins[0]: must be an object"),
        (
            format!(r#"{{"request_id":"nope","rr_version":"master","plugins":[{p}]}}"#),
            "request_id: must be a UUID",
        ),
        (
            format!(r#"{{"request_id":"","rr_version":"master","plugins":[{p}]}}"#),
            "request_id: value is empty",
        ),
        (
            format!(
                r#"{{"request_id":"{id}","requestId":"{id}","rr_version":"master","plugins":[{p}]}}"#
            ),
            "request_id: given twice",
        ),
        (
            format!(r#"{{"rr_version":"master","rrVersion":"master","plugins":[{p}]}}"#),
            "rr_version: given twice",
        ),
        (
            format!(r#"{{"rr_version":"master","rr_version":"master","plugins":[{p}]}}"#),
            "rr_version: given twice",
        ),
        (
            order("master", r#"{"module_name":"m","tag":"v1","tag":"v2"}"#),
            "tag: given twice",
        ),
        (
            format!(r#"{{"rr_version":"master","force_rebuild":"true","plugins":[{p}]}}"#),
            "force_rebuild: must be a boolean",
        ),
        (
            format!(r#"{{"rr_version":"master","race":"true","plugins":[{p}]}}"#),
            "race: must be a boolean",
        ),
        (
            format!(r#"{{"rr_version":"master","debug":1,"plugins":[{p}]}}"#),
            "debug: must be a boolean",
        ),
        (
            format!(r#"{{"rr_version":"master","target_platform":"linux","plugins":[{p}]}}"#),
            "target_platform: must be an object",
        ),
        (
            format!(r#"{{"rr_version":"master","target_platform":{{"os":1}},"plugins":[{p}]}}"#),
            "target_platform.os: must be a string",
        ),
        (
            format!(r#"{{"rr_version":"master","replaces":[{{"old":"a"}}],"plugins":[{p}]}}"#),
            "replaces[0].new: value is required",
        ),
        (
            format!(r#"{{"rr_version":"master","replaces":[{{"new":"b"}}],"plugins":[{p}]}}"#),
            "replaces[0].old: value is required",
        ),
        (
            format!(r#"{{"rr_version":"master","excludes":[{{"module":5}}],"plugins":[{p}]}}"#),
            "excludes[0].module: must be a string",
        ),
    ];
    for (json, reason) in &refused {
        match parse(json) {
            Err(VeloxError::InvalidRequest(why)) => assert!(why.contains(reason), "{json}: {why}"),
            other => panic!("{json}: {other:?}"),
        }
    }
    let accepted = [
        order("v2025.1.2", p),
        order("v1.2.3-rc.1+meta", p),
        order("master", p),
        order("0123456789abcdef", p),
        format!(
            r#"{{"request_id":"00000000-0000-0000-0000-000000000000","rr_version":"master","plugins":[{p}]}}"#
        ),
        format!(
            r#"{{"request_id":"{}","rr_version":"master","plugins":[{p}]}}"#,
            id.to_uppercase()
        ),
        format!(
            r#"{{"rr_version":"master","target_platform":{{"os":"","arch":""}},"plugins":[{p}]}}"#
        ),
        format!(
            r#"{{"rr_version":"master","target_platform":null,"force_rebuild":null,"plugins":[{p}]}}"#
        ),
        format!(r#"{{"rr_version":"master","unknown":{{"x":[1]}},"plugins":[{p}]}}"#),
        format!(r#"{{"rr_version":"master","x":1,"x":2,"plugins":[{p}]}}"#),
        format!(
            r#"{{"rr_version":"master","replaces":[{{"old":"a","new":"b"}}],"excludes":[{{"module":"m","version":"v1"}}],"race":true,"debug":false,"plugins":[{p}]}}"#
        ),
    ];
    for json in &accepted {
        assert!(parse(json).is_ok(), "{json}: {:?}", parse(json));
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
    let with_id = r#"{"request_id":"b66d5617-64dd-419b-a68b-b002938320ab","rr_version":"v1.0.0","plugins":[{"module_name":"a","tag":"v1"}]}"#;
    assert_eq!(parse(with_id).unwrap().hash, plain.hash);
    for changed in [
        r#"{"rr_version":"v1.0.0","debug":true,"plugins":[{"module_name":"a","tag":"v1"}]}"#,
        r#"{"rr_version":"v1.0.0","replaces":[{"old":"x","new":"y"}],"plugins":[{"module_name":"a","tag":"v1"}]}"#,
        r#"{"rr_version":"v1.0.0","excludes":[{"module":"x","version":"v1"}],"plugins":[{"module_name":"a","tag":"v1"}]}"#,
        r#"{"rr_version":"v1.0.0","future_field":1,"plugins":[{"module_name":"a","tag":"v1"}]}"#,
        r#"{"rr_version":"v1.0.0","target_platform":{"os":"linux"},"plugins":[{"module_name":"a","tag":"v1"}]}"#,
    ] {
        assert_ne!(parse(changed).unwrap().hash, plain.hash, "{changed}");
    }
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
    let error = |status: u16, code: &str| Fault::Error {
        status,
        code: code.into(),
        message: "m".into(),
        details: serde_json::Value::Null,
    };
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
    let Fault::Error { code, message, .. } = failed.unwrap_err() else {
        panic!("a failure")
    };
    assert_eq!((code.as_str(), message.as_str()), ("build_error", "boom"));
    let connect = br#"{"code":"invalid_argument","message":"m","details":[{"type":"t"}]}"#;
    let Fault::Error { details, .. } = parse_reply(400, connect).unwrap_err() else {
        panic!("a Connect error")
    };
    assert_eq!(details[0]["type"], "t");
    assert_eq!(
        parse_reply(409, br#"{"code":"already_exists","message":"m"}"#),
        Err(error(409, "already_exists"))
    );
    let html = parse_reply(502, b"<html>bad gateway</html>").unwrap_err();
    assert!(matches!(html, Fault::Malformed { status: 502, .. }));
    let garbage = parse_reply(200, b"{\"path\":").unwrap_err();
    assert!(matches!(garbage, Fault::Malformed { status: 200, .. }));
}

/// docs/velox.md's retry table, row by row.
#[test]
fn failures_are_classified_by_the_documented_table() {
    let error = |code: &str, message: &str| Fault::Error {
        status: 500,
        code: code.into(),
        message: message.into(),
        details: serde_json::Value::Null,
    };
    let go_output = format!(
        "building plugins: compile: go failed: exit status 1\n/tmp/velox/123/main.go:5: {}",
        "undefined: x\n".repeat(600)
    );
    let code_of = |verdict: &Verdict| match verdict {
        Verdict::Retry(e) | Verdict::Answer(e) => e.status_and_code(),
        Verdict::Poll => (StatusCode::OK, "poll"),
    };
    let cases: Vec<(Fault, &str, u16, &str)> = vec![
        (Fault::Transport("connection refused".into()), "retry", 502, "velox_unreachable"),
        (error("unavailable", "shutting down"), "retry", 503, "velox_unavailable"),
        (error("resource_exhausted", "overloaded"), "retry", 503, "velox_unavailable"),
        (Fault::Malformed { status: 503, why: "html".into() }, "retry", 503, "velox_unavailable"),
        (error("canceled", "x"), "retry", 502, "velox_error"),
        (error("deadline_exceeded", "x"), "retry", 502, "velox_error"),
        (error("internal", "downloading template: Get \"https://api.github.com/x\": dial tcp: lookup api.github.com: no such host"), "retry", 502, "velox_error"),
        (error("internal", "downloading template: read tcp 1.2.3.4:5: connection reset by peer"), "retry", 502, "velox_error"),
        (error("already_exists", "build is already in progress"), "poll", 200, "poll"),
        (error("invalid_argument", "validation error: x"), "answer", 400, "invalid_request"),
        (error("internal", &go_output), "answer", 422, "build_failed"),
        (error("internal", "go version go1.21 is too old: exit status 1"), "answer", 422, "build_failed"),
        (error("internal", "verifyResolvedVersions: plugin github.com/roadrunner-server/http/v5 resolved to v5.3.0 (you requested v5.2.7); use a [[replaces]] entry"), "answer", 422, "version_conflict"),
        (error("internal", "downloading template: unexpected status code: 404"), "answer", 422, "unknown_version"),
        (error("internal", "velox v3 does not support Windows targets"), "answer", 422, "unsupported_target"),
        (error("build_error", "boom"), "answer", 422, "build_failed"),
        (error("internal", "generating cache hash: x"), "answer", 502, "velox_error"),
        (error("unknown", "x"), "answer", 502, "velox_error"),
        (error("not_found", "x"), "answer", 502, "velox_error"),
        (error("permission_denied", "x"), "answer", 502, "velox_error"),
        (error("unimplemented", "x"), "answer", 502, "velox_error"),
        (Fault::Malformed { status: 200, why: "not JSON".into() }, "answer", 502, "velox_bad_reply"),
    ];
    for (fault, class, status, code) in cases {
        let verdict = classify(&fault);
        let got = match verdict {
            Verdict::Retry(_) => "retry",
            Verdict::Poll => "poll",
            Verdict::Answer(_) => "answer",
        };
        assert_eq!(got, class, "{fault:?}");
        assert_eq!(
            code_of(&verdict),
            (StatusCode::from_u16(status).unwrap(), code),
            "{fault:?}"
        );
    }
}

#[test]
fn violated_fields_come_from_the_details_and_stay_short() {
    let details = serde_json::json!([{
        "type": "buf.validate.Violations",
        "value": "CgQ=",
        "debug": {"violations": [
            {"field": {"elements": [{"fieldNumber": 5, "fieldName": "plugins", "index": "0"},
                                    {"fieldNumber": 2, "fieldName": "tag"}]},
             "ruleId": "required", "message": "value is required"},
            {"fieldPath": "rr_version", "message": "x"},
            {"fieldPath": "/tmp/secret path", "message": "x"},
            {"message": "no field"}
        ]}
    }]);
    assert_eq!(violated_fields(&details), ["plugins[0].tag", "rr_version"]);
    assert!(violated_fields(&serde_json::Value::Null).is_empty());
}

#[tokio::test]
async fn error_table_gives_a_stable_code_and_a_short_message() {
    let secs = Duration::from_secs(1);
    let long = format!(
        "building plugins: compile: go failed: exit status 1\n{}",
        "/home/velox/go/pkg/mod/x.go:1: undefined\n".repeat(200)
    );
    let upstream = |code: &str| VeloxError::Upstream {
        code: code.into(),
        message: long.clone(),
    };
    let failed = |kind| VeloxError::BuildFailed {
        kind,
        message: long.clone(),
    };
    let cases = [
        (
            VeloxError::InvalidRequest("rr_version: x".into()),
            400,
            "invalid_request",
        ),
        (
            VeloxError::Refused {
                message: long.clone(),
                fields: vec!["plugins[0].tag".into()],
            },
            400,
            "invalid_request",
        ),
        (failed(BuildFailure::Compile), 422, "build_failed"),
        (
            failed(BuildFailure::VersionConflict),
            422,
            "version_conflict",
        ),
        (failed(BuildFailure::UnknownVersion), 422, "unknown_version"),
        (
            failed(BuildFailure::UnsupportedTarget),
            422,
            "unsupported_target",
        ),
        (
            VeloxError::Unreachable(long.clone()),
            502,
            "velox_unreachable",
        ),
        (
            VeloxError::Unavailable {
                code: "unavailable".into(),
                message: long.clone(),
            },
            503,
            "velox_unavailable",
        ),
        (upstream("internal"), 502, "velox_error"),
        (
            VeloxError::MalformedReply(long.clone()),
            502,
            "velox_bad_reply",
        ),
        (VeloxError::BuildTimeout(secs), 504, "build_timeout"),
        (VeloxError::NoFile, 500, "no_artifact"),
        (
            VeloxError::Stream(long.clone()),
            500,
            "artifact_unavailable",
        ),
        (VeloxError::Internal(long.clone()), 500, "internal"),
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
        let message = json["error"].as_str().unwrap();
        assert!(!message.is_empty() && message.len() < 120, "{message}");
        assert!(
            !message.contains("/home/velox") && !message.contains("go failed"),
            "{message}"
        );
        // The log line has the whole story.
        if !matches!(error, VeloxError::BuildTimeout(_) | VeloxError::NoFile) {
            assert!(
                error.to_string().contains("rr_version: x")
                    || error.to_string().contains("/home/velox")
            );
        }
    }
}

#[test]
fn records_keep_the_last_build_per_spec_and_etags_follow_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, b"one").unwrap();
    std::fs::write(&b, b"two").unwrap();
    let records = Records::default();
    records.set(&hash(1), a.clone());
    assert_eq!(records.get(&hash(1)), Some(a.clone()));
    records.set(&hash(1), b.clone());
    records.forget(&hash(1), &a);
    assert_eq!(
        records.get(&hash(1)),
        Some(b.clone()),
        "a newer build stays"
    );
    records.forget(&hash(1), &b);
    assert_eq!(records.get(&hash(1)), None);
    for n in 0..=255u8 {
        records.set(&hash(n), a.clone());
    }
    records.set(&format!("{}x", hash(0)), a.clone());
    assert_eq!(records.len(), 256);
    assert_eq!(records.get(&hash(0)), None, "the oldest goes first");

    let tag = |path: &std::path::Path| artifact::etag(&hash(7), &std::fs::metadata(path).unwrap());
    let first = tag(&a);
    assert!(
        first.to_str().unwrap().starts_with('"'),
        "strong: {first:?}"
    );
    assert_eq!(tag(&a), first);
    assert_ne!(tag(&b), first, "another file");
    // A rebuild at the same path: a new file moved into place.
    let tmp = dir.path().join("tmp");
    std::fs::write(&tmp, b"one").unwrap();
    std::fs::rename(&tmp, &a).unwrap();
    assert_ne!(tag(&a), first, "same path and size, another build");
}

fn hash(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn opened(path: &std::path::Path) -> std::fs::File {
    std::fs::File::open(path).unwrap()
}

/// The cache keeps the file that was opened (and checked), even when its path has been
/// swapped for a link to another file since: it never reads a path again.
#[test]
fn cache_stores_the_open_file_not_what_its_path_names_now() {
    let dir = tempfile::tempdir().unwrap();
    let (artifact, secret) = (dir.path().join("artifact"), dir.path().join("secret"));
    std::fs::write(&artifact, b"the build").unwrap();
    std::fs::write(&secret, b"not yours").unwrap();
    let checked = opened(&artifact);
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    std::fs::rename(&link, &artifact).unwrap();
    let cache = Cache::open(dir.path().join("cache"), 100);
    let stored = cache.store(&hash(1), &checked).unwrap();
    assert_eq!(std::fs::read(&stored).unwrap(), b"the build");
    assert!(!std::fs::symlink_metadata(&stored).unwrap().is_symlink());
}

#[test]
fn cache_evicts_least_recently_used_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::write(&src, [0u8; 40]).unwrap();
    let cache = Cache::open(dir.path().join("cache"), 100);
    for n in 1..=2 {
        cache.store(&hash(n), &opened(&src)).unwrap();
    }
    assert!(cache.lookup(&hash(1)).is_some(), "1 is now the most recent");
    cache.store(&hash(3), &opened(&src)).unwrap();
    assert!(cache.contains(&hash(1)) && cache.contains(&hash(3)));
    assert!(!cache.contains(&hash(2)));
    assert!(
        !dir.path().join("cache").join(hash(2)).exists(),
        "evicted file removed"
    );
    assert_eq!(cache.size(), 80);

    // Too big for the cache at all: refused, nothing evicted.
    std::fs::write(&src, [0u8; 101]).unwrap();
    assert!(cache.store(&hash(4), &opened(&src)).is_err());
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
    let stored = cache.store(&hash(3), &opened(&src)).unwrap();
    assert_eq!(std::fs::read(stored).unwrap(), [2u8; 30]);
    assert!(!cache.contains(&hash(1)), "the oldest mtime goes first");
    assert!(cache.contains(&hash(2)));
}

/// A copy into the cache that its process never finished (killed during `store`, or the disk
/// full) stayed in the cache directory for good, outside the index and `max_size`. Opening
/// the cache deletes such copies, and only those.
#[test]
fn cache_open_deletes_copies_left_half_made() {
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join(format!(
        ".{}.{}",
        hash(1),
        "0123456789abcdef0123456789abcdef"
    ));
    std::fs::write(&partial, [0u8; 30]).unwrap();
    std::fs::write(dir.path().join(hash(2)), [1u8; 30]).unwrap();
    std::fs::write(dir.path().join(".hidden"), b"x").unwrap();
    let cache = Cache::open(dir.path().to_path_buf(), 100);
    assert!(!partial.exists());
    assert!(dir.path().join(".hidden").exists(), "not one of ours");
    assert!(cache.contains(&hash(2)));
    assert_eq!(cache.size(), 30);
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
