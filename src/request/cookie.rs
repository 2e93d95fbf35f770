//! `$_COOKIE` from the Cookie request headers, parsed like php-src `php_default_treat_data`.
use super::form::{is_c_space, url_decode, FormLimits, Tree};
use bytes::Bytes;
use http::header::{HeaderMap, COOKIE};

/// Builds `$_COOKIE` as PHP 8.2 does: pairs split on ';', leading whitespace dropped, names kept
/// as sent (PHP stopped url-decoding them, CVE-2020-7070) then mangled like any variable name,
/// values url-decoded without turning '+' into a space, a pair without '=' gives "", the first
/// cookie of a name wins. Every Cookie header counts (HTTP/2 sends one per cookie), as if
/// joined with "; ".
pub fn parse_cookies(headers: &HeaderMap, limits: &FormLimits) -> Tree<Bytes> {
    let mut tree = Tree::new();
    let mut count = 0;
    let pairs = headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|header| header.as_bytes().split(|&b| b == b';'));
    for pair in pairs {
        let start = pair
            .iter()
            .position(|&b| !is_c_space(b))
            .unwrap_or(pair.len());
        let eq = pair.iter().position(|&b| b == b'=');
        // Blank pairs and pairs with an empty name are skipped before counting.
        if start == pair.len() || eq == Some(start) {
            continue;
        }
        count += 1;
        if count > limits.max_vars {
            break;
        }
        let (name, value) = match eq {
            Some(eq) => (&pair[start..eq], url_decode(&pair[eq + 1..], false)),
            None => (&pair[start..], Vec::new()),
        };
        tree.insert_first_wins(name, Bytes::from(value), limits.max_depth);
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::super::form::{php_json, Key, Node};
    use super::*;
    use http::HeaderValue;

    fn cookies(values: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(COOKIE, HeaderValue::from_str(value).unwrap());
        }
        php_json(&parse_cookies(&headers, &FormLimits::default()))
    }

    /// Expectations are `$_COOKIE` from PHP 8.2's built-in server, captured with `json_encode`.
    #[test]
    fn matches_php() {
        let cases = [
            ("a=1; b=2", r#"{"a":"1","b":"2"}"#),
            ("a=1;b=2;a=3", r#"{"a":"1","b":"2"}"#),
            ("a=x+y%20z%2B", r#"{"a":"x+y z+"}"#),
            (
                "a+b=1; a%20c=2; a.d=3",
                r#"{"a+b":"1","a%20c":"2","a_d":"3"}"#,
            ),
            ("noeq; =v; x=", r#"{"noeq":"","x":""}"#),
            (" ;; a=1 ;  b = 2", r#"{"a":"1 ","b_":" 2"}"#),
            (
                "a[b]=1; a[b]=2; a[]=3; a[]=4",
                r#"{"a":{"b":"2","0":"3","1":"4"}}"#,
            ),
            ("a=1; a[b]=2", r#"{"a":{"b":"2"}}"#),
            ("a[b]=1; a=2", r#"{"a":{"b":"1"}}"#),
            (
                "__Host-x=1; __Host.y=2; _.Host-z=3",
                r#"{"__Host-x":"1","__Host_y":"2"}"#,
            ),
            ("a=%zz%4", r#"{"a":"%zz%4"}"#),
            ("a=1=2", r#"{"a":"1=2"}"#),
            ("x[y=1", r#"{"x_y":"1"}"#),
            ("k=v1; K=v2", r#"{"k":"v1","K":"v2"}"#),
            ("", "[]"),
        ];
        for (header, php) in cases {
            assert_eq!(cookies(&[header]), php, "Cookie: {header}");
        }
    }

    #[test]
    fn every_cookie_header_counts_and_first_wins() {
        assert_eq!(
            cookies(&["a=1", "b=2; a=3", "c=4"]),
            r#"{"a":"1","b":"2","c":"4"}"#
        );
    }

    #[test]
    fn values_are_binary_safe() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_bytes(b"v=%00%FF\xfe").unwrap());
        let tree = parse_cookies(&headers, &FormLimits::default());
        let Some(Node::Leaf(v)) = tree.get(&Key::Name("v".into())) else {
            panic!("no v in {tree:?}");
        };
        assert_eq!(&v[..], b"\x00\xff\xfe");
    }

    #[test]
    fn max_vars_counts_named_pairs_only() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("a=1; ; =x; b=2; c=3"));
        let limits = FormLimits {
            max_vars: 2,
            ..FormLimits::default()
        };
        assert_eq!(
            php_json(&parse_cookies(&headers, &limits)),
            r#"{"a":"1","b":"2"}"#
        );
    }
}
