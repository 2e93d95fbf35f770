//! Logins that end while the servers run: an app password deleted, rotated or revoked by an
//! admin, a browser session revoked from another one, a user disabled or deleted. rr keeps a
//! worker's services, the sealed memo of app passwords (RR\Nextcloud\TokenPasswords) and its
//! derived keys across requests; none of it may keep a login alive that php-fpm refuses. Two
//! workers, and every step asks several times at once so that both answer it. Each scenario
//! runs on rr twice: workers forked from the template (the shipped rr.yaml: they share one
//! APCu, as php-fpm's children do) and re-executed workers (`template: false`: an APCu each, so
//! nothing Nextcloud caches there may keep a revoked login alive on the other worker).

use crate::admin::{occ, ThrowawayUser};
use crate::client::{basic, seen, Session};
use crate::harness::Started;
use crate::harness::{Install, Server, User};
use crate::login::{browser_login, form_encode, page_seen, path_of, request_token, submit_login};
use crate::scenario::{compare_started, dav, expect, Asker, Record, HTML, OCS};
use std::collections::BTreeMap;

const PASSWORD: &str = "Rr-revoke-Passw0rd-2026!";

/// Both ways rr's pool starts workers.
const BOTH: &[Started] = &[Started::Forked, Started::ReExecuted];

/// PROPFIND of a home's resource type only (Depth 0): a login's answer that does not move with
/// the home's size (a new user's home is sized in the background).
fn home_type(s: &mut Session, auth: &str, home: &str) -> crate::client::Answer {
    s.send(
        "PROPFIND",
        home,
        &[("Authorization", auth), ("Depth", "0")],
        r#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/></d:prop></d:propfind>"#,
    )
}

/// A new account's first request: a whole PROPFIND of its home, which sets the home up (a
/// Depth 0 PROPFIND of one property as a new account's first request fails now and then
/// with a 500 in Nextcloud, under php-fpm too: "getMetadata() on null").
fn first_listing(server: &Server, user: &str, password: &str) -> crate::client::Answer {
    crate::scenario::propfind(
        &mut Session::new(server),
        &basic(user, password),
        &dav(user, "/"),
    )
}

/// The ids of a user's tokens of `kind` (0 a browser session, 1 an app password), from occ.
fn token_ids(install: &Install, user: &str, kind: i64) -> Vec<i64> {
    let out = crate::admin::occ_with_env(
        install,
        &[],
        &["user:auth-tokens:list", user, "--output=json"],
    );
    let list: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("occ token list ({e}): {out}"));
    list.as_array()
        .expect("a list of tokens")
        .iter()
        .filter(|t| t["type"].as_i64() == Some(kind))
        .map(|t| t["id"].as_i64().expect("token id"))
        .collect()
}

/// The one token of `kind` the user has now that it did not have in `before`.
fn new_token(install: &Install, user: &str, kind: i64, before: &[i64]) -> i64 {
    let new: Vec<i64> = token_ids(install, user, kind)
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(new.len(), 1, "{user}: new tokens of type {kind}: {new:?}");
    new[0]
}

/// An app password stops working on every worker the moment it is deleted by its holder
/// (`DELETE /ocs/v2.php/core/apppassword`), even though both workers served it just before and
/// hold its sealed login password; rotated (`POST .../apppassword/rotate`), the new secret is
/// served at once and the old one refused once php-fpm refuses it (Nextcloud leaves the old
/// hash in its token cache); revoked by an admin (`occ user:auth-tokens:delete`), it stops
/// working as soon as php-fpm stops taking it (Nextcloud's token cache in APCu, 10 s).
#[test]
fn revoked_app_passwords_are_refused_by_every_worker() {
    let (_g, install) = install_or_skip!();
    let name = format!("rr-revoke-{}", std::process::id());
    let user = ThrowawayUser::add(&install, &name, PASSWORD);
    compare_started(&install, 2, BOTH, |install, server, rec| {
        let home = dav(&name, "/");
        let listing = |password: &str| {
            let auth = basic(&name, password);
            let home = home.clone();
            move |s: &mut Session| home_type(s, &auth, &home)
        };
        let who = |password: &str| {
            let auth = basic(&name, password);
            move |s: &mut Session| {
                s.get(
                    "/ocs/v2.php/cloud/user?format=json",
                    &[OCS, ("Authorization", &auth)],
                )
            }
        };
        let anyone = Asker::new(server);

        // Deleted by its holder. (A new account's first logins, at once, race in Nextcloud's
        // user config under php-fpm too: one login first.)
        let deleted = user.app_password(PASSWORD);
        let a = first_listing(server, &name, &deleted);
        expect(server, "the first PROPFIND", &a, 207);
        anyone.rounds(rec, "PROPFIND, app password", 207, &listing(&deleted));
        anyone.rounds(rec, "cloud/user, app password", 200, &who(&deleted));
        let a = Session::new(server).send(
            "DELETE",
            "/ocs/v2.php/core/apppassword?format=json",
            &[OCS, ("Authorization", &basic(&name, &deleted))],
            Vec::new(),
        );
        expect(server, "DELETE core/apppassword", &a, 200);
        rec.push("DELETE core/apppassword", seen(&a, server, &[]));
        anyone.rounds(rec, "PROPFIND, deleted", 401, &listing(&deleted));
        anyone.rounds(rec, "cloud/user, deleted", 401, &who(&deleted));

        // Rotated: the same token row, a new secret.
        let old = user.app_password(PASSWORD);
        anyone.rounds(rec, "PROPFIND, before rotation", 207, &listing(&old));
        let a = Session::new(server).send(
            "POST",
            "/ocs/v2.php/core/apppassword/rotate?format=json",
            &[OCS, ("Authorization", &basic(&name, &old))],
            Vec::new(),
        );
        expect(server, "POST core/apppassword/rotate", &a, 200);
        let new = a.json()["ocs"]["data"]["apppassword"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no apppassword: {}", server.name(), a.text()))
            .to_string();
        assert_ne!(new, old, "{}: rotation kept the password", server.name());
        rec.push(
            "POST core/apppassword/rotate",
            seen(&a, server, &[(new.as_str(), "{apppassword}")]),
        );
        anyone.rounds(rec, "PROPFIND, rotated to", 207, &listing(&new));
        anyone.rounds(rec, "cloud/user, rotated to", 200, &who(&new));
        anyone.rounds_once_seen(rec, "PROPFIND, rotated away", 401, &listing(&old));
        anyone.rounds(rec, "cloud/user, rotated away", 401, &who(&old));

        // Revoked by an admin, from another process.
        let before = token_ids(install, &name, 1);
        let revoked = user.app_password(PASSWORD);
        let id = new_token(install, &name, 1, &before);
        anyone.rounds(rec, "PROPFIND, before occ", 207, &listing(&revoked));
        occ(
            install,
            &["user:auth-tokens:delete", &name, &id.to_string()],
        );
        anyone.rounds_once_seen(rec, "PROPFIND, revoked by occ", 401, &listing(&revoked));
        anyone.rounds(rec, "cloud/user, revoked by occ", 401, &who(&revoked));
        // The user's other app password is not touched.
        anyone.rounds(rec, "PROPFIND, the rotated one", 207, &listing(&new));
        // Every token of the user: a date after any last use that still fits PostgreSQL's
        // and MariaDB's 32-bit `last_activity` (2100 is out of range there).
        let all = [
            "user:auth-tokens:delete",
            &name,
            "--last-used-before=2038-01-01",
        ];
        occ(install, &all);
    });
}

/// A stolen browser session revoked by its owner from another session (Settings, Devices &
/// sessions: `DELETE /settings/personal/authtokens/<id>`) is refused at once by every worker,
/// however often both served it before; the owner's session goes on. Then the owner's own
/// session, revoked by an admin with occ, is refused once php-fpm refuses it.
#[test]
fn revoked_browser_sessions_are_refused_by_every_worker() {
    let (_g, install) = install_or_skip!();
    let name = format!("rr-session-{}", std::process::id());
    let _user = ThrowawayUser::add(&install, &name, PASSWORD);
    compare_started(&install, 2, BOTH, |install, server, rec| {
        let user = User {
            name: name.clone(),
            password: PASSWORD.to_string(),
            app_password: String::new(),
        };
        let cloud_user = |s: &mut Session| s.get("/ocs/v2.php/cloud/user?format=json", &[OCS]);
        let files_app = |s: &mut Session| s.get("/apps/files/", &[HTML]);
        let before = token_ids(install, &name, 0);
        let (stolen, _) = browser_login(server, &user, rec, "the stolen session");
        let stolen_id = new_token(install, &name, 0, &before);
        let before = token_ids(install, &name, 0);
        let (mut owner, owner_token) = browser_login(server, &user, rec, "the owner's session");
        let owner_id = new_token(install, &name, 0, &before);
        let thief = Asker::with(server, &stolen);
        thief.rounds(rec, "the stolen session", 200, &cloud_user);
        thief.rounds(rec, "the stolen session, files app", 200, &files_app);
        let a = owner.send(
            "DELETE",
            &format!("/settings/personal/authtokens/{stolen_id}"),
            &[("requesttoken", &owner_token)],
            Vec::new(),
        );
        expect(server, "DELETE the stolen session's token", &a, 200);
        rec.push(
            "DELETE /settings/personal/authtokens/<id>",
            seen(&a, server, &[]),
        );
        thief.rounds(rec, "the revoked session", 401, &cloud_user);
        for a in thief.at_once(&files_app) {
            expect(server, "the files app with the revoked session", &a, 303);
            let to = path_of(&a.header("location").unwrap_or_default());
            assert!(
                to.starts_with("/login"),
                "{}: the files app with the revoked session goes to {to}",
                server.name()
            );
        }
        let owner = Asker::with(server, &owner);
        owner.rounds(rec, "the owner's session", 200, &cloud_user);
        occ(
            install,
            &["user:auth-tokens:delete", &name, &owner_id.to_string()],
        );
        owner.rounds_once_seen(rec, "the owner's session revoked by occ", 401, &cloud_user);
    });
}

/// A user disabled by an admin is refused at once on every worker, by app password and by
/// browser session, exactly as php-fpm refuses them; enabled again, both work again; deleted,
/// both are refused; and a new user of the same name does not inherit the deleted one's
/// logins (once Nextcloud's token cache forgot them, under php-fpm too).
#[test]
fn disabled_and_deleted_users_are_refused_by_every_worker() {
    let (_g, install) = install_or_skip!();
    let name = format!("rr-gone-{}", std::process::id());
    compare_started(&install, 2, BOTH, |install, server, rec| {
        let account = ThrowawayUser::add(install, &name, PASSWORD);
        let user = User {
            name: name.clone(),
            password: PASSWORD.to_string(),
            app_password: account.app_password(PASSWORD),
        };
        let home = dav(&name, "/");
        let auth = basic(&name, &user.app_password);
        let listing = |s: &mut Session| home_type(s, &auth, &home);
        let cloud_user = |s: &mut Session| s.get("/ocs/v2.php/cloud/user?format=json", &[OCS]);
        let (session, _) = browser_login(server, &user, rec, "login");
        let (anyone, browser) = (Asker::new(server), Asker::with(server, &session));
        let check = |rec: &mut Record, what: &str, dav: u16, ocs: u16| {
            anyone.rounds(rec, &format!("PROPFIND, {what}"), dav, &listing);
            browser.rounds(rec, &format!("cloud/user, {what}"), ocs, &cloud_user);
        };
        check(rec, "enabled", 207, 200);
        occ(install, &["user:disable", &name]);
        // Nextcloud answers DAV with 503 (DisabledUserException), as under php-fpm.
        check(rec, "disabled", 503, 401);
        occ(install, &["user:enable", &name]);
        check(rec, "enabled again", 207, 200);
        occ(install, &["user:delete", &name]);
        check(rec, "deleted", 401, 401);
        let _again = ThrowawayUser::add(install, &name, PASSWORD);
        let what = "a new user of the same name";
        anyone.rounds_once_seen(rec, &format!("PROPFIND, {what}"), 401, &listing);
        browser.rounds_once_seen(rec, &format!("cloud/user, {what}"), 401, &cloud_user);
    });
}

/// The cookies a browser keeps after "stay logged in" once its session cookies are gone (the
/// browser was closed): the remember-me cookies and the same-site cookies.
fn remembered(session: &Session) -> BTreeMap<String, String> {
    session
        .cookies
        .iter()
        .filter(|(name, _)| name.starts_with("nc_") || name.starts_with("__Host-nc_sameSite"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// "Stay logged in": the remember-me cookie logs a browser in again after its session ended,
/// once; Nextcloud replaces its token (user preference `login_token`) and the session token at
/// each use. Replayed (the cookie copied before its use), it is refused by every worker, both
/// of which looked the user's tokens up before, as under php-fpm.
#[test]
fn remember_me_cookie_is_single_use_on_every_worker() {
    let (_g, install) = install_or_skip!();
    let name = format!("rr-remember-{}", std::process::id());
    let _user = ThrowawayUser::add(&install, &name, PASSWORD);
    compare_started(&install, 2, BOTH, |_, server, rec| {
        let mut s = Session::new(server);
        let page = s.get("/login", &[HTML]);
        expect(server, "GET /login", &page, 200);
        let csrf = request_token(&page.text()).expect("request token on /login");
        let origin = server.origin();
        let a = s.send(
            "POST",
            "/login",
            &[
                ("Origin", &origin),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            form_encode(&[
                ("user", &name),
                ("password", PASSWORD),
                ("remember_login", "1"),
                ("timezone", "UTC"),
                ("timezone_offset", "0"),
                ("requesttoken", &csrf),
            ]),
        );
        expect(server, "POST /login, stay logged in", &a, 303);
        rec.push("POST /login, stay logged in", seen(&a, server, &[]));
        let copied = remembered(&s);
        for cookie in ["nc_username", "nc_token", "nc_session_id"] {
            assert!(
                copied.contains_key(cookie),
                "{}: no {cookie} after a login that stays: {copied:?}",
                server.name()
            );
        }
        // Both workers look the user's tokens up with a session of their own first.
        let browser = Asker::with(server, &s);
        let cloud_user = |s: &mut Session| s.get("/ocs/v2.php/cloud/user?format=json", &[OCS]);
        browser.rounds(rec, "the session", 200, &cloud_user);
        // The browser comes back without its session: the cookie logs it in, once.
        let mut back = Session::new(server);
        back.cookies = copied.clone();
        let a = back.get("/apps/files/", &[HTML]);
        expect(server, "the files app by the remember-me cookie", &a, 200);
        assert!(
            a.text().contains(&format!("data-user=\"{name}\"")),
            "{}: the remember-me cookie did not log in",
            server.name()
        );
        rec.push(
            "the files app by the remember-me cookie",
            page_seen(&a, server),
        );
        assert_ne!(
            back.cookies.get("nc_token"),
            copied.get("nc_token"),
            "{}: the remember-me token was not replaced",
            server.name()
        );
        // The copy taken before its use: refused everywhere, pages and OCS.
        let thief = Asker::carrying(server, copied);
        for a in thief.rounds(
            rec,
            "the used remember-me cookie",
            303,
            &|s: &mut Session| s.get("/apps/files/", &[HTML]),
        ) {
            let to = path_of(&a.header("location").unwrap_or_default());
            assert!(
                to.starts_with("/login"),
                "{}: the used remember-me cookie went to {to}",
                server.name()
            );
        }
        thief.rounds(rec, "the used remember-me cookie, OCS", 401, &cloud_user);
        // The replaced cookie works, once more.
        let mut again = Session::new(server);
        again.cookies = remembered(&back);
        let a = again.get("/apps/files/", &[HTML]);
        expect(server, "the replaced remember-me cookie", &a, 200);
        rec.push("the replaced remember-me cookie", page_seen(&a, server));
    });
}

/// Two-factor enforcement off again (as the install has it: no groups), and the test's group
/// gone, however the test ends.
struct NotEnforced<'a>(&'a Install, String);

impl Drop for NotEnforced<'_> {
    fn drop(&mut self) {
        crate::admin::occ_quietly(self.0, &["twofactorauth:enforce", "--off"]);
        crate::admin::occ_quietly(self.0, &["group:delete", &self.1]);
    }
}

/// Where a browser login of `user` is sent, and its session.
fn login_goes_to<'a>(server: &'a Server, user: &User) -> (Session<'a>, String) {
    let (s, _, a) = submit_login(server, user);
    (s, path_of(&a.header("location").unwrap_or_default()))
}

/// Two-factor authentication enforced for one group (`occ twofactorauth:enforce --on
/// --group`), while both workers have served a member's login password and app password: from
/// then on every worker refuses the login password on DAV (a client must use an app password,
/// which goes on working) and a browser login stops at the second factor, its half-logged-in
/// session reaching nothing, as under php-fpm; a user outside the group logs in as before.
/// Enforcement off, the login password works again.
#[test]
fn enforced_second_factor_stops_password_logins_on_every_worker() {
    let (_g, install) = install_or_skip!();
    let name = format!("rr-2fa-{}", std::process::id());
    let group = format!("rr-2fa-group-{}", std::process::id());
    let account = ThrowawayUser::add(&install, &name, PASSWORD);
    occ(&install, &["group:add", &group]);
    let _off = NotEnforced(&install, group.clone());
    occ(&install, &["group:adduser", &group, &name]);
    compare_started(&install, 2, BOTH, |install, server, rec| {
        let user = User {
            name: name.clone(),
            password: PASSWORD.to_string(),
            app_password: account.app_password(PASSWORD),
        };
        let home = dav(&name, "/");
        let (login, app) = (basic(&name, PASSWORD), basic(&name, &user.app_password));
        let by_password = |s: &mut Session| home_type(s, &login, &home);
        let by_app_password = |s: &mut Session| home_type(s, &app, &home);
        let bob = install.user("bob");
        let bobs = basic(&bob.name, &bob.password);
        let bob_by_password = |s: &mut Session| home_type(s, &bobs, &dav("bob", "/"));
        let cloud_user = |s: &mut Session| s.get("/ocs/v2.php/cloud/user?format=json", &[OCS]);
        let anyone = Asker::new(server);
        let a = first_listing(server, &name, PASSWORD);
        expect(server, "the first login", &a, 207);
        anyone.rounds(rec, "PROPFIND, login password", 207, &by_password);
        anyone.rounds(rec, "PROPFIND, app password", 207, &by_app_password);
        let (_, to) = login_goes_to(server, &user);
        assert!(
            to.starts_with("/apps/"),
            "{}: login went to {to}",
            server.name()
        );

        occ(
            install,
            &["twofactorauth:enforce", "--on", "--group", &group],
        );
        anyone.rounds(rec, "PROPFIND, login password, 2FA", 401, &by_password);
        anyone.rounds(rec, "PROPFIND, app password, 2FA", 207, &by_app_password);
        anyone.rounds(rec, "PROPFIND, bob's login password", 207, &bob_by_password);
        let (half, to) = login_goes_to(server, &user);
        assert!(
            to.starts_with("/login/challenge") || to.starts_with("/login/selectchallenge"),
            "{}: a login with a second factor went to {to}",
            server.name()
        );
        let half = Asker::with(server, &half);
        half.rounds(rec, "cloud/user, half logged in", 303, &cloud_user);
        for a in half.at_once(&|s: &mut Session| s.get("/apps/files/", &[HTML])) {
            expect(server, "the files app, half logged in", &a, 303);
            let to = path_of(&a.header("location").unwrap_or_default());
            assert!(
                to.starts_with("/login/"),
                "{}: the files app, half logged in, went to {to}",
                server.name()
            );
        }

        occ(install, &["twofactorauth:enforce", "--off"]);
        anyone.rounds(rec, "PROPFIND, login password, no 2FA", 207, &by_password);
        let (_, to) = login_goes_to(server, &user);
        assert!(
            to.starts_with("/apps/"),
            "{}: login went to {to}",
            server.name()
        );
    });
}
