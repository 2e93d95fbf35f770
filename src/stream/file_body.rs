//! The response body that streams a byte range of an open file from disk.
//!
//! Reads are `pread`s on tokio's blocking pool, one batch at a time, started from `poll_frame`:
//! a slow client holds no thread, and a dropped body starts no more reads. The body reads at
//! most `READ_AHEAD` bytes beyond what it has handed out. Chunks it has handed out belong to the
//! consumer: hyper's HTTP/1 write buffer holds up to its `max_buf_size` (~400 KiB by default)
//! more, a consumer that keeps everything (`collect`) keeps everything, and neither stalls us.
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::task::JoinHandle;

/// Bytes per read and per body frame.
pub(crate) const CHUNK: usize = 64 * 1024;
/// The cap on bytes read (or being read) and not yet handed out: four chunks.
pub(crate) const READ_AHEAD: u64 = 4 * CHUNK as u64;

static STREAMED: AtomicU64 = AtomicU64::new(0);

/// Bytes handed to hyper by all file bodies since the process started.
pub fn bytes_streamed() -> u64 {
    STREAMED.load(Relaxed)
}

/// What one blocking read produced: the chunks filled before any error.
struct Batch {
    chunks: Vec<Bytes>,
    error: Option<io::Error>,
}

pub(crate) struct FileBody {
    /// Shared with the read running on the blocking pool, if any; closed when both are done.
    file: Arc<File>,
    /// For the warning when the file fails mid-stream.
    path: PathBuf,
    /// Next offset to read, and the end of the range (exclusive).
    next: u64,
    end: u64,
    /// Bytes not yet handed out; what `Content-Length` still promises.
    remaining: u64,
    ready: VecDeque<Bytes>,
    reading: Option<JoinHandle<Batch>>,
    failed: Option<io::Error>,
}

impl FileBody {
    /// Streams `len` bytes of `file` from `start`. Nothing is read until the body is polled.
    pub(crate) fn new(file: File, path: PathBuf, start: u64, len: u64) -> FileBody {
        FileBody {
            file: Arc::new(file),
            path,
            next: start,
            end: start.saturating_add(len),
            remaining: len,
            ready: VecDeque::new(),
            reading: None,
            failed: None,
        }
    }

    /// Bytes read or being read but not yet handed out: the memory this body holds.
    fn ahead(&self) -> u64 {
        self.next - (self.end - self.remaining)
    }

    /// Tops the read-ahead up to `READ_AHEAD`, once it is down to half, so each trip to the
    /// blocking pool reads at least two chunks.
    fn start_read(&mut self) {
        let ahead = self.ahead();
        if self.reading.is_some() || self.next >= self.end || ahead > READ_AHEAD / 2 {
            return;
        }
        let len = (READ_AHEAD - ahead).min(self.end - self.next);
        let (file, offset) = (self.file.clone(), self.next);
        self.next += len;
        self.reading = Some(tokio::task::spawn_blocking(move || {
            read_batch(&file, offset, len)
        }));
    }

    fn fail(&mut self, error: io::Error) {
        tracing::warn!(path = %self.path.display(), %error, "file stream failed mid-way");
        self.failed = Some(error);
        self.next = self.end;
    }
}

fn read_batch(file: &File, mut offset: u64, len: u64) -> Batch {
    let end = offset + len;
    let mut chunks = Vec::new();
    while offset < end {
        let mut buf = vec![0; (end - offset).min(CHUNK as u64) as usize];
        // A file truncated under us ends in UnexpectedEof rather than a short body.
        if let Err(error) = file.read_exact_at(&mut buf, offset) {
            return Batch {
                chunks,
                error: Some(error),
            };
        }
        offset += buf.len() as u64;
        chunks.push(Bytes::from(buf));
    }
    Batch {
        chunks,
        error: None,
    }
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.ready.pop_front() {
                let n = chunk.len() as u64;
                this.remaining -= n;
                STREAMED.fetch_add(n, Relaxed);
                // Read the next batch while hyper writes this chunk.
                this.start_read();
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            if let Some(error) = this.failed.take() {
                // The body ends after its error.
                this.remaining = 0;
                return Poll::Ready(Some(Err(error)));
            }
            if this.remaining == 0 {
                return Poll::Ready(None);
            }
            this.start_read();
            let Some(reading) = this.reading.as_mut() else {
                // Unreachable: with nothing queued and bytes left, start_read starts a read.
                return Poll::Ready(Some(Err(io::Error::other("file body stalled"))));
            };
            let batch = ready!(Pin::new(reading).poll(cx));
            this.reading = None;
            match batch {
                Ok(batch) => {
                    this.ready.extend(batch.chunks);
                    if let Some(error) = batch.error {
                        this.fail(error);
                    }
                }
                // The runtime is shutting down (or the read panicked): end with an error rather
                // than a body shorter than its Content-Length.
                Err(join) => this.fail(io::Error::other(join)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.failed.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use hyper::body::Body as _;
    use std::time::{Duration, Instant};

    const GIB: u64 = 1 << 30;

    /// A 1 GiB file that takes no disk space: holes read as zeros.
    fn sparse(dir: &tempfile::TempDir) -> (File, PathBuf) {
        let path = dir.path().join("big");
        let file = File::create(&path).unwrap();
        file.set_len(GIB).unwrap();
        (File::open(&path).unwrap(), path)
    }

    async fn next(body: &mut FileBody) -> Option<io::Result<Bytes>> {
        let frame = body.frame().await?;
        Some(frame.map(|f| f.into_data().unwrap()))
    }

    #[tokio::test]
    async fn read_ahead_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let (file, path) = sparse(&dir);
        let mut body = FileBody::new(file, path, 0, GIB);
        // 64 MiB through a consumer that drops chunks at once, and 1 MiB through one that
        // keeps them all: the body never holds more than the cap either way.
        let mut peak = 0;
        let mut check = |body: &FileBody| {
            peak = peak.max(body.ahead());
            // The accounting is the real thing: between reads, it is exactly what is queued.
            if body.reading.is_none() {
                let queued: usize = body.ready.iter().map(Bytes::len).sum();
                assert_eq!(queued as u64, body.ahead());
            }
        };
        for _ in 0..1024 {
            assert_eq!(next(&mut body).await.unwrap().unwrap().len(), CHUNK);
            check(&body);
        }
        let mut kept = Vec::new();
        for _ in 0..16 {
            kept.push(next(&mut body).await.unwrap().unwrap());
            check(&body);
        }
        assert!(peak <= READ_AHEAD, "peak {peak} > cap {READ_AHEAD}");
        assert!(peak > READ_AHEAD / 2, "no read-ahead at all: {peak}");
        drop(kept);
    }

    #[tokio::test]
    async fn dropping_the_body_stops_reading() {
        let dir = tempfile::tempdir().unwrap();
        let (file, path) = sparse(&dir);
        let mut body = FileBody::new(file, path, 0, GIB);
        for _ in 0..3 {
            next(&mut body).await.unwrap().unwrap();
        }
        let file = Arc::downgrade(&body.file);
        drop(body);
        // A read already running finishes; then nothing holds the file: it is closed and no
        // blocking thread works for this stream any more.
        let deadline = Instant::now() + Duration::from_secs(2);
        while file.upgrade().is_some() {
            assert!(
                Instant::now() < deadline,
                "file still open after the body was dropped"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn truncated_file_ends_in_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shrinks");
        std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        let mut body = FileBody::new(File::open(&path).unwrap(), path.clone(), 0, 1 << 20);
        // The first read fills the whole read-ahead; the next starts when it is half gone, which
        // is after the truncation.
        next(&mut body).await.unwrap().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(300_000)
            .unwrap();
        let mut got = CHUNK;
        let error = loop {
            match next(&mut body)
                .await
                .expect("the body must not end quietly")
            {
                Ok(chunk) => got += chunk.len(),
                Err(error) => break error,
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        // The first read's 256 KiB; the next read's first chunk runs past the new end.
        assert_eq!(got, READ_AHEAD as usize);
        assert!(next(&mut body).await.is_none());
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn partial_range_and_size_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..700_000u32).map(|i| i as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let body = FileBody::new(File::open(&path).unwrap(), path, 1000, 650_000);
        assert_eq!(body.size_hint().exact(), Some(650_000));
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(got, &data[1000..651_000]);
    }
}
