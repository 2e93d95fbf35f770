//! Losing the database server (PostgreSQL, MariaDB; rr only: php-fpm connects anew at every
//! request). A restart may fail the requests in flight while it runs; every request that starts
//! after it must succeed, on every worker, whether the workers were idle or busy.

use crate::client::{basic, client};
use crate::harness::{Install, Server};
use crate::scenario::dav;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CAPABILITIES: &str = "/ocs/v2.php/cloud/capabilities?format=json";

/// One request of the load and what came back: a status, or the transport error.
struct Outcome {
    what: &'static str,
    started: Instant,
    ended: Instant,
    answer: Result<u16, String>,
}

impl Outcome {
    fn ok(&self) -> bool {
        matches!(
            (self.what, &self.answer),
            ("capabilities", Ok(200)) | ("PROPFIND", Ok(207))
        )
    }
}

/// A user's request, alternately the OCS capabilities and a PROPFIND Depth 1 of their root
/// (both authenticate against the database).
fn request(server: &Server, install: &Install, n: usize) -> Outcome {
    let admin = install.user("admin");
    let auth = basic(&admin.name, &admin.app_password);
    let http = client();
    let (what, req) = if n.is_multiple_of(2) {
        (
            "capabilities",
            http.get(server.url(CAPABILITIES))
                .header("OCS-APIRequest", "true"),
        )
    } else {
        (
            "PROPFIND",
            http.request(
                reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
                server.url(&dav(&admin.name, "/")),
            )
            .header("Depth", "1"),
        )
    };
    let started = Instant::now();
    let answer = req
        .header("Authorization", auth)
        .timeout(Duration::from_secs(60))
        .send()
        .and_then(|r| {
            let status = r.status().as_u16();
            r.bytes().map(|_| status)
        })
        .map_err(|e| e.to_string());
    Outcome {
        what,
        started,
        ended: Instant::now(),
        answer,
    }
}

/// `clients` threads, `each` requests each, all answered as they must be.
fn all_succeed(server: &Server, install: &Install, clients: usize, each: usize, when: &str) {
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for c in 0..clients {
            let outcomes = &outcomes;
            s.spawn(move || {
                for n in 0..each {
                    let o = request(server, install, c + n);
                    outcomes.lock().unwrap().push(o);
                }
            });
        }
    });
    let outcomes = outcomes.into_inner().unwrap();
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.ok())
        .map(|o| format!("{} {:?}", o.what, o.answer))
        .collect();
    assert!(
        failed.is_empty(),
        "{when}: {} of {} requests failed: {failed:?}\n{}",
        failed.len(),
        outcomes.len(),
        server.logs()
    );
}

#[test]
fn database_restart_fails_only_requests_in_flight() {
    let (_g, install) = install_or_skip!();
    if install.database() == "sqlite" {
        eprintln!("skipped: the install uses SQLite, there is no database server to restart (run it on a --database pgsql or mysql install)");
        return;
    }
    let mut server = Server::rr(&install, 2);

    // Idle workers, each holding a connection, then a restart: nothing is in flight, so the
    // next requests on every worker must all succeed.
    all_succeed(&server, &install, 2, 6, "before the restart");
    install.restart_database();
    all_succeed(
        &server,
        &install,
        2,
        10,
        "after a restart while the workers were idle",
    );

    // Under load: 4 clients; the database restarts once 40 requests are done, and the load
    // goes on until 80 requests have started and ended after the restart returned.
    let outcomes = Mutex::new(Vec::new());
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let restart: Mutex<Option<(Instant, Instant)>> = Mutex::new(None);
    std::thread::scope(|s| {
        for c in 0..4 {
            let (outcomes, done, stop, server, install) =
                (&outcomes, &done, &stop, &server, &install);
            s.spawn(move || {
                let mut n = c;
                while !stop.load(Ordering::SeqCst) {
                    let o = request(server, install, n);
                    outcomes.lock().unwrap().push(o);
                    done.fetch_add(1, Ordering::SeqCst);
                    n += 1;
                }
            });
        }
        while done.load(Ordering::SeqCst) < 40 {
            std::thread::sleep(Duration::from_millis(10));
        }
        let from = Instant::now();
        install.restart_database();
        let to = Instant::now();
        *restart.lock().unwrap() = Some((from, to));
        loop {
            let after = outcomes
                .lock()
                .unwrap()
                .iter()
                .filter(|o: &&Outcome| o.started > to)
                .count();
            if after >= 80 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::SeqCst);
    });
    let (from, to) = restart.into_inner().unwrap().unwrap();
    let outcomes = outcomes.into_inner().unwrap();
    let in_flight = |o: &Outcome| o.started <= to && o.ended >= from;
    let failed_outside: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.ok() && !in_flight(o))
        .map(|o| {
            let at = |t: Instant| {
                if t < from {
                    format!("-{:?}", from - t)
                } else {
                    format!("+{:?}", t - to)
                }
            };
            format!(
                "{} {:?} (started {} ended {} from the restart)",
                o.what,
                o.answer,
                at(o.started),
                at(o.ended)
            )
        })
        .collect();
    let failed_in_flight = outcomes.iter().filter(|o| !o.ok() && in_flight(o)).count();
    eprintln!(
        "database restart under load: {} requests, {} in flight during the restart, {} of those failed",
        outcomes.len(),
        outcomes.iter().filter(|o| in_flight(o)).count(),
        failed_in_flight
    );
    assert!(
        failed_outside.is_empty(),
        "requests not in flight during the database restart failed: {failed_outside:?}\n{}",
        server.logs()
    );
    assert!(
        server.alive(),
        "rr exited during the scenario:\n{}",
        server.logs()
    );
}
