//! `RR\workers()`: the pool's worker processes, from a worker (asked of the master over the
//! channel) or from the master itself; and what a worker forked from the template must not
//! share with its siblings.
use super::convert::{self, PhpArray};
use super::worker::with_engine;
use ext_php_rs::builders::ModuleBuilder;
use ext_php_rs::prelude::*;
use ext_php_rs::types::ZendHashTable;
use std::ffi::{c_int, c_void};

/// The pool's worker processes: `pid`, `state` (booting, idle, busy, stopping), `jobs` done,
/// `memory` in bytes (resident; private with `http.pool.template`), `age` in seconds, the
/// worker's number `id`, and `isolated` (a one-shot worker for `http.pool.isolate` paths).
/// Empty when rr runs without a pool (`http.pool.num_workers` 0).
///
/// @return list<array{id: int, pid: int, state: string, jobs: int, memory: int, age: float, isolated: bool}>
/// @throws \RR\Exception when no RR\Worker was started in this process
#[php_function]
#[php(name = "RR\\workers")]
pub fn workers() -> PhpResult<PhpArray> {
    let list = with_engine("RR\\workers", |engine| Ok(engine.workers()))?;
    let mut out = ZendHashTable::with_capacity(list.len() as u32);
    for w in list {
        let mut row = ZendHashTable::with_capacity(7);
        let _ = row.insert("id", w.id as i64);
        let _ = row.insert("pid", i64::from(w.pid));
        let _ = row.insert("state", w.state.as_str());
        let _ = row.insert("jobs", w.jobs as i64);
        let _ = row.insert("memory", w.memory as i64);
        let _ = row.insert("age", w.age_seconds);
        let _ = row.insert("isolated", w.isolated);
        let _ = out.push(convert::array_zval(row));
    }
    Ok(PhpArray(convert::array_zval(out)))
}

/// The part this process plays: "single" (no pool), "master", "worker" (a pool worker) or
/// "template" (the booted process workers are forked from, before it forks: code run at boot
/// in the template is inherited by every worker).
///
/// @throws \RR\Exception when no RR\Worker was started in this process
#[php_function]
#[php(name = "RR\\role")]
pub fn role() -> PhpResult<&'static str> {
    with_engine("RR\\role", |engine| Ok(engine.role().as_str()))
}

/// Whether this process is a pool worker forked from the template (`http.pool.template`, and
/// the one-shot workers of `http.pool.isolate`): it shares what the template mapped as shared
/// memory before forking (APCu's cache, opcache) with the template's other workers. False for
/// a worker started as a process of its own (`template: false`), the template, the master
/// and a single process.
///
/// @throws \RR\Exception when no RR\Worker was started in this process
#[php_function]
#[php(name = "RR\\forked")]
pub fn forked() -> PhpResult<bool> {
    with_engine("RR\\forked", |engine| Ok(engine.forked()))
}

/// The random extension's globals (ext/random/php_random.h), NTS layout of PHP 8.2, the only
/// version this layout was checked against (8.4 moved the states inline).
#[repr(C)]
struct RandomGlobals {
    combined_lcg: *mut c_void,
    combined_lcg_seeded: bool,
    mt19937: *mut c_void,
    mt19937_seeded: bool,
    random_fd: c_int,
}

extern "C" {
    static mut random_globals: RandomGlobals;
}

/// PHP 8.2's module API number: `RandomGlobals` matches its headers.
const PHP_82_API: u32 = 20220829;

/// In a worker just forked from the template: mark `mt_rand()`'s and `lcg_value()`'s states
/// unseeded, so PHP seeds them again on their next use with its own seeding (CSPRNG bytes for
/// mt19937, time and pid for the combined LCG) and no two workers share a sequence. On another
/// PHP version only `mt_rand()` is re-seeded, through `mt_srand()` without a seed.
pub fn reseed_after_fork() {
    if ext_php_rs::ffi::ZEND_MODULE_API_NO == PHP_82_API {
        // SAFETY: the PHP thread of a single-threaded process (the template checked it before
        // the fork); the layout above is php_random.h's for PHP 8.2, checked just above.
        unsafe {
            let globals = std::ptr::addr_of_mut!(random_globals);
            (*globals).mt19937_seeded = false;
            (*globals).combined_lcg_seeded = false;
        }
        return;
    }
    let reseeded =
        ext_php_rs::types::ZendCallable::try_from_name("mt_srand").and_then(|f| f.try_call(vec![]));
    if let Err(e) = reseeded {
        tracing::warn!("rr pool: could not re-seed mt_rand() in a forked worker: {e:?}");
    }
}

/// Adds the functions of this file to the module.
pub fn register(module: ModuleBuilder) -> ModuleBuilder {
    module
        .function(wrap_function!(workers))
        .function(wrap_function!(role))
        .function(wrap_function!(forked))
}
