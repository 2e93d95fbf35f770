//! Memory stays bounded while a large multipart upload is parsed: a test binary of its own,
//! because it reads the whole process's RSS and nothing else may run beside it.
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use rr::request::form::{FormLimits, Key, Node};
use rr::request::multipart::{parse, MultipartLimits, Parsed};
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

/// The tests here measure the whole process: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CHUNKS: usize = 100 * 16;
const CHUNK: usize = 64 * 1024;

/// Parses a body of one 100 MiB part with `disposition`, always ready (the worst case for
/// buffering in the parser); returns what it parsed and how much RSS grew at the most.
async fn parse_100_mib(disposition: &str, dir: &std::path::Path) -> (Parsed, u64) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let base = rss_kib();
    let peak = Arc::new(AtomicU64::new(base));
    let seen = peak.clone();
    let head = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; {disposition}\r\n\r\n");
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let body = stream::iter([Bytes::from(head)])
        .chain(stream::iter(0..CHUNKS).map(move |i| {
            if i % 16 == 0 {
                seen.fetch_max(rss_kib(), Ordering::Relaxed);
            }
            Bytes::from(vec![(i % 251) as u8; CHUNK])
        }))
        .chain(stream::iter([Bytes::from(tail)]))
        .map(Ok::<_, std::convert::Infallible>);
    let limits = MultipartLimits {
        max_body: 1 << 30,
        max_file_size: 0,
        upload_dir: dir.to_owned(),
        forbid: vec![],
        max_file_uploads: 20,
        form: FormLimits::default(),
        fields_in_memory: 128 * 1024,
    };
    let parsed = parse(body, BOUNDARY.to_owned(), &limits).await.unwrap();
    let grown = peak.load(Ordering::Relaxed).saturating_sub(base);
    (parsed, grown)
}

#[tokio::test]
async fn a_100_mib_upload_grows_rss_by_less_than_16_mib() {
    let dir = tempfile::tempdir().unwrap();
    let (parsed, grown) = parse_100_mib(r#"name="big"; filename="big.bin""#, dir.path()).await;
    assert!(grown < 16 * 1024, "RSS grew by {grown} KiB");
    let Some(Node::Leaf(upload)) = parsed.uploads.get(&Key::Name("big".into())) else {
        panic!("no upload")
    };
    assert_eq!(upload.size, (CHUNKS * CHUNK) as u64);
}

/// A text field is no file, but past `fields_in_memory` it waits on disk all the same.
#[tokio::test]
async fn a_100_mib_text_field_grows_rss_by_less_than_16_mib() {
    let dir = tempfile::tempdir().unwrap();
    let (parsed, grown) = parse_100_mib(r#"name="text""#, dir.path()).await;
    assert!(grown < 16 * 1024, "RSS grew by {grown} KiB");
    assert!(parsed.fields.is_empty());
    let spooled = parsed.spooled_fields.expect("the field on disk");
    let on_disk = std::fs::metadata(spooled.path()).unwrap().len();
    assert!(on_disk > (CHUNKS * CHUNK) as u64, "{on_disk} bytes on disk");
}

/// Feeds `start` and then up to 100 MiB of `filler`, always ready, and never the end the
/// parser looks for; returns the parser's error and how many filler bytes it pulled.
async fn parse_endless(start: &str, filler: u8) -> (String, usize) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let pulled = Arc::new(AtomicU64::new(0));
    let seen = pulled.clone();
    let body = stream::iter([Bytes::from(start.to_owned())])
        .chain(stream::iter(0..CHUNKS).map(move |_| {
            seen.fetch_add(CHUNK as u64, Ordering::Relaxed);
            Bytes::from(vec![filler; CHUNK])
        }))
        .map(Ok::<_, std::convert::Infallible>);
    let limits = MultipartLimits {
        max_body: 1 << 30,
        max_file_size: 0,
        upload_dir: dir.path().to_owned(),
        forbid: vec![],
        max_file_uploads: 20,
        form: FormLimits::default(),
        fields_in_memory: 128 * 1024,
    };
    let error = match parse(body, BOUNDARY.to_owned(), &limits).await {
        Ok(_) => panic!("an endless head or preamble was parsed"),
        Err(e) => e.to_string(),
    };
    (error, pulled.load(Ordering::Relaxed) as usize)
}

/// multer keeps a part's head (and the preamble) in memory until their end, and searched it
/// all again at every chunk: one 100 MB header line held 100 MB and stalled the I/O thread.
#[tokio::test]
async fn a_part_head_that_never_ends_is_refused_after_16_kib() {
    let start = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Long: ");
    let (error, pulled) = parse_endless(&start, b'v').await;
    assert!(
        error.contains("the head of multipart part 1 is longer than 16384 bytes"),
        "{error}"
    );
    assert!(pulled <= CHUNK, "pulled {pulled} bytes of the endless head");
}

#[tokio::test]
async fn a_preamble_that_never_ends_is_refused_after_16_kib() {
    let (error, pulled) = parse_endless("preamble ", b'p').await;
    assert!(
        error.contains("no boundary in its first 16384 bytes"),
        "{error}"
    );
    assert!(
        pulled <= CHUNK,
        "pulled {pulled} bytes of the endless preamble"
    );
}
