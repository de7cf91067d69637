//! Public keys as both ends of a TLS connection see them: the hex of a certificate's
//! SubjectPublicKeyInfo (what servers report as `publicKey` and clients pin), its human
//! fingerprint, and the certificate a client presents ([`ClientCert`]).
//!
//! The server's side (its identity, the accepting socket) is in `jetstream-server`; it uses
//! these helpers from here, so that both ends compute keys and fingerprints one way.

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ParsedCertificate;

/// The human fingerprint of a public key given as hex: `SHA256:` + hex SHA-256 of its bytes.
///
/// Text that is not valid hex yields `SHA256:invalid`.
pub fn fingerprint_of(public_key_hex: &str) -> String {
    match hex_decode(public_key_hex) {
        Some(bytes) => {
            let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
            format!("SHA256:{}", hex_encode(digest.as_ref()))
        }
        None => "SHA256:invalid".to_owned(),
    }
}

/// Lowercase hex of `bytes`.
pub fn hex_encode(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The bytes of hex `text` (surrounding white space ignored, either case); `None` when it is
/// not hex.
pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The public key (lowercase hex SPKI) of the certificate the peer of `conn` presented, once
/// the handshake has verified that it holds the key.
pub fn peer_key(conn: &rustls::CommonState) -> Option<String> {
    conn.peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| spki_hex(leaf).ok())
}

/// Fewest and most hex digits of a plausible public key (a SubjectPublicKeyInfo of 20 to
/// 1000 bytes: from a small EC key to a large RSA key).
pub const PUBLIC_KEY_HEX: std::ops::RangeInclusive<usize> = 40..=2000;

/// `text` as a public key (hex of a SubjectPublicKeyInfo, as `publicKey` shows it),
/// trimmed and lowercased; `None` when it is not hex of a plausible length.
pub fn plausible_public_key(text: &str) -> Option<String> {
    let key = text.trim();
    (key.len() % 2 == 0
        && PUBLIC_KEY_HEX.contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_hexdigit()))
    .then(|| key.to_ascii_lowercase())
}

/// Lowercase hex of the SPKI DER of `cert`.
///
/// # Errors
/// The certificate does not parse (the message says why).
pub fn spki_hex(cert: &CertificateDer<'_>) -> Result<String, String> {
    let parsed = ParsedCertificate::try_from(cert).map_err(|e| e.to_string())?;
    Ok(hex_encode(parsed.subject_public_key_info().as_ref()))
}

/// A certificate chain and its private key, presented as the client's certificate (a server
/// contacting another presents its own identity, so that the receiver can check it against
/// its authorized clients).
///
/// `Debug` never prints the key.
#[derive(Clone)]
pub struct ClientCert {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl ClientCert {
    /// The chain (leaf first) and the leaf's private key.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self {
            chain,
            key: Arc::new(key),
        }
    }

    /// The chain and a copy of the key, as rustls takes them.
    pub(crate) fn chain_and_key(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (self.chain.clone(), self.key.clone_key())
    }
}

impl fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.chain.first().and_then(|c| spki_hex(c).ok());
        f.debug_struct("ClientCert")
            .field("public_key", &key)
            .finish_non_exhaustive()
    }
}

/// The handshake-signature checks of a certificate verifier that trusts keys rather than CAs
/// (the client's pin verifier and the server's client-certificate verifier): the peer must
/// prove it holds the key, with the ring provider's algorithms (the implementing type's
/// `algorithms` field, a [`rustls::crypto::WebPkiSupportedAlgorithms`]).
#[macro_export]
macro_rules! handshake_signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_hex_and_plausible_keys() {
        assert_eq!(fingerprint_of("zz"), "SHA256:invalid");
        assert_eq!(
            fingerprint_of(""),
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(hex_encode(&[0, 0xab]), "00ab");
        assert_eq!(hex_decode(" 00AB "), Some(vec![0, 0xab]));
        assert_eq!(hex_decode("abc"), None);
        let key = "AB".repeat(20);
        assert_eq!(plausible_public_key(&key), Some("ab".repeat(20)));
        assert_eq!(plausible_public_key("abcd"), None);
        assert_eq!(plausible_public_key(&"zz".repeat(20)), None);
    }
}
