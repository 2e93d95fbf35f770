use super::*;
use http::HeaderValue;

fn check_with(
    method: Method,
    version: Version,
    target: &str,
    hosts: &[&str],
    fragment: bool,
) -> Result<Target, TargetError> {
    let uri: Uri = target.parse().unwrap();
    let mut headers = HeaderMap::new();
    for h in hosts {
        headers.append(header::HOST, HeaderValue::from_bytes(h.as_bytes()).unwrap());
    }
    Target::check(&Head {
        method: &method,
        version,
        uri: &uri,
        headers: &headers,
        https: false,
        fragment,
    })
}

fn check(target: &str, host: &str) -> Result<Target, TargetError> {
    check_with(Method::GET, Version::HTTP_11, target, &[host], false)
}

#[test]
fn the_parts_are_kept_as_sent() {
    let t = check("/a%20b//c/./d?x=1&y=%zz&z", "Example.org:8080").unwrap();
    assert_eq!(t.path(), "/a%20b//c/./d");
    assert_eq!(t.query(), "x=1&y=%zz&z");
    assert_eq!(t.request_uri(), "/a%20b//c/./d?x=1&y=%zz&z");
    assert_eq!(t.document_uri(), b"/a b/c/d");
    assert_eq!(t.authority(), Some("Example.org:8080"));
    assert_eq!((t.host(), t.port()), ("Example.org", Some(8080)));
    assert_eq!(t.uri(), "http://Example.org:8080/a%20b//c/./d?x=1&y=%zz&z");
    let t = check("/p?", "h").unwrap();
    assert!(t.has_query() && t.query().is_empty());
    assert_eq!(t.request_uri(), "/p?");
    assert_eq!(t.port_or_default(), 80);
    let t = check("/", "[::1]:8443").unwrap();
    assert_eq!((t.host(), t.port()), ("[::1]", Some(8443)));
    let t = check("/", "[::1]").unwrap();
    assert_eq!((t.host(), t.port()), ("[::1]", None));
}

#[test]
fn a_host_header_never_reaches_the_path_or_query() {
    for host in [
        "x/admin/users?id=7&",
        "x?id=7",
        "x#y",
        "@",
        "u@h",
        "",
        "x:99999",
        "x:8a",
        "[::1",
        "[zzz]",
        "[::1]x",
        "a b",
        "a\\b",
        "%zz",
        ":80",
        "h:65536",
    ] {
        let err = check("/public?page=2", host).unwrap_err();
        assert!(
            matches!(err, TargetError::HostInvalid { .. }),
            "{host:?}: {err:?}"
        );
    }
    for host in [
        "h",
        "h:",
        "h:0",
        "h:65535",
        "1.2.3.4",
        "a-b.c_d~e",
        "%41b",
        "a!$&'()*+,;=b",
        "[v1.x:y]",
        "[::ffff:1.2.3.4]:1",
    ] {
        let t = check("/public?page=2", host).unwrap_or_else(|e| panic!("{host:?}: {e}"));
        assert_eq!(t.request_uri(), "/public?page=2");
        assert_eq!(t.authority(), Some(host));
    }
}

#[test]
fn host_presence_follows_rfc_9112() {
    let missing = check_with(Method::GET, Version::HTTP_11, "/", &[], false);
    assert_eq!(missing, Err(TargetError::HostMissing));
    let absolute = check_with(Method::GET, Version::HTTP_11, "http://h/", &[], false);
    assert_eq!(absolute, Err(TargetError::HostMissing));
    let old = check_with(Method::GET, Version::HTTP_10, "/x", &[], false).unwrap();
    assert_eq!(old.authority(), None);
    assert_eq!(old.uri(), "http://localhost/x");
    let two = check_with(Method::GET, Version::HTTP_11, "/", &["a", "a"], false);
    assert_eq!(two, Err(TargetError::HostDuplicate));
}

#[test]
fn absolute_form_names_the_host_and_must_agree_with_host() {
    let t = check("http://Example.org:81/p?q", "example.ORG:81").unwrap();
    assert_eq!(t.authority(), Some("Example.org:81"));
    assert_eq!(t.request_uri(), "/p?q");
    assert!(matches!(
        check("http://other/p", "h"),
        Err(TargetError::HostMismatch { .. })
    ));
    assert!(matches!(
        check("http://u@h/p", "u@h"),
        Err(TargetError::HostInvalid { .. })
    ));
    assert_eq!(
        check("ftp://h/p", "h"),
        Err(TargetError::Scheme("ftp".into()))
    );
    // HTTP/2: :authority without a Host header.
    let t = check_with(
        Method::GET,
        Version::HTTP_2,
        "https://h2.test/x",
        &[],
        false,
    )
    .unwrap();
    assert_eq!(t.authority(), Some("h2.test"));
    let h2_bad_host = check_with(
        Method::GET,
        Version::HTTP_2,
        "https://h2.test/x",
        &["x/admin?"],
        false,
    );
    assert!(matches!(h2_bad_host, Err(TargetError::HostInvalid { .. })));
}

#[test]
fn targets_that_name_something_else_are_refused() {
    let frag = check_with(Method::DELETE, Version::HTTP_11, "/dir/", &["h"], true);
    assert_eq!(frag, Err(TargetError::Fragment));
    for (target, error) in [
        ("*", TargetError::Form),
        ("/%", TargetError::BadPercent),
        ("/a%2", TargetError::BadPercent),
        ("/a%zz", TargetError::BadPercent),
        ("/a%00b", TargetError::Nul),
        ("/..", TargetError::DotEscape),
        ("/a/../..", TargetError::DotEscape),
        ("/%2e%2e/x", TargetError::DotEscape),
        ("/a/%2E%2E/%2e%2e/etc", TargetError::DotEscape),
        ("/caf\u{e9}", TargetError::NonAscii),
        ("/?q=\u{e9}", TargetError::NonAscii),
    ] {
        assert_eq!(check(target, "h"), Err(error), "{target}");
    }
    for method in [Method::TRACE, Method::CONNECT] {
        let refused = check_with(method.clone(), Version::HTTP_11, "/", &["h"], false);
        assert_eq!(refused, Err(TargetError::Method(method)));
    }
}

#[test]
fn document_uri_is_nginx_s_normalized_path() {
    for (path, normalized) in [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("//a///b", "/a/b"),
        ("/a/./b/.", "/a/b/"),
        ("/a/b/..", "/a/"),
        ("/a/b/../c", "/a/c"),
        ("/a/..", "/"),
        ("/%61%2Fb", "/a/b"),
        ("/a/", "/a/"),
        ("/a;p=1/b", "/a;p=1/b"),
        ("/.x/..y", "/.x/..y"),
    ] {
        let t = check(path, "h").unwrap();
        assert_eq!(
            String::from_utf8_lossy(t.document_uri()),
            normalized,
            "{path}"
        );
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Printable ASCII plus a few non-ASCII characters: everything a target or Host may hold
    /// and much that it may not.
    fn text(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                8 => (0x21u8..0x7f).prop_map(char::from),
                1 => Just('é'),
                1 => Just('/'),
                1 => Just('%'),
            ],
            0..max,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// For any target hyper accepts (it parses with `Uri::from_maybe_shared`), the parts rr
        /// keeps reassemble to the target as sent, and the Host header never reaches them.
        #[test]
        fn the_kept_parts_are_the_target_as_sent(tail in text(40), host in text(24)) {
            let raw = format!("/{tail}");
            let Ok(uri) = Uri::from_maybe_shared(bytes::Bytes::from(raw.clone())) else {
                return Ok(()); // hyper answers 400 itself
            };
            let Ok(value) = HeaderValue::from_str(&host) else {
                return Ok(());
            };
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, value);
            let head = Head {
                method: &Method::GET,
                version: Version::HTTP_11,
                uri: &uri,
                headers: &headers,
                https: false,
                fragment: raw.contains('#'),
            };
            match Target::check(&head) {
                Ok(t) => {
                    prop_assert_eq!(t.request_uri(), raw.as_str());
                    prop_assert_eq!(t.authority(), Some(host.as_str()));
                    prop_assert!(!raw.contains('#'));
                    prop_assert!(!host.contains(['/', '?', '#', '@']));
                    prop_assert_eq!(t.uri(), format!("http://{host}{raw}"));
                }
                Err(e) => {
                    let bad_host = e.is_host();
                    let bad_target = raw.contains('#') || !raw.is_ascii() || raw.contains('%');
                    prop_assert!(bad_host || bad_target || raw.contains("/."), "{e} for {raw:?}");
                }
            }
        }
    }
}
