//! Trusted proxies (`http.trusted_subnets`): forwarding headers are believed only from a
//! trusted peer, and then reach REMOTE_ADDR, HTTPS, the Host, RR\Request and the access log.
mod common;
use common::{client, Options, Php};
use serde_json::{json, Value};

fn start(mode: &str, options: Value) -> Php {
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_OPTIONS", options.to_string()));
    opts.env.push(("RR_TEST_MODE", mode.to_owned()));
    Php::start_with("server_vars.php", opts)
}

fn get(php: &Php, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = client().get(php.url("/who"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap())
}

/// Everything a client may write to pass for someone else.
const SPOOF: [(&str, &str); 5] = [
    ("X-Forwarded-For", "6.6.6.6"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.example"),
    ("Forwarded", "for=6.6.6.6;proto=https;host=evil.example"),
    ("X-Real-IP", "6.6.6.6"),
];

#[test]
fn an_untrusted_peer_cannot_spoof_its_address_scheme_or_host() {
    // 127.0.0.1 is not in the trusted subnet: every header is ignored.
    let php = start("handle", json!({"http.trusted_subnets": ["10.0.0.0/8"]}));
    let (status, v) = get(&php, &SPOOF);
    assert_eq!(status, 200);
    assert_eq!(v["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(v["HTTPS"], Value::Null);
    assert_eq!(v["REQUEST_SCHEME"], "http");
    assert_eq!(v["HTTP_HOST"], php.addr.to_string());
    // With no trusted_subnets at all (the default), the same.
    let php = start("handle", json!({}));
    let (_, v) = get(&php, &SPOOF);
    assert_eq!(v["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(v["HTTPS"], Value::Null);
}

#[test]
fn a_trusted_proxy_names_the_client_scheme_and_host_in_handle_mode() {
    let php = start(
        "handle",
        json!({"http.trusted_subnets": ["127.0.0.0/8", "10.0.0.0/8"], "http.trusted_headers": ["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]}),
    );
    // The client's own prefix (6.6.6.6) is left of the first untrusted hop: never taken.
    let (status, v) = get(
        &php,
        &[
            ("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.0.0.2"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "shop.example"),
        ],
    );
    assert_eq!(status, 200);
    assert_eq!(v["REMOTE_ADDR"], "198.51.100.7");
    assert_eq!(v["HTTPS"], "on");
    assert_eq!(v["REQUEST_SCHEME"], "https");
    assert_eq!(v["HTTP_HOST"], "shop.example");
    assert_eq!(v["SERVER_NAME"], "shop.example");
    assert_eq!(v["SERVER_PORT"], "443");
    // RFC 7239 wins over X-Forwarded-For.
    let (_, v) = get(
        &php,
        &[
            ("X-Forwarded-For", "6.6.6.6"),
            (
                "Forwarded",
                "for=6.6.6.6;proto=http, for=\"[2001:db8::7]:4711\";proto=https;host=\"shop.example:8443\"",
            ),
        ],
    );
    assert_eq!(v["REMOTE_ADDR"], "2001:db8::7");
    assert_eq!(v["REMOTE_PORT"], "4711");
    assert_eq!(v["HTTPS"], "on");
    assert_eq!(v["HTTP_HOST"], "shop.example:8443");
    assert_eq!(v["SERVER_PORT"], "8443");
}

#[test]
fn a_trusted_proxy_is_believed_only_for_the_headers_it_writes() {
    // nginx's textbook lines set X-Forwarded-For and X-Forwarded-Proto and pass every other
    // header on as the client sent it. rr believed a client's Forwarded (address, scheme, Host)
    // and X-Forwarded-Host through such a proxy (seen with Debian's nginx 1.22 in front of rr).
    let php = start("handle", json!({"http.trusted_subnets": ["127.0.0.0/8"]}));
    let (status, v) = get(
        &php,
        &[
            (
                "Forwarded",
                "for=203.0.113.66;proto=https;host=evil.example",
            ),
            ("X-Forwarded-Host", "evil.example"),
            ("X-Real-IP", "203.0.113.67"),
            ("X-Forwarded-For", "198.51.100.7"),
            ("X-Forwarded-Proto", "http"),
        ],
    );
    assert_eq!(status, 200);
    assert_eq!(v["REMOTE_ADDR"], "198.51.100.7");
    assert_eq!(v["HTTPS"], Value::Null);
    assert_eq!(v["HTTP_HOST"], php.addr.to_string());
    // Without X-Forwarded-For, a client's X-Real-IP or X-Forwarded-Host proves nothing either.
    let (_, v) = get(
        &php,
        &[
            ("X-Real-IP", "203.0.113.67"),
            ("X-Forwarded-Host", "evil.example"),
        ],
    );
    assert_eq!(v["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(v["HTTP_HOST"], php.addr.to_string());
    // An operator whose proxy writes Forwarded says so; then only that one is read.
    let php = start(
        "handle",
        json!({"http.trusted_subnets": ["127.0.0.0/8"], "http.trusted_headers": "forwarded"}),
    );
    let (_, v) = get(
        &php,
        &[
            (
                "Forwarded",
                "for=203.0.113.66;proto=https;host=shop.example",
            ),
            ("X-Forwarded-For", "198.51.100.7"),
        ],
    );
    assert_eq!(v["REMOTE_ADDR"], "203.0.113.66");
    assert_eq!(v["HTTPS"], "on");
    assert_eq!(v["HTTP_HOST"], "shop.example");
    let (_, v) = get(&php, &[("X-Forwarded-For", "198.51.100.7")]);
    assert_eq!(v["REMOTE_ADDR"], "127.0.0.1");
}

#[test]
fn a_forwarded_host_passes_the_host_check() {
    let php = start(
        "handle",
        json!({"http.trusted_subnets": ["127.0.0.1"], "http.trusted_headers": ["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]}),
    );
    for host in ["evil.example/admin?x=", "u@evil.example", "x:99999"] {
        let response = client()
            .get(php.url("/who"))
            .header("X-Forwarded-Host", host)
            .send()
            .unwrap();
        assert_eq!(response.status(), 400, "{host}");
        let body: Value = response.json().unwrap();
        assert_eq!(body["code"], "bad_host", "{host}: {body}");
    }
    let response = client()
        .get(php.url("/who"))
        .header("X-Forwarded-Proto", "gopher")
        .send()
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().unwrap();
    assert_eq!(body["code"], "bad_forwarded", "{body}");
}

#[test]
fn rr_request_and_the_access_log_see_the_client() {
    let mut opts = Options::default();
    opts.env.push((
        "RR_TEST_OPTIONS",
        json!({"http.trusted_subnets": ["127.0.0.0/8"], "logs.encoding": "json", "http.trusted_headers": ["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]})
            .to_string(),
    ));
    opts.env.push(("RR_TEST_MODE", "respond".to_owned()));
    opts.ini.push(("rr.access_logs", "1".into()));
    let php = Php::start_with("server_vars.php", opts);
    let (_, v) = get(
        &php,
        &[
            ("X-Forwarded-For", "203.0.113.50"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "api.example"),
        ],
    );
    assert_eq!(v["remoteAddr"], "203.0.113.50");
    assert_eq!(v["https"], true);
    assert_eq!(v["scheme"], "https");
    assert_eq!(v["host"], "api.example");
    assert_eq!(v["uri"], "https://api.example/who");
    assert!(php.wait_for_log("203.0.113.50"), "{}", php.stderr());
    let line = php
        .stderr()
        .lines()
        .find(|l| l.contains("rr::access"))
        .unwrap()
        .to_owned();
    let entry: Value = serde_json::from_str(&line).unwrap();
    assert!(
        entry["fields"]["remote"]
            .as_str()
            .unwrap()
            .starts_with("203.0.113.50:"),
        "{line}"
    );
}

#[test]
fn pool_mode_forwards_the_client_to_workers() {
    let php = start(
        "respond",
        json!({"http.trusted_subnets": ["127.0.0.0/8"], "http.pool.num_workers": 1, "http.trusted_headers": ["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]}),
    );
    let (_, v) = get(
        &php,
        &[(
            "Forwarded",
            "for=203.0.113.60;proto=https;host=pool.example",
        )],
    );
    assert_eq!(v["remoteAddr"], "203.0.113.60");
    assert_eq!(v["https"], true);
    assert_eq!(v["host"], "pool.example");
    assert_eq!(v["headers"]["Host"], json!(["pool.example"]));
}

/// `$_SERVER` names a header `HTTP_` + its name upper-cased with `-` as `_`, so `X_Auth_User`
/// and `X-Auth-User` are one variable: a client's `X_Auth_User` would override (or stand in for)
/// the `X-Auth-User` an authenticating proxy sets. nginx drops header names with `_`
/// (`underscores_in_headers off`) and Apache keeps them out of the CGI variables; rr's PHP
/// bridges did, `handle()` did not. And `Proxy` must never become `HTTP_PROXY` (httpoxy): PHP
/// runs as the `cli` SAPI, where Guzzle and Symfony HttpClient take `$_SERVER['HTTP_PROXY']` as
/// the proxy for every request they send.
fn header_names_never_collide_in_server(pool: bool) {
    let options = match pool {
        true => json!({"http.pool.num_workers": 1}),
        false => json!({}),
    };
    let php = start("handle", options);
    let (status, v) = get(
        &php,
        &[
            ("X-Auth-User", "alice"),
            ("X_Auth_User", "admin"),
            ("Proxy", "http://evil.example:8080"),
        ],
    );
    assert_eq!(status, 200);
    assert_eq!(v["HTTP_X_AUTH_USER"], "alice");
    assert_eq!(v["HTTP_PROXY"], Value::Null);
    // Alone, the underscored one stands in for nothing.
    let (_, v) = get(&php, &[("X_Auth_User", "admin")]);
    assert_eq!(v["HTTP_X_AUTH_USER"], Value::Null);
}

#[test]
fn header_names_never_collide_in_server_in_handle_mode() {
    header_names_never_collide_in_server(false);
}

#[test]
fn header_names_never_collide_in_server_in_a_pool() {
    header_names_never_collide_in_server(true);
}
