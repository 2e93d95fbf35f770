//! php.ini entries (`rr.*`) and how they become configuration overrides.
use crate::config::Override;
use ext_php_rs::flags::IniEntryPermission;
use ext_php_rs::types::ZendHashTable;
use ext_php_rs::zend::{ExecutorGlobals, IniEntryDef, IniEntryDefs};

extern "C" {
    /// Every php.ini and `-d` setting as given, whether an extension declared it or not
    /// (main/php_ini.h).
    fn php_ini_get_configuration_hash() -> *mut ZendHashTable;
}

/// ini name, the config key it overrides (None: not a config key), and what it means.
pub const ENTRIES: [(&str, Option<&str>, &str); 8] = [
    ("rr.config", None, "path of the .rr.yaml file"),
    (
        "rr.address",
        Some("http.address"),
        "listen address, overrides http.address",
    ),
    (
        "rr.io_driver",
        Some("http.io_driver"),
        "hybrid, inline or thread, overrides http.io_driver",
    ),
    (
        "rr.log_level",
        Some("logs.level"),
        "error, warn, info, debug or trace, overrides logs.level",
    ),
    (
        "rr.access_logs",
        Some("http.access_logs"),
        "on/off, overrides http.access_logs",
    ),
    (
        "rr.debug_leaks",
        None,
        "on/off: after each handle() request, log globals and static properties that changed",
    ),
    (
        "rr.cycles",
        None,
        "request (default) or between: when handle() destroys a request's objects caught in reference cycles",
    ),
    (
        "rr.sapi_name",
        None,
        "what php_sapi_name() reports (e.g. fpm-fcgi); empty keeps cli; php.ini or -d only",
    ),
];

static INI: IniEntryDefs<9> = IniEntryDefs::new([
    IniEntryDef::new(c"rr.config", c"", IniEntryPermission::All),
    IniEntryDef::new(c"rr.address", c"", IniEntryPermission::All),
    IniEntryDef::new(c"rr.io_driver", c"", IniEntryPermission::All),
    IniEntryDef::new(c"rr.log_level", c"", IniEntryPermission::All),
    IniEntryDef::new(c"rr.access_logs", c"", IniEntryPermission::All),
    IniEntryDef::new(c"rr.debug_leaks", c"0", IniEntryPermission::All),
    IniEntryDef::new(c"rr.cycles", c"request", IniEntryPermission::All),
    // Read once at module startup: changing it later could not take effect.
    IniEntryDef::new(c"rr.sapi_name", c"", IniEntryPermission::System),
    IniEntryDef::end(),
]);

pub fn register(module_number: i32) {
    IniEntryDef::register(INI.as_slice(), module_number);
}

/// The non-empty `rr.*` values: the config file path and the overrides.
pub fn read() -> (Option<String>, Vec<Override>) {
    let values = ExecutorGlobals::get().ini_values();
    let get = |name: &str| {
        values
            .get(name)
            .cloned()
            .flatten()
            .filter(|v| !v.is_empty())
    };
    let file = get("rr.config");
    let overrides = ENTRIES
        .iter()
        .filter_map(|(name, key, _)| {
            let key = (*key)?;
            let value = get(name)?;
            Some(Override {
                origin: format!("ini {name}"),
                key: key.to_string(),
                value: serde_json::Value::String(value),
            })
        })
        .collect();
    (file, overrides)
}

/// The first `rr.*` setting of php.ini or `-d` that is not one of rr's (sorted), as a
/// configuration error naming it.
pub fn check_names() -> Result<(), crate::config::ConfigError> {
    // SAFETY: the configuration hash is built at startup, before any extension loads, and
    // lives until the process ends; we only read its keys, on the PHP thread.
    let Some(table) = (unsafe { php_ini_get_configuration_hash().as_ref() }) else {
        return Ok(());
    };
    let known: Vec<&str> = ENTRIES.iter().map(|(name, _, _)| *name).collect();
    let mut unknown: Vec<String> = table
        .iter()
        .map(|(key, _)| key.to_string())
        .filter(|name| name.starts_with("rr.") && !known.contains(&name.as_str()))
        .collect();
    unknown.sort();
    match unknown.first() {
        Some(name) => Err(crate::config::unknown_ini(name, &known)),
        None => Ok(()),
    }
}

/// `rr.debug_leaks`, read when a worker handles its first request.
pub fn debug_leaks() -> bool {
    matches!(
        value("rr.debug_leaks").to_ascii_lowercase().as_str(),
        "1" | "on" | "yes" | "true"
    )
}

/// `rr.cycles`: when `RR\Worker::handle()` destroys a request's objects caught in reference
/// cycles (docs/superglobals.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cycles {
    /// At the request's end, as php-fpm does: a walk of what the request touched, every request.
    Request,
    /// Never while a request runs; between requests, once PHP's collector would have run.
    Between,
}

/// `rr.cycles`, read when a worker handles its first request; an error naming the value when it
/// is neither `request` nor `between`.
pub fn cycles() -> Result<Cycles, String> {
    let value = value("rr.cycles");
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "request" => Ok(Cycles::Request),
        "between" => Ok(Cycles::Between),
        _ => Err(format!(
            "rr.cycles = {value:?}: expected request (the default) or between"
        )),
    }
}

/// `rr.sapi_name`, read at module startup (empty: keep the SAPI's own name).
pub fn sapi_name() -> String {
    value("rr.sapi_name")
}

/// One ini entry's current value; empty when it has none.
fn value(name: &str) -> String {
    ExecutorGlobals::get()
        .ini_values()
        .get(name)
        .cloned()
        .flatten()
        .unwrap_or_default()
}
