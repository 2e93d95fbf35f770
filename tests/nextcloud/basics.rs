//! Plain requests and what the routing answers: status.php, capabilities, redirects, avatars,
//! denied paths, static files, and error answers followed by normal service.

use crate::client::{basic, normalize_json, seen, Seen, Session};
use crate::login::{page_seen, user_seen};
use crate::scenario::{clip, compare, expect, hex, HTML, OCS};
use sha2::{Digest, Sha256};

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
