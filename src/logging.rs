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
        .with_ansi(false);
    let _ = match config.encoding {
        LogEncoding::Json => builder.json().try_init(),
        LogEncoding::Text => builder.try_init(),
    };
    Ok(())
}
