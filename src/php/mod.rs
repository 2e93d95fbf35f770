//! The only module that touches ext-php-rs: the `rr` module, its classes, ini entries, hooks.
mod convert;
mod exception;
mod ini;
mod interrupt;
mod kdf;
mod objects;
mod pool;
mod reclass;
mod request;
mod sapi;
mod session;
mod signal;
mod velox;
mod worker;

use ext_php_rs::builders::ModuleBuilder;
use ext_php_rs::prelude::*;
use ext_php_rs::zend::ModuleEntry;
use ext_php_rs::{info_table_end, info_table_row, info_table_start};

extern "C" fn startup(_type: i32, module_number: i32) -> i32 {
    ini::register(module_number);
    sapi::install();
    sapi::rename(&ini::sapi_name());
    0
}

extern "C" fn shutdown(_type: i32, _module_number: i32) -> i32 {
    sapi::uninstall();
    sapi::restore_name();
    0
}

/// Runs before the script: rr watches the functions whose settings `handle()` resets.
extern "C" fn request_startup(_type: i32, _module_number: i32) -> i32 {
    // A panic must not cross into PHP here: nothing catches it.
    if std::panic::catch_unwind(sapi::start).is_err() {
        crate::logging::to_stderr(format_args!("rr: internal error at request startup"));
    }
    0
}

/// Runs when the script ends, however it ended: answer what is pending, drain, stop the runtime.
extern "C" fn request_shutdown(_type: i32, _module_number: i32) -> i32 {
    // A panic must not cross into PHP here: nothing catches it.
    if std::panic::catch_unwind(|| {
        sapi::finish();
        worker::finish();
    })
    .is_err()
    {
        crate::logging::to_stderr(format_args!(
            "rr: internal error while shutting the worker down"
        ));
    }
    0
}

extern "C" fn info(_module: *mut ModuleEntry) {
    info_table_start!();
    info_table_row!("rr support", "enabled");
    info_table_row!("version", env!("CARGO_PKG_VERSION"));
    match worker::effective_config() {
        Ok(config) => {
            let source = config
                .source
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(none: defaults, ini and options)".into());
            info_table_row!("config file", source);
            for (key, value) in config.describe() {
                info_table_row!(key, value);
            }
        }
        Err(e) => info_table_row!("configuration error", e),
    }
    info_table_end!();
}

#[php_module]
pub fn get_module(module: ModuleBuilder) -> ModuleBuilder {
    let module = module
        .name("rr")
        .version(env!("CARGO_PKG_VERSION"))
        .startup_function(startup)
        .shutdown_function(shutdown)
        .request_startup_function(request_startup)
        .request_shutdown_function(request_shutdown)
        .info_function(info)
        .class::<exception::Exception>()
        .class::<exception::ConfigException>()
        .class::<request::Request>()
        .class::<worker::Worker>();
    reclass::register(objects::register(kdf::register(pool::register(
        velox::register(module),
    ))))
}
