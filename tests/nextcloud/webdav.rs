//! WebDAV: PROPFIND, the file operations, and a 100 MB upload and download.

use crate::client;
use crate::client::{basic, seen, Answer, Seen, Session};
use crate::scenario::{compare, dav, empty_trash, expect, hex, hrefs, propfind, remove};
use sha2::{Digest, Sha256};
use std::io::Read;

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
