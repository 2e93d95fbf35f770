//! The access log (bytes, user agent, referer, duration, request id, trace id; text and JSON)
//! and request ids (`http.request_id`) reaching PHP and the response.
mod common;
use common::{client, Options, Php};
use serde_json::{json, Value};

/// Request ids are echoed in these tests (`http.request_id.response`, off by default).
fn start(fixture: &str, mode: &str, mut options: Value) -> Php {
    if options.get("http.request_id.response").is_none() {
        options["http.request_id.response"] = json!(true);
    }
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_OPTIONS", options.to_string()));
    opts.env.push(("RR_TEST_MODE", mode.to_owned()));
    opts.ini.push(("rr.access_logs", "1".into()));
    Php::start_with(fixture, opts)
}

/// The JSON access line whose uri is `uri` (waits for it: it is written after the last byte).
fn access_line(php: &Php, uri: &str) -> Value {
    let needle = format!("\"uri\":\"{uri}\"");
    assert!(php.wait_for_log(&needle), "{}", php.stderr());
    let line = php
        .stderr()
        .lines()
        .find(|l| l.contains(&needle) && l.contains("rr::access"))
        .unwrap()
        .to_owned();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn is_generated_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn the_json_line_has_bytes_agent_referer_duration_and_ids() {
    let php = start(
        "server_vars.php",
        "respond",
        json!({"logs.encoding": "json"}),
    );
    let response = client()
        .get(php.url("/one?x=1"))
        .header("User-Agent", "curl/8.0 \"quoted\"")
        .header("Referer", "https://ref.example/page")
        .header("X-Request-Id", "abc-123")
        .header("traceparent", TRACEPARENT)
        .send()
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    let body = response.bytes().unwrap();
    let seen: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["requestId"], "abc-123");
    // traceparent reaches PHP as sent.
    assert_eq!(seen["headers"]["Traceparent"], json!([TRACEPARENT]));
    let entry = access_line(&php, "/one?x=1");
    let fields = &entry["fields"];
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["bytes"], body.len() as u64);
    assert_eq!(fields["user_agent"], "curl/8.0 \"quoted\"");
    assert_eq!(fields["referer"], "https://ref.example/page");
    assert_eq!(fields["request_id"], "abc-123");
    assert_eq!(fields["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(fields["protocol"], "HTTP/1.1");
    assert_eq!(fields["complete"], true);
    assert!(fields["duration_us"].is_u64(), "{entry}");
}

#[test]
fn a_generated_id_is_the_same_in_php_the_response_and_the_log() {
    let php = start(
        "server_vars.php",
        "handle",
        json!({"logs.encoding": "json"}),
    );
    let response = client()
        .get(php.url("/gen"))
        .header("X-Request-Id", "has space")
        .send()
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(is_generated_id(&id), "{id}");
    let seen: Value = response.json().unwrap();
    assert_eq!(seen["HTTP_X_REQUEST_ID"], id.as_str());
    assert_eq!(
        access_line(&php, "/gen")["fields"]["request_id"],
        id.as_str()
    );
    // Another request, another id.
    let other = client().get(php.url("/gen2")).send().unwrap();
    assert_ne!(other.headers()["x-request-id"].to_str().unwrap(), id);
}

#[test]
fn streamed_answers_and_errors_are_logged_with_their_bytes() {
    let php = start("stream.php", "", json!({"logs.encoding": "json"}));
    let body = client()
        .get(php.url("/chunks?n=4"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(&body[..], b"chunk0;chunk1;chunk2;chunk3;end");
    let entry = access_line(&php, "/chunks?n=4");
    assert_eq!(entry["fields"]["bytes"], body.len() as u64);
    assert_eq!(entry["fields"]["complete"], true);
    // An answer rr makes itself (400 bad_target) carries and logs an id too.
    let response = client().get(php.url("/a%00b")).send().unwrap();
    assert_eq!(response.status(), 400);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.bytes().unwrap();
    let entry = access_line(&php, "/a%00b");
    assert_eq!(entry["fields"]["status"], 400);
    assert_eq!(entry["fields"]["bytes"], body.len() as u64);
    assert_eq!(entry["fields"]["request_id"], id.as_str());
}

#[test]
fn the_text_line_has_the_same_fields() {
    let php = start("server_vars.php", "handle", json!({}));
    client()
        .get(php.url("/text"))
        .header("User-Agent", "agent/1")
        .header("X-Request-Id", "text-id")
        .send()
        .unwrap();
    assert!(php.wait_for_log("uri=\"/text\""), "{}", php.stderr());
    let log = php.stderr();
    let line = log.lines().find(|l| l.contains("uri=\"/text\"")).unwrap();
    for field in [
        "rr::access",
        "status=200",
        "request_id=\"text-id\"",
        "user_agent=\"agent/1\"",
        "bytes=",
        "duration_us=",
        "complete=true",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
}

#[test]
fn the_request_id_header_is_configurable() {
    let php = start(
        "server_vars.php",
        "respond",
        json!({"http.request_id.header": "X-Correlation-Id", "http.request_id.accept": false,
               "http.request_id.response": false}),
    );
    let response = client()
        .get(php.url("/c"))
        .header("X-Correlation-Id", "client-chosen")
        .send()
        .unwrap();
    assert!(response.headers().get("x-correlation-id").is_none());
    assert!(response.headers().get("x-request-id").is_none());
    let seen: Value = response.json().unwrap();
    let id = seen["requestId"].as_str().unwrap();
    assert!(is_generated_id(id), "{id}");
    assert_eq!(seen["headers"]["X-Correlation-Id"], json!([id]));

    let php = start(
        "server_vars.php",
        "respond",
        json!({"http.request_id.enabled": false}),
    );
    let response = client().get(php.url("/off")).send().unwrap();
    assert!(response.headers().get("x-request-id").is_none());
    let seen: Value = response.json().unwrap();
    assert_eq!(seen["requestId"], Value::Null);
    assert!(seen["headers"].get("X-Request-Id").is_none(), "{seen}");

    // By default ids come with the access log: they reach PHP but are not sent back.
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_MODE", "respond".to_owned()));
    opts.ini.push(("rr.access_logs", "1".into()));
    let php = Php::start_with("server_vars.php", opts);
    let response = client().get(php.url("/default")).send().unwrap();
    assert!(response.headers().get("x-request-id").is_none());
    let seen: Value = response.json().unwrap();
    assert!(
        is_generated_id(seen["requestId"].as_str().unwrap()),
        "{seen}"
    );
    // Without the access log, no id unless asked for.
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_MODE", "respond".to_owned()));
    let php = Php::start_with("server_vars.php", opts);
    let seen: Value = client()
        .get(php.url("/quiet"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(seen["requestId"], Value::Null);
    assert!(seen["headers"].get("X-Request-Id").is_none(), "{seen}");
}
