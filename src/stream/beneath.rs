//! Opening a file under a directory (the static one, an allowed one) in one system call:
//! `openat2` (Linux 5.6+) with `RESOLVE_BENEATH`, so the kernel refuses any way out of the
//! directory, and `RESOLVE_NO_SYMLINKS`, so a path with a link in it takes the slow way
//! (canonicalize, then check where the link leads), and a path that was checked that way opens
//! only if no link appeared on it since. The slow way alone costs a `readlink` per component.
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The kernel's `struct open_how` (libc's is non-exhaustive, so it cannot be built here).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub(crate) enum Opened {
    File(File),
    /// Nothing there (or a component is not a directory).
    Missing,
    /// A symbolic link on the way: take the slow way.
    SlowWay,
    /// No `openat2` here (old kernel, seccomp): the slow way, without the kernel's check.
    Unsupported,
    /// Anything else (permission denied, ...).
    Failed(io::Error),
}

/// Opens `relative` (no `..`, no NUL) under the directory `root` for reading.
///
/// `O_NONBLOCK` so that a fifo cannot block the open; the caller checks with `fstat` that it
/// got a regular file. A device node would be opened before that check: only root can make
/// one, in a directory meant to hold the site's public files.
pub(crate) fn open(root: &File, relative: &Path) -> Opened {
    let Ok(path) = CString::new(relative.as_os_str().as_bytes()) else {
        return Opened::Missing;
    };
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `root` is an open descriptor borrowed for the call, `path` is NUL-terminated and
    // outlives it, and `how` is a valid `open_how` whose size is passed along.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd >= 0 {
        // SAFETY: the kernel just returned this descriptor; nothing else owns it.
        return Opened::File(unsafe { File::from_raw_fd(fd as i32) });
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => Opened::Missing,
        // ELOOP: a link; EXDEV: the kernel saw a way out (links are where that can happen).
        Some(libc::ELOOP | libc::EXDEV) => Opened::SlowWay,
        Some(libc::ENOSYS | libc::EPERM) => Opened::Unsupported,
        _ => Opened::Failed(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn outcome(root: &File, relative: &str) -> &'static str {
        match open(root, Path::new(relative)) {
            Opened::File(_) => "file",
            Opened::Missing => "missing",
            Opened::SlowWay => "slow",
            Opened::Unsupported => "unsupported",
            Opened::Failed(_) => "failed",
        }
    }

    #[test]
    fn plain_paths_open_and_links_take_the_slow_way() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("css")).unwrap();
        std::fs::write(root.join("css/a.css"), "a").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        symlink(dir.path().join("secret"), root.join("out.txt")).unwrap();
        symlink(root.join("css"), root.join("styles")).unwrap();
        let root = File::open(&root).unwrap();
        assert_eq!(outcome(&root, "css/a.css"), "file");
        assert_eq!(
            outcome(&root, "css"),
            "file",
            "a directory opens; fstat tells"
        );
        assert_eq!(outcome(&root, "css/b.css"), "missing");
        assert_eq!(outcome(&root, "css/a.css/x"), "missing");
        assert_eq!(outcome(&root, "out.txt"), "slow");
        assert_eq!(outcome(&root, "styles/a.css"), "slow");
        // Never reachable from rr's paths, but the kernel refuses it too.
        assert_ne!(outcome(&root, "../secret"), "file");
        assert_ne!(outcome(&root, "/etc/passwd"), "file");
    }
}
