//! `rr.debug_leaks`: after each request, global variables and static properties of user
//! classes are compared with what they were after boot, and every difference is logged. Under
//! php-fpm such state dies with the request; in a worker it is what the next user would see.
use super::ffi::{self, eg};
use ext_php_rs::ffi::{zend_class_entry, zend_property_info};
use ext_php_rs::types::{ZendHashTable, ZendStr, Zval};
use std::cell::{Cell, RefCell};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// Entries looked at per value: a huge cache must not make every request slow.
const BUDGET: usize = 20_000;
const MAX_DEPTH: u32 = 8;
/// Globals that are the request itself, or PHP's own.
const SKIP: [&str; 11] = [
    "GLOBALS", "_SERVER", "_GET", "_POST", "_COOKIE", "_FILES", "_REQUEST", "_ENV", "_SESSION",
    "argv", "argc",
];

/// Watched values by name, as fingerprints.
type Values = Vec<(String, u64)>;

pub struct Snapshot {
    seen: RefCell<HashMap<String, u64>>,
    /// How many autoloaders were registered (at boot, then after the last report).
    autoloaders: Cell<usize>,
}

/// `count(spl_autoload_functions())`.
fn autoloaders() -> usize {
    super::settings::call("spl_autoload_functions", vec![])
        .and_then(|v| v.array().map(ZendHashTable::len))
        .unwrap_or(0)
}

fn fingerprint(zv: &Zval) -> u64 {
    let mut h = DefaultHasher::new();
    let mut budget = BUDGET;
    walk(zv, 0, &mut budget, &mut h);
    h.finish()
}

fn walk(zv: &Zval, depth: u32, budget: &mut usize, h: &mut DefaultHasher) {
    if depth > MAX_DEPTH || *budget == 0 {
        return;
    }
    *budget -= 1;
    let zv = zv.reference().unwrap_or(zv);
    std::mem::discriminant(&zv.get_type()).hash(h);
    if let Some(b) = zv.bool() {
        b.hash(h);
    } else if let Some(i) = zv.long() {
        i.hash(h);
    } else if let Some(f) = zv.double() {
        f.to_bits().hash(h);
    } else if let Some(s) = zv.zend_str() {
        s.as_bytes().hash(h);
    } else if let Some(ht) = zv.array() {
        table(ht, depth, budget, h);
    } else if let Some(obj) = zv.object() {
        obj.handle.hash(h);
        obj.get_class_name().unwrap_or_default().hash(h);
        if let Ok(props) = obj.get_properties() {
            table(props, depth, budget, h);
        }
    }
}

fn table(ht: &ZendHashTable, depth: u32, budget: &mut usize, h: &mut DefaultHasher) {
    ht.len().hash(h);
    for (key, value) in ht.iter() {
        key.to_string().hash(h);
        walk(value, depth + 1, budget, h);
    }
}

/// Every watched value now: `$name` for globals, `Class::$name` for static properties. For a
/// class first seen after boot, the baseline is the property's declared default.
fn current() -> (Values, Values) {
    let mut values = Vec::new();
    let mut defaults = Vec::new();
    // SAFETY: PHP thread, between requests; the symbol and class tables are the engine's own.
    let (symbols, classes) = unsafe { (&(*eg()).symbol_table, (*eg()).class_table.as_ref()) };
    for (key, value) in symbols.iter() {
        let name = key.to_string();
        if !SKIP.contains(&name.as_str()) {
            values.push((format!("${name}"), fingerprint(value)));
        }
    }
    for (_, entry) in classes.into_iter().flat_map(ZendHashTable::iter) {
        // SAFETY: class_table values are IS_PTR zvals holding class entries.
        let ce = unsafe { entry.value.ptr.cast::<zend_class_entry>() };
        statics(ce, &mut values, &mut defaults);
    }
    (values, defaults)
}

fn statics(ce: *mut zend_class_entry, values: &mut Values, defaults: &mut Values) {
    // SAFETY: `ce` is a live class entry; properties_info values are IS_PTR zvals holding
    // zend_property_info; reading a static property with fake_scope set is what Reflection
    // does to see private ones. A pending exception (a bad constant expression) is dropped.
    unsafe {
        if (*ce).type_ as u8 != ffi::ZEND_USER_CLASS {
            return;
        }
        let class = (*ce)
            .name
            .as_ref()
            .map(|n| n.as_str().unwrap_or("?").to_owned());
        let class = class.unwrap_or_default();
        // Keys are the plain names; `info.name` is mangled for private and protected ones.
        for (name, info) in (*ce).properties_info.iter() {
            let info = info.value.ptr.cast::<zend_property_info>();
            if (*info).flags & ffi::ZEND_ACC_STATIC == 0 || (*info).ce != ce {
                continue;
            }
            let name = name.to_string();
            let key = format!("{class}::${name}");
            let mut lookup = ZendStr::new(name.as_bytes(), false);
            let default = (*ce)
                .default_static_members_table
                .add((*info).offset as usize);
            if let Some(d) = default.as_ref() {
                defaults.push((key.clone(), fingerprint(d)));
            }
            let scope = (*eg()).fake_scope;
            (*eg()).fake_scope = ce;
            let value = ffi::zend_std_get_static_property(ce, &raw mut *lookup, ffi::BP_VAR_IS);
            (*eg()).fake_scope = scope;
            drop(ext_php_rs::zend::ExecutorGlobals::take_exception());
            if let Some(value) = value.as_ref() {
                values.push((key, fingerprint(value)));
            }
        }
    }
}

impl Snapshot {
    pub fn take() -> Snapshot {
        let (values, _) = current();
        Snapshot {
            seen: RefCell::new(values.into_iter().collect()),
            autoloaders: Cell::new(autoloaders()),
        }
    }

    /// Logs what differs from boot (or from the last report of the same value).
    pub fn compare(&self) {
        // Autoloaders stay registered (Composer's registers once, behind a static guard, and
        // taking it off would break every later request): a growing list is what to report.
        let (before, now) = (self.autoloaders.get(), autoloaders());
        if now > before {
            tracing::warn!(
                "rr.debug_leaks: {} autoloader(s) registered during the request (now {now}): they stay for every later request",
                now - before
            );
        }
        self.autoloaders.set(now);
        let (values, defaults) = current();
        let defaults: HashMap<String, u64> = defaults.into_iter().collect();
        let mut seen = self.seen.borrow_mut();
        let mut present = HashSet::with_capacity(values.len());
        for (key, value) in values {
            present.insert(key.clone());
            let before = seen.get(&key).or_else(|| defaults.get(&key)).copied();
            match before {
                Some(before) if before == value => {}
                Some(_) => tracing::warn!("rr.debug_leaks: {key} changed during the request"),
                None => tracing::warn!("rr.debug_leaks: {key} was created during the request"),
            }
            seen.insert(key, value);
        }
        seen.retain(|key, _| {
            let kept = present.contains(key);
            if !kept {
                tracing::warn!("rr.debug_leaks: {key} was unset during the request");
            }
            kept
        });
    }
}
