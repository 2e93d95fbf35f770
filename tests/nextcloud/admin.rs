//! Changes an admin makes while the servers run (occ from another process): app settings,
//! passwords, new users.

use crate::client::{basic, seen, Seen, Session};
use crate::harness::{Install, Server, User};
use crate::login::{browser_login, path_of, submit_login, user_seen};
use crate::scenario::{compare, dav, expect, propfind, HTML, OCS};
use std::time::{Duration, Instant};

/// Runs `occ` on the install (as the tests' user, with APCu as the servers have it).
pub(crate) fn occ(install: &Install, args: &[&str]) {
    occ_with_env(install, &[], args);
}

/// Puts `shareapi_allow_links` back to `yes` however the test ends.
struct LinksAllowed<'a>(&'a Install);

impl Drop for LinksAllowed<'_> {
    fn drop(&mut self) {
        occ(
            self.0,
            &[
                "config:app:set",
                "core",
                "shareapi_allow_links",
                "--value=yes",
            ],
        );
    }
}

/// An admin setting changed while the servers run (here with occ, from another process) is
/// seen by the next requests once Nextcloud's local cache of the app config expires (3 s), as
/// under php-fpm: a worker does not keep serving the settings it booted with.
#[test]
fn app_config_change_is_seen() {
    let (_g, install) = install_or_skip!();
    let alice = install.user("alice");
    let auth = basic(&alice.name, &alice.app_password);
    let links = |server: &Server| -> bool {
        let a = Session::new(server).get(
            "/ocs/v2.php/cloud/capabilities?format=json",
            &[OCS, ("Authorization", &auth)],
        );
        expect(server, "capabilities", &a, 200);
        a.json()["ocs"]["data"]["capabilities"]["files_sharing"]["public"]["enabled"]
            .as_bool()
            .unwrap_or_else(|| panic!("{}: no files_sharing.public.enabled", server.name()))
    };
    let fpm = Server::fpm(&install, 1);
    let rr = Server::rr(&install, 1);
    let _restore = LinksAllowed(&install);
    for server in [&fpm, &rr] {
        // Several requests first: the worker has served with the setting loaded.
        for _ in 0..3 {
            assert!(links(server), "{}: public links off before", server.name());
        }
    }
    for (value, expected) in [("no", false), ("yes", true)] {
        occ(
            &install,
            &[
                "config:app:set",
                "core",
                "shareapi_allow_links",
                &format!("--value={value}"),
            ],
        );
        for server in [&fpm, &rr] {
            let deadline = Instant::now() + Duration::from_secs(15);
            while links(server) != expected {
                assert!(
                    Instant::now() < deadline,
                    "{}: shareapi_allow_links={value} not seen after 15 s",
                    server.name()
                );
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

/// occ with `OC_PASS` set, for its `--password-from-env` options; what it printed.
pub(crate) fn occ_with_password(install: &Install, password: &str, args: &[&str]) -> String {
    occ_with_env(install, &[("OC_PASS", password)], args)
}

/// `occ` with these variables added to its environment; what it printed. Fails the test when
/// occ fails.
pub(crate) fn occ_with_env(install: &Install, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = occ_output(install, env, args);
    assert!(
        out.status.success(),
        "occ {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `occ` for cleaning up: what it printed is not looked at, and a failure is no error (what it
/// removes may be gone already).
pub(crate) fn occ_quietly(install: &Install, args: &[&str]) {
    occ_output(install, &[], args);
}

fn occ_output(install: &Install, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    std::process::Command::new("php")
        .args(["-d", "apc.enable_cli=1", "occ", "--no-interaction"])
        .args(args)
        .envs(env.iter().copied())
        .current_dir(&install.root)
        .output()
        .expect("php runs occ")
}

/// A user added for one test, deleted (with its tokens) however the test ends (a test that
/// deleted it already leaves nothing to do).
pub(crate) struct ThrowawayUser<'a>(pub(crate) &'a Install, pub(crate) String);

impl ThrowawayUser<'_> {
    /// Adds the user `name` with `password`.
    pub(crate) fn add<'a>(install: &'a Install, name: &str, password: &str) -> ThrowawayUser<'a> {
        occ_with_password(
            install,
            password,
            &["user:add", "--password-from-env", name],
        );
        ThrowawayUser(install, name.to_string())
    }

    /// A new app password of this user (`occ user:auth-tokens:add`), whose login password is
    /// `password`.
    pub(crate) fn app_password(&self, password: &str) -> String {
        let out = occ_with_password(
            self.0,
            password,
            &["user:auth-tokens:add", "--password-from-env", &self.1],
        );
        out.lines()
            .skip_while(|l| !l.starts_with("app password:"))
            .nth(1)
            .unwrap_or_else(|| panic!("no app password in: {out}"))
            .trim()
            .to_string()
    }
}

impl Drop for ThrowawayUser<'_> {
    fn drop(&mut self) {
        occ_quietly(self.0, &["user:delete", &self.1]);
    }
}

/// The login password an app password stands for changes: the user's password is reset, and a
/// login with the new one makes Nextcloud re-encrypt every token's copy. rr remembers each
/// app password's decrypted copy sealed (RR\Nextcloud\TokenPasswords), keyed by the token and
/// its row; the harness runs rr with NEXTCLOUD_VERIFY_KEPT=1, which decrypts again on every
/// answer from that memo and fails the request (500) on a difference. So a memo that served
/// the old password for the changed row fails here.
#[test]
fn app_password_follows_a_password_change() {
    let (_g, install) = install_or_skip!();
    let name = format!("rr-pwchange-{}", std::process::id());
    let (first, second) = ("Rr-first-Passw0rd-2026!", "Rr-second-Passw0rd-2026?");
    let user = ThrowawayUser::add(&install, &name, first);
    let app_password = user.app_password(first);
    let app = basic(&name, &app_password);
    let home = dav(&name, "/");
    let fpm = Server::fpm(&install, 1);
    // One worker: every request meets what the ones before left in its memo.
    let rr = Server::rr(&install, 1);
    let listings = |what: &str| {
        for server in [&fpm, &rr] {
            for _ in 0..3 {
                // A new client each time: no session cookie, so each request logs in.
                let a = propfind(&mut Session::new(server), &app, &home);
                expect(server, what, &a, 207);
            }
        }
    };
    listings("PROPFIND with the app password");
    occ_with_password(
        &install,
        second,
        &["user:resetpassword", "--password-from-env", &name],
    );
    let a = propfind(&mut Session::new(&rr), &basic(&name, second), &home);
    expect(&rr, "PROPFIND with the new login password", &a, 207);
    listings("PROPFIND with the app password after the password change");
}

/// A user's password is reset while the servers run: a worker that checked the old one before
/// takes the new one and refuses the old one at once, as php-fpm does. (The user backend keeps
/// the user rows it loaded, password hashes included; rr puts them back after each request.)
/// And a login name that did not exist when a worker first looked it up can log in once the
/// user is added; a disabled user is refused at once, and let in again once enabled.
#[test]
fn password_reset_and_new_user_are_seen_by_running_workers() {
    let (_g, install) = install_or_skip!();
    let name = format!("rr-reset-{}", std::process::id());
    let (first, second) = ("Rr-first-Passw0rd-2026!", "Rr-second-Passw0rd-2026?");
    let home = dav(&name, "/");
    let fpm = Server::fpm(&install, 1);
    // One worker: it has looked up the user before each change.
    let rr = Server::rr(&install, 1);
    let status = |server: &Server, password: &str| -> u16 {
        propfind(&mut Session::new(server), &basic(&name, password), &home).status
    };
    for server in [&fpm, &rr] {
        assert_eq!(
            status(server, first),
            401,
            "{}: before the user exists",
            server.name()
        );
    }
    occ_with_password(&install, first, &["user:add", "--password-from-env", &name]);
    let _user = ThrowawayUser(&install, name.clone());
    for server in [&fpm, &rr] {
        for _ in 0..3 {
            assert_eq!(
                status(server, first),
                207,
                "{}: the new user\n{}",
                server.name(),
                server.logs()
            );
        }
    }
    occ_with_password(
        &install,
        second,
        &["user:resetpassword", "--password-from-env", &name],
    );
    for server in [&fpm, &rr] {
        assert_eq!(
            status(server, second),
            207,
            "{}: the new password\n{}",
            server.name(),
            server.logs()
        );
        assert_eq!(
            status(server, first),
            401,
            "{}: the old password\n{}",
            server.name(),
            server.logs()
        );
    }
    // Disabled, then enabled again: refused at once (php-fpm answers 503), then let in again.
    occ(&install, &["user:disable", &name]);
    let refused = status(&fpm, second);
    assert!(refused >= 400, "php-fpm let a disabled user in: {refused}");
    assert_eq!(
        status(&rr, second),
        refused,
        "rr: a disabled user\n{}",
        rr.logs()
    );
    occ(&install, &["user:enable", &name]);
    for server in [&fpm, &rr] {
        assert_eq!(
            status(server, second),
            207,
            "{}: enabled again\n{}",
            server.name(),
            server.logs()
        );
    }
}

/// Turns two-factor enforcement off again however the test ends.
struct TwoFactorNotEnforced<'a>(&'a Install);

impl Drop for TwoFactorNotEnforced<'_> {
    fn drop(&mut self) {
        occ(self.0, &["twofactorauth:enforce", "--off"]);
    }
}

/// A browser login up to the answer of POST /login: the session and the path it sends to.
fn post_login<'a>(server: &'a Server, user: &User) -> (Session<'a>, String) {
    let (s, _, a) = submit_login(server, user);
    let to = path_of(&a.header("location").unwrap_or_default());
    (s, to)
}

/// Logs alice in until her login is sent to `wanted` (a setting written to config.php by occ
/// reaches php-fpm at its next request; a worker must not keep the value it booted with).
fn login_until<'a>(server: &'a Server, user: &User, wanted: &str) -> Session<'a> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, to) = post_login(server, user);
        if to.starts_with(wanted) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{}: a login still goes to {to} 15 s after the change, not {wanted}\n{}",
            server.name(),
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// An admin enforces two-factor authentication while the servers run (`occ
/// twofactorauth:enforce`, which writes config.php): the next logins on ONE worker that has
/// served before must stop at the second factor, and the half-logged-in session must reach
/// nothing, as under php-fpm; turned off again, logins go straight through. A worker serving
/// the config.php it booted with let every login skip the second factor.
#[test]
fn two_factor_enforced_while_running() {
    let (_g, install) = install_or_skip!();
    compare(&install, 1, |install, server, rec| {
        let (alice, bob) = (install.user("alice"), install.user("bob"));
        let (mut bob_session, _) = browser_login(server, &bob, rec, "bob before");
        let _off = TwoFactorNotEnforced(install);
        occ(install, &["twofactorauth:enforce", "--on"]);
        let mut half = login_until(server, &alice, "/login/selectchallenge");
        rec.push(
            "alice's login stops at the second factor",
            Seen {
                status: 303,
                headers: Default::default(),
                cookies: vec![],
                body: String::new(),
            },
        );
        for round in 0..2 {
            let a = half.get("/ocs/v2.php/cloud/user?format=json", &[OCS]);
            assert_ne!(
                a.status,
                200,
                "{}: cloud/user without the second factor",
                server.name()
            );
            rec.push(
                &format!("#{round} cloud/user without the second factor"),
                seen(&a, server, &[]),
            );
            let a = half.get("/apps/files/", &[HTML]);
            expect(server, "the files app without the second factor", &a, 303);
            assert!(
                path_of(&a.header("location").unwrap_or_default())
                    .starts_with("/login/selectchallenge"),
                "{}: the files app without the second factor",
                server.name()
            );
            rec.push(
                &format!("#{round} files app without the second factor"),
                seen(&a, server, &[]),
            );
            let a = half.send(
                "PROPFIND",
                &dav("alice", "/"),
                &[("Depth", "0")],
                Vec::new(),
            );
            expect(server, "PROPFIND without the second factor", &a, 401);
            rec.push(
                &format!("#{round} PROPFIND without the second factor"),
                seen(&a, server, &[]),
            );
            // bob's session from before the change is left as it was, as under php-fpm.
            let a = bob_session.get("/ocs/v2.php/cloud/user?format=json", &[OCS]);
            expect(server, "bob's earlier session", &a, 200);
            rec.push(
                &format!("#{round} bob's earlier session"),
                user_seen(&a, server),
            );
        }
        occ(install, &["twofactorauth:enforce", "--off"]);
        let mut s = login_until(server, &alice, "/apps/");
        let a = s.get("/ocs/v2.php/cloud/user?format=json", &[OCS]);
        expect(server, "alice after the change back", &a, 200);
        rec.push(
            "alice logs in without a second factor again",
            user_seen(&a, server),
        );
    });
}

/// Turns maintenance mode off again however the test ends.
struct NotInMaintenance<'a>(&'a Install);

impl Drop for NotInMaintenance<'_> {
    fn drop(&mut self) {
        occ(self.0, &["maintenance:mode", "--off"]);
    }
}

/// Maintenance mode switched on while the servers run (`occ maintenance:mode --on`, as before
/// an upgrade; it writes config.php): ONE worker that has served before answers 503 to the
/// next WebDAV request and says so in status.php, as php-fpm does, instead of going on reading
/// and writing files under the upgrade; switched off, it serves again.
#[test]
fn maintenance_mode_while_running() {
    let (_g, install) = install_or_skip!();
    let alice = install.user("alice");
    let auth = basic(&alice.name, &alice.app_password);
    let fpm = Server::fpm(&install, 1);
    let rr = Server::rr(&install, 1);
    let maintenance = |server: &Server| -> bool {
        let a = Session::new(server).get("/status.php", &[]);
        expect(server, "status.php", &a, 200);
        a.json()["maintenance"]
            .as_bool()
            .unwrap_or_else(|| panic!("{}: no maintenance in status.php", server.name()))
    };
    for server in [&fpm, &rr] {
        let a = propfind(&mut Session::new(server), &auth, &dav(&alice.name, "/"));
        expect(server, "PROPFIND before", &a, 207);
        assert!(
            !maintenance(server),
            "{}: in maintenance before",
            server.name()
        );
    }
    let _off = NotInMaintenance(&install);
    for (switch, on) in [("--on", true), ("--off", false)] {
        occ(&install, &["maintenance:mode", switch]);
        for server in [&fpm, &rr] {
            let deadline = Instant::now() + Duration::from_secs(15);
            while maintenance(server) != on {
                assert!(
                    Instant::now() < deadline,
                    "{}: maintenance:mode {switch} not seen after 15 s",
                    server.name()
                );
                std::thread::sleep(Duration::from_millis(250));
            }
            let a = propfind(&mut Session::new(server), &auth, &dav(&alice.name, "/"));
            expect(
                server,
                &format!("PROPFIND after maintenance:mode {switch}"),
                &a,
                if on { 503 } else { 207 },
            );
        }
    }
}

/// Enables an app again however the test ends.
struct AppEnabled<'a>(&'a Install, &'static str);

impl Drop for AppEnabled<'_> {
    fn drop(&mut self) {
        occ(self.0, &["app:enable", self.1]);
    }
}

/// An app disabled while the servers run (`occ app:disable`, as the Apps page does): php-fpm
/// stops serving its routes once its local cache of the app config expires (3 s). Every rr
/// worker booted with the app loaded and its routes known; one that sees the enabled apps
/// change asks the pool for a reload (RR\Nextcloud\InstallState, RR\Worker::reload()), so
/// within seconds no worker serves the route any more. php-fpm answers 500 (its route cache in
/// APCu, kept an hour and keyed by the installed versions, still routes to the disabled app,
/// whose controller cannot be loaded); rr's new generation boots with a fresh APCu and knows no
/// such route: 404. Enabled again, both serve it again. With the shipped rr.yaml (template
/// mode), two workers, each asked in every round.
#[test]
fn app_disabled_while_running() {
    let (_g, install) = install_or_skip!();
    let alice = install.user("alice");
    let auth = basic(&alice.name, &alice.app_password);
    let path = "/ocs/v2.php/apps/weather_status/api/v1/location?format=json";
    let fpm = Server::fpm(&install, 1);
    let rr = Server::rr(&install, 2);
    // The statuses of 4 requests at once (every worker gets one).
    let round = |server: &Server| -> Vec<u16> {
        std::thread::scope(|s| {
            let asks: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let headers = [OCS, ("Authorization", auth.as_str())];
                        Session::new(server).get(path, &headers).status
                    })
                })
                .collect();
            asks.into_iter().map(|a| a.join().unwrap()).collect()
        })
    };
    for server in [&fpm, &rr] {
        for _ in 0..3 {
            assert_eq!(round(server), [200; 4], "{}: before", server.name());
        }
    }
    let _enabled = AppEnabled(&install, "weather_status");
    for (switch, served) in [("app:disable", false), ("app:enable", true)] {
        occ(&install, &[switch, "weather_status"]);
        // php-fpm too sees it once Nextcloud's local cache of the app config expires (3 s).
        let deadline = Instant::now() + Duration::from_secs(15);
        let fpm_status = loop {
            let status = Session::new(&fpm)
                .get(path, &[OCS, ("Authorization", &auth)])
                .status;
            if (status == 200) == served {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "php-fpm after {switch}: {status} after 15 s"
            );
            std::thread::sleep(Duration::from_millis(250));
        };
        let expected = if served { 200 } else { 404 };
        let started = Instant::now();
        let deadline = started + Duration::from_secs(120);
        loop {
            let statuses = round(&rr);
            if statuses.iter().all(|s| *s == expected) {
                eprintln!(
                    "rr after {switch}: {expected} after {:?}",
                    started.elapsed()
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "rr after {switch}: {statuses:?} after 120 s, php-fpm {fpm_status}\n{}",
                rr.stderr()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        // No worker is left serving the app as before.
        for _ in 0..5 {
            assert_eq!(round(&rr), [expected; 4], "rr after {switch}");
        }
    }
}

/// Puts an app's installed version back however the test ends.
struct AppVersion<'a>(&'a Install, &'static str, String);

impl Drop for AppVersion<'_> {
    fn drop(&mut self) {
        occ(
            self.0,
            &[
                "config:app:set",
                self.1,
                "installed_version",
                "--value",
                &self.2,
            ],
        );
    }
}

/// An app updated while the servers run (`occ app:update`, the updater, `occ upgrade`: new code
/// on disk, the database migrated, then the app's `installed_version` in the app config).
/// php-fpm runs the new code within opcache.revalidate_freq; an rr worker would go on running
/// the classes it booted with against the migrated database. One that sees an installed
/// version change asks the pool for a reload (RR\Nextcloud\InstallState, at most a second after
/// a request), and the reload replaces every worker with one booted from what is on disk now
/// (tests/pool.rs `a_reload_serves_the_code_deployed_since_the_boot_with_opcache_on`). This
/// machine has no app store to update from, so the update is its last step: the version in the
/// app config. No request fails meanwhile. With the shipped rr.yaml (template mode), two workers.
#[test]
fn app_updated_while_running() {
    let (_g, install) = install_or_skip!();
    let app = "weather_status";
    let version = occ_with_env(&install, &[], &["config:app:get", app, "installed_version"])
        .trim()
        .to_owned();
    assert!(!version.is_empty(), "{app} has no installed_version");
    let rr = Server::rr(&install, 2);
    let _restore = AppVersion(&install, app, version.clone());
    reloads_by_itself(&rr, "", || {
        occ(
            &install,
            &[
                "config:app:set",
                app,
                "installed_version",
                "--value",
                "99.0.0",
            ],
        );
        format!("installed_version of {app}: '{version}' -> '99.0.0'")
    });
}

/// Removes a config.php key however the test ends.
struct SystemKey<'a>(&'a Install, &'static str);

impl Drop for SystemKey<'_> {
    fn drop(&mut self) {
        occ(self.0, &["config:system:delete", self.1]);
    }
}

/// A config.php value changed while the servers run (`occ config:system:set`, an edit): a value
/// Nextcloud reads at every request applies at once (ConfigFiles, `two_factor_enforced_while_running`),
/// but the connections and caches a worker built at boot (a new database password, a new
/// Redis host) would stay the boot's; so a worker that sees config.php's values differ from
/// its boot's asks the pool for a reload, and says which keys changed without their values (a
/// password may be one). No request fails meanwhile.
#[test]
fn config_change_reloads_the_pool_without_logging_values() {
    let (_g, install) = install_or_skip!();
    let key = "rr_test_reload_marker";
    let value = format!("not-in-any-log-{}", std::process::id());
    let rr = Server::rr(&install, 2);
    let _restore = SystemKey(&install, key);
    reloads_by_itself(&rr, &value, || {
        occ(&install, &["config:system:set", key, "--value", &value]);
        format!("config.php: {key}")
    });
}

/// Statuses of 4 status.php requests at once (every worker gets one).
fn status_round(rr: &Server) -> Vec<u16> {
    std::thread::scope(|s| {
        let asks: Vec<_> = (0..4)
            .map(|_| s.spawn(|| Session::new(rr).get("/status.php", &[]).status))
            .collect();
        asks.into_iter().map(|a| a.join().unwrap()).collect()
    })
}

/// Runs `change` (which returns how the worker's log line names it) while rr serves, then asks
/// until both workers were replaced by a reload: every answer meanwhile is a 200, the log names
/// the change, and `secret` (when not empty) appears nowhere in it.
fn reloads_by_itself(rr: &Server, secret: &str, change: impl FnOnce() -> String) {
    for _ in 0..3 {
        assert_eq!(status_round(rr), [200; 4], "before");
    }
    let before = rr.stderr();
    assert!(!before.contains("asking the pool for a reload"), "{before}");
    let why = change();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    loop {
        assert_eq!(status_round(rr), [200; 4], "while the workers are replaced");
        let log = rr.stderr();
        let reloads = log
            .lines()
            .filter(|l| l.contains("replacing worker") && l.contains("reason=\"reload\""))
            .count();
        if reloads >= 2 {
            assert!(log.contains(&why), "no line says {why}:\n{log}");
            assert!(
                secret.is_empty() || !log.contains(secret),
                "{secret} logged:\n{log}"
            );
            eprintln!(
                "rr after {why}: both workers replaced after {:?}",
                started.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rr: {reloads} workers replaced after 120 s\n{log}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for _ in 0..3 {
        assert_eq!(status_round(rr), [200; 4], "after");
    }
}
