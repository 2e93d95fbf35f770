//! Zend and SAPI symbols the generated bindings leave out, and raw access to the engine's
//! globals. The hooks run inside PHP's own calls, so they must not take ext-php-rs's global
//! guards (a guard held by the caller would deadlock): everything here is a raw pointer.
use ext_php_rs::ffi::{
    _php_core_globals, _php_stream, _sapi_globals_struct, _zend_executor_globals, core_globals,
    executor_globals, sapi_globals, zend_class_entry, zend_llist, zend_object, zend_stack,
    zend_string, zval, HashTable,
};
use std::os::raw::{c_char, c_int, c_void};

/// `SAPI_HEADER_ADD`: keep the header in `SG(sapi_headers)`.
pub const SAPI_HEADER_ADD: c_int = 1;
/// `SAPI_HEADER_SENT_SUCCESSFULLY`.
pub const SAPI_HEADER_SENT_SUCCESSFULLY: c_int = 1;
/// `MODULE_PERSISTENT`, the `type` passed to request hooks of built-in modules.
pub const MODULE_PERSISTENT: c_int = 1;
pub const ZEND_USER_CLASS: u8 = 2;
pub const ZEND_ACC_STATIC: u32 = 1 << 4;
/// `BP_VAR_IS`: look a static property up without errors.
pub const BP_VAR_IS: c_int = 3;
/// `ZEND_INI_SYSTEM`: the widest right to change an ini entry.
pub const ZEND_INI_SYSTEM: c_int = 4;
/// `ZEND_INI_STAGE_DEACTIVATE`: the stage PHP restores changed entries in at request end
/// (the session module accepts changes then even after headers were sent).
pub const ZEND_INI_STAGE_DEACTIVATE: c_int = 1 << 3;
/// `PHP_OUTPUT_SENT`: the output layer has sent the headers (blocks some ini changes).
pub const PHP_OUTPUT_SENT: c_int = 0x08;
const PHP_STREAM_OPTION_TRUNCATE_API: c_int = 10;
const PHP_STREAM_TRUNCATE_SET_SIZE: c_int = 1;

/// `zend_output_globals` (PHP 8.2, NTS): the output layer's state, `OG()`.
#[repr(C)]
pub struct OutputGlobals {
    pub handlers: zend_stack,
    pub active: *mut c_void,
    pub running: *mut c_void,
    pub output_start_filename: *mut zend_string,
    pub output_start_lineno: c_int,
    pub flags: c_int,
}

extern "C" {
    pub static mut output_globals: OutputGlobals;
    /// The first member of `php_basic_globals` (PHP 8.2, NTS):
    /// `HashTable *user_shutdown_function_names`.
    #[link_name = "basic_globals"]
    pub static mut SHUTDOWN_FUNCTIONS: *mut HashTable;
    pub static mut module_registry: HashTable;
    pub fn php_output_get_level() -> c_int;
    pub fn php_output_end_all();
    pub fn php_output_set_implicit_flush(flush: c_int);
    /// `clearstatcache()`: forgets the last `stat()`/`lstat()` result (and, with the flag, the
    /// realpath cache).
    pub fn php_clear_stat_cache(
        clear_realpath_cache: bool,
        filename: *const c_char,
        filename_len: usize,
    );
    pub fn zend_is_unwind_exit(ex: *const zend_object) -> bool;
    pub fn php_call_shutdown_functions();
    /// `gc_collect_cycles()`: frees unreachable reference cycles, running their destructors.
    pub fn zend_gc_collect_cycles() -> c_int;
    /// `gc_enable()`/`gc_disable()`: whether PHP's cycle collector may run by itself; returns
    /// the previous state.
    pub fn gc_enable(enable: bool) -> bool;
    pub fn zend_gc_get_status(status: *mut zend_gc_status);
    pub fn php_free_shutdown_functions();
    pub fn sapi_get_default_content_type() -> *mut c_char;
    pub fn zend_llist_clean(list: *mut zend_llist);
    pub fn zend_hash_destroy(ht: *mut HashTable);
    pub fn zend_alter_ini_entry_chars(
        name: *mut zend_string,
        value: *const c_char,
        value_length: usize,
        modify_type: c_int,
        stage: c_int,
    ) -> c_int;
    /// PHP's request-end restore of one modified ini entry: its php.ini value back (through its
    /// on_modify handler) and the entry out of `EG(modified_ini_directives)`.
    pub fn zend_restore_ini_entry(name: *mut zend_string, stage: c_int) -> c_int;
    pub fn zend_is_auto_global_str(name: *const c_char, len: usize) -> bool;
    pub fn zend_std_get_static_property(
        ce: *mut zend_class_entry,
        name: *mut zend_string,
        kind: c_int,
    ) -> *mut zval;
    fn _php_stream_set_option(
        stream: *mut _php_stream,
        option: c_int,
        value: c_int,
        ptrparam: *mut c_void,
    ) -> c_int;
}

/// Only addresses are taken here; NTS globals live for the whole process.
pub fn eg() -> *mut _zend_executor_globals {
    &raw mut executor_globals
}

pub fn sg() -> *mut _sapi_globals_struct {
    &raw mut sapi_globals
}

pub fn pg() -> *mut _php_core_globals {
    &raw mut core_globals
}

/// Empties a `php://input` temp stream so it can hold the next body.
///
/// # Safety
/// `stream` must be a live stream on the PHP thread.
pub unsafe fn truncate(stream: *mut _php_stream) {
    let mut size: usize = 0;
    // SAFETY: the caller guarantees the stream; the option takes a pointer to a size_t.
    unsafe {
        _php_stream_set_option(
            stream,
            PHP_STREAM_OPTION_TRUNCATE_API,
            PHP_STREAM_TRUNCATE_SET_SIZE,
            (&raw mut size).cast(),
        );
    }
}

/// A C string PHP owns as bytes (empty for NULL).
///
/// # Safety
/// `s` is NULL or a NUL-terminated string that outlives the returned slice.
pub unsafe fn c_bytes<'a>(s: *const c_char) -> &'a [u8] {
    if s.is_null() {
        return &[];
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(s).to_bytes() }
}

/// PHP 8.2's `zend_gc_status` (Zend/zend_gc.h).
#[repr(C)]
#[derive(Default)]
pub struct zend_gc_status {
    pub runs: u32,
    pub collected: u32,
    pub threshold: u32,
    pub num_roots: u32,
}
