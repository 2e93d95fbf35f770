//! HTTP/1.1 and HTTP/2 round trips through a real php process.
mod common;
use common::{client, h2_client, Php};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn json(resp: reqwest::blocking::Response) -> Value {
    serde_json::from_slice(&resp.bytes().unwrap()).unwrap()
}

#[test]
fn request_fields_reach_php() {
    let php = Php::start("echo.php");
    let resp = client()
        .post(php.url("/path/x?a[b][]=1&a[b][]=2&c=%20d"))
        .header("Cookie", "k=v; arr[x]=1")
        .header("X-Foo", "bar")
        .header("X-Multi", "one")
        .header("X-Multi", "two")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("f[n][]=1&f[n][]=2&g=%C3%A9")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let cookies: Vec<_> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2; HttpOnly"]);
    assert_eq!(resp.headers()["x-count"], "3");
    let v = json(resp);
    assert_eq!(v["method"], "POST");
    assert_eq!(
        v["uri"],
        format!("http://{}/path/x?a[b][]=1&a[b][]=2&c=%20d", php.addr)
    );
    assert_eq!(v["requestUri"], "/path/x?a[b][]=1&a[b][]=2&c=%20d");
    assert_eq!(v["protocol"], "HTTP/1.1");
    assert_eq!(v["remoteAddr"], "127.0.0.1");
    assert_eq!(v["https"], false);
    assert_eq!(
        v["query"],
        serde_json::json!({"a": {"b": ["1", "2"]}, "c": " d"})
    );
    assert_eq!(
        v["cookies"],
        serde_json::json!({"k": "v", "arr": {"x": "1"}})
    );
    assert_eq!(
        v["parsed"],
        serde_json::json!({"f": {"n": ["1", "2"]}, "g": "é"})
    );
    assert_eq!(v["body"], "f[n][]=1&f[n][]=2&g=%C3%A9");
    assert_eq!(v["headers"]["X-Multi"], serde_json::json!(["one", "two"]));
    assert_eq!(v["headers"]["X-Foo"], serde_json::json!(["bar"]));
    assert_eq!(v["xFoo"], "bar");
    assert_eq!(v["attributes"], serde_json::json!([]));
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let php = Php::start("echo.php");
    let mut stream = TcpStream::connect(php.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Two pipelined requests, then a third after reading: one connection, three answers.
    stream
        .write_all(b"GET /raw HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none")
        .unwrap();
    stream
        .write_all(b"GET /raw HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwo")
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.matches("HTTP/1.1 200").count() < 2 || !seen.ends_with("two") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    stream
        .write_all(b"GET /raw HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nthree")
        .unwrap();
    let n = stream.read(&mut buf).unwrap();
    let third = String::from_utf8_lossy(&buf[..n]);
    assert!(
        third.starts_with("HTTP/1.1 200") && third.ends_with("three"),
        "{third}"
    );
}

#[test]
fn http2_prior_knowledge() {
    let php = Php::start("echo.php");
    let resp = h2_client().get(php.url("/h2?x=1")).send().unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let v = json(resp);
    assert_eq!(v["protocol"], "HTTP/2.0");
    assert_eq!(v["query"]["x"], "1");
}

#[test]
fn bodies_are_binary_safe_both_ways() {
    let php = Php::start("echo.php");
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    for c in [client(), h2_client()] {
        let resp = c.post(php.url("/raw")).body(body.clone()).send().unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.bytes().unwrap().as_ref(), body.as_slice());
    }
}

#[test]
fn multipart_uploads_are_files_deleted_after_the_response() {
    let php = Php::start("echo.php");
    let content: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let form = reqwest::blocking::multipart::Form::new()
        .text("meta[name]", "report")
        .text("tags[]", "a")
        .text("tags[]", "b")
        .part(
            "doc[pdf]",
            reqwest::blocking::multipart::Part::bytes(content.clone())
                .file_name("r.pdf")
                .mime_str("application/pdf")
                .unwrap(),
        );
    let v = json(
        client()
            .post(php.url("/upload"))
            .multipart(form)
            .send()
            .unwrap(),
    );
    assert_eq!(
        v["parsed"],
        serde_json::json!({"meta": {"name": "report"}, "tags": ["a", "b"]})
    );
    assert_eq!(v["body"], "");
    let up = &v["uploads"]["doc"]["pdf"];
    assert_eq!(up["name"], "r.pdf");
    assert_eq!(up["mime"], "application/pdf");
    assert_eq!(up["size"], 200_000);
    assert_eq!(up["error"], 0);
    assert_eq!(up["tmpName"]["exists"], true);
    assert_eq!(up["tmpName"]["md5"], format!("{:x}", md5_of(&content)));
    let path = up["tmpName"]["path"].as_str().unwrap().to_string();
    // The next request is taken only after the previous response: its upload is gone by then.
    client().get(php.url("/next")).send().unwrap();
    assert!(
        !std::path::Path::new(&path).exists(),
        "{path} should be deleted"
    );
}

/// php-fpm fills `$_FILES` for a POST only (its `php://input` holds any other method's body,
/// tests/fixtures/fpm `upload_put`); RoadRunner parses a PUT's multipart body as well. rr keeps
/// both: the raw body (spooled past `http.body_buffer_size`) and the parsed fields and files.
#[test]
fn a_multipart_put_is_parsed_and_kept_raw_and_its_files_go() {
    let file: String = (0..200_000u32)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nreport\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"r.txt\"\r\n\
         Content-Type: text/plain\r\n\r\n{file}\r\n--XyZ--\r\n"
    );
    for workers in [0, 1] {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = common::Options::default();
        let options = serde_json::json!({
            "http.uploads.dir": dir.path().display().to_string(),
            "http.pool.num_workers": workers,
        });
        opts.env.push(("RR_TEST_OPTIONS", options.to_string()));
        let php = Php::start_with("echo.php", opts);
        let v = json(
            client()
                .put(php.url("/put"))
                .header("Content-Type", "multipart/form-data; boundary=XyZ")
                .body(body.clone())
                .send()
                .unwrap(),
        );
        assert_eq!(v["method"], "PUT");
        assert_eq!(v["parsed"], serde_json::json!({"title": "report"}));
        assert_eq!(
            v["body"].as_str(),
            Some(body.as_str()),
            "workers: {workers}"
        );
        // A body that is not well-formed multipart is still the body: php-fpm hands it to
        // php://input as it is (a POST's would be refused with 400).
        let broken = "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nno end";
        let resp = client()
            .put(php.url("/put"))
            .header("Content-Type", "multipart/form-data; boundary=XyZ")
            .body(broken)
            .send()
            .unwrap();
        // echo.php answers what it got with a 201.
        assert_eq!(resp.status(), 201, "workers: {workers}");
        let b = json(resp);
        assert_eq!(b["body"].as_str(), Some(broken), "workers: {workers}");
        assert_eq!(
            b["uploads"],
            serde_json::json!([]),
            "workers: {workers}: {b}"
        );
        let up = &v["uploads"]["doc"];
        assert_eq!(up["size"], 200_000);
        assert_eq!(
            up["tmpName"]["md5"],
            format!("{:x}", md5_of(file.as_bytes()))
        );
        // Both the raw body's spool file and the upload go once the next request is answered.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            client().get(php.url("/next")).send().unwrap();
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            if left.is_empty() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "left: {left:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_100_mb_upload_is_streamed_to_disk() {
    let mut opts = common::Options::default();
    opts.env.push((
        "RR_TEST_OPTIONS",
        serde_json::json!({"http.max_request_size": 256}).to_string(),
    ));
    let php = Php::start_with("echo.php", opts);
    let content: Vec<u8> = (0..100 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let digest = format!("{:x}", md5_of(&content));
    let part = reqwest::blocking::multipart::Part::bytes(content).file_name("big.bin");
    let form = reqwest::blocking::multipart::Form::new().part("file", part);
    let v = json(
        client()
            .post(php.url("/big"))
            .multipart(form)
            .send()
            .unwrap(),
    );
    assert_eq!(v["uploads"]["file"]["size"], 100 * 1024 * 1024);
    assert_eq!(v["uploads"]["file"]["tmpName"]["md5"], digest);
}

#[test]
fn a_thousand_concurrent_connections_all_get_answers() {
    raise_fd_limit(8192);
    let php = Php::start("echo.php");
    let addr = php.addr;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ok = rt.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut streams = Vec::new();
        for _ in 0..1000 {
            streams.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let tasks: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                tokio::spawn(async move {
                    let req = format!("GET /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{i}", i.to_string().len());
                    s.write_all(req.as_bytes()).await.unwrap();
                    let mut out = String::new();
                    s.read_to_string(&mut out).await.unwrap();
                    out.starts_with("HTTP/1.1 200") && out.ends_with(&format!("\r\n\r\n{i}"))
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            ok += tokio::time::timeout(Duration::from_secs(60), t).await.unwrap().unwrap() as usize;
        }
        ok
    });
    assert_eq!(ok, 1000);
}

fn raise_fd_limit(n: u64) {
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = n.min(lim.rlim_max);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

fn md5_of(data: &[u8]) -> md5::Digest {
    md5::compute(data)
}
