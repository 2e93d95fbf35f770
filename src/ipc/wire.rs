//! The primitives frames are made of: little-endian integers and length-prefixed bytes.
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Why a frame could not be read: the peer is not speaking this protocol (or is a bug).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed frame: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

pub fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32_le(b.len() as u32);
    out.put_slice(b);
}

pub fn put_str(out: &mut BytesMut, s: &str) {
    put_bytes(out, s.as_bytes());
}

/// A socket address in binary (family, address, port; the scope of an IPv6 one): formatting it
/// as text cost more than the rest of a small request's frame.
pub fn put_addr(out: &mut BytesMut, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            out.put_u8(4);
            out.put_u32_le(v4.ip().to_bits());
        }
        SocketAddr::V6(v6) => {
            out.put_u8(6);
            out.put_u128_le(v6.ip().to_bits());
            out.put_u32_le(v6.scope_id());
        }
    }
    out.put_u16_le(addr.port());
}

pub fn put_headers(out: &mut BytesMut, headers: &http::HeaderMap) {
    out.put_u32_le(headers.len() as u32);
    for (name, value) in headers {
        put_str(out, name.as_str());
        put_bytes(out, value.as_bytes());
    }
}

/// Reads from a frame payload; every read checks the length first.
pub struct Reader {
    buf: Bytes,
}

impl Reader {
    pub fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    fn need(&self, n: usize) -> Result<(), DecodeError> {
        match self.buf.remaining() >= n {
            true => Ok(()),
            false => Err(DecodeError("truncated")),
        }
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        Ok(self.buf.get_u16_le())
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_u32_le())
    }

    /// What [`put_addr`] wrote.
    pub fn addr(&mut self) -> Result<SocketAddr, DecodeError> {
        match self.u8()? {
            4 => {
                let ip = Ipv4Addr::from_bits(self.u32()?);
                Ok(SocketAddrV4::new(ip, self.u16()?).into())
            }
            6 => {
                self.need(16)?;
                let ip = Ipv6Addr::from_bits(self.buf.get_u128_le());
                let scope = self.u32()?;
                Ok(SocketAddrV6::new(ip, self.u16()?, 0, scope).into())
            }
            _ => Err(DecodeError("address family")),
        }
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.need(8)?;
        Ok(self.buf.get_u64_le())
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.u8()? != 0)
    }

    /// Zero-copy: a slice of the frame.
    pub fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.u32()? as usize;
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    pub fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| DecodeError("string not UTF-8"))
    }

    pub fn status(&mut self) -> Result<http::StatusCode, DecodeError> {
        http::StatusCode::from_u16(self.u16()?).map_err(|_| DecodeError("status"))
    }

    pub fn headers(&mut self) -> Result<http::HeaderMap, DecodeError> {
        let n = self.u32()? as usize;
        let mut headers = http::HeaderMap::with_capacity(n.min(1024));
        for _ in 0..n {
            let name = http::HeaderName::from_bytes(&self.bytes()?)
                .map_err(|_| DecodeError("header name"))?;
            let value = http::HeaderValue::from_maybe_shared(self.bytes()?)
                .map_err(|_| DecodeError("header value"))?;
            headers
                .try_append(name, value)
                .map_err(|_| DecodeError("too many headers"))?;
        }
        Ok(headers)
    }

    pub fn is_empty(&self) -> bool {
        !self.buf.has_remaining()
    }
}
