//! Request ids (`http.request_id`): the client's or a trusted proxy's `X-Request-Id` when it is
//! a sane token, else a fresh one; it reaches PHP as a request header and the access log.
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Longest id taken from a request; a longer one is replaced.
pub const MAX_LEN: usize = 200;

/// `http.request_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIdConfig {
    /// The header the id travels in, both ways.
    pub header: HeaderName,
    /// Keep an id the request brought (when it is a sane token).
    pub accept: bool,
    /// Send the id back in the response (unless PHP set that header itself); off by default,
    /// as in nginx: it costs every answer a header.
    pub response: bool,
}

impl Default for RequestIdConfig {
    fn default() -> Self {
        Self {
            header: HeaderName::from_static("x-request-id"),
            accept: true,
            response: false,
        }
    }
}

impl RequestIdConfig {
    /// The request's id: the one it brought if accepted and sane, else a new one, which
    /// replaces whatever the header held.
    pub fn assign(&self, headers: &mut HeaderMap) -> HeaderValue {
        if self.accept {
            let mut values = headers.get_all(&self.header).iter();
            if let (Some(value), None) = (values.next(), values.next()) {
                if is_token(value.as_bytes()) {
                    return value.clone();
                }
            }
        }
        let id = generate();
        headers.insert(self.header.clone(), id.clone());
        id
    }
}

/// 1 to [`MAX_LEN`] characters of letters, digits and `-_.:+/=@` (no spaces, quotes or
/// control characters, so it is safe in any log line).
pub fn is_token(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LEN
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(&b))
}

/// 32 lowercase hex digits, unique in this process and unlikely to repeat across processes:
/// a counter mixed with a random seed taken once (no system call per request).
pub fn generate() -> HeaderValue {
    static SEED: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (a, b) = *SEED.get_or_init(|| {
        let random = uuid::Uuid::new_v4().as_u128();
        ((random >> 64) as u64, random as u64)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // splitmix64 is a bijection, so distinct counters give distinct ids.
    let hi = splitmix(a.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let lo = splitmix(b ^ n);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 32];
    for (i, byte) in text.iter_mut().enumerate() {
        let word = if i < 16 { hi } else { lo };
        *byte = HEX[((word >> (60 - 4 * (i % 16))) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&text).expect("hex digits are a valid header value")
}

fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), for the access log;
/// `None` when absent or malformed (the header still reaches PHP as sent).
pub fn trace_id(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let mut parts = value.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2)
        && (version != "00" || parts.next().is_none());
    valid.then_some(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_hex() {
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| generate()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            assert_eq!(id.len(), 32);
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        }
    }

    #[test]
    fn a_sane_incoming_id_is_kept_else_replaced() {
        let config = RequestIdConfig::default();
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "abc-123_x.y".parse().unwrap());
        assert_eq!(config.assign(&mut headers), "abc-123_x.y");
        for bad in ["has space", "quote\"", "", &"x".repeat(201)] {
            let mut headers = HeaderMap::new();
            headers.insert("x-request-id", HeaderValue::from_str(bad).unwrap());
            let id = config.assign(&mut headers);
            assert_eq!(id.len(), 32, "{bad:?}");
            assert_eq!(headers["x-request-id"], id);
        }
        // Two ids: neither is chosen over the other.
        let mut headers = HeaderMap::new();
        headers.append("x-request-id", "a".parse().unwrap());
        headers.append("x-request-id", "b".parse().unwrap());
        let id = config.assign(&mut headers);
        assert_eq!(headers.get_all("x-request-id").iter().count(), 1);
        assert_eq!(id.len(), 32);
        // accept: false always generates.
        let config = RequestIdConfig {
            accept: false,
            ..RequestIdConfig::default()
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "mine".parse().unwrap());
        assert_ne!(config.assign(&mut headers), "mine");
    }

    #[test]
    fn traceparent_trace_ids() {
        let mut headers = HeaderMap::new();
        assert_eq!(trace_id(&headers), None);
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        assert_eq!(trace_id(&headers), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            headers.insert("traceparent", bad.parse().unwrap());
            assert_eq!(trace_id(&headers), None, "{bad}");
        }
    }
}
