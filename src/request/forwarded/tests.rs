use super::*;

fn trusted(nets: &[&str]) -> TrustedProxies {
    let mut all = TrustedHeaders::NONE;
    for name in TrustedHeaders::NAMES {
        assert!(all.add(name));
    }
    TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect(), all)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

const PROXY: &str = "10.0.0.5:4000";

fn resolve(nets: &[&str], peer: &str, pairs: &[(&str, &str)]) -> Option<Forwarded> {
    trusted(nets)
        .resolve(peer.parse().unwrap(), &headers(pairs))
        .unwrap()
}

#[test]
fn subnets_parse_and_match() {
    let net: Subnet = "10.0.0.0/8".parse().unwrap();
    assert!(net.contains("10.200.1.1".parse().unwrap()));
    assert!(!net.contains("11.0.0.1".parse().unwrap()));
    // An IPv4-mapped IPv6 peer (a [::] listener) is its IPv4 address.
    assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
    let v6: Subnet = "fd00::/8".parse().unwrap();
    assert!(v6.contains("fd12::1".parse().unwrap()));
    assert!(!v6.contains("10.0.0.1".parse().unwrap()));
    let host: Subnet = "192.168.1.7".parse().unwrap();
    assert_eq!(host.to_string(), "192.168.1.7/32");
    assert!(host.contains("192.168.1.7".parse().unwrap()));
    assert!(!host.contains("192.168.1.8".parse().unwrap()));
    let all: Subnet = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains("8.8.8.8".parse().unwrap()));
    for bad in [
        "10.0.0.0/33",
        "::/129",
        "10.0.0/8",
        "x",
        "10.0.0.0/",
        "10.0.0.0/-1",
    ] {
        assert!(bad.parse::<Subnet>().is_err(), "{bad}");
    }
}

#[test]
fn an_untrusted_peer_is_never_believed() {
    let spoof = [
        ("X-Forwarded-For", "1.2.3.4"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
        ("Forwarded", "for=1.2.3.4;proto=https;host=evil.example"),
        ("X-Real-IP", "1.2.3.4"),
    ];
    assert_eq!(resolve(&["10.0.0.0/8"], "203.0.113.9:5000", &spoof), None);
    assert_eq!(resolve(&[], PROXY, &spoof), None);
}

#[test]
fn the_rightmost_untrusted_address_is_the_client() {
    // The client prepended a fake address; our proxy appended the real one.
    let f = resolve(
        &["10.0.0.0/8"],
        PROXY,
        &[("X-Forwarded-For", "6.6.6.6, 198.51.100.7")],
    )
    .unwrap();
    assert_eq!(f.client, "198.51.100.7:4000".parse().unwrap());
    // Two trusted proxies in a row are skipped.
    let f = resolve(
        &["10.0.0.0/8"],
        PROXY,
        &[("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.0.0.9")],
    )
    .unwrap();
    assert_eq!(f.client.ip(), "198.51.100.7".parse::<IpAddr>().unwrap());
    // Repeated headers are one list.
    let f = resolve(
        &["10.0.0.0/8"],
        PROXY,
        &[
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-For", "198.51.100.7, 10.1.1.1"),
        ],
    )
    .unwrap();
    assert_eq!(f.client.ip(), "198.51.100.7".parse::<IpAddr>().unwrap());
    // All trusted: the leftmost.
    let f = resolve(
        &["10.0.0.0/8"],
        PROXY,
        &[("X-Forwarded-For", "10.3.3.3, 10.2.2.2")],
    )
    .unwrap();
    assert_eq!(f.client.ip(), "10.3.3.3".parse::<IpAddr>().unwrap());
}

#[test]
fn garbage_or_unknown_hops_end_the_walk() {
    // The proxy wrote the address; the garbage left of an untrusted hop is never read.
    let f = resolve(
        &["10.0.0.0/8"],
        PROXY,
        &[("X-Forwarded-For", "nonsense, 198.51.100.7")],
    )
    .unwrap();
    assert_eq!(f.client.ip(), "198.51.100.7".parse::<IpAddr>().unwrap());
    // A trusted hop said "unknown" for its client: the client stays that trusted hop.
    let f = resolve(
        &["10.0.0.0/8"],
        PROXY,
        &[("X-Forwarded-For", "1.2.3.4, unknown, 10.9.9.9")],
    )
    .unwrap();
    assert_eq!(f.client.ip(), "10.9.9.9".parse::<IpAddr>().unwrap());
    // Only garbage: the peer.
    let f = resolve(&["10.0.0.0/8"], PROXY, &[("X-Forwarded-For", "unknown")]).unwrap();
    assert_eq!(f.client, PROXY.parse().unwrap());
}

#[test]
fn ports_and_ipv6() {
    let f = resolve(
        &["10.0.0.0/8"],
        PROXY,
        &[("Forwarded", "for=\"[2001:db8::1]:4711\"")],
    )
    .unwrap();
    assert_eq!(f.client, "[2001:db8::1]:4711".parse().unwrap());
    let f = resolve(
        &["10.0.0.0/8"],
        PROXY,
        &[("X-Forwarded-For", "2001:db8::2")],
    )
    .unwrap();
    assert_eq!(f.client, "[2001:db8::2]:4000".parse().unwrap());
    let f = resolve(
        &["10.0.0.0/8"],
        PROXY,
        &[("X-Forwarded-For", "198.51.100.7:1234")],
    )
    .unwrap();
    assert_eq!(f.client, "198.51.100.7:1234".parse().unwrap());
    // A trusted IPv6 proxy.
    let f = resolve(
        &["fd00::/8"],
        "[fd00::5]:80",
        &[("X-Real-IP", "198.51.100.8")],
    )
    .unwrap();
    assert_eq!(f.client.ip(), "198.51.100.8".parse::<IpAddr>().unwrap());
}

#[test]
fn rfc7239_forwarded_with_proto_and_host_of_the_chosen_hop() {
    let f = resolve(
        &["10.0.0.0/8"],
        PROXY,
        &[(
            "Forwarded",
            "for=6.6.6.6;proto=http;host=evil.example, for=198.51.100.7;proto=https;host=\"shop.example:8443\", for=10.0.0.2;proto=http;host=internal",
        )],
    )
    .unwrap();
    assert_eq!(f.client.ip(), "198.51.100.7".parse::<IpAddr>().unwrap());
    assert_eq!(f.https, Some(true));
    assert_eq!(f.host.as_deref(), Some("shop.example:8443"));
    // Forwarded wins over X-Forwarded-For; names are case-insensitive; quoted commas don't split.
    let f = resolve(
        &["10.0.0.0/8"],
        PROXY,
        &[
            ("X-Forwarded-For", "6.6.6.6"),
            ("Forwarded", "For=198.51.100.9;Proto=HTTPS;ext=\"a,b\""),
        ],
    )
    .unwrap();
    assert_eq!(f.client.ip(), "198.51.100.9".parse::<IpAddr>().unwrap());
    assert_eq!(f.https, Some(true));
    assert_eq!(f.host, None);
}

#[test]
fn x_forwarded_proto_and_host() {
    let f = resolve(
        &["10.0.0.0/8"],
        PROXY,
        &[
            ("X-Forwarded-For", "198.51.100.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "shop.example"),
        ],
    )
    .unwrap();
    assert_eq!(f.https, Some(true));
    assert_eq!(f.host.as_deref(), Some("shop.example"));
    // Without an address list the proxy still describes scheme and host; the peer stays.
    let f = resolve(&["10.0.0.0/8"], PROXY, &[("X-Forwarded-Proto", "http")]).unwrap();
    assert_eq!(f.client, PROXY.parse().unwrap());
    assert_eq!(f.https, Some(false));
    // Lists that do not line up: the value our peer wrote (the last).
    let f = resolve(
        &["10.0.0.0/8"],
        PROXY,
        &[
            ("X-Forwarded-For", "198.51.100.7, 10.0.0.3"),
            ("X-Forwarded-Proto", "http, https, https"),
        ],
    )
    .unwrap();
    assert_eq!(f.https, Some(true));
}

#[test]
fn bad_forwarded_values_are_refused() {
    let t = trusted(&["10.0.0.0/8"]);
    let peer = PROXY.parse().unwrap();
    let err = t
        .resolve(peer, &headers(&[("X-Forwarded-Proto", "ftp")]))
        .unwrap_err();
    assert_eq!(err, ForwardedError::Proto("ftp".into()));
    for host in ["evil.example/admin?x=", "a b", "u@host", "x:99999", ""] {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_HOST, http::HeaderValue::from_str(host).unwrap());
        h.insert(X_FORWARDED_FOR, "198.51.100.7".parse().unwrap());
        match t.resolve(peer, &h) {
            Err(ForwardedError::Host(_)) => {}
            Ok(Some(f)) if host.is_empty() => assert_eq!(f.host, None),
            other => panic!("{host:?}: {other:?}"),
        }
    }
    let err = t
        .resolve(
            peer,
            &headers(&[("Forwarded", "for=198.51.100.7;host=\"a/b\"")]),
        )
        .unwrap_err();
    assert!(matches!(err, ForwardedError::Host(_)), "{err:?}");
}
