//! Structured logs through `tracing`, set up once from the `logs` section.
use crate::config::{LogEncoding, LogLevel, LogOutput, LogsConfig};
use std::sync::Mutex;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

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
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            BoxMakeWriter::new(Mutex::new(file))
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

/// A line straight to stderr, for the few places that cannot log (no subscriber yet, a forked
/// child, a panic already caught): unlike `eprintln!`, a stderr that is a closed pipe loses
/// the line instead of panicking, which there would unwind into PHP or abort.
pub fn to_stderr(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
