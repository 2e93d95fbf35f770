//! Why a configuration could not be loaded. Every variant names where the bad input came from
//! (the file, or the override's origin such as "ini rr.address") so the message alone is enough
//! to fix it.

use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
pub enum ConfigError {
    /// A config file named explicitly (option, ini or `RR_CONFIG`) is missing or not a file.
    FileNotFound {
        path: PathBuf,
        named_by: &'static str,
    },
    /// The config file exists but could not be read.
    Read { path: PathBuf, source: io::Error },
    /// The file is not valid YAML; line and column are 1-based when the parser knows them.
    Syntax {
        origin: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// A key rr does not know (and that is not one of RoadRunner's that rr ignores).
    UnknownKey {
        origin: String,
        key: String,
        suggestion: Option<String>,
    },
    /// A key that must be set when its section is present.
    MissingKey {
        origin: String,
        key: String,
        expected: String,
    },
    /// A known key with a value of the wrong shape or out of range.
    InvalidValue {
        origin: String,
        key: String,
        value: String,
        expected: String,
    },
    /// A RoadRunner feature that rr refuses rather than silently ignoring.
    Unsupported {
        origin: String,
        key: String,
        reason: String,
    },
}

impl ConfigError {
    /// The dotted key the error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::UnknownKey { key, .. }
            | Self::MissingKey { key, .. }
            | Self::InvalidValue { key, .. }
            | Self::Unsupported { key, .. } => Some(key),
            Self::FileNotFound { .. } | Self::Read { .. } | Self::Syntax { .. } => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FileNotFound { path, named_by } => write!(
                f,
                "rr config: file '{}' (named by {named_by}) does not exist or is not a file",
                path.display()
            ),
            Self::Read { path, source } => {
                write!(f, "rr config {}: cannot read: {source}", path.display())
            }
            Self::Syntax {
                origin,
                line,
                column,
                message,
            } => match (line, column) {
                (Some(line), Some(column)) => write!(
                    f,
                    "rr config {origin}: line {line}, column {column}: invalid YAML: {message}"
                ),
                _ => write!(f, "rr config {origin}: invalid YAML: {message}"),
            },
            Self::UnknownKey {
                origin,
                key,
                suggestion,
            } => {
                write!(f, "rr config {origin}: unknown key '{key}'")?;
                match suggestion {
                    Some(known) => write!(f, " (did you mean '{known}'?)"),
                    None => Ok(()),
                }
            }
            Self::MissingKey {
                origin,
                key,
                expected,
            } => write!(
                f,
                "rr config {origin}: key '{key}' is missing: expected {expected}"
            ),
            Self::InvalidValue {
                origin,
                key,
                value,
                expected,
            } if key.is_empty() => {
                write!(
                    f,
                    "rr config {origin}: invalid value {value}: expected {expected}"
                )
            }
            Self::InvalidValue {
                origin,
                key,
                value,
                expected,
            } => write!(
                f,
                "rr config {origin}: key '{key}': invalid value {value}: expected {expected}"
            ),
            Self::Unsupported {
                origin,
                key,
                reason,
            } => write!(
                f,
                "rr config {origin}: key '{key}' is not supported: {reason}"
            ),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}
