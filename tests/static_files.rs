//! `http.static`: files under the static directory are answered by the server from disk, in
//! single-process mode and by the pool master, without PHP seeing the request; everything else
//! (PHP scripts, missing files, other methods) reaches PHP; traversal is refused.
//! The fixture site is tests/fixtures/static/public/, copied per test so links can be added.
mod common;
use common::{client, fixture, Options, Php};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SECRET: &str = "TOP-SECRET-outside-the-static-dir";

#[derive(Clone, Copy, Debug)]
enum Mode {
    Single,
    Pool,
}

const MODES: [Mode; 2] = [Mode::Single, Mode::Pool];

struct Site {
    php: Php,
    public: PathBuf,
    _dir: tempfile::TempDir,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The fixture site with `http.static` over it (plus `options`), and next to it a secret file
/// that two links inside the site point at.
fn start(mode: Mode, options: Value) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public");
    copy_dir(&fixture("static/public"), &public);
    std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), public.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(dir.path(), public.join("up")).unwrap();
    let mut all = json!({
        "http.static.dir": public.display().to_string(),
        "http.document_root": public.display().to_string(),
    });
    if let Mode::Pool = mode {
        // One worker, so its request count is PHP's whole count.
        all["http.pool.num_workers"] = json!(1);
    }
    for (k, v) in options.as_object().unwrap() {
        all[k] = v.clone();
    }
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_OPTIONS", all.to_string()));
    let php = Php::start_with("static/worker.php", opts);
    Site {
        php,
        public,
        _dir: dir,
    }
}

impl Site {
    /// How many requests PHP has handled (its own /_count excluded).
    fn php_saw(&self) -> u64 {
        let body: Value = client()
            .get(self.php.url("/_count"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        body["seen"].as_u64().unwrap()
    }

    fn file(&self, relative: &str) -> Vec<u8> {
        std::fs::read(self.public.join(relative)).unwrap()
    }

    fn get(&self, path: &str) -> reqwest::blocking::RequestBuilder {
        client().get(self.php.url(path))
    }
}

#[test]
fn assets_are_served_from_disk_with_their_types_without_php() {
    for mode in MODES {
        let site = start(mode, json!({}));
        for (path, file, content_type) in [
            ("/css/app.css", "css/app.css", "text/css; charset=utf-8"),
            (
                "/js/app.mjs",
                "js/app.mjs",
                "text/javascript; charset=utf-8",
            ),
            ("/logo.svg", "logo.svg", "image/svg+xml"),
            (
                "/css//app.css?v=42",
                "css/app.css",
                "text/css; charset=utf-8",
            ),
            ("/css/%61pp.css", "css/app.css", "text/css; charset=utf-8"),
        ] {
            let response = site.get(path).send().unwrap();
            assert_eq!(response.status(), 200, "{mode:?} {path}");
            assert_eq!(response.headers()["content-type"], content_type, "{path}");
            assert!(response.headers().get("x-answered-by").is_none());
            assert!(response.headers().contains_key("last-modified"));
            assert_eq!(response.headers()["accept-ranges"], "bytes");
            assert_eq!(
                response.bytes().unwrap(),
                site.file(file),
                "{mode:?} {path}"
            );
        }
        // HTTP/2 takes the same way.
        let h2 = common::h2_client()
            .get(site.php.url("/logo.svg"))
            .send()
            .unwrap();
        assert_eq!(h2.status(), 200);
        assert_eq!(h2.bytes().unwrap(), site.file("logo.svg"));
        assert_eq!(site.php_saw(), 0, "{mode:?}: PHP saw a static request");
    }
}

#[test]
fn range_head_etag_and_last_modified_validators() {
    for mode in MODES {
        let site = start(mode, json!({"http.static.calculate_etag": true}));
        let css = site.file("css/app.css");

        let part = site
            .get("/css/app.css")
            .header("Range", "bytes=3-9")
            .send()
            .unwrap();
        assert_eq!(part.status(), 206, "{mode:?}");
        assert_eq!(
            part.headers()["content-range"],
            format!("bytes 3-9/{}", css.len()).as_str()
        );
        assert_eq!(part.bytes().unwrap(), css[3..=9]);

        let full = site.get("/css/app.css").send().unwrap();
        let etag = full.headers()["etag"].to_str().unwrap().to_owned();
        let modified = full.headers()["last-modified"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"'), "a strong tag: {etag}");

        let cached = site
            .get("/css/app.css")
            .header("If-None-Match", &etag)
            .send()
            .unwrap();
        assert_eq!(cached.status(), 304, "{mode:?}");
        assert_eq!(cached.headers()["etag"], etag.as_str());
        assert!(cached.bytes().unwrap().is_empty());
        let stale = site
            .get("/css/app.css")
            .header("If-None-Match", "\"not-the-tag\"")
            .send()
            .unwrap();
        assert_eq!(stale.status(), 200);

        let unchanged = site
            .get("/css/app.css")
            .header("If-Modified-Since", &modified)
            .send()
            .unwrap();
        assert_eq!(unchanged.status(), 304, "{mode:?}");
        assert!(unchanged.bytes().unwrap().is_empty());
        let old = site
            .get("/css/app.css")
            .header("If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT")
            .send()
            .unwrap();
        assert_eq!(old.status(), 200);
        assert_eq!(old.bytes().unwrap(), css);

        // A changed file gets a new tag, and the old one no longer matches.
        std::fs::write(site.public.join("css/app.css"), "body{}").unwrap();
        let changed = site
            .get("/css/app.css")
            .header("If-None-Match", &etag)
            .send()
            .unwrap();
        assert_eq!(changed.status(), 200);
        assert_ne!(changed.headers()["etag"], etag.as_str());
        assert_eq!(changed.bytes().unwrap(), "body{}");

        // Over 64 KiB the body streams from the blocking pool instead of memory.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(site.public.join("big.wasm"), &big).unwrap();
        let whole = site.get("/big.wasm").send().unwrap();
        assert_eq!(whole.headers()["content-type"], "application/wasm");
        assert_eq!(whole.bytes().unwrap(), big, "{mode:?}");
        let middle = site
            .get("/big.wasm")
            .header("Range", "bytes=100000-199999")
            .send()
            .unwrap();
        assert_eq!(middle.status(), 206);
        assert_eq!(middle.bytes().unwrap(), big[100_000..200_000]);

        let head = client().head(site.php.url("/logo.svg")).send().unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(
            head.headers()["content-length"],
            site.file("logo.svg").len().to_string().as_str()
        );
        assert_eq!(head.headers()["content-type"], "image/svg+xml");
        assert!(head.bytes().unwrap().is_empty());
        assert_eq!(site.php_saw(), 0, "{mode:?}: PHP saw a static request");
    }
}

#[test]
fn php_scripts_run_and_what_is_not_a_static_file_reaches_php() {
    for mode in MODES {
        let site = start(mode, json!({}));
        let hello = site.get("/hello.php").send().unwrap();
        assert_eq!(hello.status(), 200);
        assert_eq!(hello.headers()["x-answered-by"], "php");
        let text = hello.text().unwrap();
        assert_eq!(
            text, "php ran: 42\n",
            "{mode:?}: the script ran, not sent as source"
        );

        for (method, path) in [
            ("GET", "/missing.css"),
            ("GET", "/css/"),
            ("GET", "/css"),
            ("GET", "/.htaccess"),
            ("GET", "/app/route"),
            ("POST", "/css/app.css"),
            ("DELETE", "/logo.svg"),
        ] {
            let response = client()
                .request(method.parse().unwrap(), site.php.url(path))
                .send()
                .unwrap();
            assert_eq!(response.status(), 404, "{mode:?} {method} {path}");
            assert_eq!(response.headers()["x-answered-by"], "php");
            assert_eq!(
                response.text().unwrap(),
                format!("php 404 {method} {path}\n")
            );
        }
        assert_eq!(site.php_saw(), 8, "{mode:?}");
    }
}

#[test]
fn assets_are_served_while_php_is_busy() {
    for mode in MODES {
        let site = start(mode, json!({}));
        let flag = site._dir.path().join("busy.flag");
        std::fs::write(&flag, "").unwrap();
        let url = site.php.url(&format!("/_busy?flag={}", flag.display()));
        let busy = std::thread::spawn(move || client().get(url).send().unwrap().text().unwrap());
        // PHP (the only worker) is inside /_busy from `.started` on and answers nothing else
        // until the flag goes, so the assets below are answered without it.
        let started = flag.with_extension("flag.started");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !started.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "{mode:?}: /_busy never started"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        for _ in 0..20 {
            let css = site.get("/css/app.css").send().unwrap();
            assert_eq!(css.status(), 200, "{mode:?}");
            assert_eq!(css.bytes().unwrap(), site.file("css/app.css"));
        }
        assert!(!busy.is_finished(), "{mode:?}: PHP was not busy");
        std::fs::remove_file(&flag).unwrap();
        assert_eq!(busy.join().unwrap(), "done\n");
    }
}

/// One raw request line (clients would normalize these paths away).
fn raw_get(php: &Php, path: &str) -> String {
    php.raw(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
}

#[test]
fn traversal_and_links_out_of_the_directory_are_refused_without_leaking() {
    for mode in MODES {
        let site = start(mode, json!({}));
        // Dot segments above '/' are refused before anything else, by the request-target
        // check (400, as nginx does: docs/request-target.md); links out of the directory by
        // http.static (403).
        for (path, status, code) in [
            ("/../secret.txt", 400, "bad_target"),
            ("/css/../../secret.txt", 400, "bad_target"),
            ("/%2e%2e/secret.txt", 400, "bad_target"),
            ("/css/%2E%2E/%2e%2e/secret.txt", 400, "bad_target"),
            ("/css%2f..%2f..%2fsecret.txt", 400, "bad_target"),
            ("/leak.txt", 403, "forbidden_path"),
            ("/up/secret.txt", 403, "forbidden_path"),
            ("/up/public/../secret.txt", 403, "forbidden_path"),
        ] {
            let answer = raw_get(&site.php, path);
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}")),
                "{mode:?} {path}: {answer}"
            );
            assert!(answer.contains(&format!("\"code\":\"{code}\"")), "{answer}");
            assert!(!answer.contains(SECRET), "{mode:?} {path} leaked the file");
        }
        // The same name inside the directory is served.
        std::fs::write(site.public.join("secret.txt"), "public copy").unwrap();
        assert_eq!(
            site.get("/secret.txt").send().unwrap().text().unwrap(),
            "public copy"
        );
        assert_eq!(site.php_saw(), 0, "{mode:?}");
    }
}

#[test]
fn allow_forbid_and_extra_response_headers() {
    for mode in MODES {
        let site = start(
            mode,
            json!({
                "http.static.forbid": [".php", ".MD"],
                "http.static.response": {"Cache-Control": "no-cache", "X-Static": "rr"},
                "http.static.cache_control": {".css, .mjs": "public, max-age=31536000, immutable"},
            }),
        );
        let notes = site.get("/notes.md").send().unwrap();
        assert_eq!(
            notes.status(),
            404,
            "{mode:?}: a forbidden extension goes to PHP"
        );
        assert_eq!(notes.text().unwrap(), "php 404 GET /notes.md\n");

        let css = site.get("/css/app.css").send().unwrap();
        assert_eq!(css.status(), 200);
        assert_eq!(css.headers()["x-static"], "rr");
        assert_eq!(
            css.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let svg = site.get("/logo.svg").send().unwrap();
        assert_eq!(svg.headers()["cache-control"], "no-cache");
        assert_eq!(svg.headers()["x-static"], "rr");
        assert!(!svg.headers().contains_key("etag"), "calculate_etag is off");
        // Without .htaccess in the list it is a file like any other.
        let htaccess = site.get("/.htaccess").send().unwrap();
        assert_eq!(htaccess.status(), 200);
        assert_eq!(site.php_saw(), 1, "{mode:?}");

        let site = start(mode, json!({"http.static.allow": [".css", ".php"]}));
        assert_eq!(site.get("/css/app.css").send().unwrap().status(), 200);
        let svg = site.get("/logo.svg").send().unwrap();
        assert_eq!(svg.status(), 404, "{mode:?}: not in allow goes to PHP");
        assert_eq!(svg.headers()["x-answered-by"], "php");
        // .php is in allow and in the default forbid: forbidden wins, PHP runs it.
        assert_eq!(
            site.get("/hello.php").send().unwrap().text().unwrap(),
            "php ran: 42\n"
        );
        assert_eq!(site.php_saw(), 2, "{mode:?}");
    }
}

fn config_error(options: Value) -> String {
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_OPTIONS", options.to_string()));
    let (status, stderr, stdout) =
        Php::run_to_end("config_error.php", opts, Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{stdout}{stderr}");
    stdout
}

#[test]
fn a_bad_static_section_fails_at_start_naming_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.css");
    std::fs::write(&file, "x").unwrap();
    let d = dir.path().display().to_string();
    for (options, key, detail) in [
        (
            json!({"http.static.forbid": [".php"]}),
            "http.static.dir",
            "is missing",
        ),
        (
            json!({"http.static.dir": "/no/such/rr-static"}),
            "http.static.dir",
            "/no/such/rr-static",
        ),
        (
            json!({"http.static.dir": file.display().to_string()}),
            "http.static.dir",
            "not a directory",
        ),
        (
            json!({"http.static.dir": d, "http.static.forbid": 5}),
            "http.static.forbid",
            "5",
        ),
        (
            json!({"http.static.dir": d, "http.static.response": {"Bad Name": "x"}}),
            "http.static.response.Bad Name",
            "header name",
        ),
    ] {
        let out = config_error(options);
        assert!(out.contains("ConfigException"), "{out}");
        assert!(out.contains("RR\\Worker option"), "{out}");
        assert!(out.contains(&format!("'{key}'")), "{key}: {out}");
        assert!(out.contains(detail), "{detail}: {out}");
    }
}

#[test]
fn precompressed_siblings_are_sent_as_they_are_and_never_compressed_again() {
    use std::io::{Read, Write};
    let css: String = (0..200).map(|i| format!(".c{i}{{color:red}}\n")).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(css.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    for mode in MODES {
        let site = start(mode, json!({"http.static.precompressed": ["br", "gzip"]}));
        let original = site.public.join("css/big.css");
        std::fs::write(&original, &css).unwrap();
        std::fs::write(site.public.join("css/big.css.gz"), &gz).unwrap();
        let answer = |accept: &str| {
            let response = site
                .get("/css/big.css")
                .header("Accept-Encoding", accept)
                .send()
                .unwrap();
            let headers = response.headers().clone();
            (headers, response.bytes().unwrap().to_vec())
        };
        let (headers, body) = answer("gzip, br");
        assert_eq!(headers["content-encoding"], "gzip", "{mode:?}: no .br here");
        assert_eq!(body, gz, "{mode:?}: the sibling's bytes, not rr's");
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded, css, "{mode:?}: decoded once");
        assert_eq!(headers["content-type"], "text/css; charset=utf-8");
        assert_eq!(headers["vary"], "Accept-Encoding");
        // No .zst: rr's own compression does the work, from the original.
        let (headers, body) = answer("zstd");
        assert_eq!(headers["content-encoding"], "zstd", "{mode:?}");
        assert_eq!(zstd::decode_all(&body[..]).unwrap(), css.as_bytes());
        let (headers, body) = answer("identity");
        assert!(headers.get("content-encoding").is_none(), "{mode:?}");
        assert_eq!(body, css.as_bytes());
        assert_eq!(site.php_saw(), 0, "{mode:?}");
    }
}

#[test]
fn a_precompressed_sibling_that_links_to_php_source_or_out_of_the_directory_is_not_sent() {
    for mode in MODES {
        let site = start(mode, json!({"http.static.precompressed": ["br", "gzip"]}));
        let css = site.public.join("css/app.css");
        // The links' targets are newer than the original, so only the link rule can skip them.
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&css)
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::os::unix::fs::symlink("../hello.php", site.public.join("css/app.css.gz")).unwrap();
        std::os::unix::fs::symlink("../../secret.txt", site.public.join("css/app.css.br")).unwrap();
        let response = site
            .get("/css/app.css")
            .header("Accept-Encoding", "br, gzip")
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "{mode:?}");
        assert!(
            response.headers().get("content-encoding").is_none(),
            "{mode:?}: {:?}",
            response.headers()
        );
        let body = response.bytes().unwrap();
        assert_eq!(body, site.file("css/app.css"), "{mode:?}: the original");
        assert!(!body.windows(5).any(|w| w == b"<?php"), "{mode:?}");
        // A sibling link that stays among servable files is still used.
        std::fs::remove_file(site.public.join("css/app.css.gz")).unwrap();
        std::fs::write(site.public.join("css/build.css.gz"), b"gzipped bytes").unwrap();
        std::os::unix::fs::symlink("build.css.gz", site.public.join("css/app.css.gz")).unwrap();
        let response = site
            .get("/css/app.css")
            .header("Accept-Encoding", "gzip")
            .send()
            .unwrap();
        assert_eq!(response.headers()["content-encoding"], "gzip", "{mode:?}");
        assert_eq!(response.bytes().unwrap(), "gzipped bytes");
        assert_eq!(site.php_saw(), 0, "{mode:?}");
    }
}

#[test]
fn a_file_swapped_for_a_link_out_of_the_directory_while_it_is_looked_up_is_never_sent() {
    // `link.css -> target.css`, and `target.css` flips between a file and a link to the
    // secret as fast as rename() goes: whichever the look-up sees when, the secret never goes
    // out (the open must be the check, not follow it).
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    for mode in MODES {
        let site = start(mode, json!({}));
        let public = site.public.clone();
        std::fs::write(public.join("target.css"), "public target\n").unwrap();
        std::os::unix::fs::symlink("target.css", public.join("link.css")).unwrap();
        let secret = site._dir.path().join("secret.txt");
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let (file, link) = (public.join(".file"), public.join(".link"));
                let flip = || -> std::io::Result<()> {
                    std::fs::write(&file, "public target\n")?;
                    std::fs::rename(&file, public.join("target.css"))?;
                    std::os::unix::fs::symlink(&secret, &link)?;
                    std::fs::rename(&link, public.join("target.css"))
                };
                // An error ends the flipping (the site goes away when an assertion fails).
                while !stop.load(Ordering::Relaxed) && flip().is_ok() {}
            }
        });
        let http = client();
        let mut served = 0;
        for _ in 0..10_000 {
            let response = http.get(site.php.url("/link.css")).send().unwrap();
            let status = response.status().as_u16();
            let body = response.text().unwrap();
            assert!(!body.contains(SECRET), "{mode:?}: the secret went out");
            match status {
                200 => {
                    assert_eq!(body, "public target\n", "{mode:?}");
                    served += 1;
                }
                403 => assert!(body.contains("forbidden_path"), "{mode:?}: {body}"),
                404 => assert!(body.starts_with("php 404"), "{mode:?}: {body}"),
                other => panic!("{mode:?}: {other} {body}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        std::fs::remove_file(site.public.join("target.css")).unwrap();
        std::fs::write(site.public.join("target.css"), "public target\n").unwrap();
        let settled = site.get("/link.css").send().unwrap().text().unwrap();
        assert_eq!(
            settled, "public target\n",
            "{mode:?}: served at rest ({served} during)"
        );
    }
}

#[test]
fn a_range_on_an_empty_file_gets_the_empty_file_not_416() {
    // Players and download tools send `Range: bytes=0-` before they know the size; nginx and
    // Go's file server answer an empty file with 200 rather than "no byte of it exists".
    for mode in MODES {
        let site = start(mode, json!({}));
        std::fs::write(site.public.join("empty.txt"), "").unwrap();
        for range in ["bytes=0-", "bytes=-10", "bytes=0-0"] {
            let response = site
                .get("/empty.txt")
                .header("Range", range)
                .send()
                .unwrap();
            assert_eq!(response.status(), 200, "{mode:?} {range}");
            assert!(!response.headers().contains_key("content-range"));
            assert_eq!(response.headers()["content-length"], "0");
            assert!(response.bytes().unwrap().is_empty());
        }
        // A file with bytes still answers an out-of-range request with 416.
        let past = site
            .get("/css/app.css")
            .header("Range", "bytes=100000-")
            .send()
            .unwrap();
        assert_eq!(past.status(), 416, "{mode:?}");
        assert_eq!(past.headers()["content-type"], "application/json");
        let json: serde_json::Value = past.json().unwrap();
        assert_eq!(json["code"], "range_not_satisfiable", "{mode:?}");
        assert_eq!(site.php_saw(), 0, "{mode:?}");
    }
}

#[test]
fn a_deploy_that_swaps_the_directory_link_is_served_from_the_new_release() {
    // `dir` is `current -> releases/1`; a deploy points `current` at `releases/2` (rename of
    // a new link over it, as Capistrano and Deployer do) without restarting rr.
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        for (release, css) in [("1", "one"), ("2", "two")] {
            let public = dir.path().join("releases").join(release);
            std::fs::create_dir_all(&public).unwrap();
            std::fs::write(public.join("app.css"), css).unwrap();
        }
        std::fs::write(dir.path().join("releases/2/new.css"), "only in two").unwrap();
        let current = dir.path().join("current");
        std::os::unix::fs::symlink("releases/1", &current).unwrap();
        let site = start(
            mode,
            json!({"http.static.dir": current.display().to_string()}),
        );
        assert_eq!(site.get("/app.css").send().unwrap().text().unwrap(), "one");
        let next = dir.path().join("current.next");
        std::os::unix::fs::symlink("releases/2", &next).unwrap();
        std::fs::rename(&next, &current).unwrap();
        assert_eq!(
            site.get("/app.css").send().unwrap().text().unwrap(),
            "two",
            "{mode:?}: the old release's file"
        );
        let new = site.get("/new.css").send().unwrap();
        assert_eq!(new.status(), 200, "{mode:?}");
        assert_eq!(new.text().unwrap(), "only in two");
        assert_eq!(site.php_saw(), 0, "{mode:?}");
    }
}

/// Sets a file's modification time to `secs` from the epoch (negative: before 1970).
fn set_mtime(path: &Path, secs: i64) {
    let at = if secs < 0 {
        std::time::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    } else {
        std::time::UNIX_EPOCH + Duration::from_secs(secs as u64)
    };
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(at).unwrap();
}

#[test]
fn a_file_dated_before_1970_is_served_without_a_date_it_cannot_carry() {
    // An archive, a restored backup or a WebDAV client may leave a file dated 1960. The HTTP
    // date writer rr uses panics on times before the epoch: the connection was dropped without
    // an answer. nginx sends such a file (with its date turned into 1970).
    for mode in MODES {
        let site = start(mode, json!({}));
        let old = site.public.join("old.txt");
        std::fs::write(&old, "from the sixties\n").unwrap();
        set_mtime(&old, -315_619_200);
        for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let response = client()
                .request(method.clone(), site.php.url("/old.txt"))
                .send()
                .unwrap_or_else(|e| panic!("{mode:?} {method}: no answer: {e}"));
            assert_eq!(response.status(), 200, "{mode:?} {method}");
            // A Last-Modified of 1970 would be a date the file never had: none is sent.
            assert!(
                !response.headers().contains_key("last-modified"),
                "{mode:?} {method}: {:?}",
                response.headers()
            );
            assert_eq!(response.headers()["content-length"], "17");
            let body = response.text().unwrap();
            let expected = if method == reqwest::Method::GET {
                "from the sixties\n"
            } else {
                ""
            };
            assert_eq!(body, expected, "{mode:?} {method}");
        }
        let part = site.get("/old.txt").header("Range", "bytes=5-7").send();
        let part = part.unwrap();
        assert_eq!(part.status(), 206, "{mode:?}");
        assert_eq!(part.text().unwrap(), "the");
        assert!(
            !site.php.stderr().contains("panicked"),
            "{mode:?}: {}",
            site.php.stderr()
        );
        assert_eq!(site.php_saw(), 0, "{mode:?}");
    }
}

#[test]
fn a_strong_etag_follows_a_new_version_that_kept_the_size_and_the_date() {
    // Reproducible builds and archives give every file one fixed date, so a fix that keeps the
    // length (`#fff` → `#000`) arrives with the old size and date. The strong tag is a hash of
    // the content, but rr reused the one computed for the old version, matched by path, size
    // and date: clients holding the old file got 304 and kept it, and an If-Range resume got
    // bytes of the new version spliced into the old one.
    for mode in MODES {
        let site = start(mode, json!({"http.static.calculate_etag": true}));
        let css = site.public.join("fixed.css");
        let tag = |site: &Site| {
            let response = site.get("/fixed.css").send().unwrap();
            assert_eq!(response.status(), 200, "{mode:?}");
            let tag = response.headers()["etag"].to_str().unwrap().to_owned();
            (tag, response.text().unwrap())
        };
        // Replaced by a new file (a rename, as deploy tools do), then rewritten in place.
        let versions = ["a{color:#fff}\n", "a{color:#000}\n", "a{color:#f00}\n"];
        std::fs::write(&css, versions[0]).unwrap();
        set_mtime(&css, 315_532_800);
        let (old_tag, body) = tag(&site);
        assert_eq!(body, versions[0]);
        let next = site.public.join("fixed.css.new");
        std::fs::write(&next, versions[1]).unwrap();
        set_mtime(&next, 315_532_800);
        std::fs::rename(&next, &css).unwrap();
        let (renamed_tag, body) = tag(&site);
        assert_eq!(body, versions[1], "{mode:?}");
        assert_ne!(renamed_tag, old_tag, "{mode:?}: the old version's tag");
        std::fs::write(&css, versions[2]).unwrap();
        set_mtime(&css, 315_532_800);
        let (rewritten_tag, body) = tag(&site);
        assert_eq!(body, versions[2], "{mode:?}");
        assert_ne!(
            rewritten_tag, renamed_tag,
            "{mode:?}: the previous version's tag"
        );
        // The client holding the first version gets the new one, not a 304.
        for held in [&old_tag, &renamed_tag] {
            let response = site
                .get("/fixed.css")
                .header("If-None-Match", held.as_str())
                .send()
                .unwrap();
            assert_eq!(response.status(), 200, "{mode:?} {held}");
            assert_eq!(response.text().unwrap(), versions[2]);
        }
        // A resume that names the old version's tag gets the whole new file.
        let response = site
            .get("/fixed.css")
            .header("If-Range", old_tag.as_str())
            .header("Range", "bytes=9-")
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "{mode:?}");
        assert_eq!(response.text().unwrap(), versions[2]);
    }
}

/// Bytes the process has read through system calls (`rchar` in /proc/PID/io).
fn bytes_read(pid: i32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    let line = io.lines().find(|l| l.starts_with("rchar:")).unwrap();
    line["rchar:".len()..].trim().parse().unwrap()
}

#[test]
fn requests_that_arrive_while_a_strong_etag_is_computed_wait_for_it_instead_of_reading_again() {
    // A strong tag reads the whole file. A video player opens several ranges of a large file
    // at once: each request that came before the tag was known read the whole file again, so
    // N requests to a 1 GiB file read N GiB, each holding a blocking thread (512 at most, shared
    // with every upload and file stream).
    const GIB: u64 = 1 << 30;
    const CLIENTS: usize = 6;
    for mode in MODES {
        let site = start(mode, json!({"http.static.calculate_etag": true}));
        let big = std::fs::File::create(site.public.join("film.mp4")).unwrap();
        big.set_len(GIB).unwrap();
        let before = bytes_read(site.php.pid());
        let start = std::sync::Barrier::new(CLIENTS);
        let tags: Vec<String> = std::thread::scope(|scope| {
            let clients: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    scope.spawn(|| {
                        let request = client().head(site.php.url("/film.mp4"));
                        start.wait();
                        let response = request.send().unwrap();
                        assert_eq!(response.status(), 200, "{mode:?}");
                        response.headers()["etag"].to_str().unwrap().to_owned()
                    })
                })
                .collect();
            clients.into_iter().map(|c| c.join().unwrap()).collect()
        });
        assert!(tags.iter().all(|t| t == &tags[0]), "{mode:?}: {tags:?}");
        let read = bytes_read(site.php.pid()) - before;
        assert!(
            read < 2 * GIB,
            "{mode:?}: {CLIENTS} requests read the file {:.1} times",
            read as f64 / GIB as f64
        );
    }
}

#[test]
fn if_match_and_if_unmodified_since_that_fail_get_412_not_the_changed_file() {
    // A download resumed with `Range` and `If-Unmodified-Since` (or `If-Match`) must not get
    // bytes of a file that changed since: rr ignored both and sent the 206, which the client
    // appends to the old part. nginx answers 412, as RFC 9110 (13.1.1, 13.1.4) asks.
    for mode in MODES {
        let site = start(mode, json!({}));
        let old = "Thu, 01 Jan 1970 00:00:00 GMT";
        let later = "Fri, 31 Dec 9999 23:59:59 GMT";
        for (name, value, status) in [
            ("If-Match", "\"nope\"", 412),
            ("If-Match", "*", 206),
            ("If-Unmodified-Since", old, 412),
            ("If-Unmodified-Since", later, 206),
            // RFC 9110 13.1.4: a date that is not one is ignored.
            ("If-Unmodified-Since", "yesterday", 206),
        ] {
            let response = site
                .get("/css/app.css")
                .header("Range", "bytes=0-3")
                .header(name, value)
                .send()
                .unwrap();
            assert_eq!(response.status(), status, "{mode:?} {name}: {value}");
            if status == 412 {
                // No byte of the file: rr's own JSON error.
                assert_eq!(response.headers()["content-type"], "application/json");
                let json: serde_json::Value = response.json().unwrap();
                assert_eq!(json["code"], "precondition_failed", "{mode:?}");
            }
        }
        assert_eq!(site.php_saw(), 0, "{mode:?}");
    }
}
