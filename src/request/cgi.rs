//! `$_SERVER` for superglobal mode, filled the way nginx's `fastcgi_params` and php-fpm fill it,
//! in plain Rust so it can be unit-tested without PHP.
use super::RequestData;
use bytes::Bytes;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the application's entry script is, as php-fpm would be told by the web server.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// `DOCUMENT_ROOT`, absolute, without a trailing slash.
    pub document_root: String,
    /// `SCRIPT_NAME` and `PHP_SELF`, starting with '/'.
    pub script_name: String,
}

/// One `$_SERVER` value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Bytes),
    Int(i64),
    Float(f64),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(Bytes::from(s))
    }
}

/// `Authorization: Basic` decoded to user and password, as PHP's `php_handle_auth_data`.
pub fn basic_auth(header: &[u8]) -> Option<(Bytes, Bytes)> {
    header
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case(b"basic "))?;
    let decoded = base64_decode(header[6..].trim_ascii())?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((
        Bytes::copy_from_slice(&decoded[..colon]),
        Bytes::copy_from_slice(&decoded[colon + 1..]),
    ))
}

fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in input.iter().take_while(|&&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Whether a request header becomes an `HTTP_*` variable. Not with a `_` in its name, as nginx
/// (`underscores_in_headers off`) and Apache: `X_Auth_User` would pass for, or override, the
/// `X-Auth-User` a proxy sets. Not `Proxy` (httpoxy): PHP runs as the `cli` SAPI, where Guzzle
/// and Symfony HttpClient take `$_SERVER['HTTP_PROXY']` as the proxy for what they send.
fn into_server(name: &http::header::HeaderName) -> bool {
    !name.as_str().contains('_') && name.as_str() != "proxy"
}

/// Every `$_SERVER` entry for `req`, in php-fpm's order (web-server params, then `HTTP_*`, then
/// what PHP adds itself).
pub fn server_vars(req: &RequestData, script: &Script, now: SystemTime) -> Vec<(String, Value)> {
    let target = &req.target;
    // IPv6 literals keep their brackets, like nginx's `$host`.
    let host = match target.host() {
        "" => "localhost",
        host => host,
    };
    let https = target.https();
    let header = |name: http::header::HeaderName| {
        req.headers
            .get(name)
            .map(|v| Value::Str(Bytes::copy_from_slice(v.as_bytes())))
            .unwrap_or(Value::from(""))
    };
    let filename = format!("{}{}", script.document_root, script.script_name);
    let mut vars: Vec<(String, Value)> = vec![
        ("QUERY_STRING".into(), target.query().into()),
        ("REQUEST_METHOD".into(), req.method.as_str().into()),
        ("CONTENT_TYPE".into(), header(http::header::CONTENT_TYPE)),
        (
            "CONTENT_LENGTH".into(),
            header(http::header::CONTENT_LENGTH),
        ),
        ("SCRIPT_NAME".into(), script.script_name.as_str().into()),
        ("REQUEST_URI".into(), target.request_uri().as_ref().into()),
        (
            "DOCUMENT_URI".into(),
            Value::Str(Bytes::copy_from_slice(target.document_uri())),
        ),
        ("DOCUMENT_ROOT".into(), script.document_root.as_str().into()),
        ("SERVER_PROTOCOL".into(), req.protocol.into()),
        ("REQUEST_SCHEME".into(), target.scheme().into()),
    ];
    if https {
        vars.push(("HTTPS".into(), "on".into()));
    }
    vars.extend([
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        (
            "SERVER_SOFTWARE".into(),
            concat!("rr/", env!("CARGO_PKG_VERSION")).into(),
        ),
        (
            "REMOTE_ADDR".into(),
            req.remote_addr.ip().to_string().into(),
        ),
        (
            "REMOTE_PORT".into(),
            req.remote_addr.port().to_string().into(),
        ),
        (
            "SERVER_PORT".into(),
            target.port_or_default().to_string().into(),
        ),
        ("SERVER_NAME".into(), host.into()),
        ("REDIRECT_STATUS".into(), "200".into()),
        ("SCRIPT_FILENAME".into(), filename.into()),
    ]);
    for name in req.headers.keys().filter(|n| into_server(n)) {
        let mut value = Vec::new();
        for (i, v) in req.headers.get_all(name).iter().enumerate() {
            // nginx joins repeated Cookie headers with "; ", others with ", ".
            let sep: &[u8] = if name == http::header::COOKIE {
                b"; "
            } else {
                b", "
            };
            if i > 0 {
                value.extend_from_slice(sep);
            }
            value.extend_from_slice(v.as_bytes());
        }
        let key = format!(
            "HTTP_{}",
            name.as_str().to_ascii_uppercase().replace('-', "_")
        );
        vars.push((key, Value::Str(Bytes::from(value))));
    }
    if let Some((user, pw)) = req
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| basic_auth(v.as_bytes()))
    {
        vars.push(("PHP_AUTH_USER".into(), Value::Str(user)));
        vars.push(("PHP_AUTH_PW".into(), Value::Str(pw)));
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    vars.extend([
        ("PHP_SELF".into(), script.script_name.as_str().into()),
        (
            "REQUEST_TIME_FLOAT".into(),
            Value::Float(since.as_secs_f64()),
        ),
        ("REQUEST_TIME".into(), Value::Int(since.as_secs() as i64)),
    ]);
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::target::Target;
    use std::time::Duration;

    fn request(
        https: bool,
        authority: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> RequestData {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (target, None),
        };
        RequestData {
            remote_addr: "10.0.0.7:5123".parse().unwrap(),
            headers: map,
            target: Target::from_parts(https, Some(authority.into()), path.into(), query).unwrap(),
            ..RequestData::for_test(http::Method::POST, "/")
        }
    }

    fn get<'a>(vars: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
        vars.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    #[test]
    fn fills_the_cgi_variables_like_fpm() {
        let script = Script {
            document_root: "/srv/app".into(),
            script_name: "/index.php".into(),
        };
        let req = request(
            false,
            "example.org:8081",
            "/a/b?x=1&y",
            &[
                ("content-type", "text/plain"),
                ("x-forwarded-for", "1.2.3.4"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
                ("authorization", "Basic dXNlcjpwYTpzcw=="),
            ],
        );
        let vars = server_vars(&req, &script, UNIX_EPOCH + Duration::from_millis(1500));
        let s = |v: &str| Some(Value::from(v));
        assert_eq!(get(&vars, "REQUEST_URI").cloned(), s("/a/b?x=1&y"));
        assert_eq!(get(&vars, "QUERY_STRING").cloned(), s("x=1&y"));
        assert_eq!(get(&vars, "DOCUMENT_URI").cloned(), s("/a/b"));
        assert_eq!(get(&vars, "SERVER_NAME").cloned(), s("example.org"));
        assert_eq!(get(&vars, "SERVER_PORT").cloned(), s("8081"));
        assert_eq!(
            get(&vars, "SCRIPT_FILENAME").cloned(),
            s("/srv/app/index.php")
        );
        assert_eq!(get(&vars, "CONTENT_TYPE").cloned(), s("text/plain"));
        assert_eq!(get(&vars, "CONTENT_LENGTH").cloned(), s(""));
        assert_eq!(get(&vars, "HTTP_X_FORWARDED_FOR").cloned(), s("1.2.3.4"));
        assert_eq!(get(&vars, "HTTP_COOKIE").cloned(), s("a=1; b=2"));
        assert_eq!(get(&vars, "PHP_AUTH_USER").cloned(), s("user"));
        assert_eq!(get(&vars, "PHP_AUTH_PW").cloned(), s("pa:ss"));
        assert_eq!(get(&vars, "REMOTE_ADDR").cloned(), s("10.0.0.7"));
        assert_eq!(get(&vars, "REQUEST_TIME"), Some(&Value::Int(1)));
        assert_eq!(get(&vars, "REQUEST_TIME_FLOAT"), Some(&Value::Float(1.5)));
        assert!(get(&vars, "HTTPS").is_none());
    }

    #[test]
    fn underscored_names_and_proxy_stay_out() {
        let script = Script {
            document_root: "/r".into(),
            script_name: "/i.php".into(),
        };
        let headers = [
            ("x_auth_user", "admin"),
            ("x-auth-user", "alice"),
            ("x_other", "1"),
            ("proxy", "http://evil:1"),
        ];
        let vars = server_vars(&request(false, "h", "/", &headers), &script, UNIX_EPOCH);
        let named = |name: &str| vars.iter().filter(|(k, _)| k == name).count();
        assert_eq!(named("HTTP_X_AUTH_USER"), 1);
        assert_eq!(get(&vars, "HTTP_X_AUTH_USER"), Some(&Value::from("alice")));
        assert_eq!(named("HTTP_X_OTHER"), 0);
        assert_eq!(named("HTTP_PROXY"), 0);
    }

    #[test]
    fn https_and_default_ports() {
        let script = Script {
            document_root: "/r".into(),
            script_name: "/i.php".into(),
        };
        let req = request(true, "[::1]", "/", &[]);
        let vars = server_vars(&req, &script, UNIX_EPOCH);
        assert_eq!(get(&vars, "HTTPS").cloned(), Some(Value::from("on")));
        assert_eq!(get(&vars, "SERVER_PORT").cloned(), Some(Value::from("443")));
        assert_eq!(
            get(&vars, "SERVER_NAME").cloned(),
            Some(Value::from("[::1]"))
        );
        assert_eq!(basic_auth(b"Bearer x"), None);
        assert_eq!(basic_auth(b"basic !!"), None);
    }
}
