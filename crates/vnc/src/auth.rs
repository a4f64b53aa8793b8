//! VNC password authentication (RFC 6143 §7.2.2): the server sends a
//! random 16-byte challenge, the client returns it DES-encrypted with the
//! password as the key, each key byte's bits reversed (a historical quirk
//! of the reference implementation every client copies).

use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockEncrypt, KeyInit};

/// Only the first 8 bytes of a password count.
pub const MAX_PASSWORD: usize = 8;

/// 16 random bytes, from getrandom: a client's thread opens no file (its
/// seccomp filter in rvirt-vmm allows none, and a jail may have no
/// /dev/urandom).
pub fn challenge() -> std::io::Result<[u8; 16]> {
    let mut c = [0u8; 16];
    let mut filled = 0;
    while filled < c.len() {
        match rustix::rand::getrandom(&mut c[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(c)
}

/// What a client knowing `password` answers to `challenge`.
pub fn response(password: &[u8], challenge: &[u8; 16]) -> [u8; 16] {
    let mut key = [0u8; 8];
    for (k, p) in key.iter_mut().zip(password) {
        *k = p.reverse_bits();
    }
    let cipher = des::Des::new(GenericArray::from_slice(&key));
    let mut out = *challenge;
    for block in out.chunks_exact_mut(8) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    out
}

/// Whether `answer` proves `password`, compared in constant time.
pub fn verify(password: &[u8], challenge: &[u8; 16], answer: &[u8; 16]) -> bool {
    let expect = response(password, challenge);
    expect
        .iter()
        .zip(answer)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        // Computed with Python's cryptography (DES over the bit-reversed
        // key, as vncdotool answers) for password "password" and challenge 0..16.
        let challenge: [u8; 16] = std::array::from_fn(|i| i as u8);
        let r = response(b"password", &challenge);
        let expect: [u8; 16] = [
            0xb8, 0x66, 0x92, 0x41, 0x25, 0xc8, 0xee, 0xbb, 0x9d, 0xeb, 0xc1, 0xdb, 0x61, 0xc5,
            0x38, 0xe2,
        ];
        assert_eq!(r, expect);
        assert!(verify(b"password", &challenge, &r));
        assert!(!verify(b"passwore", &challenge, &r));
        // Bytes past the eighth do not count.
        assert!(verify(b"password123", &challenge, &r));
    }
}
