//! Settings a request changes through a function and that are no ini entry: mbstring's
//! encodings (`mb_internal_encoding()`, `mb_regex_encoding()`, `mb_substitute_character()`,
//! `mb_detect_order()`, `mb_http_output()`). php-fpm's next request starts with php.ini's; here
//! a request that set one gets mbstring's request shutdown and startup after it (after the ini
//! settings are back, which they derive from), then the values the worker itself set (before or
//! between `handle()` calls) are set again.
//!
//! Reading them at every request would cost each request a few function calls, so the functions
//! themselves are watched: their handler is swapped for one that notes a call with arguments
//! (during a request: mbstring is reset after it; outside one: the value the worker chose), then
//! runs the original. A request that sets nothing costs nothing.
use super::settings::call;
use ext_php_rs::ffi::{
    zend_execute_data, zend_fetch_function_str, zend_function, zif_handler, zval,
};
use ext_php_rs::types::Zval;
use std::cell::{Cell, RefCell};

/// Each function is its own getter when called without arguments and takes that value back.
const WATCHED: [&str; 5] = [
    "mb_internal_encoding",
    "mb_regex_encoding",
    "mb_substitute_character",
    "mb_detect_order",
    "mb_http_output",
];
const N: usize = WATCHED.len();
/// `ZEND_INTERNAL_FUNCTION`.
const INTERNAL_FUNCTION: u8 = 1;

thread_local! {
    /// The original handlers, set while watched (PHP thread only).
    static ORIGINAL: [Cell<zif_handler>; N] = const { [const { Cell::new(None) }; N] };
    /// A request is running.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    /// The running request called one of the functions to set a value.
    static TOUCHED: Cell<bool> = const { Cell::new(false) };
    /// The values the worker set outside requests, as the functions report them.
    static WORKER: RefCell<[Option<Zval>; N]> = const { RefCell::new([const { None }; N]) };
}

/// The watched function named `name`, None if its extension is not loaded.
fn function(name: &str) -> Option<*mut zend_function> {
    // SAFETY: PHP thread; a look-up in the function table, NULL when absent.
    let f = unsafe { zend_fetch_function_str(name.as_ptr().cast(), name.len()) };
    // SAFETY: a live zend_function; `type_` is the first byte of every variant.
    (!f.is_null() && unsafe { (*f).type_ } == INTERNAL_FUNCTION).then_some(f)
}

/// Starts watching (request startup); the handlers are taken back by [`unwatch`].
pub fn watch() {
    ORIGINAL.with(|originals| {
        for (i, name) in WATCHED.iter().enumerate() {
            let Some(f) = function(name) else { continue };
            // SAFETY: PHP thread, no PHP code running; an internal function's handler is a
            // plain pointer in the process-wide function table, called by the VM per call
            // (what Xdebug and uopz swap too).
            unsafe {
                let handler = &raw mut (*f).internal_function.handler;
                if originals[i].get().is_none() {
                    originals[i].set(*handler);
                    *handler = Some(HANDLERS[i]);
                }
            }
        }
    });
}

/// Request shutdown: the original handlers back.
pub fn unwatch() {
    ORIGINAL.with(|originals| {
        for (i, name) in WATCHED.iter().enumerate() {
            let Some(original) = originals[i].take() else {
                continue;
            };
            if let Some(f) = function(name) {
                // SAFETY: as in `watch`.
                unsafe { (*f).internal_function.handler = Some(original) };
            }
        }
    });
    WORKER.with_borrow_mut(|values| values.iter_mut().for_each(|v| *v = None));
}

/// A request begins.
pub fn begin() {
    ACTIVE.set(true);
    TOUCHED.set(false);
}

/// The request is over; whether it set one of the values (then mbstring is to be reset).
pub fn end() -> bool {
    ACTIVE.set(false);
    TOUCHED.take()
}

/// After mbstring's reset: the values the worker set itself, again.
pub fn reapply() {
    for (i, name) in WATCHED.iter().enumerate() {
        let value = WORKER.with_borrow(|values| values[i].as_ref().map(Zval::shallow_clone));
        if let Some(value) = value {
            call(name, vec![&value]);
        }
    }
}

const HANDLERS: [unsafe extern "C" fn(*mut zend_execute_data, *mut zval); N] = [
    watched::<0>,
    watched::<1>,
    watched::<2>,
    watched::<3>,
    watched::<4>,
];

/// The handler of `WATCHED[I]`.
unsafe extern "C" fn watched<const I: usize>(ex: *mut zend_execute_data, ret: *mut zval) {
    if let Some(original) = ORIGINAL.with(|originals| originals[I].get()) {
        // SAFETY: the function's own handler with the frame PHP gave us.
        unsafe { original(ex, ret) };
    }
    // SAFETY: PHP hands the call frame of this function; num_args sits in its This zval.
    if unsafe { (*ex).This.u2.num_args } == 0 {
        return;
    }
    if ACTIVE.get() {
        TOUCHED.set(true);
        return;
    }
    // The worker's own choice, as the function reports it (the call without arguments comes
    // back through here and goes to the original).
    let value = call(WATCHED[I], vec![]);
    WORKER.with(|values| {
        if let Ok(mut values) = values.try_borrow_mut() {
            values[I] = value;
        }
    });
}
