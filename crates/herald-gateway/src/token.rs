//! Bearer tokens: made at random, stored in the configuration only as
//! their SHA-256 (so a leaked configuration does not leak a token), and
//! checked by hashing what a request presents.

use sha2::{Digest, Sha256};

/// A new random token: 32 bytes from the OS's generator, hex (64 characters).
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex(&bytes)
}

/// The SHA-256 of `token`, as the configuration holds it (hex).
pub fn sha256_hex(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The digest of `token`, to compare with a configured one.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The SHA-256 of a request body (to recognise a retry).
pub fn digest_bytes(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `s` as 32 bytes, if it is 64 hex digits.
pub(crate) fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The configuration lines for a token named `name` (what `herald gateway
/// token` prints).
pub fn config_lines(name: &str, token: &str) -> String {
    format!(
        "[[tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\nallow = [\"INSTANCE/TOPIC\"]  # patterns: \"main/orders\", \"main/*\", \"*/*\"\n",
        sha256_hex(token)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_their_hashes_round_trip() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        let h = sha256_hex(&a);
        assert_eq!(unhex32(&h), Some(digest(&a)));
        // The SHA-256 of "abc" (FIPS 180-2's example).
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(
            !config_lines("ci", &a).contains(&a),
            "the token itself is never in the lines"
        );
    }
}
