//! Which bytes of the file a GET asks for: `Range` and `If-Range` (RFC 9110 §14.2, §13.1.5).
use http::header::{ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use http::HeaderMap;

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selection {
    /// The whole file with the original status.
    Full,
    /// `206` with bytes `start..=end` (both inclusive, `end < len`).
    Part { start: u64, end: u64 },
    /// `416`: no requested byte exists.
    Unsatisfiable,
}

/// Decides from the request headers and the validators the response will carry (`ETag`,
/// `Last-Modified`), for a file of `len` bytes.
pub(crate) fn select(request: &HeaderMap, response: &HeaderMap, len: u64) -> Selection {
    let mut ranges = request.get_all(RANGE).iter();
    let (Some(range), None) = (ranges.next(), ranges.next()) else {
        return Selection::Full;
    };
    // No byte of an empty file exists, but the client wants the file: nginx and Go answer 200
    // (clients send `bytes=0-` before they know the size), which RFC 9110 allows.
    if len == 0 {
        return Selection::Full;
    }
    if let Some(if_range) = request.get(IF_RANGE) {
        if !if_range_holds(if_range.as_bytes(), response) {
            return Selection::Full;
        }
    }
    parse(range.as_bytes(), len)
}

/// One `bytes=` range; anything we don't serve (other units, several ranges, junk) is `Full`,
/// which RFC 9110 allows a server to answer with the whole representation.
fn parse(value: &[u8], len: u64) -> Selection {
    let Ok(value) = std::str::from_utf8(value) else {
        return Selection::Full;
    };
    let Some((unit, spec)) = value.split_once('=') else {
        return Selection::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Selection::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Selection::Full;
    };
    match (digits(first), digits(last)) {
        // `bytes=-n`: the last n bytes.
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 || len == 0 {
                Selection::Unsatisfiable
            } else {
                Selection::Part {
                    start: len - suffix.min(len),
                    end: len - 1,
                }
            }
        }
        // `bytes=a-`
        (Some(start), None) if last.is_empty() => part(start, u64::MAX, len),
        // `bytes=a-b`; b < a makes the header invalid, not unsatisfiable.
        (Some(start), Some(end)) if start <= end => part(start, end, len),
        _ => Selection::Full,
    }
}

fn part(start: u64, end: u64, len: u64) -> Selection {
    if start >= len {
        Selection::Unsatisfiable
    } else {
        Selection::Part {
            start,
            end: end.min(len - 1),
        }
    }
}

/// A non-empty run of ASCII digits. Saturates instead of failing: a position past u64::MAX is
/// past any file, which the range rules then handle like any large number.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// `If-Range`: an entity tag must match strongly (RFC 9110 §13.1.5, so our weak tag never
/// does), a date must equal `Last-Modified` exactly.
fn if_range_holds(value: &[u8], response: &HeaderMap) -> bool {
    let value = value.trim_ascii();
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return match response.get(ETAG) {
            Some(etag) => {
                let etag = etag.as_bytes().trim_ascii();
                !value.starts_with(b"W/") && !etag.starts_with(b"W/") && value == etag
            }
            None => false,
        };
    }
    let Some(modified) = response.get(LAST_MODIFIED) else {
        return false;
    };
    let parse = |v: &[u8]| {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| httpdate::parse_http_date(s).ok())
    };
    match (parse(value), parse(modified.as_bytes())) {
        (Some(asked), Some(modified)) => asked == modified,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn sel(range: &str, len: u64) -> Selection {
        let mut request = HeaderMap::new();
        request.insert(RANGE, HeaderValue::from_str(range).unwrap());
        select(&request, &HeaderMap::new(), len)
    }

    #[test]
    fn forms() {
        use Selection::*;
        assert_eq!(sel("bytes=0-9", 100), Part { start: 0, end: 9 });
        assert_eq!(sel("bytes=90-200", 100), Part { start: 90, end: 99 });
        assert_eq!(sel("bytes=10-", 100), Part { start: 10, end: 99 });
        assert_eq!(sel("bytes=-10", 100), Part { start: 90, end: 99 });
        assert_eq!(sel("bytes=-1000", 100), Part { start: 0, end: 99 });
        assert_eq!(sel("BYTES = 5-5", 100), Part { start: 5, end: 5 });
        assert_eq!(
            sel("bytes=0-99999999999999999999999", 100),
            Part { start: 0, end: 99 }
        );
    }

    #[test]
    fn unsatisfiable() {
        use Selection::*;
        assert_eq!(sel("bytes=100-", 100), Unsatisfiable);
        assert_eq!(sel("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(sel("bytes=-0", 100), Unsatisfiable);
        assert_eq!(sel("bytes=99999999999999999999999-", 100), Unsatisfiable);
    }

    #[test]
    fn an_empty_file_is_sent_whole() {
        for range in ["bytes=0-", "bytes=-5", "bytes=0-0", "bytes=3-"] {
            assert_eq!(sel(range, 0), Selection::Full, "{range}");
        }
    }

    #[test]
    fn ignored() {
        for junk in [
            "bytes=0-1,5-6",
            "bytes=5-1",
            "bytes=-",
            "bytes=a-b",
            "bytes=0x1-2",
            "items=0-1",
            "bytes 0-1",
            "bytes=+1-2",
            "",
        ] {
            assert_eq!(sel(junk, 100), Selection::Full, "{junk:?}");
        }
    }

    #[test]
    fn two_range_headers_are_ignored() {
        let mut request = HeaderMap::new();
        request.append(RANGE, HeaderValue::from_static("bytes=0-1"));
        request.append(RANGE, HeaderValue::from_static("bytes=2-3"));
        assert_eq!(select(&request, &HeaderMap::new(), 10), Selection::Full);
    }

    #[test]
    fn if_range() {
        let mut response = HeaderMap::new();
        response.insert(ETAG, HeaderValue::from_static("\"strong\""));
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        response.insert(LAST_MODIFIED, HeaderValue::from_static(date));
        let holds = |v: &str| if_range_holds(v.as_bytes(), &response);
        assert!(holds("\"strong\""));
        assert!(!holds("W/\"strong\""));
        assert!(!holds("\"other\""));
        assert!(holds(date));
        assert!(!holds("Sun, 06 Nov 1994 08:49:38 GMT"));
        assert!(!holds("garbage"));

        response.insert(ETAG, HeaderValue::from_static("W/\"weak\""));
        assert!(!if_range_holds(b"W/\"weak\"", &response));
    }
}
