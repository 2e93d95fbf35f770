//! How a worker starts, stops and fails: signals, a script that ends with a request pending,
//! misuse of the API, bad configuration.
mod common;
use common::{client, open_files_in, read, wait_until, Options, Php};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

fn json(resp: reqwest::blocking::Response) -> serde_json::Value {
    serde_json::from_slice(&resp.bytes().unwrap()).unwrap()
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let mut php = Php::start("lifecycle.php");
    let url = php.url("/slow");
    let in_flight = std::thread::spawn(move || {
        let resp = client().get(url).send().unwrap();
        (resp.status(), resp.text().unwrap())
    });
    std::thread::sleep(Duration::from_millis(100));
    php.signal(libc::SIGTERM);
    assert_eq!(
        in_flight.join().unwrap(),
        (reqwest::StatusCode::OK, "slow done".to_string())
    );
    let status = php.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", php.stderr());
    assert!(
        php.stdout().contains("loop ended"),
        "waitRequest() returned null: {}",
        php.stdout()
    );
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect(php.addr).is_err());
}

#[test]
fn sigint_stops_gracefully_too() {
    let mut php = Php::start("lifecycle.php");
    assert_eq!(client().get(php.url("/")).send().unwrap().status(), 200);
    php.signal(libc::SIGINT);
    assert_eq!(php.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

/// The client of a request pending when the script ends gets a JSON 500 and a closed connection.
fn pending_request_gets_500(path: &str) -> (std::process::ExitStatus, String) {
    let mut php = Php::start("lifecycle.php");
    let resp = client().get(php.url(path)).send().unwrap();
    assert_eq!(resp.status(), 500, "{path}");
    assert_eq!(resp.headers()["connection"], "close");
    let v = json(resp);
    assert_eq!(v["code"], "worker_gone", "{path}: {v}");
    let status = php.wait_exit(Duration::from_secs(10));
    (status, php.stderr() + &php.stdout())
}

#[test]
fn exit_with_a_request_pending_answers_500_and_keeps_the_exit_code() {
    let (status, _) = pending_request_gets_500("/exit");
    assert_eq!(status.code(), Some(3));
}

#[test]
fn an_uncaught_exception_with_a_request_pending_answers_500() {
    let (status, out) = pending_request_gets_500("/throw");
    assert_eq!(status.code(), Some(255));
    assert!(out.contains("boom"), "{out}");
}

#[test]
fn a_fatal_error_with_a_request_pending_answers_500() {
    let (status, out) = pending_request_gets_500("/fatal");
    assert_eq!(status.code(), Some(255));
    assert!(out.contains("undefined_function_for_fatal"), "{out}");
}

#[test]
fn a_script_that_leaves_its_loop_with_a_request_pending_answers_500_and_exits_non_zero() {
    let (status, out) = pending_request_gets_500("/break");
    assert_eq!(status.code(), Some(255));
    assert!(out.contains("loop ended"));
}

#[test]
fn exit_0_with_a_request_pending_still_exits_non_zero() {
    // Restart=on-failure must see it: the script ended with a client waiting.
    let (status, _) = pending_request_gets_500("/exit0");
    assert_eq!(status.code(), Some(255));
}

#[test]
fn sighup_without_a_pool_is_ignored() {
    let mut php = Php::start("lifecycle.php");
    php.signal(libc::SIGHUP);
    // Still serving after the signal was handled (a request is answered after it).
    for _ in 0..3 {
        let resp = client().get(php.url("/")).send().unwrap();
        assert_eq!(resp.text().unwrap(), "ok");
    }
    php.signal(libc::SIGTERM);
    assert_eq!(php.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn worker_error_is_a_500_that_keeps_the_message_in_the_log() {
    let php = Php::start("lifecycle.php");
    let resp = client().get(php.url("/error")).send().unwrap();
    assert_eq!(resp.status(), 500);
    let body = resp.text().unwrap();
    assert!(
        body.contains("worker_error") && !body.contains("secret"),
        "{body}"
    );
    assert!(
        php.wait_for_log("secret detail for the log"),
        "{}",
        php.stderr()
    );
    assert_eq!(
        client().get(php.url("/")).send().unwrap().text().unwrap(),
        "ok"
    );
}

#[test]
fn a_pcntl_handler_runs_while_the_worker_waits() {
    let mut php = Php::start("signal.php");
    std::thread::sleep(Duration::from_millis(100));
    php.signal(libc::SIGUSR1);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !php.stdout().contains("usr1 handled") {
        assert!(
            std::time::Instant::now() < deadline,
            "handler did not run: {}",
            php.stdout()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        client().get(php.url("/")).send().unwrap().text().unwrap(),
        "ok"
    );
    php.signal(libc::SIGTERM);
    assert_eq!(php.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(php.stdout().contains("clean exit"));
    assert_eq!(php.child.try_wait().unwrap().unwrap().signal(), None);
}

fn misuse(php: &Php, path: &str) -> String {
    let v = json(client().get(php.url(path)).send().unwrap());
    v["result"].as_str().unwrap().to_string()
}

#[test]
fn misuse_is_an_exception_that_names_the_problem() {
    let mut php = Php::start("misuse.php");
    let v = json(client().get(php.url("/")).send().unwrap());
    let before = v["before"].as_str().unwrap();
    assert!(
        before.starts_with("RR\\Exception:") && before.contains("no request is pending"),
        "{before}"
    );
    let second = v["second"].as_str().unwrap();
    assert!(
        second.starts_with("RR\\Exception:") && second.contains("already started"),
        "{second}"
    );
    // RR\role() before any worker said "the worker has stopped", as if one had run.
    let early = v["early"].as_str().unwrap();
    assert!(
        early.starts_with("RR\\Exception:") && early.contains("no RR\\Worker was started"),
        "{early}"
    );

    let status = misuse(&php, "/status");
    assert!(
        status.starts_with("ValueError:") && status.contains("999"),
        "{status}"
    );
    assert!(misuse(&php, "/status-negative").contains("-1"));
    let name = misuse(&php, "/header-name");
    assert!(
        name.starts_with("ValueError:") && name.contains("invalid header name"),
        "{name}"
    );
    let value = misuse(&php, "/header-value");
    assert!(
        value.contains("invalid value") && value.contains("X-Ok"),
        "{value}"
    );
    // More names than a header map holds: a ValueError, not a Rust panic.
    let count = misuse(&php, "/header-count");
    assert!(
        count.starts_with("ValueError:") && count.contains("30000 headers"),
        "{count}"
    );
    let kind = misuse(&php, "/header-type");
    assert!(kind.contains("X-Obj"), "{kind}");
    assert!(misuse(&php, "/sendfile-empty").contains("invalid path"));

    assert_eq!(
        client()
            .get(php.url("/twice"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "first"
    );
    assert_eq!(
        client()
            .get(php.url("/after-stream"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "ab"
    );
    assert_eq!(
        client()
            .get(php.url("/sendfile-while-streaming"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "ab"
    );
    php.signal(libc::SIGTERM);
    php.wait_exit(Duration::from_secs(10));
    let out = php.stdout();
    assert!(
        out.contains("twice: RR\\Exception: RR\\Worker::respond(): no request is pending"),
        "{out}"
    );
    assert!(out.contains("after-stream: RR\\Exception: RR\\Worker::respond(): the streamed response has already ended"), "{out}");
    assert!(out.contains("sendfile-while-streaming: RR\\Exception: RR\\Worker::sendFile(): a streamed response is in progress"), "{out}");
}

fn config_error(options: serde_json::Value, yaml: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = Options::default();
    if let Some(yaml) = yaml {
        std::fs::write(dir.path().join(".rr.yaml"), yaml).unwrap();
        opts.cwd = Some(dir.path().to_path_buf());
    }
    opts.env.push(("RR_TEST_OPTIONS", options.to_string()));
    let (status, stderr, stdout) =
        Php::run_to_end("config_error.php", opts, Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{stdout}{stderr}");
    stdout
}

#[test]
fn bad_configuration_fails_at_start_naming_file_key_and_value() {
    let out = config_error(
        serde_json::json!({}),
        Some("http:\n  adress: 127.0.0.1:1\n"),
    );
    assert!(
        out.contains("ConfigException") && out.contains(".rr.yaml") && out.contains("http.adress"),
        "{out}"
    );

    let out = config_error(serde_json::json!({}), Some("http:\n  idle_timeout: soon\n"));
    assert!(
        out.contains(".rr.yaml") && out.contains("http.idle_timeout") && out.contains("soon"),
        "{out}"
    );

    let out = config_error(serde_json::json!({"http.address": "nowhere"}), None);
    assert!(
        out.contains("option") && out.contains("http.address") && out.contains("nowhere"),
        "{out}"
    );

    let out = config_error(serde_json::json!({"config": "/no/such/rr.yaml"}), None);
    assert!(out.contains("/no/such/rr.yaml"), "{out}");
}

#[test]
fn an_address_in_use_is_a_config_exception() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = config_error(serde_json::json!({"http.address": addr}), None);
    assert!(
        out.contains("cannot listen on") && out.contains(&addr),
        "{out}"
    );
}

/// `php ... 2>&1 | some-logger` where the logger died: every log line then fails with EPIPE.
/// That must cost the lines, not the requests (tracing reported each failed write with an
/// eprintln!, which panicked in the connection's task) nor the shutdown.
#[test]
fn a_closed_stderr_loses_log_lines_not_requests_nor_the_shutdown() {
    let mut opts = Options {
        close_stderr_once_listening: true,
        ..Options::default()
    };
    opts.ini.push(("rr.access_logs", "1".to_string()));
    let mut php = Php::start_with("lifecycle.php", opts);
    for _ in 0..3 {
        let resp = client().get(php.url("/")).send().unwrap();
        assert_eq!(resp.status(), 200);
    }
    php.signal(libc::SIGTERM);
    assert_eq!(php.wait_exit(Duration::from_secs(30)).code(), Some(0));
}

/// A file whose top level (or a section) is not a mapping is refused even when an override
/// (`-d rr.address=...`, an option) writes below it: it used to replace the file's value, so
/// the whole file (or section) was dropped without a word.
#[test]
fn an_override_does_not_hide_a_file_that_is_not_a_mapping() {
    let address = serde_json::json!({"http.address": "127.0.0.1:0"});
    let out = config_error(address.clone(), Some("- http:\n    address: 127.0.0.1:1\n"));
    assert!(
        out.contains("ConfigException")
            && out.contains(".rr.yaml")
            && out.contains("expected a mapping"),
        "{out}"
    );
    let out = config_error(address, Some("http: \"address: 127.0.0.1:1\"\n"));
    assert!(
        out.contains(".rr.yaml: key 'http'") && out.contains("expected a mapping"),
        "{out}"
    );
}

/// An uploads directory that is missing, or a file, was accepted: every upload then failed
/// at request time (the file dropped, a warning in the log, the client answered as if
/// nothing happened).
#[test]
fn an_uploads_dir_that_cannot_hold_uploads_is_refused_at_start() {
    let out = config_error(
        serde_json::json!({"http.uploads.dir": "/nonexistent/rr-uploads"}),
        None,
    );
    assert!(
        out.contains("ConfigException")
            && out.contains("http.uploads.dir")
            && out.contains("/nonexistent/rr-uploads")
            && out.contains("No such file"),
        "{out}"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().display().to_string();
    let out = config_error(
        serde_json::json!({}),
        Some(&format!("http:\n  uploads:\n    dir: {path}\n")),
    );
    assert!(
        out.contains(".rr.yaml: key 'http.uploads.dir'")
            && out.contains(&path)
            && out.contains("not a directory"),
        "{out}"
    );
}

/// A log file that cannot be opened was refused with "rr config: logs.output: cannot open
/// the log file: No such file or directory": neither the file the key came from nor the path.
#[test]
fn a_log_file_that_cannot_be_written_names_the_file_key_and_path() {
    let out = config_error(
        serde_json::json!({}),
        Some("logs:\n  output: /nonexistent/dir/rr.log\n"),
    );
    assert!(
        out.contains(".rr.yaml: key 'logs.output'")
            && out.contains("/nonexistent/dir/rr.log")
            && out.contains("No such file"),
        "{out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    let out = config_error(serde_json::json!({"logs.output": path}), None);
    assert!(
        out.contains("option: key 'logs.output'")
            && out.contains(&path)
            && out.contains("directory"),
        "{out}"
    );
}

/// `metrics.address` on the port of `status.address` (or of `http.address`) failed with
/// "cannot listen on ... (metrics.address): Address already in use": the operator then looks
/// for another process.
#[test]
fn two_listeners_on_one_port_are_a_config_error_naming_both() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml =
        format!("status:\n  address: 127.0.0.1:{port}\nmetrics:\n  address: 0.0.0.0:{port}\n");
    let out = config_error(serde_json::json!({}), Some(&yaml));
    assert!(
        out.contains(".rr.yaml: key 'metrics.address'")
            && out.contains(&format!("status.address is 127.0.0.1:{port}"))
            && !out.contains("already in use"),
        "{out}"
    );
}

/// PHP keeps an ini name no extension declared without a word, so `-d rr.adress=...` (or a
/// typo in php.ini) was ignored and the server listened on the default address.
#[test]
fn an_unknown_rr_ini_setting_is_a_config_error_with_a_suggestion() {
    let mut opts = Options::default();
    opts.ini.push(("rr.adress", "127.0.0.1:1".to_string()));
    opts.env.push(("RR_TEST_OPTIONS", "{}".to_string()));
    let (status, stderr, out) = Php::run_to_end("config_error.php", opts, Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{out}{stderr}");
    assert!(
        out.contains("ConfigException: rr config ini: unknown key 'rr.adress'")
            && out.contains("did you mean 'rr.address'"),
        "{out}"
    );
}

/// An option whose value is an object, a closure, a resource or INF became null, which means
/// "the default": `['http.address' => $someObject]` started on 127.0.0.1:8080. A config path
/// holding a NUL made the ConfigException itself fail ("cannot throw ...: NUL byte").
#[test]
fn an_option_that_is_no_configuration_value_is_a_type_error() {
    // An ignored option leaves rr.address's 127.0.0.1:0: the worker starts, and says so.
    let (status, stderr, out) = Php::run_to_end(
        "option_types.php",
        Options::default(),
        Duration::from_secs(20),
    );
    assert!(!out.contains("started"), "{out}{stderr}");
    assert_eq!(status.code(), Some(0), "{out}{stderr}");
    for (case, key, what) in [
        ("object", "http.address", "an object of class stdClass"),
        ("closure", "http.address", "an object of class Closure"),
        ("resource", "http.address", "a resource"),
        ("inf", "http.queue_size", "the float INF"),
        ("nested-object", "http", "an object of class ArrayObject"),
    ] {
        let line = format!(
            "{case}: TypeError: RR\\Worker option '{key}': {what} is not a configuration value"
        );
        assert!(out.contains(&line), "{line}\n{out}");
    }
    assert!(
        out.contains("config-nul: RR\\ConfigException: rr config: file '/no/such\\0file.yaml'"),
        "{out}"
    );
}

/// logrotate's usual way (rename the file, then SIGUSR1, as for nginx and php-fpm) ended the
/// process at once, losing the requests in flight. Now the file is opened again by name, also
/// while the process is idle, and nothing is lost or written to the renamed file after it.
#[test]
fn sigusr1_opens_the_log_file_again_after_logrotate_renamed_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("rr.log");
    let rotated = dir.path().join("rr.log.1");
    let mut opts = Options {
        log_file: Some(log.clone()),
        ..Options::default()
    };
    let options = serde_json::json!({
        "logs.output": log, "logs.level": "info", "http.access_logs": true,
    });
    opts.env.push(("RR_TEST_OPTIONS", options.to_string()));
    let mut php = Php::start_with("lifecycle.php", opts);
    assert_eq!(
        client().get(php.url("/before")).send().unwrap().status(),
        200
    );
    wait_until("the first access line", Duration::from_secs(10), || {
        read(&log).contains("/before")
    });

    std::fs::rename(&log, &rotated).unwrap();
    php.signal(libc::SIGUSR1);
    // Idle, with nothing to log: the old file is let go of all the same.
    wait_until("the log file opened again", Duration::from_secs(10), || {
        open_files_in(php.pid(), dir.path()) == vec![log.clone()]
    });
    assert_eq!(
        client().get(php.url("/after")).send().unwrap().status(),
        200
    );
    wait_until(
        "the access line in the new file",
        Duration::from_secs(10),
        || read(&log).contains("/after"),
    );
    assert!(!read(&rotated).contains("/after"), "{}", read(&rotated));
    assert!(read(&rotated).contains("/before"));

    // A path that cannot be opened any more (here a directory took its place): the old file
    // is kept and says why.
    std::fs::rename(&log, &rotated).unwrap();
    std::fs::create_dir(&log).unwrap();
    php.signal(libc::SIGUSR1);
    assert_eq!(client().get(php.url("/kept")).send().unwrap().status(), 200);
    wait_until(
        "the access line in the file kept",
        Duration::from_secs(10),
        || read(&rotated).contains("/kept"),
    );
    let kept = read(&rotated);
    assert!(
        kept.contains("SIGUSR1: cannot open the log file")
            && kept.contains(&log.display().to_string()),
        "{kept}"
    );
    php.signal(libc::SIGTERM);
    assert_eq!(php.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

/// A relative `logs.output` was opened again by that relative name on SIGUSR1: after the
/// script's `chdir()` the log went on in a new file in the script's directory, and the one
/// logrotate expects was never created again. The path is now made absolute at start.
#[test]
fn sigusr1_opens_a_relative_log_file_where_it_was_after_the_script_changed_directory() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let log = dir.path().join("rr.log");
    let rotated = dir.path().join("rr.log.1");
    let mut opts = Options {
        log_file: Some(log.clone()),
        cwd: Some(dir.path().to_path_buf()),
        ..Options::default()
    };
    let options = serde_json::json!({
        "logs.output": "rr.log", "logs.level": "info", "http.access_logs": true,
    });
    opts.env.push(("RR_TEST_OPTIONS", options.to_string()));
    let mut php = Php::start_with("lifecycle.php", opts);
    let moved = client()
        .get(php.url(&format!("/chdir?to={}", elsewhere.path().display())))
        .send()
        .unwrap();
    assert_eq!(moved.status(), 200);
    std::fs::rename(&log, &rotated).unwrap();
    php.signal(libc::SIGUSR1);
    wait_until("the log file opened again", Duration::from_secs(10), || {
        !open_files_in(php.pid(), dir.path()).contains(&rotated)
    });
    assert_eq!(
        client().get(php.url("/after")).send().unwrap().status(),
        200
    );
    wait_until(
        "the access line in the file logrotate expects",
        Duration::from_secs(10),
        || read(&log).contains("/after"),
    );
    assert!(!elsewhere.path().join("rr.log").exists());
    php.signal(libc::SIGTERM);
    assert_eq!(php.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

/// SIGQUIT is php-fpm's and nginx's graceful stop; it ended rr at once (its default action),
/// losing the request in flight.
#[test]
fn sigquit_stops_gracefully_like_php_fpm() {
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let mut opts = Options::default();
    opts.env
        .push(("RR_TEST_STARTED", started.display().to_string()));
    let mut php = Php::start_with("lifecycle.php", opts);
    let url = php.url("/slow");
    let in_flight = std::thread::spawn(move || {
        let resp = client().get(url).send().unwrap();
        (resp.status(), resp.text().unwrap())
    });
    wait_until("the slow request in PHP", Duration::from_secs(10), || {
        started.exists()
    });
    php.signal(libc::SIGQUIT);
    assert_eq!(
        in_flight.join().unwrap(),
        (reqwest::StatusCode::OK, "slow done".to_string())
    );
    let status = php.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status:?} {}", php.stderr());
    assert!(php.stdout().contains("loop ended"), "{}", php.stdout());
}

/// Under `ulimit -n 8` tokio's signal driver panicked while the runtime was built (it cannot
/// make its socket pair and does not return the error): a Rust backtrace instead of a message.
#[test]
fn too_low_a_descriptor_limit_is_a_clear_error_not_a_panic() {
    for nofile in [8, 12] {
        let opts = Options {
            nofile: Some(nofile),
            env: vec![("RR_TEST_OPTIONS", "{}".to_string())],
            ..Options::default()
        };
        let (status, stderr, out) =
            Php::run_to_end("config_error.php", opts, Duration::from_secs(20));
        assert_eq!(status.code(), Some(2), "ulimit -n {nofile}: {out}{stderr}");
        assert!(!stderr.contains("panicked"), "ulimit -n {nofile}: {stderr}");
        let expected = format!("the soft RLIMIT_NOFILE is {nofile}");
        assert!(
            out.contains("file descriptors are free") && out.contains(&expected),
            "ulimit -n {nofile}: {out}{stderr}"
        );
    }
}

/// A request that forks (pcntl_fork()) makes a copy of the worker holding its clients'
/// connections, listening sockets and pool channel. The copy answers nothing and serves
/// nothing: its exit() ends it (with its code), and the worker answers its own request and the
/// next ones; a copy that goes on instead gets an exception at its next call into rr. Before,
/// the copy's exit() in handle() answered the worker's client with the
/// copy's output and the copy went on taking other users' requests; in waitRequest() its end
/// answered the worker's client with a 500 and drained the worker's connections.
#[test]
fn a_process_forked_by_a_request_never_answers_nor_serves() {
    let configs = [
        r#"{}"#,
        r#"{"http.pool.num_workers": 1}"#,
        r#"{"http.pool.num_workers": 1, "http.pool.template": true}"#,
    ];
    for api in ["handle", "waitRequest"] {
        for options in configs {
            let php = Php::start_with(
                "fork_in_request.php",
                Options {
                    env: vec![
                        ("RR_TEST_API", api.into()),
                        ("RR_TEST_OPTIONS", options.into()),
                    ],
                    ..Options::default()
                },
            );
            let get = |path: &str| {
                let resp = client().get(php.url(path)).send().unwrap();
                (resp.status().as_u16(), resp.text().unwrap())
            };
            let (_, pid) = get("/pid");
            assert_eq!(
                get("/fork"),
                (200, "the worker answered; its copy exited with 3\n".into()),
                "{api} {options}"
            );
            // A copy that goes on as if it were the worker: its next call into rr throws.
            assert_eq!(
                get("/fork?on=1"),
                (
                    200,
                    "the worker answered; its copy exited with 255\n".into()
                ),
                "{api} {options}"
            );
            for _ in 0..3 {
                assert_eq!(get("/pid"), (200, pid.clone()), "{api} {options}");
            }
            // PHP prints the copy's uncaught exception (a pool worker's output reaches the
            // master's log a little later).
            wait_until(
                &format!("{api} {options}: the copy's exception printed"),
                Duration::from_secs(10),
                || {
                    (php.stdout() + &php.stderr())
                        .contains("is a copy of the worker made by fork()")
                },
            );
        }
    }
}

/// waitRequest() and PHP's own session: the next request starts without the previous one's
/// session, as under php-fpm. Before, a plain session_start() resumed the session id the
/// last request used, and a request that failed before session_write_close() left its
/// session open: either way the next client, with no cookie, was the previous user. The save
/// handler the worker set before its loop stays.
#[test]
fn a_session_of_one_waitrequest_request_is_never_the_next_ones() {
    let php = Php::start("session_wait.php");
    let get = |query: &str| {
        let resp = client().get(php.url(&format!("/{query}"))).send().unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    };
    assert_eq!(get("?login=ann"), (200, "user=ann writes=0\n".into()));
    assert_eq!(get(""), (200, "user=nobody writes=1\n".into()));
    assert_eq!(get("?login=bob&boom=1").0, 500);
    assert_eq!(get(""), (200, "user=nobody writes=3\n".into()));
    assert!(php.wait_for_log("left its session open"));
}
