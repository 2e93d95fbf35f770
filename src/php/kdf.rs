//! `RR\pbkdf2_sha1()`: the key derivation of `crate::kdf` for PHP.
use super::exception;
use ext_php_rs::binary::Binary;
use ext_php_rs::binary_slice::BinarySlice;
use ext_php_rs::builders::ModuleBuilder;
use ext_php_rs::prelude::*;

/// PBKDF2 with HMAC-SHA1: `$length` raw bytes derived from `$password` and `$salt` in
/// `$iterations` rounds; the same bytes as `hash_pbkdf2('sha1', $password, $salt,
/// $iterations, $length, true)`, computed natively.
///
/// @return string
/// @throws \ValueError when $iterations is below 1 or above 4294967295, or $length is not
///     between 1 and 1048576
#[php_function]
#[php(name = "RR\\pbkdf2_sha1")]
pub fn pbkdf2_sha1(
    password: BinarySlice<u8>,
    salt: BinarySlice<u8>,
    iterations: i64,
    length: i64,
) -> PhpResult<Binary<u8>> {
    crate::kdf::pbkdf2_sha1(&password, &salt, iterations, length)
        .map(Binary::from)
        .map_err(|e| exception::bad_value(format!("RR\\pbkdf2_sha1(): {e}")))
}

pub fn register(module: ModuleBuilder) -> ModuleBuilder {
    module.function(wrap_function!(pbkdf2_sha1))
}
