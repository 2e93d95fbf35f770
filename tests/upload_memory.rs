//! Memory stays bounded while a large multipart upload is parsed: a test binary of its own,
//! because it reads the whole process's RSS and nothing else may run beside it.
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use rr::request::form::{FormLimits, Key, Node};
use rr::request::multipart::{parse, MultipartLimits};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const BOUNDARY: &str = "----rrMemoryTestBoundary";

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The body is always ready, the worst case for buffering in the parser.
#[tokio::test]
async fn a_100_mib_upload_grows_rss_by_less_than_16_mib() {
    let dir = tempfile::tempdir().unwrap();
    let (chunks, size) = (100 * 16, 64 * 1024);
    let base = rss_kib();
    let peak = Arc::new(AtomicU64::new(base));
    let seen = peak.clone();
    let head = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"big\"; filename=\"big.bin\"\r\n\r\n");
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let body = stream::iter([Bytes::from(head)])
        .chain(stream::iter(0..chunks).map(move |i| {
            if i % 16 == 0 {
                seen.fetch_max(rss_kib(), Ordering::Relaxed);
            }
            Bytes::from(vec![(i % 251) as u8; size])
        }))
        .chain(stream::iter([Bytes::from(tail)]))
        .map(Ok::<_, std::convert::Infallible>);
    let limits = MultipartLimits {
        max_body: 1 << 30,
        max_file_size: 0,
        upload_dir: dir.path().to_owned(),
        forbid: vec![],
        max_file_uploads: 20,
        form: FormLimits::default(),
    };
    let (_, uploads) = parse(body, BOUNDARY.to_owned(), &limits).await.unwrap();
    let grown = peak.load(Ordering::Relaxed).saturating_sub(base);
    assert!(grown < 16 * 1024, "RSS grew by {grown} KiB");
    let Some(Node::Leaf(upload)) = uploads.get(&Key::Name("big".into())) else {
        panic!("no upload")
    };
    assert_eq!(upload.size, (chunks * size) as u64);
}
