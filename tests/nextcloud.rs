//! rr against nginx + php-fpm on one real Nextcloud install (RR_NEXTCLOUD_ROOT; see
//! tests/nextcloud/README.md). Every test runs the same requests against both servers, one
//! after the other, asserts what Nextcloud must answer on both, and then that rr's answers match
//! php-fpm's in status, key headers, cookie names and normalised body.
//!
//! The isolation tests run rr with ONE worker and alternate two users on it: nothing of one user
//! (files, session, tokens) may ever reach the other, and a logged-out or anonymous request must
//! get what php-fpm gives it.
#[path = "nextcloud/client.rs"]
mod client;
#[path = "nextcloud/harness.rs"]
mod harness;

use client::{basic, normalize, normalize_json, seen, Answer, Seen, Session};
use harness::{Install, Server, User, SKIP};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One server pair at a time: SQLite, two cores, and the tests share users.
static SERIAL: Mutex<()> = Mutex::new(());

fn setup() -> Option<(MutexGuard<'static, ()>, Install)> {
    let install = Install::from_env()?;
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    Some((guard, install))
}

macro_rules! install_or_skip {
    () => {
        match setup() {
            Some(x) => x,
            None => {
                eprintln!("{SKIP}");
                return;
            }
        }
    };
}

/// What one scenario saw on one server: labelled steps, in order.
#[derive(Default)]
struct Record {
    steps: Vec<(String, Seen)>,
}

impl Record {
    fn push(&mut self, label: &str, seen: Seen) {
        self.steps.push((label.to_string(), seen));
    }
}

/// Runs `scenario` on nginx + php-fpm, then on rr (`rr_workers` overrides the pool size), and
/// asserts every step matches. The scenario's own asserts run on both servers, so a wrong
/// expectation fails on php-fpm first.
fn compare(
    install: &Install,
    rr_workers: usize,
    scenario: impl Fn(&Install, &Server, &mut Record),
) {
    let mut fpm_record = Record::default();
    {
        let fpm = Server::fpm(install, 2);
        scenario(install, &fpm, &mut fpm_record);
    }
    // Checks of the suite itself, never of rr (and they say so): "1" runs the scenarios against
    // the reference only; "twice" compares the reference with a second reference, which shows
    // that the normalisation leaves no difference between two correct servers.
    let reference_only = std::env::var("RR_NEXTCLOUD_REFERENCE_ONLY").unwrap_or_default();
    if !reference_only.is_empty() && reference_only != "twice" {
        eprintln!("RR_NEXTCLOUD_REFERENCE_ONLY: ran against nginx+php-fpm only, rr NOT compared");
        return;
    }
    let mut rr_record = Record::default();
    if reference_only == "twice" {
        eprintln!("RR_NEXTCLOUD_REFERENCE_ONLY=twice: php-fpm compared with php-fpm, rr NOT run");
        let fpm = Server::fpm(install, 2);
        scenario(install, &fpm, &mut rr_record);
    } else {
        let mut rr = Server::rr(install, rr_workers);
        scenario(install, &rr, &mut rr_record);
        assert!(rr.alive(), "rr exited during the scenario:\n{}", rr.logs());
        // A worker that crashed or gave up is a failure even when the pool hid it from the
        // client by starting another.
        let log = rr.stderr();
        for sign in [
            "worker exited unexpectedly",
            "exited before its first waitRequest",
            "exceeded exec_ttl",
            "rr nextcloud worker:",
            "PHP Fatal error",
        ] {
            assert!(
                !log.contains(sign),
                "rr logged '{sign}' during the scenario:\n{log}"
            );
        }
    }
    assert_eq!(
        fpm_record.steps.iter().map(|s| &s.0).collect::<Vec<_>>(),
        rr_record.steps.iter().map(|s| &s.0).collect::<Vec<_>>(),
        "the scenario took different steps"
    );
    eprintln!(
        "compared {} steps, nginx+php-fpm vs {}",
        fpm_record.steps.len(),
        if reference_only == "twice" {
            "a second nginx+php-fpm"
        } else {
            "rr"
        }
    );
    for ((label, f), (_, r)) in fpm_record.steps.iter().zip(&rr_record.steps) {
        assert_eq!(
            f.status,
            r.status,
            "{label}: status: php-fpm {} vs rr {}\nrr body: {}",
            f.status,
            r.status,
            clip(&r.body)
        );
        assert_eq!(
            f.headers, r.headers,
            "{label}: key headers differ (left php-fpm, right rr)"
        );
        assert_eq!(
            f.cookies, r.cookies,
            "{label}: cookies set differ (left php-fpm, right rr)"
        );
        if f.body != r.body {
            panic!(
                "{label}: body differs\n{}",
                first_difference(&f.body, &r.body)
            );
        }
    }
}

fn clip(s: &str) -> &str {
    let mut end = s.len().min(2000);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn first_difference(a: &str, b: &str) -> String {
    let at = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map(|((i, _), _)| i)
        .unwrap_or(a.len().min(b.len()));
    let from = at.saturating_sub(120);
    let from_a = (from..=at).find(|i| a.is_char_boundary(*i)).unwrap_or(at);
    let from_b = (from..=at.min(b.len()))
        .find(|i| b.is_char_boundary(*i))
        .unwrap_or(0);
    format!(
        "at byte {at} (php-fpm {} bytes, rr {} bytes)\nphp-fpm: ...{}\nrr:      ...{}",
        a.len(),
        b.len(),
        clip(&a[from_a..]).chars().take(700).collect::<String>(),
        clip(&b[from_b..]).chars().take(700).collect::<String>()
    )
}

/// Asserts a status on one server, with the body and the server's logs when it is wrong.
fn expect(server: &Server, what: &str, a: &Answer, status: u16) {
    assert_eq!(
        a.status,
        status,
        "{}: {what}: expected {status}, got {}: {}\n{}",
        server.name(),
        a.status,
        clip(&a.text()),
        server.logs()
    );
}

const OCS: (&str, &str) = ("OCS-APIRequest", "true");
/// What a browser sends for a page: Nextcloud redirects such requests to the login page, and
/// answers others with 401.
const HTML: (&str, &str) = ("Accept", "text/html,application/xhtml+xml");

fn dav(user: &str, path: &str) -> String {
    format!("/remote.php/dav/files/{user}{path}")
}

/// Removes what an earlier, interrupted run may have left; not compared.
fn remove(server: &Server, user: &User, path: &str) {
    let auth = basic(&user.name, &user.app_password);
    Session::new(server).send(
        "DELETE",
        &dav(&user.name, path),
        &[("Authorization", &auth)],
        Vec::new(),
    );
}

/// Empties the user's trash bin (every DELETE puts the file there); not compared.
fn empty_trash(server: &Server, user: &User) {
    let auth = basic(&user.name, &user.app_password);
    let a = Session::new(server).send(
        "DELETE",
        &format!("/remote.php/dav/trashbin/{}/trash", user.name),
        &[("Authorization", &auth)],
        Vec::new(),
    );
    assert!(
        a.status < 300,
        "{}: emptying the trash bin: {} {}",
        server.name(),
        a.status,
        a.text()
    );
}

fn propfind(s: &mut Session, auth: &str, path: &str) -> Answer {
    s.send(
        "PROPFIND",
        path,
        &[("Authorization", auth), ("Depth", "1")],
        Vec::new(),
    )
}

/// `<d:href>` values of a multistatus answer.
fn hrefs(body: &str) -> Vec<String> {
    body.split("<d:href>")
        .skip(1)
        .filter_map(|p| p.split("</d:href>").next())
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------- simple requests

#[test]
fn status_php() {
    let (_g, install) = install_or_skip!();
    compare(&install, 2, |_, server, rec| {
        let mut s = Session::new(server);
        for round in 0..3 {
            let a = s.get("/status.php", &[]);
            expect(server, "status.php", &a, 200);
            let j = a.json();
            assert_eq!(j["installed"], true, "{}: {j}", server.name());
            assert_eq!(j["maintenance"], false);
            assert_eq!(j["productname"], "Nextcloud");
            rec.push(&format!("GET /status.php #{round}"), seen(&a, server, &[]));
        }
    });
}

#[test]
fn capabilities() {
    let (_g, install) = install_or_skip!();
    compare(&install, 2, |install, server, rec| {
        let admin = install.user("admin");
        let auth = basic(&admin.name, &admin.app_password);
        let path = "/ocs/v2.php/cloud/capabilities?format=json";
        for (label, headers) in [
            ("anonymous", vec![OCS]),
            ("app password", vec![OCS, ("Authorization", auth.as_str())]),
            ("anonymous again", vec![OCS]),
        ] {
            let a = Session::new(server).get(path, &headers);
            expect(server, label, &a, 200);
            let j = a.json();
            assert_eq!(
                j["ocs"]["meta"]["statuscode"],
                200,
                "{}: {j}",
                server.name()
            );
            assert_eq!(j["ocs"]["data"]["version"]["string"], "32.0.1");
            let caps = &j["ocs"]["data"]["capabilities"];
            assert!(
                caps["theming"].is_object(),
                "{}: {label}: no theming capability",
                server.name()
            );
            // Logged-in users get more; an anonymous answer must never carry them.
            let authenticated = label == "app password";
            assert_eq!(
                caps["files"].is_object(),
                authenticated,
                "{}: {label}: files capability",
                server.name()
            );
            assert_eq!(
                caps["core"].is_object(),
                authenticated,
                "{}: {label}: core capability",
                server.name()
            );
            let mut sn = seen(&a, server, &[]);
            sn.body = normalize_json(&j, server, &[]).to_string();
            rec.push(&format!("capabilities {label}"), sn);
        }
        // v1 and XML, the other OCS entry and format.
        let a = Session::new(server).get("/ocs/v1.php/cloud/capabilities", &[OCS]);
        expect(server, "v1 xml", &a, 200);
        assert!(
            a.text().contains("<statuscode>100</statuscode>"),
            "{}: {}",
            server.name(),
            clip(&a.text())
        );
        rec.push("capabilities v1 xml", seen(&a, server, &[]));
    });
}

#[test]
fn well_known_redirects() {
    let (_g, install) = install_or_skip!();
    compare(&install, 2, |_, server, rec| {
        let mut s = Session::new(server);
        for path in [
            "/.well-known/carddav",
            "/.well-known/caldav",
            "/.well-known/webfinger",
            "/.well-known/nodeinfo",
            "/.well-known/openid-configuration",
        ] {
            let a = s.get(path, &[]);
            expect(server, path, &a, 301);
            let mut sn = seen(&a, server, &[]);
            // A relative Location means the same as the absolute one.
            if let Some(loc) = sn.headers.get_mut("location") {
                for l in loc.iter_mut() {
                    if l.starts_with('/') {
                        *l = format!("{{origin}}{l}");
                    }
                }
            }
            let loc = &sn.headers["location"][0];
            if path.ends_with("dav") {
                assert_eq!(loc, "{origin}/remote.php/dav/", "{}: {path}", server.name());
            } else {
                assert_eq!(
                    loc,
                    &format!("{{origin}}/index.php{path}"),
                    "{}: {path}",
                    server.name()
                );
            }
            sn.body = String::new(); // nginx's and rr's 301 pages are their own
            sn.headers.remove("content-type");
            rec.push(path, sn);
        }
    });
}

#[test]
fn avatars() {
    let (_g, install) = install_or_skip!();
    compare(&install, 2, |install, server, rec| {
        let alice = install.user("alice");
        let auth = basic(&alice.name, &alice.app_password);
        for (label, path, headers, status) in [
            ("alice 64 anonymous", "/avatar/alice/64", vec![], 200),
            (
                "bob 64 as alice",
                "/avatar/bob/64",
                vec![("Authorization", auth.as_str())],
                200,
            ),
            ("alice 64 again", "/avatar/alice/64", vec![], 200),
            // Nextcloud answers generated guest avatars with 201.
            ("guest avatar", "/avatar/guest/Somebody/64", vec![], 201),
        ] {
            let a = Session::new(server).get(path, &headers);
            expect(server, label, &a, status);
            let ct = a.header("content-type").unwrap_or_default();
            assert!(
                ct.starts_with("image/"),
                "{}: {label}: content-type {ct}",
                server.name()
            );
            let mut sn = seen(&a, server, &[]);
            sn.body = format!(
                "{} bytes, sha256 {}",
                a.body.len(),
                hex(&Sha256::digest(&a.body))
            );
            rec.push(label, sn);
        }
    });
}

// ---------------------------------------------------------------------- login

/// The browser login: the login page's request token and cookies, then POST /login with Origin.
/// Returns the session (logged in), the page's request token, and the answers seen.
fn browser_login<'a>(
    server: &'a Server,
    user: &User,
    rec: &mut Record,
    tag: &str,
) -> (Session<'a>, String) {
    let mut s = Session::new(server);
    let page = s.get("/login", &[HTML]);
    expect(server, "GET /login", &page, 200);
    let token = request_token(&page.text())
        .unwrap_or_else(|| panic!("{}: no request token on /login", server.name()));
    rec.push(&format!("{tag} GET /login"), login_page_seen(&page, server));
    let form = form_encode(&[
        ("user", &user.name),
        ("password", &user.password),
        ("timezone", "UTC"),
        ("timezone_offset", "0"),
        ("requesttoken", &token),
    ]);
    let origin = server.origin();
    let a = s.send(
        "POST",
        "/login",
        &[
            ("Origin", &origin),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        form,
    );
    expect(server, "POST /login", &a, 303);
    let loc = a.header("location").unwrap_or_default();
    assert!(
        !loc.contains("/login"),
        "{}: login refused: Location {loc}",
        server.name()
    );
    rec.push(&format!("{tag} POST /login"), seen(&a, server, &[]));
    // The first authenticated page, and the token it carries for later requests.
    let path = path_of(&loc);
    let page = s.get(&path, &[HTML]);
    expect(server, "the page after login", &page, 200);
    let text = page.text();
    assert!(
        text.contains(&format!("data-user=\"{}\"", user.name)),
        "{}: the page after login is not {}'s",
        server.name(),
        user.name
    );
    let token = request_token(&text).expect("request token on the page after login");
    rec.push(
        &format!("{tag} GET {path} (after login)"),
        page_seen(&page, server),
    );
    (s, token)
}

/// The path of a Location (Nextcloud builds absolute URLs from its trusted domain, without the
/// test server's port).
fn path_of(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => rest
            .find('/')
            .map(|i| rest[i..].to_string())
            .unwrap_or_else(|| "/".into()),
        None => location.to_string(),
    }
}

fn request_token(html: &str) -> Option<String> {
    let rest = html.split("data-requesttoken=\"").nth(1)?;
    Some(rest[..rest.find('"')?].to_string())
}

fn form_encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A whole HTML page compared on what a user sees of who they are: the title, the user
/// attributes, the presence of a request token. The rest (bundles, initial state with
/// timestamps) is covered by the status and headers.
fn page_seen(a: &Answer, server: &Server) -> Seen {
    let text = a.text();
    let mut sn = seen(a, server, &[]);
    let title = text
        .split("<title>")
        .nth(1)
        .and_then(|t| t.split("</title>").next())
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let attr = |name: &str| {
        text.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|t| t.split('"').next())
            .unwrap_or("-")
            .to_string()
    };
    sn.body = format!(
        "title={title} data-user={} data-user-displayname={} token={}\n{}",
        attr("data-user"),
        attr("data-user-displayname"),
        request_token(&text).is_some(),
        client::initial_states(&text, server, PAGE_VOLATILE).join("\n")
    );
    sn
}

/// Initial-state keys whose values change from one page load to the next.
const PAGE_VOLATILE: &[&str] = &[
    "files_sharing-fileId",
    "text-file_id",
    // true on a user's very first dashboard, whichever server showed it.
    "dashboard-firstRun",
    // Disk space and usage (files-storageStats): they move with everything else on the disk.
    "free",
    "total",
    "relative",
    "used",
];

fn login_page_seen(a: &Answer, server: &Server) -> Seen {
    let mut sn = page_seen(a, server);
    // The login page has no user-specific state: compare it whole, with the volatile parts masked.
    let body = normalize(&a.text(), server, &[]);
    sn.body = format!("{}\n{}", sn.body, mask_initial_state(&body, server));
    sn
}

/// Masks the base64 initial-state values (they may carry timestamps); keeps their keys.
fn mask_initial_state(html: &str, server: &Server) -> String {
    client::decode_initial_state(html, server)
}

fn user_seen(a: &Answer, server: &Server) -> Seen {
    let mut sn = seen(a, server, &[]);
    if a.status == 200 {
        sn.body = normalize_json(
            &a.json(),
            server,
            &[
                "lastLogin",
                "lastLoginTimestamp",
                "free",
                "used",
                "relative",
                "total",
            ],
        )
        .to_string();
    }
    sn
}

#[test]
fn browser_login_flow() {
    let (_g, install) = install_or_skip!();
    compare(&install, 2, |install, server, rec| {
        let alice = install.user("alice");
        let (mut s, token) = browser_login(server, &alice, rec, "alice");
        // An OCS call with the session cookie and the page's token.
        let a = s.get(
            "/ocs/v2.php/cloud/user?format=json",
            &[OCS, ("requesttoken", &token)],
        );
        expect(server, "cloud/user with the session", &a, 200);
        assert_eq!(a.json()["ocs"]["data"]["id"], "alice", "{}", server.name());
        rec.push("cloud/user with the session", user_seen(&a, server));
        // Another page of the app, still alice.
        let page = s.get("/apps/files/", &[HTML]);
        expect(server, "/apps/files/", &page, 200);
        rec.push("GET /apps/files/", page_seen(&page, server));
        // A wrong password is refused.
        let mut bad = alice.clone();
        bad.password.push('x');
        let mut s2 = Session::new(server);
        let login = s2.get("/login", &[]);
        let token = request_token(&login.text()).unwrap();
        let origin = server.origin();
        let a = s2.send(
            "POST",
            "/login",
            &[
                ("Origin", &origin),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            form_encode(&[
                ("user", "alice"),
                ("password", &bad.password),
                ("requesttoken", &token),
            ]),
        );
        assert_ne!(a.status, 200, "{}", server.name());
        let loc = a.header("location").unwrap_or_default();
        assert!(
            a.status == 303 && loc.contains("/login"),
            "{}: wrong password: {} {loc}",
            server.name(),
            a.status
        );
        rec.push("POST /login, wrong password", seen(&a, server, &[]));
        let a = s2.get("/ocs/v2.php/cloud/user?format=json", &[OCS]);
        expect(server, "cloud/user after a refused login", &a, 401);
        rec.push("cloud/user after a refused login", seen(&a, server, &[]));
    });
}

// ---------------------------------------------------------------------- WebDAV

#[test]
fn propfind_depth1_app_password() {
    let (_g, install) = install_or_skip!();
    compare(&install, 2, |install, server, rec| {
        let alice = install.user("alice");
        let auth = basic(&alice.name, &alice.app_password);
        // Something to list: a folder with three files (set up and removed, not compared).
        remove(server, &alice, "/rr-nc-listing");
        let mut setup = Session::new(server);
        let h = [("Authorization", auth.as_str())];
        let a = setup.send("MKCOL", &dav("alice", "/rr-nc-listing"), &h, Vec::new());
        expect(server, "MKCOL", &a, 201);
        for (name, body) in [("a.txt", "a\n"), ("b.md", "# b\n"), ("c.json", "{}")] {
            let a = setup.send(
                "PUT",
                &dav("alice", &format!("/rr-nc-listing/{name}")),
                &h,
                body,
            );
            expect(server, name, &a, 201);
        }
        let mut s = Session::new(server);
        let a = propfind(&mut s, &auth, &dav("alice", "/rr-nc-listing/"));
        expect(server, "PROPFIND folder", &a, 207);
        assert_eq!(hrefs(&a.text()).len(), 4, "{}: {}", server.name(), a.text());
        rec.push("PROPFIND Depth 1 folder", seen(&a, server, &[]));
        for round in 0..2 {
            let a = propfind(&mut s, &auth, &dav("alice", "/"));
            expect(server, "PROPFIND", &a, 207);
            let hrefs = hrefs(&a.text());
            assert_eq!(
                hrefs.first().map(String::as_str),
                Some("/remote.php/dav/files/alice/"),
                "{}",
                server.name()
            );
            assert!(
                hrefs.len() > 1,
                "{}: alice's home lists nothing",
                server.name()
            );
            rec.push(&format!("PROPFIND Depth 1 #{round}"), seen(&a, server, &[]));
        }
        // Legacy endpoint, user from the credentials.
        let a = propfind(&mut s, &auth, "/remote.php/webdav/");
        expect(server, "PROPFIND webdav", &a, 207);
        rec.push("PROPFIND /remote.php/webdav/", seen(&a, server, &[]));
        // No credentials, wrong credentials.
        let a = propfind(&mut Session::new(server), "", &dav("alice", "/"));
        expect(server, "PROPFIND anonymous", &a, 401);
        rec.push("PROPFIND anonymous", seen(&a, server, &[]));
        // A PROPFIND with a body asking for named properties.
        let body = r#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop><d:getcontentlength/><d:getcontenttype/><oc:size/><oc:permissions/><d:resourcetype/></d:prop></d:propfind>"#;
        let a = s.send(
            "PROPFIND",
            &dav("alice", "/rr-nc-listing/"),
            &[
                ("Authorization", &auth),
                ("Depth", "1"),
                ("Content-Type", "application/xml"),
            ],
            body,
        );
        expect(server, "PROPFIND with props", &a, 207);
        assert!(
            a.text().contains("<oc:permissions>"),
            "{}: {}",
            server.name(),
            a.text()
        );
        rec.push("PROPFIND Depth 1 named props", seen(&a, server, &[]));
        let wrong = basic("alice", "not-the-app-password");
        let a = propfind(&mut Session::new(server), &wrong, &dav("alice", "/"));
        expect(server, "PROPFIND wrong password", &a, 401);
        rec.push("PROPFIND wrong password", seen(&a, server, &[]));
        remove(server, &alice, "/rr-nc-listing");
        empty_trash(server, &alice);
    });
}

#[test]
fn dav_mkcol_move_copy_delete() {
    let (_g, install) = install_or_skip!();
    compare(&install, 2, |install, server, rec| {
        let alice = install.user("alice");
        let auth = basic(&alice.name, &alice.app_password);
        let h = [("Authorization", auth.as_str())];
        let dir = "/rr-nc-ops";
        remove(server, &alice, dir);
        let mut s = Session::new(server);
        let mut step = |s: &mut Session,
                        label: &str,
                        method: &str,
                        path: &str,
                        extra: &[(&str, &str)],
                        body: &str,
                        want: u16|
         -> Answer {
            let mut headers = h.to_vec();
            headers.extend_from_slice(extra);
            let a = s.send(method, path, &headers, body.to_string());
            expect(server, label, &a, want);
            rec.push(label, seen(&a, server, &[]));
            a
        };
        let d = |p: &str| dav("alice", &format!("{dir}{p}"));
        let dest = |p: &str| format!("{}{}", server.origin(), d(p));
        step(&mut s, "MKCOL", "MKCOL", &d(""), &[], "", 201);
        step(&mut s, "MKCOL again", "MKCOL", &d(""), &[], "", 405);
        step(&mut s, "MKCOL nested", "MKCOL", &d("/sub"), &[], "", 201);
        step(
            &mut s,
            "PUT a.txt",
            "PUT",
            &d("/a.txt"),
            &[("Content-Type", "text/plain")],
            "alpha\n",
            201,
        );
        step(
            &mut s,
            "COPY a -> b",
            "COPY",
            &d("/a.txt"),
            &[("Destination", &*dest("/b.txt"))],
            "",
            201,
        );
        step(
            &mut s,
            "MOVE b -> sub/c",
            "MOVE",
            &d("/b.txt"),
            &[("Destination", &*dest("/sub/c.txt"))],
            "",
            201,
        );
        step(
            &mut s,
            "COPY onto existing, no overwrite",
            "COPY",
            &d("/a.txt"),
            &[
                ("Destination", dest("/sub/c.txt").as_str()),
                ("Overwrite", "F"),
            ],
            "",
            412,
        );
        step(
            &mut s,
            "GET b (moved away)",
            "GET",
            &d("/b.txt"),
            &[],
            "",
            404,
        );
        let a = step(&mut s, "GET sub/c", "GET", &d("/sub/c.txt"), &[], "", 200);
        assert_eq!(a.body, b"alpha\n", "{}", server.name());
        let a = step(
            &mut s,
            "PROPFIND dir",
            "PROPFIND",
            &d(""),
            &[("Depth", "1")],
            "",
            207,
        );
        let mut names = hrefs(&a.text());
        names.sort();
        assert_eq!(
            names,
            vec![d("/"), d("/a.txt"), d("/sub/")],
            "{}: listing after COPY/MOVE",
            server.name()
        );
        step(
            &mut s,
            "MOVE dir/sub -> dir/sub2",
            "MOVE",
            &d("/sub"),
            &[("Destination", &*dest("/sub2"))],
            "",
            201,
        );
        step(
            &mut s,
            "PROPFIND sub2 depth 1",
            "PROPFIND",
            &d("/sub2"),
            &[("Depth", "1")],
            "",
            207,
        );
        step(&mut s, "DELETE a", "DELETE", &d("/a.txt"), &[], "", 204);
        step(
            &mut s,
            "DELETE a again",
            "DELETE",
            &d("/a.txt"),
            &[],
            "",
            404,
        );
        step(&mut s, "DELETE dir", "DELETE", &d(""), &[], "", 204);
        step(
            &mut s,
            "PROPFIND dir gone",
            "PROPFIND",
            &d(""),
            &[("Depth", "0")],
            "",
            404,
        );
        empty_trash(server, &alice);
    });
}

const BIG: u64 = 100 * 1024 * 1024;

/// A deterministic 100 MiB stream (no file, no buffer of its size).
struct Pattern {
    pos: u64,
    len: u64,
}

fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(2654435761) >> 13) as u8
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min((self.len - self.pos) as usize);
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern_byte(self.pos + k as u64);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pattern_sha256(len: u64) -> String {
    let mut h = Sha256::new();
    let mut p = Pattern { pos: 0, len };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = p.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

#[test]
fn upload_download_100mb() {
    let (_g, install) = install_or_skip!();
    let want_sha = pattern_sha256(BIG);
    compare(&install, 2, |install, server, rec| {
        let alice = install.user("alice");
        let auth = basic(&alice.name, &alice.app_password);
        let path = dav("alice", "/rr-nc-big.bin");
        remove(server, &alice, "/rr-nc-big.bin");
        let http = client::client();
        let put = http
            .put(server.url(&path))
            .header("Authorization", &auth)
            .header("Content-Type", "application/octet-stream")
            .body(reqwest::blocking::Body::sized(
                Pattern { pos: 0, len: BIG },
                BIG,
            ))
            .send()
            .unwrap_or_else(|e| panic!("{}: PUT 100 MB: {e}\n{}", server.name(), server.logs()));
        assert_eq!(
            put.status().as_u16(),
            201,
            "{}: PUT 100 MB: {:?}",
            server.name(),
            put.text()
        );
        rec.push(
            "PUT 100 MB",
            Seen {
                status: 201,
                headers: Default::default(),
                cookies: vec![],
                body: String::new(),
            },
        );

        // Download, streamed through a hash.
        let mut get = http
            .get(server.url(&path))
            .header("Authorization", &auth)
            .send()
            .unwrap();
        assert_eq!(get.status().as_u16(), 200, "{}", server.name());
        let headers = get.headers().clone();
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = get.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
            h.update(&buf[..n]);
        }
        assert_eq!(total, BIG, "{}: downloaded length", server.name());
        assert_eq!(
            hex(&h.finalize()),
            want_sha,
            "{}: downloaded bytes differ from the upload",
            server.name()
        );
        let a = Answer {
            status: 200,
            headers,
            body: vec![],
        };
        let mut sn = seen(&a, server, &[]);
        sn.body = format!("{total} bytes sha256 {want_sha}");
        rec.push("GET 100 MB", sn);

        // Ranges.
        let mut s = Session::new(server);
        for (range, from, to) in [
            ("bytes=1000-1999", 1000u64, 1999u64),
            ("bytes=52428800-52429823", 52_428_800, 52_429_823),
            ("bytes=-100", BIG - 100, BIG - 1),
            ("bytes=104857000-", 104_857_000, BIG - 1),
        ] {
            let a = s.get(&path, &[("Authorization", &auth), ("Range", range)]);
            expect(server, range, &a, 206);
            let want: Vec<u8> = (from..=to).map(pattern_byte).collect();
            assert!(
                a.body == want,
                "{}: {range}: wrong bytes ({} received)",
                server.name(),
                a.body.len()
            );
            assert_eq!(
                a.header("content-range").as_deref(),
                Some(format!("bytes {from}-{to}/{BIG}").as_str()),
                "{}: {range}",
                server.name()
            );
            let mut sn = seen(&a, server, &[]);
            sn.body = format!("{} bytes", a.body.len());
            rec.push(&format!("GET Range {range}"), sn);
        }
        let a = s.get(
            &path,
            &[("Authorization", &auth), ("Range", "bytes=200000000-")],
        );
        expect(server, "unsatisfiable range", &a, 416);
        rec.push("GET unsatisfiable Range", seen(&a, server, &[]));

        let a = s.send("DELETE", &path, &[("Authorization", &auth)], Vec::new());
        expect(server, "DELETE 100 MB", &a, 204);
        empty_trash(server, &alice);
    });
}

// ---------------------------------------------------------------------- OCS

#[test]
fn ocs_user_endpoints() {
    let (_g, install) = install_or_skip!();
    compare(&install, 2, |install, server, rec| {
        let alice = install.user("alice");
        let admin = install.user("admin");
        let a_auth = basic(&alice.name, &alice.app_password);
        let adm = basic(&admin.name, &admin.app_password);
        let mut s = Session::new(server);
        for (label, path, auth, status) in [
            (
                "v2 cloud/user alice",
                "/ocs/v2.php/cloud/user?format=json",
                a_auth.as_str(),
                200,
            ),
            (
                "v1 cloud/user alice",
                "/ocs/v1.php/cloud/user?format=json",
                a_auth.as_str(),
                200,
            ),
            (
                "v2 cloud/users/alice as admin",
                "/ocs/v2.php/cloud/users/alice?format=json",
                adm.as_str(),
                200,
            ),
            // A non-admin asking for another account: "not found" (998), as php-fpm answers.
            (
                "v2 cloud/users/admin as alice",
                "/ocs/v2.php/cloud/users/admin?format=json",
                a_auth.as_str(),
                404,
            ),
            (
                "v2 cloud/users list as alice",
                "/ocs/v2.php/cloud/users?format=json",
                a_auth.as_str(),
                403,
            ),
            (
                "v2 cloud/user anonymous",
                "/ocs/v2.php/cloud/user?format=json",
                "",
                401,
            ),
            (
                "v2 cloud/user alice again",
                "/ocs/v2.php/cloud/user?format=json",
                a_auth.as_str(),
                200,
            ),
        ] {
            let mut h = vec![OCS];
            if !auth.is_empty() {
                h.push(("Authorization", auth));
            }
            // Anonymous means no cookies either (the app-password requests' session cookies
            // authenticate, as they should: checked below).
            let a = if auth.is_empty() {
                Session::new(server).get(path, &h)
            } else {
                s.get(path, &h)
            };
            expect(server, label, &a, status);
            if label.contains("cloud/user alice") {
                assert_eq!(
                    a.json()["ocs"]["data"]["id"],
                    "alice",
                    "{}: {label}",
                    server.name()
                );
            }
            rec.push(label, user_seen(&a, server));
        }
        let a = s.get("/ocs/v2.php/cloud/user?format=json", &[OCS]);
        expect(server, "the session cookies of alice's requests", &a, 200);
        assert_eq!(a.json()["ocs"]["data"]["id"], "alice", "{}", server.name());
        rec.push(
            "cloud/user with the session cookies only",
            user_seen(&a, server),
        );
    });
}

#[test]
fn public_link_share() {
    let (_g, install) = install_or_skip!();
    compare(&install, 2, |install, server, rec| {
        let alice = install.user("alice");
        let auth = basic(&alice.name, &alice.app_password);
        remove(server, &alice, "/rr-nc-share.txt");
        let mut s = Session::new(server);
        let a = s.send(
            "PUT",
            &dav("alice", "/rr-nc-share.txt"),
            &[("Authorization", &auth)],
            "shared text\n",
        );
        expect(server, "PUT", &a, 201);
        let a = s.send(
            "POST",
            "/ocs/v2.php/apps/files_sharing/api/v1/shares?format=json",
            &[
                OCS,
                ("Authorization", &auth),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            "shareType=3&path=%2Frr-nc-share.txt&permissions=1",
        );
        expect(server, "create share", &a, 200);
        let j = a.json();
        let token = j["ocs"]["data"]["token"]
            .as_str()
            .expect("share token")
            .to_string();
        let id = j["ocs"]["data"]["id"]
            .as_str()
            .expect("share id")
            .to_string();
        let volatile = [
            "id",
            "token",
            "stime",
            "item_source",
            "file_source",
            "file_parent",
            "item_mtime",
            "url",
            "storage",
        ];
        let mut sn = seen(&a, server, &[]);
        sn.body = normalize_json(&j, server, &volatile).to_string();
        rec.push("create public link share", sn);
        let masks = [(token.as_str(), "{token}")];

        let a = Session::new(server).get(&format!("/s/{token}"), &[]);
        expect(server, "GET /s/<token>", &a, 200);
        assert!(
            a.text().contains("rr-nc-share.txt"),
            "{}: the share page does not name the file",
            server.name()
        );
        let mut sn = page_seen(&a, server);
        sn.body = format!("{} names file: true", normalize(&sn.body, server, &masks));
        rec.push("GET /s/<token>", sn);

        let a = Session::new(server).get(&format!("/public.php/dav/files/{token}"), &[]);
        expect(server, "GET public.php/dav", &a, 200);
        assert_eq!(a.body, b"shared text\n", "{}", server.name());
        rec.push(
            "GET /public.php/dav/files/<token>",
            seen(&a, server, &masks),
        );
        let a = Session::new(server).send(
            "PROPFIND",
            &format!("/public.php/dav/files/{token}/"),
            &[("Depth", "1")],
            Vec::new(),
        );
        expect(server, "PROPFIND public.php/dav", &a, 207);
        rec.push(
            "PROPFIND /public.php/dav/files/<token>/",
            seen(&a, server, &masks),
        );
        let a = Session::new(server).get(&format!("/s/{token}/download"), &[]);
        rec.push("GET /s/<token>/download", seen(&a, server, &masks));
        // Read-only: an anonymous upload into the share is refused.
        let a = Session::new(server).send(
            "PUT",
            &format!("/public.php/dav/files/{token}"),
            &[],
            "overwrite",
        );
        assert!(
            a.status >= 400,
            "{}: anonymous write into a read-only share: {}",
            server.name(),
            a.status
        );
        rec.push("PUT into read-only share", seen(&a, server, &masks));

        let a = s.send(
            "DELETE",
            &format!("/ocs/v2.php/apps/files_sharing/api/v1/shares/{id}?format=json"),
            &[OCS, ("Authorization", &auth)],
            Vec::new(),
        );
        expect(server, "delete share", &a, 200);
        rec.push("delete share", seen(&a, server, &masks));
        let a = Session::new(server).get(&format!("/s/{token}"), &[]);
        expect(server, "GET /s/<token> after delete", &a, 404);
        rec.push("GET /s/<token> after delete", page_seen(&a, server));
        let a = Session::new(server).get(&format!("/public.php/dav/files/{token}"), &[]);
        assert!(
            a.status >= 400 && !a.text().contains("shared text"),
            "{}: public.php/dav after delete: {}",
            server.name(),
            a.status
        );
        rec.push("GET public.php/dav after delete", seen(&a, server, &masks));
        remove(server, &alice, "/rr-nc-share.txt");
        empty_trash(server, &alice);
    });
}

#[test]
fn app_passwords() {
    let (_g, install) = install_or_skip!();
    compare(&install, 2, |install, server, rec| {
        let bob = install.user("bob");
        let login = basic(&bob.name, &bob.password);
        let a = Session::new(server).get(
            "/ocs/v2.php/core/getapppassword?format=json",
            &[OCS, ("Authorization", &login)],
        );
        expect(server, "getapppassword", &a, 200);
        let j = a.json();
        let app = j["ocs"]["data"]["apppassword"]
            .as_str()
            .expect("apppassword")
            .to_string();
        assert!(app.len() >= 32, "{}: app password {app}", server.name());
        let masks = [(app.as_str(), "{apppassword}")];
        rec.push("getapppassword", seen(&a, server, &masks));
        let fresh = basic(&bob.name, &app);
        // An app password cannot mint another one.
        let a = Session::new(server).get(
            "/ocs/v2.php/core/getapppassword?format=json",
            &[OCS, ("Authorization", &fresh)],
        );
        expect(server, "getapppassword with an app password", &a, 403);
        rec.push(
            "getapppassword with an app password",
            seen(&a, server, &masks),
        );
        let a = propfind(&mut Session::new(server), &fresh, &dav("bob", "/"));
        expect(server, "PROPFIND with the new app password", &a, 207);
        rec.push(
            "PROPFIND with the new app password",
            seen(&a, server, &masks),
        );
        let a = Session::new(server).get(
            "/ocs/v2.php/cloud/user?format=json",
            &[OCS, ("Authorization", &fresh)],
        );
        expect(server, "cloud/user with it", &a, 200);
        assert_eq!(a.json()["ocs"]["data"]["id"], "bob");
        rec.push(
            "cloud/user with the new app password",
            user_seen(&a, server),
        );
        let a = Session::new(server).send(
            "DELETE",
            "/ocs/v2.php/core/apppassword?format=json",
            &[OCS, ("Authorization", &fresh)],
            Vec::new(),
        );
        expect(server, "delete the app password", &a, 200);
        rec.push("DELETE core/apppassword", seen(&a, server, &masks));
        let a = propfind(&mut Session::new(server), &fresh, &dav("bob", "/"));
        expect(server, "PROPFIND with the deleted app password", &a, 401);
        rec.push(
            "PROPFIND with the deleted app password",
            seen(&a, server, &masks),
        );
    });
}

// ---------------------------------------------------------------------- isolation (1 worker)

/// Two users alternate on one rr worker: each has a private file; the other never sees it.
#[test]
fn isolation_files_between_users() {
    let (_g, install) = install_or_skip!();
    compare(&install, 1, |install, server, rec| {
        let alice = install.user("alice");
        let bob = install.user("bob");
        let (aa, ba) = (
            basic(&alice.name, &alice.app_password),
            basic(&bob.name, &bob.app_password),
        );
        // Each user's private file in a folder of their own: the compared listings are of these
        // folders (a home may hold leftovers of other runs); the homes are checked by assert.
        remove(server, &alice, "/rr-nc-iso");
        remove(server, &bob, "/rr-nc-iso");
        let mut sa = Session::new(server);
        let mut sb = Session::new(server);
        for (s, user, auth, text) in [
            (&mut sa, "alice", &aa, "alice's secret\n"),
            (&mut sb, "bob", &ba, "bob's secret\n"),
        ] {
            let a = s.send(
                "MKCOL",
                &dav(user, "/rr-nc-iso"),
                &[("Authorization", auth)],
                Vec::new(),
            );
            expect(server, "MKCOL", &a, 201);
            let path = dav(user, &format!("/rr-nc-iso/private-{user}.txt"));
            let a = s.send("PUT", &path, &[("Authorization", auth)], text);
            expect(server, "PUT private file", &a, 201);
        }
        for round in 0..3 {
            // alice, bob, alice, bob... on the same worker.
            for (s, me, auth, other) in [
                (&mut sa, "alice", &aa, "bob"),
                (&mut sb, "bob", &ba, "alice"),
            ] {
                let a = propfind(s, auth, &dav(me, "/"));
                expect(server, "PROPFIND own home", &a, 207);
                let t = a.text();
                assert!(
                    t.contains("/rr-nc-iso/"),
                    "{}: {me} does not see the folder",
                    server.name()
                );
                assert!(
                    !t.contains(&format!("/files/{other}")),
                    "{}: {me}'s home listing names {other}'s home",
                    server.name()
                );
                assert!(
                    !t.contains(&format!("private-{other}")),
                    "{}: {me}'s home lists {other}'s file",
                    server.name()
                );
                let a = propfind(s, auth, &dav(me, "/rr-nc-iso/"));
                expect(server, "PROPFIND own folder", &a, 207);
                assert_eq!(
                    hrefs(&a.text()),
                    vec![
                        dav(me, "/rr-nc-iso/"),
                        dav(me, &format!("/rr-nc-iso/private-{me}.txt"))
                    ],
                    "{}: {me}'s folder",
                    server.name()
                );
                rec.push(
                    &format!("#{round} {me} PROPFIND own folder"),
                    seen(&a, server, &[]),
                );

                let a = s.get(
                    &dav(other, &format!("/rr-nc-iso/private-{other}.txt")),
                    &[("Authorization", auth)],
                );
                expect(server, "GET the other's file", &a, 404);
                assert!(
                    !a.text().contains("secret"),
                    "{}: {me} read {other}'s file",
                    server.name()
                );
                rec.push(
                    &format!("#{round} {me} GET {other}'s file"),
                    seen(&a, server, &[]),
                );

                // Nextcloud answers 207 with the bare collection and nothing in it.
                let a = propfind(s, auth, &dav(other, "/rr-nc-iso/"));
                assert!(
                    a.status == 207 || a.status >= 400,
                    "{}: {me} PROPFIND {other}'s folder: {}",
                    server.name(),
                    a.status
                );
                assert!(
                    hrefs(&a.text()).len() <= 1,
                    "{}: {me}'s PROPFIND of {other}'s folder lists {:?}",
                    server.name(),
                    hrefs(&a.text())
                );
                assert!(!a.text().contains(&format!("private-{other}")));
                rec.push(
                    &format!("#{round} {me} PROPFIND {other}'s folder"),
                    seen(&a, server, &[]),
                );

                // The legacy endpoint takes the user from the credentials alone.
                let a = s.get(
                    &format!("/remote.php/webdav/rr-nc-iso/private-{me}.txt"),
                    &[("Authorization", auth)],
                );
                expect(server, "webdav GET own file", &a, 200);
                assert_eq!(
                    a.text(),
                    format!("{me}'s secret\n"),
                    "{}: {me} got someone else's file",
                    server.name()
                );
                rec.push(
                    &format!("#{round} {me} GET webdav own file"),
                    seen(&a, server, &[]),
                );
                let a = s.get(
                    &format!("/remote.php/webdav/rr-nc-iso/private-{other}.txt"),
                    &[("Authorization", auth)],
                );
                expect(server, "webdav GET of the other's name", &a, 404);
                rec.push(
                    &format!("#{round} {me} GET webdav {other}'s name"),
                    seen(&a, server, &[]),
                );
            }
        }
        remove(server, &alice, "/rr-nc-iso");
        remove(server, &bob, "/rr-nc-iso");
        empty_trash(server, &alice);
        empty_trash(server, &bob);
    });
}

/// Two browser sessions alternate on one worker: each stays its own user, tokens differ, and one
/// session's token does not work with the other's cookies.
#[test]
fn isolation_sessions_and_tokens() {
    let (_g, install) = install_or_skip!();
    compare(&install, 1, |install, server, rec| {
        let alice = install.user("alice");
        let bob = install.user("bob");
        let (mut sa, ta) = browser_login(server, &alice, rec, "alice");
        let (mut sb, tb) = browser_login(server, &bob, rec, "bob");
        assert_ne!(
            ta,
            tb,
            "{}: alice and bob got the same request token",
            server.name()
        );
        assert_ne!(
            sa.cookies,
            sb.cookies,
            "{}: alice and bob got the same cookies",
            server.name()
        );
        let session_cookie = |s: &Session| {
            s.cookies
                .iter()
                .filter(|(k, _)| k.starts_with("oc") && k.as_str() != "oc_sessionPassphrase")
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        };
        assert_ne!(
            session_cookie(&sa),
            session_cookie(&sb),
            "{}: same session id",
            server.name()
        );
        for round in 0..3 {
            let a = sa.get("/ocs/v2.php/cloud/user?format=json", &[OCS]);
            expect(server, "alice cloud/user", &a, 200);
            assert_eq!(
                a.json()["ocs"]["data"]["id"],
                "alice",
                "{}: round {round}",
                server.name()
            );
            rec.push(
                &format!("#{round} alice session cloud/user"),
                user_seen(&a, server),
            );
            let a = sb.get("/ocs/v2.php/cloud/user?format=json", &[OCS]);
            expect(server, "bob cloud/user", &a, 200);
            assert_eq!(
                a.json()["ocs"]["data"]["id"],
                "bob",
                "{}: round {round}",
                server.name()
            );
            rec.push(
                &format!("#{round} bob session cloud/user"),
                user_seen(&a, server),
            );
            let a = sa.get("/apps/files/", &[HTML]);
            expect(server, "alice /apps/files/", &a, 200);
            assert!(
                a.text().contains("data-user=\"alice\"") && !a.text().contains("data-user=\"bob\""),
                "{}",
                server.name()
            );
            let tok = request_token(&a.text()).unwrap();
            assert_ne!(
                tok.split(':').next(),
                tb.split(':').next(),
                "{}: alice's page carries bob's token",
                server.name()
            );
            rec.push(&format!("#{round} alice page"), page_seen(&a, server));
            let a = sb.get("/apps/files/", &[HTML]);
            expect(server, "bob /apps/files/", &a, 200);
            assert!(
                a.text().contains("data-user=\"bob\"") && !a.text().contains("data-user=\"alice\""),
                "{}",
                server.name()
            );
            rec.push(&format!("#{round} bob page"), page_seen(&a, server));
        }
        // A CSRF-checked call with bob's cookies and alice's token fails (and with his own works).
        let path = "/apps/files/api/v1/stats";
        let a = sb.get(path, &[("requesttoken", &ta)]);
        let b = sb.get(path, &[("requesttoken", &tb)]);
        assert_ne!(
            a.status,
            200,
            "{}: bob's session accepted alice's request token",
            server.name()
        );
        assert_eq!(
            b.status,
            200,
            "{}: bob's own token: {}",
            server.name(),
            clip(&b.text())
        );
        rec.push("bob's cookies + alice's token", seen(&a, server, &[]));
        rec.push("bob's cookies + bob's token", user_seen(&b, server));
        // App passwords: alice's on bob's home fails; bob's on his own works.
        let aa = basic(&alice.name, &alice.app_password);
        let a = propfind(&mut Session::new(server), &aa, &dav("bob", "/"));
        assert!(
            a.status == 207 || a.status >= 400,
            "{}: alice's app password on bob's home: {}",
            server.name(),
            a.status
        );
        assert!(
            hrefs(&a.text()).len() <= 1,
            "{}: alice's app password lists bob's home: {:?}",
            server.name(),
            hrefs(&a.text())
        );
        rec.push("alice's app password on bob's home", seen(&a, server, &[]));
        let cross = basic(&bob.name, &alice.app_password);
        let a = propfind(&mut Session::new(server), &cross, &dav("bob", "/"));
        expect(server, "bob's name with alice's app password", &a, 401);
        rec.push("bob's name + alice's app password", seen(&a, server, &[]));
    });
}

/// Logout ends the session for good: the old cookies replayed are not authenticated.
#[test]
fn isolation_logout_stays_logged_out() {
    let (_g, install) = install_or_skip!();
    compare(&install, 1, |install, server, rec| {
        let alice = install.user("alice");
        let (mut s, token) = browser_login(server, &alice, rec, "alice");
        let old_cookies = s.cookies.clone();
        let a = s.get(&format!("/logout?requesttoken={}", url_encode(&token)), &[]);
        expect(server, "logout", &a, 303);
        assert!(
            a.header("location").unwrap_or_default().contains("/login"),
            "{}: logout Location",
            server.name()
        );
        rec.push("GET /logout", seen(&a, server, &[]));
        let a = s.get("/ocs/v2.php/cloud/user?format=json", &[OCS]);
        // php-fpm answers 303 here (the session is gone); what matters is: not alice.
        assert!(
            a.status != 200 && !a.text().contains("alice"),
            "{}: cloud/user after logout: {} {}",
            server.name(),
            a.status,
            clip(&a.text())
        );
        rec.push(
            "cloud/user after logout (current cookies)",
            seen(&a, server, &[]),
        );
        for round in 0..2 {
            let mut replay = Session::new(server);
            replay.cookies = old_cookies.clone();
            let a = replay.get("/ocs/v2.php/cloud/user?format=json", &[OCS]);
            expect(server, "cloud/user with the old cookies", &a, 401);
            rec.push(
                &format!("#{round} cloud/user with the pre-logout cookies"),
                seen(&a, server, &[]),
            );
            let mut replay = Session::new(server);
            replay.cookies = old_cookies.clone();
            let a = replay.get("/apps/files/", &[HTML]);
            assert_eq!(
                a.status,
                303,
                "{}: /apps/files/ with the old cookies: {}",
                server.name(),
                a.status
            );
            assert!(a.header("location").unwrap_or_default().contains("/login"));
            rec.push(
                &format!("#{round} /apps/files/ with the pre-logout cookies"),
                seen(&a, server, &[]),
            );
        }
    });
}

/// An anonymous request right after an authenticated one on the same worker gets what php-fpm
/// gives it (401 / the login redirect), never the previous user's answer.
#[test]
fn isolation_anonymous_after_authenticated() {
    let (_g, install) = install_or_skip!();
    compare(&install, 1, |install, server, rec| {
        let alice = install.user("alice");
        let aa = basic(&alice.name, &alice.app_password);
        let (mut browser, _token) = browser_login(server, &alice, rec, "alice");
        for round in 0..2 {
            let a = propfind(&mut Session::new(server), &aa, &dav("alice", "/"));
            expect(server, "alice PROPFIND", &a, 207);
            let a = propfind(&mut Session::new(server), "", &dav("alice", "/"));
            expect(server, "anonymous PROPFIND after alice", &a, 401);
            rec.push(
                &format!("#{round} anonymous PROPFIND after alice's"),
                seen(&a, server, &[]),
            );

            let a = Session::new(server).get(
                "/ocs/v2.php/cloud/user?format=json",
                &[OCS, ("Authorization", &aa)],
            );
            expect(server, "alice cloud/user", &a, 200);
            let a = Session::new(server).get("/ocs/v2.php/cloud/user?format=json", &[OCS]);
            expect(server, "anonymous cloud/user after alice", &a, 401);
            rec.push(
                &format!("#{round} anonymous cloud/user after alice's"),
                seen(&a, server, &[]),
            );

            let a = browser.get("/apps/files/", &[HTML]);
            expect(server, "alice's browser", &a, 200);
            let a = Session::new(server).get("/apps/files/", &[HTML]);
            assert_eq!(
                a.status,
                303,
                "{}: anonymous /apps/files/ after alice's: {}",
                server.name(),
                a.status
            );
            assert!(a.header("location").unwrap_or_default().contains("/login"));
            rec.push(
                &format!("#{round} anonymous /apps/files/ after alice's"),
                seen(&a, server, &[]),
            );

            let a = Session::new(server).get("/ocs/v2.php/cloud/capabilities?format=json", &[OCS]);
            expect(server, "anonymous capabilities after alice", &a, 200);
            rec.push(
                &format!("#{round} anonymous capabilities after alice's"),
                seen(&a, server, &[]),
            );
        }
    });
}

/// What the comparison masks must still be fresh: on ONE worker, every answer has its own
/// X-Request-Id and CSP nonce, every new session its own id and request token (a value kept
/// from an earlier request is a leak between users, even when it compares "equal" masked).
#[test]
fn isolation_per_request_values_are_fresh() {
    let (_g, install) = install_or_skip!();
    compare(&install, 1, |install, server, rec| {
        let alice = install.user("alice");
        let auth = basic(&alice.name, &alice.app_password);
        let (mut ids, mut nonces, mut tokens, mut sessions) = (vec![], vec![], vec![], vec![]);
        for round in 0..4 {
            let mut s = Session::new(server);
            let page = s.get("/login", &[HTML]);
            expect(server, "GET /login", &page, 200);
            let text = page.text();
            ids.push(page.header("x-request-id").expect("X-Request-Id"));
            let nonce = text
                .split("nonce=\"")
                .nth(1)
                .and_then(|t| t.split('"').next())
                .expect("a CSP nonce on /login")
                .to_string();
            let csp = page.header("content-security-policy").unwrap_or_default();
            assert!(
                csp.contains(&nonce),
                "{}: the page's nonce is not the CSP header's",
                server.name()
            );
            nonces.push(nonce);
            tokens.push(request_token(&text).expect("request token"));
            sessions.push(s.cookie_header());
            // An authenticated request in between, on the same worker.
            let a = Session::new(server).get(
                "/ocs/v2.php/cloud/user?format=json",
                &[OCS, ("Authorization", &auth)],
            );
            expect(server, "cloud/user", &a, 200);
            ids.push(a.header("x-request-id").expect("X-Request-Id"));
            rec.push(&format!("#{round} GET /login"), page_seen(&page, server));
        }
        for (what, values) in [
            ("X-Request-Id", &ids),
            ("CSP nonce", &nonces),
            ("request token", &tokens),
            ("session cookies", &sessions),
        ] {
            let mut unique = values.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                unique.len(),
                values.len(),
                "{}: a {what} repeats: {values:?}",
                server.name()
            );
        }
    });
}

/// What nginx never hands out (configuration, data, code, dot files) rr must not either: the
/// same 404, and never a byte of the file.
#[test]
fn denied_paths() {
    let (_g, install) = install_or_skip!();
    compare(&install, 2, |install, server, rec| {
        let config = std::fs::read_to_string(install.root.join("config/config.php")).unwrap();
        let secret = config
            .split("'secret' => '")
            .nth(1)
            .and_then(|t| t.split('\'').next())
            .expect("config.php has a secret")
            .to_string();
        for path in [
            "/config/config.php",
            "/config/",
            "/data/nextcloud.log",
            "/data/owncloud.db",
            "/.htaccess",
            "/.user.ini",
            "/occ",
            "/console.php",
            "/lib/base.php",
            "/3rdparty/autoload.php",
            "/templates/",
            "/build/",
            "/tests/",
            "/autotest.sh",
            "/db_structure.xml",
            "/issue",
            "/indie",
        ] {
            let a = Session::new(server).get(path, &[]);
            expect(server, path, &a, 404);
            let text = a.text();
            assert!(
                !text.contains(&secret) && !text.contains("passwordsalt"),
                "{}: {path} leaks config.php",
                server.name()
            );
            assert!(
                !text.contains("<?php"),
                "{}: {path} serves PHP source",
                server.name()
            );
            // nginx's 404 page and rr's are their own: status only.
            rec.push(
                path,
                Seen {
                    status: a.status,
                    headers: Default::default(),
                    cookies: vec![],
                    body: String::new(),
                },
            );
        }
    });
}

/// Static files come out byte for byte, with the type nginx gives them.
#[test]
fn static_files() {
    let (_g, install) = install_or_skip!();
    compare(&install, 2, |install, server, rec| {
        for path in [
            "/core/img/logo/logo.svg",
            "/core/img/favicon.ico",
            "/core/css/server.css",
            "/core/js/no-such-file.js",
            "/robots.txt",
            "/core/img/logo/logo.svg?v=1",
        ] {
            let file = install
                .root
                .join(path.trim_start_matches('/').split('?').next().unwrap());
            let want = std::fs::read(&file).ok();
            let a = Session::new(server).get(path, &[]);
            match &want {
                Some(bytes) => {
                    expect(server, path, &a, 200);
                    assert!(
                        &a.body == bytes,
                        "{}: {path}: the bytes differ from the file",
                        server.name()
                    );
                }
                None => assert_ne!(
                    a.status,
                    200,
                    "{}: {path} does not exist but answers 200",
                    server.name()
                ),
            }
            if want.is_none() {
                // Not a file: Nextcloud's own 404 page, compared like any page.
                rec.push(path, page_seen(&a, server));
                continue;
            }
            let sn = Seen {
                status: a.status,
                headers: [("content-type", a.header("content-type").unwrap_or_default())]
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            vec![v.split(';').next().unwrap_or("").trim().to_string()],
                        )
                    })
                    .collect(),
                cookies: vec![],
                body: format!(
                    "{} bytes, sha256 {}",
                    a.body.len(),
                    hex(&Sha256::digest(&a.body))
                ),
            };
            rec.push(path, sn);
        }
    });
}

/// Error answers (unknown routes, services and apps; several end in exit() inside Nextcloud)
/// are php-fpm's, and the ONE worker answers the next request normally.
#[test]
fn error_answers_then_normal_service() {
    let (_g, install) = install_or_skip!();
    compare(&install, 1, |install, server, rec| {
        let alice = install.user("alice");
        let auth = basic(&alice.name, &alice.app_password);
        for (path, headers) in [
            ("/index.php/apps/no-such-app/", vec![HTML]),
            ("/apps/no-such-app/", vec![HTML]),
            ("/ocs/v2.php/no/such/endpoint?format=json", vec![OCS]),
            ("/ocs/v1.php/no/such/endpoint", vec![OCS]),
            ("/remote.php/no-such-service", vec![]),
            ("/public.php?service=no-such-service", vec![]),
            (
                "/remote.php/dav/files/alice/no-such-file.txt",
                vec![("Authorization", auth.as_str())],
            ),
            ("/index.php/s/no-such-token", vec![HTML]),
        ] {
            let a = Session::new(server).get(path, &headers);
            // What each of these answers is php-fpm's business (some are 200); rr must match it.
            if path.starts_with("/ocs/v1.php") {
                // OCS v1 answers 200 and puts the error in the body.
                assert!(
                    a.text().contains("<statuscode>998</statuscode>"),
                    "{}: {path}: {}",
                    server.name(),
                    a.text()
                );
            }
            let ct = a.header("content-type").unwrap_or_default();
            let sn = if ct.starts_with("text/html") {
                page_seen(&a, server)
            } else {
                seen(&a, server, &[])
            };
            rec.push(&format!("error {path}"), sn);
            // The same worker, right after: a normal answer.
            let a = Session::new(server).get(
                "/ocs/v2.php/cloud/user?format=json",
                &[OCS, ("Authorization", &auth)],
            );
            expect(server, "cloud/user after an error", &a, 200);
            assert_eq!(a.json()["ocs"]["data"]["id"], "alice", "{}", server.name());
            rec.push(&format!("cloud/user after {path}"), user_seen(&a, server));
        }
    });
}

/// Two users at the same time on two workers: every answer is the asking user's own.
#[test]
fn isolation_concurrent_users() {
    let (_g, install) = install_or_skip!();
    compare(&install, 2, |install, server, rec| {
        let users = [install.user("alice"), install.user("bob")];
        for u in &users {
            remove(server, u, "/rr-nc-conc");
            let auth = basic(&u.name, &u.app_password);
            let mut s = Session::new(server);
            expect(
                server,
                "MKCOL",
                &s.send(
                    "MKCOL",
                    &dav(&u.name, "/rr-nc-conc"),
                    &[("Authorization", &auth)],
                    Vec::new(),
                ),
                201,
            );
            let body = format!("only {} may read this\n", u.name);
            expect(
                server,
                "PUT",
                &s.send(
                    "PUT",
                    &dav(&u.name, "/rr-nc-conc/mine.txt"),
                    &[("Authorization", &auth)],
                    body,
                ),
                201,
            );
        }
        let counts: Vec<usize> = std::thread::scope(|scope| {
            let handles: Vec<_> = users
                .iter()
                .map(|u| {
                    scope.spawn(move || {
                        let auth = basic(&u.name, &u.app_password);
                        let mut ok = 0;
                        for i in 0..25 {
                            // No cookies kept: each request authenticates on its own.
                            let mut s = Session::new(server);
                            let a = s.get(
                                "/remote.php/webdav/rr-nc-conc/mine.txt",
                                &[("Authorization", &auth)],
                            );
                            expect(server, "GET own file", &a, 200);
                            assert_eq!(
                                a.text(),
                                format!("only {} may read this\n", u.name),
                                "{}: request {i} of {}",
                                server.name(),
                                u.name
                            );
                            let a = Session::new(server).get(
                                "/ocs/v2.php/cloud/user?format=json",
                                &[OCS, ("Authorization", &auth)],
                            );
                            expect(server, "cloud/user", &a, 200);
                            assert_eq!(
                                a.json()["ocs"]["data"]["id"],
                                u.name.as_str(),
                                "{}: request {i}",
                                server.name()
                            );
                            ok += 2;
                        }
                        ok
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        rec.push(
            "concurrent requests answered for the right user",
            Seen {
                status: 200,
                headers: Default::default(),
                cookies: vec![],
                body: format!("{counts:?}"),
            },
        );
        for u in &users {
            remove(server, u, "/rr-nc-conc");
            empty_trash(server, u);
        }
    });
}

// ---------------------------------------------------------------------- CalDAV and CardDAV

/// One DAV step of a scenario: sends, checks the status on both servers, records what was seen
/// with the values that differ between runs of a collection (sync tokens, ctags) masked.
fn dav_step(
    s: &mut Session,
    rec: &mut Record,
    server: &Server,
    (label, method, path): (&str, &str, &str),
    headers: &[(&str, &str)],
    body: &str,
    want: u16,
) -> Answer {
    let a = s.send(method, path, headers, body.to_string());
    expect(server, label, &a, want);
    let mut seen = seen(&a, server, &[]);
    for el in ["d:sync-token", "s:sync-token", "cs:getctag"] {
        seen.body = client::mask_element(&seen.body, el);
    }
    seen.body = client::sort_responses(&seen.body);
    rec.push(label, seen);
    a
}

const EVENT: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//rr//tests//EN\r\n\
BEGIN:VEVENT\r\nUID:rr-nc-event-1\r\nDTSTAMP:20261201T100000Z\r\n\
DTSTART:20261224T180000Z\r\nDTEND:20261224T200000Z\r\nSUMMARY:alice's secret dinner\r\n\
END:VEVENT\r\nEND:VCALENDAR\r\n";

const CARD: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:rr-nc-card-1\r\nFN:Carol Example\r\n\
EMAIL:carol@example.invalid\r\nEND:VCARD\r\n";

#[test]
fn caldav_and_carddav() {
    let (_g, install) = install_or_skip!();
    compare(&install, 1, |install, server, rec| {
        let alice = install.user("alice");
        let bob = install.user("bob");
        let a_auth = basic(&alice.name, &alice.app_password);
        let b_auth = basic(&bob.name, &bob.app_password);
        let ha = [("Authorization", a_auth.as_str())];
        let no_trash = [
            ("Authorization", a_auth.as_str()),
            ("X-NC-CalDAV-No-Trashbin", "1"),
        ];
        let cal = "/remote.php/dav/calendars/alice/rr-nc-cal/";
        let event = format!("{cal}dinner.ics");
        let book = "/remote.php/dav/addressbooks/users/alice/rr-nc-book/";
        let card = format!("{book}carol.vcf");
        // Left over by an interrupted run; not compared.
        let mut s = Session::new(server);
        s.send("DELETE", cal, &no_trash, Vec::new());
        s.send("DELETE", book, &ha, Vec::new());

        let xml = [
            ("Authorization", a_auth.as_str()),
            ("Content-Type", "application/xml; charset=utf-8"),
        ];
        let mut s = Session::new(server);
        let step =
            |s: &mut Session, rec: &mut Record, what, headers: &[(&str, &str)], body, want| {
                dav_step(s, rec, server, what, headers, body, want)
            };
        let mkcalendar = "<?xml version=\"1.0\"?><c:mkcalendar xmlns:d=\"DAV:\" \
            xmlns:c=\"urn:ietf:params:xml:ns:caldav\"><d:set><d:prop>\
            <d:displayname>rr test</d:displayname></d:prop></d:set></c:mkcalendar>";
        step(
            &mut s,
            rec,
            ("MKCALENDAR", "MKCALENDAR", cal),
            &xml,
            mkcalendar,
            201,
        );
        let ics = [
            ("Authorization", a_auth.as_str()),
            ("Content-Type", "text/calendar; charset=utf-8"),
        ];
        step(&mut s, rec, ("PUT event", "PUT", &event), &ics, EVENT, 201);
        let a = step(&mut s, rec, ("GET event", "GET", &event), &ha, "", 200);
        assert!(
            a.text().contains("alice's secret dinner"),
            "{}",
            server.name()
        );
        let query = "<?xml version=\"1.0\"?><c:calendar-query xmlns:d=\"DAV:\" \
            xmlns:c=\"urn:ietf:params:xml:ns:caldav\"><d:prop><d:getetag/><c:calendar-data/>\
            </d:prop><c:filter><c:comp-filter name=\"VCALENDAR\"><c:comp-filter name=\"VEVENT\"/>\
            </c:comp-filter></c:filter></c:calendar-query>";
        let depth1 = [
            ("Authorization", a_auth.as_str()),
            ("Depth", "1"),
            ("Content-Type", "application/xml; charset=utf-8"),
        ];
        let a = step(
            &mut s,
            rec,
            ("REPORT calendar-query", "REPORT", cal),
            &depth1,
            query,
            207,
        );
        assert!(a.text().contains("rr-nc-event-1"), "{}", server.name());

        let mkcol = "<?xml version=\"1.0\"?><d:mkcol xmlns:d=\"DAV:\" \
            xmlns:card=\"urn:ietf:params:xml:ns:carddav\"><d:set><d:prop><d:resourcetype>\
            <d:collection/><card:addressbook/></d:resourcetype>\
            <d:displayname>rr test</d:displayname></d:prop></d:set></d:mkcol>";
        step(
            &mut s,
            rec,
            ("MKCOL addressbook", "MKCOL", book),
            &xml,
            mkcol,
            201,
        );
        let vcf = [
            ("Authorization", a_auth.as_str()),
            ("Content-Type", "text/vcard; charset=utf-8"),
        ];
        step(&mut s, rec, ("PUT card", "PUT", &card), &vcf, CARD, 201);
        // After a card: the contact birthdays calendar exists in both runs.
        step(
            &mut s,
            rec,
            (
                "PROPFIND calendar home",
                "PROPFIND",
                "/remote.php/dav/calendars/alice/",
            ),
            &depth1,
            "",
            207,
        );
        let a = step(&mut s, rec, ("GET card", "GET", &card), &ha, "", 200);
        assert!(
            a.text().contains("carol@example.invalid"),
            "{}",
            server.name()
        );
        let query = "<?xml version=\"1.0\"?><card:addressbook-query xmlns:d=\"DAV:\" \
            xmlns:card=\"urn:ietf:params:xml:ns:carddav\"><d:prop><d:getetag/>\
            <card:address-data/></d:prop></card:addressbook-query>";
        let a = step(
            &mut s,
            rec,
            ("REPORT addressbook-query", "REPORT", book),
            &depth1,
            query,
            207,
        );
        assert!(a.text().contains("Carol Example"), "{}", server.name());

        // Bob, on the same worker right after alice, sees none of it.
        let hb = [("Authorization", b_auth.as_str())];
        let mut bs = Session::new(server);
        let a = step(
            &mut bs,
            rec,
            ("bob GET alice's event", "GET", &event),
            &hb,
            "",
            404,
        );
        assert!(!a.text().contains("secret dinner"), "{}", server.name());
        let a = step(
            &mut bs,
            rec,
            ("bob GET alice's card", "GET", &card),
            &hb,
            "",
            404,
        );
        assert!(!a.text().contains("carol@"), "{}", server.name());
        let bob_depth1 = [("Authorization", b_auth.as_str()), ("Depth", "1")];
        let a = step(
            &mut bs,
            rec,
            (
                "bob PROPFIND his calendar home",
                "PROPFIND",
                "/remote.php/dav/calendars/bob/",
            ),
            &bob_depth1,
            "",
            207,
        );
        assert!(!a.text().contains("rr-nc-cal"), "{}", server.name());
        step(
            &mut bs,
            rec,
            (
                "bob PROPFIND alice's calendar home",
                "PROPFIND",
                "/remote.php/dav/calendars/alice/",
            ),
            &bob_depth1,
            "",
            404,
        );
        // And alice still sees her own after bob.
        let a = step(
            &mut s,
            rec,
            ("GET event again", "GET", &event),
            &ha,
            "",
            200,
        );
        assert!(
            a.text().contains("alice's secret dinner"),
            "{}",
            server.name()
        );

        step(&mut s, rec, ("DELETE card", "DELETE", &card), &ha, "", 204);
        step(
            &mut s,
            rec,
            ("DELETE addressbook", "DELETE", book),
            &ha,
            "",
            204,
        );
        step(
            &mut s,
            rec,
            ("DELETE event", "DELETE", &event),
            &no_trash,
            "",
            204,
        );
        step(
            &mut s,
            rec,
            ("DELETE calendar", "DELETE", cal),
            &no_trash,
            "",
            204,
        );
        step(
            &mut s,
            rec,
            ("GET deleted event", "GET", &event),
            &ha,
            "",
            404,
        );
    });
}

/// NEXTCLOUD_PHASES: the worker appends the average time of each phase of its requests, per
/// entry script, every NEXTCLOUD_PHASES_EVERY requests (an rr-only switch: no php-fpm side).
#[test]
fn phase_timings_file() {
    let (_g, install) = install_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("phases.jsonl");
    let file_str = file.to_str().unwrap().to_string();
    let server = Server::rr_with_env(
        &install,
        1,
        &[
            ("NEXTCLOUD_PHASES", file_str.as_str()),
            ("NEXTCLOUD_PHASES_EVERY", "3"),
        ],
    );
    let admin = install.user("admin");
    let auth = basic(&admin.name, &admin.app_password);
    for _ in 0..2 {
        let a = Session::new(&server).get("/ocs/v2.php/cloud/capabilities?format=json", &[OCS]);
        expect(&server, "capabilities", &a, 200);
    }
    assert!(
        !file.exists(),
        "a line before NEXTCLOUD_PHASES_EVERY requests"
    );
    let a = propfind(&mut Session::new(&server), &auth, &dav(&admin.name, ""));
    expect(&server, "PROPFIND", &a, 207);
    // The line is written by the reset, which runs before the answer is sent.
    let text = std::fs::read_to_string(&file).expect("the phases file after 3 requests");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let line: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON line");
    assert_eq!(line["requests"], 3, "{line}");
    assert!(line["gc_runs"].is_u64(), "{line}");
    for (script, requests) in [("/ocs/v2.php", 2), ("/remote.php", 1)] {
        let s = &line["scripts"][script];
        assert_eq!(s["requests"], requests, "{script}: {line}");
        let us = s["us"]
            .as_object()
            .unwrap_or_else(|| panic!("{script}: {line}"));
        let mut phases: Vec<&str> = us.keys().map(String::as_str).collect();
        phases.sort_unstable();
        let mut expected = [
            "begin.request",
            "begin.session",
            "begin.checks",
            "entry",
            "shutdown",
            "reset.nextcloud",
            "reset.listeners",
            "reset.containers",
            "reset.statics",
            "reset.headers",
            "total",
        ];
        expected.sort_unstable();
        assert_eq!(phases, expected, "{script}: {line}");
        let sum: f64 = us
            .iter()
            .filter(|(k, _)| *k != "total")
            .map(|(_, v)| v.as_f64().unwrap())
            .sum();
        let total = us["total"].as_f64().unwrap();
        assert!(total > 0.0, "{script}: {line}");
        assert!(
            (sum - total).abs() < 1.0,
            "{script}: phases {sum} vs total {total}"
        );
    }
}

/// Services whose construction cannot depend on the request are kept across requests
/// (Containers::promote(), NEXTCLOUD_PROMOTION_LOG lists each decision once per worker), those
/// that hold a user, a session or a per-request value are not, and users alternating on the one
/// worker still get their own answers. The harness runs rr with NEXTCLOUD_VERIFY_KEPT=1: every
/// kept service is compared with a fresh build at the end of every request, and a difference
/// fails this test when the server is dropped.
#[test]
fn kept_services() {
    let (_g, install) = install_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("promotion.log");
    let log_str = log.to_str().unwrap().to_string();
    let server = Server::rr_with_env(
        &install,
        1,
        &[("NEXTCLOUD_PROMOTION_LOG", log_str.as_str())],
    );
    for round in 0..3 {
        let a = Session::new(&server).get("/ocs/v2.php/cloud/capabilities?format=json", &[OCS]);
        expect(&server, "capabilities", &a, 200);
        for name in ["alice", "bob"] {
            let user = install.user(name);
            let auth = basic(&user.name, &user.app_password);
            let a = propfind(&mut Session::new(&server), &auth, &dav(name, "/"));
            expect(&server, &format!("PROPFIND {name}, round {round}"), &a, 207);
            let text = a.text();
            for href in hrefs(&text) {
                assert!(
                    href.starts_with(&dav(name, "/")),
                    "round {round}: {name} got {href}"
                );
            }
            let a = Session::new(&server).get(
                "/ocs/v2.php/cloud/user?format=json",
                &[OCS, ("Authorization", &auth)],
            );
            expect(&server, &format!("cloud/user {name}"), &a, 200);
            assert_eq!(a.json()["ocs"]["data"]["id"], name, "round {round}");
        }
        let a = Session::new(&server).get("/ocs/v2.php/cloud/user?format=json", &[OCS]);
        expect(&server, "cloud/user without credentials", &a, 401);
    }
    let text = std::fs::read_to_string(&log).expect("the promotion log");
    let mut seen = std::collections::HashSet::new();
    for line in text.lines() {
        let mut fields = line.split('\t');
        let (decision, container, id) = (fields.next(), fields.next(), fields.next());
        assert!(
            matches!(decision, Some("kept" | "per request")) && container.is_some(),
            "{line}"
        );
        assert!(
            seen.insert((container, id)),
            "looked at twice in one worker: {line}"
        );
    }
    for expected in [
        // Stores only the services it is given.
        "kept\tapp files_sharing\tOCA\\Files_Sharing\\Capabilities",
        "kept\tapp core\tOC\\AppFramework\\Middleware\\Security\\CSPMiddleware",
        // Reads the request's passphrase cookie in its constructor.
        "per request\tserver\tOC\\Session\\CryptoWrapper\tconstructor calls a method",
        // Holds the request's session.
        "per request\tserver\tOC\\Authentication\\TwoFactorAuth\\Manager\t$session",
        // Is given the user id.
        "per request\tapp circles\tOCA\\Circles\\Service\\TimezoneService\tparameter $userId",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(expected)),
            "no line starting {expected:?} in:\n{text}"
        );
    }
    drop(server);

    // NEXTCLOUD_KEEP_PURE=0: nothing is kept, nothing is looked at.
    let log_off = dir.path().join("off.log");
    let log_off_str = log_off.to_str().unwrap().to_string();
    let server = Server::rr_with_env(
        &install,
        1,
        &[
            ("NEXTCLOUD_PROMOTION_LOG", log_off_str.as_str()),
            ("NEXTCLOUD_KEEP_PURE", "0"),
        ],
    );
    for _ in 0..2 {
        let a = Session::new(&server).get("/ocs/v2.php/cloud/capabilities?format=json", &[OCS]);
        expect(&server, "capabilities", &a, 200);
    }
    assert!(!log_off.exists(), "NEXTCLOUD_KEEP_PURE=0 still promoted");
}

/// Runs `occ` on the install (as the tests' user, with APCu as the servers have it).
fn occ(install: &Install, args: &[&str]) {
    occ_with_env(install, &[], args);
}

/// Puts `shareapi_allow_links` back to `yes` however the test ends.
struct LinksAllowed<'a>(&'a Install);

impl Drop for LinksAllowed<'_> {
    fn drop(&mut self) {
        occ(
            self.0,
            &[
                "config:app:set",
                "core",
                "shareapi_allow_links",
                "--value=yes",
            ],
        );
    }
}

/// An admin setting changed while the servers run (here with occ, from another process) is
/// seen by the next requests once Nextcloud's local cache of the app config expires (3 s), as
/// under php-fpm: a worker does not keep serving the settings it booted with.
#[test]
fn app_config_change_is_seen() {
    let (_g, install) = install_or_skip!();
    let alice = install.user("alice");
    let auth = basic(&alice.name, &alice.app_password);
    let links = |server: &Server| -> bool {
        let a = Session::new(server).get(
            "/ocs/v2.php/cloud/capabilities?format=json",
            &[OCS, ("Authorization", &auth)],
        );
        expect(server, "capabilities", &a, 200);
        a.json()["ocs"]["data"]["capabilities"]["files_sharing"]["public"]["enabled"]
            .as_bool()
            .unwrap_or_else(|| panic!("{}: no files_sharing.public.enabled", server.name()))
    };
    let fpm = Server::fpm(&install, 1);
    let rr = Server::rr(&install, 1);
    let _restore = LinksAllowed(&install);
    for server in [&fpm, &rr] {
        // Several requests first: the worker has served with the setting loaded.
        for _ in 0..3 {
            assert!(links(server), "{}: public links off before", server.name());
        }
    }
    for (value, expected) in [("no", false), ("yes", true)] {
        occ(
            &install,
            &[
                "config:app:set",
                "core",
                "shareapi_allow_links",
                &format!("--value={value}"),
            ],
        );
        for server in [&fpm, &rr] {
            let deadline = Instant::now() + Duration::from_secs(15);
            while links(server) != expected {
                assert!(
                    Instant::now() < deadline,
                    "{}: shareapi_allow_links={value} not seen after 15 s",
                    server.name()
                );
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

/// occ with `OC_PASS` set, for its `--password-from-env` options; what it printed.
fn occ_with_password(install: &Install, password: &str, args: &[&str]) -> String {
    occ_with_env(install, &[("OC_PASS", password)], args)
}

/// `occ` with these variables added to its environment; what it printed. Fails the test when
/// occ fails.
fn occ_with_env(install: &Install, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = std::process::Command::new("php")
        .args(["-d", "apc.enable_cli=1", "occ", "--no-interaction"])
        .args(args)
        .envs(env.iter().copied())
        .current_dir(&install.root)
        .output()
        .expect("php runs occ");
    assert!(
        out.status.success(),
        "occ {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A user added for one test, deleted (with its tokens) however the test ends.
struct ThrowawayUser<'a>(&'a Install, String);

impl Drop for ThrowawayUser<'_> {
    fn drop(&mut self) {
        occ(self.0, &["user:delete", &self.1]);
    }
}

/// The login password an app password stands for changes: the user's password is reset, and a
/// login with the new one makes Nextcloud re-encrypt every token's copy. rr remembers each
/// app password's decrypted copy sealed (RR\Nextcloud\TokenPasswords), keyed by the token and
/// its row; the harness runs rr with NEXTCLOUD_VERIFY_KEPT=1, which decrypts again on every
/// answer from that memo and fails the request (500) on a difference. So a memo that served
/// the old password for the changed row fails here.
#[test]
fn app_password_follows_a_password_change() {
    let (_g, install) = install_or_skip!();
    let name = format!("rr-pwchange-{}", std::process::id());
    let (first, second) = ("Rr-first-Passw0rd-2026!", "Rr-second-Passw0rd-2026?");
    occ_with_password(&install, first, &["user:add", "--password-from-env", &name]);
    let _user = ThrowawayUser(&install, name.clone());
    let out = occ_with_password(
        &install,
        first,
        &["user:auth-tokens:add", "--password-from-env", &name],
    );
    let app_password = out
        .lines()
        .skip_while(|l| !l.starts_with("app password:"))
        .nth(1)
        .unwrap_or_else(|| panic!("no app password in: {out}"))
        .trim()
        .to_string();
    let app = basic(&name, &app_password);
    let home = dav(&name, "/");
    let fpm = Server::fpm(&install, 1);
    // One worker: every request meets what the ones before left in its memo.
    let rr = Server::rr(&install, 1);
    let listings = |what: &str| {
        for server in [&fpm, &rr] {
            for _ in 0..3 {
                // A new client each time: no session cookie, so each request logs in.
                let a = propfind(&mut Session::new(server), &app, &home);
                expect(server, what, &a, 207);
            }
        }
    };
    listings("PROPFIND with the app password");
    occ_with_password(
        &install,
        second,
        &["user:resetpassword", "--password-from-env", &name],
    );
    let a = propfind(&mut Session::new(&rr), &basic(&name, second), &home);
    expect(&rr, "PROPFIND with the new login password", &a, 207);
    listings("PROPFIND with the app password after the password change");
}

/// A user's password is reset while the servers run: a worker that checked the old one before
/// takes the new one and refuses the old one at once, as php-fpm does. (The user backend keeps
/// the user rows it loaded, password hashes included; rr puts them back after each request.)
/// And a login name that did not exist when a worker first looked it up can log in once the
/// user is added; a disabled user is refused at once, and let in again once enabled.
#[test]
fn password_reset_and_new_user_are_seen_by_running_workers() {
    let (_g, install) = install_or_skip!();
    let name = format!("rr-reset-{}", std::process::id());
    let (first, second) = ("Rr-first-Passw0rd-2026!", "Rr-second-Passw0rd-2026?");
    let home = dav(&name, "/");
    let fpm = Server::fpm(&install, 1);
    // One worker: it has looked up the user before each change.
    let rr = Server::rr(&install, 1);
    let status = |server: &Server, password: &str| -> u16 {
        propfind(&mut Session::new(server), &basic(&name, password), &home).status
    };
    for server in [&fpm, &rr] {
        assert_eq!(
            status(server, first),
            401,
            "{}: before the user exists",
            server.name()
        );
    }
    occ_with_password(&install, first, &["user:add", "--password-from-env", &name]);
    let _user = ThrowawayUser(&install, name.clone());
    for server in [&fpm, &rr] {
        for _ in 0..3 {
            assert_eq!(
                status(server, first),
                207,
                "{}: the new user\n{}",
                server.name(),
                server.logs()
            );
        }
    }
    occ_with_password(
        &install,
        second,
        &["user:resetpassword", "--password-from-env", &name],
    );
    for server in [&fpm, &rr] {
        assert_eq!(
            status(server, second),
            207,
            "{}: the new password\n{}",
            server.name(),
            server.logs()
        );
        assert_eq!(
            status(server, first),
            401,
            "{}: the old password\n{}",
            server.name(),
            server.logs()
        );
    }
    // Disabled, then enabled again: refused at once (php-fpm answers 503), then let in again.
    occ(&install, &["user:disable", &name]);
    let refused = status(&fpm, second);
    assert!(refused >= 400, "php-fpm let a disabled user in: {refused}");
    assert_eq!(
        status(&rr, second),
        refused,
        "rr: a disabled user\n{}",
        rr.logs()
    );
    occ(&install, &["user:enable", &name]);
    for server in [&fpm, &rr] {
        assert_eq!(
            status(server, second),
            207,
            "{}: enabled again\n{}",
            server.name(),
            server.logs()
        );
    }
}
