//! End-to-end tests of loading: YAML text, overrides and files in, `Config` or a message out.

use super::*;
use serde_json::json;
use std::fs;

const FILE: &str = "/etc/rr.yaml";

fn parse(yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml_str(yaml, Path::new(FILE))
}

fn error(yaml: &str) -> String {
    parse(yaml).unwrap_err().to_string()
}

fn ini(key: &str, value: &str) -> Override {
    Override {
        origin: format!("ini rr.{}", key.rsplit('.').next().unwrap()),
        key: key.to_owned(),
        value: json!(value),
    }
}

/// A fresh directory for one test, so parallel tests never share files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rr-config-test-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A directory holding cert.pem and key.pem (contents do not matter to the config).
fn tls_files(test: &str) -> PathBuf {
    let dir = scratch(test);
    fs::write(dir.join("cert.pem"), "cert").unwrap();
    fs::write(dir.join("key.pem"), "key").unwrap();
    dir
}

#[test]
fn defaults() {
    let c = Config::default();
    assert_eq!(c.source, None);
    assert_eq!(c.http.address, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.http.max_request_size, 100 * 1024 * 1024);
    assert_eq!(c.http.max_header_size, 64 * 1024);
    assert_eq!(c.http.uploads.dir, std::env::temp_dir());
    assert_eq!(c.http.uploads.forbid, [".php", ".exe", ".bat"]);
    assert_eq!(c.http.read_header_timeout, Duration::from_secs(10));
    assert_eq!(c.http.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.http.request_timeout, Duration::from_secs(60));
    assert_eq!(c.http.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(c.http.ssl, None);
    assert!(c.http.h2c);
    assert_eq!(c.http.max_concurrent_streams, 128);
    assert_eq!(c.http.max_queued_streams, 16);
    assert!(!c.http.access_logs);
    assert_eq!(c.http.io_driver, IoDriver::Hybrid);
    assert_eq!(c.http.io_handoff, Duration::from_millis(1));
    assert_eq!(c.http.queue_size, 1024);
    assert_eq!(c.logs.level, LogLevel::Info);
    assert_eq!(c.logs.encoding, LogEncoding::Text);
    assert_eq!(c.logs.output, LogOutput::Stderr);
    assert_eq!(c.velox, None);
    assert_eq!(c.pool.num_workers, 0);
    assert_eq!(c.pool.max_jobs, 0);
    assert_eq!(c.pool.allocate_timeout, Duration::from_secs(60));
    assert_eq!(c.pool.destroy_timeout, Duration::from_secs(60));
    assert_eq!(c.pool.max_queue_size, 0);
    assert_eq!(c.pool.supervisor, SupervisorConfig::default());
    assert!(c.warnings.is_empty());
}

#[test]
fn velox_defaults() {
    let v = VeloxConfig::new("http://v".into());
    assert_eq!(v.build_timeout, Duration::from_secs(900));
    assert_eq!(v.connect_timeout, Duration::from_secs(10));
    assert_eq!(v.retry.max_attempts, 3);
    assert_eq!(v.retry.initial_delay, Duration::from_secs(1));
    assert_eq!(v.retry.max_delay, Duration::from_secs(10));
    assert_eq!(v.retry.backoff_multiplier, 2.0);
    assert_eq!(v.artifacts_dir, vec![std::env::temp_dir()]);
    assert!(!v.cache.enabled);
    assert_eq!(v.cache.dir, std::env::temp_dir().join("rr-velox-cache"));
    assert_eq!(v.cache.max_size, 1024 * 1024 * 1024);
}

#[test]
fn empty_file_is_all_defaults() {
    for yaml in ["", "# comment only\n", "version: '3'\n", "http:\nlogs: ~\n"] {
        let c = parse(yaml).unwrap();
        assert_eq!(c.source.as_deref(), Some(Path::new(FILE)));
        assert_eq!(Config { source: None, ..c }, Config::default(), "{yaml:?}");
    }
}

#[test]
fn every_key_is_read() {
    let tls = tls_files("every_key");
    let yaml = format!(
        r#"
version: "3"
http:
  address: 0.0.0.0:9000
  max_request_size: 10
  max_header_size: 16KB
  uploads:
    dir: {dir}
    forbid: [".PHP", "sh"]
  read_header_timeout: 5s
  idle_timeout: 2m
  request_timeout: 1.5s
  shutdown_timeout: 0
  ssl:
    address: "[::1]:9443"
    cert: {dir}/cert.pem
    key: {dir}/key.pem
  http2:
    h2c: false
  access_logs: true
  io_driver: thread
  io_handoff: 250us
  queue_size: 16
  pool:
    num_workers: 0
    max_jobs: 500
    allocate_timeout: 20s
    boot_timeout: 5s
    destroy_timeout: 1m
    max_queue_size: 32
    supervisor:
      max_worker_memory: 128
      ttl: 1h
      idle_ttl: 10m
      exec_ttl: 30s
logs:
  level: debug
  encoding: json
  output: {dir}/rr.log
velox:
  server_url: https://velox.example.com
  build_timeout: 10m
  connect_timeout: 90s
  retry:
    max_attempts: 5
    initial_delay: 500ms
    max_delay: 30s
    backoff_multiplier: 1.5
  artifacts_dir: [{dir}/a, {dir}/b]
  cache:
    enabled: true
    dir: {dir}/velox-cache
    max_size: 2GB
"#,
        dir = tls.display()
    );
    fs::create_dir(tls.join("a")).unwrap();
    fs::create_dir(tls.join("b")).unwrap();
    let c = parse(&yaml).unwrap();
    let h = &c.http;
    assert_eq!(h.address, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(h.max_request_size, 10 * 1024 * 1024);
    assert_eq!(h.max_header_size, 16 * 1024);
    assert_eq!(h.uploads.dir, tls);
    assert_eq!(h.uploads.forbid, [".php", ".sh"]);
    assert_eq!(h.read_header_timeout, Duration::from_secs(5));
    assert_eq!(h.idle_timeout, Duration::from_secs(120));
    assert_eq!(h.request_timeout, Duration::from_millis(1500));
    assert_eq!(h.shutdown_timeout, Duration::ZERO);
    let ssl = h.ssl.as_ref().unwrap();
    assert_eq!(ssl.address, "[::1]:9443".parse().unwrap());
    assert_eq!(ssl.cert, tls.join("cert.pem"));
    assert_eq!(ssl.key, tls.join("key.pem"));
    assert!(!h.h2c);
    assert!(h.access_logs);
    assert_eq!(h.io_driver, IoDriver::Thread);
    assert_eq!(h.io_handoff, Duration::from_micros(250));
    assert_eq!(h.queue_size, 16);
    let p = &c.pool;
    assert_eq!(p.num_workers, 0);
    assert_eq!(p.max_jobs, 500);
    assert_eq!(p.allocate_timeout, Duration::from_secs(20));
    assert_eq!(p.boot_timeout, Duration::from_secs(5));
    assert_eq!(p.destroy_timeout, Duration::from_secs(60));
    assert_eq!(p.max_queue_size, 32);
    assert_eq!(p.supervisor.max_worker_memory, 128 * 1024 * 1024);
    assert_eq!(p.supervisor.ttl, Duration::from_secs(3600));
    assert_eq!(p.supervisor.idle_ttl, Duration::from_secs(600));
    assert_eq!(p.supervisor.exec_ttl, Duration::from_secs(30));
    assert_eq!(c.logs.level, LogLevel::Debug);
    assert_eq!(c.logs.encoding, LogEncoding::Json);
    assert_eq!(c.logs.output, LogOutput::File(tls.join("rr.log")));
    let v = c.velox.as_ref().unwrap();
    assert_eq!(v.server_url, "https://velox.example.com");
    assert_eq!(v.build_timeout, Duration::from_secs(600));
    assert_eq!(v.connect_timeout, Duration::from_secs(90));
    assert_eq!(v.retry.max_attempts, 5);
    assert_eq!(v.retry.initial_delay, Duration::from_millis(500));
    assert_eq!(v.retry.max_delay, Duration::from_secs(30));
    assert_eq!(v.retry.backoff_multiplier, 1.5);
    assert_eq!(v.artifacts_dir, [tls.join("a"), tls.join("b")]);
    assert!(v.cache.enabled);
    assert_eq!(v.cache.dir, tls.join("velox-cache"));
    assert_eq!(v.cache.max_size, 2 * 1024 * 1024 * 1024);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    fs::remove_dir_all(tls).unwrap();
}

#[test]
fn request_size_integer_is_megabytes_but_units_are_exact() {
    let size = |v: &str| {
        parse(&format!("http: {{max_request_size: {v}}}"))
            .unwrap()
            .http
            .max_request_size
    };
    assert_eq!(size("1"), 1024 * 1024);
    assert_eq!(size("\"512KB\""), 512 * 1024);
    assert_eq!(size("100B"), 100);
    assert_eq!(size("1GB"), 1024 * 1024 * 1024);
    assert!(error("http: {max_request_size: 0}").contains("expected a size of at least 1B"));
}

#[test]
fn header_size_integer_is_bytes() {
    let c = parse("http: {max_header_size: 32768}").unwrap();
    assert_eq!(c.http.max_header_size, 32768);
    assert_eq!(
        error("http: {max_header_size: 100}"),
        "rr config /etc/rr.yaml: key 'http.max_header_size': invalid value 100: \
         expected a size from 8KB to 4GB"
    );
}

#[test]
fn aliases_from_roadrunner() {
    let c = parse("logs: {level: warning, encoding: console, output: STDOUT}").unwrap();
    assert_eq!(c.logs.level, LogLevel::Warn);
    assert_eq!(c.logs.encoding, LogEncoding::Text);
    assert_eq!(c.logs.output, LogOutput::Stdout);
    let c = parse("http: {address: ':8081', io_driver: INLINE}").unwrap();
    assert_eq!(c.http.address, "0.0.0.0:8081".parse().unwrap());
    assert_eq!(c.http.io_driver, IoDriver::Inline);
}

#[test]
fn port_zero_is_allowed() {
    let c = parse("http: {address: 127.0.0.1:0}").unwrap();
    assert_eq!(c.http.address.port(), 0);
}

#[test]
fn env_substitution_happens_before_parsing() {
    let port = "RR_CONFIG_TEST_PORT_91C2";
    let level = "RR_CONFIG_TEST_LEVEL_91C2";
    std::env::set_var(port, "9123");
    std::env::remove_var(level);
    let yaml = format!(
        "http:\n  address: 127.0.0.1:${{{port}}}\nlogs:\n  level: ${{{level}:-debug}}\n  # $HOME stays\n"
    );
    let c = parse(&yaml).unwrap();
    std::env::remove_var(port);
    assert_eq!(c.http.address.port(), 9123);
    assert_eq!(c.logs.level, LogLevel::Debug);
}

#[test]
fn unset_variable_becomes_empty() {
    // Unquoted, the empty value is YAML null, which means "the default".
    let c = parse("http:\n  address: ${RR_CONFIG_TEST_UNSET_5D1E}\n").unwrap();
    assert_eq!(c.http.address, HttpConfig::default().address);
    // Quoted, it is an empty string, which is not an address.
    let err = error("http:\n  address: \"${RR_CONFIG_TEST_UNSET_5D1E}\"\n");
    assert_eq!(
        err,
        "rr config /etc/rr.yaml: key 'http.address': invalid value \"\": expected host:port \
         with an IP address or localhost, e.g. 127.0.0.1:8080, 0.0.0.0:8080, [::1]:8080 or \
         :8080 (all interfaces)"
    );
}

#[test]
fn invalid_value_names_file_key_value_and_expectation() {
    let err = error("http:\n  address: abc:99999\n");
    assert!(
        err.starts_with(
            "rr config /etc/rr.yaml: key 'http.address': invalid value \"abc:99999\": \
             expected host:port"
        ),
        "{err}"
    );
    let cases = [
        (
            "http: {read_header_timeout: 10 seconds}",
            "key 'http.read_header_timeout': invalid value \"10 seconds\": expected a duration like",
        ),
        (
            "http: {idle_timeout: -5}",
            "key 'http.idle_timeout': invalid value -5: expected a duration that is not negative",
        ),
        (
            "http: {request_timeout: 0s}",
            "key 'http.request_timeout': invalid value \"0s\": expected a duration greater than zero",
        ),
        (
            "http: {queue_size: 0}",
            "key 'http.queue_size': invalid value 0: expected a whole number >= 1",
        ),
        (
            "http: {http2: {max_concurrent_streams: 0}}",
            "key 'http.http2.max_concurrent_streams': invalid value 0: expected a whole number >= 1",
        ),
        (
            "http: {http2: {max_concurrent_streams: -3}}",
            "key 'http.http2.max_concurrent_streams': invalid value -3: expected a whole number >= 1",
        ),
        (
            "http: {http2: {max_concurrent_streams: 12.5}}",
            "key 'http.http2.max_concurrent_streams': invalid value 12.5: expected a whole number >= 1",
        ),
        (
            "http: {http2: {max_concurrent_streams: 5000000000}}",
            "key 'http.http2.max_concurrent_streams': invalid value 5000000000: expected a smaller whole number",
        ),
        (
            "http: {http2: {max_queued_streams: 0}}",
            "key 'http.http2.max_queued_streams': invalid value 0: expected a whole number >= 1",
        ),
        (
            "http: {http2: {max_queued_streams: many}}",
            "key 'http.http2.max_queued_streams': invalid value \"many\": expected a whole number >= 1",
        ),
        (
            "http: {http2: {h2c: maybe}}",
            "key 'http.http2.h2c': invalid value \"maybe\": expected true or false",
        ),
        (
            "http: {io_driver: async}",
            "key 'http.io_driver': invalid value \"async\": expected one of hybrid, inline, thread",
        ),
        (
            "http: {max_request_size: 10XB}",
            "key 'http.max_request_size': invalid value \"10XB\": expected a size like",
        ),
        (
            "http: {uploads: {forbid: 7}}",
            "key 'http.uploads.forbid': invalid value 7: expected a list of strings",
        ),
        (
            "http: {uploads: [a]}",
            "key 'http.uploads': invalid value [\"a\"]: expected a mapping",
        ),
        (
            "logs: {level: loud}",
            "key 'logs.level': invalid value \"loud\": expected one of error, warn, warning, info",
        ),
        (
            "logs: {output: ''}",
            "key 'logs.output': invalid value \"\": expected a path",
        ),
        (
            "velox: {server_url: 'ftp://x'}",
            "key 'velox.server_url': invalid value \"ftp://x\": expected an http:// or https:// URL",
        ),
        (
            "velox: {retry: {max_attempts: 0}}",
            "key 'velox.retry.max_attempts': invalid value 0: expected a whole number >= 1",
        ),
        (
            "velox: {retry: {backoff_multiplier: 0.5}}",
            "key 'velox.retry.backoff_multiplier': invalid value 0.5: expected a number >= 1.0",
        ),
        (
            "velox: {retry: {initial_delay: 5s, max_delay: 2s}}",
            "key 'velox.retry.max_delay': invalid value \"2s\": expected a duration of at least \
             velox.retry.initial_delay (5s)",
        ),
        (
            "velox: {artifacts_dir: []}",
            "key 'velox.artifacts_dir': invalid value []: expected a path or a non-empty list",
        ),
        (
            "velox: {cache: {max_size: 0}}",
            "key 'velox.cache.max_size': invalid value 0: expected a size of at least 1B",
        ),
        (
            "http: {pool: {num_workers: many}}",
            "key 'http.pool.num_workers': invalid value \"many\": expected a whole number that is not negative",
        ),
        (
            "http: {pool: {supervisor: {max_worker_memory: lots}}}",
            "key 'http.pool.supervisor.max_worker_memory': invalid value \"lots\": expected a size",
        ),
        (
            "- a list",
            "invalid value [\"a list\"]: expected a mapping of keys to values",
        ),
    ];
    for (yaml, expected) in cases {
        let err = error(yaml);
        assert!(
            err.starts_with(&format!("rr config /etc/rr.yaml: {expected}")),
            "{yaml}\n  got: {err}\n want: {expected}"
        );
    }
}

#[test]
fn unknown_keys_are_errors_with_suggestions() {
    assert_eq!(
        error("http:\n  adress: 1.2.3.4:80\n"),
        "rr config /etc/rr.yaml: unknown key 'http.adress' (did you mean 'http.address'?)"
    );
    assert_eq!(
        error("htp: {}\n"),
        "rr config /etc/rr.yaml: unknown key 'htp' (did you mean 'http'?)"
    );
    assert_eq!(
        error("logs: {colour: red}"),
        "rr config /etc/rr.yaml: unknown key 'logs.colour'"
    );
    assert_eq!(
        error("velox: {retry: {max_attempt: 2}}"),
        "rr config /etc/rr.yaml: unknown key 'velox.retry.max_attempt' \
         (did you mean 'velox.retry.max_attempts'?)"
    );
    assert_eq!(
        error("velox: {cache: {size: 1}}"),
        "rr config /etc/rr.yaml: unknown key 'velox.cache.size'"
    );
    assert!(error("banana: 1").starts_with("rr config /etc/rr.yaml: unknown key 'banana'"));
}

#[test]
fn misspelt_required_key_is_reported_as_the_typo() {
    let tls = tls_files("misspelt_required");
    let yaml = format!("http:\n  ssl:\n    crt: {}/cert.pem\n", tls.display());
    assert_eq!(
        error(&yaml),
        "rr config /etc/rr.yaml: unknown key 'http.ssl.crt' (did you mean 'http.ssl.cert'?)"
    );
    fs::remove_dir_all(tls).unwrap();
}

#[test]
fn yaml_syntax_errors_have_line_and_column() {
    let err = parse("http:\n  address: [1\n  x: y\n").unwrap_err();
    match &err {
        ConfigError::Syntax {
            origin,
            line,
            column,
            ..
        } => {
            assert_eq!(origin, FILE);
            assert!(line.is_some() && column.is_some(), "{err:?}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.starts_with("rr config /etc/rr.yaml: line ") && text.contains("invalid YAML"),
        "{text}"
    );
    let dup = error("http: {}\nhttp: {}\n");
    assert!(dup.contains("duplicate entry with key \"http\""), "{dup}");
}

#[test]
fn http2_stream_limits_are_read_and_the_queued_default_follows_the_pool_and_the_queue() {
    let c = parse("http: {http2: {max_concurrent_streams: 64, max_queued_streams: 3}}").unwrap();
    assert_eq!(c.http.max_concurrent_streams, 64);
    assert_eq!(c.http.max_queued_streams, 3);
    assert!(c.ignored.is_empty(), "{:?}", c.ignored);
    let queued = |yaml: &str| parse(yaml).unwrap().http.max_queued_streams;
    assert_eq!(queued("http: {queue_size: 1024}"), 16);
    assert_eq!(queued("http: {pool: {num_workers: 12}}"), 24);
    // Never so many that one connection fills the queue: at most half of it.
    assert_eq!(queued("http: {queue_size: 8}"), 4);
    assert_eq!(
        queued("http: {pool: {num_workers: 12, max_queue_size: 20}}"),
        10
    );
    assert_eq!(queued("http: {queue_size: 1}"), 1);
    // Set, it is taken as it is.
    assert_eq!(
        queued("http: {queue_size: 8, http2: {max_queued_streams: 100}}"),
        100
    );
    assert_eq!(read::queued_streams(0, 1024), 16);
    assert_eq!(read::queued_streams(usize::MAX, usize::MAX), usize::MAX / 2);
}

#[test]
fn roadrunner_sections_and_keys_are_ignored_and_named_in_one_warning() {
    let yaml = r#"
version: "3"
rpc: {listen: "tcp://127.0.0.1:6001"}
server: {command: "php worker.php"}
http:
  middleware: [gzip]
  uploads: {allow: [".jpg"]}
  http2: {max_concurrent_streams: 128}
  pool:
    debug: false
    supervisor: {watch_tick: 1s}
logs:
  mode: production
"#;
    let c = parse(yaml).unwrap();
    let ignored = [
        "http.middleware",
        "http.pool.supervisor.watch_tick",
        "http.uploads.allow",
        "logs.mode",
        "rpc",
        "server",
    ];
    assert_eq!(c.ignored, ignored);
    // One line for them all; http.pool.debug is acted on, so it is not one of them.
    assert_eq!(
        c.warnings,
        [format!(
            "RoadRunner keys accepted but ignored by rr (nothing reads them; docs/config.md, \
             RoadRunner compatibility): {}",
            ignored.join(", ")
        )]
    );
    assert!(!c.pool.debug);
    let c = parse("rpc: {listen: x}").unwrap();
    assert_eq!(
        c.warnings,
        [
            "RoadRunner key accepted but ignored by rr (nothing reads it; docs/config.md, \
          RoadRunner compatibility): rpc"
        ]
    );
    // Other warnings follow that line.
    let c = parse("version: '2'\nrpc: {}\nlogs: {mode: x}").unwrap();
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(
        c.warnings[0].ends_with("logs.mode, rpc"),
        "{:?}",
        c.warnings
    );
    assert!(c.warnings[1].starts_with("version '2'"), "{:?}", c.warnings);
}

#[test]
fn debug_mode_needs_a_pool_without_template() {
    let c = parse("http: {pool: {num_workers: 2, debug: true}}").unwrap();
    assert!(c.pool.debug);
    assert!(
        c.ignored.is_empty() && c.warnings.is_empty(),
        "{:?}",
        c.warnings
    );
    // Every worker is one-shot: num_workers bounds how many run at once.
    assert_eq!(c.pool.isolate_limit(), 2);
    let err = error("http: {pool: {debug: true}}");
    assert!(err.contains("key 'http.pool.debug'"), "{err}");
    assert!(err.contains("set http.pool.num_workers"), "{err}");
    let err = error("http: {pool: {num_workers: 1, template: true, debug: true}}");
    assert!(err.contains("key 'http.pool.debug'"), "{err}");
    assert!(err.contains("http.pool.template is true"), "{err}");
    assert!(!parse("http: {pool: {debug: off}}").unwrap().pool.debug);
}

#[test]
fn watch_paths_extensions_and_ignore() {
    let dir = scratch("watch");
    fs::create_dir_all(dir.join("src")).unwrap();
    fs::write(dir.join("worker.php"), "<?php").unwrap();
    let yaml = format!(
        "http:\n  pool: {{num_workers: 1}}\n  watch:\n    paths: [{d}/src, {d}/worker.php]\n    \
         extensions: [PHP, .inc]\n    ignore: [vendor, {d}/src/cache/]\n    debounce: 250ms\n",
        d = dir.display()
    );
    let w = parse(&yaml).unwrap().http.watch.unwrap();
    assert_eq!(w.paths, [dir.join("src"), dir.join("worker.php")]);
    assert_eq!(w.extensions, [".php", ".inc"]);
    assert_eq!(w.ignore, [PathBuf::from("vendor"), dir.join("src/cache")]);
    assert_eq!(w.debounce, Duration::from_millis(250));
    // Defaults: .php files, nothing ignored, 100 ms.
    let yaml = format!(
        "http: {{pool: {{num_workers: 1}}, watch: {{paths: {}}}}}",
        dir.display()
    );
    let w = parse(&yaml).unwrap().http.watch.unwrap();
    assert_eq!(w.paths, std::slice::from_ref(&dir));
    assert_eq!(w.extensions, [".php"]);
    assert!(w.ignore.is_empty());
    assert_eq!(w.debounce, Duration::from_millis(100));
    // Off: no section, no paths, or an empty one (an unset variable).
    assert_eq!(Config::default().http.watch, None);
    for yaml in [
        "http: {watch: {}}",
        "http: {watch: {paths: ''}}",
        "http: {watch: {paths: []}}",
    ] {
        assert_eq!(parse(yaml).unwrap().http.watch, None, "{yaml}");
    }
    let err = error("http: {pool: {num_workers: 1}, watch: {paths: /no/such/rr/dir}}");
    assert!(err.contains("key 'http.watch.paths'"), "{err}");
    assert!(err.contains("existing files or directories"), "{err}");
    // Single-process mode has no worker to replace.
    let err = error(&format!("http: {{watch: {{paths: {}}}}}", dir.display()));
    assert!(err.contains("key 'http.watch.paths'"), "{err}");
    assert!(err.contains("set http.pool.num_workers"), "{err}");
    assert!(error("http: {watch: {path: x}}").contains("did you mean 'http.watch.paths'"));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn versions() {
    assert!(parse("version: 3").unwrap().warnings.is_empty());
    assert!(parse("version: '2.7'").unwrap().warnings.is_empty());
    assert!(parse("version: 2.7").unwrap().warnings.is_empty());
    let c = parse("version: '2'").unwrap();
    assert_eq!(
        c.warnings,
        ["version '2' is not one rr knows (3 or 2.7); reading the file as version 3"]
    );
}

#[test]
fn include_is_refused() {
    assert_eq!(
        error("include: [a.yaml]"),
        "rr config /etc/rr.yaml: key 'include' is not supported: rr reads a single file; \
         merge the included files into it"
    );
}

#[test]
fn pool_status_and_metrics_addresses() {
    let c = parse(
        "http: {pool: {num_workers: 4}}\nstatus: {address: 127.0.0.1:2114, unavailable_status_code: 503}\nmetrics: {address: ':2112'}",
    )
    .unwrap();
    assert_eq!(c.pool.num_workers, 4);
    assert_eq!(c.status, Some("127.0.0.1:2114".parse().unwrap()));
    assert_eq!(c.metrics, Some("0.0.0.0:2112".parse().unwrap()));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("status.unavailable_status_code"));
    assert!(parse("status: {adress: 1}").is_err());
}

#[test]
fn velox_is_on_only_with_a_server_url() {
    assert_eq!(parse("velox: ~").unwrap().velox, None);
    for yaml in [
        "velox: {build_timeout: 1m}",
        "velox: {server_url: '', build_timeout: 1m}",
    ] {
        let c = parse(yaml).unwrap();
        assert_eq!(c.velox, None);
        assert!(
            c.warnings.is_empty(),
            "no URL is the usual way to turn velox off"
        );
    }
    let out = scratch("velox_out");
    let c = parse(&format!(
        "velox: {{server_url: 'http://127.0.0.1:9000', artifacts_dir: {}}}",
        out.display()
    ))
    .unwrap();
    let v = c.velox.unwrap();
    assert_eq!(v.server_url, "http://127.0.0.1:9000");
    assert_eq!(v.artifacts_dir, [out]);
    assert_eq!(v.retry, RetryConfig::default());
    // Keys of a section that ends up off are still checked.
    assert!(error("velox: {build_timeout: soon}").contains("'velox.build_timeout'"));
}

#[test]
fn ssl_needs_readable_files() {
    assert_eq!(
        error("http: {ssl: {}}"),
        "rr config /etc/rr.yaml: key 'http.ssl.cert' is missing: expected the path of a PEM \
         certificate file"
    );
    let err = error("http: {ssl: {cert: /nonexistent/rr/cert.pem, key: /nonexistent/key}}");
    assert!(
        err.starts_with(
            "rr config /etc/rr.yaml: key 'http.ssl.cert': invalid value \
             \"/nonexistent/rr/cert.pem\": expected a readable certificate file ("
        ),
        "{err}"
    );
    let tls = tls_files("ssl_readable");
    let yaml = format!("http: {{ssl: {{cert: {}/cert.pem}}}}", tls.display());
    assert!(error(&yaml).contains("key 'http.ssl.key' is missing"));
    let yaml = format!(
        "http: {{ssl: {{cert: {d}/cert.pem, key: {d}/nope.pem}}}}",
        d = tls.display()
    );
    assert!(error(&yaml).contains("key 'http.ssl.key': invalid value"));
    let yaml = format!(
        "http: {{ssl: {{cert: {d}/cert.pem, key: {d}/key.pem}}}}",
        d = tls.display()
    );
    let ssl = parse(&yaml).unwrap().http.ssl.unwrap();
    assert_eq!(ssl.address, SslConfig::DEFAULT_ADDRESS);
    let yaml = format!(
        "http: {{address: 127.0.0.1:8443, ssl: {{cert: {d}/cert.pem, key: {d}/key.pem}}}}",
        d = tls.display()
    );
    assert!(error(&yaml).contains("key 'http.ssl.address': invalid value \"127.0.0.1:8443\""));
    fs::remove_dir_all(tls).unwrap();
}

#[test]
fn overrides_win_in_order() {
    let dir = scratch("overrides_win");
    let file = dir.join("rr.yaml");
    fs::write(&file, "http:\n  address: 127.0.0.1:1111\n  queue_size: 8\n").unwrap();
    let sources = Sources {
        file: Some(file.clone()),
        overrides: vec![
            ini("http.address", "127.0.0.1:2222"),
            Override {
                origin: "option".into(),
                key: "http.address".into(),
                value: json!("127.0.0.1:3333"),
            },
        ],
    };
    let c = Config::load(&sources).unwrap();
    assert_eq!(c.source, Some(file));
    assert_eq!(c.http.address.port(), 3333);
    assert_eq!(c.http.queue_size, 8, "file values not overridden stay");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ini_strings_are_coerced() {
    let sources = Sources {
        file: None,
        overrides: vec![
            ini("http.queue_size", "16"),
            ini("http.access_logs", "on"),
            ini("http.http2.h2c", "0"),
            ini("http.request_timeout", "5s"),
            ini("http.idle_timeout", "30"),
            ini("http.max_request_size", "8"),
            ini("http.uploads.forbid", ".php,.phar"),
            ini("velox.server_url", "https://v"),
            ini("velox.retry.backoff_multiplier", "3"),
            ini("velox.cache.enabled", "yes"),
        ],
    };
    let c = Config::load(&sources).unwrap();
    assert_eq!(c.source, None);
    assert_eq!(c.http.queue_size, 16);
    assert!(c.http.access_logs);
    assert!(!c.http.h2c);
    assert_eq!(c.http.request_timeout, Duration::from_secs(5));
    assert_eq!(c.http.idle_timeout, Duration::from_secs(30));
    assert_eq!(c.http.max_request_size, 8 * 1024 * 1024);
    assert_eq!(c.http.uploads.forbid, [".php", ".phar"]);
    let v = c.velox.unwrap();
    assert_eq!(v.retry.backoff_multiplier, 3.0);
    assert!(v.cache.enabled);
}

#[test]
fn override_errors_name_the_override() {
    let dir = scratch("override_errors");
    let file = dir.join("rr.yaml");
    fs::write(&file, "http:\n  queue_size: 8\n").unwrap();
    let load = |overrides| {
        Config::load(&Sources {
            file: Some(file.clone()),
            overrides,
        })
        .unwrap_err()
        .to_string()
    };
    assert_eq!(
        load(vec![ini("http.address", "abc:99999")]),
        "rr config ini rr.address: key 'http.address': invalid value \"abc:99999\": \
         expected host:port with an IP address or localhost, e.g. 127.0.0.1:8080, \
         0.0.0.0:8080, [::1]:8080 or :8080 (all interfaces)"
    );
    assert_eq!(
        load(vec![ini("http.adress", "1.2.3.4:5")]),
        "rr config ini rr.adress: unknown key 'http.adress' (did you mean 'http.address'?)"
    );
    assert_eq!(
        load(vec![ini("http..x", "1")]),
        "rr config ini rr.x: unknown key 'http..x'"
    );
    // A bad value in the file is still blamed on the file.
    fs::write(&file, "http:\n  queue_size: none\n").unwrap();
    let err = load(vec![ini("http.address", "127.0.0.1:1")]);
    assert!(err.starts_with(&format!(
        "rr config {}: key 'http.queue_size'",
        file.display()
    )));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn override_errors_without_a_file() {
    let err = Config::load(&Sources {
        file: None,
        overrides: vec![ini("http.ssl.address", "127.0.0.1:9443")],
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "rr config ini rr.address: key 'http.ssl.cert' is missing: expected the path of a PEM \
         certificate file"
    );
    assert_eq!(err.key(), Some("http.ssl.cert"));
}

#[test]
fn load_reports_unreadable_files() {
    let err = Config::load(&Sources {
        file: Some("/nonexistent/rr/.rr.yaml".into()),
        overrides: vec![],
    })
    .unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err
        .to_string()
        .starts_with("rr config /nonexistent/rr/.rr.yaml: cannot read: "));
}

#[test]
fn resolve_file_rules() {
    let dir = scratch("resolve_file");
    let explicit = dir.join("explicit.yaml");
    let from_env = dir.join("env.yaml");
    fs::write(&explicit, "").unwrap();
    fs::write(&from_env, "").unwrap();
    // Nothing named and no .rr.yaml: no file, not an error.
    assert_eq!(resolve_file(None, None, &dir).unwrap(), None);
    assert_eq!(resolve_file(Some(""), Some(" "), &dir).unwrap(), None);
    // .rr.yaml in the working directory.
    fs::write(dir.join(".rr.yaml"), "").unwrap();
    assert_eq!(
        resolve_file(None, None, &dir).unwrap(),
        Some(dir.join(".rr.yaml"))
    );
    // RR_CONFIG beats .rr.yaml; explicit beats RR_CONFIG; relative paths are from cwd.
    assert_eq!(
        resolve_file(None, Some("env.yaml"), &dir).unwrap(),
        Some(from_env.clone())
    );
    assert_eq!(
        resolve_file(
            Some(explicit.to_str().unwrap()),
            Some(from_env.to_str().unwrap()),
            &dir
        )
        .unwrap(),
        Some(explicit.clone())
    );
    // A named file that is missing is an error naming it, even with .rr.yaml present.
    let err = resolve_file(Some("missing.yaml"), Some("env.yaml"), &dir).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "rr config: file '{}' (named by the rr config option or ini setting) does not \
             exist or is not a file",
            dir.join("missing.yaml").display()
        )
    );
    let err = resolve_file(None, Some("/nonexistent/rr.yaml"), &dir).unwrap_err();
    assert!(matches!(
        err,
        ConfigError::FileNotFound {
            named_by: "RR_CONFIG",
            ..
        }
    ));
    // A directory is not a config file.
    assert!(resolve_file(Some(dir.to_str().unwrap()), None, &dir).is_err());
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn describe_lists_every_effective_key() {
    let rows = Config::default().describe();
    let get = |key: &str| {
        rows.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no row {key}"))
    };
    assert_eq!(get("source"), "none");
    assert_eq!(get("http.address"), "127.0.0.1:8080");
    assert_eq!(get("http.max_request_size"), "104857600 bytes (100MB)");
    assert_eq!(get("http.max_header_size"), "65536 bytes (64KB)");
    assert_eq!(get("http.uploads.forbid"), ".php, .exe, .bat");
    assert_eq!(get("http.read_header_timeout"), "10s");
    assert_eq!(get("http.idle_timeout"), "1m");
    assert_eq!(get("http.shutdown_timeout"), "30s");
    assert_eq!(get("http.ssl"), "off");
    assert_eq!(get("http.http2.h2c"), "true");
    assert_eq!(get("http.io_driver"), "hybrid");
    assert_eq!(get("http.io_handoff"), "1ms");
    assert_eq!(get("http.queue_size"), "1024");
    assert_eq!(get("http.pool.supervisor.ttl"), "0s");
    assert_eq!(get("logs.level"), "info");
    assert_eq!(get("logs.encoding"), "text");
    assert_eq!(get("logs.output"), "stderr");
    assert_eq!(get("velox"), "off");
    let mut keys: Vec<_> = rows.iter().map(|(k, _)| *k).collect();
    keys.dedup();
    assert_eq!(keys.len(), rows.len(), "keys are unique");

    let c = parse("velox: {server_url: 'https://v', build_timeout: 90s}").unwrap();
    let rows = c.describe();
    let get = |key: &str| rows.iter().find(|(k, _)| *k == key).unwrap().1.clone();
    assert_eq!(get("source"), FILE);
    assert_eq!(get("velox.server_url"), "https://v");
    assert_eq!(get("velox.build_timeout"), "1m30s");
    assert_eq!(get("velox.cache.max_size"), "1073741824 bytes (1GB)");
}

#[test]
fn described_values_parse_back_to_the_same_config() {
    let tls = tls_files("describe_round_trip");
    let yaml = format!(
        "http: {{request_timeout: 1.5s, ssl: {{cert: {d}/cert.pem, key: {d}/key.pem}}}}",
        d = tls.display()
    );
    let original = parse(&yaml).unwrap();
    let overrides: Vec<Override> = original
        .describe()
        .into_iter()
        .filter(|(key, value)| {
            // "(working directory)" describes an unset key.
            // http.static's header maps are described as text, not written back as mappings.
            key.contains('.')
                && !key.starts_with("http.static")
                && !key.starts_with("http.sendfile")
                && !key.ends_with("_size")
                && !key.ends_with("max_worker_memory")
                && *key != "http.watch"
                && !value.starts_with('(')
        })
        .map(|(key, value)| Override {
            origin: "describe".into(),
            key: key.into(),
            value: json!(value),
        })
        .collect();
    let again = Config::load(&Sources {
        file: None,
        overrides,
    })
    .unwrap();
    assert_eq!(again.http, original.http);
    assert_eq!(again.logs, original.logs);
    assert_eq!(again.pool, original.pool);
    fs::remove_dir_all(tls).unwrap();
}

#[test]
fn documented_example_is_valid() {
    let doc = include_str!("../../docs/config.md");
    let example = doc
        .split("## Example `.rr.yaml`")
        .nth(1)
        .and_then(|rest| rest.split("```yaml\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("docs/config.md has an example");
    let tls = tls_files("documented_example");
    // The example's paths, which must exist when the config is loaded.
    let example = example
        .replace("/etc/rr/tls", tls.to_str().unwrap())
        .replace("/var/tmp/uploads", tls.to_str().unwrap());
    let c = parse(&example).unwrap();
    assert_eq!(c.http.max_request_size, 20 * 1024 * 1024);
    assert!(c.http.ssl.is_some());
    assert_eq!(c.ignored, ["server"]);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    fs::remove_dir_all(tls).unwrap();
}

#[test]
fn velox_request_timeout_is_accepted_with_a_warning() {
    let c = parse("velox: {server_url: 'http://v', request_timeout: 180s}").unwrap();
    assert_eq!(c.velox.unwrap().build_timeout, Duration::from_secs(900));
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0].starts_with("key 'velox.request_timeout' is no longer used"),
        "{:?}",
        c.warnings
    );
    let error = parse("velox: {server_url: 'http://v', request_timeout: -1s}").unwrap_err();
    assert!(
        error.to_string().contains("velox.request_timeout"),
        "{error}"
    );
}

#[test]
fn documented_keys_match_describe() {
    let doc = include_str!("../../docs/config.md");
    let tls = tls_files("documented_keys");
    let yaml = format!(
        "http: {{ssl: {{cert: {d}/cert.pem, key: {d}/key.pem}}, static: {{dir: {d}}}, \
         pool: {{num_workers: 1}}, watch: {{paths: {d}}}}}\n\
         velox: {{server_url: 'http://v'}}",
        d = tls.display()
    );
    for (key, _) in parse(&yaml).unwrap().describe() {
        if key != "source" {
            assert!(
                doc.contains(&format!("| `{key}` |")),
                "{key} is not documented"
            );
        }
    }
    fs::remove_dir_all(tls).unwrap();
}

#[test]
fn script_location_for_superglobal_mode() {
    let c = Config::default();
    assert_eq!(c.http.script.document_root, None);
    assert_eq!(c.http.script.script_name, "/index.php");
    let dir = scratch("script_location");
    let yaml = format!(
        "http:\n  document_root: {}\n  script_name: /app.php\n",
        dir.display()
    );
    let c = parse(&yaml).unwrap();
    assert_eq!(c.http.script.document_root.as_deref(), Some(dir.as_path()));
    assert_eq!(c.http.script.script_name, "/app.php");
    let err = error("http:\n  script_name: app.php\n");
    assert!(err.contains("http.script_name"), "{err}");
    assert!(err.contains("starting with '/'"), "{err}");
    let err = error("http:\n  document_root: /no/such/dir/rr\n");
    assert!(err.contains("http.document_root"), "{err}");
    assert!(err.contains("an existing directory"), "{err}");
}

#[test]
fn static_files_section() {
    assert_eq!(Config::default().http.static_files, None);
    let dir = scratch("static_files");
    let yaml = format!(
        "http:\n  static:\n    dir: {}\n    forbid: [\".PHP\", htaccess, \"\"]\n    \
         allow: [\".css\", \".php\", JS]\n    calculate_etag: true\n    weak: on\n    \
         response: {{Cache-Control: \"max-age=60\", X-Static: 1}}\n    \
         cache_control: {{\".css, .js\": \"public, max-age=31536000\", woff2: \"max-age=604800\"}}\n    \
         prefixes: [/assets/]\n    request: {{input: x}}\n",
        dir.display()
    );
    let c = parse(&yaml).unwrap();
    let s = c.http.static_files.unwrap();
    assert_eq!(s.dir, dir);
    assert_eq!(s.forbid, [".php", ".htaccess"]);
    // In both lists means forbidden.
    assert_eq!(s.allow, [".css", ".js"]);
    assert!(s.calculate_etag && s.weak);
    assert_eq!(s.response["cache-control"], "max-age=60");
    assert_eq!(s.response["x-static"], "1");
    let by_ext: Vec<(&str, &str)> = s
        .cache_control
        .iter()
        .map(|(e, v)| (e.as_str(), v.to_str().unwrap()))
        .collect();
    assert_eq!(
        by_ext,
        [
            (".css", "public, max-age=31536000"),
            (".js", "public, max-age=31536000"),
            (".woff2", "max-age=604800")
        ]
    );
    assert_eq!(s.prefixes, ["/assets/"]);
    assert_eq!(c.ignored, ["http.static.request"]);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);

    let c = parse(&format!("http:\n  static: {{dir: {}}}\n", dir.display())).unwrap();
    let s = c.http.static_files.unwrap();
    assert_eq!(s.forbid, StaticConfig::DEFAULT_FORBID);
    assert!(s.allow.is_empty() && !s.calculate_etag && !s.weak && s.prefixes.is_empty());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let c = parse(&format!(
        "http:\n  static: {{dir: {}, forbid: [.htaccess]}}\n",
        dir.display()
    ))
    .unwrap();
    assert!(c.warnings[0].contains(".php files"), "{:?}", c.warnings);

    // A relative dir is made absolute against the working directory.
    let c = parse("http:\n  static: {dir: .}\n").unwrap();
    assert!(c.http.static_files.unwrap().dir.is_absolute());
}

#[test]
fn static_files_errors_name_the_key_and_value() {
    let dir = scratch("static_files_errors");
    let file = dir.join("file.css");
    fs::write(&file, "x").unwrap();
    let d = dir.display();
    let cases = [
        (
            "http:\n  static: {forbid: [.php]}\n".to_owned(),
            "http.static.dir",
            "is missing",
        ),
        (
            "http:\n  static: {dir: /no/such/rr-dir}\n".to_owned(),
            "http.static.dir",
            "/no/such/rr-dir",
        ),
        (
            format!("http:\n  static: {{dir: {}}}\n", file.display()),
            "http.static.dir",
            "not a directory",
        ),
        (
            format!("http:\n  static: {{dir: {d}, forbid: 5}}\n"),
            "http.static.forbid",
            "5",
        ),
        (
            format!("http:\n  static: {{dir: {d}, allow: {{a: b}}}}\n"),
            "http.static.allow",
            "a list of strings",
        ),
        (
            format!("http:\n  static: {{dir: {d}, calculate_etag: maybe}}\n"),
            "http.static.calculate_etag",
            "maybe",
        ),
        (
            format!("http:\n  static: {{dir: {d}, response: [x]}}\n"),
            "http.static.response",
            "a mapping",
        ),
        (
            format!("http:\n  static: {{dir: {d}, response: {{\"bad name\": x}}}}\n"),
            "http.static.response.bad name",
            "header name",
        ),
        (
            format!("http:\n  static: {{dir: {d}, cache_control: {{.css: \"a\\x01\"}}}}\n"),
            "http.static.cache_control..css",
            "header value",
        ),
        (
            format!("http:\n  static: {{dir: {d}, prefixes: [assets/]}}\n"),
            "http.static.prefixes",
            "assets/",
        ),
        (
            format!("http:\n  static: {{dir: {d}, wek: true}}\n"),
            "http.static.wek",
            "did you mean 'http.static.weak'",
        ),
        (
            "http:\n  static: yes\n".to_owned(),
            "http.static",
            "a mapping",
        ),
    ];
    for (yaml, key, detail) in cases {
        let err = error(&yaml);
        assert!(err.starts_with("rr config /etc/rr.yaml"), "{err}");
        assert!(err.contains(&format!("'{key}'")), "{key}: {err}");
        assert!(err.contains(detail), "{detail}: {err}");
    }
}

#[test]
fn pool_template_and_isolated_paths() {
    let c = parse(
        "http: {pool: {num_workers: 2, template: true, isolate: [/admin, /setup/], isolate_workers: 3}}",
    )
    .unwrap();
    let p = &c.pool;
    assert!(p.template);
    assert_eq!(p.isolate, ["/admin", "/setup/"]);
    assert_eq!(p.isolate_limit(), 3);
    for (path, isolated) in [
        ("/admin", true),
        ("/admin/", true),
        ("/admin/users", true),
        ("/administrator", false),
        ("/setup", false),
        ("/setup/", true),
        ("/setup/step2", true),
        ("/", false),
        ("/x/admin", false),
    ] {
        assert_eq!(p.is_isolated(path), isolated, "{path}");
    }
    let all = parse("http: {pool: {num_workers: 2, template: true, isolate: [/]}}").unwrap();
    assert!(all.pool.is_isolated("/anything") && all.pool.is_isolated("/"));
    assert_eq!(all.pool.isolate_limit(), 2, "defaults to num_workers");
}

#[test]
fn pool_template_errors_name_the_key_and_value() {
    for (yaml, expected) in [
        (
            "http: {pool: {num_workers: 2, isolate: [/admin]}}",
            "key 'http.pool.isolate': invalid value [\"/admin\"]: expected no isolated paths unless http.pool.template is true",
        ),
        (
            "http: {pool: {num_workers: 2, template: true, isolate: [/ok, admin]}}",
            "key 'http.pool.isolate': invalid value [\"/ok\",\"admin\"]: expected URL path prefixes starting with '/'",
        ),
        (
            "http: {pool: {template: true}}",
            "key 'http.pool.template': invalid value true: expected false while http.pool.num_workers is 0",
        ),
        (
            "http: {pool: {num_workers: 1, template: maybe}}",
            "key 'http.pool.template': invalid value \"maybe\": expected true or false",
        ),
    ] {
        let err = error(yaml);
        assert!(
            err.starts_with(&format!("rr config /etc/rr.yaml: {expected}")),
            "{yaml}\n  got: {err}\n want: {expected}"
        );
    }
    assert!(
        error("http: {pool: {num_workers: 2, template: true, isolate: [/ok, admin]}}")
            .contains("\"admin\" is not one")
    );
}

#[test]
fn pool_send_ahead() {
    assert_eq!(
        parse("http: {pool: {num_workers: 2}}")
            .unwrap()
            .pool
            .send_ahead,
        16
    );
    for n in [0, 1, 64] {
        let yaml = format!("http: {{pool: {{num_workers: 2, send_ahead: {n}}}}}");
        assert_eq!(parse(&yaml).unwrap().pool.send_ahead, n);
    }
    for (value, shown) in [("65", "65"), ("-1", "-1"), ("lots", "\"lots\"")] {
        let yaml = format!("http: {{pool: {{num_workers: 2, send_ahead: {value}}}}}");
        let err = error(&yaml);
        assert!(
            err.starts_with(&format!(
                "rr config /etc/rr.yaml: key 'http.pool.send_ahead': invalid value {shown}: expected"
            )),
            "{err}"
        );
    }
}

#[test]
fn pool_worker_and_master_scheduling() {
    use super::Scheduling;
    let pool = |yaml: &str| parse(yaml).unwrap().pool;
    assert_eq!(
        pool("http: {pool: {num_workers: 2}}").worker_scheduling,
        Scheduling::Batch
    );
    assert_eq!(
        pool("http: {pool: {num_workers: 2, worker_scheduling: normal}}").worker_scheduling,
        Scheduling::Normal
    );
    assert_eq!(
        pool("http: {pool: {num_workers: 2}}").master_scheduling,
        Scheduling::Batch
    );
    assert_eq!(
        pool("http: {pool: {num_workers: 2, master_scheduling: normal}}").master_scheduling,
        Scheduling::Normal
    );
    let err = error("http: {pool: {num_workers: 2, master_scheduling: idle}}");
    assert!(
        err.starts_with(
            "rr config /etc/rr.yaml: key 'http.pool.master_scheduling': invalid value \"idle\": expected"
        ),
        "{err}"
    );
    let err = error("http: {pool: {num_workers: 2, worker_scheduling: fifo}}");
    assert!(
        err.starts_with(
            "rr config /etc/rr.yaml: key 'http.pool.worker_scheduling': invalid value \"fifo\": expected"
        ),
        "{err}"
    );
}

#[test]
fn trusted_subnets_are_read_and_bad_ones_named() {
    let config =
        parse("http:\n  trusted_subnets: [\"10.0.0.0/8\", \"::1\", \"fd00::/8\"]\n").unwrap();
    let subnets: Vec<String> = config
        .http
        .trusted_subnets
        .subnets()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(subnets, ["10.0.0.0/8", "::1/128", "fd00::/8"]);
    assert!(config
        .warnings
        .iter()
        .all(|w| !w.contains("trusted_subnets")));
    assert!(Config::default().http.trusted_subnets.is_empty());
    let message = error("http:\n  trusted_subnets: [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n");
    assert!(message.contains("http.trusted_subnets"), "{message}");
    assert!(message.contains("10.0.0.0/40"), "{message}");
}

#[test]
fn trusted_headers_default_to_the_address_and_scheme_and_bad_names_are_named() {
    let headers = Config::default().http.trusted_subnets.headers();
    assert_eq!(headers.names(), ["x-forwarded-for", "x-forwarded-proto"]);
    let config = parse("http:\n  trusted_headers: [Forwarded, x-real-ip]\n").unwrap();
    assert_eq!(
        config.http.trusted_subnets.headers().names(),
        ["forwarded", "x-real-ip"]
    );
    let message = error("http:\n  trusted_headers: [x-forwarded-fro]\n");
    assert!(message.contains("http.trusted_headers"), "{message}");
    assert!(message.contains("x-forwarded-fro"), "{message}");
}

#[test]
fn request_ids_come_with_the_access_log_and_are_configurable() {
    assert!(Config::default().http.request_id.is_none());
    assert!(parse("http:\n  address: 127.0.0.1:1\n")
        .unwrap()
        .http
        .request_id
        .is_none());
    let ids = parse("http:\n  access_logs: true\n")
        .unwrap()
        .http
        .request_id
        .unwrap();
    assert_eq!(ids.header, "x-request-id");
    assert!(ids.accept && !ids.response);
    assert!(
        parse("http:\n  access_logs: true\n  request_id:\n    enabled: false\n")
            .unwrap()
            .http
            .request_id
            .is_none()
    );
    let config = parse(
        "http:\n  request_id:\n    enabled: true\n    header: X-Correlation-Id\n    accept: false\n    response: true\n",
    )
    .unwrap();
    let ids = config.http.request_id.unwrap();
    assert_eq!(ids.header, "x-correlation-id");
    assert!(!ids.accept && ids.response);
    assert!(parse("http:\n  request_id:\n    enabled: false\n")
        .unwrap()
        .http
        .request_id
        .is_none());
    let message = error("http:\n  request_id:\n    header: \"bad header\"\n");
    assert!(message.contains("http.request_id.header"), "{message}");
}

#[test]
fn sendfile_section() {
    assert_eq!(Config::default().http.sendfile, None);
    let dir = scratch("sendfile_section");
    fs::create_dir_all(dir.join("private")).unwrap();
    std::os::unix::fs::symlink(dir.join("private"), dir.join("alias")).unwrap();
    let c = parse(&format!(
        "http:\n  sendfile:\n    allowed_dirs: [{d}/alias]\n    accel_map: {{\"/protected\": {d}/private}}\n",
        d = dir.display()
    ))
    .unwrap();
    let s = c.http.sendfile.unwrap();
    // As given: their links are resolved at each answer (a deploy's swapped link is followed).
    assert_eq!(s.allowed_dirs, vec![dir.join("alias")], "not resolved");
    assert_eq!(s.accel_map.len(), 1);
    assert_eq!(s.accel_map[0].prefix, "/protected/");
    assert_eq!(s.accel_map[0].dir, dir.join("private"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let empty = parse("http:\n  sendfile: {}\n").unwrap();
    assert!(empty.http.sendfile.is_some());
    assert!(
        empty.warnings[0].contains("refused"),
        "{:?}",
        empty.warnings
    );

    let d = dir.display();
    for (yaml, key, detail) in [
        (
            "http:\n  sendfile: {allowed_dirs: [/no/such/rr-dir]}\n".to_owned(),
            "http.sendfile.allowed_dirs[0]",
            "/no/such/rr-dir",
        ),
        (
            format!("http:\n  sendfile: {{accel_map: {{protected/: {d}}}}}\n"),
            "http.sendfile.accel_map.protected/",
            "starting with '/'",
        ),
        (
            "http:\n  sendfile: {accel_map: {/p/: /no/such/rr-dir}}\n".to_owned(),
            "http.sendfile.accel_map./p/",
            "an existing directory",
        ),
        (
            format!("http:\n  sendfile: {{accel_map: [{d}]}}\n"),
            "http.sendfile.accel_map",
            "a mapping",
        ),
        (
            "http:\n  sendfile: {allowed: [/tmp]}\n".to_owned(),
            "http.sendfile.allowed",
            "unknown key",
        ),
    ] {
        let err = error(&yaml);
        assert!(err.contains(&format!("'{key}'")), "{key}: {err}");
        assert!(err.contains(detail), "{detail}: {err}");
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn static_precompressed_is_a_list_of_encodings() {
    use crate::compress::Encoding;
    let dir = scratch("static_precompressed");
    let d = dir.display();
    let c = parse(&format!("http:\n  static: {{dir: {d}}}\n")).unwrap();
    assert!(
        c.http.static_files.unwrap().precompressed.is_empty(),
        "off by default"
    );
    let c = parse(&format!(
        "http:\n  static: {{dir: {d}, precompressed: [gzip, br, gzip]}}\n"
    ))
    .unwrap();
    assert_eq!(
        c.http.static_files.unwrap().precompressed,
        vec![Encoding::Gzip, Encoding::Br]
    );
    let err = error(&format!(
        "http:\n  static: {{dir: {d}, precompressed: [deflate]}}\n"
    ));
    assert!(err.contains("'http.static.precompressed'"), "{err}");
    assert!(err.contains("\"deflate\" is not one"), "{err}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn two_listeners_on_one_port_are_refused() {
    let e = error("http: {address: 127.0.0.1:9000}\nstatus: {address: 127.0.0.1:9000}");
    assert!(
        e.contains("key 'status.address': invalid value \"127.0.0.1:9000\"")
            && e.contains("http.address is 127.0.0.1:9000"),
        "{e}"
    );
    let e = error("http: {address: 0.0.0.0:9000}\nmetrics: {address: 127.0.0.1:9000}");
    assert!(e.contains("key 'metrics.address'"), "{e}");
    let e = error("http: {address: \"[::]:9000\"}\nmetrics: {address: 127.0.0.1:9000}");
    assert!(e.contains("key 'metrics.address'"), "{e}");
    let e = error("status: {address: 127.0.0.1:9000}\nmetrics: {address: 127.0.0.1:9000}");
    assert!(e.contains("status.address is 127.0.0.1:9000"), "{e}");
    // Port 0, other ports, other addresses of one family, or the other family are fine.
    for ok in [
        "http: {address: 127.0.0.1:0}\nstatus: {address: 127.0.0.1:0}\nmetrics: {address: 127.0.0.1:0}",
        "http: {address: 127.0.0.1:9000}\nstatus: {address: 127.0.0.1:9001}",
        "http: {address: 127.0.0.1:9000}\nstatus: {address: 127.0.0.2:9000}",
        "http: {address: \"[::1]:9000\"}\nstatus: {address: 0.0.0.0:9000}",
    ] {
        assert!(parse(ok).is_ok(), "{ok}");
    }
}

/// Velox's directories are checked at start when velox is on, not at the first build (whose
/// artifact would be refused minutes later, or never cached): each `artifacts_dir` an existing
/// directory, `cache.dir` (with the cache on) a directory rr can write to or create. Relative
/// ones are made absolute, so a script's `chdir()` cannot move them. Off, they are only paths.
#[test]
fn velox_directories_are_checked_when_velox_is_on() {
    let dir = scratch("velox_dirs");
    let file = dir.join("a-file");
    fs::write(&file, "").unwrap();
    let on = |rest: &str| format!("velox: {{server_url: 'http://127.0.0.1:9000', {rest}}}");
    let err = error(&on("artifacts_dir: /no/such/dir/rr"));
    assert!(
        err.contains("key 'velox.artifacts_dir': invalid value \"/no/such/dir/rr\"")
            && err.contains("an existing directory"),
        "{err}"
    );
    let err = error(&on(&format!(
        "artifacts_dir: [{}, {}]",
        dir.display(),
        file.display()
    )));
    assert!(
        err.contains("key 'velox.artifacts_dir[1]'")
            && err.contains(&file.display().to_string())
            && err.contains("not a directory"),
        "{err}"
    );
    let cache = |dir: &Path| on(&format!("cache: {{enabled: true, dir: {}}}", dir.display()));
    let err = error(&cache(&file));
    assert!(
        err.contains("key 'velox.cache.dir'") && err.contains("this is not a directory"),
        "{err}"
    );
    let err = error(&cache(&file.join("below")));
    assert!(
        err.contains("key 'velox.cache.dir'") && err.contains("Not a directory"),
        "{err}"
    );
    // A directory to be created below an existing one is fine.
    let c = parse(&cache(&dir.join("new/cache"))).unwrap();
    assert_eq!(c.velox.unwrap().cache.dir, dir.join("new/cache"));
    // Off (no URL, or the cache off), the same values are only paths.
    assert!(parse("velox: {artifacts_dir: /no/such/dir/rr}").is_ok());
    assert!(parse(&on(&format!(
        "cache: {{enabled: false, dir: {}}}",
        file.display()
    )))
    .is_ok());
    // Relative: made absolute against the working directory now.
    let c = parse(&on(
        "artifacts_dir: ., cache: {enabled: true, dir: rr-cache}",
    ))
    .unwrap();
    let cwd = std::env::current_dir().unwrap();
    let v = c.velox.unwrap();
    assert_eq!(v.artifacts_dir, [std::path::absolute(".").unwrap()]);
    assert_eq!(v.cache.dir, cwd.join("rr-cache"));
}

/// A relative `logs.output` is made absolute when the configuration is loaded: SIGUSR1 opens
/// the file again by name, after a script's `chdir()` perhaps.
#[test]
fn a_relative_log_file_is_made_absolute() {
    let c = parse("logs: {output: rr-config-test-relative.log}").unwrap();
    assert_eq!(
        c.logs.output,
        LogOutput::File(
            std::env::current_dir()
                .unwrap()
                .join("rr-config-test-relative.log")
        )
    );
}
