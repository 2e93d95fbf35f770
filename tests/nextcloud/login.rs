//! The browser login flow, and what of an HTML page is compared (also for the isolation
//! scenarios).

use crate::client;
use crate::client::{normalize, normalize_json, seen, Answer, Seen, Session};
use crate::harness::{Server, User};
use crate::scenario::{compare, expect, Record, HTML, OCS};

/// GET /login for its request token and cookies, then POST /login with Origin: the session and
/// both answers (the POST's checked to be 303).
pub(crate) fn submit_login<'a>(server: &'a Server, user: &User) -> (Session<'a>, Answer, Answer) {
    let mut s = Session::new(server);
    let page = s.get("/login", &[HTML]);
    expect(server, "GET /login", &page, 200);
    let token = request_token(&page.text())
        .unwrap_or_else(|| panic!("{}: no request token on /login", server.name()));
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
    (s, page, a)
}

/// The browser login: the login page's request token and cookies, then POST /login with Origin.
/// Returns the session (logged in), the page's request token, and the answers seen.
pub(crate) fn browser_login<'a>(
    server: &'a Server,
    user: &User,
    rec: &mut Record,
    tag: &str,
) -> (Session<'a>, String) {
    let (mut s, page, a) = submit_login(server, user);
    rec.push(&format!("{tag} GET /login"), login_page_seen(&page, server));
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
pub(crate) fn path_of(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => rest
            .find('/')
            .map(|i| rest[i..].to_string())
            .unwrap_or_else(|| "/".into()),
        None => location.to_string(),
    }
}

pub(crate) fn request_token(html: &str) -> Option<String> {
    let rest = html.split("data-requesttoken=\"").nth(1)?;
    Some(rest[..rest.find('"')?].to_string())
}

pub(crate) fn form_encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(crate) fn url_encode(s: &str) -> String {
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
pub(crate) fn page_seen(a: &Answer, server: &Server) -> Seen {
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
pub(crate) const PAGE_VOLATILE: &[&str] = &[
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

pub(crate) fn login_page_seen(a: &Answer, server: &Server) -> Seen {
    let mut sn = page_seen(a, server);
    // The login page has no user-specific state: compare it whole, with the volatile parts masked.
    let body = normalize(&a.text(), server, &[]);
    sn.body = format!("{}\n{}", sn.body, mask_initial_state(&body, server));
    sn
}

/// Masks the base64 initial-state values (they may carry timestamps); keeps their keys.
pub(crate) fn mask_initial_state(html: &str, server: &Server) -> String {
    client::decode_initial_state(html, server)
}

pub(crate) fn user_seen(a: &Answer, server: &Server) -> Seen {
    let mut sn = seen(a, server, &[]);
    if a.status == 200 {
        sn.body = normalize_json(
            &a.json(),
            server,
            &[
                "lastLogin",
                "lastLoginTimestamp",
                // A user added for one test: each server's run adds its own.
                "firstLoginTimestamp",
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
