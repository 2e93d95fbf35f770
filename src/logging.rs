//! Structured logs through `tracing`, set up once from the `logs` section; a log file is
//! opened again by name after SIGUSR1 (logrotate's "rename, then signal"), as nginx and php-fpm
//! do.
use crate::config::{LogEncoding, LogLevel, LogOutput, LogsConfig};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriter};

fn level(level: LogLevel) -> tracing::Level {
    match level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Trace => tracing::Level::TRACE,
    }
}

/// Installs the global subscriber; later calls keep the first one.
pub fn init(config: &LogsConfig) -> std::io::Result<()> {
    let writer = match &config.output {
        LogOutput::Stderr => BoxMakeWriter::new(std::io::stderr),
        LogOutput::Stdout => BoxMakeWriter::new(std::io::stdout),
        LogOutput::File(path) => {
            let opened = open(path)?;
            // The first init wins (try_init below), and so does its file.
            let file = LOG_FILE.get_or_init(|| LogFile {
                path: path.clone(),
                file: Mutex::new(opened),
            });
            BoxMakeWriter::new(FileWriter(file))
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level(config.level))
        .with_writer(writer)
        .with_ansi(false)
        // A log line that cannot be written (stderr a closed pipe: EPIPE) is lost, nothing
        // more: tracing's report of it is an eprintln!, which panics on that same stderr.
        .log_internal_errors(false);
    let _ = match config.encoding {
        LogEncoding::Json => builder.json().try_init(),
        LogEncoding::Text => builder.try_init(),
    };
    Ok(())
}

/// Set by SIGUSR1: the log file is opened again by name before the next line is written.
static REOPEN_REQUESTED: AtomicBool = AtomicBool::new(false);

/// The log file of this process, when `logs.output` names one.
static LOG_FILE: OnceLock<LogFile> = OnceLock::new();

fn open(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Asks for the log file to be opened again by name. Async-signal-safe (SIGUSR1 calls it).
pub fn request_reopen() {
    REOPEN_REQUESTED.store(true, Ordering::Relaxed);
}

/// Opens the log file again if SIGUSR1 asked for it (and the process has one). Called by the
/// writer before each line and by the waits that tick (so an idle process lets go of a
/// rotated file within a tick, not at its next line).
pub fn reopen_if_requested() {
    if REOPEN_REQUESTED.load(Ordering::Relaxed) && REOPEN_REQUESTED.swap(false, Ordering::Relaxed) {
        if let Some(file) = LOG_FILE.get() {
            file.reopen();
        }
    }
}

/// `logs.output` as a file: appended to, and swapped for a new open of the same path on
/// request.
struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl LogFile {
    fn lock(&self) -> MutexGuard<'_, File> {
        self.file.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A path that cannot be opened (its directory gone, no permission) keeps the file open
    /// before, and says so in it: nothing is lost, and the operator finds why in the old file.
    fn reopen(&self) {
        match open(&self.path) {
            Ok(new) => *self.lock() = new,
            Err(e) => {
                let _ = writeln!(
                    self.lock(),
                    "rr: SIGUSR1: cannot open the log file \"{}\" again ({e}); logging on to the file opened before",
                    self.path.display()
                );
            }
        }
    }
}

/// One line's writer: the file, locked for that line.
struct LineWriter<'a>(MutexGuard<'a, File>);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The subscriber's writer: this process's log file.
struct FileWriter(&'static LogFile);

impl<'a> MakeWriter<'a> for FileWriter {
    type Writer = LineWriter<'static>;
    fn make_writer(&'a self) -> Self::Writer {
        reopen_if_requested();
        LineWriter(self.0.lock())
    }
}

/// A line straight to stderr, for the few places that cannot log (no subscriber yet, a forked
/// child, a panic already caught): unlike `eprintln!`, a stderr that is a closed pipe loses
/// the line instead of panicking, which there would unwind into PHP or abort.
pub fn to_stderr(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
