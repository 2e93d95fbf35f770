//! Superglobal mode: php-fpm-era scripts (tests/fixtures/fpm/) run under `RR\Worker::handle()`
//! and answer what nginx + php-fpm answered for the same requests (recorded in
//! tests/fixtures/fpm/expected.json by tests/fixtures/fpm/record.py).
mod common;
use common::{client, fixture, wait_until, Options, Php};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

/// The php.ini settings of Debian's php-fpm that change what these scripts answer.
const FPM_INI: [(&str, &str); 9] = [
    ("extension", "mbstring"),
    ("error_reporting", "E_ALL & ~E_DEPRECATED & ~E_STRICT"),
    ("output_buffering", "4096"),
    ("display_errors", "0"),
    ("session.sid_length", "26"),
    ("session.sid_bits_per_character", "5"),
    ("request_order", "GP"),
    ("variables_order", "GPCS"),
    ("max_execution_time", "30"),
];
const IGNORED: [&str; 6] = [
    "date",
    "server",
    "connection",
    "transfer-encoding",
    "content-length",
    "keep-alive",
];

fn worker(extra_ini: &[(&'static str, &str)]) -> Php {
    let mut ini: Vec<(&str, String)> = vec![("rr.address", "127.0.0.1:0".into())];
    ini.extend(FPM_INI.iter().map(|(k, v)| (*k, v.to_string())));
    ini.extend(extra_ini.iter().map(|(k, v)| (*k, v.to_string())));
    let root = fixture("fpm");
    let options = serde_json::json!({
        "http.document_root": root.display().to_string(),
        "http.script_name": "/server.php",
        // The recording's nginx had gzip off: no Vary to compare against.
        "http.compression.enabled": false,
    });
    Php::start_with(
        "fpm_worker.php",
        Options {
            ini,
            env: vec![("RR_TEST_OPTIONS", options.to_string())],
            ..Options::default()
        },
    )
}

struct Answer {
    status: u16,
    headers: BTreeMap<String, Vec<String>>,
    body: String,
}

fn session_id(answer: &Answer) -> Option<String> {
    let cookie = answer.headers.get("set-cookie")?.first()?;
    let rest = cookie.strip_prefix("PHPSESSID=")?;
    Some(rest.split(';').next()?.to_string())
}

/// Redirects are part of the answer under test, so they are not followed.
fn no_redirects() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn send(php: &Php, case: &Value, sessions: &BTreeMap<String, String>) -> Answer {
    let method = reqwest::Method::from_bytes(case["method"].as_str().unwrap().as_bytes()).unwrap();
    let mut req = no_redirects().request(method, php.url(case["path"].as_str().unwrap()));
    for h in case["headers"].as_array().unwrap() {
        req = req.header(h[0].as_str().unwrap(), h[1].as_str().unwrap());
    }
    if let Some(from) = case["session_from"].as_str() {
        req = req.header("Cookie", format!("PHPSESSID={}", sessions[from]));
    }
    if let Some(body) = case["body"].as_str() {
        // The recorder sends the JSON string as latin-1 bytes.
        req = req.body(body.chars().map(|c| c as u8).collect::<Vec<u8>>());
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in resp.headers() {
        if IGNORED.contains(&name.as_str()) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers.entry(name.to_string()).or_default().push(value);
    }
    let body = resp.bytes().unwrap().iter().map(|&b| b as char).collect();
    Answer {
        status,
        headers,
        body,
    }
}

fn normalized(mut headers: BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    if let Some(cookies) = headers.get_mut("set-cookie") {
        for c in cookies.iter_mut() {
            if let Some(rest) = c.strip_prefix("PHPSESSID=") {
                let attrs = rest.split_once(';').map(|(_, a)| a).unwrap_or("");
                *c = format!("PHPSESSID=<id>;{attrs}");
                c.truncate(c.trim_end_matches(';').len());
            }
        }
    }
    headers
}

/// Sends the cases of cases.json whose name starts with `prefix` (in order, to one worker) and
/// compares each answer with what php-fpm answered.
fn answers_as_php_fpm(prefix: &str) {
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("fpm/cases.json")).unwrap()).unwrap();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("fpm/expected.json")).unwrap())
            .unwrap();
    let php = worker(&[]);
    let mut sessions = BTreeMap::new();
    let mut compared = 0;
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        if !name.starts_with(prefix) {
            continue;
        }
        compared += 1;
        let want = &expected[name];
        let got = send(&php, case, &sessions);
        if let Some(id) = session_id(&got) {
            sessions.insert(name.to_string(), id);
        }
        assert_eq!(
            got.status,
            want["status"].as_u64().unwrap() as u16,
            "{name}"
        );
        let want_headers: BTreeMap<String, Vec<String>> =
            serde_json::from_value(want["headers"].clone()).unwrap();
        assert_eq!(normalized(got.headers), want_headers, "{name}: headers");
        assert_eq!(got.body, want["body"].as_str().unwrap(), "{name}: body");
    }
    assert!(compared > 0, "no case named {prefix}*");
}

#[test]
fn every_fixture_answers_what_php_fpm_answered() {
    answers_as_php_fpm("");
}

/// ini_set() and the other setters in one request, then php.ini's values in the next.
#[test]
fn ini_settings_a_request_changed_are_gone_in_the_next_as_under_php_fpm() {
    answers_as_php_fpm("settings");
}

/// set_exception_handler(): php-fpm answers with the output, status and headers so far.
#[test]
fn an_exception_handler_answers_as_under_php_fpm() {
    answers_as_php_fpm("handled");
}

/// header_register_callback(): called once before the head, header() and header_remove() in it
/// count, and never in a later request.
#[test]
fn header_register_callback_runs_once_before_the_head_as_under_php_fpm() {
    answers_as_php_fpm("header_callback");
}

/// An object of one request caught in a reference cycle is destroyed at that request's end, as
/// php-fpm destroys every object then: its destructor's cookie, header and output are its own
/// user's. Left to the cycle collector, they went into whichever later request it ran in.
#[test]
fn a_destructor_acts_in_its_own_request_as_under_php_fpm() {
    answers_as_php_fpm("cycle");
}

/// `rr.cycles=between`: no collection while a request runs, so an earlier request's garbage
/// is never destroyed during a later one; between requests, once PHP's collector would have
/// run (its 10,000 possible roots), all of it is.
#[test]
fn with_rr_cycles_between_a_destructor_never_acts_in_a_later_request() {
    let php = worker(&[("rr.cycles", "between")]);
    let get = |q: &str| {
        client()
            .get(php.url(&format!("/cycle.php{q}")))
            .send()
            .unwrap()
    };
    let ann = get("?u=ann");
    assert!(ann.headers().get("set-cookie").is_none());
    assert_eq!(ann.text().unwrap(), "page for ann\n");
    // Cycles past the threshold: none is collected while this request runs.
    let many = get("?many=20000");
    assert!(many.headers().get("x-remembered").is_none());
    assert_eq!(many.text().unwrap(), "page for a visitor\n");
    // They were between the two requests: ann's destructor wrote to the worker's stdout.
    wait_until(
        "ann's destructor between requests",
        Duration::from_secs(60),
        || php.stdout().contains("remembered ann"),
    );
    let after = get("");
    assert!(after.headers().get("set-cookie").is_none());
    assert!(after.headers().get("x-remembered").is_none());
    assert_eq!(after.text().unwrap(), "page for a visitor\n");
}

#[test]
fn a_bad_rr_cycles_value_is_an_exception_naming_it() {
    let ext = std::env::var("RR_EXT").expect("RR_EXT: the built rr.so");
    let code = r#"$w = new RR\Worker();
        try { $w->handle(fn () => null); echo "no error\n"; }
        catch (RR\Exception $e) { echo $e->getMessage(), "\n"; }"#;
    let out = std::process::Command::new("php")
        .args(["-n", "-d", &format!("extension={ext}")])
        .args([
            "-d",
            "rr.address=127.0.0.1:0",
            "-d",
            "rr.cycles=sometimes",
            "-r",
            code,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(r#"rr.cycles = "sometimes": expected request (the default) or between"#),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn state(php: &Php, query: &str) -> Value {
    let resp = client()
        .post(php.url(&format!("/state.php{query}")))
        .header("Cookie", "c=1")
        .form(&[("p", "1")])
        .send()
        .unwrap();
    serde_json::from_slice(&resp.bytes().unwrap()).unwrap()
}

/// A request that changes everything it can (state.php?dirty=1), then what the next one sees.
fn after_dirty_request() -> (Php, reqwest::blocking::Response, Value) {
    let php = worker(&[]);
    let dirty = client()
        .get(php.url("/state.php?dirty=1&g=1"))
        .header("Cookie", "c=1")
        .send()
        .unwrap();
    let next = client().get(php.url("/state.php")).send().unwrap();
    assert_eq!(next.status(), 200);
    let seen = serde_json::from_slice(&next.bytes().unwrap()).unwrap();
    (php, dirty, seen)
}

#[test]
fn superglobals_are_the_requests_own() {
    let (php, _, v) = after_dirty_request();
    // The dirty request injected a key into every superglobal.
    for name in ["get", "post", "cookie", "files", "request"] {
        assert_eq!(v[name], serde_json::json!([]), "{name}");
    }
    assert_eq!(v["server_injected"], Value::Null);
    let own = state(&php, "?g=2");
    assert_eq!(own["get"], serde_json::json!({"g": "2"}));
    assert_eq!(own["post"], serde_json::json!({"p": "1"}));
    assert_eq!(own["cookie"], serde_json::json!({"c": "1"}));
    assert_eq!(own["request"], serde_json::json!({"g": "2", "p": "1"}));
}

#[test]
fn headers_and_status_are_reset() {
    let (php, dirty, v) = after_dirty_request();
    assert_eq!(dirty.status(), 418);
    assert_eq!(dirty.headers()["x-leak"], "1");
    let next = client().get(php.url("/state.php")).send().unwrap();
    assert_eq!(next.status(), 200);
    assert!(next.headers().get("x-leak").is_none());
    assert_eq!(
        v["headers_list"],
        serde_json::json!(["Content-Type: application/json"])
    );
    assert_eq!(v["code"], 200);
}

#[test]
fn the_output_layer_forgets_that_the_last_request_sent_output() {
    let (_, dirty, v) = after_dirty_request();
    assert!(dirty.text().unwrap().ends_with("dirty\n"));
    // php-fpm starts every request with nothing sent: ini settings that must be changed before
    // output (zlib.output_compression) can be changed.
    assert_eq!(v["zlib_settable"], true);
}

#[test]
fn rr_sapi_name_is_what_php_sapi_name_reports() {
    let php = worker(&[("rr.sapi_name", "fpm-fcgi")]);
    let v = state(&php, "");
    assert_eq!(v["sapi_name"], "fpm-fcgi");
    // The constant was fixed before any extension started.
    assert_eq!(v["php_sapi"], "cli");
    let v = state(&php, "");
    assert_eq!(v["sapi_name"], "fpm-fcgi");
}

#[test]
fn without_rr_sapi_name_the_cli_stays_cli() {
    let php = worker(&[]);
    assert_eq!(state(&php, "")["sapi_name"], "cli");
}

#[test]
fn output_buffers_are_back_to_php_fpms_one_default_buffer() {
    let (_, dirty, v) = after_dirty_request();
    // The dirty request left two buffers open: their content is part of its answer.
    assert!(dirty.text().unwrap().ends_with("dirty\n"));
    assert_eq!(v["ob_level"], 1, "output_buffering=4096 opens one");
}

/// php-fpm starts every request with PHP's stat cache empty; a worker kept the last file the
/// previous request looked at, and a request asking about that file after it changed got the
/// old size.
#[test]
fn the_stat_cache_starts_empty_at_each_request() {
    let php = Php::start_with(
        "stat_cache.php",
        Options {
            ini: vec![("rr.address", "127.0.0.1:0".into())],
            ..Options::default()
        },
    );
    let dir = std::env::temp_dir().join(format!("rr-stat-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("f.txt");
    std::fs::write(&file, "ab").unwrap();
    let size = || {
        client()
            .get(php.url("/"))
            .query(&[("f", file.to_str().unwrap())])
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    assert_eq!(size(), "2");
    std::fs::write(&file, "abcde").unwrap();
    assert_eq!(
        size(),
        "5",
        "the previous request's stat of the file was served"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ignore_user_abort_and_the_time_limit_are_reset() {
    let (_, _, v) = after_dirty_request();
    assert_eq!(v["ignore_user_abort"], 0);
    assert_eq!(
        v["max_execution_time"], "30",
        "set_time_limit(7) was undone"
    );
}

#[test]
fn a_session_never_reaches_the_next_request_and_is_written_at_its_end() {
    let (php, dirty, v) = after_dirty_request();
    let cookie = dirty.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("PHPSESSID="), "{cookie}");
    assert_eq!(v["session_set"], false);
    assert_eq!(v["session_id"], "");
    assert_eq!(v["session_status"], 1, "PHP_SESSION_NONE");
    // The dirty request's data was written when it ended: its own cookie finds it.
    let id = cookie
        .trim_start_matches("PHPSESSID=")
        .split(';')
        .next()
        .unwrap();
    let resp = client()
        .get(php.url("/session.php"))
        .header("Cookie", format!("PHPSESSID={id}"))
        .send()
        .unwrap();
    let body = resp.text().unwrap();
    assert!(body.starts_with("visits=42\nuser=dirty\n"), "{body}");
    let check = client()
        .get(php.url("/state.php"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!check.contains(id), "{check}");
}

#[test]
fn shutdown_functions_run_at_their_request_end_only() {
    let mut php = worker(&[]);
    let first = client().get(php.url("/exit.php")).send().unwrap();
    assert!(first.text().unwrap().ends_with("shutdown function ran\n"));
    let next = client().get(php.url("/notfound.php")).send().unwrap();
    assert!(!next.text().unwrap().contains("shutdown"));
    php.signal(libc::SIGTERM);
    assert_eq!(php.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let out = php.stdout();
    assert!(
        out.contains("handle() returned false after 2 requests"),
        "{out}"
    );
    // The worker's own shutdown function runs once, at the end; the request's never again.
    assert_eq!(
        out.matches("worker shutdown function ran").count(),
        1,
        "{out}"
    );
    assert!(!out.contains("\nshutdown function ran"), "{out}");
}

fn stats(php: &Php) -> Value {
    serde_json::from_slice(
        &client()
            .get(php.url("/_stats"))
            .send()
            .unwrap()
            .bytes()
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn ten_thousand_exits_keep_one_process_and_no_memory() {
    let php = worker(&[]);
    let c = client();
    let exit = |n: usize| {
        for _ in 0..n {
            let resp = c.get(php.url("/bye.php")).send().unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["x-bye"], "1");
            let body = resp.text().unwrap();
            assert_eq!(body, "before exit\nshutdown function ran\n");
        }
    };
    exit(500);
    let before = stats(&php);
    exit(10_000);
    let after = stats(&php);
    assert_eq!(before["pid"], after["pid"]);
    assert_eq!(after["pid"].as_i64().unwrap(), i64::from(php.pid()));
    assert_eq!(
        after["served"].as_i64().unwrap() - before["served"].as_i64().unwrap(),
        10_001
    );
    // Even 4 bytes kept per request would be 40 000 bytes here.
    let grown = after["memory"].as_i64().unwrap() - before["memory"].as_i64().unwrap();
    assert!(
        grown < 4096,
        "memory grew by {grown} bytes over 10 000 exit()s"
    );
}

#[test]
fn an_uncaught_exception_is_a_logged_500_and_the_worker_goes_on() {
    let php = worker(&[]);
    let resp = client().get(php.url("/throw.php")).send().unwrap();
    assert_eq!(resp.status(), 500);
    assert!(!resp.text().unwrap().contains("partial output"));
    assert!(php.wait_for_log("RuntimeException"));
    assert!(php.stderr().contains("broken page"), "{}", php.stderr());
    let next = client().get(php.url("/notfound.php")).send().unwrap();
    assert_eq!(next.status(), 404);
}

#[test]
fn an_uncaught_exception_after_flush_cuts_the_answer_off_and_the_worker_goes_on() {
    let php = worker(&[]);
    for c in [client(), common::h2_client()] {
        // Ending the answer (as php-fpm does) would pass the flushed part for the whole page.
        let cut = c
            .get(php.url("/throw_midway.php"))
            .send()
            .and_then(|a| a.bytes());
        assert!(cut.is_err(), "{cut:?}");
    }
    assert!(php.wait_for_log("broken half-way"));
    let next = client().get(php.url("/notfound.php")).send().unwrap();
    assert_eq!(next.status(), 404);
}

#[test]
fn a_fatal_error_answers_500_and_ends_the_worker_cleanly() {
    let mut php = worker(&[]);
    let resp = client().get(php.url("/fatal.php")).send().unwrap();
    assert_eq!(resp.status(), 500);
    let status = php.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(255));
    let log = php.stderr() + &php.stdout();
    assert!(log.contains("Allowed memory size"), "{log}");
    assert!(log.contains("the worker stops"), "{log}");
    // As after a fatal error under php-fpm, the page's shutdown functions run; so do the
    // worker's own, once, as the script ends.
    let out = php.stdout();
    assert!(out.contains("fatal page shutdown function ran"), "{out}");
    assert_eq!(
        out.matches("worker shutdown function ran").count(),
        1,
        "{out}"
    );
}

#[test]
fn flush_streams_while_the_script_still_runs() {
    let php = worker(&[]);
    let gate = std::env::temp_dir().join(format!("rr-flush-gate-{}", std::process::id()));
    let _ = std::fs::remove_file(&gate);
    let mut conn = std::net::TcpStream::connect(php.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "GET /flush.php?gate={} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        gate.display()
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("first part\n") {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&seen).into_owned();
    assert!(!head.contains("second part"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    std::fs::write(&gate, "go").unwrap();
    conn.read_to_end(&mut seen).unwrap();
    let _ = std::fs::remove_file(&gate);
    let all = String::from_utf8_lossy(&seen);
    assert!(all.contains("second part\n"), "{all}");
    assert!(!all.contains("timed out"), "{all}");
    assert!(all.contains("headers were sent"), "{all}");
    assert!(!all.to_ascii_lowercase().contains("x-too-late"), "{all}");
}

#[test]
fn leak_detector_names_the_globals_and_statics_a_request_changed() {
    let php = worker(&[("rr.debug_leaks", "1")]);
    for user in ["ann", "bob"] {
        let resp = client()
            .get(php.url(&format!("/leaky.php?user={user}")))
            .send()
            .unwrap();
        assert_eq!(resp.text().unwrap(), "ok\n");
    }
    // Logged after each answer went out, the static last: wait for the second request's.
    wait_until(
        "the second request's leak lines",
        Duration::from_secs(30),
        || php.stderr().matches("LeakyCache::$users changed").count() >= 2,
    );
    let log = php.stderr();
    assert!(log.contains("$visits changed"), "{log}");
    assert!(log.contains("$visits was created"), "{log}");
    assert_eq!(
        log.matches("LeakyCache::$users changed").count(),
        2,
        "{log}"
    );
    assert!(!log.contains("LeakyCache::$untouched"), "{log}");
    assert_eq!(
        log.matches("1 autoloader(s) registered during the request")
            .count(),
        2,
        "{log}"
    );
    assert!(log.contains("(now 2)"), "{log}");
}

#[test]
fn leak_detector_is_off_by_default() {
    let php = worker(&[]);
    let resp = client().get(php.url("/leaky.php?user=ann")).send().unwrap();
    assert_eq!(resp.text().unwrap(), "ok\n");
    let resp = client().get(php.url("/leaky.php?user=bob")).send().unwrap();
    assert_eq!(resp.text().unwrap(), "ok\n");
    assert!(!php.stderr().contains("rr.debug_leaks"), "{}", php.stderr());
}

/// What a request changes in the process through PHP functions is put back after it, as php-fpm's
/// request end does: the error and exception handlers it set (a closure holding its user would
/// write into the next user's answer), the timezone, the locale, intl's default locale and the
/// umask. The worker's own error handler, set before its first request, stays.
#[test]
fn handlers_timezone_locale_and_umask_a_request_set_are_put_back() {
    // One process, then a pool of one worker: the same process serves every request.
    for options in ["{}", r#"{"http.pool.num_workers": 1}"#] {
        let php = Php::start_with(
            "request_settings.php",
            Options {
                ini: vec![
                    ("rr.address", "127.0.0.1:0".into()),
                    ("extension", "intl".into()),
                ],
                env: vec![("RR_TEST_OPTIONS", options.into())],
                ..Options::default()
            },
        );
        let get = |path: &str| -> String {
            let resp = client().get(php.url(path)).send().unwrap();
            assert_eq!(resp.status(), 200, "{path} ({options})");
            resp.text().unwrap()
        };
        let before: Value = serde_json::from_str(&get("/probe")).unwrap();
        assert_eq!(
            before["warning"], "[worker's handler: probe]",
            "the worker's own handler ({options})"
        );
        assert_eq!(before["exceptionHandler"], false);
        for user in ["alice", "bob"] {
            assert_eq!(
                get(&format!("/change?u={user}")),
                format!("changed by {user}")
            );
            let after: Value = serde_json::from_str(&get("/probe")).unwrap();
            assert_eq!(after, before, "after {user}'s request ({options})");
        }
    }
}

#[test]
fn ini_settings_a_request_changed_are_put_back_to_the_workers_own() {
    let php = Php::start_with(
        "request_ini.php",
        Options {
            ini: vec![
                ("rr.address", "127.0.0.1:0".into()),
                ("extension", "mbstring".into()),
            ],
            ..Options::default()
        },
    );
    let get = |path: &str| -> String {
        let resp = client().get(php.url(path)).send().unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.text().unwrap()
    };
    let first: Value = serde_json::from_str(&get("/probe")).unwrap();
    assert_eq!(
        first["precision"], "10",
        "set by the worker before its loop"
    );
    assert_eq!(first["error_reporting"], 32767 & !8);
    assert_eq!(first["mb_internal_encoding"], "ISO-8859-15");
    assert_eq!(first["mb_substitute_character"], 0x2A);
    assert_eq!(first["user_agent"], "");
    // The worker set user_agent after its first request.
    let before: Value = serde_json::from_str(&get("/probe")).unwrap();
    assert_eq!(before["user_agent"], "worker-agent");
    for round in 0..2 {
        assert_eq!(get("/change"), "changed");
        let after: Value = serde_json::from_str(&get("/probe")).unwrap();
        assert_eq!(after, before, "after /change, round {round}");
    }
}

#[test]
fn an_exception_handler_gets_the_uncaught_exception_and_the_worker_goes_on() {
    let php = Php::start_with(
        "request_end.php",
        Options {
            ini: vec![("rr.address", "127.0.0.1:0".into())],
            ..Options::default()
        },
    );
    let get = |path: &str| client().get(php.url(path)).send().unwrap();
    // No handler yet: rr's 500; the header callback the request registered never runs.
    assert_eq!(get("/callback-then-throw").status(), 500);
    let plain = get("/plain");
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("x-leaked-callback").is_none());
    let pid = plain.text().unwrap();
    // The worker set its handler after its first request: it answers as under php-fpm.
    let handled = get("/throw");
    assert_eq!(handled.status(), 200);
    assert_eq!(
        handled.text().unwrap(),
        "before\n[worker's handler: boom]\n"
    );
    // A handler that throws: 500, both exceptions logged; the request's handler is gone after.
    let broken = get("/handler-throws");
    assert_eq!(broken.status(), 500);
    assert!(!broken.text().unwrap().contains("handler ran"));
    assert!(php.wait_for_log("the handler broke on first"));
    assert!(
        php.stderr().contains("RuntimeException"),
        "{}",
        php.stderr()
    );
    assert_eq!(
        get("/throw").text().unwrap(),
        "before\n[worker's handler: boom]\n"
    );
    // exit() in the handler ends the request with what it produced.
    let exited = get("/handler-exits");
    assert_eq!(exited.status(), 503);
    assert_eq!(exited.text().unwrap(), "exited in the handler: third\n");
    // A header callback that throws: 500, logged.
    assert_eq!(get("/callback-throws").status(), 500);
    assert!(php.wait_for_log("the callback broke"));
    assert_eq!(
        get("/plain").text().unwrap(),
        pid,
        "the same worker throughout"
    );
}
