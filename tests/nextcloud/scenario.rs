//! What every scenario shares: the install and the one-at-a-time lock, the comparison of what
//! nginx + php-fpm and rr answered, and small WebDAV request helpers.

use crate::client::{basic, normalize, seen, Answer, Seen, Session};
use crate::harness::{Install, Server, Started, User};
use crate::login::{page_seen, user_seen};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
    compare_started(install, rr_workers, &[Started::from_env()], scenario);
}

/// `compare()` with rr run once for each way of starting its workers in `started`, each run
/// compared with php-fpm's.
pub(crate) fn compare_started(
    install: &Install,
    rr_workers: usize,
    started: &[Started],
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
    if reference_only == "twice" {
        eprintln!("RR_NEXTCLOUD_REFERENCE_ONLY=twice: php-fpm compared with php-fpm, rr NOT run");
        let mut again = Record::default();
        let fpm = Server::fpm(install, 2);
        scenario(install, &fpm, &mut again);
        same_steps(&fpm_record, &again, "a second nginx+php-fpm");
        return;
    }
    for how in started {
        let mut rr_record = Record::default();
        let mut rr = Server::rr_started(install, rr_workers, *how, &[]);
        scenario(install, &rr, &mut rr_record);
        assert!(
            rr.alive(),
            "{} exited during the scenario:\n{}",
            rr.name(),
            rr.logs()
        );
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
                "{} logged '{sign}' during the scenario:\n{log}",
                rr.name()
            );
        }
        same_steps(&fpm_record, &rr_record, rr.name());
    }
}

/// Asserts that `other` (from the server named `name`) took php-fpm's steps and saw the same.
fn same_steps(fpm_record: &Record, other: &Record, name: &str) {
    assert_eq!(
        fpm_record.steps.iter().map(|s| &s.0).collect::<Vec<_>>(),
        other.steps.iter().map(|s| &s.0).collect::<Vec<_>>(),
        "the scenario took different steps on {name}"
    );
    eprintln!(
        "compared {} steps, nginx+php-fpm vs {name}",
        fpm_record.steps.len()
    );
    for ((label, f), (_, r)) in fpm_record.steps.iter().zip(&other.steps) {
        assert_eq!(
            f.status,
            r.status,
            "{label}: status: php-fpm {} vs {name} {}\n{name} body: {}",
            f.status,
            r.status,
            clip(&r.body)
        );
        assert_eq!(
            f.headers, r.headers,
            "{label}: key headers differ (left php-fpm, right {name})"
        );
        assert_eq!(
            f.cookies, r.cookies,
            "{label}: cookies set differ (left php-fpm, right {name})"
        );
        if f.body != r.body {
            panic!(
                "{label}: body differs (php-fpm vs {name})\n{}",
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

/// Requests sent at once, each by a new client (with `cookies`, if any): with two workers, both
/// answer some of them.
pub(crate) const AT_ONCE: usize = 4;

/// Asks a server the same thing several times at once, each time by a new client carrying
/// the same cookies (none for an app password).
pub(crate) struct Asker<'a> {
    server: &'a Server,
    cookies: BTreeMap<String, String>,
    /// Secrets replaced by placeholders in what is recorded (a share token).
    masks: Vec<(String, String)>,
}

pub(crate) type Ask<'f> = &'f (dyn Fn(&mut Session) -> Answer + Sync);

impl<'a> Asker<'a> {
    pub(crate) fn new(server: &'a Server) -> Asker<'a> {
        Asker::with(server, &Session::new(server))
    }

    /// Clients carrying the cookies `session` has now.
    pub(crate) fn with(server: &'a Server, session: &Session) -> Asker<'a> {
        Asker::carrying(server, session.cookies.clone())
    }

    /// Clients carrying these cookies.
    pub(crate) fn carrying(server: &'a Server, cookies: BTreeMap<String, String>) -> Asker<'a> {
        Asker {
            server,
            cookies,
            masks: Vec::new(),
        }
    }

    /// `secret` recorded as `placeholder`.
    pub(crate) fn masking(mut self, secret: &str, placeholder: &str) -> Asker<'a> {
        self.masks
            .push((secret.to_string(), placeholder.to_string()));
        self
    }

    /// `ask` AT_ONCE times at once.
    pub(crate) fn at_once(&self, ask: Ask) -> Vec<Answer> {
        std::thread::scope(|scope| {
            let asks: Vec<_> = (0..AT_ONCE)
                .map(|_| {
                    scope.spawn(|| {
                        let mut s = Session::new(self.server);
                        s.cookies = self.cookies.clone();
                        ask(&mut s)
                    })
                })
                .collect();
            asks.into_iter().map(|a| a.join().unwrap()).collect()
        })
    }

    /// Three rounds of `ask` at once: every answer has `status` (every worker agrees), and the
    /// first of each round is recorded (with the cookies any of them set). Returns the last
    /// round's answers.
    pub(crate) fn rounds(
        &self,
        rec: &mut Record,
        label: &str,
        status: u16,
        ask: Ask,
    ) -> Vec<Answer> {
        let server = self.server;
        let masks: Vec<(&str, &str)> = self
            .masks
            .iter()
            .map(|(s, p)| (s.as_str(), p.as_str()))
            .collect();
        let mut last = Vec::new();
        for round in 0..3 {
            let answers = self.at_once(ask);
            for a in &answers {
                expect(server, &format!("#{round} {label}"), a, status);
            }
            let first = &answers[0];
            let html = first
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/html"));
            let mut seen = if status == 200 && first.body.starts_with(b"{") {
                user_seen(first, server)
            } else if html {
                page_seen(first, server)
            } else {
                seen(first, server, &masks)
            };
            seen.body = normalize(&seen.body, server, &masks);
            // Clients sharing one session race for the cookie its first use sets (only one
            // gets it, on php-fpm too): the round sets the cookies any of its answers set.
            seen.cookies = answers.iter().flat_map(Answer::cookie_names).collect();
            seen.cookies.sort();
            seen.cookies.dedup();
            for values in seen.headers.values_mut() {
                for v in values.iter_mut() {
                    *v = normalize(v, server, &masks);
                }
            }
            rec.push(&format!("#{round} {label}"), seen);
            last = answers;
        }
        last
    }

    /// Asks until every answer of a round has `status`, then three more rounds (`rounds`).
    /// For a change made by occ, in its own process: Nextcloud's token cache in the servers'
    /// APCu keeps a token it has seen for up to 10 s, under php-fpm too.
    pub(crate) fn rounds_once_seen(
        &self,
        rec: &mut Record,
        label: &str,
        status: u16,
        ask: Ask,
    ) -> Vec<Answer> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let statuses: Vec<u16> = self.at_once(ask).iter().map(|a| a.status).collect();
            if statuses.iter().all(|s| *s == status) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {label}: {statuses:?} 30 s after the change, not {status}\n{}",
                self.server.name(),
                self.server.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        self.rounds(rec, label, status, ask)
    }
}
