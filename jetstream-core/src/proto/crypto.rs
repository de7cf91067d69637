//! Packet protection: AEAD keys derived per session and direction from a shared secret.
//!
//! Both ends hold the same 32-byte [`SessionSecret`] (distributed out of band, e.g. through the
//! control API). For each session:
//!
//! ```text
//! prk     = HKDF-Extract(salt = "jetstream v1" || session_id (u64 BE), ikm = secret)  [SHA-256]
//! s2r key = HKDF-Expand(prk, "jetstream s2r key", 32)   s2r iv = HKDF-Expand(prk, "jetstream s2r iv", 12)
//! r2s key = HKDF-Expand(prk, "jetstream r2s key", 32)   r2s iv = HKDF-Expand(prk, "jetstream r2s iv", 12)
//! ```
//!
//! The sender seals with the s2r key and opens with the r2s key; the receiver does the opposite.
//! The nonce of packet number `pn` is the IV XOR `pn` (big-endian, in the last 8 bytes), as in
//! TLS 1.3, so a packet number must never be reused within one direction of a session.

use std::fmt;

use ring::{aead, hkdf};

use crate::types::{Role, SessionId};

/// Length of the AEAD tag appended to every datagram.
pub const TAG_LEN: usize = 16;

const KEY_LEN: usize = 32;
const IV_LEN: usize = aead::NONCE_LEN;
const SALT_PREFIX: &[u8] = b"jetstream v1";

/// The AEAD algorithm protecting a session. Both ends must agree on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cipher {
    /// AES-256-GCM: the fastest choice on CPUs with AES and carry-less multiply instructions.
    #[default]
    Aes256Gcm,
    /// ChaCha20-Poly1305: the fastest choice on CPUs without AES instructions.
    ChaCha20Poly1305,
    /// No encryption, all-zero tag. Exists only in fuzzing builds, so that fuzzers reach frame
    /// parsing.
    #[cfg(fuzzing)]
    Null,
}

impl Cipher {
    /// The cipher's name as used in configuration: `"aes-256-gcm"` or `"chacha20-poly1305"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "aes-256-gcm",
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
            #[cfg(fuzzing)]
            Self::Null => "null",
        }
    }
    /// The cipher called `name` (see [`Cipher::name`]), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "aes-256-gcm" => Some(Self::Aes256Gcm),
            "chacha20-poly1305" => Some(Self::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// The faster cipher on this CPU: AES-256-GCM if it has AES (and, on x86, carry-less
    /// multiply) instructions, ChaCha20-Poly1305 otherwise.
    pub fn preferred() -> Self {
        if has_aes_instructions() {
            Self::Aes256Gcm
        } else {
            Self::ChaCha20Poly1305
        }
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn has_aes_instructions() -> bool {
    std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(target_arch = "aarch64")]
fn has_aes_instructions() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
fn has_aes_instructions() -> bool {
    false
}

/// The 32-byte secret shared by both ends, from which every session's keys are derived.
#[derive(Clone)]
pub struct SessionSecret([u8; 32]);

impl SessionSecret {
    /// Wraps raw secret bytes. They should come from a CSPRNG.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

/// Why sealing or opening a packet failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CryptoError {
    /// The buffer cannot hold the header, payload and tag.
    BufferTooSmall,
    /// Authentication failed: the packet was forged or corrupted, or the key or packet number
    /// is wrong.
    OpenFailed,
    /// The AEAD refused to seal (input too long for the algorithm).
    SealFailed,
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BufferTooSmall => "buffer too small for header, payload and tag",
            Self::OpenFailed => "packet authentication failed",
            Self::SealFailed => "packet sealing failed",
        })
    }
}

impl std::error::Error for CryptoError {}

enum KeyInner {
    Ring(aead::LessSafeKey),
    #[cfg(fuzzing)]
    Null,
}

/// One direction's AEAD key and IV.
pub struct PacketKey {
    key: KeyInner,
    iv: [u8; IV_LEN],
}

impl fmt::Debug for PacketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alg = match &self.key {
            KeyInner::Ring(k) => format!("{:?}", k.algorithm()),
            #[cfg(fuzzing)]
            KeyInner::Null => "Null".to_owned(),
        };
        f.debug_struct("PacketKey")
            .field("algorithm", &alg)
            .finish_non_exhaustive()
    }
}

impl PacketKey {
    fn nonce(&self, pn: u64) -> aead::Nonce {
        let mut n = self.iv;
        for (b, p) in n[IV_LEN - 8..].iter_mut().zip(pn.to_be_bytes()) {
            *b ^= p;
        }
        aead::Nonce::assume_unique_for_key(n)
    }

    /// Seals packet `pn` in place: `buf[..header_len]` is the header (authenticated, not
    /// encrypted), `buf[header_len..header_len + payload_len]` the plaintext, which is encrypted
    /// in place; the tag is written right after it. Returns the total length,
    /// `header_len + payload_len + TAG_LEN`.
    ///
    /// # Errors
    ///
    /// [`CryptoError::BufferTooSmall`] if `buf` is shorter than that total.
    pub fn seal(
        &self,
        pn: u64,
        buf: &mut [u8],
        header_len: usize,
        payload_len: usize,
    ) -> Result<usize, CryptoError> {
        let total = header_len
            .checked_add(payload_len)
            .and_then(|n| n.checked_add(TAG_LEN))
            .filter(|&n| n <= buf.len())
            .ok_or(CryptoError::BufferTooSmall)?;
        let (header, rest) = buf.split_at_mut(header_len);
        let (payload, tag_out) = rest.split_at_mut(payload_len);
        let tag_out = &mut tag_out[..TAG_LEN];
        match &self.key {
            KeyInner::Ring(key) => {
                let tag = key
                    .seal_in_place_separate_tag(self.nonce(pn), aead::Aad::from(&*header), payload)
                    .map_err(|_| CryptoError::SealFailed)?;
                tag_out.copy_from_slice(tag.as_ref());
            }
            #[cfg(fuzzing)]
            KeyInner::Null => tag_out.fill(0),
        }
        Ok(total)
    }

    /// Opens packet `pn` in place: `buf[..header_len]` is the header, the rest the ciphertext
    /// followed by the tag. Returns the plaintext, decrypted in place within `buf`.
    ///
    /// # Errors
    ///
    /// [`CryptoError::OpenFailed`] if `buf` is too short to hold a tag or authentication fails.
    pub fn open<'a>(
        &self,
        pn: u64,
        buf: &'a mut [u8],
        header_len: usize,
    ) -> Result<&'a mut [u8], CryptoError> {
        if buf.len() < header_len.saturating_add(TAG_LEN) {
            return Err(CryptoError::OpenFailed);
        }
        let (header, rest) = buf.split_at_mut(header_len);
        match &self.key {
            KeyInner::Ring(key) => key
                .open_in_place(self.nonce(pn), aead::Aad::from(&*header), rest)
                .map_err(|_| CryptoError::OpenFailed),
            #[cfg(fuzzing)]
            KeyInner::Null => {
                let plain_len = rest.len() - TAG_LEN;
                let (plain, tag) = rest.split_at_mut(plain_len);
                if tag.iter().any(|&b| b != 0) {
                    return Err(CryptoError::OpenFailed);
                }
                Ok(plain)
            }
        }
    }
}

/// The two keys of one end of a session: one to seal what it sends, one to open what it
/// receives.
#[derive(Debug)]
pub struct SessionKeys {
    seal: PacketKey,
    open: PacketKey,
}

impl SessionKeys {
    /// Derives the keys of `role` for session `session` (see the module docs for the schedule).
    pub fn derive(cipher: Cipher, secret: &SessionSecret, session: SessionId, role: Role) -> Self {
        let mut salt = [0u8; SALT_PREFIX.len() + 8];
        salt[..SALT_PREFIX.len()].copy_from_slice(SALT_PREFIX);
        salt[SALT_PREFIX.len()..].copy_from_slice(&session.0.to_be_bytes());
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(&secret.0);
        let s2r = packet_key(cipher, &prk, b"jetstream s2r key", b"jetstream s2r iv");
        let r2s = packet_key(cipher, &prk, b"jetstream r2s key", b"jetstream r2s iv");
        match role {
            Role::Sender => Self {
                seal: s2r,
                open: r2s,
            },
            Role::Receiver => Self {
                seal: r2s,
                open: s2r,
            },
        }
    }

    /// The key sealing what this end sends.
    pub fn seal_key(&self) -> &PacketKey {
        &self.seal
    }

    /// The key opening what this end receives.
    pub fn open_key(&self) -> &PacketKey {
        &self.open
    }
}

/// An HKDF output length, as ring wants it.
struct OkmLen(usize);

impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand<const N: usize>(prk: &hkdf::Prk, label: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    prk.expand(&[label], OkmLen(N))
        .and_then(|okm| okm.fill(&mut out))
        // HKDF-SHA256 fails only for outputs over 255 * 32 bytes; N is at most 32.
        .expect("HKDF output length within limits");
    out
}

fn packet_key(cipher: Cipher, prk: &hkdf::Prk, key_label: &[u8], iv_label: &[u8]) -> PacketKey {
    let key_bytes: [u8; KEY_LEN] = expand(prk, key_label);
    let iv: [u8; IV_LEN] = expand(prk, iv_label);
    let ring_key = |alg: &'static aead::Algorithm| {
        // Both algorithms take 32-byte keys, so this cannot fail.
        let key = aead::UnboundKey::new(alg, &key_bytes).expect("32-byte AEAD key");
        KeyInner::Ring(aead::LessSafeKey::new(key))
    };
    let key = match cipher {
        Cipher::Aes256Gcm => ring_key(&aead::AES_256_GCM),
        Cipher::ChaCha20Poly1305 => ring_key(&aead::CHACHA20_POLY1305),
        #[cfg(fuzzing)]
        Cipher::Null => KeyInner::Null,
    };
    PacketKey { key, iv }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HDR: usize = 18;

    fn keys(cipher: Cipher, session: u64, role: Role) -> SessionKeys {
        SessionKeys::derive(
            cipher,
            &SessionSecret::from_bytes([7; 32]),
            SessionId(session),
            role,
        )
    }

    fn sealed(key: &PacketKey, pn: u64, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; HDR + payload.len() + TAG_LEN];
        for (i, b) in buf[..HDR].iter_mut().enumerate() {
            *b = i as u8;
        }
        buf[HDR..HDR + payload.len()].copy_from_slice(payload);
        let n = key.seal(pn, &mut buf, HDR, payload.len()).unwrap();
        assert_eq!(n, buf.len());
        buf
    }

    const CIPHERS: [Cipher; 2] = [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305];

    #[test]
    fn seal_open_round_trip_both_ciphers() {
        for cipher in CIPHERS {
            let tx = keys(cipher, 42, Role::Sender);
            let rx = keys(cipher, 42, Role::Receiver);
            let payload = b"hello, frames";
            let mut buf = sealed(tx.seal_key(), 9, payload);
            assert_ne!(
                &buf[HDR..HDR + payload.len()],
                payload,
                "{cipher}: not encrypted"
            );
            let plain = rx.open_key().open(9, &mut buf, HDR).unwrap();
            assert_eq!(plain, payload, "{cipher}");
        }
    }

    #[test]
    fn any_single_bit_flip_fails_to_open() {
        for cipher in CIPHERS {
            let tx = keys(cipher, 1, Role::Sender);
            let rx = keys(cipher, 1, Role::Receiver);
            let good = sealed(tx.seal_key(), 3, b"0123456789");
            for bit in 0..good.len() * 8 {
                let mut buf = good.clone();
                buf[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(
                    rx.open_key().open(3, &mut buf, HDR),
                    Err(CryptoError::OpenFailed),
                    "{cipher}: bit {bit} flipped"
                );
            }
        }
    }

    #[test]
    fn wrong_packet_number_fails_to_open() {
        for cipher in CIPHERS {
            let tx = keys(cipher, 1, Role::Sender);
            let rx = keys(cipher, 1, Role::Receiver);
            let mut buf = sealed(tx.seal_key(), 1000, b"x");
            assert!(rx.open_key().open(1001, &mut buf, HDR).is_err());
            let mut buf = sealed(tx.seal_key(), 1000, b"x");
            assert!(rx.open_key().open(1000, &mut buf, HDR).is_ok());
        }
    }

    #[test]
    fn directions_pair_up_and_differ() {
        for cipher in CIPHERS {
            let tx = keys(cipher, 5, Role::Sender);
            let rx = keys(cipher, 5, Role::Receiver);
            // Receiver -> sender.
            let mut buf = sealed(rx.seal_key(), 0, b"ack");
            assert_eq!(tx.open_key().open(0, &mut buf, HDR).unwrap(), b"ack");
            // A datagram sealed in one direction does not open in the other.
            let mut buf = sealed(tx.seal_key(), 0, b"data");
            assert!(tx.open_key().open(0, &mut buf, HDR).is_err());
            let mut buf = sealed(rx.seal_key(), 0, b"data");
            assert!(rx.open_key().open(0, &mut buf, HDR).is_err());
        }
    }

    #[test]
    fn different_sessions_or_secrets_give_different_keys() {
        for cipher in CIPHERS {
            let tx = keys(cipher, 5, Role::Sender);
            let other = keys(cipher, 6, Role::Receiver);
            let mut buf = sealed(tx.seal_key(), 0, b"data");
            assert!(other.open_key().open(0, &mut buf, HDR).is_err());
            let other_secret = SessionKeys::derive(
                cipher,
                &SessionSecret::from_bytes([8; 32]),
                SessionId(5),
                Role::Receiver,
            );
            let mut buf = sealed(tx.seal_key(), 0, b"data");
            assert!(other_secret.open_key().open(0, &mut buf, HDR).is_err());
        }
    }

    #[test]
    fn ciphers_do_not_interoperate() {
        let tx = keys(Cipher::Aes256Gcm, 5, Role::Sender);
        let rx = keys(Cipher::ChaCha20Poly1305, 5, Role::Receiver);
        let mut buf = sealed(tx.seal_key(), 0, b"data");
        assert!(rx.open_key().open(0, &mut buf, HDR).is_err());
    }

    #[test]
    fn short_buffers_are_errors_not_panics() {
        let k = keys(Cipher::Aes256Gcm, 5, Role::Sender);
        let mut buf = [0u8; HDR + 4 + TAG_LEN - 1];
        assert_eq!(
            k.seal_key().seal(0, &mut buf, HDR, 4),
            Err(CryptoError::BufferTooSmall)
        );
        assert_eq!(
            k.seal_key().seal(0, &mut buf, usize::MAX, 4),
            Err(CryptoError::BufferTooSmall)
        );
        for len in 0..HDR + TAG_LEN {
            let mut buf = vec![0u8; len];
            assert_eq!(
                k.open_key().open(0, &mut buf, HDR),
                Err(CryptoError::OpenFailed)
            );
        }
    }

    #[test]
    fn names_round_trip_and_secret_is_redacted() {
        for cipher in CIPHERS {
            assert_eq!(Cipher::from_name(cipher.name()), Some(cipher));
        }
        assert_eq!(Cipher::default(), Cipher::Aes256Gcm);
        let _ = Cipher::preferred();
        let dbg = format!("{:?}", SessionSecret::from_bytes([0xab; 32]));
        assert!(!dbg.contains("ab") && !dbg.contains("171"), "{dbg}");
        let dbg = format!("{:?}", keys(Cipher::Aes256Gcm, 1, Role::Sender));
        assert!(!dbg.contains("iv:"), "{dbg}");
    }
}
