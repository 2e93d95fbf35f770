//! The effective configuration as (dotted key, value) rows, written in the syntax the file
//! accepts, for `php --ri rr`.

use std::path::Path;
use std::time::Duration;

use super::units::{describe_size, format_duration};
use super::{Config, LogOutput};

pub(crate) fn rows(config: &Config) -> Vec<(&'static str, String)> {
    let http = &config.http;
    let pool = &config.pool;
    let duration = |d: Duration| format_duration(d);
    let path = |p: &Path| p.display().to_string();
    let mut rows = vec![
        (
            "source",
            config.source.as_deref().map_or("none".to_owned(), path),
        ),
        ("http.address", http.address.to_string()),
        (
            "http.max_request_size",
            describe_size(http.max_request_size),
        ),
        (
            "http.max_header_size",
            describe_size(http.max_header_size as u64),
        ),
        ("http.uploads.dir", path(&http.uploads.dir)),
        ("http.uploads.forbid", http.uploads.forbid.join(", ")),
        (
            "http.read_header_timeout",
            duration(http.read_header_timeout),
        ),
        ("http.idle_timeout", duration(http.idle_timeout)),
        ("http.request_timeout", duration(http.request_timeout)),
        (
            "http.body_buffer_size",
            describe_size(http.body_buffer_size as u64),
        ),
        ("http.body_timeout", duration(http.body_timeout)),
        ("http.send_timeout", duration(http.send_timeout)),
        (
            "http.output_buffer_size",
            describe_size(http.output_buffer_size as u64),
        ),
        (
            "http.response_buffer_size",
            describe_size(http.response_buffer_size as u64),
        ),
        (
            "http.max_response_spool_size",
            describe_size(http.max_response_spool),
        ),
        ("http.shutdown_timeout", duration(http.shutdown_timeout)),
    ];
    match &http.ssl {
        Some(ssl) => rows.extend([
            ("http.ssl.address", ssl.address.to_string()),
            ("http.ssl.cert", path(&ssl.cert)),
            ("http.ssl.key", path(&ssl.key)),
        ]),
        None => rows.push(("http.ssl", "off".to_owned())),
    }
    let compression = http.compression.clone().unwrap_or_default();
    rows.extend([
        (
            "http.compression.enabled",
            http.compression.is_some().to_string(),
        ),
        (
            "http.compression.algorithms",
            compression
                .algorithms
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "http.compression.min_size",
            format!("{} bytes", compression.min_size),
        ),
        ("http.compression.types", compression.types.join(", ")),
    ]);
    match &http.sendfile {
        Some(sendfile) => rows.extend([
            (
                "http.sendfile.allowed_dirs",
                sendfile
                    .allowed_dirs
                    .iter()
                    .map(|d| path(d))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (
                "http.sendfile.accel_map",
                sendfile
                    .accel_map
                    .iter()
                    .map(|m| format!("{} = {}", m.prefix, path(&m.dir)))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ]),
        None => rows.push(("http.sendfile", "off".to_owned())),
    }
    let ids = http.request_id.clone().unwrap_or_default();
    rows.extend([
        (
            "http.request_id.enabled",
            http.request_id.is_some().to_string(),
        ),
        ("http.request_id.header", ids.header.to_string()),
        ("http.request_id.accept", ids.accept.to_string()),
        ("http.request_id.response", ids.response.to_string()),
    ]);
    rows.extend([
        ("http.http2.h2c", http.h2c.to_string()),
        (
            "http.http2.max_concurrent_streams",
            http.max_concurrent_streams.to_string(),
        ),
        (
            "http.http2.max_queued_streams",
            http.max_queued_streams.to_string(),
        ),
        ("http.access_logs", http.access_logs.to_string()),
        ("http.io_driver", http.io_driver.as_str().to_owned()),
        ("http.io_handoff", duration(http.io_handoff)),
        ("http.queue_size", http.queue_size.to_string()),
        ("http.max_connections", http.max_connections.to_string()),
        (
            "http.trusted_subnets",
            match http.trusted_subnets.is_empty() {
                true => "(none)".to_owned(),
                false => http
                    .trusted_subnets
                    .subnets()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        ),
        (
            "http.trusted_headers",
            http.trusted_subnets.headers().names().join(", "),
        ),
        (
            "http.document_root",
            http.script
                .document_root
                .as_deref()
                .map(path)
                .unwrap_or_else(|| "(working directory)".to_owned()),
        ),
        ("http.script_name", http.script.script_name.clone()),
    ]);
    match &http.static_files {
        Some(files) => rows.extend([
            ("http.static.dir", path(&files.dir)),
            ("http.static.forbid", files.forbid.join(", ")),
            ("http.static.allow", files.allow.join(", ")),
            (
                "http.static.calculate_etag",
                files.calculate_etag.to_string(),
            ),
            ("http.static.weak", files.weak.to_string()),
            (
                "http.static.response",
                files
                    .response
                    .iter()
                    .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (
                "http.static.cache_control",
                files
                    .cache_control
                    .iter()
                    .map(|(ext, value)| format!("{ext}: {}", value.to_str().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("http.static.prefixes", files.prefixes.join(", ")),
            (
                "http.static.precompressed",
                files
                    .precompressed
                    .iter()
                    .map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ]),
        None => rows.push(("http.static", "off".to_owned())),
    }
    match &http.watch {
        Some(watch) => rows.extend([
            (
                "http.watch.paths",
                watch
                    .paths
                    .iter()
                    .map(|p| path(p))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("http.watch.extensions", watch.extensions.join(", ")),
            (
                "http.watch.ignore",
                watch
                    .ignore
                    .iter()
                    .map(|p| path(p))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("http.watch.debounce", duration(watch.debounce)),
        ]),
        None => rows.push(("http.watch", "off".to_owned())),
    }
    rows.extend([
        ("http.pool.num_workers", pool.num_workers.to_string()),
        ("http.pool.debug", pool.debug.to_string()),
        ("http.pool.max_jobs", pool.max_jobs.to_string()),
        (
            "http.pool.allocate_timeout",
            duration(pool.allocate_timeout),
        ),
        ("http.pool.boot_timeout", duration(pool.boot_timeout)),
        ("http.pool.destroy_timeout", duration(pool.destroy_timeout)),
        ("http.pool.max_queue_size", pool.max_queue_size.to_string()),
        ("http.pool.template", pool.template.to_string()),
        (
            "http.pool.template_connections",
            pool.template_connections.as_str().to_string(),
        ),
        ("http.pool.isolate", pool.isolate.join(", ")),
        (
            "http.pool.isolate_workers",
            pool.isolate_workers.to_string(),
        ),
        ("http.pool.send_ahead", pool.send_ahead.to_string()),
        ("http.pool.send_ahead_wait", duration(pool.send_ahead_wait)),
        ("http.pool.master_threads", pool.master_threads.to_string()),
        (
            "http.pool.worker_scheduling",
            pool.worker_scheduling.as_str().to_owned(),
        ),
        (
            "http.pool.master_scheduling",
            pool.master_scheduling.as_str().to_owned(),
        ),
        (
            "http.pool.supervisor.max_worker_memory",
            describe_size(pool.supervisor.max_worker_memory),
        ),
        ("http.pool.supervisor.ttl", duration(pool.supervisor.ttl)),
        (
            "http.pool.supervisor.idle_ttl",
            duration(pool.supervisor.idle_ttl),
        ),
        (
            "http.pool.supervisor.exec_ttl",
            duration(pool.supervisor.exec_ttl),
        ),
        ("logs.level", config.logs.level.as_str().to_owned()),
        ("logs.encoding", config.logs.encoding.as_str().to_owned()),
        (
            "logs.output",
            match &config.logs.output {
                LogOutput::Stderr => "stderr".to_owned(),
                LogOutput::Stdout => "stdout".to_owned(),
                LogOutput::File(file) => path(file),
            },
        ),
    ]);
    for (key, addr) in [
        ("status.address", config.status),
        ("metrics.address", config.metrics),
    ] {
        if let Some(addr) = addr {
            rows.push((key, addr.to_string()));
        }
    }
    match &config.velox {
        Some(velox) => rows.extend([
            ("velox.server_url", velox.server_url.clone()),
            ("velox.build_timeout", duration(velox.build_timeout)),
            ("velox.connect_timeout", duration(velox.connect_timeout)),
            (
                "velox.retry.max_attempts",
                velox.retry.max_attempts.to_string(),
            ),
            (
                "velox.retry.initial_delay",
                duration(velox.retry.initial_delay),
            ),
            ("velox.retry.max_delay", duration(velox.retry.max_delay)),
            (
                "velox.retry.backoff_multiplier",
                velox.retry.backoff_multiplier.to_string(),
            ),
            (
                "velox.artifacts_dir",
                velox
                    .artifacts_dir
                    .iter()
                    .map(|dir| path(dir))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("velox.cache.enabled", velox.cache.enabled.to_string()),
            ("velox.cache.dir", path(&velox.cache.dir)),
            ("velox.cache.max_size", describe_size(velox.cache.max_size)),
        ]),
        None => rows.push(("velox", "off".to_owned())),
    }
    rows
}
