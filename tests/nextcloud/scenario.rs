//! What every scenario shares: the install and the one-at-a-time lock, the comparison of what
//! nginx + php-fpm and rr answered, and small WebDAV request helpers.

use crate::client::{basic, Answer, Seen, Session};
use crate::harness::{Install, Server, User};
use std::sync::{Mutex, MutexGuard};

/// One server pair at a time: SQLite, two cores, and the tests share users.
static SERIAL: Mutex<()> = Mutex::new(());

pub(crate) fn setup() -> Option<(MutexGuard<'static, ()>, Install)> {
    let install = Install::from_env()?;
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    Some((guard, install))
}

/// What one scenario saw on one server: labelled steps, in order.
#[derive(Default)]
pub(crate) struct Record {
    pub(crate) steps: Vec<(String, Seen)>,
}

impl Record {
    pub(crate) fn push(&mut self, label: &str, seen: Seen) {
        self.steps.push((label.to_string(), seen));
    }
}

/// Runs `scenario` on nginx + php-fpm, then on rr (`rr_workers` overrides the pool size), and
/// asserts every step matches. The scenario's own asserts run on both servers, so a wrong
/// expectation fails on php-fpm first.
pub(crate) fn compare(
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

pub(crate) fn clip(s: &str) -> &str {
    let mut end = s.len().min(2000);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(crate) fn first_difference(a: &str, b: &str) -> String {
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
pub(crate) fn expect(server: &Server, what: &str, a: &Answer, status: u16) {
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

pub(crate) const OCS: (&str, &str) = ("OCS-APIRequest", "true");
/// What a browser sends for a page: Nextcloud redirects such requests to the login page, and
/// answers others with 401.
pub(crate) const HTML: (&str, &str) = ("Accept", "text/html,application/xhtml+xml");

pub(crate) fn dav(user: &str, path: &str) -> String {
    format!("/remote.php/dav/files/{user}{path}")
}

/// Removes what an earlier, interrupted run may have left; not compared.
pub(crate) fn remove(server: &Server, user: &User, path: &str) {
    let auth = basic(&user.name, &user.app_password);
    Session::new(server).send(
        "DELETE",
        &dav(&user.name, path),
        &[("Authorization", &auth)],
        Vec::new(),
    );
}

/// Empties the user's trash bin (every DELETE puts the file there); not compared.
pub(crate) fn empty_trash(server: &Server, user: &User) {
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

pub(crate) fn propfind(s: &mut Session, auth: &str, path: &str) -> Answer {
    s.send(
        "PROPFIND",
        path,
        &[("Authorization", auth), ("Depth", "1")],
        Vec::new(),
    )
}

/// `<d:href>` values of a multistatus answer.
pub(crate) fn hrefs(body: &str) -> Vec<String> {
    body.split("<d:href>")
        .skip(1)
        .filter_map(|p| p.split("</d:href>").next())
        .map(str::to_string)
        .collect()
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
