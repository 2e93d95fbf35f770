//! rr's record of the artifact built for each spec, and the strong `ETag` naming one version
//! of it. With the record, every GET, HEAD and Range request of a spec is served the same file
//! for as long as it exists, whatever request id PHP sent; with the tag, a resumed download
//! (`If-Range`) gets the rest only if the file is still the one it started with.
use http::HeaderValue;
use std::collections::{HashMap, VecDeque};
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Velox keeps 100 builds; a few more entries cost little, and a stale one is found out at
/// the first open.
const MAX_RECORDS: usize = 256;

/// Spec hash → the checked path of its last good build.
#[derive(Debug, Default)]
pub struct Records {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    paths: HashMap<String, PathBuf>,
    /// Insertion order, oldest first, for the size bound.
    order: VecDeque<String>,
}

impl Records {
    pub fn get(&self, hash: &str) -> Option<PathBuf> {
        self.lock().paths.get(hash).cloned()
    }

    /// Records a new build of `hash`, replacing the previous one.
    pub fn set(&self, hash: &str, path: PathBuf) {
        let mut inner = self.lock();
        if inner.paths.insert(hash.to_string(), path).is_none() {
            inner.order.push_back(hash.to_string());
        }
        while inner.order.len() > MAX_RECORDS {
            if let Some(oldest) = inner.order.pop_front() {
                inner.paths.remove(&oldest);
            }
        }
    }

    /// Drops the record if it still points at `path` (a newer build may have replaced it).
    pub fn forget(&self, hash: &str, path: &Path) {
        let mut inner = self.lock();
        if inner.paths.get(hash).is_some_and(|p| p == path) {
            inner.paths.remove(hash);
            inner.order.retain(|h| h != hash);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().paths.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change is a few map operations on owned values: a poisoned lock is still sound.
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// A strong tag for one version of a spec's artifact: the spec, and the file's identity,
/// size and modification time. Velox writes each build as a new file and never changes it
/// afterwards, so these name its bytes; a rebuild, even at the same path, gets a new tag.
pub fn etag(hash: &str, meta: &Metadata) -> HeaderValue {
    let nanos = meta.mtime() as i128 * 1_000_000_000 + i128::from(meta.mtime_nsec());
    let tag = format!(
        "\"{}-{:x}-{:x}-{:x}\"",
        &hash[..hash.len().min(16)],
        meta.ino(),
        meta.len(),
        nanos
    );
    HeaderValue::try_from(tag).expect("an ETag of hex digits")
}
