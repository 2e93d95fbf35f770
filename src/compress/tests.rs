use super::*;
use std::io::Read;

fn accept(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT_ENCODING, value.parse().unwrap());
    h
}

fn pick(value: &str) -> Option<Encoding> {
    let h = accept(value);
    negotiate(
        h.get_all(header::ACCEPT_ENCODING),
        &CompressionConfig::default().algorithms,
    )
}

#[test]
fn negotiation_follows_q_values_then_our_preference() {
    assert_eq!(pick("gzip"), Some(Encoding::Gzip));
    assert_eq!(pick("gzip, deflate, br"), Some(Encoding::Br));
    assert_eq!(pick("gzip, deflate, br, zstd"), Some(Encoding::Zstd));
    assert_eq!(pick("br;q=0.5, gzip;q=0.8"), Some(Encoding::Gzip));
    assert_eq!(pick("zstd;q=0, br;q=0.1"), Some(Encoding::Br));
    assert_eq!(pick("*"), Some(Encoding::Zstd));
    assert_eq!(pick("*;q=0.5, zstd;q=0, br;q=0"), Some(Encoding::Gzip));
    assert_eq!(pick("GZIP;Q=1.0"), Some(Encoding::Gzip));
    assert_eq!(pick("x-gzip"), Some(Encoding::Gzip));
    for none in [
        "identity",
        "deflate",
        "gzip;q=0",
        "*;q=0",
        "gzip;q=2",
        "gzip;q=0.0001",
        "",
    ] {
        assert_eq!(pick(none), None, "{none:?}");
    }
    assert_eq!(
        negotiate(
            HeaderMap::new().get_all(header::ACCEPT_ENCODING),
            &[Encoding::Gzip]
        ),
        None
    );
    // Only what is offered.
    let h = accept("br, zstd");
    assert_eq!(
        negotiate(h.get_all(header::ACCEPT_ENCODING), &[Encoding::Gzip]),
        None
    );
}

#[test]
fn types() {
    let c = CompressionConfig::default();
    for yes in [
        "text/html; charset=UTF-8",
        "TEXT/CSS",
        "application/json",
        "application/problem+json",
        "application/atom+xml",
        "image/svg+xml",
    ] {
        assert!(c.compressible(yes), "{yes}");
    }
    for no in [
        "image/png",
        "application/octet-stream",
        "application/zip",
        "",
        "json",
    ] {
        assert!(!c.compressible(no), "{no}");
    }
}

fn decode(encoding: Encoding, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        Encoding::Gzip => flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap(),
        Encoding::Br => brotli::Decompressor::new(data, 4096)
            .read_to_end(&mut out)
            .unwrap(),
        Encoding::Zstd => zstd::stream::read::Decoder::new(data)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap(),
    };
    out
}

fn text(n: usize) -> Vec<u8> {
    let line = b"{\"key\": \"value\", \"n\": 12345}\n";
    (0..n).map(|i| line[i % line.len()]).collect()
}

#[test]
fn every_encoder_round_trips_chunk_by_chunk() {
    for encoding in [Encoding::Gzip, Encoding::Br, Encoding::Zstd] {
        let data = text(50_000);
        let mut encoder = Encoder::new(encoding);
        let mut out = Vec::new();
        for chunk in data.chunks(7000) {
            let part = encoder.chunk(chunk);
            // Each chunk is flushed: what was sent so far decodes to a prefix at least.
            assert!(!part.is_empty(), "{encoding:?}");
            out.extend_from_slice(&part);
        }
        out.extend_from_slice(&encoder.finish());
        assert!(out.len() < data.len() / 5, "{encoding:?}: {}", out.len());
        assert_eq!(decode(encoding, &out), data, "{encoding:?}");
    }
}

fn response(content_type: &str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(body::full(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, content_type.parse().unwrap());
    r
}

fn wanted(e: Option<Encoding>) -> Wanted {
    Wanted {
        encoding: e,
        never: false,
    }
}

async fn collect(r: Response<Body>) -> (http::response::Parts, Vec<u8>) {
    let (parts, body) = r.into_parts();
    (parts, body.collect().await.unwrap().to_bytes().to_vec())
}

#[tokio::test]
async fn a_full_body_gets_its_new_length_and_a_weak_etag() {
    let c = CompressionConfig::default();
    let data = text(20_000);
    let mut r = response("application/json", data.clone());
    r.headers_mut()
        .insert(header::ETAG, "\"abc\"".parse().unwrap());
    r.headers_mut()
        .insert(header::ACCEPT_RANGES, "bytes".parse().unwrap());
    r.headers_mut()
        .insert(header::VARY, "Cookie".parse().unwrap());
    let (parts, body) = collect(c.apply(wanted(Some(Encoding::Br)), r).await).await;
    assert_eq!(parts.headers[header::CONTENT_ENCODING], "br");
    assert_eq!(
        parts.headers[header::CONTENT_LENGTH],
        body.len().to_string().as_str()
    );
    assert_eq!(parts.headers[header::ETAG], "W/\"abc\"");
    assert!(parts.headers.get(header::ACCEPT_RANGES).is_none());
    let vary: Vec<_> = parts.headers.get_all(header::VARY).iter().collect();
    assert_eq!(vary, ["Cookie", "Accept-Encoding"]);
    assert_eq!(decode(Encoding::Br, &body), data);
}

#[tokio::test]
async fn what_is_never_compressed() {
    let c = CompressionConfig::default();
    let data = text(20_000);
    // Small, wrong type, already encoded, no-transform, 206, HEAD/Range, no encoding accepted.
    let cases: Vec<(Response<Body>, Wanted, bool)> = vec![
        (
            response("text/plain", text(100)),
            wanted(Some(Encoding::Gzip)),
            false,
        ),
        (
            response("image/png", data.clone()),
            wanted(Some(Encoding::Gzip)),
            false,
        ),
        (
            {
                let mut r = response("text/plain", data.clone());
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
                r
            },
            wanted(Some(Encoding::Br)),
            false,
        ),
        (
            {
                let mut r = response("text/plain", data.clone());
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    "public, no-transform".parse().unwrap(),
                );
                r
            },
            wanted(Some(Encoding::Br)),
            false,
        ),
        (
            {
                let mut r = response("text/plain", data.clone());
                *r.status_mut() = StatusCode::PARTIAL_CONTENT;
                r
            },
            wanted(Some(Encoding::Br)),
            false,
        ),
        (
            response("text/plain", data.clone()),
            Wanted {
                encoding: Some(Encoding::Gzip),
                never: true,
            },
            true,
        ),
        (response("text/plain", data.clone()), wanted(None), true),
    ];
    for (i, (r, w, vary)) in cases.into_iter().enumerate() {
        let original_len = http_body::Body::size_hint(r.body()).exact().unwrap();
        let (parts, body) = collect(c.apply(w, r).await).await;
        assert!(
            parts
                .headers
                .get(header::CONTENT_ENCODING)
                .is_none_or(|e| e == "gzip"),
            "case {i}"
        );
        assert_eq!(body.len() as u64, original_len, "case {i}");
        assert_eq!(parts.headers.contains_key(header::VARY), vary, "case {i}");
    }
}

#[tokio::test]
async fn a_stream_is_compressed_as_it_streams_without_a_length() {
    let c = CompressionConfig::default();
    let data = text(30_000);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    let stream = tokio_stream_from(rx);
    let mut r = Response::new(http_body_util::StreamBody::new(stream).boxed());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, "text/html".parse().unwrap());
    let r = c.apply(wanted(Some(Encoding::Zstd)), r).await;
    assert!(r.headers().get(header::CONTENT_LENGTH).is_none());
    assert_eq!(r.headers()[header::CONTENT_ENCODING], "zstd");
    let mut body = r.into_body();
    // The first chunk comes out before the second goes in.
    tx.send(Ok(Frame::data(Bytes::from(data[..10_000].to_vec()))))
        .await
        .unwrap();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(!first.is_empty());
    tx.send(Ok(Frame::data(Bytes::from(data[10_000..].to_vec()))))
        .await
        .unwrap();
    drop(tx);
    let mut all = first.to_vec();
    while let Some(frame) = body.frame().await {
        all.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    assert_eq!(decode(Encoding::Zstd, &all), data);
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
