//! The ini settings a request changes (`ini_set()` and the functions that set one:
//! `error_reporting()`, `set_include_path()`, `set_time_limit()`, `session_name()`,
//! `session_set_save_handler()`, ...) are put back after it to what they were when it began, as
//! php-fpm's request end restores every entry its request modified. The worker's own changes,
//! made before or between `handle()` calls, stay.
//!
//! Zend lists every entry changed since the process started in `EG(modified_ini_directives)`
//! (each keeping its php.ini value): only that list is read, so with a worker that changed
//! nothing a request costs one pointer test; otherwise a look at the few entries in it.
use super::ffi::{self, eg};
use ext_php_rs::ffi::{zend_ini_entry, HashTable};
use std::ops::Range;

/// Which entries a restore covers: the session module's are put back between its request
/// shutdown and startup, the rest after the answer went out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Session,
    Rest,
}

/// The modified entries as a request began, with their values then.
#[derive(Default)]
pub struct Directives {
    /// Each entry (alive for the process) and where its value was copied into `values`
    /// (None: no value).
    marked: Vec<(*mut zend_ini_entry, Option<Range<usize>>)>,
    values: Vec<u8>,
    /// Entries the request modified first, gathered before they are restored (reused).
    fresh: Vec<*mut zend_ini_entry>,
}

/// The modified-entries table, None when nothing was ever changed.
fn modified() -> Option<&'static HashTable> {
    // SAFETY: PHP thread; a plain read of an executor global that is NULL or a live table.
    unsafe { (*eg()).modified_ini_directives.as_ref() }
}

/// The entries of a table of `zend_ini_entry` pointers (zvals of type IS_PTR).
fn entries(table: &HashTable) -> impl Iterator<Item = *mut zend_ini_entry> + '_ {
    // SAFETY: the values of EG(modified_ini_directives) are IS_PTR zvals to ini entries.
    table
        .values()
        .map(|zv| unsafe { zv.value.ptr.cast::<zend_ini_entry>() })
}

/// The value of a live entry as bytes, None for NULL.
///
/// # Safety
/// `entry` is a live ini entry; the slice is used before the entry changes again.
unsafe fn value<'a>(entry: *mut zend_ini_entry) -> Option<&'a [u8]> {
    // SAFETY: per the contract; `val` holds `len` bytes.
    unsafe {
        (*entry)
            .value
            .as_ref()
            .map(|s| std::slice::from_raw_parts(s.val.as_ptr().cast::<u8>(), s.len))
    }
}

/// Whether `entry` belongs to `scope`.
///
/// # Safety
/// `entry` is a live ini entry.
unsafe fn in_scope(entry: *mut zend_ini_entry, scope: Scope) -> bool {
    // SAFETY: per the contract; an entry's name is a live zend_string.
    let session = unsafe {
        (*entry).name.as_ref().is_some_and(|n| {
            std::slice::from_raw_parts(n.val.as_ptr().cast::<u8>(), n.len).starts_with(b"session.")
        })
    };
    session == (scope == Scope::Session)
}

impl Directives {
    /// Notes the entries modified so far and their values: call as the request begins.
    pub fn mark(&mut self) {
        self.marked.clear();
        self.values.clear();
        let Some(table) = modified() else { return };
        for entry in entries(table) {
            // SAFETY: PHP thread; the entry is alive (entries live as long as the process).
            let range = unsafe { value(entry) }.map(|v| {
                let start = self.values.len();
                self.values.extend_from_slice(v);
                start..self.values.len()
            });
            self.marked.push((entry, range));
        }
    }

    /// Puts back the entries of `scope` the request changed: those it modified first to their
    /// php.ini value (as PHP's request end does), the others to their value when it began.
    pub fn restore(&mut self, scope: Scope) {
        if let Some(table) = modified() {
            self.fresh.clear();
            for entry in entries(table) {
                // SAFETY: PHP thread; a live entry.
                if unsafe { in_scope(entry, scope) } && !self.marked.iter().any(|m| m.0 == entry) {
                    self.fresh.push(entry);
                }
            }
            for &entry in &self.fresh {
                // SAFETY: PHP thread, no PHP code running; PHP's own restore of one entry (its
                // on_modify with the php.ini value, then out of the table), with the entry's
                // own name.
                unsafe {
                    ffi::zend_restore_ini_entry((*entry).name, ffi::ZEND_INI_STAGE_DEACTIVATE);
                }
            }
        }
        for (entry, range) in &self.marked {
            let Some(range) = range else { continue };
            let then = &self.values[range.clone()];
            // SAFETY: PHP thread; a live entry whose name is its own zend_string; the value
            // is copied by PHP before it returns.
            unsafe {
                if !in_scope(*entry, scope) || value(*entry) == Some(then) {
                    continue;
                }
                ffi::zend_alter_ini_entry_chars(
                    (**entry).name,
                    then.as_ptr().cast(),
                    then.len(),
                    ffi::ZEND_INI_SYSTEM,
                    ffi::ZEND_INI_STAGE_DEACTIVATE,
                );
            }
        }
    }
}
