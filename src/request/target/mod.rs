//! The request target and the authority it names, taken once from what hyper parsed, checked,
//! and kept in parts (scheme, authority, path, query). Every consumer (`$_SERVER`, `RR\Request`,
//! the pool's isolate lines) reads the parts; nothing re-parses a formatted URL.
//!
//! The rules, and where rr is stricter than nginx, are in docs/request-target.md.
use http::{header, HeaderMap, Method, Uri, Version};
use std::borrow::Cow;
use std::fmt;

/// Why a request's target or authority was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// TRACE and CONNECT are not served (nginx answers both with 405).
    Method(Method),
    /// A raw `#`: a fragment is the client's business and never part of a request target.
    Fragment,
    /// A byte outside ASCII, which must be percent-encoded in a target.
    NonAscii,
    /// A `%` in the path not followed by two hex digits.
    BadPercent,
    /// `%00` in the path.
    Nul,
    /// The path's `..` segments climb above `/`.
    DotEscape,
    /// `*` (asterisk-form) or a target that does not start with `/`.
    Form,
    /// An absolute-form target (or HTTP/2 `:scheme`) with a scheme other than http and https.
    Scheme(String),
    /// HTTP/1.1 (or HTTP/2) without a Host.
    HostMissing,
    /// More than one Host header.
    HostDuplicate,
    /// Host, `:authority` or an absolute-form authority that is not `host[:port]`.
    HostInvalid { value: String, why: &'static str },
    /// An absolute-form authority or `:authority` that names another host than the Host header.
    HostMismatch { target: String, host: String },
}

impl TargetError {
    /// True for the errors about the authority (answered with code `bad_host`).
    pub fn is_host(&self) -> bool {
        matches!(
            self,
            TargetError::HostMissing
                | TargetError::HostDuplicate
                | TargetError::HostInvalid { .. }
                | TargetError::HostMismatch { .. }
        )
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::Method(m) => write!(f, "method {m} is not allowed"),
            TargetError::Fragment => f.write_str("the request target contains '#'"),
            TargetError::NonAscii => {
                f.write_str("the request target contains a byte that must be percent-encoded")
            }
            TargetError::BadPercent => {
                f.write_str("the path has a '%' not followed by two hex digits")
            }
            TargetError::Nul => f.write_str("the path contains %00"),
            TargetError::DotEscape => f.write_str("the path climbs above '/'"),
            TargetError::Form => f.write_str("the request target must start with '/'"),
            TargetError::Scheme(s) => write!(f, "scheme {:?} is not http or https", clip(s)),
            TargetError::HostMissing => f.write_str("the request has no Host"),
            TargetError::HostDuplicate => f.write_str("the request has more than one Host"),
            TargetError::HostInvalid { value, why } => {
                write!(f, "invalid host {:?}: {why}", clip(value))
            }
            TargetError::HostMismatch { target, host } => write!(
                f,
                "the target names host {:?} but the Host header says {:?}",
                clip(target),
                clip(host)
            ),
        }
    }
}

impl std::error::Error for TargetError {}

/// Client-controlled text in an error message, cut to a readable length.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The parts of a checked request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    https: bool,
    /// `host[:port]` as the client sent it; `None` for an HTTP/1.0 request without Host.
    authority: Option<String>,
    /// The path as sent (percent-encoding kept), starting with '/'.
    path: String,
    /// The text after the first '?', as sent; `None` when there was no '?'.
    query: Option<String>,
    /// nginx's `$document_uri` when it differs from `path`: decoded, `//` merged, dots resolved.
    normalized: Option<Vec<u8>>,
}

/// What of a request head the target check reads.
pub struct Head<'a> {
    pub method: &'a Method,
    pub version: Version,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub https: bool,
    /// The raw HTTP/1 request target held a '#' (hyper's URI drops it and what follows).
    pub fragment: bool,
}

impl Target {
    /// Checks a request head (see docs/request-target.md) and keeps its target's parts.
    pub fn check(head: &Head) -> Result<Target, TargetError> {
        if head.method == Method::TRACE || head.method == Method::CONNECT {
            return Err(TargetError::Method(head.method.clone()));
        }
        if head.fragment {
            return Err(TargetError::Fragment);
        }
        let path = head.uri.path();
        let query = head.uri.query();
        if !path.starts_with('/') {
            return Err(TargetError::Form);
        }
        if !path.is_ascii() || !query.unwrap_or("").is_ascii() {
            return Err(TargetError::NonAscii);
        }
        let normalized = normalize(path.as_bytes())?;
        let authority = authority(head)?;
        Ok(Target {
            https: head.https,
            authority: authority.map(str::to_owned),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            normalized,
        })
    }

    /// A target from already-checked parts (the pool worker's side of the wire, tests).
    pub fn from_parts(
        https: bool,
        authority: Option<String>,
        path: String,
        query: Option<String>,
    ) -> Result<Target, TargetError> {
        let normalized = normalize(path.as_bytes())?;
        Ok(Target {
            https,
            authority,
            path,
            query,
            normalized,
        })
    }

    pub fn https(&self) -> bool {
        self.https
    }

    /// What a trusted proxy said the client used (`request::forwarded`): the scheme and an
    /// authority that already passed [`check_authority`].
    pub fn forwarded(&mut self, https: Option<bool>, authority: Option<String>) {
        if let Some(https) = https {
            self.https = https;
        }
        if authority.is_some() {
            self.authority = authority;
        }
    }

    pub fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// `host[:port]` as sent, or `None` when the request named no host (HTTP/1.0).
    pub fn authority(&self) -> Option<&str> {
        self.authority.as_deref()
    }

    /// The host, IPv6 literals with their brackets ('' when the request named none).
    pub fn host(&self) -> &str {
        self.split_authority().0
    }

    /// The port the request named, if it named one.
    pub fn port(&self) -> Option<u16> {
        self.split_authority().1
    }

    /// The port the request named, or the scheme's default.
    pub fn port_or_default(&self) -> u16 {
        self.port().unwrap_or(if self.https { 443 } else { 80 })
    }

    fn split_authority(&self) -> (&str, Option<u16>) {
        let authority = self.authority.as_deref().unwrap_or("");
        // A ':' after the last ']' (or in a name without brackets) starts the port.
        let start = authority.rfind(']').unwrap_or(0);
        match authority[start..].find(':') {
            Some(i) => {
                let (host, port) = authority.split_at(start + i);
                (host, port[1..].parse().ok())
            }
            None => (authority, None),
        }
    }

    /// The path as sent.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The text after the first '?' ('' when there is none), as `QUERY_STRING`.
    pub fn query(&self) -> &str {
        self.query.as_deref().unwrap_or("")
    }

    pub fn has_query(&self) -> bool {
        self.query.is_some()
    }

    /// Path and query as sent (`REQUEST_URI`).
    pub fn request_uri(&self) -> Cow<'_, str> {
        match &self.query {
            Some(q) => Cow::Owned(format!("{}?{q}", self.path)),
            None => Cow::Borrowed(&self.path),
        }
    }

    /// nginx's `$document_uri`: the path decoded, `//` merged, `.` and `..` resolved.
    pub fn document_uri(&self) -> &[u8] {
        self.normalized.as_deref().unwrap_or(self.path.as_bytes())
    }

    /// `scheme://authority/path?query`; the authority is `localhost` when the request named none.
    pub fn uri(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme(),
            self.authority.as_deref().unwrap_or("localhost"),
            self.request_uri()
        )
    }
}

/// The authority the request names: the absolute-form target's or `:authority`, else Host.
fn authority<'a>(head: &Head<'a>) -> Result<Option<&'a str>, TargetError> {
    let mut hosts = head.headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(TargetError::HostDuplicate);
    }
    let host = match host {
        Some(value) => {
            let value = value.to_str().map_err(|_| TargetError::HostInvalid {
                value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
                why: "not ASCII",
            })?;
            check_authority(value)?;
            Some(value)
        }
        // RFC 9112 3.2: an HTTP/1.1 request without Host is refused, absolute-form or not.
        None if head.version == Version::HTTP_11 => return Err(TargetError::HostMissing),
        None => None,
    };
    if let Some(scheme) = head.uri.scheme_str() {
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(TargetError::Scheme(scheme.to_owned()));
        }
    }
    let named = match head.uri.authority() {
        Some(target) => {
            let target = target.as_str();
            check_authority(target)?;
            if let Some(host) = host {
                if !host.eq_ignore_ascii_case(target) {
                    return Err(TargetError::HostMismatch {
                        target: target.to_owned(),
                        host: host.to_owned(),
                    });
                }
            }
            Some(target)
        }
        None => host,
    };
    if named.is_none() && head.version != Version::HTTP_10 && head.version != Version::HTTP_09 {
        return Err(TargetError::HostMissing);
    }
    Ok(named)
}

/// `host[:port]` per RFC 3986 3.2.2-3.2.3 (no userinfo, as RFC 9110 7.2 has it): an IPv6 or
/// IPvFuture literal in brackets, or a reg-name (IPv4 included) of unreserved characters,
/// sub-delims and percent-escapes; the port is digits up to 65535 (empty allowed).
pub fn check_authority(value: &str) -> Result<(), TargetError> {
    let invalid = |why| TargetError::HostInvalid {
        value: value.to_owned(),
        why,
    };
    let bytes = value.as_bytes();
    let (host, port) = if bytes.first() == Some(&b'[') {
        let end = value.find(']').ok_or_else(|| invalid("unclosed '['"))?;
        let literal = &value[1..end];
        let ok = match literal.as_bytes().first() {
            Some(b'v' | b'V') => is_ip_future(literal),
            _ => literal.parse::<std::net::Ipv6Addr>().is_ok(),
        };
        if !ok {
            return Err(invalid("not an IPv6 address"));
        }
        match &value[end + 1..] {
            "" => (&value[..end + 1], None),
            rest => match rest.strip_prefix(':') {
                Some(port) => (&value[..end + 1], Some(port)),
                None => return Err(invalid("text after ']'")),
            },
        }
    } else {
        match value.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    if !host.starts_with('[') {
        let hb = host.as_bytes();
        let mut i = 0;
        while i < hb.len() {
            match hb[i] {
                b'%' => {
                    if !(is_hex(hb.get(i + 1)) && is_hex(hb.get(i + 2))) {
                        return Err(invalid("'%' not followed by two hex digits"));
                    }
                    i += 3;
                    continue;
                }
                b'@' => return Err(invalid("user information is not allowed")),
                c if is_unreserved(c) || is_sub_delim(c) => {}
                _ => return Err(invalid("character not allowed in a host name")),
            }
            i += 1;
        }
    }
    if let Some(port) = port {
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("the port is not a number"));
        }
        if !port.is_empty() && (port.len() > 5 || port.parse::<u32>().unwrap_or(u32::MAX) > 65535) {
            return Err(invalid("the port is above 65535"));
        }
    }
    Ok(())
}

fn is_hex(b: Option<&u8>) -> bool {
    hex_value(b).is_some()
}

fn hex_value(b: Option<&u8>) -> Option<u8> {
    (*b? as char).to_digit(16).map(|d| d as u8)
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(c: u8) -> bool {
    matches!(
        c,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// `"v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`
fn is_ip_future(literal: &str) -> bool {
    let Some((version, rest)) = literal[1..].split_once('.') else {
        return false;
    };
    !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_hexdigit())
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|c| is_unreserved(c) || is_sub_delim(c) || c == b':')
}

/// nginx's `$uri` for a path: percent-escapes decoded, `//` merged, `.` and `..` resolved.
/// `None` when that is the path itself (the common case: nothing to allocate).
fn normalize(path: &[u8]) -> Result<Option<Vec<u8>>, TargetError> {
    let plain = !path.contains(&b'%') && !path.windows(2).any(|w| w == b"//" || w == b"/.");
    if plain {
        return Ok(None);
    }
    let mut decoded = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' {
            let (Some(hi), Some(lo)) = (hex_value(path.get(i + 1)), hex_value(path.get(i + 2)))
            else {
                return Err(TargetError::BadPercent);
            };
            let byte = hi << 4 | lo;
            if byte == 0 {
                return Err(TargetError::Nul);
            }
            decoded.push(byte);
            i += 3;
        } else {
            decoded.push(path[i]);
            i += 1;
        }
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    let parts: Vec<&[u8]> = decoded.split(|&b| b == b'/').skip(1).collect();
    let last = parts.len().saturating_sub(1);
    // A path ending in '/', '.' or '..' keeps its trailing slash.
    let mut trailing = false;
    for (n, segment) in parts.iter().enumerate() {
        match *segment {
            b"" => trailing = n == last,
            b"." => trailing = n == last,
            b".." => {
                if segments.pop().is_none() {
                    return Err(TargetError::DotEscape);
                }
                trailing = n == last;
            }
            s => {
                segments.push(s);
                trailing = false;
            }
        }
    }
    let mut out = Vec::with_capacity(decoded.len());
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if trailing || segments.is_empty() {
        out.push(b'/');
    }
    Ok((out != path).then_some(out))
}

#[cfg(test)]
mod tests;
