//! Streamed responses and files streamed by Rust (sendFile).
mod common;
use common::{client, h2_client, Options, Php};
use std::io::Read;
use std::time::{Duration, Instant};

#[test]
fn respond_with_end_of_stream_false_streams_chunks() {
    let php = Php::start("stream.php");
    for c in [client(), h2_client()] {
        let start = Instant::now();
        let mut resp = c
            .get(php.url("/chunks?n=4&delay_us=150000"))
            .send()
            .unwrap();
        let head_at = start.elapsed();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-streamed"], "yes");
        assert!(resp.headers().get("content-length").is_none());
        let mut body = String::new();
        resp.read_to_string(&mut body).unwrap();
        let body_at = start.elapsed();
        assert_eq!(body, "chunk0;chunk1;chunk2;chunk3;end");
        // The head left before PHP produced the later chunks (3 x 150 ms of sleeping).
        assert!(
            body_at - head_at > Duration::from_millis(300),
            "head {head_at:?}, body {body_at:?}"
        );
    }
}

/// `stream.php` in a single process, or under a pool master with one worker.
fn stream_php(pool: bool) -> Php {
    let mut opts = Options::default();
    if pool {
        opts.env.push((
            "RR_TEST_OPTIONS",
            serde_json::json!({"http.pool.num_workers": 1}).to_string(),
        ));
    }
    Php::start_with("stream.php", opts)
}

/// Whether the answer's transfer failed (cut off before its end), rather than ended whole.
fn cut_off(answer: reqwest::Result<reqwest::blocking::Response>) -> bool {
    answer.and_then(|a| a.bytes()).is_err()
}

#[test]
fn an_error_reported_mid_stream_cuts_the_answer_off_and_the_worker_goes_on() {
    for pool in [false, true] {
        let php = stream_php(pool);
        let pid = || {
            client()
                .get(php.url("/pid"))
                .send()
                .unwrap()
                .text()
                .unwrap()
        };
        let before = pid();
        for c in [client(), h2_client()] {
            // A complete answer would pass "chunk0;chunk1;" for the whole body.
            assert!(
                cut_off(c.get(php.url("/error-midway")).send()),
                "pool: {pool}"
            );
        }
        assert!(php.wait_for_log("failed half-way"), "{}", php.stderr());
        // error() is the documented way to report a failure: it must not end the worker.
        assert_eq!(pid(), before, "pool: {pool}\n{}", php.stderr());
    }
}

/// How an HTTP/1.0 exchange ended: `Ok` with the bytes read at a plain close, `Err` with the
/// error that ended the read.
fn http_1_0(php: &Php, path: &str) -> Result<Vec<u8>, std::io::Error> {
    let mut conn = std::net::TcpStream::connect(php.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    std::io::Write::write_all(&mut conn, format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    conn.read_to_end(&mut got).map(|_| got)
}

#[test]
fn an_answer_cut_off_over_http_1_0_ends_in_a_reset_not_a_close() {
    for pool in [false, true] {
        let php = stream_php(pool);
        // Without chunks or a length, the close is the end of an HTTP/1.0 answer: a plain one
        // would make "chunk0;chunk1;" the whole body (nginx's default upstream protocol).
        let cut = http_1_0(&php, "/error-midway");
        assert_eq!(
            cut.as_ref().map_err(std::io::Error::kind).err(),
            Some(std::io::ErrorKind::ConnectionReset),
            "pool: {pool}: {:?}",
            cut.map(|b| String::from_utf8_lossy(&b).into_owned())
        );
        // A whole answer still ends in a plain close.
        let whole = String::from_utf8(http_1_0(&php, "/chunks?n=2").unwrap()).unwrap();
        assert!(whole.ends_with("chunk0;chunk1;end"), "{whole}");
    }
}

fn file_with(content: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".txt").tempfile().unwrap();
    std::io::Write::write_all(&mut f, content).unwrap();
    f
}

#[test]
fn send_file_streams_with_length_range_and_head() {
    let php = Php::start("stream.php");
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
    let file = file_with(&content);
    let url = php.url(&format!("/file?path={}", file.path().display()));

    let resp = client().get(&url).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "100000");
    assert_eq!(resp.headers()["x-from"], "php");
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
    assert_eq!(resp.bytes().unwrap().as_ref(), content.as_slice());

    let resp = client()
        .get(&url)
        .header("Range", "bytes=100-199")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 100-199/100000");
    assert_eq!(resp.bytes().unwrap().as_ref(), &content[100..200]);

    let resp = client()
        .get(&url)
        .header("Range", "bytes=-10")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().unwrap().as_ref(), &content[99_990..]);

    let resp = client()
        .get(&url)
        .header("Range", "bytes=200000-")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 416);
    assert_eq!(resp.headers()["content-range"], "bytes */100000");

    let resp = client().head(&url).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "100000");
    assert!(resp.bytes().unwrap().is_empty());

    let resp = h2_client()
        .get(&url)
        .header("Range", "bytes=0-9")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().unwrap().as_ref(), &content[..10]);
}

#[test]
fn send_file_keeps_php_content_type_and_status() {
    let php = Php::start("stream.php");
    let file = file_with(b"{\"a\":1}");
    let url = php.url(&format!(
        "/file?path={}&type=application/json&status=202",
        file.path().display()
    ));
    let resp = client().get(url).send().unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.text().unwrap(), "{\"a\":1}");
    // Guessed from the extension when PHP gives none.
    let resp = client()
        .get(php.url(&format!("/file?path={}", file.path().display())))
        .send()
        .unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
}

#[test]
fn a_missing_file_is_404_and_a_directory_500_each_logged() {
    let php = Php::start("stream.php");
    let resp = client()
        .get(php.url("/file?path=/no/such/file.bin"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert!(php.wait_for_log("/no/such/file.bin"), "{}", php.stderr());
    let dir = tempfile::tempdir().unwrap();
    let resp = client()
        .get(php.url(&format!("/file?path={}", dir.path().display())))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert!(php.wait_for_log(&dir.path().display().to_string()));
    assert_eq!(
        client().get(php.url("/")).send().unwrap().text().unwrap(),
        "plain"
    );
}

#[test]
fn the_worker_answers_others_while_a_slow_client_downloads_a_file() {
    let php = Php::start("stream.php");
    let big = tempfile::NamedTempFile::new().unwrap();
    big.as_file().set_len(512 * 1024 * 1024).unwrap(); // sparse
    let mut slow = client()
        .get(php.url(&format!("/file?path={}", big.path().display())))
        .send()
        .unwrap();
    let mut first = [0u8; 1024];
    slow.read_exact(&mut first).unwrap();
    // The download is stalled on our side; PHP is free.
    for _ in 0..20 {
        assert_eq!(
            client().get(php.url("/")).send().unwrap().text().unwrap(),
            "plain"
        );
    }
    drop(slow);
}
