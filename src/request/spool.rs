//! Raw request bodies (PUT, JSON, chunked: everything but multipart) in bounded memory: the
//! first `http.body_buffer_size` bytes stay in memory, a larger body goes to a temp file as it
//! arrives (nginx's `client_body_buffer_size` model). PHP reads the body only once it is
//! complete, so a slow upload never holds PHP; in pool mode the worker opens the master's file
//! by path and the master deletes it.
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

/// A request's raw body.
#[derive(Debug)]
pub enum RequestBody {
    /// Small enough to stay in memory (or empty).
    Memory(Bytes),
    /// Spooled to a file of `len` bytes; dropping it deletes the file when `owned`.
    File {
        path: TempPath,
        len: u64,
        owned: bool,
    },
}

impl Default for RequestBody {
    fn default() -> Self {
        RequestBody::Memory(Bytes::new())
    }
}

impl RequestBody {
    pub fn len(&self) -> u64 {
        match self {
            RequestBody::Memory(b) => b.len() as u64,
            RequestBody::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes when the body is in memory.
    pub fn in_memory(&self) -> Option<&Bytes> {
        match self {
            RequestBody::Memory(b) => Some(b),
            RequestBody::File { .. } => None,
        }
    }

    /// The spool file, when the body is on disk.
    pub fn file(&self) -> Option<&Path> {
        match self {
            RequestBody::Memory(_) => None,
            RequestBody::File { path, .. } => Some(path),
        }
    }

    /// The same file named by another process (a pool worker): it does not delete it.
    pub fn unowned_file(path: PathBuf, len: u64) -> Option<RequestBody> {
        let mut path = TempPath::try_from_path(path).ok()?;
        path.disable_cleanup(true);
        Some(RequestBody::File {
            path,
            len,
            owned: false,
        })
    }

    /// Takes the ownership of a spool file out (the engine deletes it when the next request is
    /// taken); the body keeps naming the file.
    pub fn detach(&mut self) -> Option<TempPath> {
        let RequestBody::File {
            path,
            len,
            owned: true,
        } = self
        else {
            return None;
        };
        let unowned = RequestBody::unowned_file(path.to_path_buf(), *len)?;
        match std::mem::replace(self, unowned) {
            RequestBody::File { path, .. } => Some(path),
            RequestBody::Memory(_) => None,
        }
    }

    /// The whole body in memory (what `$req->body` asks for): reads the file when spooled.
    pub fn load(&self) -> std::io::Result<Bytes> {
        match self {
            RequestBody::Memory(b) => Ok(b.clone()),
            RequestBody::File { path, len, .. } => {
                let mut out = Vec::with_capacity(*len as usize);
                std::fs::File::open(path)?.read_to_end(&mut out)?;
                Ok(out.into())
            }
        }
    }

    /// A reader from the first byte (what `php://input` reads through).
    pub fn reader(&self) -> std::io::Result<BodyReader> {
        Ok(match self {
            RequestBody::Memory(b) => BodyReader::Memory(b.clone(), 0),
            RequestBody::File { path, .. } => BodyReader::File(std::fs::File::open(path)?),
        })
    }
}

impl RequestBody {
    /// The body as a stream of pieces from the first byte, read in tokio (a multipart body
    /// kept raw is parsed from here).
    pub async fn stream(
        &self,
    ) -> std::io::Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
        Ok(match self {
            RequestBody::Memory(b) => futures_util::stream::iter([Ok(b.clone())]).left_stream(),
            RequestBody::File { path, .. } => {
                let file = tokio::fs::File::open(path).await?;
                tokio_util::io::ReaderStream::with_capacity(file, TempSink::WRITE_SIZE)
                    .right_stream()
            }
        })
    }
}

/// Reads a [`RequestBody`] in pieces, whichever way it is held.
pub enum BodyReader {
    Memory(Bytes, usize),
    File(std::fs::File),
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            BodyReader::Memory(bytes, at) => {
                let n = buf.len().min(bytes.len() - *at);
                buf[..n].copy_from_slice(&bytes[*at..*at + n]);
                *at += n;
                Ok(n)
            }
            BodyReader::File(f) => f.read(buf),
        }
    }
}

/// How a body is read.
#[derive(Debug, Clone)]
pub struct SpoolLimits {
    /// Larger bodies are refused (`http.max_request_size`).
    pub max_body: u64,
    /// Bodies up to this many bytes stay in memory (`http.body_buffer_size`).
    pub in_memory: usize,
    /// Where spool files go (`http.uploads.dir`).
    pub dir: PathBuf,
}

#[derive(Debug)]
pub enum SpoolError {
    /// The body is larger than `max_body`.
    TooLarge,
    /// The client's body stream failed (connection reset, bad chunked framing, a stall): the
    /// stream's own error.
    Read(Box<dyn std::error::Error + Send + Sync>),
    /// The spool file could not be written.
    Io(std::io::Error),
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::TooLarge => f.write_str("the body is larger than http.max_request_size"),
            SpoolError::Read(e) => write!(f, "reading the body: {e}"),
            SpoolError::Io(e) => write!(f, "writing the body to a temp file: {e}"),
        }
    }
}

impl std::error::Error for SpoolError {}

/// Reads a whole body: in memory up to `limits.in_memory`, else into a temp file. A body that
/// fails half-way (too large, client gone) leaves no file behind.
pub async fn spool<S, E>(body: S, limits: &SpoolLimits) -> Result<RequestBody, SpoolError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut body = std::pin::pin!(body);
    let mut memory = BytesMut::new();
    let mut total: u64 = 0;
    let mut sink: Option<TempSink> = None;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| SpoolError::Read(e.into()))?;
        total += chunk.len() as u64;
        if total > limits.max_body {
            return Err(SpoolError::TooLarge);
        }
        match sink.as_mut() {
            Some(sink) => sink.write(chunk).await.map_err(SpoolError::Io)?,
            None if total as usize <= limits.in_memory => memory.extend_from_slice(&chunk),
            None => {
                let mut file = TempSink::create(&limits.dir, "rr-body-")
                    .await
                    .map_err(SpoolError::Io)?;
                file.write(std::mem::take(&mut memory).freeze())
                    .await
                    .map_err(SpoolError::Io)?;
                file.write(chunk).await.map_err(SpoolError::Io)?;
                sink = Some(file);
            }
        }
    }
    match sink {
        Some(sink) => Ok(RequestBody::File {
            path: sink.finish().await.map_err(SpoolError::Io)?,
            len: total,
            owned: true,
        }),
        None => Ok(RequestBody::Memory(memory.freeze())),
    }
}

/// A temp file fed in large writes; dropping it before `finish` deletes the file.
pub(crate) struct TempSink {
    file: tokio::fs::File,
    path: TempPath,
    pending: BytesMut,
}

impl TempSink {
    /// Each write is a blocking-pool round trip, so small chunks are gathered first.
    const WRITE_SIZE: usize = 256 * 1024;

    pub(crate) async fn create(dir: &Path, prefix: &'static str) -> std::io::Result<TempSink> {
        let dir = dir.to_owned();
        let named = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new().prefix(prefix).tempfile_in(dir)
        })
        .await
        .map_err(std::io::Error::other)??;
        let (file, path) = named.into_parts();
        Ok(TempSink {
            file: tokio::fs::File::from_std(file),
            path,
            pending: BytesMut::new(),
        })
    }

    pub(crate) async fn write(&mut self, chunk: Bytes) -> std::io::Result<()> {
        if self.pending.is_empty() && chunk.len() >= Self::WRITE_SIZE {
            return self.file.write_all(&chunk).await;
        }
        self.pending.extend_from_slice(&chunk);
        if self.pending.len() >= Self::WRITE_SIZE {
            self.file.write_all(&self.pending).await?;
            self.pending.clear();
        }
        Ok(())
    }

    pub(crate) async fn finish(mut self) -> std::io::Result<TempPath> {
        self.file.write_all(&self.pending).await?;
        // tokio's File writes in the background; flush waits for it and reports its error.
        self.file.flush().await?;
        Ok(self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn limits(dir: &Path, in_memory: usize, max_body: u64) -> SpoolLimits {
        SpoolLimits {
            max_body,
            in_memory,
            dir: dir.to_owned(),
        }
    }

    fn body(pieces: &[&[u8]]) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> {
        let pieces: Vec<_> = pieces
            .iter()
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .collect();
        stream::iter(pieces)
    }

    fn files(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[tokio::test]
    async fn small_bodies_stay_in_memory_up_to_the_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let got = spool(body(&[b"abc", b"de"]), &limits(dir.path(), 5, 100))
            .await
            .unwrap();
        assert_eq!(got.in_memory().unwrap().as_ref(), b"abcde");
        assert_eq!(files(dir.path()), 0);
    }

    #[tokio::test]
    async fn larger_bodies_go_to_a_file_that_is_deleted_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let got = spool(body(&[b"abc", b"def", b"g"]), &limits(dir.path(), 5, 100))
            .await
            .unwrap();
        assert_eq!(got.len(), 7);
        let path = got.file().unwrap().to_owned();
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdefg");
        assert_eq!(got.load().unwrap().as_ref(), b"abcdefg");
        let mut read = Vec::new();
        got.reader().unwrap().read_to_end(&mut read).unwrap();
        assert_eq!(read, b"abcdefg");
        drop(got);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = spool(
            body(&[b"abcdef", b"ghij", b"k"]),
            &limits(dir.path(), 4, 10),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, SpoolError::TooLarge), "{err:?}");
        assert_eq!(files(dir.path()), 0);
    }

    #[tokio::test]
    async fn a_client_that_fails_half_way_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let pieces = vec![Ok(Bytes::from_static(b"abcdefgh")), Err("connection reset")];
        let err = spool(stream::iter(pieces), &limits(dir.path(), 4, 100))
            .await
            .unwrap_err();
        assert!(matches!(err, SpoolError::Read(ref e) if e.to_string() == "connection reset"));
        assert_eq!(files(dir.path()), 0);
    }

    #[tokio::test]
    async fn an_unowned_file_survives_its_drop() {
        let dir = tempfile::tempdir().unwrap();
        let got = spool(body(&[b"abcdefgh"]), &limits(dir.path(), 4, 100))
            .await
            .unwrap();
        let path = got.file().unwrap().to_owned();
        let other = RequestBody::unowned_file(path.clone(), 8).unwrap();
        assert_eq!(other.load().unwrap().as_ref(), b"abcdefgh");
        drop(other);
        assert!(path.exists());
        drop(got);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_detached_file_lives_as_long_as_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let mut body = spool(body(&[b"abcdefgh"]), &limits(dir.path(), 4, 100))
            .await
            .unwrap();
        let owner = body.detach().unwrap();
        let path = body.file().unwrap().to_owned();
        assert!(body.detach().is_none(), "owned once");
        drop(body);
        assert!(path.exists());
        drop(owner);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_body_streams_from_memory_or_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        for in_memory in [100, 4] {
            let got = spool(
                body(&[b"abc", b"defgh"]),
                &limits(dir.path(), in_memory, 100),
            )
            .await
            .unwrap();
            let pieces: Vec<Bytes> = got
                .stream()
                .await
                .unwrap()
                .map(Result::unwrap)
                .collect()
                .await;
            assert_eq!(pieces.concat(), b"abcdefgh", "in memory up to {in_memory}");
        }
    }

    #[test]
    fn a_memory_reader_reads_in_pieces() {
        let body = RequestBody::Memory(Bytes::from_static(b"abcdef"));
        let mut reader = body.reader().unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(reader.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf, b"abcd");
        assert_eq!(reader.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"ef");
        assert_eq!(reader.read(&mut buf).unwrap(), 0);
    }
}
