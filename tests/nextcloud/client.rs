//! HTTP for the Nextcloud suite: a browser-like session (cookie jar, no redirects followed),
//! answers reduced to what must match between rr and php-fpm, and the normalisation of what may
//! not (request ids, nonces, tokens, dates, etags, ports).
use super::harness::Server;
use reqwest::blocking::{Body, Client};
use reqwest::header::HeaderMap;
use reqwest::Method;
use std::collections::BTreeMap;
use std::time::Duration;

pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

/// One answer, kept whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The names of the cookies this answer sets (sorted, each once) and whether each one is a
    /// deletion: what a browser would do with them, not their secret values.
    pub fn cookie_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                let (name, value) = v.split(';').next()?.split_once('=')?;
                let deleted = value == "deleted" || value.is_empty() || v.contains("Max-Age=0");
                Some(format!(
                    "{}{}",
                    name.trim(),
                    if deleted { " (deleted)" } else { "" }
                ))
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// A browser-like client for one server: keeps cookies, never follows redirects.
pub struct Session<'a> {
    pub server: &'a Server,
    http: Client,
    pub cookies: BTreeMap<String, String>,
}

impl<'a> Session<'a> {
    pub fn new(server: &'a Server) -> Session<'a> {
        Session {
            server,
            http: client(),
            cookies: BTreeMap::new(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Sends `method path` with `headers` and `body`; takes the cookies it sets.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Answer {
        let mut req = self.http.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            self.server.url(path),
        );
        if !self.cookies.is_empty() {
            req = req.header("Cookie", self.cookie_header());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.body(body).send().unwrap_or_else(|e| {
            panic!(
                "{} {method} {path}: {e}\n{}",
                self.server.name(),
                self.server.logs()
            )
        });
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .unwrap_or_else(|e| panic!("{} {method} {path}: body: {e}", self.server.name()))
            .to_vec();
        for v in headers.get_all("set-cookie") {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            let Some((name, value)) = v.split(';').next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let lower = v.to_ascii_lowercase();
            let expired = lower.contains("max-age=0")
                || lower.contains("expires=thu, 01-jan-1970")
                || lower.contains("expires=thu, 01 jan 1970");
            if value == "deleted" || value.is_empty() || expired {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_string(), value.to_string());
            }
        }
        Answer {
            status,
            headers,
            body,
        }
    }

    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send("GET", path, headers, Vec::new())
    }
}

/// `Authorization: Basic` for a user and password.
pub fn basic(user: &str, password: &str) -> String {
    use base64_lite::encode;
    format!("Basic {}", encode(format!("{user}:{password}").as_bytes()))
}

mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(input: &[u8]) -> String {
        let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// Standard base64 with padding; None on anything else.
    pub fn decode(input: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(input.len() / 4 * 3);
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in input.bytes() {
            if c == b'=' {
                break;
            }
            let v = ALPHABET.iter().position(|&a| a == c)? as u32;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        Some(out)
    }

    #[test]
    fn decodes_what_it_encodes() {
        for s in [&b""[..], b"f", b"fo", b"foo", b"foobar", b"\xff\x00\x10"] {
            assert_eq!(decode(&encode(s)).as_deref(), Some(s));
        }
    }

    #[test]
    fn encodes_like_rfc4648() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg==");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(encode(b"foo"), "Zm9v");
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
    }
}

// ------------------------------------------------------------------ normalisation

/// Nextcloud's initial state (`<input type="hidden" id="initial-state-APP-KEY" value="BASE64">`)
/// decoded, so that what it says about the user is compared, normalised like the page.
pub fn decode_initial_state(html: &str, server: &Server) -> String {
    let marker = "id=\"initial-state-";
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find(marker) {
        let after = &rest[i..];
        let Some(v) = after.find("value=\"") else {
            break;
        };
        let start = i + v + "value=\"".len();
        let Some(len) = rest[start..].find('"') else {
            break;
        };
        out.push_str(&rest[..start]);
        let value = &rest[start..start + len];
        match base64_lite::decode(value) {
            Some(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                out.push_str(&normalize(&text, server, &[]));
            }
            None => out.push_str(value),
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

/// Each initial state of a page as `app-key = decoded JSON`, normalised, with the named volatile
/// keys masked (at any depth) and the named volatile states masked whole.
pub fn initial_states(html: &str, server: &Server, volatile: &[&str]) -> Vec<String> {
    let marker = "id=\"initial-state-";
    html.split(marker)
        .skip(1)
        .filter_map(|part| {
            let name = part.split('"').next()?;
            let value = part.split("value=\"").nth(1)?.split('"').next()?;
            if volatile.contains(&name) {
                return Some(format!("{name} = *"));
            }
            let bytes = base64_lite::decode(value)?;
            let text = match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(json) => normalize_json(&json, server, volatile).to_string(),
                Err(_) => normalize(&String::from_utf8_lossy(&bytes), server, &[]),
            };
            Some(format!("{name} = {text}"))
        })
        .collect()
}

/// Replaces every value that legitimately differs between two servers or two runs with a
/// placeholder: the server's own origin and port, request ids, CSP nonces, request tokens,
/// dates, etags, file ids, share tokens passed in `extra`.
pub fn normalize(text: &str, server: &Server, extra: &[(&str, &str)]) -> String {
    let mut t = text.replace(&server.origin(), "{origin}");
    t = t.replace(&format!("127.0.0.1:{}", server.port), "{host}");
    t = t.replace(&format!("127.0.0.1\\:{}", server.port), "{host}");
    t = t.replace(&format!("127.0.0.1\\/:{}", server.port), "{host}");
    // JSON escapes slashes: http:\/\/127.0.0.1:port
    t = t.replace(&server.origin().replace('/', "\\/"), "{origin}");
    for (from, to) in extra {
        if !from.is_empty() {
            t = t.replace(from, to);
        }
    }
    // A request token in a URL (the logout link), URL-encoded.
    for param in ["?requesttoken=", "&requesttoken=", "&amp;requesttoken="] {
        t = mask_after(&t, param, |c| c == '"' || c == '&' || c == '\'');
    }
    for var in ["var nc_pageLoad=", "var nc_lastLogin="] {
        t = mask_after(&t, var, |c| c == ';');
    }
    for attr in [
        "data-requesttoken=\"",
        "nonce=\"",
        "'nonce-",
        "name=\"requesttoken\" value=\"",
    ] {
        t = mask_after(&t, attr, |c| c == '"' || c == '\'');
    }
    for el in [
        "d:getetag",
        "d:getlastmodified",
        "d:creationdate",
        "oc:fileid",
        "oc:id",
        "nc:upload_time",
        "nc:creation_time",
        "nc:last_activity",
        "s:exception",
        "nc:lock-time",
        "oc:checksums",
    ] {
        t = mask_element(&t, el);
    }
    t
}

/// Replaces what follows each `prefix` up to `end` with `*`.
pub fn mask_after(text: &str, prefix: &str, end: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        out.push_str(&rest[..i + prefix.len()]);
        rest = &rest[i + prefix.len()..];
        let stop = rest.find(&end).unwrap_or(rest.len());
        out.push('*');
        rest = &rest[stop..];
    }
    out.push_str(rest);
    out
}

/// `<el ...>value</el>` becomes `<el ...>*</el>`.
pub fn mask_element(text: &str, el: &str) -> String {
    let open = format!("<{el}");
    let close = format!("</{el}>");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        // `<d:getetag>` or `<d:getetag xmlns..>`, not `<d:getetagfoo>`; `<el/>` has no value.
        let Some(gt) = after.find('>') else { break };
        let tag_ok = after.starts_with('>') || after.starts_with(' ');
        if !tag_ok || after[..gt].ends_with('/') {
            out.push_str(&rest[..i + open.len()]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..i + open.len() + gt + 1]);
        let inner = &after[gt + 1..];
        match inner.find(&close) {
            Some(c) => {
                out.push('*');
                rest = &inner[c..];
            }
            None => {
                rest = inner;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A multistatus body with its `<d:response>` elements in sorted order: WebDAV gives them no
/// order, and Nextcloud lists two calendars of the same `calendar-order` in whichever order the
/// database returns (on SQLite, PostgreSQL and MariaDB alike).
pub fn sort_responses(text: &str) -> String {
    let (open, close) = ("<d:response>", "</d:response>");
    let Some(first) = text.find(open) else {
        return text.to_string();
    };
    let Some(last) = text.rfind(close).map(|i| i + close.len()) else {
        return text.to_string();
    };
    let mut blocks: Vec<String> = text[first..last]
        .split_inclusive(close)
        .map(str::to_string)
        .collect();
    blocks.sort();
    format!("{}{}{}", &text[..first], blocks.concat(), &text[last..])
}

/// JSON with the volatile fields (by key, at any depth) replaced by "*".
pub fn normalize_json(
    value: &serde_json::Value,
    server: &Server,
    volatile: &[&str],
) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    if volatile.contains(&k.as_str()) {
                        (k.clone(), Value::String("*".into()))
                    } else {
                        (k.clone(), normalize_json(v, server, volatile))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| normalize_json(v, server, volatile))
                .collect(),
        ),
        Value::String(s) => Value::String(normalize(s, server, &[])),
        other => other.clone(),
    }
}

/// The headers whose values must agree between rr and php-fpm, each as the sorted, de-duplicated
/// list of its values (nginx and Nextcloud may both send a security header), normalised.
pub const KEY_HEADERS: &[&str] = &[
    "content-type",
    "location",
    "www-authenticate",
    "content-range",
    "accept-ranges",
    "dav",
    "content-disposition",
    "oc-etag",
    "oc-fileid",
    "x-content-type-options",
    "x-frame-options",
    "x-robots-tag",
    "x-permitted-cross-domain-policies",
    "referrer-policy",
    "x-xss-protection",
    "content-security-policy",
    "cache-control",
];

pub fn key_headers(
    a: &Answer,
    server: &Server,
    extra: &[(&str, &str)],
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for name in KEY_HEADERS {
        let mut values: Vec<String> = a
            .headers
            .get_all(*name)
            .iter()
            .map(|v| normalize(&String::from_utf8_lossy(v.as_bytes()), server, extra))
            .map(|v| {
                if *name == "oc-etag" || *name == "oc-fileid" {
                    "*".into()
                } else {
                    v
                }
            })
            .collect();
        values.sort();
        values.dedup();
        if !values.is_empty() {
            out.insert(name.to_string(), values);
        }
    }
    out
}

/// The part of an answer compared between the servers: status, key headers, cookie names,
/// normalised body.
#[derive(Debug, PartialEq)]
pub struct Seen {
    pub status: u16,
    pub headers: BTreeMap<String, Vec<String>>,
    pub cookies: Vec<String>,
    pub body: String,
}

pub fn seen(a: &Answer, server: &Server, extra: &[(&str, &str)]) -> Seen {
    Seen {
        status: a.status,
        headers: key_headers(a, server, extra),
        cookies: a.cookie_names(),
        body: normalize(&a.text(), server, extra),
    }
}

#[test]
fn masks_elements_and_attributes() {
    assert_eq!(
        mask_element(
            "<d:getetag>&quot;1&quot;</d:getetag><d:getetagx>2</d:getetagx><oc:id/>",
            "d:getetag"
        ),
        "<d:getetag>*</d:getetag><d:getetagx>2</d:getetagx><oc:id/>"
    );
    assert_eq!(
        mask_element("<oc:id/><oc:id>5</oc:id>", "oc:id"),
        "<oc:id/><oc:id>*</oc:id>"
    );
    assert_eq!(
        mask_after(
            "a data-requesttoken=\"x:y\" b nonce=\"z\"",
            "data-requesttoken=\"",
            |c| c == '"'
        ),
        "a data-requesttoken=\"*\" b nonce=\"z\""
    );
}

#[test]
fn multistatus_responses_are_sorted_and_nothing_else_moves() {
    let a = "<d:multistatus><d:response><d:href>/b/</d:href></d:response>\
        <d:response><d:href>/a/</d:href></d:response></d:multistatus>";
    let b = "<d:multistatus><d:response><d:href>/a/</d:href></d:response>\
        <d:response><d:href>/b/</d:href></d:response></d:multistatus>";
    assert_eq!(sort_responses(a), sort_responses(b));
    assert_eq!(sort_responses(b), b);
    assert_ne!(
        sort_responses(a),
        sort_responses(&b.replace("/b/", "/c/")),
        "a different listing still differs"
    );
    assert_eq!(sort_responses("<html/>"), "<html/>");
}
