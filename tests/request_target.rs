//! The request-target corpus (tests/fixtures/target/cases.json): every case is sent as raw bytes
//! to rr in handle() and waitRequest() mode and compared with what nginx + php-fpm answered
//! (expected.json, recorded by record.py) and with rr's rules (docs/request-target.md). Raw
//! bytes over a TcpStream, because an HTTP client would fix up the malformed requests.
mod common;
use common::{fixture, Options, Php};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Deserialize)]
struct Case {
    name: String,
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
    category: String,
    /// "latin-1": every char of the request is one byte (for bytes that are not UTF-8).
    #[serde(default)]
    bytes: Option<String>,
    /// Why rr lets through a request that nginx refuses (none today; see the docs).
    #[serde(default)]
    rr_more_lenient: Option<String>,
    /// A known difference in the variables PHP sees, with rr's exact value (docs/request-target.md).
    #[serde(default)]
    rr_differs: Option<Differs>,
}

#[derive(Deserialize)]
struct Differs {
    #[allow(dead_code)]
    why: String,
    /// `$_GET` (and `RR\Request::$query`) as rr fills it.
    get: Value,
}

impl Case {
    /// The `$_GET` rr must give: nginx's, or the documented difference's.
    fn wanted_get<'a>(&'a self, want: &'a Value) -> &'a Value {
        self.rr_differs.as_ref().map_or(&want["get"], |d| &d.get)
    }
}

/// What the rules say rr answers for a category.
enum Verdict {
    /// PHP runs and sees what nginx + php-fpm showed it.
    Php,
    /// rr answers this status with its JSON error body carrying `code`.
    Refused(u16, &'static str),
    /// hyper refuses the request before rr sees it: a bare 400.
    Bare400,
}

fn verdict(category: &str) -> Verdict {
    match category {
        "ok" => Verdict::Php,
        "fragment"
        | "non_ascii_target"
        | "bad_pct_path"
        | "nul_path"
        | "dot_escape"
        | "asterisk"
        | "absolute_bad_scheme" => Verdict::Refused(400, "bad_target"),
        "host_invalid" | "host_missing_11" | "host_duplicate" | "absolute_host_mismatch" => {
            Verdict::Refused(400, "bad_host")
        }
        "trace" | "connect" => Verdict::Refused(405, "method_not_allowed"),
        "hyper_400" => Verdict::Bare400,
        other => panic!("cases.json: unknown category {other:?}"),
    }
}

/// The $_SERVER fields index.php prints, compared one by one.
const SERVER_FIELDS: [&str; 6] = [
    "REQUEST_URI",
    "QUERY_STRING",
    "DOCUMENT_URI",
    "SCRIPT_NAME",
    "PATH_INFO",
    "HTTP_HOST",
];

impl Case {
    /// The same bytes record.py sends.
    fn request(&self) -> Vec<u8> {
        let mut text = format!("{} {} HTTP/{}\r\n", self.method, self.target, self.version);
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("Connection: close\r\n");
        if matches!(self.method.as_str(), "POST" | "PUT") {
            text.push_str("Content-Length: 0\r\n");
        }
        text.push_str("\r\n");
        match self.bytes.as_deref() {
            None => text.into_bytes(),
            Some("latin-1") => text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).expect("latin-1 case holds only U+0000-U+00FF"))
                .collect(),
            Some(other) => panic!("{}: unknown bytes {other:?}", self.name),
        }
    }

    /// `scheme://authority` of RR\Request::$uri: the connection's scheme (plain http here, as
    /// nginx's `$scheme`), the target's authority for absolute-form, else the Host (`localhost`
    /// without one).
    fn uri_prefix(&self, host: &Value) -> String {
        let absolute = (!self.target.starts_with('/')).then(|| self.target.split_once("://"));
        if let Some((_, rest)) = absolute.flatten() {
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            return format!("http://{authority}");
        }
        format!("http://{}", host.as_str().unwrap_or("localhost"))
    }
}

struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn summary(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        format!("{} {}", self.status, clip(&body))
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&body[..end]);
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&body[start..(start + size).min(body.len())]);
        body = body.get(start + size + 2..).unwrap_or_default();
    }
    out
}

/// One exchange on its own connection; status 0 when rr closed without answering.
fn send(addr: SocketAddr, request: &[u8]) -> Answer {
    let none = Answer {
        status: 0,
        content_type: None,
        body: Vec::new(),
    };
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return none;
    };
    // Only a guard against a hang: every answer comes long before.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    if stream.write_all(request).is_err() {
        return none;
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return none;
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        body = dechunk(&body);
    }
    Answer {
        status,
        content_type: headers.get("content-type").cloned(),
        body,
    }
}

fn clip(text: &str) -> String {
    if text.chars().count() <= 160 {
        return text.to_string();
    }
    let head: String = text.chars().take(160).collect();
    format!("{head}...")
}

fn show(value: &Value) -> String {
    clip(&value.to_string())
}

/// The mismatches found, one line each: case, field, what nginx (or the rule) says, what rr said.
#[derive(Default)]
struct Report {
    lines: Vec<String>,
}

impl Report {
    fn mismatch(&mut self, case: &str, field: &str, nginx: &str, rr: &str) {
        self.lines
            .push(format!("{case}: {field}: nginx/rule {nginx} | rr {rr}"));
    }

    /// A refused request: the status and, unless hyper refused it, rr's JSON body with `code`.
    fn check_refused(&mut self, case: &Case, mode: &str, verdict: &Verdict, got: &Answer) {
        let field = format!("{mode} answer");
        match verdict {
            Verdict::Refused(status, code) => {
                let body_code = got
                    .json()
                    .filter(|j| j["error"].is_string())
                    .and_then(|j| j["code"].as_str().map(str::to_string));
                let json_type = got
                    .content_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with("application/json"));
                if got.status != *status || body_code.as_deref() != Some(*code) || !json_type {
                    let want = format!("{status} {{\"code\": \"{code}\"}} ({})", case.category);
                    self.mismatch(&case.name, &field, &want, &got.summary());
                }
            }
            Verdict::Bare400 => {
                if got.status != 400 || !got.body.is_empty() {
                    let want = format!("bare 400 ({})", case.category);
                    self.mismatch(&case.name, &field, &want, &got.summary());
                }
            }
            Verdict::Php => unreachable!(),
        }
    }

    /// PHP's answer as JSON, or a mismatch saying PHP did not answer.
    fn php_answer(&mut self, case: &Case, mode: &str, got: &Answer) -> Option<Value> {
        let json = (got.status == 200).then(|| got.json()).flatten();
        if json.is_none() {
            let field = format!("{mode} answer");
            self.mismatch(&case.name, &field, "200 from PHP", &got.summary());
        }
        json
    }

    fn compare(&mut self, case: &Case, field: &str, want: &Value, got: &Value) {
        if want != got {
            self.mismatch(&case.name, field, &show(want), &show(got));
        }
    }
}

/// What nginx + php-fpm showed PHP, or, for a case nginx refused that rr lets through for a
/// stated reason, what the rules say PHP sees for its origin-form target.
fn wanted_php(case: &Case, recorded: &Value, report: &mut Report) -> Option<Value> {
    if recorded["php"].is_object() {
        return Some(recorded["php"].clone());
    }
    let status = &recorded["status"];
    if case.rr_more_lenient.is_none() || !case.target.starts_with('/') {
        let rr = "PHP runs (category ok, no rr_more_lenient reason)";
        report.mismatch(&case.name, "corpus", &format!("{status}"), rr);
        return None;
    }
    let host = match case.headers.as_slice() {
        [(_, host)] => json!(host.trim()),
        _ => Value::Null,
    };
    let query = case.target.split_once('?').map_or("", |(_, q)| q);
    Some(json!({
        "server": {"REQUEST_URI": case.target, "QUERY_STRING": query, "HTTP_HOST": host},
    }))
}

fn check_handle(case: &Case, want: &Value, got: &Value, report: &mut Report) {
    for field in SERVER_FIELDS {
        let expected = &want["server"][field];
        if want["server"].get(field).is_some() {
            report.compare(
                case,
                &format!("handle {field}"),
                expected,
                &got["server"][field],
            );
        }
    }
    if want.get("get").is_some() {
        report.compare(case, "handle $_GET", case.wanted_get(want), &got["get"]);
    }
}

/// RR\Request's fields, from the same recording: requestUri is REQUEST_URI, query is $_GET,
/// headers['Host'] is [HTTP_HOST], uri is scheme://authority + REQUEST_URI.
fn check_request(case: &Case, want: &Value, got: &Value, report: &mut Report) {
    let server = &want["server"];
    let request_uri = &server["REQUEST_URI"];
    report.compare(
        case,
        "waitRequest requestUri",
        request_uri,
        &got["requestUri"],
    );
    if want.get("get").is_some() {
        report.compare(
            case,
            "waitRequest query",
            case.wanted_get(want),
            &got["query"],
        );
    }
    let host = &server["HTTP_HOST"];
    let want_host = if host.is_null() {
        Value::Null
    } else {
        json!([[0, host]])
    };
    report.compare(case, "waitRequest headers[Host]", &want_host, &got["host"]);
    let prefix = case.uri_prefix(host);
    let want_uri = format!("{prefix}{}", request_uri.as_str().unwrap_or_default());
    let same = match got["uri"].as_str() {
        // Scheme and authority compare case-insensitively, the rest exactly.
        Some(uri) => {
            uri.len() == want_uri.len()
                && uri.is_char_boundary(prefix.len())
                && uri[..prefix.len()].eq_ignore_ascii_case(&prefix)
                && uri[prefix.len()..] == want_uri[prefix.len()..]
        }
        None => false,
    };
    if !same {
        report.mismatch(&case.name, "waitRequest uri", &want_uri, &show(&got["uri"]));
    }
}

fn start(script: &str) -> Php {
    let options = json!({
        "http.document_root": fixture("target").display().to_string(),
        "http.script_name": "/index.php",
    });
    Php::start_with(
        script,
        Options {
            env: vec![("RR_TEST_OPTIONS", options.to_string())],
            ..Options::default()
        },
    )
}

fn load() -> (Vec<Case>, Value) {
    let read = |name: &str| std::fs::read_to_string(fixture(name)).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&read("target/cases.json")).unwrap();
    let expected: Value = serde_json::from_str(&read("target/expected.json")).unwrap();
    (cases, expected)
}

#[test]
fn every_request_target_is_what_nginx_and_php_fpm_saw_or_refused_by_the_rules() {
    let (cases, expected) = load();
    assert!(cases.len() >= 200, "the corpus has {} cases", cases.len());
    let handle = start("target_handle.php");
    let request = start("target_request.php");
    let mut report = Report::default();
    for case in &cases {
        let recorded = &expected["cases"][&case.name];
        assert!(
            recorded.is_object(),
            "{}: not in expected.json: run record.py",
            case.name
        );
        assert!(
            case.rr_more_lenient.is_none() || case.category == "ok",
            "{}: rr_more_lenient only explains a case that reaches PHP",
            case.name
        );
        let verdict = verdict(&case.category);
        let bytes = case.request();
        let in_handle = send(handle.addr, &bytes);
        let in_request = send(request.addr, &bytes);
        if !matches!(verdict, Verdict::Php) {
            report.check_refused(case, "handle", &verdict, &in_handle);
            report.check_refused(case, "waitRequest", &verdict, &in_request);
            continue;
        }
        let Some(want) = wanted_php(case, recorded, &mut report) else {
            continue;
        };
        if let Some(got) = report.php_answer(case, "handle", &in_handle) {
            check_handle(case, &want, &got, &mut report);
        }
        if let Some(got) = report.php_answer(case, "waitRequest", &in_request) {
            check_request(case, &want, &got, &mut report);
        }
    }
    for line in &report.lines {
        println!("{line}");
    }
    let cases_hit: std::collections::BTreeSet<&str> = report
        .lines
        .iter()
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert!(
        report.lines.is_empty(),
        "{} mismatches in {} of {} cases (listed above)",
        report.lines.len(),
        cases_hit.len(),
        cases.len()
    );
}

/// README's PSR-7 loop survives every request of the corpus, in single-process and pool mode:
/// each request rr lets through reaches the app (200), each other one gets rr's answer, and the
/// worker still serves afterwards.
fn the_readme_psr7_loop_survives(options: Value) {
    let (cases, _) = load();
    let mut php = Php::start_with(
        "psr7_readme.php",
        Options {
            env: vec![("RR_TEST_OPTIONS", options.to_string())],
            ..Options::default()
        },
    );
    let mut failures = Vec::new();
    for case in &cases {
        let answer = send(php.addr, &case.request());
        let want = match verdict(&case.category) {
            Verdict::Php => 200,
            Verdict::Refused(status, _) => status,
            Verdict::Bare400 => 400,
        };
        if answer.status != want {
            failures.push(format!("{}: {} (want {want})", case.name, answer.status));
        }
    }
    assert!(
        php.child.try_wait().unwrap().is_none(),
        "the loop ended: {}",
        php.stderr()
    );
    let last = send(
        php.addr,
        b"GET /still?here=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(last.status, 200);
    assert_eq!(last.body, b"http://h/still?here=1");
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        php.stderr()
    );
}

#[test]
fn the_readme_psr7_loop_survives_the_corpus() {
    the_readme_psr7_loop_survives(json!({}));
}

#[test]
fn the_readme_psr7_loop_survives_the_corpus_in_pool_mode() {
    the_readme_psr7_loop_survives(json!({"http.pool.num_workers": 2}));
}
