//! HTTP/2 connections as a client drives them frame by frame: answers that stream while the
//! client keeps talking, clients that stop taking data, and one connection's many streams
//! against the queue every client shares.
mod common;
use common::pool::metric;
use common::{client, read, wait_until, Options, Php};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
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

    /// The server's first SETTINGS frame, as (id, value) pairs.
    fn settings(&mut self) -> Vec<(u16, u32)> {
        loop {
            let frame = self.next().expect("the server's SETTINGS");
            if frame.kind == SETTINGS && frame.flags & ACK == 0 {
                return frame
                    .payload
                    .chunks(6)
                    .map(|s| {
                        (
                            u16::from_be_bytes([s[0], s[1]]),
                            u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
                        )
                    })
                    .collect();
            }
        }
    }

    /// Reads until each of `streams` has ended: the first byte of its answer's header block
    /// (0x88 is `:status 200` from HPACK's static table) and its body. Panics on a reset.
    fn answers(&mut self, streams: &[u32]) -> HashMap<u32, (u8, Vec<u8>)> {
        let mut got: HashMap<u32, (u8, Vec<u8>)> = HashMap::new();
        let mut open = streams.len();
        while open > 0 {
            let frame = self
                .next()
                .unwrap_or_else(|| panic!("the connection closed with {open} answers to come"));
            if !streams.contains(&frame.stream) {
                assert!(frame.kind != GOAWAY, "GOAWAY with {open} answers to come");
                continue;
            }
            let answer = got.entry(frame.stream).or_default();
            match frame.kind {
                HEADERS => answer.0 = frame.payload[0],
                DATA => answer.1.extend_from_slice(&frame.payload),
                RST_STREAM => panic!("stream {} was reset", frame.stream),
                _ => continue,
            }
            if frame.flags & END_STREAM != 0 {
                open -= 1;
            }
        }
        got
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
    assert!(php.wait_for_log("took no data"), "{}", php.stderr());
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

/// A server whose `/gate` requests wait in PHP until `release`, with the metrics address on.
struct Gate {
    php: Php,
    dir: tempfile::TempDir,
}

impl Gate {
    fn start(options: Value) -> Gate {
        let mut options = options;
        options["metrics.address"] = json!("127.0.0.1:0");
        let gate = Gate {
            php: stream_php(options),
            dir: tempfile::tempdir().unwrap(),
        };
        gate.hold();
        gate
    }

    fn hold_file(&self) -> PathBuf {
        self.dir.path().join("hold")
    }

    fn started_file(&self) -> PathBuf {
        self.dir.path().join("started")
    }

    /// PHP answers no `/gate` request from now on.
    fn hold(&self) {
        std::fs::write(self.hold_file(), b"").unwrap();
    }

    fn release(&self) {
        std::fs::remove_file(self.hold_file()).unwrap();
    }

    fn path(&self, n: &str) -> String {
        format!(
            "/gate?n={n}&hold={}&started={}",
            self.hold_file().display(),
            self.started_file().display()
        )
    }

    /// The requests PHP took, in the order it took them.
    fn started(&self) -> Vec<String> {
        read(&self.started_file())
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until the server holds `in_flight` requests, `queued` of them in the queue.
    fn wait_for(&self, in_flight: u64, queued: u64, what: &str) {
        let mut seen = (0, 0);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while seen != (in_flight, queued) {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: in flight {}, queued {} (want {in_flight}, {queued}); PHP took {:?}",
                seen.0,
                seen.1,
                self.started()
            );
            std::thread::sleep(Duration::from_millis(20));
            seen = (
                metric(&self.php, "rr_http_requests_in_flight "),
                metric(&self.php, "rr_http_queue_depth "),
            );
        }
    }

    fn wait_started(&self, n: &str) {
        wait_until(&format!("PHP takes {n}"), Duration::from_secs(10), || {
            self.started().iter().any(|s| s == n)
        });
    }
}

#[test]
fn one_connection_cannot_fill_the_queue_and_its_streams_past_its_share_wait_and_are_answered() {
    // One HTTP/2 connection opened up to 200 streams and each took a place in the queue every
    // client shares: a few connections filled it, and every other client got 503 while PHP
    // worked through one client's backlog. Its streams past http.http2.max_queued_streams
    // now wait in the connection.
    one_connection_against_the_queue(json!({"http.queue_size": 8}));
}

#[test]
fn one_connection_cannot_fill_a_pools_queue() {
    // The same in the pool master, with one worker and nothing sent ahead to it.
    one_connection_against_the_queue(json!({
        "http.pool.num_workers": 1,
        "http.pool.max_queue_size": 8,
        "http.pool.send_ahead": 0,
    }));
}

fn one_connection_against_the_queue(options: Value) {
    let mut options = options;
    options["http.http2.max_queued_streams"] = json!(2);
    let gate = Gate::start(options);
    let mut a = H2::connect(gate.php.addr, &[]);
    assert!(
        a.settings().contains(&(0x3, 128)),
        "the default stream limit"
    );
    let streams: Vec<u32> = (0..20).map(|i| 1 + 2 * i).collect();
    for (i, stream) in streams.iter().enumerate() {
        a.get(*stream, &gate.path(&format!("a{i}")));
    }
    // All 20 with the server: one in PHP, one in the queue, 18 waiting in their connection.
    gate.wait_for(20, 1, "the connection's streams past its share wait in it");
    assert_eq!(gate.started().len(), 1);
    // Another client's request finds room in the queue, behind the connection's one.
    let b = std::thread::spawn({
        let url = gate.php.url(&gate.path("b"));
        move || {
            let resp = client().get(url).send().unwrap();
            (resp.status().as_u16(), resp.text().unwrap())
        }
    });
    gate.wait_for(21, 2, "the other client's request is queued");
    gate.release();
    assert_eq!(b.join().unwrap(), (200, "b".to_owned()));
    // None of the 20 was refused or lost.
    let answers = a.answers(&streams);
    for (i, stream) in streams.iter().enumerate() {
        let (status, body) = &answers[stream];
        let n = format!("a{i}");
        assert_eq!((*status, body.as_slice()), (0x88, n.as_bytes()), "{n}");
    }
    // PHP ran the other client's request third, before the connection's waiting streams.
    let started = gate.started();
    assert_eq!(started.len(), 21, "{started:?}");
    assert_eq!(started[2], "b", "{started:?}");
    assert!(
        started[..2].iter().all(|n| n.starts_with('a')),
        "{started:?}"
    );
}

#[test]
fn the_stream_limit_is_advertised_in_the_servers_settings() {
    // http.http2.max_concurrent_streams was accepted and ignored: hyper's 200 went out.
    let php = stream_php(json!({"http.http2.max_concurrent_streams": 5}));
    let mut h2 = H2::connect(php.addr, &[]);
    let settings = h2.settings();
    assert!(settings.contains(&(0x3, 5)), "{settings:?}");
    // The connection serves.
    h2.get(1, "/");
    let answers = h2.answers(&[1]);
    assert_eq!(answers[&1], (0x88, b"plain".to_vec()));
}

#[test]
fn a_stream_reset_while_it_waits_for_its_connections_share_frees_its_place() {
    let gate = Gate::start(json!({"http.http2.max_queued_streams": 2}));
    let mut a = H2::connect(gate.php.addr, &[]);
    a.settings();
    // One at a time, so which stream waits where is known.
    a.get(1, &gate.path("d1"));
    gate.wait_started("d1");
    gate.wait_for(1, 0, "d1 runs");
    a.get(3, &gate.path("d2"));
    gate.wait_for(2, 1, "d2 is queued");
    a.get(5, &gate.path("d3"));
    gate.wait_for(3, 1, "d3 waits in its connection");
    a.get(7, &gate.path("d4"));
    gate.wait_for(4, 1, "d4 waits in its connection");
    // CANCEL d3: it leaves the line, and d4 keeps its place behind d2.
    a.send(RST_STREAM, 0, 5, &0x8u32.to_be_bytes());
    gate.wait_for(3, 1, "the reset stream is gone");
    gate.release();
    let answers = a.answers(&[1, 3, 7]);
    for (stream, n) in [(1, "d1"), (3, "d2"), (7, "d4")] {
        assert_eq!(answers[&stream], (0x88, n.as_bytes().to_vec()), "{n}");
    }
    assert_eq!(gate.started(), ["d1", "d2", "d4"]);
    // Every place came back: two requests are again one in PHP and one in the queue.
    gate.hold();
    a.get(9, &gate.path("d5"));
    a.get(11, &gate.path("d6"));
    gate.wait_for(2, 1, "both places are free again");
    gate.release();
    let answers = a.answers(&[9, 11]);
    assert_eq!(answers[&9].0, 0x88);
    assert_eq!(answers[&11].0, 0x88);
}

/// Waits until the server holds `in_flight` requests (queued, waiting for a place or running).
fn in_flight_reaches(gate: &Gate, in_flight: u64, what: &str) {
    wait_until(what, Duration::from_secs(10), || {
        metric(&gate.php, "rr_http_requests_in_flight ") == in_flight
    });
}

#[test]
fn streams_reset_while_their_jobs_wait_in_the_queue_cannot_fill_it() {
    // A stream reset while its job waited in the queue gave its connection's place back at
    // once, and the abandoned job stayed until PHP reached it: opening and resetting streams
    // filled the queue every client shares while PHP was busy. The job now keeps the place.
    let gate = Gate::start(json!({"http.queue_size": 8, "http.http2.max_queued_streams": 2}));
    let mut a = H2::connect(gate.php.addr, &[]);
    a.settings();
    a.get(1, &gate.path("r0"));
    gate.wait_started("r0");
    in_flight_reaches(&gate, 1, "r0 runs");
    // As many as the queue holds beside r0's place: before, each left a job there.
    for i in 1..=7u32 {
        let stream = 1 + 2 * i;
        a.get(stream, &gate.path(&format!("r{i}")));
        in_flight_reaches(&gate, 2, &format!("r{i} reaches the server"));
        // CANCEL it, wherever it waits: in the queue (the first) or in its connection.
        a.send(RST_STREAM, 0, stream, &0x8u32.to_be_bytes());
        in_flight_reaches(&gate, 1, &format!("r{i} is reset"));
    }
    // The connection's abandoned jobs hold at most its share of the queue.
    let queued = metric(&gate.php, "rr_http_queue_depth ");
    assert!(queued <= 1, "{queued} jobs of reset streams in the queue");
    let b = std::thread::spawn({
        let url = gate.php.url(&gate.path("b"));
        move || {
            let resp = client().get(url).send().unwrap();
            (resp.status().as_u16(), resp.text().unwrap())
        }
    });
    in_flight_reaches(&gate, 2, "the other client's request is in");
    gate.release();
    assert_eq!(b.join().unwrap(), (200, "b".to_owned()));
    let answers = a.answers(&[1]);
    assert_eq!(answers[&1], (0x88, b"r0".to_vec()));
    // PHP ran r0 and the other client's request, none of the reset streams' jobs.
    assert_eq!(gate.started(), ["r0", "b"]);
}
