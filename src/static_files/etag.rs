//! Strong ETags (`http.static.calculate_etag` without `weak`): a CRC-32 of the content and its
//! size, as RoadRunner computes them. Hashing reads the whole file, so a tag is kept per file
//! and reused while the file is the same version: same inode, size, modification and change
//! time. Size and date alone are not enough: reproducible builds and archives give every file
//! one fixed date, so a fix that keeps the length would keep the old version's tag.
use crate::stream::OpenFile;
use http::HeaderValue;
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

/// Files whose tags are kept; past that the table starts over (a site has far fewer assets).
const KEPT: usize = 4096;

#[derive(Default)]
pub(crate) struct StrongTags {
    known: Mutex<HashMap<PathBuf, Known>>,
}

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
        let known = self.lock();
        let entry = known.get(file.path())?;
        (entry.version == Version::of(file)).then(|| entry.tag.clone())
    }

    /// The tag of `file`, from the table or computed. Blocks: it may read the whole file.
    pub(crate) fn tag(&self, file: &OpenFile) -> io::Result<HeaderValue> {
        if let Some(tag) = self.known(file) {
            return Ok(tag);
        }
        // Taken before the read: a write during it moves the change time, so the next request
        // hashes again rather than keep a tag of half-written content.
        let version = Version::of(file);
        let tag = compute(file)?;
        let mut known = self.lock();
        if known.len() >= KEPT {
            known.clear();
        }
        known.insert(
            file.path().to_path_buf(),
            Known {
                version,
                tag: tag.clone(),
            },
        );
        Ok(tag)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Known>> {
        // The table holds plain values, consistent even if a holder panicked.
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn compute(file: &OpenFile) -> io::Result<HeaderValue> {
    let mut crc = flate2::Crc::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    loop {
        let n = file.file().read_at(&mut buf, offset)?;
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

    #[test]
    fn tag_follows_the_content_and_is_reused_while_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.css");
        std::fs::write(&path, b"body{}").unwrap();
        let tags = StrongTags::default();
        assert_eq!(tags.known(&OpenFile::open(&path).unwrap()), None);
        let first = tags.tag(&OpenFile::open(&path).unwrap()).unwrap();
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
        assert_eq!(tags.tag(&OpenFile::open(&path).unwrap()).unwrap(), first);

        std::fs::write(&path, b"body{color:red}").unwrap();
        let second = tags.tag(&OpenFile::open(&path).unwrap()).unwrap();
        assert_ne!(second, first);
        assert!(second.to_str().unwrap().starts_with("\"f-"));
        // Same name, other content elsewhere: a different tag (the path is only the cache key).
        let other = dir.path().join("b.css");
        std::fs::write(&other, b"p{}").unwrap();
        assert_ne!(tags.tag(&OpenFile::open(&other).unwrap()).unwrap(), second);
    }
}
