//! Answers from PHP that the wire cannot carry as asked: the client gets a clear 500 JSON, the
//! log says why, and the server goes on.
mod common;
use common::{client, Php};
use serde_json::Value;

fn json(resp: reqwest::blocking::Response) -> Value {
    resp.json().expect("a JSON body")
}

#[test]
fn more_header_lines_than_an_answer_holds_are_a_500_and_the_server_goes_on() {
    let php = Php::start("answers.php");
    let resp = client().get(php.url("/headers?n=30000")).send().unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(json(resp)["code"], "worker_error");
    // Logged before the answer; the harness reads the pipe on a thread of its own.
    assert!(
        php.wait_for_log("the script set 30000 header lines"),
        "{}",
        php.stderr()
    );
    assert!(!php.stderr().contains("panicked"), "{}", php.stderr());
    let resp = client().get(php.url("/")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "ok");
}

/// Two requests on one connection, the second closing it: both answers as the wire had them.
fn then_ok(php: &Php, path: &str) -> String {
    let answers = php.raw(
        format!(
            "GET {path} HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(answers.ends_with("\r\n\r\nok"), "{answers:.300}");
    answers
}

#[test]
fn a_head_too_large_for_clients_to_read_is_a_500_and_the_connection_goes_on() {
    let php = Php::start("answers.php");
    // One field of 64 KiB at most (nghttp2 ends the whole HTTP/2 connection past it), 256 KiB
    // of headers at most (browsers refuse more).
    for (path, sent) in [
        ("/headers?n=1&len=65000", true),
        ("/headers?n=1&len=70000", false),
        ("/headers?n=3000&len=60", true),
        ("/headers?n=5000&len=60", false),
    ] {
        let answers = then_ok(&php, path);
        let first = answers.split("\r\n").next().unwrap();
        match sent {
            true => assert_eq!(first, "HTTP/1.1 200 OK", "{path}"),
            false => {
                assert_eq!(first, "HTTP/1.1 500 Internal Server Error", "{path}");
                assert!(answers.contains(r#""code":"bad_response""#), "{path}");
                assert!(!answers.contains("x-h0:"), "{path}: a header went out");
            }
        }
    }
    for line in [
        "header x-h0 takes 70004 bytes, more than the 65536 rr sends",
        "more than the 262144 rr sends",
    ] {
        assert!(php.wait_for_log(line), "{}", php.stderr());
    }
    let h2 = common::h2_client()
        .get(php.url("/headers?n=1&len=70000"))
        .send()
        .unwrap();
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    assert_eq!(h2.status(), 500);
    assert_eq!(json(h2)["code"], "bad_response");
}

#[test]
fn a_file_answer_drops_phps_hop_by_hop_headers_like_any_other() {
    let php = Php::start("stream.php");
    let answer = php.raw(b"GET /file-hop HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok"), "{head}");
    assert!(head.contains("\r\nx-from: php"), "{head}");
    for hop in [
        "keep-alive:",
        "upgrade:",
        "x-private:",
        "connection: keep-alive",
    ] {
        assert!(!head.contains(hop), "{hop} went out: {head}");
    }
}

#[test]
fn whitespace_around_a_respond_header_value_is_dropped_as_header_drops_it() {
    let php = Php::start("answers_respond.php");
    let answer = php.raw(b"GET /padded HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert!(answer.contains("\r\nx-padded: value\r\n"), "{answer}");
    assert!(
        answer.contains("\r\nx-inner: a b\r\nx-inner: c\td\r\n"),
        "{answer}"
    );
    // Over HTTP/2 such a value is malformed (RFC 9113 8.2.1): nghttp2 clients reset the stream.
    let h2 = common::h2_client().get(php.url("/padded")).send().unwrap();
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    assert_eq!(h2.headers()["x-padded"], "value");
}
