use super::*;
use http_body_util::BodyExt;
use std::os::unix::fs::symlink;

struct Site {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("public");
    std::fs::create_dir_all(root.join("css")).unwrap();
    std::fs::write(root.join("css/app.css"), b"body{color:red}").unwrap();
    std::fs::write(root.join("index.php"), b"<?php echo 1;").unwrap();
    std::fs::write(root.join(".htaccess"), b"deny").unwrap();
    std::fs::write(root.join("logo.svg"), b"<svg/>").unwrap();
    let outside = dir.path().join("secret.txt");
    std::fs::write(&outside, b"secret").unwrap();
    Site {
        _dir: dir,
        root,
        outside,
    }
}

fn config(root: &std::path::Path) -> StaticConfig {
    StaticConfig {
        dir: root.to_path_buf(),
        forbid: StaticConfig::DEFAULT_FORBID.map(String::from).to_vec(),
        allow: vec![],
        calculate_etag: false,
        weak: false,
        response: HeaderMap::new(),
        cache_control: vec![],
        prefixes: vec![],
        precompressed: vec![],
    }
}

fn run<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

/// The outcome of one request: "pass", "refused", or "<status> <body>" plus the headers.
fn ask(
    config: &StaticConfig,
    method: Method,
    uri: &str,
    headers: &HeaderMap,
) -> (String, HeaderMap) {
    run(async {
        let files = StaticFiles::new(config).unwrap();
        let uri: Uri = uri.parse().unwrap();
        match files.serve(&method, &uri, headers).await {
            Outcome::Pass => ("pass".to_owned(), HeaderMap::new()),
            Outcome::Refused(_) => ("refused".to_owned(), HeaderMap::new()),
            Outcome::Served(response) => {
                let (parts, body) = response.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                let text = format!(
                    "{} {}",
                    parts.status.as_u16(),
                    String::from_utf8_lossy(&body)
                );
                (text, parts.headers)
            }
        }
    })
}

fn get(config: &StaticConfig, uri: &str) -> String {
    ask(config, Method::GET, uri, &HeaderMap::new()).0
}

#[test]
fn serves_a_file_with_its_type_and_passes_what_is_not_one() {
    let s = site();
    let c = config(&s.root);
    let (answer, headers) = ask(&c, Method::GET, "/css/app.css?v=3", &HeaderMap::new());
    assert_eq!(answer, "200 body{color:red}");
    assert_eq!(headers["content-type"], "text/css; charset=utf-8");
    assert_eq!(headers["content-length"], "15");
    assert!(headers.contains_key("last-modified"));
    assert!(!headers.contains_key("etag"), "calculate_etag is off");
    for not_a_file in [
        "/",
        "/css",
        "/css/",
        "/missing.css",
        "/css/app.css/",
        "/README",
    ] {
        assert_eq!(get(&c, not_a_file), "pass", "{not_a_file}");
    }
    let (head, headers) = ask(&c, Method::HEAD, "/css/app.css", &HeaderMap::new());
    assert_eq!(head, "200 ");
    assert_eq!(headers["content-length"], "15");
    let post = ask(&c, Method::POST, "/css/app.css", &HeaderMap::new()).0;
    assert_eq!(post, "pass");
}

#[test]
fn forbidden_and_not_allowed_extensions_go_to_php() {
    let s = site();
    let mut c = config(&s.root);
    assert_eq!(get(&c, "/index.php"), "pass");
    assert_eq!(get(&c, "/INDEX.PHP"), "pass");
    assert_eq!(get(&c, "/.htaccess"), "pass");
    c.allow = vec![".css".into()];
    assert_eq!(get(&c, "/logo.svg"), "pass");
    assert!(get(&c, "/css/app.css").starts_with("200"));
    c.allow.clear();
    c.forbid = vec![".css".into()];
    assert_eq!(get(&c, "/css/app.css"), "pass");
    assert!(get(&c, "/logo.svg").starts_with("200"));
}

#[test]
fn traversal_and_links_out_are_refused() {
    let s = site();
    let c = config(&s.root);
    std::fs::write(s.root.join("secret.txt"), b"inside").unwrap();
    for raw in [
        "/../secret.txt",
        "/css/%2e%2e/%2e%2e/secret.txt",
        "/css%2f..%2f..%2fsecret.txt",
    ] {
        assert_eq!(get(&c, raw), "refused", "{raw}");
    }
    symlink(&s.outside, s.root.join("leak.txt")).unwrap();
    assert_eq!(get(&c, "/leak.txt"), "refused");
    symlink(s.outside.parent().unwrap(), s.root.join("up")).unwrap();
    assert_eq!(get(&c, "/up/secret.txt"), "refused");
    // A link that stays inside is followed; one to a forbidden file is PHP's.
    symlink(s.root.join("css/app.css"), s.root.join("alias.css")).unwrap();
    assert_eq!(get(&c, "/alias.css"), "200 body{color:red}");
    symlink(s.root.join("index.php"), s.root.join("source.txt")).unwrap();
    assert_eq!(get(&c, "/source.txt"), "pass");
}

#[test]
fn headers_from_the_config_and_prefixes() {
    let s = site();
    let mut c = config(&s.root);
    c.response.insert("x-static", "yes".parse().unwrap());
    c.response
        .insert(CACHE_CONTROL, "no-cache".parse().unwrap());
    c.cache_control = vec![(".css".into(), "public, max-age=600".parse().unwrap())];
    let (_, css) = ask(&c, Method::GET, "/css/app.css", &HeaderMap::new());
    assert_eq!(css["x-static"], "yes");
    assert_eq!(css["cache-control"], "public, max-age=600");
    let (_, svg) = ask(&c, Method::GET, "/logo.svg", &HeaderMap::new());
    assert_eq!(svg["cache-control"], "no-cache");
    assert_eq!(svg["content-type"], "image/svg+xml");
    c.prefixes = vec!["/css/".into()];
    assert_eq!(get(&c, "/logo.svg"), "pass");
    assert!(get(&c, "/css/app.css").starts_with("200"));
}

#[test]
fn etags_and_not_modified() {
    let s = site();
    let mut c = config(&s.root);
    c.calculate_etag = true;
    let (_, strong) = ask(&c, Method::GET, "/css/app.css", &HeaderMap::new());
    let tag = strong["etag"].clone();
    assert!(tag.to_str().unwrap().starts_with("\"f-"), "{tag:?}");
    let mut conditional = HeaderMap::new();
    conditional.insert("if-none-match", tag.clone());
    let (answer, headers) = ask(&c, Method::GET, "/css/app.css", &conditional);
    assert_eq!(answer, "304 ");
    assert_eq!(headers["etag"], tag);
    assert!(!headers.contains_key("content-length"));
    conditional.insert("if-none-match", "\"other\"".parse().unwrap());
    assert!(ask(&c, Method::GET, "/css/app.css", &conditional)
        .0
        .starts_with("200"));

    c.weak = true;
    let (_, weak) = ask(&c, Method::GET, "/css/app.css", &HeaderMap::new());
    assert!(weak["etag"].to_str().unwrap().starts_with("W/\""));

    let mut since = HeaderMap::new();
    since.insert("if-modified-since", weak["last-modified"].clone());
    assert_eq!(ask(&c, Method::HEAD, "/css/app.css", &since).0, "304 ");
    since.insert(
        "if-modified-since",
        "Thu, 01 Jan 1970 00:00:00 GMT".parse().unwrap(),
    );
    assert!(ask(&c, Method::GET, "/css/app.css", &since)
        .0
        .starts_with("200"));
}

#[test]
fn ranges_are_served() {
    let s = site();
    let c = config(&s.root);
    let mut range = HeaderMap::new();
    range.insert("range", "bytes=0-3".parse().unwrap());
    let (answer, headers) = ask(&c, Method::GET, "/css/app.css", &range);
    assert_eq!(answer, "206 body");
    assert_eq!(headers["content-range"], "bytes 0-3/15");
}

/// Sets a file's modification time `secs` seconds after the epoch.
fn touch(path: &std::path::Path, secs: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .unwrap();
}

fn accepting(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("accept-encoding", value.parse().unwrap());
    headers
}

#[test]
fn precompressed_siblings_go_to_the_clients_that_accept_them() {
    use crate::compress::Encoding;
    let s = site();
    let css = s.root.join("css/app.css");
    std::fs::write(s.root.join("css/app.css.br"), b"BR-BYTES").unwrap();
    std::fs::write(s.root.join("css/app.css.gz"), b"GZIP-BYTES").unwrap();
    std::fs::write(s.root.join("logo.svg.gz"), b"OLD-GZIP").unwrap();
    std::fs::write(s.outside.with_extension("gz"), b"OUTSIDE").unwrap();
    std::fs::write(s.root.join("notes.txt"), b"notes").unwrap();
    symlink(s.outside.with_extension("gz"), s.root.join("notes.txt.gz")).unwrap();
    touch(&css, 1_000);
    touch(&s.root.join("css/app.css.br"), 1_000);
    touch(&s.root.join("css/app.css.gz"), 2_000);
    touch(&s.root.join("logo.svg"), 2_000);
    touch(&s.root.join("logo.svg.gz"), 1_000);
    let mut c = config(&s.root);

    // Off by default: the identity, whatever the client accepts.
    let (answer, headers) = ask(&c, Method::GET, "/css/app.css", &accepting("br, gzip"));
    assert_eq!(answer, "200 body{color:red}");
    assert!(!headers.contains_key("content-encoding"));

    c.precompressed = vec![Encoding::Br, Encoding::Zstd, Encoding::Gzip];
    let (answer, headers) = ask(&c, Method::GET, "/css/app.css", &accepting("gzip, br"));
    assert_eq!(
        answer, "200 BR-BYTES",
        "equal weights: the configured order"
    );
    assert_eq!(headers["content-encoding"], "br");
    assert_eq!(
        headers["content-type"], "text/css; charset=utf-8",
        "the original's type"
    );
    assert_eq!(headers["content-length"], "8");
    assert_eq!(headers["vary"], "Accept-Encoding");
    assert!(
        !headers.contains_key("accept-ranges"),
        "ranges count identity bytes"
    );

    let (answer, headers) = ask(
        &c,
        Method::GET,
        "/css/app.css",
        &accepting("br;q=0.5, gzip"),
    );
    assert_eq!(answer, "200 GZIP-BYTES", "the client's weights first");
    assert_eq!(headers["content-encoding"], "gzip");
    let (answer, _) = ask(
        &c,
        Method::GET,
        "/css/app.css",
        &accepting("zstd, gzip;q=0.1"),
    );
    assert_eq!(
        answer, "200 GZIP-BYTES",
        "no .zst: the next the client accepts"
    );
    for identity in ["zstd", "identity", "br;q=0, gzip;q=0", ""] {
        let (answer, headers) = ask(&c, Method::GET, "/css/app.css", &accepting(identity));
        assert_eq!(answer, "200 body{color:red}", "{identity:?}");
        assert!(!headers.contains_key("content-encoding"), "{identity:?}");
    }
    let (answer, headers) = ask(&c, Method::HEAD, "/css/app.css", &accepting("br"));
    assert_eq!(answer, "200 ");
    assert_eq!(headers["content-encoding"], "br");
    assert_eq!(headers["content-length"], "8");

    let mut ranged = accepting("br, gzip");
    ranged.insert("range", "bytes=0-3".parse().unwrap());
    let (answer, headers) = ask(&c, Method::GET, "/css/app.css", &ranged);
    assert_eq!(answer, "206 body", "a Range gets the identity's bytes");
    assert!(!headers.contains_key("content-encoding"));

    let (answer, headers) = ask(&c, Method::GET, "/logo.svg", &accepting("gzip"));
    assert_eq!(
        answer, "200 <svg/>",
        "a sibling older than its original is stale"
    );
    assert!(!headers.contains_key("content-encoding"));
    let (answer, headers) = ask(&c, Method::GET, "/notes.txt", &accepting("gzip"));
    assert_eq!(
        answer, "200 notes",
        "a sibling linking outside is never sent"
    );
    assert!(!headers.contains_key("content-encoding"));
    assert_eq!(
        get(&c, "/missing.css"),
        "pass",
        "no original: PHP's, sibling or not"
    );
}

#[test]
fn a_precompressed_sibling_has_its_own_etag() {
    use crate::compress::Encoding;
    let s = site();
    std::fs::write(s.root.join("css/app.css.gz"), b"GZIP-BYTES").unwrap();
    let mut c = config(&s.root);
    c.precompressed = vec![Encoding::Gzip];
    c.calculate_etag = true;
    let (_, identity) = ask(&c, Method::GET, "/css/app.css", &HeaderMap::new());
    let (_, encoded) = ask(&c, Method::GET, "/css/app.css", &accepting("gzip"));
    assert_eq!(encoded["content-encoding"], "gzip");
    assert_ne!(identity["etag"], encoded["etag"]);
    // The encoded tag validates the encoded answer.
    let mut again = accepting("gzip");
    again.insert("if-none-match", encoded["etag"].clone());
    let (answer, _) = ask(&c, Method::GET, "/css/app.css", &again);
    assert_eq!(answer, "304 ");
}
