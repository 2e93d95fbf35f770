//! Trusted proxies (`http.trusted_subnets`): who the client is when a proxy we trust says so.
//!
//! Only a peer inside a trusted subnet may speak for the client. Its `Forwarded` (RFC 7239), or
//! failing that `X-Forwarded-For` / `X-Real-IP`, lists the hops; rr walks them from the right,
//! skipping trusted proxies, and takes the first address it does not trust: everything left of
//! it was written by the client and proves nothing. docs/config.md has the rules.
use super::target::{check_authority, TargetError};
use http::{HeaderMap, HeaderName};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// An IP network: an address and how many leading bits of it count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    net: IpAddr,
    prefix: u8,
}

/// Why a subnet string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetError(pub &'static str);

impl fmt::Display for SubnetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl FromStr for Subnet {
    type Err = SubnetError;

    /// `10.0.0.0/8`, `fd00::/8`, or a bare address (one host).
    fn from_str(text: &str) -> Result<Subnet, SubnetError> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| SubnetError("not an IP address"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or(SubnetError(
                    "the prefix length is not a number up to 32 (IPv4) or 128 (IPv6)",
                ))?,
            None => max,
        };
        Ok(Subnet { net, prefix })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl Subnet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, prefix: u8) -> bool {
    match prefix {
        0 => true,
        p => (a ^ b) >> (128 - u32::from(p)) == 0,
    }
}

/// `http.trusted_headers`: the forwarding headers the trusted proxies write. One they do not
/// write reaches rr as the client sent it (nginx passes unknown headers on), so only these are
/// believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedHeaders {
    pub forwarded: bool,
    pub x_forwarded_for: bool,
    pub x_forwarded_proto: bool,
    pub x_forwarded_host: bool,
    pub x_real_ip: bool,
}

impl TrustedHeaders {
    /// What nginx's usual `proxy_set_header` lines, Caddy, Traefik and cloud load balancers
    /// all write: the client's address and scheme.
    pub const DEFAULT: TrustedHeaders = TrustedHeaders {
        forwarded: false,
        x_forwarded_for: true,
        x_forwarded_proto: true,
        x_forwarded_host: false,
        x_real_ip: false,
    };
    pub const NONE: TrustedHeaders = TrustedHeaders {
        forwarded: false,
        x_forwarded_for: false,
        x_forwarded_proto: false,
        x_forwarded_host: false,
        x_real_ip: false,
    };
    pub const NAMES: [&'static str; 5] = [
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-real-ip",
    ];

    /// Adds the header `name` (any case); `false` for a name that is not a forwarding header.
    pub fn add(&mut self, name: &str) -> bool {
        let flag = match name.to_ascii_lowercase().as_str() {
            "forwarded" => &mut self.forwarded,
            "x-forwarded-for" => &mut self.x_forwarded_for,
            "x-forwarded-proto" => &mut self.x_forwarded_proto,
            "x-forwarded-host" => &mut self.x_forwarded_host,
            "x-real-ip" => &mut self.x_real_ip,
            _ => return false,
        };
        *flag = true;
        true
    }

    /// The names believed, in [`Self::NAMES`]' order.
    pub fn names(&self) -> Vec<&'static str> {
        let flags = [
            self.forwarded,
            self.x_forwarded_for,
            self.x_forwarded_proto,
            self.x_forwarded_host,
            self.x_real_ip,
        ];
        Self::NAMES
            .iter()
            .zip(flags)
            .filter_map(|(name, on)| on.then_some(*name))
            .collect()
    }
}

impl Default for TrustedHeaders {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// `http.trusted_subnets` and `http.trusted_headers`; no subnet trusts nobody (the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    subnets: Vec<Subnet>,
    headers: TrustedHeaders,
}

impl TrustedProxies {
    pub fn new(subnets: Vec<Subnet>, headers: TrustedHeaders) -> TrustedProxies {
        TrustedProxies { subnets, headers }
    }

    pub fn headers(&self) -> TrustedHeaders {
        self.headers
    }

    pub fn is_empty(&self) -> bool {
        self.subnets.is_empty()
    }

    pub fn subnets(&self) -> &[Subnet] {
        &self.subnets
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.subnets.iter().any(|s| s.contains(ip))
    }
}

/// What a trusted proxy told us about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The rightmost untrusted hop (its port when the proxy gave one, else the peer's).
    pub client: SocketAddr,
    /// The scheme the client used, when the proxy said.
    pub https: Option<bool>,
    /// The authority the client asked for, when the proxy said; checked like a Host.
    pub host: Option<String>,
}

/// A trusted proxy sent forwarding headers rr cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardedError {
    /// A scheme other than http or https.
    Proto(String),
    /// A forwarded host that is not `host[:port]`.
    Host(TargetError),
}

impl fmt::Display for ForwardedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardedError::Proto(p) => write!(
                f,
                "the forwarded scheme {:?} is not http or https",
                p.chars().take(64).collect::<String>()
            ),
            ForwardedError::Host(e) => write!(f, "forwarded host: {e}"),
        }
    }
}

impl std::error::Error for ForwardedError {}

/// One hop as a proxy described it.
#[derive(Debug, Default)]
struct Hop<'a> {
    /// `None`: `unknown`, an obfuscated name, or not an address at all.
    addr: Option<(IpAddr, Option<u16>)>,
    proto: Option<&'a str>,
    host: Option<&'a str>,
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

impl TrustedProxies {
    /// What the request's believed forwarding headers say, if `peer` is trusted and sent any.
    /// `Forwarded` wins over the `X-Forwarded-*` family; `X-Real-IP` is read only without
    /// `X-Forwarded-For`. A header not in `http.trusted_headers` is never read.
    pub fn resolve(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
    ) -> Result<Option<Forwarded>, ForwardedError> {
        if self.subnets.is_empty() || !self.trusts(peer.ip()) {
            return Ok(None);
        }
        let believed = self.headers;
        let has = |on: bool, name: &HeaderName| on && headers.contains_key(name);
        let (xfp, xfh) = (X_FORWARDED_PROTO, X_FORWARDED_HOST);
        let proto = believed.x_forwarded_proto.then_some(&xfp);
        let host = believed.x_forwarded_host.then_some(&xfh);
        let hops = if has(believed.forwarded, &http::header::FORWARDED) {
            forwarded_hops(headers)
        } else if has(believed.x_forwarded_for, &X_FORWARDED_FOR) {
            x_forwarded_hops(headers, &X_FORWARDED_FOR, proto, host)
        } else if has(believed.x_real_ip, &X_REAL_IP) {
            x_forwarded_hops(headers, &X_REAL_IP, proto, host)
        } else if has(believed.x_forwarded_proto, &X_FORWARDED_PROTO)
            || has(believed.x_forwarded_host, &X_FORWARDED_HOST)
        {
            // A proxy that names no hop still describes the request it received.
            vec![Hop {
                addr: None,
                proto: proto.and_then(|name| last_value(headers, name)),
                host: host.and_then(|name| last_value(headers, name)),
            }]
        } else {
            return Ok(None);
        };
        let Some(index) = self.pick(&hops) else {
            return Ok(None);
        };
        let hop = &hops[index];
        let client = match hop.addr {
            Some((ip, port)) => SocketAddr::new(ip, port.unwrap_or(peer.port())),
            None => peer,
        };
        let https = match hop.proto {
            None => None,
            Some(p) if p.eq_ignore_ascii_case("https") => Some(true),
            Some(p) if p.eq_ignore_ascii_case("http") => Some(false),
            Some(p) => return Err(ForwardedError::Proto(p.to_owned())),
        };
        let host = match hop.host {
            None => None,
            Some(h) => {
                check_authority(h).map_err(ForwardedError::Host)?;
                Some(h.to_owned())
            }
        };
        Ok(Some(Forwarded {
            client,
            https,
            host,
        }))
    }

    /// The hop that describes the client: walking from the right (the hop our peer wrote),
    /// the first address we do not trust; the leftmost when all are trusted. A hop without
    /// an address ends the walk: what is left of it cannot be vouched for.
    fn pick(&self, hops: &[Hop]) -> Option<usize> {
        let mut chosen = None;
        for (i, hop) in hops.iter().enumerate().rev() {
            match hop.addr {
                Some((ip, _)) => {
                    chosen = Some(i);
                    if !self.trusts(ip) {
                        break;
                    }
                }
                None => {
                    // The rightmost hop still tells its scheme and host.
                    if chosen.is_none() {
                        chosen = Some(i);
                    }
                    break;
                }
            }
        }
        chosen
    }
}

/// Every element of every `Forwarded` header, in order.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Hop<'_>> {
    let mut hops = Vec::new();
    for value in headers.get_all(http::header::FORWARDED) {
        let Ok(text) = value.to_str() else {
            // Not ASCII: nothing in it can be trusted; it ends the walk like `unknown`.
            hops.push(Hop::default());
            continue;
        };
        for element in split_outside_quotes(text, ',') {
            let mut hop = Hop::default();
            for pair in split_outside_quotes(element, ';') {
                let Some((name, value)) = pair.split_once('=') else {
                    continue;
                };
                let value = unquote(value.trim());
                match name.trim().to_ascii_lowercase().as_str() {
                    "for" => hop.addr = node(value),
                    "proto" => hop.proto = Some(value),
                    "host" => hop.host = Some(value),
                    _ => {}
                }
            }
            hops.push(hop);
        }
    }
    hops
}

/// The addresses of `name` (`X-Forwarded-For` or `X-Real-IP`); the values of `proto` /
/// `host` (`X-Forwarded-Proto` / `-Host` when believed) belong to the hop at the same place
/// from the right when the lists line up, else to the rightmost hop (the one our peer wrote).
fn x_forwarded_hops<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    proto: Option<&HeaderName>,
    host: Option<&HeaderName>,
) -> Vec<Hop<'a>> {
    let mut hops: Vec<Hop> = values(headers, name)
        .map(|v| Hop {
            addr: node(v),
            ..Hop::default()
        })
        .collect();
    let list = |name: Option<&HeaderName>| -> Vec<&'a str> {
        name.map(|n| values(headers, n).collect())
            .unwrap_or_default()
    };
    let protos = list(proto);
    let hosts = list(host);
    let n = hops.len();
    for (i, hop) in hops.iter_mut().enumerate() {
        hop.proto = aligned(&protos, n, i);
        hop.host = aligned(&hosts, n, i);
    }
    hops
}

/// The value for hop `i` of `n`: the same place when the list has `n` values, else the last.
fn aligned<'a>(list: &[&'a str], n: usize, i: usize) -> Option<&'a str> {
    match list.len() == n {
        true => list.get(i).copied(),
        false => list.last().copied(),
    }
}

/// Comma-separated values over every header of that name, trimmed, empty ones dropped.
fn values<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn last_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    values(headers, name).last()
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:80`. `unknown`, `_hidden` and anything else: `None`.
fn node(text: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some((ip.to_canonical(), None));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some((addr.ip().to_canonical(), Some(addr.port())));
    }
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(|ip| (IpAddr::V6(ip).to_canonical(), None))
}

/// Splits on `sep` where it is not inside a quoted string.
fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

/// A quoted-string's content (escapes are not expected in addresses, schemes or hosts: a
/// value with one keeps it and fails the checks that follow).
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests;
