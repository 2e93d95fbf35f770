//! Frames read whole off a channel: by the master's tasks (async) and by the processes it
//! starts, the pool worker and the template (blocking). Bytes stay buffered between calls, so
//! a read cancelled in a `select!`, timed out or interrupted by a signal loses nothing.
use super::{DecodeError, Frame};
use bytes::BytesMut;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why no frame came.
#[derive(Debug)]
pub enum ReadError {
    /// The other side closed the channel (it exited), or reading failed.
    Closed,
    /// Bytes that are not a frame: the other side breaks the protocol.
    Malformed(DecodeError),
    /// A frame announced as longer than this reader takes (see [`FrameReader::limit`]).
    TooLarge { len: usize, max: usize },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Closed => f.write_str("the channel is closed"),
            ReadError::Malformed(e) => e.fmt(f),
            ReadError::TooLarge { len, max } => {
                write!(f, "a frame of {len} bytes, more than the {max} taken here")
            }
        }
    }
}

impl std::error::Error for ReadError {}

pub struct FrameReader {
    buf: BytesMut,
    /// How much room each read asks for.
    chunk: usize,
    /// The longest frame taken (length prefix excluded).
    max: usize,
}

impl FrameReader {
    /// A reader taking frames of any length the wire can say (a request frame carries its body).
    pub fn new(chunk: usize) -> FrameReader {
        FrameReader {
            buf: BytesMut::with_capacity(chunk),
            chunk,
            max: u32::MAX as usize,
        }
    }

    /// Refuses frames longer than `max`, before buffering them (a channel that only carries
    /// small orders).
    pub fn limit(self, max: usize) -> FrameReader {
        FrameReader { max, ..self }
    }

    /// The next whole frame from `from`.
    pub async fn next<R: AsyncRead + Unpin>(&mut self, from: &mut R) -> Result<Frame, ReadError> {
        loop {
            if let Some(frame) = self.take()? {
                return Ok(frame);
            }
            self.buf.reserve(self.chunk);
            match from.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return Err(ReadError::Closed),
                Ok(_) => {}
            }
        }
    }

    /// The next whole frame, from what is buffered or else by calling `read` (which fills the
    /// slice it is given as [`io::Read::read`] does) until one is whole. `Ok(None)` when a read
    /// timed out (`WouldBlock`, `TimedOut`) or a signal interrupted it: the caller runs its
    /// handlers and calls again.
    pub fn next_blocking(
        &mut self,
        mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> Result<Option<Frame>, ReadError> {
        loop {
            if let Some(frame) = self.take()? {
                return Ok(Some(frame));
            }
            let start = self.buf.len();
            self.buf.resize(start + self.chunk, 0);
            let got = read(&mut self.buf[start..]);
            self.buf.truncate(start + got.as_ref().map_or(0, |n| *n));
            match got {
                Ok(0) => return Err(ReadError::Closed),
                Ok(_) => {}
                Err(e) => match e.kind() {
                    io::ErrorKind::Interrupted
                    | io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut => return Ok(None),
                    _ => return Err(ReadError::Closed),
                },
            }
        }
    }

    /// A whole frame off the buffer, if one is there.
    fn take(&mut self) -> Result<Option<Frame>, ReadError> {
        if let Some(prefix) = self.buf.first_chunk::<4>() {
            let len = u32::from_le_bytes(*prefix) as usize;
            if len > self.max {
                return Err(ReadError::TooLarge { len, max: self.max });
            }
        }
        Frame::split(&mut self.buf).map_err(ReadError::Malformed)
    }
}
