//! HTTP/2 connections as a client drives them frame by frame: answers that stream while the
//! client keeps talking, and clients that stop taking data.
mod common;
use common::{Options, Php};
use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;

/// One frame as it came from the server.
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// A client that writes HTTP/2 frames itself, so a test decides exactly what the server reads
/// and when (reqwest's h2 sends window updates and pings of its own accord).
struct H2 {
    conn: TcpStream,
    authority: String,
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 5.1).
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

impl H2 {
    /// Connects with prior knowledge; `settings` are (id, value) pairs sent in the first
    /// SETTINGS frame.
    fn connect(addr: SocketAddr, settings: &[(u16, u32)]) -> H2 {
        let conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut h2 = H2 {
            conn,
            authority: addr.to_string(),
        };
        h2.conn
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .unwrap();
        let mut payload = Vec::new();
        for (id, value) in settings {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&value.to_be_bytes());
        }
        h2.send(SETTINGS, 0, 0, &payload);
        h2
    }

    fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let mut frame = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        frame.extend_from_slice(&[kind, flags]);
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        self.conn.write_all(&frame).unwrap();
    }

    /// A GET with no body on `stream` (literal header fields, no Huffman, no indexing).
    fn get(&mut self, stream: u32, path: &str) {
        let mut block = Vec::new();
        let authority = self.authority.clone();
        for (name, value) in [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", path),
            (":authority", authority.as_str()),
        ] {
            block.push(0);
            hpack_int(&mut block, 0, 7, name.len());
            block.extend_from_slice(name.as_bytes());
            hpack_int(&mut block, 0, 7, value.len());
            block.extend_from_slice(value.as_bytes());
        }
        self.send(HEADERS, END_STREAM | 0x4, stream, &block);
    }

    /// The next frame; `None` when the server closed the connection. The server's SETTINGS
    /// are acknowledged on the way.
    fn next(&mut self) -> Option<Frame> {
        let mut head = [0u8; 9];
        match self.conn.read_exact(&mut head) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                ) =>
            {
                return None
            }
            Err(e) => panic!("reading a frame: {e}"),
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        self.conn.read_exact(&mut payload).ok()?;
        let frame = Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            payload,
        };
        if frame.kind == SETTINGS && frame.flags & ACK == 0 {
            self.send(SETTINGS, ACK, 0, &[]);
        }
        Some(frame)
    }

    /// Reads until `stream` has sent at least `want` bytes of body (or ended); what it sent,
    /// and whether it ended. Panics on a reset or a closed connection.
    fn body(&mut self, stream: u32, want: usize, got: &mut Vec<u8>) -> bool {
        while got.len() < want {
            let Some(frame) = self.next() else {
                panic!(
                    "the connection closed after {} bytes: {:?}",
                    got.len(),
                    String::from_utf8_lossy(got)
                );
            };
            match frame.kind {
                DATA if frame.stream == stream => {
                    got.extend_from_slice(&frame.payload);
                    if frame.flags & END_STREAM != 0 {
                        return true;
                    }
                }
                RST_STREAM if frame.stream == stream => panic!("stream {stream} was reset"),
                GOAWAY => panic!(
                    "GOAWAY after {} bytes: {:?}",
                    got.len(),
                    String::from_utf8_lossy(got)
                ),
                _ => {}
            }
        }
        false
    }

    /// Sends a PING and reads until its acknowledgement: the server read and answered it.
    fn ping(&mut self, n: u64) {
        self.send(PING, 0, 0, &n.to_be_bytes());
        loop {
            let frame = self
                .next()
                .unwrap_or_else(|| panic!("the connection closed before PING {n} was answered"));
            if frame.kind == PING && frame.flags & ACK != 0 && frame.payload == n.to_be_bytes() {
                return;
            }
            assert!(frame.kind != GOAWAY, "GOAWAY before PING {n} was answered");
        }
    }
}

fn stream_php(options: Value) -> Php {
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_OPTIONS", options.to_string()));
    Php::start_with("stream.php", opts)
}

#[test]
fn an_answer_streams_past_the_head_timeout_while_the_client_sends_frames() {
    // An answer's head used to end the request for the connection's watchdog: the next frame
    // the client sent (a PING here; the WINDOW_UPDATEs of every real download) started the
    // request-head timer, and the connection was dropped when it ran out, cutting off an
    // answer still streaming (curl saw 51 of 65 MB with the default 10 s).
    let php = stream_php(json!({"http.read_header_timeout": "1s", "http.idle_timeout": "1s"}));
    let dir = tempfile::tempdir().unwrap();
    let hold = dir.path().join("hold");
    std::fs::write(&hold, b"").unwrap();
    let mut h2 = H2::connect(php.addr, &[]);
    h2.get(1, &format!("/held?hold={}", hold.display()));
    let mut got = Vec::new();
    assert!(!h2.body(1, "chunk0;".len(), &mut got));
    assert_eq!(got, b"chunk0;");
    // Three times both timeouts, the client talking all along.
    for n in 0..15 {
        h2.ping(n);
        std::thread::sleep(Duration::from_millis(200));
    }
    std::fs::remove_file(&hold).unwrap();
    assert!(h2.body(1, usize::MAX, &mut got));
    assert_eq!(String::from_utf8_lossy(&got), "chunk0;end");
    // The connection is still good for the next request.
    h2.get(3, "/");
    let mut next = Vec::new();
    assert!(h2.body(3, usize::MAX, &mut next));
    assert_eq!(next, b"plain");
}

/// Asks for `path` with SETTINGS_INITIAL_WINDOW_SIZE 0 and never opens the window: no byte of
/// the body may come, and the server must give up on the connection after `send_timeout`.
fn asks_with_a_shut_window_and_is_cut_off(php: &Php, path: &str) {
    let mut h2 = H2::connect(php.addr, &[(0x4, 0)]);
    h2.get(1, path);
    let mut data = 0;
    while let Some(frame) = h2.next() {
        if frame.kind == DATA {
            data += frame.payload.len();
        }
    }
    assert_eq!(data, 0, "the window was never opened");
    assert!(
        php.wait_for_log("took no data", Duration::from_secs(10)),
        "{}",
        php.stderr()
    );
}

#[test]
fn a_client_that_opens_no_flow_control_window_is_cut_off_after_the_send_timeout() {
    // SETTINGS_INITIAL_WINDOW_SIZE 0: the server may send the head but no byte of the body.
    // Nothing blocks on the socket, so the write timer never started, and the stream (and the
    // answer's spool) stayed until the client left.
    let php = stream_php(json!({"http.send_timeout": "1s"}));
    asks_with_a_shut_window_and_is_cut_off(&php, "/chunks?n=3");
    // PHP went on: the next client is answered.
    let mut h2 = H2::connect(php.addr, &[]);
    h2.get(1, "/");
    let mut got = Vec::new();
    assert!(h2.body(1, usize::MAX, &mut got));
    assert_eq!(got, b"plain");
}

#[test]
fn a_whole_answer_the_client_never_takes_does_not_hold_its_connection() {
    // A whole answer (one data frame, the end of the stream) waits for the window like a
    // stream does; the connection stayed open for as long as the client liked.
    let php = stream_php(json!({"http.send_timeout": "1s", "http.idle_timeout": "1s"}));
    asks_with_a_shut_window_and_is_cut_off(&php, "/");
}
