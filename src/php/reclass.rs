//! `RR\reclass()`: turns an object into an instance of a direct subclass of its class that
//! declares no properties, in place. Every reference to the object stays valid (closures bound
//! to it, services holding it), which replacing it with a new instance could not give. A reset
//! layer uses it to change how a long-lived object of an application behaves (the Nextcloud
//! runtime: container lookups that do not build an exception first) without patching the
//! application's files.
use ext_php_rs::builders::ModuleBuilder;
use ext_php_rs::ffi::{
    std_object_handlers, zend_class_entry, zend_object, zend_property_info, zval, IS_PTR, IS_UNDEF,
    ZEND_ACC_ABSTRACT, ZEND_ACC_ENUM, ZEND_ACC_IMPLICIT_ABSTRACT_CLASS, ZEND_ACC_INTERFACE,
    ZEND_ACC_TRAIT,
};
use ext_php_rs::prelude::*;
use ext_php_rs::types::ZendObject;
use ext_php_rs::zend::ClassEntry;

use super::exception;

/// `ZEND_USER_CLASS` (Zend/zend_compile.h): a class declared in PHP code.
const ZEND_USER_CLASS: i8 = 2;

/// Makes `$object` an instance of `$class`, which must directly extend the object's class,
/// be a concrete user class, declare no properties and add no magic property methods
/// (`__get`, `__set`, `__isset`, `__unset`): the object's memory then means the same under
/// either class. Its properties keep their values; from now on the methods of
/// `$class` run for it, and `$object instanceof` its old class still holds.
///
/// @throws \ValueError when `$class` does not exist, or is not such a subclass of the
///     object's class
#[php_function]
#[php(name = "RR\\reclass")]
pub fn reclass(object: &mut ZendObject, class: &str) -> PhpResult<()> {
    let Some(target) = ClassEntry::try_find(class) else {
        return Err(exception::bad_value(format!(
            "RR\\reclass(): class {class:?} does not exist"
        )));
    };
    let target: *const zend_class_entry = target;
    let object: *mut zend_object = object;
    // SAFETY: `object` is a live object passed by PHP for this call and `target` a class from
    // the class table, which outlives every request; both are only read here.
    let (current, refusal) = unsafe { ((*object).ce, refusal(object, target)) };
    if let Some(why) = refusal {
        // SAFETY: a live object's class entry, with its name.
        let name = unsafe { class_name(current) };
        return Err(exception::bad_value(format!(
            "RR\\reclass(): {class} cannot replace {name} as the class of the object: {why}"
        )));
    }
    // SAFETY: refusal() found the target laid out like the object's class (same property
    // slots, none added or redeclared, same handlers and allocation), so every property slot
    // and handler the object has stays valid under its new class.
    unsafe { (*object).ce = target.cast_mut() };
    Ok(())
}

/// Why `target` cannot become the class of `object`, or None when it can.
///
/// # Safety
/// `object` is a live object and `target` a live class entry.
unsafe fn refusal(object: *const zend_object, target: *const zend_class_entry) -> Option<String> {
    // SAFETY: per the function's contract; the class entries are only read.
    unsafe {
        let current = (*object).ce;
        if std::ptr::eq(current, target) {
            return Some("it already is".into());
        }
        if (*target).__bindgen_anon_1.parent != current {
            return Some("it does not directly extend it".into());
        }
        if (*current).type_ != ZEND_USER_CLASS || (*target).type_ != ZEND_USER_CLASS {
            return Some("both must be classes declared in PHP".into());
        }
        if !std::ptr::eq((*object).handlers, std::ptr::addr_of!(std_object_handlers)) {
            return Some("the object does not have the standard object handlers".into());
        }
        let kind = ZEND_ACC_INTERFACE
            | ZEND_ACC_TRAIT
            | ZEND_ACC_ENUM
            | ZEND_ACC_ABSTRACT
            | ZEND_ACC_IMPLICIT_ABSTRACT_CLASS;
        if (*target).ce_flags & kind != 0 {
            return Some("it is abstract, an interface, a trait or an enum".into());
        }
        let allocator = |ce: *const zend_class_entry| {
            (*ce)
                .__bindgen_anon_2
                .create_object
                .map_or(0, |f| f as usize)
        };
        if allocator(target) != allocator(current) {
            return Some("it allocates its objects differently".into());
        }
        // A class with __get, __set, __isset or __unset gives its objects one more slot, for
        // the recursion guards (zend_object_properties_size()): the object has it or not.
        // (ZEND_ACC_USE_GUARDS, whose bit differs between PHP versions, follows these four.)
        let magic = |ce: *const zend_class_entry| {
            !(*ce).__get.is_null()
                || !(*ce).__set.is_null()
                || !(*ce).__isset.is_null()
                || !(*ce).__unset.is_null()
        };
        if magic(target) != magic(current) {
            return Some("one of them has magic property methods (__get, __set, __isset, __unset) and the other not".into());
        }
        // A redeclared property also adds a slot (left unused), so the count alone tells; the
        // table is checked too in case a PHP version reuses the slot.
        if (*target).default_properties_count != (*current).default_properties_count
            || declares_properties(target)
        {
            return Some("it declares properties".into());
        }
        None
    }
}

/// Whether any property in the class's property table is declared by the class itself.
///
/// # Safety
/// `ce` is a live class entry.
unsafe fn declares_properties(ce: *const zend_class_entry) -> bool {
    // SAFETY: per the function's contract; `properties_info` maps names to IS_PTR zvals of
    // zend_property_info, all alive with the class.
    unsafe {
        let table = std::ptr::addr_of!((*ce).properties_info);
        let buckets = (*table).__bindgen_anon_1.arData;
        for i in 0..(*table).nNumUsed as usize {
            let zv: *const zval = std::ptr::addr_of!((*buckets.add(i)).val);
            match (*zv).u1.type_info & 0xff {
                IS_UNDEF => continue,
                IS_PTR => {
                    let info = (*zv).value.ptr.cast::<zend_property_info>();
                    if std::ptr::eq((*info).ce, ce) {
                        return true;
                    }
                }
                _ => return true,
            }
        }
        false
    }
}

/// A class's name, for messages.
///
/// # Safety
/// `ce` is a live class entry.
unsafe fn class_name(ce: *const zend_class_entry) -> String {
    // SAFETY: per the function's contract; a class's name is a live zend_string of `len` bytes.
    unsafe {
        let name = (*ce).name;
        let bytes = std::slice::from_raw_parts((*name).val.as_ptr().cast::<u8>(), (*name).len);
        String::from_utf8_lossy(bytes).into_owned()
    }
}

pub fn register(module: ModuleBuilder) -> ModuleBuilder {
    module.function(wrap_function!(reclass))
}
