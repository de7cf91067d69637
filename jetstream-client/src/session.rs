//! What a data session needs from its control connection: the ciphers a side offers, and the
//! transfer keys both ends derive from the TLS session they share.
//!
//! The data keys are never sent: each end exports keying material from the TLS session
//! (RFC 5705 / RFC 8446 §7.5) under [`KEY_LABEL`] and a context naming the transfer, the
//! session and the cipher ([`key_context`]), so only the two ends of that authenticated
//! connection hold them. The client side is [`client_keys`]; the server side calls
//! [`derive_keys`] with its own exporter.
//!
//! The ciphers are both 256-bit AEADs with 128-bit tags, ranked so that a cipher floor means
//! something to administrators: AES-256-GCM above ChaCha20-Poly1305, because it is the
//! FIPS-approved one.

use std::io;

use jetstream_core::proto::crypto::{Cipher, SessionSecret};
use jetstream_core::{SessionId, TransferKeys};

use crate::client::ApiClient;

/// TLS exporter label of the data keys (RFC 5705 / RFC 8446 §7.5).
pub const KEY_LABEL: &[u8] = b"EXPORTER-jetstream-data-v1";

/// The exporter context: binds the keys to this transfer, session and cipher.
pub fn key_context(transfer_id: &str, session_id: SessionId, cipher: Cipher) -> Vec<u8> {
    format!("{transfer_id}:{:016x}:{}", session_id.0, cipher.name()).into_bytes()
}

/// The transfer keys both ends compute from their shared TLS session; `export` is the
/// connection's keying-material exporter (`label`, `context`, `out`).
///
/// # Errors
/// What `export` returns: the connection is not TLS (the exporter is the only key source).
pub fn derive_keys(
    export: impl FnOnce(&[u8], &[u8], &mut [u8]) -> io::Result<()>,
    transfer_id: &str,
    session_id: SessionId,
    cipher: Cipher,
) -> io::Result<TransferKeys> {
    let mut secret = [0u8; 32];
    export(
        KEY_LABEL,
        &key_context(transfer_id, session_id, cipher),
        &mut secret,
    )?;
    Ok(TransferKeys::new(
        session_id,
        SessionSecret::from_bytes(secret),
        cipher,
    ))
}

/// The keys the client side of an API connection derives (the sending server, `jscp`).
///
/// # Errors
/// When the connection is not TLS.
pub fn client_keys(
    client: &ApiClient,
    transfer_id: &str,
    session_id: SessionId,
    cipher: Cipher,
) -> io::Result<TransferKeys> {
    derive_keys(
        |label, context, out| {
            client
                .export_keying_material(label, context, out)
                .map_err(|e| io::Error::other(e.to_string()))
        },
        transfer_id,
        session_id,
        cipher,
    )
}

/// Every cipher, weakest first.
pub const RANKED: [&str; 2] = ["chacha20-poly1305", "aes-256-gcm"];

/// Rank of a cipher name (higher is stronger), `None` if unknown.
pub fn rank(name: &str) -> Option<usize> {
    RANKED.iter().position(|c| *c == name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_and_ranks() {
        assert_eq!(offer(&[]).len(), 2);
        assert_eq!(
            offer(&[]).first().map(String::as_str),
            Some(Cipher::preferred().name())
        );
        assert_eq!(offer(&["aes-256-gcm".into()]), vec!["aes-256-gcm"]);
        assert!(rank("aes-256-gcm") > rank("chacha20-poly1305"));
        assert_eq!(rank("rot13"), None);
    }

    #[test]
    fn keys_depend_on_transfer_session_and_cipher() {
        let secret_of = |ctx: &[u8]| {
            let ctx = ctx.to_owned();
            move |label: &[u8], context: &[u8], out: &mut [u8]| {
                assert_eq!(label, KEY_LABEL);
                assert_eq!(context, &ctx[..]);
                out.fill(7);
                Ok(())
            }
        };
        let ctx = key_context("t1", SessionId(0xab), Cipher::Aes256Gcm);
        assert_eq!(ctx, b"t1:00000000000000ab:aes-256-gcm");
        derive_keys(secret_of(&ctx), "t1", SessionId(0xab), Cipher::Aes256Gcm).unwrap();
        let refused = derive_keys(
            |_: &[u8], _: &[u8], _: &mut [u8]| Err(io::Error::other("plain")),
            "t1",
            SessionId(1),
            Cipher::Aes256Gcm,
        );
        assert!(refused.is_err());
    }
}
