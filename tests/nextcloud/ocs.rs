//! OCS endpoints, public link shares and app passwords.

use crate::client::{basic, normalize, normalize_json, seen, Session};
use crate::login::{page_seen, user_seen};
use crate::scenario::{compare, dav, empty_trash, expect, propfind, remove, OCS};

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
