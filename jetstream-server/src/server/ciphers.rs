//! The data ciphers a server accepts and offers (reference §7.5 `minCipher`).
//!
//! Both are 256-bit AEADs with 128-bit tags. They are ranked so that a cipher floor means
//! something to administrators: AES-256-GCM above ChaCha20-Poly1305, because it is the
//! FIPS-approved one (and hardware-accelerated where AES instructions exist). A floor of
//! `aes-256-gcm` therefore admits only FIPS-approved data encryption.

use jetstream_core::proto::crypto::Cipher;

use super::api::ApiError;

/// Every cipher, weakest first.
pub const RANKED: [&str; 2] = ["chacha20-poly1305", "aes-256-gcm"];

/// Rank of a cipher name (higher is stronger), `None` if unknown.
pub fn rank(name: &str) -> Option<usize> {
    RANKED.iter().position(|c| *c == name)
}

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

/// What this side offers, best first: the configured list, or both with the fastest on this
/// CPU first.
pub fn offer(configured: &[String]) -> Vec<String> {
    if configured.is_empty() {
        let first = Cipher::preferred();
        let mut v = vec![first.name().to_owned()];
        v.extend(
            RANKED
                .iter()
                .rev()
                .filter(|c| **c != first.name())
                .map(|c| (*c).to_owned()),
        );
        v
    } else {
        configured.to_vec()
    }
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
            ApiError(format!(
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
            e.0.contains("aes-256-gcm or stronger") && e.0.contains("offered chacha20"),
            "{}",
            e.0
        );
        assert!(choose(&["rot13".to_owned()], "chacha20-poly1305").is_err());
        assert!(parse("rot13").is_err());
        assert_eq!(offer(&[]).len(), 2);
        assert_eq!(offer(&["aes-256-gcm".into()]), vec!["aes-256-gcm"]);
    }
}
