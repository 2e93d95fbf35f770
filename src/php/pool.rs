//! `RR\workers()`: the pool's worker processes, from a worker (asked of the master over the
//! channel) or from the master itself.
use super::convert::{self, PhpArray};
use super::worker::with_engine;
use ext_php_rs::builders::ModuleBuilder;
use ext_php_rs::prelude::*;
use ext_php_rs::types::ZendHashTable;

/// The pool's worker processes: `pid`, `state` (booting, idle, busy, stopping), `jobs` done,
/// resident `memory` in bytes, `age` in seconds, and the worker's number `id`. Empty when
/// rr runs without a pool (`http.pool.num_workers` 0).
///
/// @return list<array{id: int, pid: int, state: string, jobs: int, memory: int, age: float}>
/// @throws \RR\Exception when no RR\Worker was started in this process
#[php_function]
#[php(name = "RR\\workers")]
pub fn workers() -> PhpResult<PhpArray> {
    let list = with_engine("RR\\workers", |engine| Ok(engine.workers()))?;
    let mut out = ZendHashTable::with_capacity(list.len() as u32);
    for w in list {
        let mut row = ZendHashTable::with_capacity(6);
        let _ = row.insert("id", w.id as i64);
        let _ = row.insert("pid", i64::from(w.pid));
        let _ = row.insert("state", w.state.as_str());
        let _ = row.insert("jobs", w.jobs as i64);
        let _ = row.insert("memory", w.memory as i64);
        let _ = row.insert("age", w.age_seconds);
        let _ = out.push(convert::array_zval(row));
    }
    Ok(PhpArray(convert::array_zval(out)))
}

/// Adds the functions of this file to the module.
pub fn register(module: ModuleBuilder) -> ModuleBuilder {
    module.function(wrap_function!(workers))
}
