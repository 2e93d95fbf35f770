//! Multipart text fields past `http.body_buffer_size`: written to a temp file as they arrive and
//! read back into the form when PHP takes the request, so a form with large text fields that
//! waits behind busy workers costs disk, not memory (nginx keeps such a body on disk until
//! php-fpm reads it).
//!
//! The file holds one record per field, in the order they came: the name's length (u32 LE) and
//! bytes, then the value as chunks, each its length (u32 LE, never 0) and bytes, ended by a
//! length of 0. Values are written as they arrive, so no value is ever held whole here.
use super::form::Tree;
use super::spool::TempSink;
use bytes::{Bytes, BytesMut};
use std::io::{BufReader, Read};
use std::path::Path;
use tempfile::TempPath;

/// The writing end, while the body arrives. Dropping it before `finish` deletes the file.
pub struct FieldSpool {
    sink: TempSink,
}

impl FieldSpool {
    pub async fn create(dir: &Path) -> std::io::Result<FieldSpool> {
        Ok(FieldSpool {
            sink: TempSink::create(dir, "rr-fields-").await?,
        })
    }

    /// Starts the record of a field called `name`; its value follows with `chunk` and `end`.
    pub async fn start(&mut self, name: &[u8]) -> std::io::Result<()> {
        let mut head = BytesMut::with_capacity(4 + name.len());
        head.extend_from_slice(&length(name.len())?.to_le_bytes());
        head.extend_from_slice(name);
        self.sink.write(head.freeze()).await
    }

    /// Appends a piece of the current field's value.
    pub async fn chunk(&mut self, bytes: Bytes) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.sink
            .write(Bytes::copy_from_slice(&length(bytes.len())?.to_le_bytes()))
            .await?;
        self.sink.write(bytes).await
    }

    /// Ends the current field's value.
    pub async fn end(&mut self) -> std::io::Result<()> {
        self.sink.write(Bytes::from_static(&[0; 4])).await
    }

    pub async fn finish(self) -> std::io::Result<SpooledFields> {
        Ok(SpooledFields {
            path: self.sink.finish().await?,
        })
    }
}

fn length(len: usize) -> std::io::Result<u32> {
    u32::try_from(len).map_err(|_| std::io::Error::other("a multipart piece over 4 GiB"))
}

/// The fields of one request that wait on disk. The file is deleted on drop, unless this is a
/// pool worker's copy naming the master's file (`unowned`).
#[derive(Debug)]
pub struct SpooledFields {
    path: TempPath,
}

impl SpooledFields {
    /// A copy naming a file that someone else deletes: the pool's workers read the master's.
    pub fn unowned(path: impl Into<std::path::PathBuf>) -> Option<SpooledFields> {
        let mut path = TempPath::try_from_path(path).ok()?;
        path.disable_cleanup(true);
        Some(SpooledFields { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds every field of the file to `form`, in the order they came, as `Tree::insert` would
    /// have when they arrived. A file cut short or not in this format is an error; `form` then
    /// holds the fields read before it.
    pub fn load_into(&self, form: &mut Tree<Bytes>, max_depth: usize) -> std::io::Result<()> {
        let mut file = BufReader::new(std::fs::File::open(&self.path)?);
        while let Some(name_len) = read_length(&mut file, true)? {
            let mut name = vec![0; name_len];
            file.read_exact(&mut name)?;
            let mut value = Vec::new();
            loop {
                match read_length(&mut file, false)? {
                    Some(0) => break,
                    Some(len) => {
                        let start = value.len();
                        value.resize(start + len, 0);
                        file.read_exact(&mut value[start..])?;
                    }
                    None => unreachable!("read_length(.., false) never ends the file"),
                }
            }
            form.insert(&name, Bytes::from(value), max_depth);
        }
        Ok(())
    }
}

/// A u32 LE length; None at the end of the file when `may_end` (between records).
fn read_length(file: &mut impl Read, may_end: bool) -> std::io::Result<Option<usize>> {
    let mut bytes = [0u8; 4];
    let mut got = 0;
    while got < bytes.len() {
        match file.read(&mut bytes[got..])? {
            0 if got == 0 && may_end => return Ok(None),
            0 => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "spooled multipart fields cut short",
                ))
            }
            n => got += n,
        }
    }
    Ok(Some(u32::from_le_bytes(bytes) as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::form::{Key, Node};

    async fn spooled(dir: &Path, fields: &[(&[u8], &[&[u8]])]) -> SpooledFields {
        let mut spool = FieldSpool::create(dir).await.unwrap();
        for (name, chunks) in fields {
            spool.start(name).await.unwrap();
            for chunk in *chunks {
                spool.chunk(Bytes::copy_from_slice(chunk)).await.unwrap();
            }
            spool.end().await.unwrap();
        }
        spool.finish().await.unwrap()
    }

    fn leaf<'a>(tree: &'a Tree<Bytes>, name: &str) -> &'a [u8] {
        match tree.get(&Key::Name(name.into())) {
            Some(Node::Leaf(value)) => value,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[tokio::test]
    async fn fields_come_back_in_order_with_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let every_byte: Vec<u8> = (0..=255).collect();
        let fields = spooled(
            dir.path(),
            &[
                (b"a", &[b"first ", b"", b"second"]),
                (b"empty", &[]),
                (b"b[]", &[b"x"]),
                (b"b[]", &[&every_byte]),
                (b"a", &[b"again"]),
            ],
        )
        .await;
        let mut form = Tree::new();
        form.insert(b"before", Bytes::from_static(b"in memory"), 64);
        fields.load_into(&mut form, 64).unwrap();
        let names: Vec<_> = form.entries().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            names,
            [
                Key::Name("before".into()),
                Key::Name("a".into()),
                Key::Name("empty".into()),
                Key::Name("b".into())
            ]
        );
        assert_eq!(leaf(&form, "a"), b"again");
        assert_eq!(leaf(&form, "empty"), b"");
        let Some(Node::Map(b)) = form.get(&Key::Name("b".into())) else {
            panic!("b is not an array");
        };
        assert_eq!(b.len(), 2);
        let Some(Node::Leaf(last)) = b.get(&Key::Index(1)) else {
            panic!("b[1] is not a value");
        };
        assert_eq!(last[..], every_byte[..]);
    }

    #[tokio::test]
    async fn a_file_cut_short_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let fields = spooled(dir.path(), &[(b"a", &[b"value"])]).await;
        let whole = std::fs::read(fields.path()).unwrap();
        for cut in 1..whole.len() {
            std::fs::write(fields.path(), &whole[..cut]).unwrap();
            let err = fields.load_into(&mut Tree::new(), 64).unwrap_err();
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::UnexpectedEof,
                "cut at {cut}"
            );
        }
    }

    #[tokio::test]
    async fn the_file_is_deleted_with_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let fields = spooled(dir.path(), &[(b"a", &[b"1"])]).await;
        let path = fields.path().to_owned();
        let copy = SpooledFields::unowned(&path).unwrap();
        drop(copy);
        assert!(path.exists());
        drop(fields);
        assert!(!path.exists());
        let dropped = FieldSpool::create(dir.path()).await.unwrap();
        drop(dropped);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
