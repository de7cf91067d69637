//! Fresh ids from the OS random generator: object and transfer ids, data session ids.

/// `N` bytes from the OS generator.
///
/// # Panics
/// When the OS generator fails: a program that mints ids and key material cannot go on.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .expect("OS random generator failed");
    b
}

/// A fresh 32-hex-character id (an object's or a transfer's).
pub fn new_id() -> String {
    crate::tls::hex_encode(&random_bytes::<16>())
}

/// A random number from the OS generator.
pub fn random_u64() -> u64 {
    u64::from_be_bytes(random_bytes())
}

/// A fresh data session id.
pub fn new_session_id() -> jetstream_core::SessionId {
    jetstream_core::SessionId(random_u64())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_hex_and_differ() {
        let (a, b) = (super::new_id(), super::new_id());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
