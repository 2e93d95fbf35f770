//! Why a file could not be served. The server turns these into HTTP answers (one table there).
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum StreamError {
    /// The path (or one of its directories) does not exist.
    NotFound(PathBuf),
    /// The path exists but is a directory, device, fifo or socket.
    NotAFile(PathBuf),
    /// The path failed a security check (see [`super::check_allowed`]).
    Forbidden { path: PathBuf, reason: &'static str },
    /// Any other failure to open or stat the file (permission denied, I/O error, ...).
    Io { path: PathBuf, source: io::Error },
}

impl StreamError {
    /// Sorts an open/stat error into the variant the server needs to pick a status.
    pub(crate) fn from_io(path: &Path, source: io::Error) -> StreamError {
        match source.kind() {
            // ENOTDIR: a directory in the path is a file, which is "missing" to a client too.
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
                StreamError::NotFound(path.to_path_buf())
            }
            _ => StreamError::Io {
                path: path.to_path_buf(),
                source,
            },
        }
    }

    /// The path the error is about, for the server's warning.
    pub fn path(&self) -> &Path {
        match self {
            StreamError::NotFound(path) | StreamError::NotAFile(path) => path,
            StreamError::Forbidden { path, .. } | StreamError::Io { path, .. } => path,
        }
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::NotFound(path) => write!(f, "file not found: {}", path.display()),
            StreamError::NotAFile(path) => write!(f, "not a regular file: {}", path.display()),
            StreamError::Forbidden { path, reason } => {
                write!(f, "refusing to serve {}: {reason}", path.display())
            }
            StreamError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
