//! The data ciphers a server accepts (reference §7.5 `minCipher`); the ranking and what a
//! side offers are in `jetstream_client::session`.
//!
//! Both are 256-bit AEADs with 128-bit tags. They are ranked so that a cipher floor means
//! something to administrators: AES-256-GCM above ChaCha20-Poly1305, because it is the
//! FIPS-approved one (and hardware-accelerated where AES instructions exist). A floor of
//! `aes-256-gcm` therefore admits only FIPS-approved data encryption.

use jetstream_client::session::{rank, RANKED};
use jetstream_core::proto::crypto::Cipher;

use super::api::ApiError;

/// Checks a `--min-cipher` / `--cipher` value.
///
/// # Errors
/// An unknown name, with the known ones.
pub fn parse(name: &str) -> Result<Cipher, String> {
    Cipher::from_name(name).ok_or_else(|| {
        format!(
            "unknown cipher {name:?}: known ciphers are {}",
            RANKED.join(", ")
        )
    })
}

/// The receiving side's choice: the first offered cipher at or above `floor`.
///
/// # Errors
/// None acceptable: the message says what the floor is and what was offered.
pub fn choose(offered: &[String], floor: &str) -> Result<Cipher, ApiError> {
    let min = rank(floor).unwrap_or(0);
    offered
        .iter()
        .filter(|c| rank(c).is_some_and(|r| r >= min))
        .find_map(|c| Cipher::from_name(c))
        .ok_or_else(|| {
            ApiError::new(format!(
                "no acceptable cipher: this server accepts only {} or stronger (minCipher), \
                 the peer offered {}",
                floor,
                if offered.is_empty() {
                    "none".to_owned()
                } else {
                    offered.join(", ")
                }
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_admits_the_strong_and_refuses_the_weak() {
        let both = vec!["chacha20-poly1305".to_owned(), "aes-256-gcm".to_owned()];
        assert_eq!(
            choose(&both, "chacha20-poly1305").unwrap(),
            Cipher::ChaCha20Poly1305
        );
        assert_eq!(choose(&both, "aes-256-gcm").unwrap(), Cipher::Aes256Gcm);
        let weak = vec!["chacha20-poly1305".to_owned()];
        let e = choose(&weak, "aes-256-gcm").unwrap_err();
        assert!(
            e.message.contains("aes-256-gcm or stronger") && e.message.contains("offered chacha20"),
            "{}",
            e.message
        );
        assert!(choose(&["rot13".to_owned()], "chacha20-poly1305").is_err());
        assert!(parse("rot13").is_err());
    }
}
