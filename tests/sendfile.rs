//! `http.sendfile`: X-Sendfile and X-Accel-Redirect from PHP (respond() and handle(), single
//! process and pool), served like sendFile() and kept inside the configured directories.
mod common;
use common::{client, Options, Php};
use serde_json::{json, Value};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// How the fixture runs: (RR_TEST_MODE, pool mode).
const MODES: [(&str, bool); 4] = [
    ("respond", false),
    ("handle", false),
    ("respond", true),
    ("handle", true),
];

struct Files {
    _dir: tempfile::TempDir,
    allowed: PathBuf,
    secret: PathBuf,
    content: Vec<u8>,
}

/// `allowed/` (a large `data.bin`, `notes.txt`, `sub dir/b.txt`, a `link.txt` to the secret,
/// a `dir/`), and `secret.txt` beside it.
fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("allowed");
    std::fs::create_dir_all(allowed.join("sub dir")).unwrap();
    std::fs::create_dir_all(allowed.join("dir")).unwrap();
    let content: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(allowed.join("data.bin"), &content).unwrap();
    std::fs::write(allowed.join("notes.txt"), "plain notes\n").unwrap();
    std::fs::write(allowed.join("sub dir/b.txt"), "bee\n").unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret\n").unwrap();
    symlink(&secret, allowed.join("link.txt")).unwrap();
    Files {
        _dir: dir,
        allowed,
        secret,
        content,
    }
}

fn start(mode: &str, pool: bool, options: Value, ini: &[(&'static str, &str)]) -> Php {
    let mut options = options;
    if pool {
        options["http.pool.num_workers"] = json!(1);
    }
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_OPTIONS", options.to_string()));
    opts.env.push(("RR_TEST_MODE", mode.to_owned()));
    for (k, v) in ini {
        opts.ini.push((k, v.to_string()));
    }
    Php::start_with("sendfile.php", opts)
}

fn on(files: &Files) -> Value {
    json!({
        "http.sendfile.allowed_dirs": [files.allowed],
        "http.sendfile.accel_map": {"/protected/": files.allowed},
    })
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn code(&self) -> String {
        let json: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)));
        json["code"].as_str().unwrap().to_owned()
    }

    /// No header of the X-Sendfile family reaches the client.
    fn clean(&self) -> bool {
        self.headers
            .keys()
            .all(|k| k != "x-sendfile" && !k.as_str().starts_with("x-accel-"))
    }
}

fn ask(
    php: &Php,
    method: reqwest::Method,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = client().request(method, php.url("/")).query(query);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().unwrap().to_vec(),
    }
}

fn get(php: &Php, query: &[(&str, &str)]) -> Answer {
    ask(php, reqwest::Method::GET, query, &[])
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn x_sendfile_streams_the_file_with_range_and_head_as_send_file_does() {
    let f = files();
    let data = f.allowed.join("data.bin");
    for (mode, pool) in MODES {
        let php = start(mode, pool, on(&f), &[]);
        let what = format!("{mode} pool={pool}");
        let q = [("sendfile", text(&data)), ("body", "PHP's own body")];
        let full = get(&php, &q);
        assert_eq!(full.status, 200, "{what}");
        assert_eq!(full.body, f.content, "{what}: the file, not PHP's body");
        assert_eq!(
            full.header("content-length"),
            Some(f.content.len().to_string().as_str())
        );
        assert_eq!(full.header("accept-ranges"), Some("bytes"), "{what}");
        assert_eq!(
            full.header("x-from"),
            Some("php"),
            "{what}: PHP's headers stay"
        );
        assert_eq!(
            full.header("content-type"),
            Some("application/octet-stream"),
            "{what}: the type comes from the file, not PHP's default"
        );
        assert!(full.clean(), "{what}: {:?}", full.headers);
        let etag = full.header("etag").unwrap().to_owned();
        assert!(etag.starts_with("W/"), "{what}: {etag}");

        let part = ask(
            &php,
            reqwest::Method::GET,
            &q,
            &[("Range", "bytes=100-199")],
        );
        assert_eq!(part.status, 206, "{what}");
        assert_eq!(part.body, &f.content[100..200], "{what}");
        assert_eq!(
            part.header("content-range"),
            Some(format!("bytes 100-199/{}", f.content.len()).as_str())
        );
        let stale = ask(
            &php,
            reqwest::Method::GET,
            &q,
            &[("Range", "bytes=100-199"), ("If-Range", "\"other\"")],
        );
        assert_eq!(stale.status, 200, "{what}: If-Range that does not match");
        assert_eq!(stale.body.len(), f.content.len());
        let current = ask(
            &php,
            reqwest::Method::GET,
            &q,
            &[("Range", "bytes=0-0"), ("If-Range", etag.as_str())],
        );
        // sendFile's tag is weak: If-Range needs a strong match (RFC 9110 13.1.5).
        assert_eq!(current.status, 200, "{what}");
        let beyond = ask(
            &php,
            reqwest::Method::GET,
            &q,
            &[("Range", "bytes=999999-")],
        );
        assert_eq!(beyond.status, 416, "{what}");

        let head = ask(&php, reqwest::Method::HEAD, &q, &[]);
        assert_eq!(head.status, 200, "{what}");
        assert!(head.body.is_empty(), "{what}");
        assert_eq!(
            head.header("content-length"),
            Some(f.content.len().to_string().as_str())
        );
        assert!(head.clean(), "{what}");

        // PHP's type and status are kept, as sendFile() keeps them.
        let typed = get(
            &php,
            &[
                ("sendfile", text(&f.allowed.join("notes.txt"))),
                ("type", "text/markdown"),
                ("status", "203"),
            ],
        );
        assert_eq!(typed.status, 203, "{what}");
        // handle() adds PHP's default_charset to a text type, as php-fpm does.
        let typ = typed.header("content-type").unwrap();
        assert!(typ.starts_with("text/markdown"), "{what}: {typ}");
        assert_eq!(typed.body, b"plain notes\n");
    }
}

#[test]
fn x_accel_redirect_maps_a_uri_prefix_to_its_directory() {
    let f = files();
    for (mode, pool) in MODES {
        let php = start(mode, pool, on(&f), &[]);
        let what = format!("{mode} pool={pool}");
        let a = get(&php, &[("accel", "/protected/sub%20dir/b.txt?download=1")]);
        assert_eq!(a.status, 200, "{what}");
        assert_eq!(a.body, b"bee\n", "{what}");
        assert_eq!(a.header("content-type"), Some("text/plain; charset=utf-8"));
        assert!(a.clean(), "{what}: {:?}", a.headers);
        let part = ask(
            &php,
            reqwest::Method::GET,
            &[("accel", "/protected/data.bin")],
            &[("Range", "bytes=-10")],
        );
        assert_eq!(part.status, 206, "{what}");
        assert_eq!(part.body, &f.content[f.content.len() - 10..], "{what}");
    }
}

/// The query, then the status, the JSON code and a word of the log line expected.
type Refusal<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str, &'a str);

#[test]
fn escapes_missing_files_and_directories_get_a_clear_answer_and_a_log_line() {
    let f = files();
    let allowed = text(&f.allowed).to_owned();
    let traversal = format!("{allowed}/sub dir/../../secret.txt");
    let link = format!("{allowed}/link.txt");
    let missing = format!("{allowed}/gone.txt");
    let directory = format!("{allowed}/dir");
    let notes = format!("{allowed}/notes.txt");
    let cases: Vec<Refusal> = vec![
        (
            vec![("sendfile", traversal.as_str())],
            403,
            "forbidden_path",
            "`..`",
        ),
        (
            vec![("sendfile", text(&f.secret))],
            403,
            "forbidden_path",
            "outside",
        ),
        (
            vec![("sendfile", link.as_str())],
            403,
            "forbidden_path",
            "outside",
        ),
        (
            vec![("sendfile", "notes.txt")],
            403,
            "forbidden_path",
            "not absolute",
        ),
        (
            vec![("sendfile", missing.as_str())],
            404,
            "file_not_found",
            "not found",
        ),
        (
            vec![("sendfile", directory.as_str())],
            403,
            "forbidden_path",
            "not a regular file",
        ),
        (
            vec![("accel", "/protected/../secret.txt")],
            403,
            "forbidden_path",
            "`..`",
        ),
        (
            vec![("accel", "/protected/%2e%2e/secret.txt")],
            403,
            "forbidden_path",
            "`..`",
        ),
        (
            vec![("accel", "/protected/link.txt")],
            403,
            "forbidden_path",
            "outside",
        ),
        (
            vec![("accel", "/elsewhere/notes.txt")],
            403,
            "forbidden_path",
            "no prefix",
        ),
        (
            vec![("accel", "/protected/gone.txt")],
            404,
            "file_not_found",
            "not found",
        ),
        (
            vec![("accel", "/protected/dir")],
            403,
            "forbidden_path",
            "not a regular file",
        ),
        (
            vec![
                ("sendfile", notes.as_str()),
                ("both", "/protected/notes.txt"),
            ],
            403,
            "forbidden_path",
            "one file",
        ),
    ];
    for (mode, pool) in MODES {
        let php = start(mode, pool, on(&f), &[]);
        for (query, status, code, logged) in &cases {
            let what = format!("{mode} pool={pool} {query:?}");
            let a = get(&php, query);
            assert_eq!(a.status, *status, "{what}");
            assert_eq!(a.code(), *code, "{what}");
            assert!(a.clean(), "{what}: {:?}", a.headers);
            assert!(
                !String::from_utf8_lossy(&a.body).contains("secret"),
                "{what}"
            );
            let value = query[0].1;
            let needle = match query[0].0 {
                "sendfile" => format!("X-Sendfile: {value}"),
                _ => format!("X-Accel-Redirect: {value}"),
            };
            let needle = if query.len() > 1 {
                "X-Sendfile / X-Accel-Redirect".to_owned()
            } else {
                needle
            };
            assert!(
                php.wait_for_log(&needle),
                "{what}: no log line with {needle:?}:\n{}",
                php.stderr()
            );
            assert!(php.stderr().contains(logged), "{what}: {logged}");
        }
    }
}

#[test]
fn without_the_section_the_headers_pass_through_untouched() {
    let f = files();
    let notes = f.allowed.join("notes.txt");
    for (mode, pool) in MODES {
        let php = start(mode, pool, json!({}), &[]);
        let what = format!("{mode} pool={pool}");
        let a = get(&php, &[("sendfile", text(&notes)), ("body", "from php")]);
        assert_eq!(a.status, 200, "{what}");
        assert_eq!(a.body, b"from php", "{what}");
        assert_eq!(a.header("x-sendfile"), Some(text(&notes)), "{what}");
        let b = get(&php, &[("accel", "/protected/notes.txt")]);
        assert_eq!(b.header("x-accel-redirect"), Some("/protected/notes.txt"));
    }
}

#[test]
fn php_zlib_output_is_replaced_by_the_file_not_labelled_as_gzip() {
    // zlib.output_compression encodes PHP's body (even an empty one) and says so: the file that
    // replaces the body must not inherit that Content-Encoding.
    let f = files();
    let data = f.allowed.join("data.bin");
    for pool in [false, true] {
        let php = start("handle", pool, on(&f), &[("zlib.output_compression", "1")]);
        for body in ["", "some output PHP compressed"] {
            let what = format!("pool={pool} body={body:?}");
            let a = ask(
                &php,
                reqwest::Method::GET,
                &[("sendfile", text(&data)), ("body", body)],
                &[("Accept-Encoding", "gzip")],
            );
            assert_eq!(a.status, 200, "{what}");
            assert_eq!(a.header("content-encoding"), None, "{what}");
            assert_eq!(a.body, f.content, "{what}");
        }
    }
}

#[test]
fn send_file_reads_a_relative_path_from_the_directory_php_was_in() {
    // The master of a pool (and, later, a blocking thread) opens the file: the path must mean
    // what it meant in PHP when sendFile() was called.
    let f = files();
    for pool in [false, true] {
        let php = start("respond", pool, json!({}), &[]);
        for (cd, call, expected) in [
            (f.allowed.clone(), "notes.txt", "plain notes\n"),
            (f.allowed.join("sub dir"), "b.txt", "bee\n"),
            (f.allowed.join("sub dir"), "../notes.txt", "plain notes\n"),
        ] {
            let a = get(&php, &[("cd", text(&cd)), ("call", call)]);
            let what = format!("pool={pool} cd {} sendFile({call})", cd.display());
            assert_eq!(
                a.status,
                200,
                "{what}: {}",
                String::from_utf8_lossy(&a.body)
            );
            assert_eq!(a.body, expected.as_bytes(), "{what}");
        }
    }
}

#[test]
fn a_file_answer_with_a_status_that_has_no_content_or_an_interim_one_is_framed_as_such() {
    let f = files();
    let notes = f.allowed.join("notes.txt");
    for (mode, pool) in MODES {
        let php = start(mode, pool, on(&f), &[]);
        let what = format!("{mode} pool={pool}");
        let a = get(&php, &[("sendfile", text(&notes)), ("status", "204")]);
        assert_eq!(a.status, 204, "{what}");
        assert_eq!(
            a.header("content-length"),
            None,
            "{what}: a 204 declares no length"
        );
        assert!(a.body.is_empty(), "{what}");
        let a = get(&php, &[("sendfile", text(&notes)), ("status", "304")]);
        assert_eq!(a.status, 304, "{what}");
        assert!(a.body.is_empty(), "{what}");
        // The connection is still good for the next answer.
        let a = get(&php, &[("sendfile", text(&notes))]);
        assert_eq!(a.body, b"plain notes\n", "{what}");
        if mode == "handle" {
            // respond() refuses a 1xx itself; under handle() it is PHP's final status.
            let a = get(&php, &[("sendfile", text(&notes)), ("status", "103")]);
            assert_eq!(a.status, 500, "{what}");
            assert_eq!(a.code(), "bad_response", "{what}");
            assert!(
                php.wait_for_log("interim status 103"),
                "{what}: {}",
                php.stderr()
            );
        }
    }
}

#[test]
fn a_file_swapped_for_a_link_out_of_the_directory_after_the_check_is_never_sent() {
    // `link.txt -> target.txt` in the allowed directory, and `target.txt` flips between a file
    // and a link to the secret as fast as rename() goes: the file checked is the file sent.
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let f = files();
    std::fs::write(f.allowed.join("target.txt"), "public target\n").unwrap();
    symlink("target.txt", f.allowed.join("swapped.txt")).unwrap();
    let link = f.allowed.join("swapped.txt");
    let uri = "/protected/swapped.txt";
    for (mode, pool) in [("respond", false), ("respond", true)] {
        let php = start(mode, pool, on(&f), &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = std::thread::spawn({
            let (stop, allowed, secret) = (stop.clone(), f.allowed.clone(), f.secret.clone());
            move || {
                let (file, link) = (allowed.join(".file"), allowed.join(".link"));
                let flip = || -> std::io::Result<()> {
                    std::fs::write(&file, "public target\n")?;
                    std::fs::rename(&file, allowed.join("target.txt"))?;
                    symlink(&secret, &link)?;
                    std::fs::rename(&link, allowed.join("target.txt"))
                };
                // An error ends the flipping (the directory goes when an assertion fails).
                while !stop.load(Ordering::Relaxed) && flip().is_ok() {}
            }
        });
        for i in 0..2000 {
            let query = match i % 2 {
                0 => ("sendfile", text(&link)),
                _ => ("accel", uri),
            };
            let a = get(&php, &[query]);
            let what = format!("{mode} pool={pool} {query:?}");
            assert!(
                !String::from_utf8_lossy(&a.body).contains("secret"),
                "{what}: the secret went out"
            );
            match a.status {
                200 => assert_eq!(a.body, b"public target\n", "{what}"),
                403 => assert_eq!(a.code(), "forbidden_path", "{what}"),
                other => panic!("{what}: {other} {}", String::from_utf8_lossy(&a.body)),
            }
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        std::fs::remove_file(f.allowed.join("target.txt")).unwrap();
        std::fs::write(f.allowed.join("target.txt"), "public target\n").unwrap();
        assert_eq!(
            get(&php, &[("sendfile", text(&link))]).body,
            b"public target\n"
        );
    }
}

/// `allowed_dirs` and `accel_map` name `current -> releases/1`; a deploy points `current` at
/// `releases/2` (a new link renamed over it, as Capistrano and Deployer do) without restarting
/// rr: both headers serve the new release's files, named through `current` or by their real
/// path, and no longer the old release's (its real path is outside `current` now).
#[test]
fn a_deploy_that_swaps_the_allowed_directory_link_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    for (release, text) in [("1", "one\n"), ("2", "two\n")] {
        let files = dir.path().join("releases").join(release);
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join("a.txt"), text).unwrap();
    }
    std::fs::write(dir.path().join("releases/2/new.txt"), "only in two\n").unwrap();
    let current = dir.path().join("current");
    symlink("releases/1", &current).unwrap();
    let options = json!({
        "http.sendfile.allowed_dirs": [current],
        "http.sendfile.accel_map": {"/protected/": current},
    });
    for (mode, pool) in MODES {
        symlink("releases/1", dir.path().join("current.next")).unwrap();
        std::fs::rename(dir.path().join("current.next"), &current).unwrap();
        let php = start(mode, pool, options.clone(), &[]);
        let what = format!("{mode} pool={pool}");
        let in_current = current.join("a.txt");
        assert_eq!(
            get(&php, &[("sendfile", text(&in_current))]).body,
            b"one\n",
            "{what}"
        );
        symlink("releases/2", dir.path().join("current.next")).unwrap();
        std::fs::rename(dir.path().join("current.next"), &current).unwrap();
        let new = current.join("new.txt");
        let real = dir
            .path()
            .canonicalize()
            .unwrap()
            .join("releases/2/new.txt");
        for query in [
            ("sendfile", text(&in_current)),
            ("sendfile", text(&new)),
            ("sendfile", text(&real)),
            ("accel", "/protected/new.txt"),
            ("accel", "/protected/a.txt"),
        ] {
            let a = get(&php, &[query]);
            assert_eq!(a.status, 200, "{what} {query:?}");
            assert_ne!(a.body, b"one\n", "{what} {query:?}: the old release");
        }
        let old = dir.path().canonicalize().unwrap().join("releases/1/a.txt");
        assert_eq!(get(&php, &[("sendfile", text(&old))]).status, 403, "{what}");
    }
}

#[test]
fn a_file_dated_before_1970_is_sent_by_every_way_php_names_one() {
    // The HTTP date writer rr uses panics on a time before the epoch: X-Sendfile,
    // X-Accel-Redirect and sendFile() of a file dated 1960 (a restored archive, a WebDAV
    // client's own date) dropped the connection without an answer.
    let f = files();
    let old = f.allowed.join("old.txt");
    std::fs::write(&old, "from the sixties\n").unwrap();
    let file = std::fs::File::options().write(true).open(&old).unwrap();
    let sixties = std::time::UNIX_EPOCH - std::time::Duration::from_secs(315_619_200);
    file.set_modified(sixties).unwrap();
    for (mode, pool) in MODES {
        let php = start(mode, pool, on(&f), &[]);
        let mut ways = vec![
            vec![("sendfile", text(&old))],
            vec![("accel", "/protected/old.txt")],
        ];
        if mode == "respond" {
            ways.push(vec![("cd", text(&f.allowed)), ("call", "old.txt")]);
        }
        for query in ways {
            let what = format!("{mode} pool={pool} {query:?}");
            let a = get(&php, &query);
            assert_eq!(a.status, 200, "{what}");
            assert_eq!(a.body, b"from the sixties\n", "{what}");
            // A date the file never had (1970) would be worse than none.
            assert_eq!(a.header("last-modified"), None, "{what}");
            let mut range = query.clone();
            range.push(("x", "range"));
            let a = ask(
                &php,
                reqwest::Method::GET,
                &range,
                &[("Range", "bytes=5-7")],
            );
            assert_eq!(a.status, 206, "{what}");
            assert_eq!(a.body, b"the", "{what}");
        }
        assert!(!php.stderr().contains("panicked"), "{}", php.stderr());
    }
}

#[test]
fn a_206_from_php_gets_the_part_the_request_asks_for_never_the_whole_file() {
    // An application that handles Range itself (206 and its Content-Range, or 416) and names
    // the file instead of sending the part (a PSR-7 206 with a file body goes to sendFile()):
    // rr dropped the Content-Range and sent the whole file as the 206, so a download resumed
    // at byte 6 wrote the file's first bytes there. nginx answers such an X-Accel-Redirect
    // from the request's Range (206 with the part, 416, or 200).
    let f = files();
    let notes = f.allowed.join("notes.txt");
    for (mode, pool) in MODES {
        let php = start(mode, pool, on(&f), &[]);
        let mut ways = vec![
            vec![("sendfile", text(&notes))],
            vec![("accel", "/protected/notes.txt")],
        ];
        if mode == "respond" {
            ways.push(vec![("cd", text(&f.allowed)), ("call", "notes.txt")]);
        }
        for (way, status) in ways.iter().flat_map(|w| [(w, "206"), (w, "416")]) {
            let mut query = way.clone();
            query.extend([("status", status), ("content_range", "bytes 6-10/12")]);
            let what = format!("{mode} pool={pool} {way:?} {status}");
            let a = ask(&php, reqwest::Method::GET, &query, &[("Range", "bytes=6-")]);
            assert_eq!(a.status, 206, "{what}");
            assert_eq!(a.header("content-range"), Some("bytes 6-11/12"), "{what}");
            assert_eq!(a.body, b"notes\n", "{what}");
            // No Range (or one that cannot be served as a part): the whole file, as a 200.
            for headers in [&[][..], &[("Range", "bytes=0-1,3-4")][..]] {
                let a = ask(&php, reqwest::Method::GET, &query, headers);
                assert_eq!(a.status, 200, "{what} {headers:?}");
                assert_eq!(a.header("content-range"), None, "{what} {headers:?}");
                assert_eq!(a.body, b"plain notes\n", "{what} {headers:?}");
            }
            let a = ask(
                &php,
                reqwest::Method::GET,
                &query,
                &[("Range", "bytes=50-")],
            );
            assert_eq!(a.status, 416, "{what}");
            assert_eq!(a.header("content-range"), Some("bytes */12"), "{what}");
        }
    }
}
