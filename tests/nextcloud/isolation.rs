//! Users kept apart: alternating on ONE rr worker (files, sessions, tokens, logout, anonymous
//! requests, per-request values), and concurrent on two.

use crate::client::{basic, normalize, normalize_json, seen, Answer, Seen, Session};
use crate::harness::Server;
use crate::login::{
    browser_login, form_encode, page_seen, path_of, request_token, url_encode, user_seen,
};
use crate::scenario::{
    clip, compare, dav, empty_trash, expect, hrefs, propfind, remove, Asker, HTML, OCS,
};

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

/// `POST` (or `PUT`, `DELETE`) of a form to an OCS endpoint with `auth`.
fn ocs_form(server: &Server, method: &str, path: &str, auth: &str, form: &str) -> Answer {
    Session::new(server).send(
        method,
        path,
        &[
            OCS,
            ("Authorization", auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        form.to_string(),
    )
}

const SHARES: &str = "/ocs/v2.php/apps/files_sharing/api/v1/shares";

/// What a share's creation answers, with its ids, token and times masked (and `hashed`: the
/// fields holding a password hash, salted anew on each server).
fn share_seen(a: &Answer, server: &Server, hashed: &[&str]) -> Seen {
    let mut volatile = vec![
        "id",
        "token",
        "stime",
        "item_source",
        "file_source",
        "file_parent",
        "item_mtime",
        "url",
        "storage",
        "parent",
    ];
    volatile.extend_from_slice(hashed);
    let mut sn = seen(a, server, &[]);
    sn.body = normalize_json(&a.json(), server, &volatile).to_string();
    sn
}

/// alice shares a file with bob (a user share), makes it read-only, then unshares it, while
/// both workers serve bob: each change holds for bob's very next request on every worker, as
/// under php-fpm (the filesystem, mounts and share caches a worker built for bob before must
/// not outlive the request).
#[test]
fn user_share_changes_reach_the_recipient_at_once() {
    let (_g, install) = install_or_skip!();
    let name = format!("rr-nc-for-bob-{}.txt", std::process::id());
    compare(&install, 2, |install, server, rec| {
        let (alice, bob) = (install.user("alice"), install.user("bob"));
        let (aa, ba) = (
            basic(&alice.name, &alice.app_password),
            basic(&bob.name, &bob.app_password),
        );
        let file = format!("/{name}");
        remove(server, &alice, &file);
        let a = Session::new(server).send(
            "PUT",
            &dav("alice", &file),
            &[("Authorization", &aa)],
            "for bob's eyes\n",
        );
        expect(server, "alice's PUT", &a, 201);
        let bobs = Asker::new(server).masking(&name, "{file}");
        let bob_get = |s: &mut Session| s.get(&dav("bob", &file), &[("Authorization", &ba)]);
        let bob_put = |s: &mut Session| {
            s.send(
                "PUT",
                &dav("bob", &file),
                &[("Authorization", &ba)],
                "bob's edit\n",
            )
        };
        let bob_home = |s: &mut Session| propfind(s, &ba, &dav("bob", "/"));
        bobs.rounds(rec, "bob's GET before the share", 404, &bob_get);
        let form = format!(
            "shareType=0&shareWith=bob&permissions=19&path={}",
            url_encode(&file)
        );
        let a = ocs_form(server, "POST", &format!("{SHARES}?format=json"), &aa, &form);
        expect(server, "share with bob", &a, 200);
        let id = a.json()["ocs"]["data"]["id"]
            .as_str()
            .expect("share id")
            .to_string();
        rec.push("alice shares with bob", share_seen(&a, server, &[]));
        for a in bobs.rounds(rec, "bob's GET of the share", 200, &bob_get) {
            assert_eq!(a.body, b"for bob's eyes\n", "{}", server.name());
        }
        let share = format!("{SHARES}/{id}?format=json");
        let a = ocs_form(server, "PUT", &share, &aa, "permissions=1");
        expect(server, "the share made read-only", &a, 200);
        rec.push(
            "alice makes the share read-only",
            share_seen(&a, server, &[]),
        );
        bobs.rounds(rec, "bob's PUT into the read-only share", 403, &bob_put);
        let a = ocs_form(server, "DELETE", &share, &aa, "");
        expect(server, "unshare", &a, 200);
        rec.push("alice unshares", seen(&a, server, &[]));
        bobs.rounds(rec, "bob's GET after the unshare", 404, &bob_get);
        // One PUT: several at once of a new file lock each other out (423), under php-fpm too.
        let a = bob_put(&mut Session::new(server));
        expect(server, "bob's PUT after the unshare", &a, 201);
        rec.push("bob's PUT after the unshare", seen(&a, server, &[]));
        for a in bobs.rounds(rec, "bob's home after the unshare", 207, &bob_home) {
            // bob's PUT made a file of his own: it holds his bytes, not alice's.
            assert!(a.text().contains(&name), "{}", server.name());
        }
        let mut s = Session::new(server);
        let a = s.get(&dav("alice", &file), &[("Authorization", &aa)]);
        expect(server, "alice's file after the unshare", &a, 200);
        assert_eq!(
            a.body,
            b"for bob's eyes\n",
            "{}: alice's file",
            server.name()
        );
        rec.push("alice's file after the unshare", seen(&a, server, &[]));
        let a = bob_get(&mut Session::new(server));
        assert_eq!(a.body, b"bob's edit\n", "{}: bob's own file", server.name());
        remove(server, &alice, &file);
        remove(server, &bob, &file);
        empty_trash(server, &alice);
        empty_trash(server, &bob);
    });
}

/// Takes alice out of the admin group however the test ends.
struct NotAdmin<'a>(&'a crate::harness::Install);

impl Drop for NotAdmin<'_> {
    fn drop(&mut self) {
        crate::admin::occ_quietly(self.0, &["group:removeuser", "admin", "alice"]);
    }
}

/// alice is made an admin, then demoted, by the admin over OCS, while both workers serve her:
/// an admin-only endpoint (the user list) is refused before, served while she is an admin, and
/// refused again at her very next request on every worker, as under php-fpm (the group
/// manager and the group backend cache memberships).
#[test]
fn admin_rights_follow_group_membership_at_once() {
    let (_g, install) = install_or_skip!();
    compare(&install, 2, |install, server, rec| {
        let (alice, admin) = (install.user("alice"), install.user("admin"));
        let aa = basic(&alice.name, &alice.app_password);
        let adm = basic(&admin.name, &admin.app_password);
        let _restore = NotAdmin(install);
        let alices = Asker::new(server);
        let users = |s: &mut Session| {
            s.get(
                "/ocs/v2.php/cloud/users?format=json",
                &[OCS, ("Authorization", &aa)],
            )
        };
        let groups = "/ocs/v2.php/cloud/users/alice/groups?format=json";
        alices.rounds(rec, "the user list as alice", 403, &users);
        let a = ocs_form(server, "POST", groups, &adm, "groupid=admin");
        expect(server, "alice added to admin", &a, 200);
        rec.push("alice added to admin", seen(&a, server, &[]));
        for a in alices.rounds(rec, "the user list as alice, an admin", 200, &users) {
            assert!(
                a.text().contains("\"bob\""),
                "{}: {}",
                server.name(),
                a.text()
            );
        }
        let a = ocs_form(server, "DELETE", groups, &adm, "groupid=admin");
        expect(server, "alice removed from admin", &a, 200);
        rec.push("alice removed from admin", seen(&a, server, &[]));
        alices.rounds(rec, "the user list as alice, demoted", 403, &users);
    });
}

/// A password-protected public link: the visitor who typed the password gets the file, on
/// every worker; a visitor without that session, served by the same workers in between, gets
/// the password page and 401, never the file (the link's authentication lives in the session).
#[test]
fn password_protected_link_opens_for_its_session_only() {
    let (_g, install) = install_or_skip!();
    compare(&install, 2, |install, server, rec| {
        let alice = install.user("alice");
        let aa = basic(&alice.name, &alice.app_password);
        let file = "/rr-nc-protected.txt";
        let password = "Rr-link-Passw0rd-2026!";
        remove(server, &alice, file);
        let a = Session::new(server).send(
            "PUT",
            &dav("alice", file),
            &[("Authorization", &aa)],
            "behind a password\n",
        );
        expect(server, "PUT", &a, 201);
        let form = format!(
            "shareType=3&permissions=1&path={}&password={}",
            url_encode(file),
            url_encode(password)
        );
        let a = ocs_form(server, "POST", &format!("{SHARES}?format=json"), &aa, &form);
        expect(server, "create the protected link", &a, 200);
        let token = a.json()["ocs"]["data"]["token"]
            .as_str()
            .expect("share token")
            .to_string();
        let id = a.json()["ocs"]["data"]["id"]
            .as_str()
            .expect("share id")
            .to_string();
        rec.push(
            "create the protected link",
            share_seen(&a, server, &["password", "share_with"]),
        );
        let link = format!("/s/{token}");
        let dav_file = format!("/public.php/dav/files/{token}");
        let page = |s: &mut Session| s.get(&link, &[HTML]);
        let download = |s: &mut Session| s.get(&dav_file, &[]);
        let strangers = Asker::new(server).masking(&token, "{token}");
        let auth_path = format!("{link}/authenticate/showShare");
        let password_page = |s: &mut Session| s.get(&auth_path, &[HTML]);
        let sent_to_password = |answers: Vec<Answer>, who: &str| {
            for a in answers {
                let to = path_of(&a.header("location").unwrap_or_default());
                // Nextcloud's Location spells the route's parameter in lower case.
                assert_eq!(
                    to.to_lowercase(),
                    auth_path.to_lowercase(),
                    "{}: {who} sent to {to}",
                    server.name()
                );
            }
        };
        let answers = strangers.rounds(rec, "a stranger opens the link", 303, &page);
        sent_to_password(answers, "a stranger");
        for a in strangers.rounds(rec, "a stranger's password page", 200, &password_page) {
            assert!(
                a.text().contains("password-protected"),
                "{}: no password page",
                server.name()
            );
        }
        strangers.rounds(rec, "a stranger downloads", 401, &download);

        // The visitor types a wrong password, then the right one.
        let mut visitor = Session::new(server);
        let a = visitor.get(&auth_path, &[HTML]);
        let token_field = request_token(&a.text()).expect("request token on the password page");
        let submit = |s: &mut Session, pw: &str, csrf: &str| {
            let origin = server.origin();
            s.send(
                "POST",
                &auth_path,
                &[
                    ("Origin", &origin),
                    ("Content-Type", "application/x-www-form-urlencoded"),
                ],
                form_encode(&[
                    ("password", pw),
                    ("requesttoken", csrf),
                    ("sharingToken", &token),
                    ("sharingType", "3"),
                ]),
            )
        };
        let a = submit(&mut visitor, "not the password", &token_field);
        // The password page again, saying so (brute-force protection is off on the test install).
        expect(server, "a wrong link password", &a, 200);
        assert!(
            a.text().contains("The password is wrong"),
            "{}: a wrong link password",
            server.name()
        );
        let mut sn = page_seen(&a, server);
        sn.body = normalize(&sn.body, server, &[(&token, "{token}")]);
        rec.push("a wrong link password", sn);
        let token_field = request_token(&a.text()).unwrap_or(token_field);
        let a = submit(&mut visitor, password, &token_field);
        expect(server, "the link password", &a, 303);
        rec.push(
            "the link password",
            seen(&a, server, &[(&token, "{token}")]),
        );
        let visitors = Asker::with(server, &visitor).masking(&token, "{token}");
        for round in 0..2 {
            for a in visitors.rounds(rec, &format!("#{round} the visitor's link"), 200, &page) {
                assert!(
                    !a.text().contains("password-protected"),
                    "{}: the visitor is asked again",
                    server.name()
                );
            }
            let label = format!("#{round} a stranger's link");
            sent_to_password(strangers.rounds(rec, &label, 303, &page), "a stranger");
            strangers.rounds(
                rec,
                &format!("#{round} a stranger downloads"),
                401,
                &download,
            );
        }
        let a = ocs_form(
            server,
            "DELETE",
            &format!("{SHARES}/{id}?format=json"),
            &aa,
            "",
        );
        expect(server, "delete the link", &a, 200);
        visitors.rounds(rec, "the visitor after the link is deleted", 404, &page);
        remove(server, &alice, file);
        empty_trash(server, &alice);
    });
}

/// Puts alice's language back however the test ends.
struct DefaultLanguage<'a>(&'a crate::harness::Install);

impl Drop for DefaultLanguage<'_> {
    fn drop(&mut self) {
        crate::admin::occ_quietly(
            self.0,
            &["user:setting", "alice", "core", "lang", "--delete"],
        );
    }
}

/// alice reads Nextcloud in German, bob in the default language: on two workers serving both
/// in turn, every page and OCS message is in its reader's language, as under php-fpm (the
/// translators and the L10N factory a worker keeps must not carry one user's language into
/// another's answer).
#[test]
fn language_stays_with_its_user() {
    let (_g, install) = install_or_skip!();
    compare(&install, 2, |install, server, rec| {
        let (alice, bob) = (install.user("alice"), install.user("bob"));
        let (aa, ba) = (
            basic(&alice.name, &alice.app_password),
            basic(&bob.name, &bob.app_password),
        );
        let _restore = DefaultLanguage(install);
        crate::admin::occ(install, &["user:setting", "alice", "core", "lang", "de"]);
        let anyone = Asker::new(server);
        let files = |auth: &str| {
            let auth = auth.to_string();
            move |s: &mut Session| s.get("/apps/files/", &[HTML, ("Authorization", &auth)])
        };
        let missing = |auth: &str| {
            let auth = auth.to_string();
            move |s: &mut Session| {
                s.get(
                    "/ocs/v1.php/cloud/users/rr-nobody/groups?format=json",
                    &[OCS, ("Authorization", &auth)],
                )
            }
        };
        for round in 0..2 {
            for (who, auth, title) in [("alice", &aa, "Dateien"), ("bob", &ba, "Files")] {
                let label = format!("#{round} {who}'s files app");
                for a in anyone.rounds(rec, &label, 200, &files(auth)) {
                    let text = a.text();
                    let seen = text
                        .split("<title>")
                        .nth(1)
                        .and_then(|t| t.split("</title>").next())
                        .unwrap_or_default()
                        .trim();
                    assert!(
                        seen.starts_with(title),
                        "{}: {label}: title '{seen}', not '{title}'",
                        server.name()
                    );
                }
                let label = format!("#{round} {who}'s OCS error");
                anyone.rounds(rec, &label, 200, &missing(auth));
            }
        }
    });
}
