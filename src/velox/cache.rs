//! The local artifact cache: one file per spec hash in `cache.dir`, least recently used
//! entries evicted to stay under `max_size`. Velox deletes its own copies after 30 minutes,
//! this one keeps them as long as there is room.
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    max_size: u64,
    index: Mutex<Index>,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<String, Entry>,
    total: u64,
    /// Grows on every use; an entry's `used` is the clock at its last use.
    clock: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    used: u64,
}

impl Cache {
    /// Indexes the files already in `dir` (mtime as recency); a missing dir is an empty cache.
    /// Copies a killed process left half-made (`.<hash>.<uuid>`) are deleted: nothing else
    /// would ever delete them, and they count against no `max_size`.
    pub fn open(dir: PathBuf, max_size: u64) -> Cache {
        let mut found: Vec<(SystemTime, String, u64)> = Vec::new();
        if let Ok(listing) = fs::read_dir(&dir) {
            for entry in listing.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if is_partial_copy(&name) {
                    if let Err(e) = fs::remove_file(entry.path()) {
                        tracing::warn!(file = name, error = %e, "cannot remove a partial velox cache copy");
                    }
                    continue;
                }
                let ours = is_hash(&name);
                match entry.metadata() {
                    Ok(meta) if ours && meta.is_file() => {
                        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                        found.push((mtime, name, meta.len()));
                    }
                    _ => {}
                }
            }
        }
        found.sort();
        let cache = Cache {
            dir,
            max_size,
            index: Mutex::default(),
        };
        let mut index = cache.lock();
        for (_, hash, size) in found {
            index.insert(hash, size);
        }
        let gone = index.evict(max_size, None);
        drop(index);
        cache.remove_files(gone);
        cache
    }

    /// The cached file for `hash`, marked as just used.
    pub fn lookup(&self, hash: &str) -> Option<PathBuf> {
        let mut index = self.lock();
        index.clock += 1;
        let clock = index.clock;
        let entry = index.entries.get_mut(hash)?;
        entry.used = clock;
        Some(self.dir.join(hash))
    }

    /// Drops an entry whose file turned out to be unusable.
    pub fn forget(&self, hash: &str) {
        let mut index = self.lock();
        if let Some(entry) = index.entries.remove(hash) {
            index.total -= entry.size;
        }
    }

    /// Copies `src` in as `hash` (a hard link when on the same filesystem), then evicts.
    /// Blocking: run it on the blocking pool. Index and files change together here, so an
    /// aborted caller cannot leave them out of step.
    pub fn store(&self, hash: &str, src: &fs::File) -> io::Result<PathBuf> {
        fs::create_dir_all(&self.dir)?;
        let tmp = self
            .dir
            .join(format!(".{hash}.{}", uuid::Uuid::new_v4().simple()));
        if link_open_file(src, &tmp).is_err() {
            let copied =
                fs::File::create_new(&tmp).and_then(|mut to| io::copy(&mut &*src, &mut to));
            if let Err(e) = copied {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        }
        let size = fs::metadata(&tmp)?.len();
        if size > self.max_size {
            let _ = fs::remove_file(&tmp);
            return Err(io::Error::other("artifact larger than cache.max_size"));
        }
        // A hard link keeps Velox's mtime; the restart order should see it as fresh.
        if let Ok(file) = fs::File::options().write(true).open(&tmp) {
            let _ = file.set_modified(SystemTime::now());
        }
        let path = self.dir.join(hash);
        fs::rename(&tmp, &path)?;
        let mut index = self.lock();
        if let Some(old) = index.entries.remove(hash) {
            index.total -= old.size;
        }
        index.insert(hash.to_string(), size);
        let gone = index.evict(self.max_size, Some(hash));
        drop(index);
        self.remove_files(gone);
        Ok(path)
    }

    /// Bytes held, by the index.
    #[cfg(test)]
    pub fn size(&self) -> u64 {
        self.lock().total
    }

    #[cfg(test)]
    pub fn contains(&self, hash: &str) -> bool {
        self.lock().entries.contains_key(hash)
    }

    fn remove_files(&self, hashes: Vec<String>) {
        for hash in hashes {
            // A client still streaming it keeps its open file; unlinking is safe.
            if let Err(e) = fs::remove_file(self.dir.join(&hash)) {
                tracing::warn!(hash, error = %e, "cannot remove evicted velox cache file");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // The index stays consistent across a panic elsewhere: every change is one statement.
        self.index
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl Index {
    fn insert(&mut self, hash: String, size: u64) {
        self.clock += 1;
        let used = self.clock;
        self.total += size;
        self.entries.insert(hash, Entry { size, used });
    }

    /// Removes least recently used entries until `total <= max`, never `keep`.
    fn evict(&mut self, max: u64, keep: Option<&str>) -> Vec<String> {
        let mut gone = Vec::new();
        while self.total > max {
            let victim = self
                .entries
                .iter()
                .filter(|(hash, _)| Some(hash.as_str()) != keep)
                .min_by_key(|(_, e)| e.used)
                .map(|(hash, _)| hash.clone());
            let Some(hash) = victim else { break };
            if let Some(entry) = self.entries.remove(&hash) {
                self.total -= entry.size;
            }
            gone.push(hash);
        }
        gone
    }
}

/// A cache entry's name: a spec's SHA-256 in hex.
fn is_hash(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A copy `store` was making: `.<hash>.<uuid without dashes>`.
fn is_partial_copy(name: &str) -> bool {
    let Some((hash, uuid)) = name.strip_prefix('.').and_then(|rest| rest.split_once('.')) else {
        return false;
    };
    is_hash(hash) && uuid.len() == 32 && uuid.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A hard link at `to` to the very file `src` is open on (the one that was checked, whatever its
/// path names now): `linkat` through `/proc/self/fd`, following that one link.
fn link_open_file(src: &fs::File, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    let from = std::ffi::CString::new(format!("/proc/self/fd/{}", src.as_raw_fd()))
        .map_err(io::Error::other)?;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: both paths are NUL-terminated strings that outlive the call; linkat only reads them.
    let done = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    match done {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}
