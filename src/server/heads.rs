//! HTTP/1 request heads read off the wire beside hyper, for what hyper's parse throws away: a
//! raw `#` in the request target (it keeps the target up to the `#` only, so `DELETE /dir/#x`
//! would reach PHP as `DELETE /dir/`), and a `Content-Length` sent beside `Transfer-Encoding`
//! (it drops the length and reads chunks). The connection's socket feeds every byte hyper reads
//! through [`Heads::feed`], which follows HTTP/1 message framing (heads with httparse, as hyper
//! does; Content-Length and chunked bodies, chunk and trailer lines of any length) and notes
//! what each head showed; the service asks [`Heads::take`] once per HTTP/1 request, in order.
//!
//! It must read every message exactly as hyper does: a head or body end it placed elsewhere
//! would hand one request's notes to another (a `#` or a `Content-Length` beside
//! `Transfer-Encoding` let through). Where the framing cannot be followed (HTTP/2 preface, a
//! head httparse refuses, a length hyper refuses), tracking stops for the rest of the
//! connection; hyper refuses, closes or switches protocol there itself. The one message hyper
//! reads but rr refuses on the wire is a trailer section with a bare LF (see [`Refused`]).
use std::collections::VecDeque;
use std::sync::Mutex;

/// Headers per head httparse may see: above hyper's default (100), which answers 431 past it.
const MAX_HEADERS: usize = 128;
/// Bytes a state other than `Head` may wait on (a CR before its LF).
const MAX_WAIT: usize = 2;

/// What one raw head showed that hyper's parse hides or lets through.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Noted {
    /// The target held a `#`.
    pub fragment: bool,
    /// The body's framing is one rr refuses.
    pub framing: Option<FramingFault>,
}

/// A request body framed in a way rr refuses, as nginx does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingFault {
    /// `Content-Length` and `Transfer-Encoding` together: RFC 9112 6.1 says such a message
    /// "ought to be handled as an error" (the smuggling shape); hyper reads the chunks instead.
    LengthAndChunked,
    /// `Transfer-Encoding` other than one `chunked` (`gzip, chunked`, `chunked` twice): hyper
    /// decodes the chunks only, so PHP would get a body still in the other coding.
    Coding(String),
}

impl std::fmt::Display for FramingFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FramingFault::LengthAndChunked => {
                f.write_str("the request has both Content-Length and Transfer-Encoding")
            }
            FramingFault::Coding(value) => {
                write!(
                    f,
                    "Transfer-Encoding {value:?} is not supported (only \"chunked\")"
                )
            }
        }
    }
}

pub struct Heads {
    inner: Mutex<Inner>,
}

struct Inner {
    state: State,
    /// Bytes of an incomplete head or line, kept until the rest arrives.
    pending: Vec<u8>,
    /// The longest head hyper accepts (its read buffer); past it, tracking stops.
    max_head: usize,
    /// Heads read so far, and heads the service has taken.
    seen: u64,
    taken: u64,
    /// Numbers of the heads that showed something, with what, oldest first.
    notes: VecDeque<(u64, Noted)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    /// A chunk-size line: the size so far, and whether a digit came.
    ChunkSize(u64, bool),
    ChunkData(u64),
    ChunkEnd,
    /// The start of a trailer line, or the CR LF that ends the trailers.
    Trailers,
    /// Inside a trailer line, which ends at its CR LF only (as hyper reads it).
    Trailer,
    /// The rest of a chunk-size line (its extensions), skipped up to its LF; then the state
    /// given.
    SkipLine(Next),
    /// The framing is no longer followed.
    Done,
    /// A trailer line held a bare LF: the connection's reads fail from here on.
    Refused,
}

/// A trailer line with a bare LF in it. hyper ends a trailer line at CR LF only and takes a
/// bare LF for part of it, against RFC 9110 5.5, which has a CR, LF or NUL in a field refused;
/// a server or proxy that ends lines at a bare LF (nginx does) sees the trailers end there and
/// whatever follows as the next request, which hyper swallows as trailers. hyper is given the
/// bytes before that LF and the next read fails, so the request is refused (400) before its
/// body ends and the connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// How many bytes of the data fed come before the LF.
    pub at: usize,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a bare LF in the chunked body's trailers")
    }
}

impl std::error::Error for Refused {}

impl From<Refused> for std::io::Error {
    fn from(refused: Refused) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, refused)
    }
}

/// Where a skipped line leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    ChunkData(u64),
    Trailers,
}

/// What one step consumed: `Some(n)` bytes, or `None` when it needs more than it has.
type Step = Option<usize>;

impl Heads {
    pub fn new(max_head: usize) -> Heads {
        Heads {
            inner: Mutex::new(Inner {
                state: State::Head,
                pending: Vec::new(),
                max_head,
                seen: 0,
                taken: 0,
                notes: VecDeque::new(),
            }),
        }
    }

    /// Bytes read from the client, in order; an error when they hold a message rr refuses on
    /// the wire (the read that brought them must fail).
    pub fn feed(&self, data: &[u8]) -> Result<(), Refused> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.feed(data)
    }

    /// Whether the client is part-way through a message: a head or body begun and not ended
    /// (or one refused on the wire, whose rest may still come).
    pub fn mid_message(&self) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match inner.state {
            State::Head => !inner.pending.is_empty(),
            State::Done => false,
            _ => true,
        }
    }

    /// What the next HTTP/1 request's raw head showed.
    pub fn take(&self) -> Noted {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let n = inner.taken;
        inner.taken += 1;
        while inner.notes.front().is_some_and(|(f, _)| *f < n) {
            inner.notes.pop_front();
        }
        match inner.notes.front() {
            Some((f, _)) if *f == n => inner.notes.pop_front().map(|(_, noted)| noted),
            _ => None,
        }
        .unwrap_or_default()
    }
}

impl Inner {
    fn feed(&mut self, data: &[u8]) -> Result<(), Refused> {
        if matches!(self.state, State::Done | State::Refused) {
            return Ok(());
        }
        let waiting = self.pending.len();
        let (used, rest) = if waiting == 0 {
            let used = self.run(data);
            (used, &data[used..])
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(data);
            let used = self.run(&buf);
            if self.state != State::Refused {
                self.keep(&buf[used..]);
            }
            // The refused LF is past what waited (a head's end, or a CR): in `data`.
            return self.refused(used.saturating_sub(waiting));
        };
        if self.state != State::Refused {
            self.keep(rest);
        }
        self.refused(used)
    }

    /// `Err` when the bytes fed so far ended in a refusal, `at` bytes into the last data.
    fn refused(&self, at: usize) -> Result<(), Refused> {
        match self.state {
            State::Refused => Err(Refused { at }),
            _ => Ok(()),
        }
    }

    fn keep(&mut self, rest: &[u8]) {
        // Only a head is kept whole; the other states wait on a CR at most, and more is bytes
        // hyper refuses.
        let limit = match self.state {
            State::Head => self.max_head,
            _ => MAX_WAIT,
        };
        if rest.len() > limit {
            self.stop();
        } else if !rest.is_empty() {
            self.pending.extend_from_slice(rest);
        }
    }

    fn stop(&mut self) {
        self.state = State::Done;
        self.pending = Vec::new();
    }

    /// Consumes what it can of `data`; returns how much. What is left is an incomplete head or
    /// line.
    fn run(&mut self, data: &[u8]) -> usize {
        let mut at = 0;
        while at < data.len() {
            let rest = &data[at..];
            let step = match self.state {
                State::Head => self.head(rest),
                State::Body(left) => {
                    let n = (left.min(rest.len() as u64)) as usize;
                    self.state = match left - n as u64 {
                        0 => State::Head,
                        left => State::Body(left),
                    };
                    Some(n)
                }
                State::ChunkSize(size, digits) => self.chunk_size(rest, size, digits),
                State::ChunkData(left) => {
                    let n = (left.min(rest.len() as u64)) as usize;
                    self.state = match left - n as u64 {
                        0 => State::ChunkEnd,
                        left => State::ChunkData(left),
                    };
                    Some(n)
                }
                State::ChunkEnd => line(rest).map(|(n, text)| {
                    self.state = match text.is_empty() {
                        true => State::ChunkSize(0, false),
                        false => State::Done,
                    };
                    n
                }),
                State::Trailers => match rest {
                    [b'\r', b'\n', ..] => {
                        self.state = State::Head;
                        Some(2)
                    }
                    [b'\r'] => None,
                    // hyper refuses a CR without its LF.
                    [b'\r', ..] => {
                        self.stop();
                        Some(rest.len())
                    }
                    _ => {
                        self.state = State::Trailer;
                        Some(0)
                    }
                },
                State::Trailer => self.trailer(rest),
                State::SkipLine(next) => match rest.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        self.state = match next {
                            Next::ChunkData(size) => State::ChunkData(size),
                            Next::Trailers => State::Trailers,
                        };
                        Some(end + 1)
                    }
                    None => Some(rest.len()),
                },
                State::Done => return data.len(),
                // Where the refused LF is.
                State::Refused => return at,
            };
            match step {
                Some(n) => at += n,
                None => return at,
            }
        }
        at
    }

    fn head(&mut self, data: &[u8]) -> Step {
        // Left uninitialised, as hyper's own parse does: filling 128 headers costs more than
        // parsing a short head.
        let mut headers = [std::mem::MaybeUninit::<httparse::Header>::uninit(); MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(data, &mut headers) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return None,
            Err(_) => {
                self.stop();
                return Some(data.len());
            }
        };
        let fragment = req.path.is_some_and(|p| p.contains('#'));
        let framing = framing(&req);
        let fault = framing.as_ref().err().cloned().flatten();
        if fragment || fault.is_some() {
            let noted = Noted {
                fragment,
                framing: fault,
            };
            self.notes.push_back((self.seen, noted));
        }
        self.seen += 1;
        match framing {
            Ok(state) => self.state = state,
            // hyper refuses the request or closes the connection after it.
            Err(_) => {
                self.stop();
                return Some(data.len());
            }
        }
        Some(len)
    }

    /// A chunk-size line, as it arrives: hex digits (leading zeros of any number, as hyper
    /// takes them) into `size`, then extensions skipped unread, so a line of any length (hyper
    /// bounds extensions at 16 KiB a body) is followed without keeping it.
    fn chunk_size(&mut self, data: &[u8], mut size: u64, mut digits: bool) -> Step {
        for (at, &b) in data.iter().enumerate() {
            let Some(d) = (b as char).to_digit(16) else {
                self.state = match (digits, size) {
                    (false, _) => {
                        self.stop();
                        return Some(data.len());
                    }
                    (true, 0) => State::SkipLine(Next::Trailers),
                    (true, size) => State::SkipLine(Next::ChunkData(size)),
                };
                return Some(at);
            };
            size = match size
                .checked_mul(16)
                .and_then(|s| s.checked_add(u64::from(d)))
            {
                Some(s) => s,
                None => {
                    self.stop();
                    return Some(data.len());
                }
            };
            digits = true;
        }
        self.state = State::ChunkSize(size, digits);
        Some(data.len())
    }

    /// Part of a trailer line, up to the CR LF that ends it; a bare LF before it is refused.
    fn trailer(&mut self, data: &[u8]) -> Step {
        let Some(end) = data.iter().position(|&b| b == b'\r' || b == b'\n') else {
            return Some(data.len());
        };
        match (data[end], data.get(end + 1)) {
            (b'\n', _) => {
                self.state = State::Refused;
                Some(end)
            }
            (_, Some(b'\n')) => {
                self.state = State::Trailers;
                Some(end + 2)
            }
            // hyper refuses a CR without its LF.
            (_, Some(_)) => {
                self.stop();
                Some(data.len())
            }
            // The CR waits for its LF.
            (_, None) => match end {
                0 => None,
                end => Some(end),
            },
        }
    }
}

/// One line ending in LF (CR LF or a bare LF, as hyper accepts): its length with the ending,
/// and its text without it.
fn line(data: &[u8]) -> Option<(usize, &[u8])> {
    let end = data.iter().position(|&b| b == b'\n')?;
    let text = &data[..end];
    Some((end + 1, text.strip_suffix(b"\r").unwrap_or(text)))
}

/// How the body after a head is framed, read as hyper reads it (`proto::h1::role`): `Err(None)`
/// where hyper refuses the request, `Err(Some(fault))` for a framing rr refuses and hyper would
/// serve. hyper takes the chunks when the last `Transfer-Encoding` header ends in `chunked`,
/// whatever the ones before hold, and reads no `Content-Length` after a `Transfer-Encoding`:
/// any value there, even one it would refuse alone, is a length beside chunked.
/// CONNECT is framed like any request: rr refuses it (405) and hyper reads on, so tracking must
/// go on too (it stopped there once, and the next request's `#` went unseen).
fn framing(req: &httparse::Request) -> Result<State, Option<FramingFault>> {
    let mut length: Option<u64> = None;
    let mut has_length = false;
    let mut codings: Vec<String> = Vec::new();
    let mut chunked = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if req.version != Some(1) {
                return Err(None);
            }
            let value = String::from_utf8_lossy(h.value);
            codings.extend(value.split(',').map(|c| c.trim().to_owned()));
            chunked = ends_chunked(h.value);
        } else if h.name.eq_ignore_ascii_case("content-length") {
            has_length = true;
            if !codings.is_empty() {
                continue;
            }
            let n = digits(h.value).ok_or(None)?;
            if length.is_some_and(|l| l != n) {
                return Err(None);
            }
            length = Some(n);
        }
    }
    if codings.is_empty() {
        return Ok(match length {
            Some(0) | None => State::Head,
            Some(n) => State::Body(n),
        });
    }
    if !chunked {
        return Err(None);
    }
    if has_length {
        return Err(Some(FramingFault::LengthAndChunked));
    }
    if codings.len() > 1 {
        return Err(Some(FramingFault::Coding(codings.join(", "))));
    }
    Ok(State::ChunkSize(0, false))
}

/// hyper's test of one `Transfer-Encoding` value: visible ASCII whose last coding is `chunked`.
fn ends_chunked(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..0x7f).contains(&b))
        && value
            .rsplit(|&b| b == b',')
            .next()
            .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// A `Content-Length` as hyper reads it: digits only, no sign, no list.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragments_of(wire: &[u8], split: usize) -> Vec<bool> {
        let heads = Heads::new(64 * 1024);
        for piece in wire.chunks(split.max(1)) {
            heads.feed(piece).unwrap();
        }
        let seen = heads.inner.lock().unwrap().seen;
        (0..seen).map(|_| heads.take().fragment).collect()
    }

    #[test]
    fn chunk_and_trailer_lines_of_any_length_and_leading_zeros_are_followed() {
        // hyper takes a 9 KB chunk extension, a 9 KB trailer and a size with 19 leading zeros;
        // split across reads, each once made the tracking stop, and the `#` after got through.
        let long = "a".repeat(9000);
        let zeros = "0".repeat(19);
        let wire = format!(
            "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
             3;{long}\r\nabc\r\n{zeros}5\r\nGET /\r\n0\r\nX-T: {long}\r\n\r\n\
             DELETE /dir/#x HTTP/1.1\r\nHost: h\r\n\r\n"
        );
        for split in [1, 2, 5, 4096, wire.len()] {
            assert_eq!(
                fragments_of(wire.as_bytes(), split),
                [false, true],
                "split {split}"
            );
        }
    }

    #[test]
    fn a_length_beside_chunked_and_other_codings_are_noted() {
        let noted = |wire: &[u8]| {
            let heads = Heads::new(1024);
            heads.feed(wire).unwrap();
            heads.take().framing
        };
        let te_cl = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        let cl_te = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        for wire in [&te_cl[..], cl_te] {
            assert_eq!(noted(wire), Some(FramingFault::LengthAndChunked));
        }
        for (wire, value) in [
            (&b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"[..], "gzip, chunked"),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                "chunked, chunked",
            ),
        ] {
            assert_eq!(noted(wire), Some(FramingFault::Coding(value.into())));
        }
        assert_eq!(
            noted(b"POST / HTTP/1.1\r\nTransfer-Encoding: CHUNKED\r\n\r\n"),
            None
        );
    }

    #[test]
    fn a_hash_in_the_target_is_noted_per_head_across_any_split() {
        let wire = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n\
            DELETE /dir/#x HTTP/1.1\r\nHost: h\r\n\r\n\
            GET /b?c#d HTTP/1.1\r\nHost: h\r\nX: #\r\n\r\n\
            GET /e HTTP/1.1\r\nHost: h\r\nReferer: /#f\r\n\r\n";
        for split in [1, 2, 3, 7, 19, 64, wire.len()] {
            assert_eq!(
                fragments_of(wire, split),
                [false, true, true, false],
                "split {split}"
            );
        }
    }

    #[test]
    fn bodies_are_skipped_whatever_they_hold() {
        let body = b"GET /#in-body HTTP/1.1\r\nHost: h\r\n\r\n";
        let mut wire = format!(
            "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        wire.extend_from_slice(body);
        wire.extend_from_slice(b"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        wire.extend_from_slice(b"5;ext=1\r\n#a#b#\r\n");
        wire.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        wire.extend_from_slice(body);
        wire.extend_from_slice(b"\r\n0\r\nTrailer: #\r\n\r\n");
        wire.extend_from_slice(b"GET /x#y HTTP/1.1\r\nHost: h\r\n\r\n");
        wire.extend_from_slice(b"\r\nGET /z HTTP/1.1\r\nHost: h\r\n\r\n");
        for split in [1, 5, 11, wire.len()] {
            assert_eq!(
                fragments_of(&wire, split),
                [false, false, true, false],
                "split {split}"
            );
        }
    }

    #[test]
    fn what_cannot_be_followed_stops_tracking() {
        // HTTP/2 prior knowledge: httparse refuses the preface.
        assert!(fragments_of(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 100).is_empty());
        // Content-Length and chunked together: noted and refused; hyper closes the connection after.
        let wire = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\
            Transfer-Encoding: chunked\r\n\r\nGET /#x HTTP/1.1\r\n\r\n";
        assert_eq!(fragments_of(wire, 100), [false]);
        let heads = Heads::new(16);
        heads.feed(b"GET /a-long-target-past-the-limit").unwrap();
        assert_eq!(heads.inner.lock().unwrap().state, State::Done);
    }

    #[test]
    fn a_connect_is_followed_like_any_request() {
        let wire = b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n\
            DELETE /dir/#x HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(fragments_of(wire, 7), [false, true]);
    }

    #[test]
    fn takes_past_the_heads_seen_say_no_fragment() {
        let heads = Heads::new(1024);
        heads.feed(b"GET /#a HTTP/1.1\r\n\r\n").unwrap();
        assert!(heads.take().fragment);
        assert_eq!(heads.take(), Noted::default());
    }

    /// Where the refusal falls in the whole wire, fed in pieces of `split` bytes.
    fn refused_at(wire: &[u8], split: usize) -> Option<usize> {
        let heads = Heads::new(64 * 1024);
        let mut fed = 0;
        for piece in wire.chunks(split.max(1)) {
            if let Err(refused) = heads.feed(piece) {
                return Some(fed + refused.at);
            }
            fed += piece.len();
        }
        None
    }

    #[test]
    fn a_bare_lf_in_the_trailers_is_refused_where_it_is() {
        // hyper reads `X-T: 1\n\nGET /ghost ...` as trailer lines up to the next CR LF CR LF;
        // followed line by line at each LF, the ghost was a head, and the notes of every head
        // after it went to the one before (a `#`, a length beside chunked let through).
        let body =
            "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n";
        for (trailers, lf) in [
            (
                "X-T: 1\n\nGET /ghost HTTP/1.1\r\nHost: h\r\n\r\n",
                "X-T: 1".len(),
            ),
            ("\nGET /ghost HTTP/1.1\r\nHost: h\r\n\r\n", 0),
            ("X-A: 1\r\nX-B: 2\n\r\n", "X-A: 1\r\nX-B: 2".len()),
        ] {
            let wire = format!("{body}{trailers}DELETE /dir/#x HTTP/1.1\r\nHost: h\r\n\r\n");
            for split in [1, 2, 3, 7, wire.len()] {
                assert_eq!(
                    refused_at(wire.as_bytes(), split),
                    Some(body.len() + lf),
                    "{trailers:?} split {split}"
                );
            }
        }
        // Trailer lines ending in CR LF are followed, and the head after them read.
        let wire =
            format!("{body}X-A: 1\r\nX-B: 2\r\n\r\nDELETE /dir/#x HTTP/1.1\r\nHost: h\r\n\r\n");
        for split in [1, 2, 3, 7, wire.len()] {
            assert_eq!(
                fragments_of(wire.as_bytes(), split),
                [false, true],
                "split {split}"
            );
        }
    }

    #[test]
    fn transfer_encoding_and_content_length_are_read_as_hyper_reads_them() {
        let noted = |head: &[u8]| {
            let heads = Heads::new(1024);
            let mut wire = b"POST / HTTP/1.1\r\nHost: h\r\n".to_vec();
            wire.extend_from_slice(head);
            wire.extend_from_slice(b"\r\n\r\n");
            heads.feed(&wire).unwrap();
            let stopped = heads.inner.lock().unwrap().state == State::Done;
            (heads.take().framing, stopped)
        };
        let both = Some(FramingFault::LengthAndChunked);
        // hyper reads no length after Transfer-Encoding, so none of these is refused by it:
        // each is a length beside chunked.
        for head in [
            &b"Transfer-Encoding: chunked\r\nContent-Length: abc"[..],
            b"Transfer-Encoding: chunked\r\nContent-Length: +3",
            b"Transfer-Encoding: chunked\r\nContent-Length: \xff",
            b"Transfer-Encoding: chunked\r\nContent-Length: 1\r\nContent-Length: 2",
            b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2",
        ] {
            assert_eq!(
                noted(head),
                (both.clone(), true),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        // The last Transfer-Encoding header decides chunked, whatever the ones before hold.
        assert_eq!(
            noted(b"Transfer-Encoding: \xff\r\nTransfer-Encoding: chunked"),
            (Some(FramingFault::Coding("\u{fffd}, chunked".into())), true)
        );
        // What hyper refuses itself (400) stops the tracking, and nothing is noted.
        for head in [
            &b"Transfer-Encoding: chunked\r\nTransfer-Encoding: \xff"[..],
            b"Transfer-Encoding: chunked\xff",
            b"Transfer-Encoding: chunked,",
            b"Content-Length: +3",
            b"Content-Length: 3, 3",
            b"Content-Length: 3\r\nContent-Length: 4",
        ] {
            assert_eq!(
                noted(head),
                (None, true),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        assert_eq!(noted(b"Content-Length: 0003"), (None, false));
        assert_eq!(noted(b"Transfer-Encoding: Chunked\t"), (None, false));
    }
}
