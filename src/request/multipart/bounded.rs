//! Bounds what multer would otherwise buffer whole: the preamble before the first boundary and
//! each part's head. multer keeps both in memory until it finds their end, and searches the
//! whole buffer again for every chunk that arrives, so one request with a 100 MB header line
//! held 100 MB and stalled every other connection on the I/O thread for over a second. This
//! stream watches the body on its way to multer, the way multer reads it, and fails the body
//! once either runs past `LIMIT`.
use bytes::Bytes;
use futures_util::Stream;
use memchr::memmem::Finder;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The longest preamble and part head accepted (nginx reads a request head in 8 KB buffers,
/// 32 KB at most; a part's head is a Content-Disposition with a file name and a Content-Type).
pub(super) const LIMIT: usize = 16 * 1024;

/// What ran past `LIMIT`.
#[derive(Debug, PartialEq, Eq)]
pub enum Exceeded {
    /// No boundary in the first `LIMIT` bytes of the body.
    Preamble,
    /// The head of part `n` (from 1) has no end in its first `LIMIT` bytes.
    Head(usize),
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exceeded::Preamble => write!(
                f,
                "the multipart body has no boundary in its first {LIMIT} bytes"
            ),
            Exceeded::Head(n) => write!(
                f,
                "the head of multipart part {n} is longer than {LIMIT} bytes"
            ),
        }
    }
}

impl std::error::Error for Exceeded {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first `--boundary` (multer looks for it anywhere).
    Preamble,
    /// Right after a delimiter: `--` ends the body, else padding then CRLF start a head.
    Delimited { dash: bool },
    /// Spaces and tabs after the delimiter; `cr`: the CR of its line end was seen.
    Padding { cr: bool },
    /// A part's head, up to and including CRLF CRLF; `last`: its last bytes, for the match.
    Head { last: u32 },
    /// A part's body, up to the next CRLF `--boundary`.
    Data,
    /// After the closing delimiter, or where multer will fail on its own: nothing to bound.
    Done,
}

/// The state machine, fed chunk by chunk (unit-tested without a stream).
pub(super) struct Scanner {
    first: Finder<'static>,
    next: Finder<'static>,
    state: State,
    /// Bytes of the preamble or of the current head so far.
    run: usize,
    /// Parts whose head began.
    parts: usize,
    /// The end of the previous chunk, for a delimiter split across two chunks.
    carry: Vec<u8>,
    /// `carry` and the start of the next chunk, reused.
    window: Vec<u8>,
}

impl Scanner {
    pub(super) fn new(boundary: &str) -> Scanner {
        Scanner {
            first: Finder::new(format!("--{boundary}").as_bytes()).into_owned(),
            next: Finder::new(format!("\r\n--{boundary}").as_bytes()).into_owned(),
            state: State::Preamble,
            run: 0,
            parts: 0,
            carry: Vec::new(),
            window: Vec::new(),
        }
    }

    pub(super) fn feed(&mut self, chunk: &[u8]) -> Result<(), Exceeded> {
        let mut rest = chunk;
        while !rest.is_empty() {
            rest = match self.state {
                State::Preamble | State::Data => self.search(rest)?,
                State::Done => return Ok(()),
                _ => {
                    self.step(rest[0])?;
                    &rest[1..]
                }
            };
        }
        Ok(())
    }

    /// Looks for the delimiter of the state in `carry + chunk`; returns what follows it.
    fn search<'a>(&mut self, chunk: &'a [u8]) -> Result<&'a [u8], Exceeded> {
        let finder = match self.state {
            State::Preamble => &self.first,
            _ => &self.next,
        };
        let len = finder.needle().len();
        let kept = self.carry.len();
        // `carry` is shorter than the delimiter: a match there ends in `chunk`.
        let found = match kept {
            0 => None,
            _ => {
                self.window.clear();
                self.window.extend_from_slice(&self.carry);
                self.window
                    .extend_from_slice(&chunk[..chunk.len().min(len - 1)]);
                finder.find(&self.window).map(|at| at + len - kept)
            }
        }
        .or_else(|| finder.find(chunk).map(|at| at + len));
        let preamble = self.state == State::Preamble;
        match found {
            Some(end) => {
                if preamble {
                    self.count(end, Exceeded::Preamble)?;
                }
                self.carry.clear();
                self.state = State::Delimited { dash: false };
                Ok(&chunk[end..])
            }
            None => {
                if preamble {
                    self.count(chunk.len(), Exceeded::Preamble)?;
                }
                self.carry
                    .extend_from_slice(&chunk[chunk.len().saturating_sub(len - 1)..]);
                let excess = self.carry.len().saturating_sub(len - 1);
                self.carry.drain(..excess);
                Ok(&[])
            }
        }
    }

    fn step(&mut self, byte: u8) -> Result<(), Exceeded> {
        self.state = match (self.state, byte) {
            (State::Delimited { dash: false }, b'-') => State::Delimited { dash: true },
            (State::Delimited { dash: true }, b'-') => State::Done,
            // multer fails on a lone '-' there.
            (State::Delimited { dash: true }, _) => State::Done,
            (State::Delimited { .. } | State::Padding { cr: false }, b' ' | b'\t') => {
                State::Padding { cr: false }
            }
            (State::Delimited { .. } | State::Padding { cr: false }, b'\r') => {
                State::Padding { cr: true }
            }
            (State::Padding { cr: true }, b'\n') => {
                self.parts += 1;
                self.run = 0;
                State::Head { last: 0 }
            }
            (State::Delimited { .. } | State::Padding { .. }, _) => State::Done,
            (State::Head { last }, _) => {
                self.count(1, Exceeded::Head(self.parts))?;
                let last = (last << 8) | u32::from(byte);
                if last == u32::from_be_bytes(*b"\r\n\r\n") {
                    State::Data
                } else {
                    State::Head { last }
                }
            }
            (State::Preamble | State::Data | State::Done, _) => {
                unreachable!("searched, not stepped")
            }
        };
        Ok(())
    }

    fn count(&mut self, bytes: usize, exceeded: Exceeded) -> Result<(), Exceeded> {
        self.run += bytes;
        if self.run > LIMIT {
            self.state = State::Done;
            return Err(exceeded);
        }
        Ok(())
    }
}

/// The body on its way to multer, failed with [`Exceeded`] when the scanner says so.
pub(super) struct Bounded<S> {
    body: S,
    scanner: Scanner,
    failed: bool,
}

impl<S> Bounded<S> {
    pub(super) fn new(body: S, boundary: &str) -> Bounded<S> {
        Bounded {
            body,
            scanner: Scanner::new(boundary),
            failed: false,
        }
    }
}

impl<S, E> Stream for Bounded<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BoxError>,
{
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.body).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => match self.scanner.feed(&chunk) {
                Ok(()) => Poll::Ready(Some(Ok(chunk))),
                Err(exceeded) => {
                    self.failed = true;
                    Poll::Ready(Some(Err(Box::new(exceeded))))
                }
            },
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` in chunks of `size`; the first error, if any.
    fn scan(body: &[u8], size: usize) -> Result<(), Exceeded> {
        let mut scanner = Scanner::new("XyZ");
        body.chunks(size).try_for_each(|chunk| scanner.feed(chunk))
    }

    fn part(head: &str, data: &[u8]) -> Vec<u8> {
        let mut p = format!("--XyZ\r\n{head}\r\n\r\n").into_bytes();
        p.extend_from_slice(data);
        p.extend_from_slice(b"\r\n");
        p
    }

    fn body(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut b = parts.concat();
        b.extend_from_slice(b"--XyZ--\r\n");
        b
    }

    const SIZES: [usize; 6] = [1, 2, 3, 7, 64, 1 << 20];

    #[test]
    fn an_ordinary_body_passes_in_chunks_of_any_size() {
        let data = b"--XyZ is not a delimiter without its CRLF\r\n-- nor this\r\n--Xy".repeat(2000);
        let head = format!(
            "Content-Disposition: form-data; name=\"f\"; filename=\"{}\"",
            "n".repeat(4000)
        );
        let b = body(&[
            part("Content-Disposition: form-data; name=\"a\"", b"1"),
            part(&head, &data),
            part("Content-Disposition: form-data; name=\"b\"", b""),
        ]);
        for size in SIZES {
            assert_eq!(scan(&b, size), Ok(()), "chunks of {size}");
        }
    }

    #[test]
    fn a_long_head_fails_at_the_limit_whatever_the_chunks() {
        let long = format!("X-Long: {}", "v".repeat(LIMIT));
        let b = body(&[
            part("Content-Disposition: form-data; name=\"a\"", b"1"),
            part(&long, b"2"),
        ]);
        for size in SIZES {
            assert_eq!(scan(&b, size), Err(Exceeded::Head(2)), "chunks of {size}");
        }
        // Just under the limit passes: the head, CRLF CRLF included, is LIMIT bytes.
        let fits = format!("X-Long: {}", "v".repeat(LIMIT - 12));
        assert_eq!(scan(&body(&[part(&fits, b"")]), 5), Ok(()));
    }

    #[test]
    fn a_head_that_never_ends_fails_even_inside_what_looks_like_data() {
        // A part without headers: multer looks for CRLF CRLF past the line end, into the data.
        let mut b = b"--XyZ\r\n".to_vec();
        b.extend_from_slice(&b"x".repeat(LIMIT + 1));
        assert_eq!(scan(&b, 4096), Err(Exceeded::Head(1)));
    }

    #[test]
    fn a_long_preamble_fails_and_a_short_one_passes() {
        let mut short = b"preamble\r\n".to_vec();
        short.extend(body(&[part(
            "Content-Disposition: form-data; name=\"a\"",
            b"1",
        )]));
        for size in SIZES {
            assert_eq!(scan(&short, size), Ok(()), "chunks of {size}");
        }
        let long = vec![b'p'; LIMIT + 1];
        for size in SIZES {
            assert_eq!(
                scan(&long, size),
                Err(Exceeded::Preamble),
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn data_of_any_size_and_the_epilogue_are_not_bounded() {
        let mut b = body(&[part(
            "Content-Disposition: form-data; name=\"f\"",
            &vec![b'd'; 4 * LIMIT],
        )]);
        b.extend_from_slice(&vec![b'e'; 4 * LIMIT]);
        for size in SIZES {
            assert_eq!(scan(&b, size), Ok(()), "chunks of {size}");
        }
    }
}
