//! The security check for files someone else named (X-Sendfile, Velox artifacts): only regular
//! files that really live under an allowed root may be streamed.
use super::beneath::{self, Opened};
use super::{OpenFile, StreamError};
use std::path::{Component, Path, PathBuf};

/// Returns the canonical path to serve: absolute, no `..`, symlinks resolved, a regular file
/// inside one of `roots` (themselves canonicalized, so a symlinked root works).
///
/// Serve the returned path, not `path`: it is the one that was checked.
pub fn check_allowed(path: &Path, roots: &[PathBuf]) -> Result<PathBuf, StreamError> {
    allowed(path, roots).map(|(real, _)| real)
}

/// [`check_allowed`], then opens the checked path beneath its root with no link on the way, so
/// a component swapped for a link since the check (to lead out of the root) fails the open
/// instead of being followed. Blocks.
pub fn open_allowed(path: &Path, roots: &[PathBuf]) -> Result<OpenFile, StreamError> {
    let (real, root) = allowed(path, roots)?;
    let inside = real.strip_prefix(&root).expect("allowed() checked it");
    let root_dir = std::fs::File::open(&root).map_err(|e| StreamError::from_io(&root, e))?;
    match beneath::open(&root_dir, inside) {
        Opened::File(file) => OpenFile::from_file(file, real),
        // Without openat2 the check and the open cannot be one step.
        Opened::Unsupported => OpenFile::open(&real),
        Opened::SlowWay => Err(StreamError::Forbidden {
            path: path.to_path_buf(),
            reason: "a link appeared on the path after it was checked",
        }),
        Opened::Missing => Err(StreamError::NotFound(path.to_path_buf())),
        Opened::Failed(e) => Err(StreamError::from_io(path, e)),
    }
}

/// The canonical path and the canonical root it lies in.
fn allowed(path: &Path, roots: &[PathBuf]) -> Result<(PathBuf, PathBuf), StreamError> {
    let forbidden = |reason| StreamError::Forbidden {
        path: path.to_path_buf(),
        reason,
    };
    if !path.is_absolute() {
        return Err(forbidden("path is not absolute"));
    }
    // Rejected even when it would resolve inside a root: a `..` from a build server is a bug or
    // an attack, never a normal artifact path.
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(forbidden("path contains a `..` component"));
    }
    let real = std::fs::canonicalize(path).map_err(|e| StreamError::from_io(path, e))?;
    // A root that does not exist (yet) contains nothing; it is not an error for this file.
    let root = roots
        .iter()
        .filter_map(|root| std::fs::canonicalize(root).ok())
        .find(|root| real.starts_with(root));
    let Some(root) = root else {
        return Err(forbidden("path resolves outside the allowed roots"));
    };
    let meta = std::fs::metadata(&real).map_err(|e| StreamError::from_io(path, e))?;
    if !meta.is_file() {
        return Err(StreamError::NotAFile(path.to_path_buf()));
    }
    Ok((real, root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("rr"), b"bin").unwrap();
        let outside = dir.path().join("secret");
        std::fs::write(&outside, b"no").unwrap();
        (dir, root, outside)
    }

    fn reason(err: StreamError) -> &'static str {
        match err {
            StreamError::Forbidden { reason, .. } => reason,
            other => panic!("expected Forbidden, got {other:?}"),
        }
    }

    #[test]
    fn inside_root_is_allowed() {
        let (_dir, root, _) = setup();
        let got = check_allowed(&root.join("rr"), std::slice::from_ref(&root)).unwrap();
        assert_eq!(got, root.canonicalize().unwrap().join("rr"));
    }

    #[test]
    fn parent_component_is_refused_even_inside() {
        let (_dir, root, _) = setup();
        std::fs::create_dir(root.join("sub")).unwrap();
        let sneaky = root.join("sub/../rr");
        let err = check_allowed(&sneaky, &[root]).unwrap_err();
        assert!(reason(err).contains(".."));
    }

    #[test]
    fn relative_is_refused() {
        let (_dir, root, _) = setup();
        let err = check_allowed(Path::new("root/rr"), &[root]).unwrap_err();
        assert!(reason(err).contains("absolute"));
    }

    #[test]
    fn symlink_escaping_root_is_refused() {
        let (_dir, root, outside) = setup();
        symlink(&outside, root.join("link")).unwrap();
        let err = check_allowed(&root.join("link"), &[root]).unwrap_err();
        assert!(reason(err).contains("outside"));
    }

    #[test]
    fn outside_and_sibling_prefix_are_refused() {
        let (dir, root, outside) = setup();
        // `/x/root2` starts with the string `/x/root` but is not inside it.
        let sibling = dir.path().join("root2");
        std::fs::create_dir(&sibling).unwrap();
        std::fs::write(sibling.join("f"), b"").unwrap();
        for path in [outside, sibling.join("f")] {
            let err = check_allowed(&path, std::slice::from_ref(&root)).unwrap_err();
            assert!(reason(err).contains("outside"));
        }
        assert!(matches!(
            check_allowed(&root.join("rr"), &[]),
            Err(StreamError::Forbidden { .. })
        ));
    }

    #[test]
    fn directory_is_not_a_file() {
        let (_dir, root, _) = setup();
        std::fs::create_dir(root.join("d")).unwrap();
        let err = check_allowed(&root.join("d"), &[root]).unwrap_err();
        assert!(matches!(err, StreamError::NotAFile(_)), "{err:?}");
    }

    #[test]
    fn device_is_refused() {
        let (_dir, root, _) = setup();
        let err = check_allowed(Path::new("/dev/null"), &[root]).unwrap_err();
        assert!(matches!(err, StreamError::Forbidden { .. }), "{err:?}");
        // Even when its directory is an allowed root.
        let err = check_allowed(Path::new("/dev/null"), &[PathBuf::from("/dev")]).unwrap_err();
        assert!(matches!(err, StreamError::NotAFile(_)), "{err:?}");
    }

    #[test]
    fn fifo_is_not_a_file() {
        let (_dir, root, _) = setup();
        let fifo = root.join("pipe");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: c_path is a valid NUL-terminated string that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let err = check_allowed(&fifo, &[root]).unwrap_err();
        assert!(matches!(err, StreamError::NotAFile(_)), "{err:?}");
    }

    #[test]
    fn missing_is_not_found() {
        let (_dir, root, _) = setup();
        let err = check_allowed(&root.join("gone"), &[root]).unwrap_err();
        assert!(matches!(err, StreamError::NotFound(_)), "{err:?}");
    }

    #[test]
    fn file_via_symlinked_root_is_allowed() {
        let (dir, root, _) = setup();
        let alias = dir.path().join("alias");
        symlink(&root, &alias).unwrap();
        // Root given as the symlink, path through the real directory, and the other way round.
        assert!(check_allowed(&root.join("rr"), std::slice::from_ref(&alias)).is_ok());
        assert!(check_allowed(&alias.join("rr"), std::slice::from_ref(&root)).is_ok());
    }
}
