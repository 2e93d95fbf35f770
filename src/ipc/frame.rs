//! The frames master and worker exchange, and their encoding:
//! `u32 length (LE) | u8 kind | payload`, the length counting kind and payload.
use super::wire::{put_addr, put_bytes, put_headers, put_str, DecodeError, Reader};
use crate::request::fields::SpooledFields;
use crate::request::form::{Key, Node, Tree};
use crate::request::multipart::Upload;
use crate::request::spool::RequestBody;
use crate::request::target::Target;
use crate::request::RequestData;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, StatusCode};

/// Length prefix plus kind.
const HEAD: usize = 5;

/// One message on the channel.
#[derive(Debug)]
pub enum Frame {
    // master → worker
    /// A request to run; the uploads stay owned (and deleted) by the master.
    Request(Box<RequestData>),
    /// Finish: `waitRequest()` returns null.
    Stop,
    /// The answer to `ListWorkers`: the pool's workers as JSON.
    Workers(String),
    /// To the template: fork worker `id`. Sent with three descriptors attached (its channel,
    /// stdout and stderr pipes; see [`super::fds`]).
    Fork {
        id: u64,
    },
    // worker → master
    /// The worker reached its first `waitRequest()`: it booted.
    Ready,
    Full {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    StreamHead {
        status: StatusCode,
        headers: HeaderMap,
    },
    Chunk(Bytes),
    StreamEnd,
    /// The worker stopped mid-stream: the client must see a cut-off answer.
    StreamAbort,
    File {
        path: String,
        status: StatusCode,
        headers: HeaderMap,
    },
    Velox {
        body: Bytes,
        gzip: bool,
        headers: HeaderMap,
    },
    Error(String),
    /// `RR\workers()` in a worker: the master answers with `Workers`.
    ListWorkers,
    /// `RR\Worker::retire()`: replace this worker once the current answer is sent.
    Retire,
    /// `RR\Worker::reload()`: reload the pool (a new generation replaces every worker), as
    /// SIGHUP does; taken whether the worker is idle or busy.
    Reload,
    /// The worker runs no more requests: every request it was sent and has not answered was
    /// never started, and the master hands them to other workers. Sent between requests only.
    Declined,
    /// The request last answered is over (the script asks for the next one): its uploads and
    /// spooled body can go. Sent only after a request that had either.
    Released,
    // template → master
    /// The template reached its first `waitRequest()`: it booted and waits for `Fork`.
    Booted,
    /// Worker `id` was forked and runs as process `pid`.
    Forked {
        id: u64,
        pid: u32,
    },
    /// Worker `id` could not be forked.
    ForkFailed {
        id: u64,
        message: String,
    },
}

mod kind {
    pub const REQUEST: u8 = 1;
    pub const STOP: u8 = 2;
    pub const WORKERS: u8 = 3;
    pub const FORK: u8 = 4;
    pub const READY: u8 = 10;
    pub const FULL: u8 = 11;
    pub const STREAM_HEAD: u8 = 12;
    pub const CHUNK: u8 = 13;
    pub const STREAM_END: u8 = 14;
    pub const STREAM_ABORT: u8 = 15;
    pub const FILE: u8 = 16;
    pub const VELOX: u8 = 17;
    pub const ERROR: u8 = 18;
    pub const LIST_WORKERS: u8 = 19;
    pub const RETIRE: u8 = 20;
    pub const DECLINED: u8 = 21;
    pub const RELOAD: u8 = 22;
    pub const RELEASED: u8 = 23;
    pub const BOOTED: u8 = 30;
    pub const FORKED: u8 = 31;
    pub const FORK_FAILED: u8 = 32;
}

impl Frame {
    /// Whether this frame completes the answer to a request (the worker is free after it).
    pub fn ends_answer(&self) -> bool {
        matches!(
            self,
            Frame::Full { .. }
                | Frame::StreamEnd
                | Frame::StreamAbort
                | Frame::File { .. }
                | Frame::Velox { .. }
                | Frame::Error(_)
        )
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u32_le(0);
        match self {
            Frame::Request(r) => {
                out.put_u8(kind::REQUEST);
                put_request(out, r);
            }
            Frame::Stop => out.put_u8(kind::STOP),
            Frame::Workers(json) => {
                out.put_u8(kind::WORKERS);
                put_str(out, json);
            }
            Frame::ListWorkers => out.put_u8(kind::LIST_WORKERS),
            Frame::Fork { id } => {
                out.put_u8(kind::FORK);
                out.put_u64_le(*id);
            }
            Frame::Retire => out.put_u8(kind::RETIRE),
            Frame::Declined => out.put_u8(kind::DECLINED),
            Frame::Reload => out.put_u8(kind::RELOAD),
            Frame::Released => out.put_u8(kind::RELEASED),
            Frame::Booted => out.put_u8(kind::BOOTED),
            Frame::Forked { id, pid } => {
                out.put_u8(kind::FORKED);
                out.put_u64_le(*id);
                out.put_u32_le(*pid);
            }
            Frame::ForkFailed { id, message } => {
                out.put_u8(kind::FORK_FAILED);
                out.put_u64_le(*id);
                put_str(out, message);
            }
            Frame::Ready => out.put_u8(kind::READY),
            Frame::Full {
                status,
                headers,
                body,
            } => {
                out.put_u8(kind::FULL);
                out.put_u16_le(status.as_u16());
                put_headers(out, headers);
                put_bytes(out, body);
            }
            Frame::StreamHead { status, headers } => {
                out.put_u8(kind::STREAM_HEAD);
                out.put_u16_le(status.as_u16());
                put_headers(out, headers);
            }
            Frame::Chunk(b) => {
                out.put_u8(kind::CHUNK);
                put_bytes(out, b);
            }
            Frame::StreamEnd => out.put_u8(kind::STREAM_END),
            Frame::StreamAbort => out.put_u8(kind::STREAM_ABORT),
            Frame::File {
                path,
                status,
                headers,
            } => {
                out.put_u8(kind::FILE);
                put_str(out, path);
                out.put_u16_le(status.as_u16());
                put_headers(out, headers);
            }
            Frame::Velox {
                body,
                gzip,
                headers,
            } => {
                out.put_u8(kind::VELOX);
                put_bytes(out, body);
                out.put_u8(u8::from(*gzip));
                put_headers(out, headers);
            }
            Frame::Error(message) => {
                out.put_u8(kind::ERROR);
                put_str(out, message);
            }
        }
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    }

    /// Appends the `Request` frame of `request`, which stays the caller's (a request sent
    /// ahead is kept until its answer starts, for another worker should this one decline it).
    pub fn encode_request(request: &RequestData, out: &mut BytesMut) {
        let start = out.len();
        out.put_u32_le(0);
        out.put_u8(kind::REQUEST);
        put_request(out, request);
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    }

    /// Takes one whole frame off the front of `buf`; `None` until one has fully arrived.
    pub fn split(buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if buf.len() < HEAD {
            return Ok(None);
        }
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len == 0 {
            return Err(DecodeError("empty frame"));
        }
        if buf.len() < 4 + len {
            buf.reserve(4 + len - buf.len());
            return Ok(None);
        }
        buf.advance(4);
        let mut payload = buf.split_to(len).freeze();
        let kind = payload.get_u8();
        decode(kind, Reader::new(payload)).map(Some)
    }
}

fn decode(kind: u8, mut r: Reader) -> Result<Frame, DecodeError> {
    let frame = match kind {
        kind::REQUEST => Frame::Request(Box::new(read_request(&mut r)?)),
        kind::STOP => Frame::Stop,
        kind::WORKERS => Frame::Workers(r.string()?),
        kind::LIST_WORKERS => Frame::ListWorkers,
        kind::FORK => Frame::Fork { id: r.u64()? },
        kind::RETIRE => Frame::Retire,
        kind::DECLINED => Frame::Declined,
        kind::RELOAD => Frame::Reload,
        kind::RELEASED => Frame::Released,
        kind::BOOTED => Frame::Booted,
        kind::FORKED => Frame::Forked {
            id: r.u64()?,
            pid: r.u32()?,
        },
        kind::FORK_FAILED => Frame::ForkFailed {
            id: r.u64()?,
            message: r.string()?,
        },
        kind::READY => Frame::Ready,
        kind::FULL => Frame::Full {
            status: r.status()?,
            headers: r.headers()?,
            body: r.bytes()?,
        },
        kind::STREAM_HEAD => Frame::StreamHead {
            status: r.status()?,
            headers: r.headers()?,
        },
        kind::CHUNK => Frame::Chunk(r.bytes()?),
        kind::STREAM_END => Frame::StreamEnd,
        kind::STREAM_ABORT => Frame::StreamAbort,
        kind::FILE => Frame::File {
            path: r.string()?,
            status: r.status()?,
            headers: r.headers()?,
        },
        kind::VELOX => Frame::Velox {
            body: r.bytes()?,
            gzip: r.bool()?,
            headers: r.headers()?,
        },
        kind::ERROR => Frame::Error(r.string()?),
        _ => return Err(DecodeError("unknown kind")),
    };
    match r.is_empty() {
        true => Ok(frame),
        false => Err(DecodeError("trailing bytes")),
    }
}

const PROTOCOLS: [&str; 5] = ["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/3.0", "HTTP/0.9"];

fn put_request(out: &mut BytesMut, r: &RequestData) {
    put_addr(out, &r.remote_addr);
    let protocol = PROTOCOLS.iter().position(|p| *p == r.protocol).unwrap_or(0);
    out.put_u8(protocol as u8);
    put_str(out, r.method.as_str());
    put_target(out, &r.target);
    put_headers(out, &r.headers);
    put_body(out, &r.body);
    match &r.form {
        Some(form) => {
            out.put_u8(1);
            put_tree(out, form, &|out, b| put_bytes(out, b));
        }
        None => out.put_u8(0),
    }
    put_tree(out, &r.uploads, &put_upload);
    let spooled = r
        .spooled_fields
        .as_ref()
        .map(|f| f.path().to_string_lossy());
    put_str(out, spooled.as_deref().unwrap_or(""));
}

fn put_target(out: &mut BytesMut, t: &Target) {
    out.put_u8(u8::from(t.https()));
    put_opt_str(out, t.authority());
    put_str(out, t.path());
    put_opt_str(out, t.has_query().then(|| t.query()));
}

fn put_opt_str(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => {
            out.put_u8(1);
            put_str(out, s);
        }
        None => out.put_u8(0),
    }
}

fn read_target(r: &mut Reader) -> Result<Target, DecodeError> {
    let https = r.bool()?;
    let authority = read_opt_string(r)?;
    let path = r.string()?;
    let query = read_opt_string(r)?;
    Target::from_parts(https, authority, path, query).map_err(|_| DecodeError("target"))
}

fn read_opt_string(r: &mut Reader) -> Result<Option<String>, DecodeError> {
    match r.u8()? {
        0 => Ok(None),
        _ => Ok(Some(r.string()?)),
    }
}

fn read_request(r: &mut Reader) -> Result<RequestData, DecodeError> {
    let remote_addr = r.addr()?;
    let protocol = *PROTOCOLS
        .get(r.u8()? as usize)
        .ok_or(DecodeError("protocol"))?;
    let method = http::Method::from_bytes(&r.bytes()?).map_err(|_| DecodeError("method"))?;
    let target = read_target(r)?;
    let headers = r.headers()?;
    let body = read_body(r)?;
    let form = match r.u8()? {
        0 => None,
        _ => Some(read_tree(r, 0, &|r| r.bytes())?),
    };
    let uploads = read_tree(r, 0, &read_upload)?;
    // Like an upload, the file is the master's to delete.
    let spooled_fields = Some(r.string()?)
        .filter(|p| !p.is_empty())
        .map(|p| SpooledFields::unowned(p).ok_or(DecodeError("spooled fields path")))
        .transpose()?;
    Ok(RequestData {
        remote_addr,
        protocol,
        method,
        target,
        headers,
        body,
        form,
        spooled_fields,
        uploads,
    })
}

/// A body in memory travels in the frame; a spooled one as its path (the master keeps and
/// deletes the file, the worker only reads it).
fn put_body(out: &mut BytesMut, body: &RequestBody) {
    match body {
        RequestBody::Memory(bytes) => {
            out.put_u8(0);
            put_bytes(out, bytes);
        }
        RequestBody::File { path, len, .. } => {
            out.put_u8(1);
            put_str(out, &path.to_string_lossy());
            out.put_u64_le(*len);
        }
    }
}

fn read_body(r: &mut Reader) -> Result<RequestBody, DecodeError> {
    match r.u8()? {
        0 => Ok(RequestBody::Memory(r.bytes()?)),
        1 => {
            let path = r.string()?;
            let len = r.u64()?;
            RequestBody::unowned_file(path.into(), len).ok_or(DecodeError("body file"))
        }
        _ => Err(DecodeError("body kind")),
    }
}

fn put_upload(out: &mut BytesMut, u: &Upload) {
    put_bytes(out, &u.name);
    put_bytes(out, &u.full_path);
    put_bytes(out, &u.mime);
    out.put_u64_le(u.size);
    out.put_u32_le(u.error as u32);
    let tmp = u.tmp_name.as_ref().map(|p| p.to_string_lossy());
    put_str(out, tmp.as_deref().unwrap_or(""));
}

/// The worker's copy names the master's file; deleting it is the master's job (see docs/pool.md).
fn read_upload(r: &mut Reader) -> Result<Upload, DecodeError> {
    Ok(Upload {
        name: r.bytes()?.to_vec(),
        full_path: r.bytes()?.to_vec(),
        mime: r.bytes()?.to_vec(),
        size: r.u64()?,
        error: r.u32()? as i32,
        tmp_name: Some(r.string()?)
            .filter(|p| !p.is_empty())
            .and_then(Upload::unowned),
    })
}

/// Form trees are as deep as PHP allows (64 by default): refuse anything deeper.
const MAX_DEPTH: usize = 128;

fn put_tree<T>(out: &mut BytesMut, tree: &Tree<T>, leaf: &dyn Fn(&mut BytesMut, &T)) {
    out.put_u32_le(tree.len() as u32);
    for (key, node) in tree.entries() {
        match key {
            Key::Index(i) => {
                out.put_u8(0);
                out.put_u64_le(*i as u64);
            }
            Key::Name(name) => {
                out.put_u8(1);
                put_bytes(out, name);
            }
        }
        match node {
            Node::Leaf(v) => {
                out.put_u8(0);
                leaf(out, v);
            }
            Node::Map(sub) => {
                out.put_u8(1);
                put_tree(out, sub, leaf);
            }
        }
    }
}

fn read_tree<T>(
    r: &mut Reader,
    depth: usize,
    leaf: &dyn Fn(&mut Reader) -> Result<T, DecodeError>,
) -> Result<Tree<T>, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError("tree too deep"));
    }
    let mut tree = Tree::new();
    for _ in 0..r.u32()? {
        let key = match r.u8()? {
            0 => Key::Index(r.u64()? as i64),
            _ => Key::Name(r.bytes()?.to_vec()),
        };
        let node = match r.u8()? {
            0 => Node::Leaf(leaf(r)?),
            _ => Node::Map(read_tree(r, depth + 1, leaf)?),
        };
        tree.put(key, node);
    }
    Ok(tree)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
