//! rr's configuration: one [`Config`] built once at startup from defaults, then the YAML file
//! (RoadRunner's `.rr.yaml` shape), then overrides (ini, options) in order, later winning.
//!
//! Overrides are written into the parsed YAML tree before it is read, so they pass exactly the
//! same validation as the file. The keys are documented in `docs/config.md`.

mod describe;
mod env;
mod error;
mod field;
mod read;
mod tree;
mod units;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::ConfigError;

use tree::Origins;
use units::{GB, KB, MB};

/// The file looked for in the working directory when none is named.
pub const DEFAULT_FILE_NAME: &str = ".rr.yaml";

/// `Config::default()` is every default with no file read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// The YAML file that was read, if any.
    pub source: Option<PathBuf>,
    pub http: HttpConfig,
    pub logs: LogsConfig,
    /// `Some` only when `velox.server_url` is set (and not empty).
    pub velox: Option<VeloxConfig>,
    /// `http.pool`: `num_workers` above 0 turns on pool mode (see docs/pool.md).
    pub pool: PoolConfig,
    /// `status.address`: health, readiness and, in pool mode, the admin endpoints.
    pub status: Option<SocketAddr>,
    /// `metrics.address`: Prometheus metrics (both modes).
    pub metrics: Option<SocketAddr>,
    /// Things to log at start: one line naming the ignored RoadRunner keys, unknown versions,
    /// and the like.
    pub warnings: Vec<String>,
    /// RoadRunner keys and sections that are accepted but do nothing in rr, dotted and sorted
    /// (all named in the first warning).
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Plain listener; port 0 asks the OS for a free port.
    pub address: SocketAddr,
    /// Largest request body in bytes.
    pub max_request_size: u64,
    /// Largest request head (request line and headers) in bytes; at least 8 KiB because
    /// hyper's read buffer cannot be smaller.
    pub max_header_size: usize,
    pub uploads: UploadsConfig,
    pub read_header_timeout: Duration,
    /// Keep-alive connections with no request for this long are closed.
    pub idle_timeout: Duration,
    /// How long PHP may take to answer a request (from the moment the body was read).
    pub request_timeout: Duration,
    /// Raw request bodies up to this many bytes stay in memory; larger ones are spooled to a
    /// temp file in `uploads.dir` as they arrive.
    pub body_buffer_size: usize,
    /// The longest pause between two reads of a request body (nginx `client_body_timeout`).
    pub body_timeout: Duration,
    /// The longest a write to a client may wait (nginx `send_timeout`): a client that stops
    /// reading is cut off, and PHP stops waiting for it.
    pub send_timeout: Duration,
    /// `RR\Worker::handle()`: unflushed output past this many bytes starts the answer
    /// streaming (as if `flush()` was called), so a large `readfile()` holds at most this much.
    pub output_buffer_size: usize,
    /// A streamed answer's bytes held in memory while its client is slower than PHP; past it
    /// they go to a temp file.
    pub response_buffer_size: usize,
    /// Unread bytes of one streamed answer a temp file may hold before PHP waits for the
    /// client (nginx `fastcgi_max_temp_file_size`); 0: no temp file.
    pub max_response_spool: u64,
    /// Upper bound on the graceful drain at shutdown.
    pub shutdown_timeout: Duration,
    /// A second, TLS listener, as in RoadRunner.
    pub ssl: Option<SslConfig>,
    /// HTTP/2 with prior knowledge on the plain listener.
    pub h2c: bool,
    /// Streams one HTTP/2 connection may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub max_concurrent_streams: u32,
    /// Requests of one HTTP/2 connection that may wait for PHP or run in it at once; the
    /// connection's others wait in it, out of the shared queue. Set when read (see
    /// `read::queued_streams` for the default).
    pub max_queued_streams: usize,
    pub access_logs: bool,
    pub io_driver: IoDriver,
    pub io_handoff: Duration,
    /// Requests that may wait for PHP; always at least 1.
    pub queue_size: usize,
    /// Client connections open at once (plain and TLS together); beyond, a 503 and a close.
    /// 0 means auto: three quarters of the descriptor limit (`ulimit -n`).
    pub max_connections: usize,
    /// Where `RR\Worker::handle()` says the entry script is (`$_SERVER` for php-fpm-era code).
    pub script: ScriptConfig,
    /// `http.static`: files served from disk before PHP; `None` when the section is absent.
    pub static_files: Option<StaticConfig>,
    /// `http.sendfile`: `None` when the section is absent (the headers pass through).
    pub sendfile: Option<crate::stream::sendfile::SendfileConfig>,
    /// `http.compression`: `None` when `enabled: false`.
    pub compression: Option<crate::compress::CompressionConfig>,
    /// `http.request_id`: `None` when `enabled: false`.
    pub request_id: Option<crate::request::id::RequestIdConfig>,
    /// `http.trusted_subnets`: peers whose forwarding headers are believed (empty: nobody), and
    /// `http.trusted_headers`: which of those headers.
    pub trusted_subnets: crate::request::forwarded::TrustedProxies,
    /// `http.watch`: development reload; `None` when no path is watched (pool mode only).
    pub watch: Option<WatchConfig>,
}

/// `http.watch`: replace the pool's workers when a watched file changes (development reload,
/// RoadRunner's `reload` plugin; docs/config.md).
#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    /// Existing files or directories, absolute; a directory is watched with all below it.
    pub paths: Vec<PathBuf>,
    /// Extensions whose changes count (lowercase, leading dot); empty means every file.
    pub extensions: Vec<String>,
    /// Changes below these are not looked at: a bare name (`vendor`) matches that directory or
    /// file name at any depth, a path (anything with a `/`, made absolute) what is below it.
    pub ignore: Vec<PathBuf>,
    /// A reload waits until no change came for this long, so a burst of events (an editor's
    /// save, a `git checkout`) makes one reload.
    pub debounce: Duration,
}

impl WatchConfig {
    pub const DEFAULT_EXTENSIONS: [&'static str; 1] = [".php"];
    pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);
}

/// `http.static` (RoadRunner's static middleware): which files the server answers itself.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticConfig {
    /// An existing directory, absolute.
    pub dir: PathBuf,
    /// Extensions never served from disk (lowercase, leading dot); such requests go to PHP.
    pub forbid: Vec<String>,
    /// When not empty, only these extensions are served (never one that is also forbidden).
    pub allow: Vec<String>,
    /// Send an `ETag` (and answer `If-None-Match`).
    pub calculate_etag: bool,
    /// With `calculate_etag`: `W/` from size and modification time instead of a content hash.
    pub weak: bool,
    /// Headers added to every static answer.
    pub response: http::HeaderMap,
    /// `Cache-Control` by extension; wins over one in `response`.
    pub cache_control: Vec<(String, http::HeaderValue)>,
    /// When not empty, only URL paths starting with one of these are looked up on disk.
    pub prefixes: Vec<String>,
    /// Precompressed siblings (`app.css.br`) served to clients that accept them, in this order
    /// of preference; empty: never looked for.
    pub precompressed: Vec<crate::compress::Encoding>,
}

impl StaticConfig {
    /// Never served from disk unless `forbid` is set: PHP sources and Apache's access files.
    pub const DEFAULT_FORBID: [&'static str; 4] = [".php", ".phar", ".htaccess", ".htpasswd"];
}

/// `http.document_root` and `http.script_name`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptConfig {
    /// An existing directory; `None` means the working directory of `php`.
    pub document_root: Option<PathBuf>,
    /// `SCRIPT_NAME` and `PHP_SELF`: starts with '/'.
    pub script_name: String,
}

impl Default for ScriptConfig {
    fn default() -> Self {
        Self {
            document_root: None,
            script_name: "/index.php".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UploadsConfig {
    pub dir: PathBuf,
    /// Refused file extensions, lowercase with the leading dot (".php"); compare them with the
    /// lowercased extension of the uploaded file name.
    pub forbid: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SslConfig {
    pub address: SocketAddr,
    /// PEM certificate chain; checked readable when the config is loaded.
    pub cert: PathBuf,
    /// PEM private key; checked readable when the config is loaded.
    pub key: PathBuf,
}

/// The Linux scheduling policy of a pool worker (`http.pool.worker_scheduling`) or of the
/// master's runtime threads (`http.pool.master_scheduling`); docs/pool.md, "Scheduling".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduling {
    /// `SCHED_BATCH`: a woken thread does not preempt the running task (the master, a
    /// worker); it runs when that one blocks or its time slice ends.
    Batch,
    /// `SCHED_OTHER`, the default of any process.
    Normal,
}

impl Scheduling {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Batch => "batch",
            Self::Normal => "normal",
        }
    }
}

/// Which thread drives socket I/O while PHP works (see the runtime module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDriver {
    Hybrid,
    Inline,
    Thread,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogsConfig {
    pub level: LogLevel,
    pub encoding: LogEncoding,
    pub output: LogOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEncoding {
    /// Human-readable lines; RoadRunner calls it "console".
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOutput {
    Stderr,
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct VeloxConfig {
    /// An http:// or https:// URL.
    pub server_url: String,
    /// Bounds a whole build: every call, retry and poll.
    pub build_timeout: Duration,
    /// Bounds connecting to the server; a call itself lasts as long as its build.
    pub connect_timeout: Duration,
    pub retry: RetryConfig,
    /// Roots a built file may come from; never empty.
    pub artifacts_dir: Vec<PathBuf>,
    pub cache: CacheConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// At least 1.
    pub max_attempts: u32,
    pub initial_delay: Duration,
    /// Never below `initial_delay`.
    pub max_delay: Duration,
    /// At least 1.0.
    pub backoff_multiplier: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    pub enabled: bool,
    pub dir: PathBuf,
    /// Bytes.
    pub max_size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// 0 means the single embedded worker.
    pub num_workers: usize,
    /// Requests a worker serves before it is replaced; 0 means no limit.
    pub max_jobs: u64,
    pub allocate_timeout: Duration,
    /// How long a new worker may take to reach its first `waitRequest()`.
    pub boot_timeout: Duration,
    pub destroy_timeout: Duration,
    /// 0 means "use `http.queue_size`".
    pub max_queue_size: usize,
    pub supervisor: SupervisorConfig,
    /// Workers are forked from one booted template process instead of re-executed.
    pub template: bool,
    /// Whether the template may fork while it holds connected sockets (docs/pool.md).
    pub template_connections: TemplateConnections,
    /// URL path prefixes served by a one-shot worker forked per request (template mode).
    pub isolate: Vec<String>,
    /// One-shot workers running at once; 0 means `num_workers`.
    pub isolate_workers: usize,
    /// Requests handed to a busy worker beyond the one it runs, when no worker is idle and its
    /// recent answers were quick (docs/pool.md, "Send-ahead"); 0 turns it off.
    pub send_ahead: u32,
    /// The most a request sent ahead may expect to wait at the worker's recent pace; requests
    /// sent ahead go back to the line once the request they wait behind has run ten times this.
    pub send_ahead_wait: Duration,
    /// Threads of the master's runtime (accept, HTTP, hand-off to workers): 1 keeps every
    /// request on one thread, the cheapest per request; more let the master's HTTP use more
    /// cores on large machines.
    pub master_threads: usize,
    /// The Linux scheduling policy of worker processes.
    pub worker_scheduling: Scheduling,
    /// The Linux scheduling policy of the master's runtime threads.
    pub master_scheduling: Scheduling,
    /// RoadRunner's debug mode: every request is served by a worker started for it alone,
    /// which ends after its answer (docs/pool.md, "Debug mode").
    pub debug: bool,
}

impl PoolConfig {
    /// Whether a request for `path` (no query string) goes to a one-shot worker: a prefix
    /// matches the path itself and everything below it, segment-wise (`/admin` matches
    /// `/admin` and `/admin/x`, not `/administrator`; `/admin/` matches `/admin/x` only).
    pub fn is_isolated(&self, path: &str) -> bool {
        self.isolate
            .iter()
            .any(|prefix| match path.strip_prefix(prefix.as_str()) {
                Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
                None => false,
            })
    }

    /// The most one-shot workers alive at once: in debug mode `num_workers` (every worker is
    /// one), otherwise `isolate_workers`, 0 meaning `num_workers`.
    pub fn isolate_limit(&self) -> usize {
        if self.debug {
            return self.num_workers.max(1);
        }
        match self.isolate_workers {
            0 => self.num_workers.max(1),
            n => n,
        }
    }
}

/// Limits after which a worker is replaced; 0 turns a limit off.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SupervisorConfig {
    /// Bytes (the YAML value is megabytes, as in RoadRunner).
    pub max_worker_memory: u64,
    pub ttl: Duration,
    pub idle_ttl: Duration,
    pub exec_ttl: Duration,
}

/// Where the configuration comes from, in increasing priority.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub file: Option<PathBuf>,
    pub overrides: Vec<Override>,
}

/// One key set from outside the file.
#[derive(Debug, Clone)]
pub struct Override {
    /// Named in errors, e.g. "ini rr.address" or "option".
    pub origin: String,
    /// Dotted path, e.g. "http.address".
    pub key: String,
    /// Ini values are strings ("8080", "true", "5s"); every key accepts those.
    pub value: serde_json::Value,
}

impl Config {
    /// Reads `sources.file` (if any), applies the overrides in order and validates the result.
    pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
        let file = match &sources.file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Some((text, path.as_path()))
            }
            None => None,
        };
        let file = file.as_ref().map(|(text, path)| (text.as_str(), *path));
        build(file, &sources.overrides, env::process_env)
    }

    /// Builds a config from YAML text alone; `origin` is the file name used in messages.
    /// `${VAR}` references are expanded from the process environment.
    pub fn from_yaml_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        build(Some((text, origin)), &[], env::process_env)
    }

    /// The effective settings as (dotted key, value) rows, for `php --ri rr`.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        describe::rows(self)
    }
}

fn build(
    file: Option<(&str, &Path)>,
    overrides: &[Override],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut origins = Origins::new(file.map(|(_, path)| path));
    let mut tree = match file {
        Some((text, path)) => tree::parse_yaml(&env::substitute(text, lookup), path)?,
        None => serde_json::Value::Null,
    };
    for o in overrides {
        tree::set_dotted(&mut tree, &o.key, o.value.clone()).map_err(|e| match e {
            tree::SetError::BadKey => ConfigError::UnknownKey {
                origin: o.origin.clone(),
                key: o.key.clone(),
                suggestion: None,
            },
            // The file's mistake, named as if no override had touched it.
            tree::SetError::NotAMapping(key, value) => {
                field::Field::new(&origins, key, value).invalid("a mapping of keys to values")
            }
        })?;
        origins.add_override(&o.key, &o.origin);
    }
    let mut config = read::config(tree, &origins)?;
    config.source = file.map(|(_, path)| path.to_path_buf());
    Ok(config)
}

/// A php.ini or `-d` setting named `rr.*` that rr does not have: PHP keeps such a name
/// without a word, so a typo (`-d rr.adress=...`) would be ignored.
pub fn unknown_ini(name: &str, known: &[&str]) -> ConfigError {
    ConfigError::UnknownKey {
        origin: "ini".to_owned(),
        key: name.to_owned(),
        suggestion: tree::closest(name, known).map(str::to_owned),
    }
}

/// Picks the config file: `explicit` (option or ini) first, then `RR_CONFIG`, then `.rr.yaml`
/// in `cwd` if it exists. A named file that does not exist is an error; no file at all is not.
/// Empty strings count as not given (an unset ini is ""). Relative paths are taken from `cwd`.
pub fn resolve_file(
    explicit: Option<&str>,
    env_rr_config: Option<&str>,
    cwd: &Path,
) -> Result<Option<PathBuf>, ConfigError> {
    let named = [
        (explicit, "the rr config option or ini setting"),
        (env_rr_config, "RR_CONFIG"),
    ];
    if let Some((path, named_by)) = named
        .into_iter()
        .find_map(|(path, by)| path.filter(|p| !p.trim().is_empty()).map(|p| (p, by)))
    {
        let path = cwd.join(path.trim());
        return match path.is_file() {
            true => Ok(Some(path)),
            false => Err(ConfigError::FileNotFound { path, named_by }),
        };
    }
    let default = cwd.join(DEFAULT_FILE_NAME);
    Ok(default.is_file().then_some(default))
}

impl HttpConfig {
    /// Where a streamed answer waits for a slow client.
    pub fn answer_limits(&self) -> crate::dispatch::answer::AnswerLimits {
        crate::dispatch::answer::AnswerLimits {
            memory: self.response_buffer_size,
            file: self.max_response_spool,
            dir: self.uploads.dir.clone(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        let queue_size = 1024;
        Self {
            address: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080)),
            max_request_size: 100 * MB,
            max_header_size: 64 * KB as usize,
            uploads: UploadsConfig::default(),
            read_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            body_buffer_size: 128 * KB as usize,
            body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            output_buffer_size: MB as usize,
            response_buffer_size: 256 * KB as usize,
            max_response_spool: GB,
            shutdown_timeout: Duration::from_secs(30),
            ssl: None,
            h2c: true,
            max_concurrent_streams: 128,
            max_queued_streams: read::queued_streams(0, queue_size),
            access_logs: false,
            io_driver: IoDriver::Hybrid,
            io_handoff: Duration::from_millis(1),
            queue_size,
            max_connections: 0,
            script: ScriptConfig::default(),
            static_files: None,
            sendfile: None,
            trusted_subnets: Default::default(),
            // On with the access log only (config::read): off by default, as access_logs.
            request_id: None,
            compression: Some(Default::default()),
            watch: None,
        }
    }
}

impl Default for UploadsConfig {
    fn default() -> Self {
        Self {
            dir: std::env::temp_dir(),
            forbid: [".php", ".exe", ".bat"].map(String::from).to_vec(),
        }
    }
}

impl SslConfig {
    /// RoadRunner listens on 443; rr picks a port that needs no privileges.
    pub const DEFAULT_ADDRESS: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8443));
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            level: LogLevel::Info,
            encoding: LogEncoding::Text,
            output: LogOutput::Stderr,
        }
    }
}

impl VeloxConfig {
    /// Defaults for everything but the URL, which has none.
    pub fn new(server_url: String) -> Self {
        Self {
            server_url,
            build_timeout: Duration::from_secs(15 * 60),
            connect_timeout: Duration::from_secs(10),
            retry: RetryConfig::default(),
            artifacts_dir: vec![std::env::temp_dir()],
            cache: CacheConfig::default(),
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
            backoff_multiplier: 2.0,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            dir: std::env::temp_dir().join("rr-velox-cache"),
            max_size: GB,
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            num_workers: 0,
            max_jobs: 0,
            allocate_timeout: Duration::from_secs(60),
            boot_timeout: Duration::from_secs(60),
            destroy_timeout: Duration::from_secs(60),
            max_queue_size: 0,
            supervisor: SupervisorConfig::default(),
            template: false,
            template_connections: TemplateConnections::Refuse,
            isolate: Vec::new(),
            isolate_workers: 0,
            send_ahead: 16,
            send_ahead_wait: Duration::from_millis(1),
            master_threads: 1,
            worker_scheduling: Scheduling::Batch,
            master_scheduling: Scheduling::Batch,
            debug: false,
        }
    }
}

/// `http.pool.template_connections`: what the template does when connections (to a database,
/// Redis...) are still open at its first fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateConnections {
    /// Fail the template's boot, naming each peer.
    Refuse,
    /// Fork anyway: the operator knows the workers never use them.
    Allow,
}

impl TemplateConnections {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refuse => "refuse",
            Self::Allow => "allow",
        }
    }
}

impl IoDriver {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hybrid => "hybrid",
            Self::Inline => "inline",
            Self::Thread => "thread",
        }
    }
}

impl LogLevel {
    /// The name `tracing`'s filters understand.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

impl LogEncoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

#[cfg(test)]
mod tests;
