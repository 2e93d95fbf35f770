//! Limits the server enforces without waking PHP, and the timeouts.
mod common;
use common::{client, Options, Php};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn with(options: serde_json::Value) -> Options<'static> {
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_OPTIONS", options.to_string()));
    opts
}

fn error_code(resp: reqwest::blocking::Response) -> String {
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
    assert!(v["error"].is_string(), "{v}");
    v["code"].as_str().unwrap().to_string()
}

#[test]
fn body_over_the_limit_is_413_with_or_without_content_length() {
    let php = Php::start_with(
        "echo.php",
        with(serde_json::json!({"http.max_request_size": "1KB"})),
    );
    let resp = client()
        .post(php.url("/raw"))
        .body(vec![b'x'; 1025])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(error_code(resp), "body_too_large");
    // Chunked: no Content-Length up front, the limit applies while reading.
    let chunk = "y".repeat(800);
    let request = format!("POST /raw HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n");
    let raw = php.raw(request.as_bytes());
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.contains("body_too_large"), "{raw}");
    // A body at the limit is fine.
    let resp = client()
        .post(php.url("/raw"))
        .body(vec![b'x'; 1024])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// A body refused before it was read (413 from its `Content-Length`, or part-way through its
/// chunks) is read and dropped after the answer until the client stops sending. Closed with
/// those bytes unread, the socket was reset, and a client still writing its body got the reset
/// instead of the 413 (curl: "Failed sending data to the peer", no status); nginx reads on
/// the same way (`lingering_close`).
#[test]
fn a_client_still_sending_a_refused_body_gets_its_413() {
    for options in [
        serde_json::json!({"http.max_request_size": "1KB"}),
        serde_json::json!({"http.max_request_size": "1KB", "http.pool.num_workers": 1}),
    ] {
        let php = Php::start_with("echo.php", with(options.clone()));
        // Far more than the socket buffers of both ends hold.
        let body = vec![b'x'; 64 * 1024 * 1024];
        let chunked = format!("{:x}\r\n", body.len());
        for (head, tail) in [
            (
                format!(
                    "POST /raw HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                ),
                "",
            ),
            (
                format!(
                    "POST /raw HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"
                ),
                "\r\n0\r\n\r\n",
            ),
        ] {
            let mut stream = TcpStream::connect(php.addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            stream
                .write_all(&body)
                .unwrap_or_else(|e| panic!("{options} {head:?}: the body was cut off: {e}"));
            stream.write_all(tail.as_bytes()).unwrap();
            let mut answer = Vec::new();
            let read = stream.read_to_end(&mut answer);
            let answer = String::from_utf8_lossy(&answer);
            assert!(
                answer.starts_with("HTTP/1.1 413"),
                "{options} {head:?}: {read:?} {answer}"
            );
            assert!(answer.contains("body_too_large"), "{answer}");
        }
    }
}

#[test]
fn expect_100_continue_is_refused_before_the_body_or_answered_with_100() {
    let php = Php::start_with(
        "echo.php",
        with(serde_json::json!({"http.max_request_size": "1KB"})),
    );
    // Over the limit: 413 at once, no 100 Continue, the connection closed (the client never
    // sends the body).
    let refused = php.raw(
        b"POST /raw HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n",
    );
    assert!(refused.starts_with("HTTP/1.1 413"), "{refused}");
    assert!(!refused.contains("100 Continue"), "{refused}");
    // Within it: 100 Continue, then the body, then PHP's answer.
    let mut stream = TcpStream::connect(php.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"POST /raw HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut interim = Vec::new();
    let mut byte = [0u8; 1];
    while !interim.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "{interim:?}");
        interim.push(byte[0]);
    }
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"hello").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nhello"), "{answer}");
}

#[test]
fn headers_over_the_limit_are_431() {
    let php = Php::start_with(
        "echo.php",
        with(serde_json::json!({"http.max_header_size": 8192})),
    );
    let big = "v".repeat(20_000);
    let raw = php.raw(format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes());
    assert!(
        raw.starts_with("HTTP/1.1 431"),
        "{}",
        &raw[..raw.len().min(200)]
    );
    // PHP never saw it: the worker still answers normally.
    assert_eq!(client().get(php.url("/raw")).send().unwrap().status(), 200);
}

#[test]
fn malformed_requests_are_400() {
    let php = Php::start("echo.php");
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    ] {
        let raw = php.raw(bad);
        assert!(
            raw.starts_with("HTTP/1.1 400"),
            "{:?} -> {raw}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(client().get(php.url("/raw")).send().unwrap().status(), 200);
}

fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(start.elapsed())
            }
            Err(_) => return None,
        }
    }
}

#[test]
fn a_slow_request_head_is_cut_off_but_an_idle_keepalive_lives_longer() {
    let php = Php::start_with(
        "echo.php",
        with(serde_json::json!({"http.read_header_timeout": "300ms", "http.idle_timeout": "2s"})),
    );
    // Slowloris: half a head, never finished.
    let mut slow = TcpStream::connect(php.addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let closed =
        closed_within(&mut slow, Duration::from_secs(5)).expect("server closes a stalled head");
    assert!(closed < Duration::from_millis(1500), "{closed:?}");

    // Idle keep-alive: one full exchange, then silence. Still open after the head timeout...
    let mut idle = TcpStream::connect(php.addr).unwrap();
    idle.write_all(b"GET /raw HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(idle.read(&mut buf).unwrap() > 0);
    idle.set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    let early = idle.read(&mut buf);
    assert!(early.is_err(), "closed too early: {early:?}");
    // ...and closed after the idle timeout.
    let closed =
        closed_within(&mut idle, Duration::from_secs(5)).expect("server closes an idle connection");
    assert!(closed < Duration::from_secs(3), "{closed:?}");
}

/// An idle timeout shorter than the head timeout (10 s by default) holds: the watchdog, already
/// waiting for the head's deadline when the request came, used to keep the connection until
/// that deadline.
#[test]
fn an_idle_timeout_shorter_than_the_head_timeout_is_honoured() {
    let php = Php::start_with(
        "echo.php",
        with(serde_json::json!({"http.idle_timeout": "1s"})),
    );
    for request in [
        &b"GET /raw HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"HEAD /raw HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut idle = TcpStream::connect(php.addr).unwrap();
        // The connection waits for its first head (the head timeout's deadline) first.
        std::thread::sleep(Duration::from_millis(300));
        idle.write_all(request).unwrap();
        let mut buf = [0u8; 1024];
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(idle.read(&mut buf).unwrap() > 0);
        let closed = closed_within(&mut idle, Duration::from_secs(9))
            .expect("server closes an idle connection before the head timeout");
        assert!(closed < Duration::from_secs(6), "{closed:?}");
    }
}

/// A configured head timeout longer than hyper's own default (30 s) holds: a client may take
/// 32 s to send a head when `read_header_timeout` is 40 s.
#[test]
fn a_head_timeout_longer_than_thirty_seconds_is_honoured() {
    let php = Php::start_with(
        "echo.php",
        with(serde_json::json!({"http.read_header_timeout": "40s"})),
    );
    let mut slow = TcpStream::connect(php.addr).unwrap();
    slow.write_all(b"GET /raw HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(Duration::from_secs(32));
    // Still open: the rest of the head is taken and answered.
    slow.write_all(b"\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match slow.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "answer after 32 s: {text:?}"
    );
}

#[test]
fn php_too_slow_is_504_and_its_late_answer_is_discarded() {
    let php = Php::start_with(
        "lifecycle.php",
        with(serde_json::json!({"http.request_timeout": "100ms"})),
    );
    let resp = client().get(php.url("/slow")).send().unwrap();
    assert_eq!(resp.status(), 504);
    assert_eq!(error_code(resp), "request_timeout");
    std::thread::sleep(Duration::from_millis(300));
    let resp = client().get(php.url("/next")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "ok");
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let php = Php::start_with(
        "lifecycle.php",
        with(serde_json::json!({"http.queue_size": 1})),
    );
    let url = php.url("/slow");
    let busy = std::thread::spawn({
        let url = url.clone();
        move || client().get(url).send().unwrap().status()
    });
    std::thread::sleep(Duration::from_millis(100)); // PHP is now inside /slow
    let queued = std::thread::spawn({
        let url = url.clone();
        move || client().get(url).send().unwrap().status()
    });
    std::thread::sleep(Duration::from_millis(50));
    let resp = client().get(php.url("/refused")).send().unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(error_code(resp), "queue_full");
    assert_eq!(busy.join().unwrap(), 200);
    assert_eq!(queued.join().unwrap(), 200);
}
