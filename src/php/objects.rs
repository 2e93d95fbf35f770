//! `RR\changed_objects()`: which objects no longer hold what a snapshot of their properties
//! says, without building `(array)` copies. A reset layer (the Nextcloud runtime puts several
//! hundred objects back after every request) asks once per request instead of casting and
//! comparing each object in PHP.
use ext_php_rs::builders::ModuleBuilder;
use ext_php_rs::ffi::{
    std_object_handlers, zend_array, zend_is_identical, zend_object, zend_std_get_properties,
    zend_string, zval, Bucket, IS_INDIRECT, IS_REFERENCE, IS_UNDEF,
};
use ext_php_rs::prelude::*;
use ext_php_rs::types::ZendHashTable;

use super::exception;

/// `HASH_FLAG_PACKED` (Zend/zend_hash.h, PHP 8.2+): a list whose values are not in buckets.
const HASH_FLAG_PACKED: u32 = 1 << 2;

/// The indexes of `$objects` whose object's properties are not identical (`===`) to the
/// array at the same index of `$snapshots`, as `(array) $object === $snapshots[$i]` would find.
/// An index is also listed when its value is not an object, its snapshot is not an array, or
/// the object is not a plain user object (its class or a parent is internal, an enum, a
/// closure): compare those in PHP. Never reports an object as unchanged that `(array)` would
/// find changed.
///
/// @param list<mixed> $objects
/// @param list<mixed> $snapshots
/// @return list<int>
/// @throws \ValueError when either array is not a list (keys 0 to count - 1), or their
///     counts differ
#[php_function]
#[php(name = "RR\\changed_objects")]
pub fn changed_objects(objects: &ZendHashTable, snapshots: &ZendHashTable) -> PhpResult<Vec<i64>> {
    let not_a_list = |name: &str| {
        exception::bad_value(format!(
            "RR\\changed_objects(): {name} must be a list (keys 0 to count - 1)"
        ))
    };
    if objects.len() != snapshots.len() {
        return Err(exception::bad_value(format!(
            "RR\\changed_objects(): $objects has {} entries, $snapshots {}",
            objects.len(),
            snapshots.len()
        )));
    }
    let mut changed = Vec::new();
    // Every key from 0 to count - 1 present: the keys are exactly those.
    for i in 0..i64::try_from(objects.len()).unwrap_or(i64::MAX) {
        let object = objects.get_index(i).ok_or_else(|| not_a_list("$objects"))?;
        let snapshot = snapshots
            .get_index(i)
            .ok_or_else(|| not_a_list("$snapshots"))?;
        let (object, snapshot) = (object.object(), snapshot.array());
        let same = match (object, snapshot) {
            // SAFETY: both pointers come from live zvals of the two arrays, which PHP keeps
            // alive for this call; same_properties() only reads through them (and lets the
            // object build its property table, as `(array)` does).
            (Some(object), Some(snapshot)) => unsafe {
                same_properties(
                    std::ptr::from_ref(object).cast_mut(),
                    std::ptr::from_ref(snapshot),
                )
            },
            _ => false,
        };
        if !same {
            changed.push(i);
        }
    }
    Ok(changed)
}

/// A zval's type byte (`Z_TYPE`).
///
/// # Safety
/// `zv` points to a live zval.
unsafe fn type_of(zv: *const zval) -> u32 {
    // SAFETY: per the function's contract.
    unsafe { (*zv).u1.type_info & 0xff }
}

/// A property table's bucket: the zval it names (through INDIRECT to the property slot), or
/// None for a slot that is unset or uninitialized (`(array)` leaves those out).
///
/// # Safety
/// `b` points into a live hash table's bucket array.
unsafe fn property_value(b: *const Bucket) -> Option<*mut zval> {
    // SAFETY: per the function's contract.
    let mut zv = unsafe { std::ptr::addr_of!((*b).val) }.cast_mut();
    // SAFETY: `zv` is the bucket's own zval, live per the function's contract.
    if unsafe { type_of(zv) } == IS_INDIRECT {
        // SAFETY: an INDIRECT zval points to the object's property slot, alive with the object.
        zv = unsafe { (*zv).value.zv };
    }
    // SAFETY: the bucket's zval, or the live property slot it points to.
    (unsafe { type_of(zv) } != IS_UNDEF).then_some(zv)
}

/// Whether a property name can be turned into an integer key by `(array)` ("0", "-1", ...):
/// those are left to PHP. Declared and mangled names never start with a digit or '-'.
///
/// # Safety
/// `s` is a live zend_string.
unsafe fn may_be_numeric(s: *const zend_string) -> bool {
    // SAFETY: per the function's contract; `val` holds `len` bytes.
    let first = unsafe {
        if (*s).len == 0 {
            return false;
        }
        *(*s).val.as_ptr().cast::<u8>()
    };
    first.is_ascii_digit() || first == b'-'
}

/// # Safety
/// `a` and `b` are live zend_strings.
unsafe fn same_key(a: *const zend_string, b: *const zend_string) -> bool {
    if a == b {
        return true;
    }
    // SAFETY: per the function's contract; each `val` holds `len` bytes.
    unsafe {
        (*a).len == (*b).len
            && std::slice::from_raw_parts((*a).val.as_ptr().cast::<u8>(), (*a).len)
                == std::slice::from_raw_parts((*b).val.as_ptr().cast::<u8>(), (*b).len)
    }
}

/// `(array) $object === $snapshot`, for an object with the standard handlers, comparing its
/// property table with the snapshot in order (keys and `===` values) without copying it.
///
/// # Safety
/// `object` and `snapshot` are live, and nothing else runs PHP code meanwhile.
unsafe fn same_properties(object: *mut zend_object, snapshot: *const zend_array) -> bool {
    // SAFETY: per the function's contract: the object, its handlers and both tables are live
    // and only read, except that zend_std_get_properties() builds the object's property table
    // on first use, as `(array)` would.
    unsafe {
        if !std::ptr::eq((*object).handlers, std::ptr::addr_of!(std_object_handlers)) {
            return false;
        }
        if (*snapshot).u.flags & HASH_FLAG_PACKED != 0 {
            return false;
        }
        let props = zend_std_get_properties(object);
        if props.is_null() || (*props).u.flags & HASH_FLAG_PACKED != 0 {
            return false;
        }
        let theirs = (*snapshot).__bindgen_anon_1.arData;
        let their_end = (*snapshot).nNumUsed as usize;
        let mut j = 0usize;
        let ours = (*props).__bindgen_anon_1.arData;
        for i in 0..(*props).nNumUsed as usize {
            let b = ours.add(i);
            let Some(mut value) = property_value(b) else {
                continue;
            };
            let key = (*b).key;
            if key.is_null() || may_be_numeric(key) {
                return false;
            }
            while j < their_end && type_of(std::ptr::addr_of!((*theirs.add(j)).val)) == IS_UNDEF {
                j += 1;
            }
            if j == their_end {
                return false;
            }
            let t = theirs.add(j);
            j += 1;
            if (*t).key.is_null() || !same_key(key, (*t).key) {
                return false;
            }
            if type_of(value) == IS_REFERENCE {
                value = std::ptr::addr_of_mut!((*(*value).value.ref_).val);
            }
            if !zend_is_identical(value, std::ptr::addr_of!((*t).val).cast_mut()) {
                return false;
            }
        }
        while j < their_end {
            if type_of(std::ptr::addr_of!((*theirs.add(j)).val)) != IS_UNDEF {
                return false;
            }
            j += 1;
        }
        true
    }
}

pub fn register(module: ModuleBuilder) -> ModuleBuilder {
    module.function(wrap_function!(changed_objects))
}
