//! Response compression: negotiated gzip/br/zstd for text answers, full and streamed, never
//! twice, never for small or binary bodies; PHP's ob_gzhandler and zlib.output_compression
//! under handle(), on every request of a worker.
mod common;
use common::{client, Options, Php};
use serde_json::{json, Value};
use std::io::Read;

fn start(mode: &str, options: Value, ini: &[(&'static str, &str)]) -> Php {
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_OPTIONS", options.to_string()));
    opts.env.push(("RR_TEST_MODE", mode.to_owned()));
    for (k, v) in ini {
        opts.ini.push((k, v.to_string()));
    }
    Php::start_with("compress.php", opts)
}

fn decode(encoding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap(),
        "br" => brotli::Decompressor::new(data, 4096)
            .read_to_end(&mut out)
            .unwrap(),
        "zstd" => zstd::stream::read::Decoder::new(data)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap(),
        // HTTP's deflate is the zlib format (RFC 9110 8.4.1.2), as PHP writes it.
        "deflate" => flate2::read::ZlibDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap(),
        other => panic!("unexpected encoding {other}"),
    };
    out
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

fn get(php: &Php, path: &str, accept: Option<&str>) -> Answer {
    let mut request = client().get(php.url(path));
    if let Some(accept) = accept {
        request = request.header("Accept-Encoding", accept);
    }
    let response = request.send().unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().unwrap().to_vec(),
    }
}

fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.headers.get(name).map(|v| v.to_str().unwrap())
}

#[test]
fn a_json_answer_is_compressed_with_the_negotiated_encoding() {
    let php = start("respond", json!({}), &[]);
    let plain = get(&php, "/json", None);
    assert_eq!(header(&plain, "content-encoding"), None);
    assert_eq!(header(&plain, "vary"), Some("Accept-Encoding"));
    assert_eq!(header(&plain, "etag"), Some("\"v1\""));
    for (accept, expected) in [
        ("gzip", "gzip"),
        ("gzip, deflate, br", "br"),
        ("gzip, br, zstd", "zstd"),
        ("br;q=0.2, gzip;q=0.9", "gzip"),
        ("*", "zstd"),
    ] {
        let a = get(&php, "/json", Some(accept));
        assert_eq!(a.status, 200);
        assert_eq!(header(&a, "content-encoding"), Some(expected), "{accept}");
        assert_eq!(header(&a, "vary"), Some("Accept-Encoding"));
        assert_eq!(header(&a, "etag"), Some("W/\"v1\""));
        assert_eq!(
            header(&a, "content-length"),
            Some(a.body.len().to_string().as_str()),
            "a full body keeps a Content-Length: {accept}"
        );
        assert!(
            a.body.len() < plain.body.len() / 4,
            "{accept}: {}",
            a.body.len()
        );
        assert_eq!(decode(expected, &a.body), plain.body, "{accept}");
    }
    // Nothing acceptable: identity.
    for accept in ["identity", "deflate", "gzip;q=0, br;q=0, zstd;q=0"] {
        let a = get(&php, "/json", Some(accept));
        assert_eq!(header(&a, "content-encoding"), None, "{accept}");
        assert_eq!(a.body, plain.body);
    }
}

#[test]
fn small_binary_encoded_ranged_and_head_answers_are_left_alone() {
    let php = start("respond", json!({}), &[]);
    let small = get(&php, "/small", Some("gzip"));
    assert_eq!(header(&small, "content-encoding"), None);
    assert_eq!(header(&small, "vary"), None);
    assert_eq!(small.body, b"{\"ok\":true}");
    let png = get(&php, "/png", Some("gzip"));
    assert_eq!(header(&png, "content-encoding"), None);
    assert_eq!(png.body.len(), 5000);
    // Already gzip from PHP: sent as PHP made it, not compressed twice.
    let encoded = get(&php, "/encoded", Some("br, gzip"));
    assert_eq!(header(&encoded, "content-encoding"), Some("gzip"));
    let once = decode("gzip", &encoded.body);
    assert!(
        once.starts_with(b"[{\"id\":1"),
        "decoding once gives the JSON"
    );
    let ranged = client()
        .get(php.url("/json"))
        .header("Accept-Encoding", "gzip")
        .header("Range", "bytes=0-9")
        .send()
        .unwrap();
    assert!(ranged.headers().get("content-encoding").is_none());
    let head = client()
        .head(php.url("/json"))
        .header("Accept-Encoding", "gzip")
        .send()
        .unwrap();
    assert!(head.headers().get("content-encoding").is_none());
    // Turned off.
    let php = start("respond", json!({"http.compression.enabled": false}), &[]);
    let off = get(&php, "/json", Some("gzip"));
    assert_eq!(header(&off, "content-encoding"), None);
    assert_eq!(header(&off, "vary"), None);
}

#[test]
fn a_stream_is_compressed_as_it_streams() {
    let php = start("respond", json!({}), &[]);
    let plain = get(&php, "/stream", None);
    assert!(plain.body.ends_with(b"</html>"));
    for encoding in ["gzip", "br", "zstd"] {
        let a = get(&php, "/stream", Some(encoding));
        assert_eq!(header(&a, "content-encoding"), Some(encoding));
        assert_eq!(header(&a, "content-length"), None, "a stream has no length");
        assert_eq!(decode(encoding, &a.body), plain.body, "{encoding}");
    }
}

/// The complete chunks of an HTTP/1.1 chunked body read off `conn` until it ended, and whether
/// the last (empty) chunk came.
fn chunks_read(mut conn: std::net::TcpStream) -> (String, Vec<u8>, bool) {
    let mut raw = Vec::new();
    // The transfer ends in a reset or a close; what arrived before is what counts.
    let _ = conn.read_to_end(&mut raw);
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let head = String::from_utf8_lossy(&raw[..at]).to_lowercase();
    let (mut rest, mut body) = (&raw[at..], Vec::new());
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..eol]).unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            return (head, body, true);
        }
        if rest.len() < eol + 2 + size + 2 {
            break;
        }
        body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        rest = &rest[eol + 2 + size + 2..];
    }
    (head, body, false)
}

#[test]
fn a_compressed_stream_cut_off_gets_no_last_chunk_and_no_encoder_end() {
    let php = start("respond", json!({}), &[]);
    for encoding in ["gzip", "br", "zstd"] {
        let mut conn = std::net::TcpStream::connect(php.addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        std::io::Write::write_all(
            &mut conn,
            format!("GET /stream-cut HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {encoding}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let (head, body, ended) = chunks_read(conn);
        assert!(
            head.contains(&format!("content-encoding: {encoding}")),
            "{head}"
        );
        assert!(!ended, "{encoding}: a cut-off answer ended as complete");
        // Hyper buffers less than the first chunk's encoding: some of it arrived, and it must
        // not decode as a finished stream (an encoder's end written after a failed source would).
        assert!(!body.is_empty(), "{encoding}");
        let mut out = Vec::new();
        let decoded = match encoding {
            "gzip" => flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out),
            "br" => brotli::Decompressor::new(&body[..], 4096).read_to_end(&mut out),
            _ => zstd::stream::read::Decoder::new(&body[..])
                .unwrap()
                .read_to_end(&mut out),
        };
        assert!(
            decoded.is_err(),
            "{encoding}: decoded whole ({} bytes)",
            out.len()
        );
    }
    assert!(php.wait_for_log("cut on purpose"));
}

#[test]
fn php_sees_accept_encoding_and_its_own_gzip_is_not_doubled() {
    // rr itself may only use zstd here, so a gzip body can only be PHP's.
    let php = start(
        "handle",
        json!({"http.compression.algorithms": ["zstd"]}),
        &[],
    );
    let plain = get(&php, "/", None);
    // Different clients on one worker: PHP's zlib decides per request.
    for round in 0..3 {
        for accept in [Some("gzip"), None, Some("deflate, gzip")] {
            let chunked = get(&php, "/ob-chunked", accept);
            let what = format!("round {round} /ob-chunked {accept:?}");
            let body = match accept {
                Some(_) => {
                    assert_eq!(header(&chunked, "content-encoding"), Some("gzip"), "{what}");
                    decode("gzip", &chunked.body)
                }
                None => {
                    assert_eq!(header(&chunked, "content-encoding"), None, "{what}");
                    chunked.body
                }
            };
            assert_eq!(body, plain.body, "{what}");
        }
        let seen = get(&php, "/seen", Some("gzip, br"));
        assert_eq!(seen.body, b"gzip, br", "round {round}");
        let ob = get(&php, "/ob", Some("gzip, zstd"));
        assert_eq!(
            header(&ob, "content-encoding"),
            Some("gzip"),
            "round {round}"
        );
        assert_eq!(
            decode("gzip", &ob.body),
            plain.body,
            "round {round}: decoded once"
        );
        let none = get(&php, "/ob", None);
        assert_eq!(header(&none, "content-encoding"), None, "round {round}");
        assert_eq!(none.body, plain.body, "round {round}");
        // zstd only: PHP cannot, rr does.
        let zstd = get(&php, "/ob", Some("zstd"));
        assert_eq!(
            header(&zstd, "content-encoding"),
            Some("zstd"),
            "round {round}"
        );
        assert_eq!(decode("zstd", &zstd.body), plain.body, "round {round}");
    }
}

#[test]
fn zlib_output_compression_works_on_every_request_of_a_worker_in_both_modes() {
    // rr itself may use zstd and br only, so a gzip or deflate body can only be PHP's.
    for pool in [false, true] {
        let mut options = json!({"http.compression.algorithms": ["zstd", "br"]});
        if pool {
            options["http.pool.num_workers"] = json!(1);
        }
        let php = start("handle", options, &[("zlib.output_compression", "1")]);
        let plain = get(&php, "/", None);
        assert_eq!(header(&plain, "content-encoding"), None, "pool={pool}");
        let pid = header(&plain, "x-worker-pid").unwrap().to_owned();
        for round in 0..4 {
            for path in ["/", "/flush"] {
                for (accept, expected) in [
                    (Some("gzip"), Some("gzip")),
                    (None, None),
                    (Some("gzip, zstd, br"), Some("gzip")),
                    (Some("zstd"), Some("zstd")),
                    (Some("deflate"), Some("deflate")),
                    (Some("identity"), None),
                ] {
                    let what = format!("pool={pool} round {round} {path} {accept:?}");
                    let a = get(&php, path, accept);
                    assert_eq!(a.status, 200, "{what}");
                    assert_eq!(header(&a, "x-worker-pid"), Some(pid.as_str()), "{what}");
                    assert_eq!(header(&a, "content-encoding"), expected, "{what}");
                    let body = match expected {
                        Some(encoding) => decode(encoding, &a.body),
                        None => a.body.clone(),
                    };
                    assert_eq!(body, plain.body, "{what}: decoded once");
                }
            }
        }
    }
}
