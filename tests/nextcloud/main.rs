//! rr against nginx + php-fpm on one real Nextcloud install (RR_NEXTCLOUD_ROOT; see
//! tests/nextcloud/README.md). Every test runs the same requests against both servers, one
//! after the other, asserts what Nextcloud must answer on both, and then that rr's answers match
//! php-fpm's in status, key headers, cookie names and normalised body.
//!
//! The isolation tests run rr with ONE worker and alternate two users on it: nothing of one user
//! (files, session, tokens) may ever reach the other, and a logged-out or anonymous request must
//! get what php-fpm gives it.
//!
//! One module per scenario group; the helpers they share are in scenario.rs (the comparison),
//! login.rs (the browser login), client.rs (HTTP) and harness.rs (the servers).

/// The install and the lock every test holds, or (RR_NEXTCLOUD_ROOT unset) the skip message and return.
macro_rules! install_or_skip {
    () => {
        match crate::scenario::setup() {
            Some(x) => x,
            None => {
                eprintln!("{}", crate::harness::SKIP);
                return;
            }
        }
    };
}

mod admin;
mod basics;
mod client;
mod databases;
mod groupware;
mod harness;
mod isolation;
mod login;
mod ocs;
mod revocation;
mod runtime;
mod scenario;
mod webdav;
