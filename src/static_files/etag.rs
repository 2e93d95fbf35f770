//! Strong ETags (`http.static.calculate_etag` without `weak`): a CRC-32 of the content and its
//! size, as RoadRunner computes them. Hashing reads the whole file, so a tag is kept per file
//! and reused while the file is the same version: same inode, size, modification and change
//! time. Size and date alone are not enough: reproducible builds and archives give every file
//! one fixed date, so a fix that keeps the length would keep the old version's tag.
use crate::stream::OpenFile;
use http::HeaderValue;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Files whose tags are kept; past that the table starts over (a site has far fewer assets).
const KEPT: usize = 4096;

#[derive(Default)]
pub(crate) struct StrongTags {
    known: Mutex<HashMap<PathBuf, Known>>,
    /// Hashes under way: a request for a version being hashed waits for that read instead of
    /// starting its own (a video player opens several ranges of a large file at once).
    flights: Mutex<HashMap<PathBuf, (Version, Flight)>>,
}

type Flight = Arc<tokio::sync::OnceCell<HeaderValue>>;

struct Known {
    version: Version,
    tag: HeaderValue,
}

/// One version of a file, as `fstat` tells it without reading the file. A file renamed over the
/// path is another inode; a write in place moves the change time, which (unlike the
/// modification time) no one can set back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
    changed: (i64, i64),
}

impl Version {
    fn of(file: &OpenFile) -> Version {
        let meta = file.metadata();
        Version {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            modified: file.modified(),
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

impl StrongTags {
    /// The tag computed before for this version of the file, if any. Does not block.
    pub(crate) fn known(&self, file: &OpenFile) -> Option<HeaderValue> {
        let known = lock(&self.known);
        let entry = known.get(file.path())?;
        (entry.version == Version::of(file)).then(|| entry.tag.clone())
    }

    /// The tag of `file`: from the table, from a hash of this version under way, or read now
    /// on the blocking pool. The file comes back with it.
    pub(crate) async fn tag(&self, file: OpenFile) -> io::Result<(HeaderValue, OpenFile)> {
        if let Some(tag) = self.known(&file) {
            return Ok((tag, file));
        }
        // Taken before the read: a write during it moves the change time, so the next request
        // hashes again rather than keep a tag of half-written content.
        let version = Version::of(&file);
        let path = file.path().to_path_buf();
        let flight = {
            let mut flights = lock(&self.flights);
            match flights.get(&path) {
                Some((v, flight)) if *v == version => flight.clone(),
                _ => {
                    let flight = Flight::default();
                    flights.insert(path.clone(), (version, flight.clone()));
                    flight
                }
            }
        };
        // Its own descriptor: the request keeps `file`, and a waiter whose leader left (or
        // failed) hashes with its own.
        let copy = file.file().try_clone()?;
        let hashed = flight
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || compute(&copy))
                    .await
                    .unwrap_or_else(|join| Err(io::Error::other(join)))
            })
            .await
            .cloned();
        // The tag goes in the table before the flight ends, so no request finds neither.
        if let Ok(tag) = &hashed {
            let mut known = lock(&self.known);
            if known.len() >= KEPT {
                known.clear();
            }
            let tag = tag.clone();
            known.insert(path.clone(), Known { version, tag });
        }
        let mut flights = lock(&self.flights);
        if matches!(flights.get(&path), Some((_, f)) if Arc::ptr_eq(f, &flight)) {
            flights.remove(&path);
        }
        drop(flights);
        Ok((hashed?, file))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The tables hold plain values, consistent even if a holder panicked.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn compute(file: &File) -> io::Result<HeaderValue> {
    let mut crc = flate2::Crc::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    loop {
        let n = file.read_at(&mut buf, offset)?;
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
        offset += n as u64;
    }
    let tag = format!("\"{offset:x}-{:08x}\"", crc.sum());
    Ok(HeaderValue::try_from(tag).expect("hex digits and quotes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn tag(tags: &StrongTags, path: &std::path::Path) -> HeaderValue {
        tags.tag(OpenFile::open(path).unwrap()).await.unwrap().0
    }

    #[tokio::test]
    async fn tag_follows_the_content_and_is_reused_while_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.css");
        std::fs::write(&path, b"body{}").unwrap();
        let tags = StrongTags::default();
        assert_eq!(tags.known(&OpenFile::open(&path).unwrap()), None);
        let first = tag(&tags, &path).await;
        assert_eq!(
            tags.known(&OpenFile::open(&path).unwrap()),
            Some(first.clone())
        );
        // CRC-32 (IEEE) of "body{}", length 6.
        let expected = format!("\"6-{:08x}\"", {
            let mut crc = flate2::Crc::new();
            crc.update(b"body{}");
            crc.sum()
        });
        assert_eq!(first, expected.as_str());
        assert_eq!(tag(&tags, &path).await, first);

        std::fs::write(&path, b"body{color:red}").unwrap();
        let second = tag(&tags, &path).await;
        assert_ne!(second, first);
        assert!(second.to_str().unwrap().starts_with("\"f-"));
        // Same name, other content elsewhere: a different tag (the path is only the cache key).
        let other = dir.path().join("b.css");
        std::fs::write(&other, b"p{}").unwrap();
        assert_ne!(tag(&tags, &other).await, second);
        assert!(tags.flights.lock().unwrap().is_empty(), "no flight left");
    }
}
