//! Conditional GET: `If-Match` and `If-Unmodified-Since` → `412 Precondition Failed`,
//! `If-None-Match` and `If-Modified-Since` → `304 Not Modified` (RFC 9110 §13.1, in the order
//! of §13.2.2).
use http::header::{
    ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE, LAST_MODIFIED,
};
use http::{HeaderMap, HeaderName};

/// Whether the client's copy is current, judged from the request's preconditions and the
/// validators the response carries. `If-Modified-Since` counts only without `If-None-Match`.
pub(crate) fn not_modified(request: &HeaderMap, response: &HeaderMap) -> bool {
    let mut tags = request.get_all(IF_NONE_MATCH).iter().peekable();
    if tags.peek().is_some() {
        let current = response.get(ETAG).map(|v| opaque(v.as_bytes()));
        return tags.any(|value| {
            entity_tags(value.as_bytes()).any(|tag| tag == b"*" || Some(opaque(tag)) == current)
        });
    }
    let since = date(request, IF_MODIFIED_SINCE);
    let modified = date(response, LAST_MODIFIED);
    matches!((since, modified), (Some(since), Some(modified)) if modified <= since)
}

/// Whether the client's precondition on the current version fails (`412`): `If-Match` names no
/// tag that matches strongly (`*` matches, the file exists), or, without `If-Match`, the file
/// changed after `If-Unmodified-Since` (a date that is not one is ignored, RFC 9110 §13.1.4).
pub(crate) fn precondition_failed(request: &HeaderMap, response: &HeaderMap) -> bool {
    let mut tags = request.get_all(IF_MATCH).iter().peekable();
    if tags.peek().is_some() {
        // Strong comparison (§8.8.3.2): a weak tag never matches.
        let current = response
            .get(ETAG)
            .map(|v| v.as_bytes())
            .filter(|tag| !tag.starts_with(b"W/"));
        return !tags.any(|value| {
            entity_tags(value.as_bytes()).any(|tag| tag == b"*" || Some(tag) == current)
        });
    }
    let since = date(request, IF_UNMODIFIED_SINCE);
    let modified = date(response, LAST_MODIFIED);
    matches!((since, modified), (Some(since), Some(modified)) if modified > since)
}

/// A header's HTTP date; `None` when it is missing or not a date (then it is ignored).
fn date(headers: &HeaderMap, name: HeaderName) -> Option<std::time::SystemTime> {
    let value = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(value).ok()
}

/// The tag without its weakness marker: `If-None-Match` compares weakly (§8.8.3.2).
fn opaque(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

/// The members of an `If-None-Match` list: `*`, `"x"` or `W/"x"`. An entity tag may hold a
/// comma, so the list is split on quotes, not on commas; junk ends the list.
fn entity_tags(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = list;
    std::iter::from_fn(move || {
        let start = rest
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t' | b','))?;
        rest = &rest[start..];
        if rest[0] == b'*' {
            let (tag, tail) = rest.split_at(1);
            rest = tail;
            return Some(tag);
        }
        let quote = usize::from(rest.starts_with(b"W/")) * 2;
        if rest.get(quote) != Some(&b'"') {
            rest = &[];
            return None;
        }
        let close = quote + 1 + rest[quote + 1..].iter().position(|b| *b == b'"')?;
        let (tag, tail) = rest.split_at(close + 1);
        rest = tail;
        Some(tag)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(http::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    const DATE: &str = "Tue, 01 Dec 2026 07:00:00 GMT";

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists() {
        let response = headers(&[(ETAG, "\"a,1\""), (LAST_MODIFIED, DATE)]);
        for matching in [
            "\"a,1\"",
            "W/\"a,1\"",
            "\"x\", \"a,1\"",
            "\"x\",W/\"a,1\"",
            "*",
        ] {
            let request = headers(&[(IF_NONE_MATCH, matching)]);
            assert!(not_modified(&request, &response), "{matching}");
        }
        for other in ["\"a\"", "\"a,2\"", "a,1", "", "W/"] {
            let request = headers(&[(IF_NONE_MATCH, other)]);
            assert!(!not_modified(&request, &response), "{other}");
        }
        let weak = headers(&[(ETAG, "W/\"v\"")]);
        assert!(not_modified(&headers(&[(IF_NONE_MATCH, "\"v\"")]), &weak));
        // Several header lines form one list.
        let request = headers(&[(IF_NONE_MATCH, "\"x\""), (IF_NONE_MATCH, "\"a,1\"")]);
        assert!(not_modified(&request, &response));
    }

    #[test]
    fn if_none_match_without_an_etag_only_matches_star() {
        let response = headers(&[(LAST_MODIFIED, DATE)]);
        assert!(!not_modified(
            &headers(&[(IF_NONE_MATCH, "\"v\"")]),
            &response
        ));
        assert!(not_modified(&headers(&[(IF_NONE_MATCH, "*")]), &response));
    }

    #[test]
    fn if_modified_since_compares_dates_and_yields_to_if_none_match() {
        let response = headers(&[(ETAG, "\"v\""), (LAST_MODIFIED, DATE)]);
        let same = headers(&[(IF_MODIFIED_SINCE, DATE)]);
        let later = headers(&[(IF_MODIFIED_SINCE, "Tue, 01 Dec 2026 08:00:00 GMT")]);
        let earlier = headers(&[(IF_MODIFIED_SINCE, "Tue, 01 Dec 2026 06:59:59 GMT")]);
        let junk = headers(&[(IF_MODIFIED_SINCE, "yesterday")]);
        assert!(not_modified(&same, &response));
        assert!(not_modified(&later, &response));
        assert!(!not_modified(&earlier, &response));
        assert!(!not_modified(&junk, &response));
        // A failing If-None-Match wins over a matching date.
        let both = headers(&[(IF_NONE_MATCH, "\"old\""), (IF_MODIFIED_SINCE, DATE)]);
        assert!(!not_modified(&both, &response));
        assert!(!not_modified(&HeaderMap::new(), &response));
    }

    #[test]
    fn if_match_compares_strongly_and_if_unmodified_since_yields_to_it() {
        let response = headers(&[(ETAG, "\"v\""), (LAST_MODIFIED, DATE)]);
        let failed =
            |pairs: &[(http::HeaderName, &str)]| precondition_failed(&headers(pairs), &response);
        assert!(!failed(&[]));
        assert!(!failed(&[(IF_MATCH, "\"v\"")]));
        assert!(!failed(&[(IF_MATCH, "\"x\", \"v\"")]));
        assert!(!failed(&[(IF_MATCH, "*")]));
        assert!(failed(&[(IF_MATCH, "W/\"v\"")]));
        assert!(failed(&[(IF_MATCH, "\"x\"")]));
        let weak = headers(&[(ETAG, "W/\"v\"")]);
        assert!(precondition_failed(
            &headers(&[(IF_MATCH, "W/\"v\"")]),
            &weak
        ));
        assert!(!failed(&[(IF_UNMODIFIED_SINCE, DATE)]));
        assert!(failed(&[(
            IF_UNMODIFIED_SINCE,
            "Tue, 01 Dec 2026 06:59:59 GMT"
        )]));
        assert!(!failed(&[(IF_UNMODIFIED_SINCE, "junk")]));
        // A matching If-Match wins over a failing date.
        let both = [
            (IF_MATCH, "\"v\""),
            (IF_UNMODIFIED_SINCE, "Mon, 01 Jan 2001 00:00:00 GMT"),
        ];
        assert!(!failed(&both));
    }
}
