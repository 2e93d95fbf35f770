//! From the value tree to [`Config`]: each section read key by key over its defaults. Keys that
//! RoadRunner knows but rr does not use are accepted with a warning, so an existing `.rr.yaml`
//! keeps working; anything else unknown is an error.

use std::net::SocketAddr;

use serde_json::Value;

use super::error::ConfigError;
use super::field::Field;
use super::tree::{Notes, Origins, Table};
use super::units::{format_duration, KB, MB};
use super::{
    CacheConfig, Config, HttpConfig, IoDriver, LogEncoding, LogLevel, LogOutput, LogsConfig,
    PoolConfig, RetryConfig, Scheduling, ScriptConfig, SslConfig, StaticConfig, SupervisorConfig,
    TemplateConnections, UploadsConfig, VeloxConfig, WatchConfig,
};
use crate::compress::{CompressionConfig, Encoding};
use crate::request::id::RequestIdConfig;
use crate::stream::sendfile::{AccelMapping, SendfileConfig};

/// Top-level sections of RoadRunner (and its plugins) that rr has no use for.
const ROADRUNNER_SECTIONS: &[&str] = &[
    "amqp",
    "app_logger",
    "beanstalk",
    "boltdb",
    "broadcast",
    "centrifuge",
    "endure",
    "fileserver",
    "grpc",
    "gzip",
    "headers",
    "health",
    "informer",
    "jobs",
    "kafka",
    "kv",
    "lock",
    "memcached",
    "memory",
    "nats",
    "new_relic",
    "otel",
    "prometheus",
    "redis",
    "reload",
    "resetter",
    "rpc",
    "sendremotefile",
    "server",
    "service",
    "sqs",
    "static",
    "tcp",
    "temporal",
    "websockets",
];

const ROADRUNNER_HTTP_KEYS: &[&str] = &[
    "cache",
    "fcgi",
    "headers",
    "internal_error_code",
    "middleware",
    "new_relic",
    "raw_body",
];

/// `version` values that read the same; others only earn a warning.
/// The most requests `http.pool.send_ahead` may hand to one busy worker.
const MAX_SEND_AHEAD: u32 = 64;
const KNOWN_VERSIONS: &[&str] = &["3", "2.7"];

pub(crate) fn config(tree: Value, origins: &Origins) -> Result<Config, ConfigError> {
    let mut notes = Notes::default();
    let mut root = Table::root(origins, tree)?;
    if let Some(field) = root.field("version") {
        let version = field.string()?;
        if !KNOWN_VERSIONS.contains(&version.trim()) {
            notes.warn(format!(
                "version '{version}' is not one rr knows (3 or 2.7); reading the file as version 3"
            ));
        }
    }
    if let Some(field) = root.field("include") {
        // Ignoring it would silently drop whatever the included files configure.
        return Err(field.unsupported("rr reads a single file; merge the included files into it"));
    }
    let (http, pool) = http(root.table("http")?, &mut notes)?;
    let logs = logs(root.table("logs")?, &mut notes)?;
    let velox = velox(root.table("velox")?, &mut notes)?;
    let status = address_section(
        root.table("status")?,
        &["unavailable_status_code"],
        &mut notes,
    )?;
    let metrics = address_section(root.table("metrics")?, &["collect"], &mut notes)?;
    root.finish(ROADRUNNER_SECTIONS, &mut notes)?;
    let listeners = [
        ("http.address", Some(http.address)),
        ("http.ssl.address", http.ssl.as_ref().map(|ssl| ssl.address)),
        ("status.address", status),
        ("metrics.address", metrics),
    ];
    distinct_listeners(&listeners, origins)?;
    let (warnings, ignored) = notes.into_warnings();
    Ok(Config {
        source: None,
        http,
        logs,
        velox,
        pool,
        status,
        metrics,
        warnings,
        ignored,
    })
}

/// `http.http2.max_queued_streams` when not set: 16 (a browser's page rarely asks PHP for
/// more at once), or twice the pool's workers when more (one client keeps every worker busy,
/// with the next request ready for each), but at most half the dispatch queue (`queue`), so
/// that one connection never fills it.
pub(crate) fn queued_streams(workers: usize, queue: usize) -> usize {
    workers.saturating_mul(2).max(16).min(queue / 2).max(1)
}

/// Two of rr's listeners on the same port of overlapping addresses: the second bind would
/// fail with "Address already in use", which sends the operator looking for another process.
fn distinct_listeners(
    listeners: &[(&str, Option<SocketAddr>)],
    origins: &Origins,
) -> Result<(), ConfigError> {
    let overlap = |a: SocketAddr, b: SocketAddr| {
        let (a, b) = (a.ip(), b.ip());
        // [::] takes IPv4 too (dual stack, Linux's default).
        a == b
            || (a.is_unspecified() && (a.is_ipv6() || b.is_ipv4()))
            || (b.is_unspecified() && (b.is_ipv6() || a.is_ipv4()))
    };
    for (i, (key, addr)) in listeners.iter().enumerate() {
        let Some(addr) = addr else { continue };
        let earlier = listeners[..i].iter().find_map(|(other, o)| {
            o.filter(|o| addr.port() != 0 && o.port() == addr.port() && overlap(*addr, *o))
                .map(|o| (other, o))
        });
        if let Some((other, o)) = earlier {
            return Err(ConfigError::InvalidValue {
                origin: origins.of(key),
                key: (*key).to_owned(),
                value: format!("\"{addr}\""),
                expected: format!(
                    "an address no other rr listener uses ({other} is {o}: give each its own port)"
                ),
            });
        }
    }
    Ok(())
}

/// `status` and `metrics` (RoadRunner's plugins): on when `address` is set.
fn address_section(
    mut t: Table<'_>,
    roadrunner: &[&str],
    notes: &mut Notes,
) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let address = match t.field("address") {
        Some(field) => Some(Field::address(&field)?),
        None => None,
    };
    t.finish(roadrunner, notes)?;
    Ok(address)
}

fn http(mut t: Table<'_>, notes: &mut Notes) -> Result<(HttpConfig, PoolConfig), ConfigError> {
    let d = HttpConfig::default();
    let address = t.get("address", d.address, Field::address)?;
    let max_request_size = t.get("max_request_size", d.max_request_size, |f| {
        f.size(MB, 1, u64::MAX)
    })?;
    let max_header_size = t.get("max_header_size", d.max_header_size, |f| {
        // Under 8 KiB hyper refuses the buffer; HTTP/2 carries the limit in a u32.
        let bytes = f.size(1, 8 * KB, u64::from(u32::MAX))?;
        usize::try_from(bytes).map_err(|_| f.invalid("a smaller size"))
    })?;
    let uploads = uploads(t.table("uploads")?, notes)?;
    let read_header_timeout = t.get(
        "read_header_timeout",
        d.read_header_timeout,
        Field::positive_duration,
    )?;
    let idle_timeout = t.get("idle_timeout", d.idle_timeout, Field::positive_duration)?;
    let request_timeout = t.get(
        "request_timeout",
        d.request_timeout,
        Field::positive_duration,
    )?;
    let shutdown_timeout = t.get("shutdown_timeout", d.shutdown_timeout, Field::duration)?;
    let body_buffer_size = t.get("body_buffer_size", d.body_buffer_size, |f| {
        let bytes = f.size(1, 0, 1 << 30)?;
        Ok(bytes as usize)
    })?;
    let body_timeout = t.get("body_timeout", d.body_timeout, Field::positive_duration)?;
    let send_timeout = t.get("send_timeout", d.send_timeout, Field::positive_duration)?;
    let output_buffer_size = t.get("output_buffer_size", d.output_buffer_size, |f| {
        let bytes = f.size(1, 0, 1 << 30)?;
        Ok(bytes as usize)
    })?;
    let response_buffer_size = t.get("response_buffer_size", d.response_buffer_size, |f| {
        let bytes = f.size(1, 0, 1 << 30)?;
        Ok(bytes as usize)
    })?;
    let max_response_spool = t.get("max_response_spool_size", d.max_response_spool, |f| {
        f.size(MB, 0, u64::MAX)
    })?;
    let ssl_table = t.table("ssl")?;
    let ssl = match ssl_table.is_present() {
        true => Some(ssl(ssl_table, notes)?),
        false => None,
    };
    let mut http2 = t.table("http2")?;
    let h2c = http2.get("h2c", d.h2c, Field::bool)?;
    let max_concurrent_streams =
        http2.get("max_concurrent_streams", d.max_concurrent_streams, |f| {
            f.int(1)
        })?;
    // Its default depends on the pool, read below.
    let max_queued_streams = http2.get("max_queued_streams", None, |f| f.int(1).map(Some))?;
    http2.finish(&[], notes)?;
    let access_logs = t.get("access_logs", d.access_logs, Field::bool)?;
    let io_driver = t.get("io_driver", d.io_driver, |f| {
        f.choice(&[
            ("hybrid", IoDriver::Hybrid),
            ("inline", IoDriver::Inline),
            ("thread", IoDriver::Thread),
        ])
    })?;
    let io_handoff = t.get("io_handoff", d.io_handoff, Field::duration)?;
    let queue_size = t.get("queue_size", d.queue_size, |f| f.int(1))?;
    let max_connections = t.get("max_connections", d.max_connections, |f| f.int(0))?;
    let document_root = t.get("document_root", None, |f| f.directory().map(Some))?;
    let script_name = t.get("script_name", d.script.script_name, |f| {
        let name = f.string()?;
        match name.starts_with('/') && !name.contains(['?', '#', '\0']) {
            true => Ok(name),
            false => Err(f.invalid("a URL path starting with '/', e.g. /index.php")),
        }
    })?;
    let static_table = t.table("static")?;
    let static_files = match static_table.is_present() {
        true => Some(static_files(static_table, notes)?),
        false => None,
    };
    let trusted_subnets = t.get(
        "trusted_subnets",
        d.trusted_subnets.subnets().to_vec(),
        |f| {
            let mut subnets = Vec::new();
            for text in f.strings()? {
                subnets.push(text.parse().map_err(|e| {
                    f.invalid(format!(
                        "a list of subnets like 10.0.0.0/8 or fd00::/8 ({e}: \"{text}\")"
                    ))
                })?);
            }
            Ok(subnets)
        },
    )?;
    let trusted_headers = t.get("trusted_headers", d.trusted_subnets.headers(), |f| {
        use crate::request::forwarded::TrustedHeaders;
        let mut believed = TrustedHeaders::NONE;
        for text in f.strings()? {
            if !believed.add(&text) {
                return Err(f.invalid(format!(
                    "a list of the forwarding headers your proxies write: {} (not \"{text}\")",
                    TrustedHeaders::NAMES.join(", ")
                )));
            }
        }
        Ok(believed)
    })?;
    let trusted_subnets =
        crate::request::forwarded::TrustedProxies::new(trusted_subnets, trusted_headers);
    let sendfile_table = t.table("sendfile")?;
    let sendfile = match sendfile_table.is_present() {
        true => Some(sendfile(sendfile_table, notes)?),
        false => None,
    };
    let request_id = request_id(t.table("request_id")?, access_logs, notes)?;
    let compression = compression(t.table("compression")?, notes)?;
    let watch = watch(t.table("watch")?, notes)?;
    let pool = pool(t.table("pool")?, notes)?;
    if let Some(watch) = &watch {
        if pool.num_workers == 0 {
            // One process cannot boot the new code beside the old: a broken edit would end
            // the server instead of leaving the old code serving (docs/pool.md).
            let paths = watch.paths.iter().map(|p| p.display().to_string());
            return Err(t.invalid(
                "watch.paths",
                format!("{:?}", paths.collect::<Vec<_>>()),
                "no watched paths while http.pool.num_workers is 0: the watcher replaces pool \
                 workers, so set http.pool.num_workers (1 is enough for development)"
                    .to_owned(),
            ));
        }
    }
    t.finish(ROADRUNNER_HTTP_KEYS, notes)?;
    let queue = match pool.max_queue_size {
        0 => queue_size,
        n => n,
    };
    let max_queued_streams =
        max_queued_streams.unwrap_or_else(|| queued_streams(pool.num_workers, queue));
    let http = HttpConfig {
        address,
        max_request_size,
        max_header_size,
        uploads,
        read_header_timeout,
        idle_timeout,
        request_timeout,
        body_buffer_size,
        body_timeout,
        send_timeout,
        output_buffer_size,
        response_buffer_size,
        max_response_spool,
        shutdown_timeout,
        ssl,
        h2c,
        max_concurrent_streams,
        max_queued_streams,
        access_logs,
        io_driver,
        io_handoff,
        queue_size,
        max_connections,
        script: ScriptConfig {
            document_root,
            script_name,
        },
        static_files,
        sendfile,
        trusted_subnets,
        request_id,
        compression,
        watch,
    };
    Ok((http, pool))
}

/// `http.watch` (development reload): off when the section or its `paths` are absent or
/// empty (`paths: ${WATCH}` with the variable unset); every path must exist.
fn watch(mut t: Table<'_>, notes: &mut Notes) -> Result<Option<WatchConfig>, ConfigError> {
    let paths = t.get("paths", Vec::new(), |f| {
        let mut paths = Vec::new();
        for text in f.strings()? {
            let path = std::path::PathBuf::from(&text);
            match std::fs::metadata(&path) {
                Ok(_) => paths.push(std::path::absolute(&path).unwrap_or(path)),
                Err(e) => {
                    return Err(
                        f.invalid(format!("existing files or directories (\"{text}\": {e})"))
                    )
                }
            }
        }
        Ok(paths)
    })?;
    let extensions = t.get(
        "extensions",
        WatchConfig::DEFAULT_EXTENSIONS.map(String::from).to_vec(),
        |f| Ok(f.strings()?.iter().map(|ext| extension(ext)).collect()),
    )?;
    let ignore = t.get("ignore", Vec::new(), |f| {
        Ok(f.strings()?
            .into_iter()
            .map(|text| {
                let path = std::path::PathBuf::from(text.trim_end_matches('/'));
                match text.contains('/') {
                    true => std::path::absolute(&path).unwrap_or(path),
                    false => path,
                }
            })
            .collect())
    })?;
    let debounce = t.get("debounce", WatchConfig::DEFAULT_DEBOUNCE, Field::duration)?;
    t.finish(&[], notes)?;
    Ok((!paths.is_empty()).then_some(WatchConfig {
        paths,
        extensions,
        ignore,
        debounce,
    }))
}

fn compression(
    mut t: Table<'_>,
    notes: &mut Notes,
) -> Result<Option<CompressionConfig>, ConfigError> {
    let d = CompressionConfig::default();
    let enabled = t.get("enabled", true, Field::bool)?;
    let algorithms = t.get("algorithms", d.algorithms, |f| {
        let list = encodings(f)?;
        match list.is_empty() {
            true => Err(f.invalid("at least one of zstd, br and gzip (or enabled: false)")),
            false => Ok(list),
        }
    })?;
    let min_size = t.get("min_size", d.min_size, |f| f.size(1, 0, u64::MAX))?;
    let types = t.get("types", d.types, |f| {
        let types = f.strings()?;
        match types.iter().find(|t| !t.contains('/')) {
            Some(bad) => Err(f.invalid(format!(
                "media types like text/* or application/json (\"{bad}\" is not one)"
            ))),
            None => Ok(types
                .iter()
                .map(|t| t.trim().to_ascii_lowercase())
                .collect()),
        }
    })?;
    t.finish(&[], notes)?;
    Ok(enabled.then_some(CompressionConfig {
        algorithms,
        min_size,
        types,
    }))
}

/// A list of zstd, br and gzip (each once, in the order given).
fn encodings(f: &Field<'_>) -> Result<Vec<Encoding>, ConfigError> {
    let mut list = Vec::new();
    for name in f.strings()? {
        match Encoding::from_name(name.trim()) {
            Some(e) if !list.contains(&e) => list.push(e),
            Some(_) => {}
            None => {
                return Err(f.invalid(format!(
                    "a list of zstd, br and gzip (\"{name}\" is not one)"
                )))
            }
        }
    }
    Ok(list)
}

/// `http.sendfile`: the directories `X-Sendfile` may name and the URI prefixes
/// `X-Accel-Redirect` may use; existing now, their links resolved at each answer.
fn sendfile(mut t: Table<'_>, notes: &mut Notes) -> Result<SendfileConfig, ConfigError> {
    let allowed_dirs = t.get("allowed_dirs", Vec::new(), Field::directories)?;
    let accel_map = t.get("accel_map", Vec::new(), |f| {
        let mut map = Vec::new();
        for (prefix, entry) in f.entries()? {
            if !prefix.starts_with('/') || prefix.contains(['?', '#', '%', '\0']) {
                return Err(entry.invalid(
                    "a directory under a URI prefix starting with '/' (no '?', '#' or '%'), \
                     e.g. \"/protected/\": /srv/files",
                ));
            }
            map.push(AccelMapping::new(&prefix, entry.directory()?));
        }
        Ok(map)
    })?;
    t.finish(&[], notes)?;
    if allowed_dirs.is_empty() && accel_map.is_empty() {
        notes.warn(
            "http.sendfile has neither allowed_dirs nor accel_map: every X-Sendfile and \
             X-Accel-Redirect answer is refused (403)"
                .to_owned(),
        );
    }
    Ok(SendfileConfig {
        allowed_dirs,
        accel_map,
    })
}

/// `access_logs`: ids are on by default when the access log is (they exist to tie its lines to
/// the application's); otherwise they cost every request an allocation for no reader.
fn request_id(
    mut t: Table<'_>,
    access_logs: bool,
    notes: &mut Notes,
) -> Result<Option<RequestIdConfig>, ConfigError> {
    let d = RequestIdConfig::default();
    let enabled = t.get("enabled", access_logs, Field::bool)?;
    let header = t.get("header", d.header, |f| {
        http::HeaderName::from_bytes(f.string()?.trim().as_bytes())
            .map_err(|_| f.invalid("a header name (letters, digits, '-'), e.g. X-Request-Id"))
    })?;
    let accept = t.get("accept", d.accept, Field::bool)?;
    let response = t.get("response", d.response, Field::bool)?;
    t.finish(&[], notes)?;
    Ok(enabled.then_some(RequestIdConfig {
        header,
        accept,
        response,
    }))
}

fn uploads(mut t: Table<'_>, notes: &mut Notes) -> Result<UploadsConfig, ConfigError> {
    let d = UploadsConfig::default();
    let dir = t.get("dir", d.dir, Field::writable_directory)?;
    let forbid = t.get("forbid", d.forbid, |f| {
        Ok(f.strings()?.iter().map(|ext| extension(ext)).collect())
    })?;
    t.finish(&["allow"], notes)?;
    Ok(UploadsConfig { dir, forbid })
}

fn static_files(mut t: Table<'_>, notes: &mut Notes) -> Result<StaticConfig, ConfigError> {
    let dir = t.require(
        "dir",
        "the directory static files are served from",
        Field::directory,
    )?;
    let extensions = |f: &Field<'_>| -> Result<Vec<String>, ConfigError> {
        Ok(f.strings()?.iter().map(|ext| extension(ext)).collect())
    };
    let default_forbid = StaticConfig::DEFAULT_FORBID.map(String::from).to_vec();
    let forbid = t.get("forbid", default_forbid, extensions)?;
    let mut allow = t.get("allow", Vec::new(), extensions)?;
    // RoadRunner: an extension in both lists is forbidden.
    allow.retain(|ext| !forbid.contains(ext));
    let calculate_etag = t.get("calculate_etag", false, Field::bool)?;
    let weak = t.get("weak", false, Field::bool)?;
    let response = t.get("response", http::HeaderMap::new(), |f| {
        let mut headers = http::HeaderMap::new();
        for (name, entry) in f.entries()? {
            let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                entry.invalid("a value under a valid header name (letters, digits, '-')")
            })?;
            headers.append(name, header_value(&entry)?);
        }
        Ok(headers)
    })?;
    let cache_control = t.get("cache_control", Vec::new(), |f| {
        let mut by_extension = Vec::new();
        for (names, entry) in f.entries()? {
            let value = header_value(&entry)?;
            for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                by_extension.push((extension(name), value.clone()));
            }
        }
        Ok(by_extension)
    })?;
    let prefixes = t.get("prefixes", Vec::new(), |f| {
        let prefixes = f.strings()?;
        match prefixes.iter().all(|p| p.starts_with('/')) {
            true => Ok(prefixes),
            false => Err(f.invalid("URL paths starting with '/', e.g. [\"/assets/\"]")),
        }
    })?;
    let precompressed = t.get("precompressed", Vec::new(), encodings)?;
    t.finish(
        &[
            "cache_max_entries",
            "cache_miss_ttl",
            "cache_ttl",
            "request",
        ],
        notes,
    )?;
    let php = ".php".to_owned();
    if !forbid.contains(&php) && (allow.is_empty() || allow.contains(&php)) {
        notes.warn(format!(
            "http.static serves .php files under {} as source, not run: add \".php\" to \
             http.static.forbid",
            dir.display()
        ));
    }
    Ok(StaticConfig {
        dir,
        forbid,
        allow,
        calculate_etag,
        weak,
        response,
        cache_control,
        prefixes,
        precompressed,
    })
}

/// A header value: a string (numbers in their written form) that HTTP allows.
fn header_value(f: &Field<'_>) -> Result<http::HeaderValue, ConfigError> {
    let text = match f.string() {
        Ok(text) => text,
        Err(_) => return Err(f.invalid("a header value (a string)")),
    };
    http::HeaderValue::from_str(&text)
        .map_err(|_| f.invalid("a header value of printable ASCII characters"))
}

/// ".PHP", "php" and ".php" all mean ".php".
fn extension(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    match lower.starts_with('.') {
        true => lower,
        false => format!(".{lower}"),
    }
}

fn ssl(mut t: Table<'_>, notes: &mut Notes) -> Result<SslConfig, ConfigError> {
    let address = t.get("address", SslConfig::DEFAULT_ADDRESS, Field::address)?;
    let cert = t.require("cert", "the path of a PEM certificate file", |f| {
        f.readable_file("certificate")
    })?;
    let key = t.require("key", "the path of a PEM private key file", |f| {
        f.readable_file("private key")
    })?;
    t.finish(&["acme", "client_auth_type", "redirect", "root_ca"], notes)?;
    Ok(SslConfig { address, cert, key })
}

fn pool(mut t: Table<'_>, notes: &mut Notes) -> Result<PoolConfig, ConfigError> {
    let d = PoolConfig::default();
    let num_workers = t.get("num_workers", d.num_workers, |f| f.int(0))?;
    let max_jobs = t.get("max_jobs", d.max_jobs, |f| f.int(0))?;
    let allocate_timeout = t.get("allocate_timeout", d.allocate_timeout, Field::duration)?;
    let boot_timeout = t.get("boot_timeout", d.boot_timeout, Field::positive_duration)?;
    let destroy_timeout = t.get("destroy_timeout", d.destroy_timeout, Field::duration)?;
    let max_queue_size = t.get("max_queue_size", d.max_queue_size, |f| f.int(0))?;
    let supervisor = supervisor(t.table("supervisor")?, notes)?;
    let template = t.get("template", d.template, Field::bool)?;
    let template_connections = t.get("template_connections", d.template_connections, |f| {
        f.choice(&[
            ("refuse", TemplateConnections::Refuse),
            ("allow", TemplateConnections::Allow),
        ])
    })?;
    let isolate = t.get("isolate", d.isolate, |f| {
        let prefixes = f.strings()?;
        match prefixes.iter().find(|p| !p.starts_with('/') || p.contains(['?', '#', '\0'])) {
            Some(bad) => Err(f.invalid(format!(
                "URL path prefixes starting with '/' (without query or fragment), e.g. /admin; \"{bad}\" is not one"
            ))),
            None => Ok(prefixes),
        }
    })?;
    let isolate_workers = t.get("isolate_workers", d.isolate_workers, |f| f.int(0))?;
    let policies = [("batch", Scheduling::Batch), ("normal", Scheduling::Normal)];
    let worker_scheduling = t.get("worker_scheduling", d.worker_scheduling, |f| {
        f.choice(&policies)
    })?;
    let master_scheduling = t.get("master_scheduling", d.master_scheduling, |f| {
        f.choice(&policies)
    })?;
    let send_ahead = t.get("send_ahead", d.send_ahead, |f| {
        let n: u32 = f.int(0)?;
        match n <= MAX_SEND_AHEAD {
            true => Ok(n),
            false => Err(f.invalid(format!("a whole number from 0 to {MAX_SEND_AHEAD}"))),
        }
    })?;
    let send_ahead_wait = t.get(
        "send_ahead_wait",
        d.send_ahead_wait,
        Field::positive_duration,
    )?;
    let master_threads = t.get("master_threads", d.master_threads, |f| {
        let n: usize = f.int(1)?;
        match n <= 256 {
            true => Ok(n),
            false => Err(f.invalid("a whole number from 1 to 256")),
        }
    })?;
    if template && num_workers == 0 {
        return Err(t.invalid(
            "template",
            "true".to_owned(),
            "false while http.pool.num_workers is 0 (the template serves pool mode only)"
                .to_owned(),
        ));
    }
    let debug = t.get("debug", d.debug, Field::bool)?;
    if debug && num_workers == 0 {
        return Err(t.invalid(
            "debug",
            "true".to_owned(),
            "false while http.pool.num_workers is 0: debug mode starts a worker process for \
             each request, so set http.pool.num_workers (the most requests served at once; 1 \
             is enough for development)"
                .to_owned(),
        ));
    }
    if debug && template {
        return Err(t.invalid(
            "debug",
            "true".to_owned(),
            "false while http.pool.template is true: a forked worker runs the code the template \
             loaded once, while debug mode boots every worker afresh"
                .to_owned(),
        ));
    }
    if !isolate.is_empty() && !template {
        return Err(t.invalid(
            "isolate",
            format!("{isolate:?}"),
            "no isolated paths unless http.pool.template is true (one-shot workers are forked from the template)".to_owned(),
        ));
    }
    t.finish(
        &[
            "command",
            "dynamic_allocator",
            "reset_timeout",
            "stream_timeout",
        ],
        notes,
    )?;
    Ok(PoolConfig {
        num_workers,
        max_jobs,
        allocate_timeout,
        boot_timeout,
        destroy_timeout,
        max_queue_size,
        supervisor,
        template,
        template_connections,
        isolate,
        isolate_workers,
        send_ahead,
        send_ahead_wait,
        master_threads,
        worker_scheduling,
        master_scheduling,
        debug,
    })
}

fn supervisor(mut t: Table<'_>, notes: &mut Notes) -> Result<SupervisorConfig, ConfigError> {
    let d = SupervisorConfig::default();
    let max_worker_memory = t.get("max_worker_memory", d.max_worker_memory, |f| {
        f.size(MB, 0, u64::MAX)
    })?;
    let ttl = t.get("ttl", d.ttl, Field::duration)?;
    let idle_ttl = t.get("idle_ttl", d.idle_ttl, Field::duration)?;
    let exec_ttl = t.get("exec_ttl", d.exec_ttl, Field::duration)?;
    t.finish(&["watch_tick"], notes)?;
    Ok(SupervisorConfig {
        max_worker_memory,
        ttl,
        idle_ttl,
        exec_ttl,
    })
}

fn logs(mut t: Table<'_>, notes: &mut Notes) -> Result<LogsConfig, ConfigError> {
    let d = LogsConfig::default();
    let level = t.get("level", d.level, |f| {
        f.choice(&[
            ("error", LogLevel::Error),
            ("warn", LogLevel::Warn),
            ("warning", LogLevel::Warn),
            ("info", LogLevel::Info),
            ("debug", LogLevel::Debug),
            ("trace", LogLevel::Trace),
        ])
    })?;
    let encoding = t.get("encoding", d.encoding, |f| {
        f.choice(&[
            ("text", LogEncoding::Text),
            ("console", LogEncoding::Text),
            ("json", LogEncoding::Json),
        ])
    })?;
    let output = t.get("output", d.output, |f| {
        let path = f.path()?;
        match path.to_str().map(str::to_ascii_lowercase).as_deref() {
            Some("stderr") => Ok(LogOutput::Stderr),
            Some("stdout") => Ok(LogOutput::Stdout),
            _ => f.log_file().map(LogOutput::File),
        }
    })?;
    t.finish(
        &[
            "channels",
            "err_output",
            "file_logger_options",
            "line_ending",
            "mode",
        ],
        notes,
    )?;
    Ok(LogsConfig {
        level,
        encoding,
        output,
    })
}

fn velox(mut t: Table<'_>, notes: &mut Notes) -> Result<Option<VeloxConfig>, ConfigError> {
    // No URL, or an empty one (`${VELOX_URL}` with the variable unset), turns velox off; that
    // is the usual way to switch it per environment, so it earns no warning.
    let server_url = t.get("server_url", None, |f| {
        match f.string()?.trim().is_empty() {
            true => Ok(None),
            false => f.http_url().map(Some),
        }
    })?;
    let d = VeloxConfig::new(String::new());
    let build_timeout = t.get("build_timeout", d.build_timeout, Field::positive_duration)?;
    let connect_timeout = t.get(
        "connect_timeout",
        d.connect_timeout,
        Field::positive_duration,
    )?;
    if let Some(field) = t.field("request_timeout") {
        field.positive_duration()?;
        // A per-call bound shorter than a build restarted it from zero at every retry.
        notes.warn(
            "key 'velox.request_timeout' is no longer used: a Velox call lasts as long as its \
             build, bounded by velox.build_timeout (see velox.connect_timeout)"
                .to_owned(),
        );
    }
    let retry = retry(t.table("retry")?, notes)?;
    // Checked only when velox is on: a directory missing here would refuse every build's
    // artifact after the build, minutes later.
    let artifacts_dir = t.get("artifacts_dir", d.artifacts_dir, |f| match server_url {
        Some(_) => f.existing_directories(),
        None => f.paths(),
    })?;
    let cache = cache(t.table("cache")?, server_url.is_some(), notes)?;
    t.finish(&[], notes)?;
    let Some(server_url) = server_url else {
        return Ok(None);
    };
    Ok(Some(VeloxConfig {
        server_url,
        build_timeout,
        connect_timeout,
        retry,
        artifacts_dir,
        cache,
    }))
}

fn retry(mut t: Table<'_>, notes: &mut Notes) -> Result<RetryConfig, ConfigError> {
    let d = RetryConfig::default();
    let max_attempts = t.get("max_attempts", d.max_attempts, |f| f.int(1))?;
    let initial_delay = t.get("initial_delay", d.initial_delay, Field::duration)?;
    let max_delay = t.get("max_delay", d.max_delay, Field::duration)?;
    if max_delay < initial_delay {
        return Err(t.invalid(
            "max_delay",
            format!("\"{}\"", format_duration(max_delay)),
            format!(
                "a duration of at least velox.retry.initial_delay ({})",
                format_duration(initial_delay)
            ),
        ));
    }
    let backoff_multiplier = t.get("backoff_multiplier", d.backoff_multiplier, |f| f.float(1.0))?;
    t.finish(&[], notes)?;
    Ok(RetryConfig {
        max_attempts,
        initial_delay,
        max_delay,
        backoff_multiplier,
    })
}

/// `velox.cache`; its directory is checked when velox is on and the cache used.
fn cache(mut t: Table<'_>, velox_on: bool, notes: &mut Notes) -> Result<CacheConfig, ConfigError> {
    let d = CacheConfig::default();
    let enabled = t.get("enabled", d.enabled, Field::bool)?;
    let dir = t.get("dir", d.dir, |f| match velox_on && enabled {
        true => f.creatable_directory(),
        false => f.path(),
    })?;
    let max_size = t.get("max_size", d.max_size, |f| f.size(1, 1, u64::MAX))?;
    t.finish(&[], notes)?;
    Ok(CacheConfig {
        enabled,
        dir,
        max_size,
    })
}
