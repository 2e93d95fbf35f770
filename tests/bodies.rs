//! Bodies of any size both ways, in bounded memory, in single-process and pool mode; clients
//! that stop reading cannot hold PHP (docs/config.md, "Request and response bodies").
//!
//! Memory is read from /proc: the peak RSS (VmHWM, reset through clear_refs before each
//! transfer) of every rr process, against a bound far below the size moved. Nothing here
//! depends on the machine's speed: deadlines are generous and only bound a hang.
mod common;

use common::{client, Options, Php};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

const PIECE: usize = 65536;

/// The byte at `pos` of a generated body: 64 KB runs of one letter, as bodies.php's rr_piece().
fn expected(pos: u64) -> u8 {
    65 + ((pos / PIECE as u64) % 26) as u8
}

/// A generated body of `len` bytes, produced as it is read (the test never holds it).
struct Generated {
    pos: u64,
    len: u64,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min((self.len - self.pos) as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = expected(self.pos + i as u64);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

fn generated_md5(len: u64) -> String {
    let mut ctx = md5::Context::new();
    let mut body = Generated { pos: 0, len };
    let mut buf = vec![0u8; PIECE];
    loop {
        let n = body.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        ctx.consume(&buf[..n]);
    }
    format!("{:x}", ctx.compute())
}

fn put(php: &Php, path: &str, len: u64) -> reqwest::blocking::Response {
    client()
        .put(php.url(path))
        .timeout(Duration::from_secs(300))
        .body(reqwest::blocking::Body::sized(
            Generated { pos: 0, len },
            len,
        ))
        .send()
        .unwrap()
}

fn put_json(php: &Php, path: &str, len: u64) -> Value {
    let response = put(php, path, len);
    assert_eq!(response.status(), 200, "{path}");
    response.json().unwrap()
}

/// Reads a generated answer to its end, checking every byte; returns its length.
fn read_generated(mut response: reqwest::blocking::Response) -> u64 {
    assert_eq!(response.status(), 200);
    let mut pos = 0u64;
    let mut buf = vec![0u8; PIECE];
    loop {
        let n = response.read(&mut buf).unwrap();
        if n == 0 {
            return pos;
        }
        for (i, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, expected(pos + i as u64), "byte {}", pos + i as u64);
        }
        pos += n as u64;
    }
}

fn get(php: &Php, path: &str) -> reqwest::blocking::Response {
    client()
        .get(php.url(path))
        .timeout(Duration::from_secs(300))
        .send()
        .unwrap()
}

fn start(options: Value, env: &[(&'static str, &str)]) -> (Php, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut all = json!({"http.uploads.dir": dir.path().display().to_string()});
    for (k, v) in options.as_object().unwrap() {
        all[k] = v.clone();
    }
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_OPTIONS", all.to_string()));
    for (k, v) in env {
        opts.env.push((k, v.to_string()));
    }
    (Php::start_with("bodies.php", opts), dir)
}

fn pool(workers: u32) -> Value {
    json!({"http.pool.num_workers": workers, "status.address": "127.0.0.1:0"})
}

/// Temp files rr left in `dir` (request spools, answer spools, uploads).
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Waits until rr deleted every temp file in `dir`; fails naming what is left.
fn no_leftovers(dir: &Path, php: &Php) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !leftovers(dir).is_empty() {
        if Instant::now() > deadline {
            panic!("temp files left: {:?}\n{}", leftovers(dir), php.stderr());
        }
        // Single process: the file goes when the worker takes its next request (or a tick).
        let _ = get(php, "/");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status_kib(pid: i32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Every rr process of this server: the php process and its children (pool workers).
fn processes(php: &Php) -> Vec<i32> {
    let mut pids = vec![php.pid()];
    // Children are listed per thread that started them.
    for task in std::fs::read_dir(format!("/proc/{}/task", php.pid())).unwrap() {
        let children =
            std::fs::read_to_string(task.unwrap().path().join("children")).unwrap_or_default();
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    pids
}

/// Runs `transfer` and returns how far above its RSS at the start each process peaked (KiB).
fn peak_growth(php: &Php, transfer: impl FnOnce()) -> Vec<(i32, u64)> {
    let pids = processes(php);
    let base: Vec<u64> = pids
        .iter()
        .map(|pid| {
            // "5" resets the peak RSS to the current RSS.
            std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
            status_kib(*pid, "VmRSS:")
        })
        .collect();
    transfer();
    pids.iter()
        .zip(base)
        .map(|(pid, base)| (*pid, status_kib(*pid, "VmHWM:").saturating_sub(base)))
        .collect()
}

const MIB: u64 = 1024 * 1024;
/// Moved per transfer in the memory tests: far above the bound, so holding it whole fails.
const BIG: u64 = 256 * MIB;
/// Peak RSS growth allowed per process while BIG bytes pass (KiB).
const BOUND_KIB: u64 = 48 * 1024;

fn assert_bounded(what: &str, growth: &[(i32, u64)], php: &Php) {
    for (pid, kib) in growth {
        assert!(
            *kib < BOUND_KIB,
            "{what}: process {pid} grew by {} MiB (bound {} MiB)\n{}",
            kib / 1024,
            BOUND_KIB / 1024,
            php.stderr()
        );
    }
}

#[test]
fn a_large_raw_body_is_spooled_to_a_file_read_as_a_stream_and_deleted() {
    for options in [json!({}), pool(1)] {
        let (php, dir) = start(options.clone(), &[]);
        let len = 8 * MIB + 123;
        let info = put_json(&php, "/info", len);
        assert_eq!(info["size"], len, "{options}");
        assert_eq!(info["md5"], generated_md5(len), "{options}");
        assert_eq!(info["fileExists"], true, "{info}");
        let file = info["file"].as_str().unwrap();
        assert!(
            Path::new(file).starts_with(dir.path()),
            "spooled in http.uploads.dir: {file}"
        );
        // $req->body still loads it whole when asked.
        let loaded = put_json(&php, "/load", len);
        assert_eq!(loaded["md5"], generated_md5(len));
        no_leftovers(dir.path(), &php);
    }
}

/// A request's temp files go once the script is done with it, with no request after it: a
/// pool master used to keep a worker's last spooled body and uploads until that worker's next
/// answer, hours away on a quiet server (and in RAM where the temp directory is a tmpfs).
#[test]
fn temp_files_go_when_the_script_is_done_without_another_request() {
    for options in [json!({}), pool(1)] {
        let (php, dir) = start(options.clone(), &[]);
        let info = put_json(&php, "/info", 4 * MIB);
        assert_eq!(info["fileExists"], true, "{options}: {info}");
        let file =
            reqwest::blocking::multipart::Part::bytes(vec![b'x'; 200_000]).file_name("f.bin");
        let form = reqwest::blocking::multipart::Form::new().part("f", file);
        let answer = reqwest::blocking::Client::new()
            .post(php.url("/form"))
            .multipart(form)
            .send()
            .unwrap();
        assert_eq!(answer.status(), 200, "{options}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !leftovers(dir.path()).is_empty() {
            assert!(
                Instant::now() < deadline,
                "{options}: temp files left with no request after: {:?}\n{}",
                leftovers(dir.path()),
                php.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_small_body_stays_in_memory_and_the_threshold_is_configurable() {
    let (php, dir) = start(json!({"http.body_buffer_size": "1KB"}), &[]);
    let small = put_json(&php, "/info", 1024);
    assert_eq!(small["file"], Value::Null, "{small}");
    assert_eq!(small["md5"], generated_md5(1024));
    let over = put_json(&php, "/info", 1025);
    assert!(over["file"].is_string(), "{over}");
    assert_eq!(over["md5"], generated_md5(1025));
    // Chunked (no Content-Length) takes the same way.
    let chunked = client()
        .put(php.url("/info"))
        .body(reqwest::blocking::Body::new(Generated {
            pos: 0,
            len: 5000,
        }))
        .send()
        .unwrap();
    let chunked: Value = chunked.json().unwrap();
    assert!(chunked["file"].is_string(), "{chunked}");
    assert_eq!(chunked["md5"], generated_md5(5000));
    no_leftovers(dir.path(), &php);
}

#[test]
fn php_input_reads_a_spooled_body_under_handle_in_both_modes() {
    for options in [json!({}), pool(1)] {
        let (php, dir) = start(options.clone(), &[("RR_TEST_HANDLE", "1")]);
        let len = 6 * MIB + 7;
        let got = put_json(&php, "/input", len);
        assert_eq!(got["md5"], generated_md5(len), "{options}");
        assert_eq!(got["size"], len);
        let twice = put_json(&php, "/input-twice", 300 * 1024);
        assert_eq!(twice["first"], generated_md5(300 * 1024));
        assert_eq!(
            twice["second"], twice["first"],
            "php://input can be read again"
        );
        no_leftovers(dir.path(), &php);
    }
}

/// What the server sends on a raw connection until it closes it (30 s at most).
fn answer_of(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn spool_files_go_on_every_path_client_abort_exception_refusal_crash() {
    let (php, dir) = start(
        json!({"http.max_request_size": "4MB"}),
        &[("RR_TEST_HANDLE", "1")],
    );
    // A chunked body that turns out over the limit once partly spooled: 413, nothing left.
    let mut stream = TcpStream::connect(php.addr).unwrap();
    write!(
        stream,
        "PUT /input HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let chunk = format!("10000\r\n{}\r\n", "y".repeat(0x10000));
    for _ in 0..80 {
        // The server may answer and close before all of it is written.
        if stream.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let answer = answer_of(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A client that leaves half-way through its body.
    let mut stream = TcpStream::connect(php.addr).unwrap();
    write!(
        stream,
        "PUT /input HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n"
    )
    .unwrap();
    stream.write_all(&vec![b'x'; 1_000_000]).unwrap();
    drop(stream);
    // PHP throws while the body is open.
    let response = put(&php, "/throw", 2 * MIB);
    assert_eq!(response.status(), 500);
    no_leftovers(dir.path(), &php);
    drop(php);

    // Pool: the worker dies mid-request; the master's file goes with the request.
    let (php, dir) = start(pool(1), &[]);
    let response = put(&php, "/crash", 2 * MIB);
    assert_eq!(response.status(), 502);
    no_leftovers(dir.path(), &php);
}

/// A multipart part's head was kept whole in memory until its end: a 95 MB header line held
/// 95 MB and stalled the other connections. It is refused once past 16 KiB, without waiting
/// for the rest of the body.
#[test]
fn a_multipart_part_head_past_16_kib_is_a_400_before_the_rest_arrives() {
    for options in [json!({}), pool(1)] {
        let (php, dir) = start(options.clone(), &[]);
        let mut stream = TcpStream::connect(php.addr).unwrap();
        write!(
            stream,
            "POST /info HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n\
             Content-Length: 99614720\r\n\r\n--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\
             X-Long: "
        )
        .unwrap();
        // 64 KiB of the 95 MB header line, then nothing: the answer must not need the rest.
        stream.write_all(&vec![b'v'; 64 * 1024]).unwrap();
        let answer = answer_of(&mut stream);
        assert!(answer.starts_with("HTTP/1.1 400"), "{options}: {answer}");
        assert!(
            answer.contains("the head of multipart part 1 is longer than 16384 bytes"),
            "{options}: {answer}"
        );
        assert_eq!(get(&php, "/").status(), 200, "{options}");
        no_leftovers(dir.path(), &php);
    }
}

#[test]
fn a_client_that_pauses_past_body_timeout_gets_a_408() {
    let (php, dir) = start(json!({"http.body_timeout": "500ms"}), &[]);
    let mut stream = TcpStream::connect(php.addr).unwrap();
    write!(
        stream,
        "PUT /info HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
    )
    .unwrap();
    stream.write_all(&vec![b'x'; 500_000]).unwrap();
    let answer = answer_of(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
    no_leftovers(dir.path(), &php);
}

#[test]
fn streamed_answers_arrive_whole_in_both_modes() {
    for options in [json!({}), pool(1)] {
        let (php, _dir) = start(options.clone(), &[]);
        assert_eq!(
            read_generated(get(&php, "/download?mb=20")),
            20 * MIB,
            "{options}"
        );
        // One large respond(): a pool worker splits it into frames; the length is declared.
        let whole = get(&php, "/whole?mb=3");
        assert_eq!(
            whole.headers()["content-length"].to_str().unwrap(),
            (3 * MIB).to_string(),
            "{options}"
        );
        assert_eq!(read_generated(whole), 3 * MIB);
        drop(php);
        let (php, _dir) = start(options.clone(), &[("RR_TEST_HANDLE", "1")]);
        // Unflushed output past output_buffer_size streams, and arrives whole.
        assert_eq!(
            read_generated(get(&php, "/echo?mb=20")),
            20 * MIB,
            "{options}"
        );
        // Under the threshold the answer is held and gets a Content-Length.
        let small = get(&php, "/late-header?bytes=1000");
        assert_eq!(small.headers()["x-late"], "yes");
        assert_eq!(small.headers()["content-length"], "1000");
    }
}

#[test]
fn a_header_after_output_past_the_threshold_warns_as_under_php_fpm() {
    let (php, _dir) = start(
        json!({"http.output_buffer_size": "4KB"}),
        &[("RR_TEST_HANDLE", "1")],
    );
    let response = get(&php, "/late-header?bytes=100000");
    assert!(response.headers().get("x-late").is_none());
    let text = response.text().unwrap();
    assert_eq!(&text[..100000], "x".repeat(100000));
    // The CLI's display_errors prints PHP's warning into the answer, as php-fpm's would.
    assert!(
        text[100000..].contains("headers already sent"),
        "{}",
        &text[100000..]
    );
}

#[test]
fn large_bodies_both_ways_keep_every_process_bounded_single() {
    let (php, dir) = start(json!({"http.max_request_size": "1GB"}), &[]);
    let growth = peak_growth(&php, || {
        let info = put_json(&php, "/info", BIG);
        assert_eq!(info["size"], BIG);
    });
    assert_bounded("256 MiB PUT", &growth, &php);
    let growth = peak_growth(&php, || {
        assert_eq!(read_generated(get(&php, "/download?mb=256")), BIG);
    });
    assert_bounded("256 MiB streamed GET", &growth, &php);
    no_leftovers(dir.path(), &php);
}

#[test]
fn large_bodies_both_ways_keep_every_process_bounded_pool() {
    let mut options = pool(1);
    options["http.max_request_size"] = json!("1GB");
    let (php, dir) = start(options, &[]);
    let _ = get(&php, "/"); // the worker is up
    let growth = peak_growth(&php, || {
        let info = put_json(&php, "/info", BIG);
        assert_eq!(info["size"], BIG);
    });
    assert_eq!(growth.len(), 2, "master and worker measured");
    assert_bounded("256 MiB PUT, pool", &growth, &php);
    let growth = peak_growth(&php, || {
        assert_eq!(read_generated(get(&php, "/download?mb=256")), BIG);
    });
    assert_bounded("256 MiB streamed GET, pool", &growth, &php);
    no_leftovers(dir.path(), &php);
}

#[test]
fn handle_mode_readfile_and_php_input_keep_every_process_bounded() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::io::copy(
        &mut Generated { pos: 0, len: BIG },
        &mut std::fs::File::create(file.path()).unwrap(),
    )
    .unwrap();
    for options in [json!({"http.max_request_size": "1GB"}), {
        let mut p = pool(1);
        p["http.max_request_size"] = json!("1GB");
        p
    }] {
        let (php, dir) = start(options.clone(), &[("RR_TEST_HANDLE", "1")]);
        let _ = get(&php, "/");
        let path = file.path().display().to_string();
        let growth = peak_growth(&php, || {
            let got = read_generated(get(&php, &format!("/readfile?path={path}")));
            assert_eq!(got, BIG);
        });
        assert_bounded(&format!("readfile of 256 MiB {options}"), &growth, &php);
        let growth = peak_growth(&php, || {
            let got = put_json(&php, "/input", BIG);
            assert_eq!(got["size"], BIG);
        });
        assert_bounded(&format!("php://input of 256 MiB {options}"), &growth, &php);
        no_leftovers(dir.path(), &php);
    }
}

/// Opens a connection that asks for `path` and never reads; a small receive buffer (set
/// before connecting, so the window starts small) makes the server's writes stall early.
fn stalled_reader(php: &Php, path: &str) -> TcpStream {
    use std::os::fd::FromRawFd;
    let std::net::SocketAddr::V4(addr) = php.addr else {
        panic!("an IPv4 listener")
    };
    // SAFETY: a new socket we own; setsockopt and connect get pointers to live locals of the
    // sizes they are told.
    let fd = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*addr.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&raw const sin).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        fd
    };
    // SAFETY: `fd` is a connected socket nobody else owns.
    let mut stream = unsafe { TcpStream::from_raw_fd(fd) };
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    stream
}

/// The body of a chunked HTTP/1.1 answer read to its close: None when it does not end with
/// the last chunk (the answer was cut off).
fn dechunked(raw: &[u8]) -> Option<Vec<u8>> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let (mut at, mut body) = (head_end, Vec::new());
    loop {
        let line_end = at + raw[at..].windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&raw[at..line_end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(at..at + size)?);
        at += size + 2;
    }
}

/// A streamed answer's temp file on a full disk (`http.uploads.dir` a 1 MiB tmpfs here) cut the
/// answer off: the slow client got 64 KiB + 1 MiB of 16 MiB and a broken connection. The
/// answer now waits for its client once the disk is full, as with `max_response_spool_size:
/// 0`, and arrives whole, in both modes. Skipped where a tmpfs cannot be mounted.
#[test]
fn a_streamed_answer_that_fills_the_disk_waits_for_its_client_and_arrives_whole() {
    let Some(small) = common::SmallFs::mount("1m") else {
        return;
    };
    let uploads = small.path().display().to_string();
    let mut pooled = pool(1);
    pooled["http.uploads.dir"] = json!(uploads);
    for options in [json!({"http.uploads.dir": uploads}), pooled] {
        let mut options = options;
        options["http.response_buffer_size"] = json!("64KB");
        let (php, _dir) = start(options.clone(), &[]);
        let mut stalled = stalled_reader(&php, "/download?mb=16");
        // The client reads nothing until the spool has filled the disk.
        assert!(
            php.wait_for_log("could not be spooled"),
            "{options}: {}",
            php.stderr()
        );
        stalled
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let mut raw = Vec::new();
        let mut buf = vec![0u8; PIECE];
        // Up to the last chunk: the connection stays open after it (keep-alive).
        while !raw.ends_with(b"\r\n0\r\n\r\n") {
            match stalled.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        let body = dechunked(&raw).unwrap_or_else(|| {
            panic!(
                "{options}: the answer was cut off after {} bytes:\n{}",
                raw.len(),
                php.stderr()
            )
        });
        assert_eq!(body.len() as u64, 16 * MIB, "{options}");
        for (pos, b) in body.iter().enumerate() {
            assert_eq!(*b, expected(pos as u64), "{options}: byte {pos}");
        }
        drop(php);
        assert!(leftovers(small.path()).is_empty(), "{options}");
    }
}

/// A streamed answer waiting for a slow client in its temp file (`rr-answer-*`) left that file
/// in `http.uploads.dir` for good when the process was killed (SIGKILL, the OOM killer): up to
/// `max_response_spool_size` (1 GB) per answer, never deleted. The file now has no name.
#[test]
fn a_process_killed_mid_answer_leaves_no_answer_spool_behind() {
    let (mut php, dir) = start(json!({"http.response_buffer_size": "64KB"}), &[]);
    let marks = tempfile::tempdir().unwrap();
    let done = marks.path().join("done");
    let _stalled = stalled_reader(&php, &format!("/download?mb=4&done={}", done.display()));
    // PHP handed the whole answer over: what the client has not read waits on disk.
    common::wait_until("the answer produced", Duration::from_secs(60), || {
        done.exists()
    });
    php.signal(libc::SIGKILL);
    php.wait_exit(Duration::from_secs(20));
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn clients_that_never_read_hold_no_php_and_are_cut_off() {
    for options in [json!({"http.send_timeout": "1s"}), {
        let mut p = pool(1);
        p["http.send_timeout"] = json!("1s");
        p
    }] {
        let (php, dir) = start(options.clone(), &[]);
        let marks = tempfile::tempdir().unwrap();
        // Twenty clients ask for 16 MiB each and read nothing.
        let stalled: Vec<_> = (0..20)
            .map(|i| {
                let done = marks.path().join(format!("done{i}"));
                stalled_reader(&php, &format!("/download?mb=16&done={}", done.display()))
            })
            .collect();
        // PHP finished every one of those answers: it never waited on their clients.
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::fs::read_dir(marks.path()).unwrap().count() < 20 {
            assert!(
                Instant::now() < deadline,
                "PHP is held by clients that do not read ({options}):\n{}",
                php.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Others are served meanwhile.
        assert_eq!(get(&php, "/").status(), 200);
        // Each stalled connection is closed after send_timeout, and its spool is deleted.
        let deadline = Instant::now() + Duration::from_secs(120);
        while php
            .stderr()
            .matches("read nothing for http.send_timeout")
            .count()
            < 20
        {
            assert!(
                Instant::now() < deadline,
                "stalled connections were not closed ({options}):\n{}",
                php.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        for mut stream in stalled {
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
            assert!(
                (sink.len() as u64) < 16 * MIB,
                "the connection was cut off ({} bytes), not served whole",
                sink.len()
            );
        }
        assert!(php.wait_for_log("send_timeout"));
        no_leftovers(dir.path(), &php);
    }
}

/// The spool files of request bodies in `dir`, with their sizes.
fn body_spools(dir: &Path) -> Vec<u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("rr-body-"))
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .collect()
}

/// Sends a request (`send`) while the only worker is busy on `/hold`, runs `while_queued` once
/// the request is sent (it waits for what it checks), then frees the worker; what `send` got.
fn behind_a_busy_worker<T: Send>(
    php: &Php,
    send: impl FnOnce() -> T + Send,
    while_queued: impl FnOnce(),
) -> T {
    let marks = tempfile::tempdir().unwrap();
    let (hold, started) = (marks.path().join("hold"), marks.path().join("started"));
    std::fs::write(&hold, "").unwrap();
    let url = php.url(&format!(
        "/hold?hold={}&started={}",
        hold.display(),
        started.display()
    ));
    let busy = std::thread::spawn(move || client().get(url).send().unwrap().text().unwrap());
    common::wait_until("the worker busy", Duration::from_secs(20), || {
        started.exists()
    });
    let got = std::thread::scope(|s| {
        let sent = s.spawn(send);
        while_queued();
        std::fs::remove_file(&hold).unwrap();
        sent.join().unwrap()
    });
    assert_eq!(busy.join().unwrap(), "released");
    got
}

/// An urlencoded form over `http.body_buffer_size` was held whole in memory (up to
/// `max_request_size`) from its first byte until PHP took it, then parsed in memory too: a
/// hundred clients queued behind busy workers cost a hundred bodies of RAM, where nginx spools
/// them to disk. It now waits on disk like any large body and is parsed when PHP takes it,
/// the same way as a small one (`RR\Request::$parsed`, and `$_POST` under `handle()`).
#[test]
fn a_large_form_waits_on_disk_and_is_parsed_like_a_small_one() {
    let a = "x".repeat(3 * MIB as usize);
    let body = format!("a={a}&b[c][]=1&b[c][]=two+words&d=%41%42&e.f=g");
    let want_a_md5 = format!("{:x}", md5::compute(&a));
    let want_rest = json!({"b": {"c": ["1", "two words"]}, "d": "AB", "e_f": "g"});
    let post = |php: &Php| -> Value {
        client()
            .post(php.url("/form"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let small = json!({"http.body_buffer_size": "4KB"});
    let mut pooled = pool(1);
    pooled["http.body_buffer_size"] = json!("4KB");
    for options in [small.clone(), pooled] {
        let (php, dir) = start(options.clone(), &[]);
        let form = behind_a_busy_worker(
            &php,
            || post(&php),
            // Queued behind the busy worker, the whole form is in a spool file.
            || {
                common::wait_until("the form spooled", Duration::from_secs(20), || {
                    body_spools(dir.path()).contains(&(body.len() as u64))
                })
            },
        );
        assert_eq!(form["a_len"], a.len(), "{options}");
        assert_eq!(form["a_md5"], want_a_md5, "{options}");
        assert_eq!(form["rest"], want_rest, "{options}");
        assert!(form["file"].is_string(), "{form}");
        no_leftovers(dir.path(), &php);
    }
    // $_POST under handle(), from the spool file as well.
    let (php, dir) = start(small, &[("RR_TEST_HANDLE", "1")]);
    let form = post(&php);
    assert_eq!(form["a_md5"], want_a_md5);
    assert_eq!(form["rest"], want_rest);
    no_leftovers(dir.path(), &php);
}

/// A form that waited on disk and cannot be read back when PHP takes the request (its file
/// gone) never reaches PHP with fields missing: the client gets a 500, the worker goes on.
#[test]
fn a_spooled_form_that_cannot_be_read_back_is_answered_500_not_run_without_fields() {
    let urlencoded = (
        "application/x-www-form-urlencoded".to_owned(),
        format!("a={}&b=2", "x".repeat(64 * 1024)).into_bytes(),
        "rr-body-",
    );
    let multipart = {
        const BOUNDARY: &str = "rr-test-boundary-91c2";
        let body = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n{}\r\n--{BOUNDARY}--\r\n",
            "x".repeat(64 * 1024)
        );
        (
            format!("multipart/form-data; boundary={BOUNDARY}"),
            body.into_bytes(),
            "rr-fields-",
        )
    };
    let mut pooled = pool(1);
    pooled["http.body_buffer_size"] = json!("4KB");
    for options in [json!({"http.body_buffer_size": "4KB"}), pooled] {
        for (content_type, body, prefix) in [&urlencoded, &multipart] {
            let (php, dir) = start(options.clone(), &[]);
            let spool_of = |dir: &Path| {
                std::fs::read_dir(dir)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path())
                    .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            };
            let send = || {
                let response = client()
                    .post(php.url("/form"))
                    .header("Content-Type", content_type.as_str())
                    .body(body.clone())
                    .send()
                    .unwrap();
                (response.status().as_u16(), response.text().unwrap())
            };
            let (status, answer) = behind_a_busy_worker(&php, send, || {
                let mut spool = None;
                common::wait_until("the form spooled", Duration::from_secs(20), || {
                    spool = spool_of(dir.path());
                    spool.is_some()
                });
                std::fs::remove_file(spool.unwrap()).unwrap();
            });
            assert_eq!(status, 500, "{options} {content_type}: {answer}");
            let json: Value = serde_json::from_str(&answer).unwrap();
            assert_eq!(json["code"], "worker_error", "{answer}");
            // Written before the answer, read from the pipe by the harness's own thread.
            assert!(php.wait_for_log("from disk"), "{}", php.stderr());
            // The worker goes on.
            assert_eq!(get(&php, "/").status(), 200, "{options} {content_type}");
        }
    }
}

/// A raw body that waited on disk and whose file is gone when PHP takes the request (an
/// operator or a temp cleaner emptied `http.uploads.dir`) made `php://input` read nothing under
/// `handle()`: the script took an empty body for the whole one and answered 200. It now gets a
/// 500 and PHP never runs it, in both modes; the worker goes on.
#[test]
fn a_spooled_body_gone_from_disk_is_answered_500_not_read_as_empty_under_handle() {
    const LEN: u64 = 256 * 1024;
    let mut pooled = pool(1);
    pooled["http.body_buffer_size"] = json!("4KB");
    for options in [json!({"http.body_buffer_size": "4KB"}), pooled] {
        let (php, dir) = start(options.clone(), &[("RR_TEST_HANDLE", "1")]);
        let send = || {
            let response = put(&php, "/input", LEN);
            (response.status().as_u16(), response.text().unwrap())
        };
        let (status, answer) = behind_a_busy_worker(&php, send, || {
            let mut spool = None;
            common::wait_until("the body spooled", Duration::from_secs(20), || {
                spool = std::fs::read_dir(dir.path())
                    .unwrap()
                    .flatten()
                    .map(|e| e.path())
                    .find(|p| {
                        p.file_name()
                            .unwrap()
                            .to_string_lossy()
                            .starts_with("rr-body-")
                    });
                spool.is_some()
            });
            std::fs::remove_file(spool.unwrap()).unwrap();
        });
        assert_eq!(status, 500, "{options}: {answer}");
        let json: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(json["code"], "worker_error", "{answer}");
        assert!(
            php.wait_for_log("opening the request body file"),
            "{}",
            php.stderr()
        );
        // The worker goes on, and reads the next spooled body whole.
        let got: Value = put(&php, "/input", LEN).json().unwrap();
        assert_eq!(got["md5"], generated_md5(LEN), "{options}");
    }
}

fn spooled_fields(dir: &Path) -> Vec<u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("rr-fields-"))
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .collect()
}

/// A multipart POST's text fields were held in memory from their arrival until PHP took the
/// request, whatever their size (up to `max_request_size`): the same hundred queued clients
/// cost a hundred bodies of RAM. Past `http.body_buffer_size` they now wait on disk and PHP gets
/// every field, in the order sent, as if all had been held in memory.
#[test]
fn large_multipart_fields_wait_on_disk_and_php_gets_every_one_in_order() {
    const BOUNDARY: &str = "rr-test-boundary-7d3a";
    let a = "y".repeat(3 * MIB as usize);
    let mut body = Vec::new();
    let mut part = |disposition: &str, value: &[u8]| {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; {disposition}\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    };
    part(r#"name="first""#, b"1");
    part(r#"name="a""#, a.as_bytes());
    part(r#"name="f"; filename="f.txt""#, b"file content");
    part(r#"name="b[c][]""#, b"1");
    part(r#"name="b[c][]""#, b"two words");
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    let want_a_md5 = format!("{:x}", md5::compute(&a));
    let want_rest = json!({"first": "1", "b": {"c": ["1", "two words"]}});
    let want_keys = json!(["first", "a", "b"]);
    let post = |php: &Php| -> Value {
        client()
            .post(php.url("/form"))
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body.clone())
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let small = json!({"http.body_buffer_size": "4KB"});
    let mut pooled = pool(1);
    pooled["http.body_buffer_size"] = json!("4KB");
    for options in [small.clone(), pooled] {
        let (php, dir) = start(options.clone(), &[]);
        let form = behind_a_busy_worker(
            &php,
            || post(&php),
            // Queued behind the busy worker, the large field (and those after it) are on disk.
            || {
                common::wait_until("the fields spooled", Duration::from_secs(20), || {
                    spooled_fields(dir.path())
                        .iter()
                        .any(|&len| len > a.len() as u64)
                })
            },
        );
        assert_eq!(form["a_len"], a.len(), "{options}");
        assert_eq!(form["a_md5"], want_a_md5, "{options}");
        assert_eq!(form["rest"], want_rest, "{options}");
        assert_eq!(form["keys"], want_keys, "{options}");
        no_leftovers(dir.path(), &php);
    }
    // $_POST under handle(), from the spooled fields as well.
    let (php, dir) = start(small, &[("RR_TEST_HANDLE", "1")]);
    let form = post(&php);
    assert_eq!(form["a_md5"], want_a_md5);
    assert_eq!(form["rest"], want_rest);
    assert_eq!(form["keys"], want_keys);
    no_leftovers(dir.path(), &php);
}
