//! Letting PHP's signal handlers run while the PHP thread waits inside Rust.
//!
//! pcntl (with async signals) only records a signal and sets `EG(vm_interrupt)`; the VM runs the
//! handler at its next check. A thread blocked in `waitRequest()` makes no checks, so the wait
//! wakes up every tick and performs the check itself.
use ext_php_rs::ffi::{zend_atomic_bool, zend_interrupt_function};
use ext_php_rs::zend::ExecutorGlobals;

extern "C" {
    fn zend_atomic_bool_exchange(obj: *mut zend_atomic_bool, desired: bool) -> bool;
}

/// Runs pending VM interrupts (pcntl signal handlers); true when one ran.
pub fn run_pending() -> bool {
    let mut globals = ExecutorGlobals::get_mut();
    // SAFETY: we are on the PHP thread (the only caller is waitRequest); vm_interrupt is the
    // executor's own flag, exchanged atomically as the VM itself does.
    let was_set = unsafe { zend_atomic_bool_exchange(&raw mut globals.vm_interrupt, false) };
    if !was_set {
        return false;
    }
    let execute_data = globals.current_execute_data;
    drop(globals);
    // SAFETY: zend_interrupt_function is set once at module startup by extensions (pcntl) and
    // only read here; it is called on the PHP thread with the current frame, as the VM does.
    unsafe {
        if let Some(handler) = zend_interrupt_function {
            handler(execute_data);
        }
    }
    true
}

/// Whether PHP code (a signal handler) left an exception to throw.
pub fn exception_pending() -> bool {
    !ExecutorGlobals::get().exception.is_null()
}
