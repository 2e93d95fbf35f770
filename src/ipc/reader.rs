//! Frames read whole off the master's end of a channel (async). Bytes stay buffered between
//! calls, so a read cancelled in a `select!` loses nothing.
use super::{DecodeError, Frame};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why no frame came.
#[derive(Debug)]
pub enum ReadError {
    /// The other side closed the channel (it exited), or reading failed.
    Closed,
    /// Bytes that are not a frame: the other side breaks the protocol.
    Malformed(DecodeError),
}

pub struct FrameReader {
    buf: BytesMut,
    /// How much room each read asks for.
    chunk: usize,
}

impl FrameReader {
    pub fn new(chunk: usize) -> FrameReader {
        FrameReader {
            buf: BytesMut::with_capacity(chunk),
            chunk,
        }
    }

    /// The next whole frame from `from`.
    pub async fn next<R: AsyncRead + Unpin>(&mut self, from: &mut R) -> Result<Frame, ReadError> {
        loop {
            if let Some(frame) = Frame::split(&mut self.buf).map_err(ReadError::Malformed)? {
                return Ok(frame);
            }
            self.buf.reserve(self.chunk);
            match from.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return Err(ReadError::Closed),
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn frames_split_across_reads_come_whole_then_the_end_is_told() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let mut out = BytesMut::new();
        Frame::Ready.encode(&mut out);
        Frame::Error("x".repeat(300)).encode(&mut out);
        tokio::spawn(async move {
            for piece in out.chunks(7) {
                a.write_all(piece).await.unwrap();
            }
        });
        let mut reader = FrameReader::new(16);
        assert!(matches!(reader.next(&mut b).await, Ok(Frame::Ready)));
        match reader.next(&mut b).await {
            Ok(Frame::Error(m)) => assert_eq!(m.len(), 300),
            other => panic!("{other:?}"),
        }
        assert!(matches!(reader.next(&mut b).await, Err(ReadError::Closed)));
    }
}
