//! The request PHP sees is the request the client sent: a Host header never rewrites the path or
//! query, a `#` in the target and a body framed two ways are refused before PHP runs, PHP's
//! answers are framed consistently (a status that is not one is refused),
//! in single-process and pool mode, over HTTP/1.1 and h2c (rules: docs/request-target.md).
mod common;
use common::{Options, Php};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn start(pool: bool, handle: bool) -> Php {
    let mut opts = Options::default();
    let options = match pool {
        true => json!({"http.pool.num_workers": 1}),
        false => json!({}),
    };
    opts.env.push(("RR_TEST_OPTIONS", options.to_string()));
    if handle {
        opts.env.push(("RR_TEST_MODE", "handle".into()));
    }
    Php::start_with("identity.php", opts)
}

/// One answer read off a keep-alive connection.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(php: &Php) -> Conn {
        let stream = TcpStream::connect(php.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Conn {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// Reads one answer framed by Content-Length (rr's answers here all carry one), or `None`
    /// when the server closed the connection.
    fn read(&mut self) -> Option<Answer> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let status = line.split(' ').nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':').unwrap();
            headers.push((n.to_string(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).unwrap();
        Some(Answer {
            status,
            headers,
            body,
        })
    }

    fn exchange(&mut self, request: &[u8]) -> Answer {
        self.send(request);
        self.read().expect("an answer")
    }
}

fn get(target: &str, host: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

/// The refused answer is rr's JSON with `code`; PHP never saw the request.
fn assert_refused(answer: &Answer, status: u16, code: &str, what: &str) {
    assert_eq!(answer.status, status, "{what}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    assert_eq!(answer.json()["code"], code, "{what}");
}

const BAD_HOSTS: [&str; 12] = [
    "x/admin/users?id=7&",
    "x?id=7",
    "x#frag",
    "@",
    "user@x",
    "x:99999",
    "x:8a",
    "[::1",
    "[::1]junk",
    "x\\y",
    "%zz",
    ":80",
];

fn host_injection_is_refused(pool: bool, handle: bool) {
    let php = start(pool, handle);
    let mut conn = Conn::open(&php);
    for host in BAD_HOSTS {
        let answer = conn.exchange(&get("/public?page=2", host));
        assert_refused(&answer, 400, "bad_host", host);
    }
    let empty = conn.exchange(b"GET /public HTTP/1.1\r\nHost:\r\n\r\n");
    assert_refused(&empty, 400, "bad_host", "empty host");
    let missing = conn.exchange(b"GET /public HTTP/1.1\r\n\r\n");
    assert_refused(&missing, 400, "bad_host", "no host");
    let twice = conn.exchange(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n");
    assert_refused(&twice, 400, "bad_host", "two hosts");
    let mismatch = conn.exchange(&get("http://other.test/admin", "mine.test"));
    assert_refused(&mismatch, 400, "bad_host", "absolute-form against Host");

    let ok = conn
        .exchange(&get("/public?page=2", "mine.test:8080"))
        .json();
    assert_eq!(ok["served"], 1, "PHP ran for a refused request: {ok}");
    if handle {
        assert_eq!(ok["REQUEST_URI"], "/public?page=2");
        assert_eq!(ok["QUERY_STRING"], "page=2");
        assert_eq!(ok["DOCUMENT_URI"], "/public");
        assert_eq!(ok["HTTP_HOST"], "mine.test:8080");
        assert_eq!(ok["SERVER_NAME"], "mine.test");
        assert_eq!(ok["SERVER_PORT"], "8080");
        assert_eq!(ok["GET"], json!({"page": "2"}));
    } else {
        assert_eq!(ok["requestUri"], "/public?page=2");
        assert_eq!(ok["uri"], "http://mine.test:8080/public?page=2");
        assert_eq!(ok["query"], json!({"page": "2"}));
        assert_eq!(
            (&ok["host"], &ok["port"], &ok["path"], &ok["queryString"]),
            (
                &json!("mine.test"),
                &json!(8080),
                &json!("/public"),
                &json!("page=2")
            )
        );
        assert_eq!(ok["hostHeader"], json!(["mine.test:8080"]));
    }
}

#[test]
fn a_host_header_never_rewrites_the_target_single_process() {
    host_injection_is_refused(false, false);
}

#[test]
fn a_host_header_never_rewrites_the_target_in_handle_mode() {
    host_injection_is_refused(false, true);
}

#[test]
fn a_host_header_never_rewrites_the_target_in_pool_mode() {
    host_injection_is_refused(true, false);
}

fn fragments_and_bad_targets_are_refused(pool: bool) {
    let php = start(pool, false);
    let mut conn = Conn::open(&php);
    for (request, status, code) in [
        // First: after a refused CONNECT hyper reads on, and so must the `#` check.
        (
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n".to_vec(),
            405,
            "method_not_allowed",
        ),
        (
            get("/remote.php/dav/files/alice/dir/#x", "h"),
            400,
            "bad_target",
        ),
        (get("/a?b=1#c", "h"), 400, "bad_target"),
        (get("/#", "h"), 400, "bad_target"),
        (get("/a%zz", "h"), 400, "bad_target"),
        (get("/a%00b", "h"), 400, "bad_target"),
        (get("/../etc/passwd", "h"), 400, "bad_target"),
        (get("/%2e%2e/x", "h"), 400, "bad_target"),
        (get("*", "h"), 400, "bad_target"),
        (get("ftp://h/x", "h"), 400, "bad_target"),
        (
            b"DELETE /dir/#x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n".to_vec(),
            400,
            "bad_target",
        ),
        (
            b"TRACE / HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            405,
            "method_not_allowed",
        ),
    ] {
        let what = String::from_utf8_lossy(&request).into_owned();
        let answer = conn.exchange(&request);
        assert_refused(&answer, status, code, &what);
    }
    // A body that looks like a request with a '#' does not taint the next request.
    let body = "GET /#in-body HTTP/1.1\r\nHost: h\r\n\r\n";
    let post = format!(
        "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = conn.exchange(post.as_bytes());
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["served"], 1, "PHP ran for a refused request");
    let next = conn.exchange(&get("/dir/", "h")).json();
    assert_eq!(next["requestUri"], "/dir/");
}

#[test]
fn a_fragment_or_a_target_outside_the_rules_never_reaches_php() {
    fragments_and_bad_targets_are_refused(false);
}

#[test]
fn a_fragment_never_reaches_a_pool_worker() {
    fragments_and_bad_targets_are_refused(true);
}

/// A chunk-size line may be as long as the client likes: hyper takes any number of leading zeros
/// and of spaces after the size. Such a line arrives over several reads; rr's reading of the raw
/// heads lost its place past 8 KiB of it, and the `#` of the next request went by unseen:
/// `DELETE /dir/#x` ran as `DELETE /dir/`.
fn a_fragment_after_a_long_chunk_size_line_is_refused(pool: bool) {
    let php = start(pool, false);
    let mut conn = Conn::open(&php);
    let (zeros, spaces) = ("0".repeat(100_000), " ".repeat(100_000));
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
         {zeros}3{spaces};ext=1\r\nabc\r\n0\r\n\r\n"
    );
    let answer = conn.exchange(request.as_bytes());
    assert_eq!(answer.json()["served"], 1);
    let answer = conn.exchange(b"DELETE /dir/#x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_refused(
        &answer,
        400,
        "bad_target",
        "DELETE /dir/#x after a long chunk-size line",
    );
    assert_eq!(conn.exchange(&get("/next", "h")).json()["served"], 2);
}

#[test]
fn a_fragment_after_a_long_chunk_size_line_is_refused_single_process() {
    a_fragment_after_a_long_chunk_size_line_is_refused(false);
}

#[test]
fn a_fragment_after_a_long_chunk_size_line_is_refused_in_pool_mode() {
    a_fragment_after_a_long_chunk_size_line_is_refused(true);
}

/// A body framed two ways, or in a coding rr does not decode, is refused before PHP runs and
/// the connection is closed, so bytes after it are never read as a request (nginx answers the
/// same statuses). hyper alone would read the chunks of `Content-Length` + `Transfer-Encoding`
/// and hand PHP a `gzip, chunked` body still gzipped. hyper reads no `Content-Length` after a
/// `Transfer-Encoding`, and takes the chunks when the last `Transfer-Encoding` says `chunked`:
/// rr's reading of the head once refused those values where hyper did not, stopped looking at
/// the connection's heads, and PHP ran the request (and a `#` after it).
fn ambiguous_or_encoded_bodies_are_refused(pool: bool) {
    let php = start(pool, false);
    let smuggled =
        "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\nDELETE /dir/#x HTTP/1.1\r\nHost: h\r\n\r\n";
    for (head, status, code) in [
        (
            &b"Content-Length: 4\r\nTransfer-Encoding: chunked"[..],
            400,
            "bad_framing",
        ),
        (
            b"Transfer-Encoding: chunked\r\nContent-Length: 4",
            400,
            "bad_framing",
        ),
        (
            b"Transfer-Encoding: chunked\r\nContent-Length: abc",
            400,
            "bad_framing",
        ),
        (
            b"Transfer-Encoding: chunked\r\nContent-Length: \xff",
            400,
            "bad_framing",
        ),
        (
            b"Transfer-Encoding: chunked\r\nContent-Length: 1\r\nContent-Length: 2",
            400,
            "bad_framing",
        ),
        (
            b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2",
            400,
            "bad_framing",
        ),
        (
            b"Transfer-Encoding: gzip, chunked",
            501,
            "unsupported_transfer_encoding",
        ),
        (
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            501,
            "unsupported_transfer_encoding",
        ),
        (
            b"Transfer-Encoding: \xff\r\nTransfer-Encoding: chunked",
            501,
            "unsupported_transfer_encoding",
        ),
    ] {
        let what = String::from_utf8_lossy(head);
        let mut conn = Conn::open(&php);
        let mut request = b"POST /upload HTTP/1.1\r\nHost: h\r\n".to_vec();
        request.extend_from_slice(head);
        request.extend_from_slice(b"\r\n\r\n0\r\n\r\n");
        request.extend_from_slice(smuggled.as_bytes());
        let answer = conn.exchange(&request);
        assert_refused(&answer, status, code, &what);
        assert_eq!(answer.header("connection"), Some("close"), "{what}");
        assert!(
            conn.read().is_none(),
            "{what}: the bytes after the body were served"
        );
    }
    // PHP saw none of them.
    let mut conn = Conn::open(&php);
    assert_eq!(conn.exchange(&get("/next", "h")).json()["served"], 1);
}

#[test]
fn ambiguous_or_encoded_bodies_are_refused_single_process() {
    ambiguous_or_encoded_bodies_are_refused(false);
}

#[test]
fn ambiguous_or_encoded_bodies_are_refused_in_pool_mode() {
    ambiguous_or_encoded_bodies_are_refused(true);
}

/// hyper ends a trailer line at CR LF only, and takes a bare LF for part of the line (RFC 9110
/// 5.5 has such a field refused): `X-T: 1\n\nGET /ghost ...` is one trailer section to it,
/// and a trailer section and a request to nginx or any reader that ends lines at a bare LF.
/// rr's reading of the heads ended lines there too, took the ghost for a head, and from then
/// on gave each request the notes of the head before it: the `#` and the length beside chunked
/// after it reached PHP. Such a request is refused before its body ends.
fn a_bare_lf_in_the_trailers_is_refused(pool: bool) {
    let php = start(pool, false);
    let body =
        "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n";
    let after = [
        "DELETE /dir/#x HTTP/1.1\r\nHost: h\r\n\r\n",
        "POST /cl HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ];
    for trailers in [
        "X-T: 1\n\nGET /ghost HTTP/1.1\r\nHost: h\r\n\r\n",
        "\nGET /ghost HTTP/1.1\r\nHost: h\r\n\r\n",
    ] {
        for next in after {
            let what = format!("{trailers:?} then {next:?}");
            let mut conn = Conn::open(&php);
            conn.send(format!("{body}{trailers}{next}").as_bytes());
            let answer = conn.read().expect("an answer");
            assert_refused(&answer, 400, "bad_request", &what);
            let message = answer.json()["error"].as_str().unwrap_or("").to_string();
            assert!(
                message.contains("a bare LF in the chunked body's trailers"),
                "{what}: {message}"
            );
            assert!(conn.read().is_none(), "{what}: more was served");
        }
    }
    // Trailers ending in CR LF are read, and the request after them is checked.
    let mut conn = Conn::open(&php);
    conn.send(format!("{body}X-T: 1\r\n\r\n{}", after[0]).as_bytes());
    assert_eq!(conn.read().expect("PHP's answer").status, 200);
    assert_refused(
        &conn.read().expect("the refusal"),
        400,
        "bad_target",
        "a # after trailers",
    );
    // PHP saw only that one.
    let mut conn = Conn::open(&php);
    assert_eq!(conn.exchange(&get("/next", "h")).json()["served"], 2);
}

#[test]
fn a_bare_lf_in_the_trailers_is_refused_single_process() {
    a_bare_lf_in_the_trailers_is_refused(false);
}

#[test]
fn a_bare_lf_in_the_trailers_is_refused_in_pool_mode() {
    a_bare_lf_in_the_trailers_is_refused(true);
}

#[test]
fn http_1_0_without_host_is_served_with_no_authority() {
    let php = start(false, false);
    let mut conn = Conn::open(&php);
    let answer = conn.exchange(b"GET /old?x=1 HTTP/1.0\r\n\r\n").json();
    assert_eq!(answer["requestUri"], "/old?x=1");
    assert_eq!(answer["host"], "");
    assert_eq!(answer["uri"], "http://localhost/old?x=1");
    assert_eq!(answer["hostHeader"], Value::Null);
}

/// Hand-made h2c: the preface, SETTINGS, and one HEADERS frame of HPACK literals (no Huffman,
/// no indexing), so any pseudo-header set can be sent; returns (status, DATA payload).
fn h2c_request(php: &Php, fields: &[(&str, &str)]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(php.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // SETTINGS, empty
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    let len = block.len();
    // HEADERS, END_STREAM | END_HEADERS, stream 1.
    out.extend_from_slice(&[
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
        1,
        5,
        0,
        0,
        0,
        1,
    ]);
    out.extend_from_slice(&block);
    stream.write_all(&out).unwrap();
    let (mut status, mut data) = (0, Vec::new());
    loop {
        let mut head = [0u8; 9];
        if stream.read_exact(&mut head).is_err() {
            break;
        }
        let len = (head[0] as usize) << 16 | (head[1] as usize) << 8 | head[2] as usize;
        let mut payload = vec![0; len];
        stream.read_exact(&mut payload).unwrap();
        let (kind, flags, id) = (head[3], head[4], head[8]);
        if kind == 4 && flags & 1 == 0 {
            stream.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).unwrap(); // SETTINGS ack
        }
        if id != 1 {
            continue;
        }
        match kind {
            // HEADERS: rr's statuses here are in HPACK's static table (200: 0x88, 400: 0x8c).
            1 => {
                status = match payload.first() {
                    Some(0x88) => 200,
                    Some(0x8c) => 400,
                    other => panic!("status not from the static table: {other:?}"),
                }
            }
            0 => data.extend_from_slice(&payload),
            3 => panic!("stream reset"),
            _ => {}
        }
        if (kind == 0 || kind == 1) && flags & 1 == 1 {
            break;
        }
    }
    (status, data)
}

#[test]
fn over_h2c_a_host_header_never_rewrites_the_target() {
    let php = start(false, false);
    let request = |extra: &[(&str, &str)]| {
        let mut fields = vec![
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/public?page=2"),
        ];
        fields.extend_from_slice(extra);
        h2c_request(&php, &fields)
    };
    // `host` without `:authority`: an injected one is refused, a good one names the host.
    let (status, body) = request(&[("host", "x/admin/users?id=7&")]);
    assert_eq!(status, 400);
    let refused: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(refused["code"], "bad_host");
    let (status, body) = request(&[(":authority", "a.test"), ("host", "b.test")]);
    assert_eq!(
        (
            status,
            serde_json::from_slice::<Value>(&body).unwrap()["code"].as_str()
        ),
        (400, Some("bad_host"))
    );

    let (status, body) = request(&[("host", "h2.test:81")]);
    assert_eq!(status, 200);
    let seen: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["uri"], "http://h2.test:81/public?page=2");
    assert_eq!(seen["query"], json!({"page": "2"}));
    assert_eq!(seen["served"], 1);
    let (status, body) = request(&[(":authority", "h2.test")]);
    assert_eq!(status, 200);
    let seen: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        seen["hostHeader"],
        json!(["h2.test"]),
        "PHP reads :authority as Host"
    );
    assert_eq!(seen["protocol"], "HTTP/2.0");
}

fn a_length_php_contradicts_is_never_sent(handle: bool) {
    let php = start(false, handle);
    let mut conn = Conn::open(&php);
    for (declared, log) in [
        ("3", "Content-Length: 3 with a body of 5 bytes"),
        ("50", "Content-Length: 50 with a body of 5 bytes"),
        ("5, 6", "Content-Length: \"5, 6\""),
        ("x", "Content-Length: \"x\""),
    ] {
        let target = format!("/cl?declared={}&body=hello", declared.replace(' ', "%20"));
        let answer = conn.exchange(&get(&target, "h"));
        assert_refused(&answer, 500, "bad_response", declared);
        let named = php.wait_for_log(log);
        assert!(named, "no log line names {declared}: {}", php.stderr());
    }
    // The connection is still in step: the next answer is the next request's own.
    let ok = conn.exchange(&get("/cl?declared=5&body=hello", "h"));
    assert_eq!((ok.status, ok.body.as_slice()), (200, &b"hello"[..]));
}

#[test]
fn a_content_length_that_contradicts_the_body_is_refused() {
    a_length_php_contradicts_is_never_sent(false);
}

#[test]
fn a_content_length_that_contradicts_the_body_is_refused_in_handle_mode() {
    a_length_php_contradicts_is_never_sent(true);
}

/// `http_response_code()` takes any number; one outside 100-599 is no HTTP status, and was sent
/// as 200 (99, 1000) or as `600 <none>`. `respond()` throws a ValueError for one; under
/// `handle()` the answer is refused as a worker error naming it, the output dropped.
fn a_status_that_is_not_one_is_refused(pool: bool) {
    let php = start(pool, true);
    let mut conn = Conn::open(&php);
    for target in [
        "/status?code=99",
        "/status?code=600",
        "/status?code=1000",
        "/status?code=-1",
        "/status?code=1000&flush=1",
    ] {
        let answer = conn.exchange(&get(target, "h"));
        assert_refused(&answer, 500, "worker_error", target);
        let code = &target["/status?code=".len()..].split('&').next().unwrap();
        let log = format!("the script set the status {code}, which is not an HTTP status");
        let named = php.wait_for_log(&log);
        assert!(named, "no log line names {code}: {}", php.stderr());
    }
    // The connection is still in step, and a status PHP did not set is 200.
    let ok = conn.exchange(&get("/status?code=0", "h"));
    assert_eq!((ok.status, ok.body.as_slice()), (200, &b"before"[..]));
    let ok = conn.exchange(&get("/status?code=599", "h"));
    assert_eq!((ok.status, ok.body.as_slice()), (599, &b"before"[..]));
}

#[test]
fn a_status_that_is_not_one_is_refused_in_handle_mode() {
    a_status_that_is_not_one_is_refused(false);
}

#[test]
fn a_status_that_is_not_one_is_refused_in_handle_mode_in_a_pool() {
    a_status_that_is_not_one_is_refused(true);
}

/// Reads what the server sends until it ends the connection (an answer cut off ends in a reset,
/// src/server/abort.rs): never a complete answer of `declared` bytes, so the client can tell
/// the stream was cut off.
fn assert_cut_off(php: &Php, target: &str, declared: usize) {
    let mut conn = Conn::open(php);
    conn.send(&get(target, "h"));
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading the answer to {target}: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&all);
    // hyper may or may not have flushed the head before the cut.
    let body_len = text.split_once("\r\n\r\n").map_or(0, |(_, b)| b.len());
    assert!(body_len < declared, "a complete answer went out: {text}");
    assert!(
        !text.contains("defgh"),
        "bytes past the declared length: {text}"
    );
}

#[test]
fn a_stream_that_breaks_its_declared_length_is_cut_off() {
    let php = start(false, false);
    assert_cut_off(&php, "/stream-cl?declared=4&more=defgh", 4);
    assert_cut_off(&php, "/stream-cl?declared=10", 10);
    // Exactly it: kept alive.
    let mut conn = Conn::open(&php);
    let answer = conn.exchange(&get("/stream-cl?declared=6&more=def", "h"));
    assert_eq!(answer.body, b"abcdef");
    let next = conn.exchange(&get("/next", "h"));
    assert_eq!(next.status, 200);
    assert!(
        php.wait_for_log("Content-Length: 4 with a body of 8 bytes"),
        "{}",
        php.stderr()
    );
}

/// PHP declares a length, streams exactly that much, then writes more: the client gets a whole
/// answer of the declared length on a connection that stays usable, and the log says bytes were
/// dropped (nginx logs the same of an upstream). The extra bytes were dropped without a word.
#[test]
fn a_stream_that_goes_on_past_a_complete_length_is_reported_and_the_connection_kept() {
    for pool in [false, true] {
        let php = start(pool, false);
        let mut conn = Conn::open(&php);
        let answer = conn.exchange(&get("/stream-cl?declared=3&more=defgh", "h"));
        assert_eq!((answer.status, answer.body.as_slice()), (200, &b"abc"[..]));
        let next = conn.exchange(&get("/next", "h"));
        assert_eq!(next.status, 200, "pool: {pool}");
        assert!(
            php.wait_for_log("wrote past the Content-Length: 3 it declared"),
            "pool: {pool}: {}",
            php.stderr()
        );
    }
}

#[test]
fn hop_by_hop_headers_from_php_are_dropped() {
    let php = start(false, false);
    let mut conn = Conn::open(&php);
    let answer = conn.exchange(&get("/hop", "h"));
    assert_eq!((answer.status, answer.body.as_slice()), (200, &b"hop"[..]));
    for name in ["keep-alive", "transfer-encoding", "upgrade", "x-private"] {
        assert_eq!(answer.header(name), None, "{name}");
    }
    assert_eq!(answer.header("x-kept"), Some("yes"));
    assert_ne!(answer.header("connection"), Some("close, X-Private"));
    // PHP's `Connection: close` did not end the connection.
    let next = conn.exchange(&get("/next", "h"));
    assert_eq!(next.status, 200);
}

#[test]
fn early_hints_are_refused_with_a_value_error_that_says_why() {
    let php = start(false, false);
    let mut conn = Conn::open(&php);
    let answer = conn.exchange(&get("/early", "h"));
    assert_eq!(answer.status, 200);
    let text = String::from_utf8_lossy(&answer.body);
    assert!(
        text.starts_with(
            "ValueError: RR\\Worker::respond(): status 103 is an interim (1xx) status"
        ),
        "{text}"
    );
}
