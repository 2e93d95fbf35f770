//! HTTP/1 request heads read off the wire beside hyper, for the one thing hyper's URI parser
//! throws away: a raw `#` in the request target (it keeps the target up to the `#` only, so
//! `DELETE /dir/#x` would reach PHP as `DELETE /dir/`). The connection's socket feeds every byte
//! hyper reads through [`Heads::feed`], which follows HTTP/1 message framing (heads with
//! httparse, as hyper does; Content-Length and chunked bodies) and notes which heads held a `#`;
//! the service asks [`Heads::take`] once per HTTP/1 request, in order.
//!
//! Where the framing cannot be followed (HTTP/2 preface, CONNECT, a head httparse refuses, an
//! ambiguous body length), tracking stops for the rest of the connection; hyper refuses or
//! switches protocol there itself.
use std::collections::VecDeque;
use std::sync::Mutex;

/// Headers per head httparse may see: above hyper's default (100), which answers 431 past it.
const MAX_HEADERS: usize = 128;
/// A chunk-size line or trailer line longer than this is not followed.
const MAX_LINE: usize = 8 * 1024;

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
    /// Numbers of the heads whose target held a `#`, oldest first.
    fragments: VecDeque<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    /// The framing is no longer followed.
    Done,
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
                fragments: VecDeque::new(),
            }),
        }
    }

    /// Bytes read from the client, in order.
    pub fn feed(&self, data: &[u8]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.feed(data);
    }

    /// Whether the next HTTP/1 request's raw target held a `#`.
    pub fn take(&self) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let n = inner.taken;
        inner.taken += 1;
        while inner.fragments.front().is_some_and(|&f| f < n) {
            inner.fragments.pop_front();
        }
        if inner.fragments.front() == Some(&n) {
            inner.fragments.pop_front();
            return true;
        }
        false
    }
}

impl Inner {
    fn feed(&mut self, data: &[u8]) {
        if self.state == State::Done {
            return;
        }
        if self.pending.is_empty() {
            let used = self.run(data);
            self.keep(&data[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(data);
            let used = self.run(&buf);
            self.keep(&buf[used..]);
        }
    }

    fn keep(&mut self, rest: &[u8]) {
        let limit = match self.state {
            State::Head => self.max_head,
            _ => MAX_LINE,
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
                State::ChunkSize => self.chunk_size(rest),
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
                        true => State::ChunkSize,
                        false => State::Done,
                    };
                    n
                }),
                State::Trailers => line(rest).map(|(n, text)| {
                    if text.is_empty() {
                        self.state = State::Head;
                    }
                    n
                }),
                State::Done => return data.len(),
            };
            match step {
                Some(n) => at += n,
                None => return at,
            }
        }
        at
    }

    fn head(&mut self, data: &[u8]) -> Step {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let len = match req.parse(data) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return None,
            Err(_) => {
                self.stop();
                return Some(data.len());
            }
        };
        if req.path.is_some_and(|p| p.contains('#')) {
            self.fragments.push_back(self.seen);
        }
        self.seen += 1;
        self.state = match framing(&req) {
            Some(state) => state,
            None => {
                self.stop();
                return Some(data.len());
            }
        };
        Some(len)
    }

    fn chunk_size(&mut self, data: &[u8]) -> Step {
        let (n, text) = line(data)?;
        let digits = text
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .map(|&b| (b as char).to_digit(16).unwrap_or(0) as u64);
        let mut size: u64 = 0;
        let mut count = 0;
        for d in digits {
            count += 1;
            size = match size.checked_mul(16).and_then(|s| s.checked_add(d)) {
                Some(s) => s,
                None => {
                    self.stop();
                    return Some(data.len());
                }
            };
        }
        self.state = match (count, size) {
            (0, _) => State::Done,
            (_, 0) => State::Trailers,
            (_, size) => State::ChunkData(size),
        };
        Some(n)
    }
}

/// One line ending in LF (CR LF or a bare LF, as hyper accepts): its length with the ending,
/// and its text without it.
fn line(data: &[u8]) -> Option<(usize, &[u8])> {
    let end = data.iter().position(|&b| b == b'\n')?;
    let text = &data[..end];
    Some((end + 1, text.strip_suffix(b"\r").unwrap_or(text)))
}

/// How the body after a head is framed; `None` where it cannot be followed.
fn framing(req: &httparse::Request) -> Option<State> {
    if req.method == Some("CONNECT") {
        return None;
    }
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if chunked || req.version != Some(1) {
                return None;
            }
            let value = std::str::from_utf8(h.value).ok()?;
            let last = value.rsplit(',').next()?.trim();
            if !last.eq_ignore_ascii_case("chunked") {
                return None;
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(h.value).ok()?;
            for part in value.split(',') {
                let n: u64 = part.trim().parse().ok()?;
                if length.is_some_and(|l| l != n) {
                    return None;
                }
                length = Some(n);
            }
        }
    }
    match (chunked, length) {
        (true, Some(_)) => None,
        (true, None) => Some(State::ChunkSize),
        (false, Some(0) | None) => Some(State::Head),
        (false, Some(n)) => Some(State::Body(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragments_of(wire: &[u8], split: usize) -> Vec<bool> {
        let heads = Heads::new(64 * 1024);
        for piece in wire.chunks(split.max(1)) {
            heads.feed(piece);
        }
        let seen = heads.inner.lock().unwrap().seen;
        (0..seen).map(|_| heads.take()).collect()
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
        // Content-Length and chunked together: hyper refuses the request itself.
        let wire = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\
            Transfer-Encoding: chunked\r\n\r\nGET /#x HTTP/1.1\r\n\r\n";
        assert_eq!(fragments_of(wire, 100), [false]);
        let heads = Heads::new(16);
        heads.feed(b"GET /a-long-target-past-the-limit");
        assert_eq!(heads.inner.lock().unwrap().state, State::Done);
    }

    #[test]
    fn takes_past_the_heads_seen_say_no_fragment() {
        let heads = Heads::new(1024);
        heads.feed(b"GET /#a HTTP/1.1\r\n\r\n");
        assert!(heads.take());
        assert!(!heads.take());
    }
}
