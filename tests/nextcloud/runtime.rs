//! The runtime's own switches, rr only: phase timings and the services kept across requests.

use crate::client::{basic, Session};
use crate::harness::Server;
use crate::scenario::{dav, expect, hrefs, propfind, OCS};

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
