//! Secrets at rest and in print: the password KDF of API and shared tokens, and how a secret
//! is shown where it must not appear in full (`Debug`, trigger arguments, the event log).
//!
//! **Token passwords** are stored as PBKDF2-HMAC-SHA256 (`ring::pbkdf2`) in a self-describing
//! string, `pbkdf2-sha256$<iterations>$<salt>$<hash hex>`, so the iteration count can rise
//! later without breaking stored tokens. [`ITERATIONS`] is 600,000, OWASP's 2023 figure for
//! PBKDF2-HMAC-SHA256: one verification took 0.22–0.30 s on the 2-core AMD EPYC virtual
//! machine it was measured on (under a load average of 9), i.e. a few logins per second per
//! core, paid only by logins with password-protected tokens. The salt is the token record's own salt (32 hex chars from the OS
//! generator).
//!
//! Servers before this change stored `hex(SHA-256(salt ‖ password))` (64 hex chars, no `$`).
//! Such a hash is still recognised and checked; on the next successful login the caller
//! replaces it with the KDF form ([`Check::ValidOutdated`]). A stored string in neither form
//! is refused ([`FormatError`]): the token cannot be used until it is recreated.

use std::fmt;
use std::num::NonZeroU32;

use ring::{digest, pbkdf2};

/// PBKDF2 iterations for new hashes (OWASP Password Storage Cheat Sheet, 2023).
pub const ITERATIONS: u32 = 600_000;

/// Largest iteration count accepted from a stored hash: a corrupt or hostile state file must
/// not make one login cost minutes.
const MAX_ITERATIONS: u32 = 10_000_000;

/// The algorithm tag of the KDF form.
const ALGORITHM: &str = "pbkdf2-sha256";

/// Output length (SHA-256).
const HASH_LEN: usize = digest::SHA256_OUTPUT_LEN;

/// What checking a password against a stored hash found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The password is wrong.
    Invalid,
    /// The password is right and the hash is current.
    Valid,
    /// The password is right but the hash is the old SHA-256 form or uses fewer iterations
    /// than [`ITERATIONS`]: store [`hash_password`] of it now.
    ValidOutdated,
}

impl Check {
    /// Whether the password was right.
    pub fn is_valid(self) -> bool {
        self != Self::Invalid
    }
}

/// A stored hash in no form this server knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError(String);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unrecognised password hash format: {}", self.0)
    }
}

impl std::error::Error for FormatError {}

/// The KDF form of `password` with `salt` and [`ITERATIONS`].
pub fn hash_password(salt: &str, password: &str) -> String {
    hash_with(ITERATIONS, salt, password)
}

fn hash_with(iterations: u32, salt: &str, password: &str) -> String {
    let mut out = [0u8; HASH_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN),
        salt.as_bytes(),
        password.as_bytes(),
        &mut out,
    );
    format!(
        "{ALGORITHM}${iterations}${salt}${}",
        super::objects::hex(&out)
    )
}

/// Checks `password` against `stored` (KDF form, or the old SHA-256 form whose salt is
/// `legacy_salt`), in constant time with respect to the password.
///
/// # Errors
/// `stored` is in neither form (or its iteration count is 0 or above 10,000,000).
pub fn verify_password(
    stored: &str,
    legacy_salt: &str,
    password: &str,
) -> Result<Check, FormatError> {
    if is_legacy(stored) {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(legacy_salt.as_bytes());
        ctx.update(password.as_bytes());
        let given = super::objects::hex(ctx.finish().as_ref());
        return Ok(
            if super::commands::ct_eq(stored.as_bytes(), given.as_bytes()) {
                Check::ValidOutdated
            } else {
                Check::Invalid
            },
        );
    }
    let bad = |why: &str| FormatError(why.to_owned());
    let mut parts = stored.splitn(4, '$');
    let (Some(alg), Some(iter), Some(salt), Some(hash)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not algorithm$iterations$salt$hash"));
    };
    if alg != ALGORITHM {
        return Err(bad("unknown algorithm"));
    }
    let iterations: u32 = iter.parse().map_err(|_| bad("bad iteration count"))?;
    let iterations = NonZeroU32::new(iterations)
        .filter(|n| n.get() <= MAX_ITERATIONS)
        .ok_or_else(|| bad("iteration count out of range"))?;
    let expected = unhex(hash).ok_or_else(|| bad("hash is not hex"))?;
    if expected.len() != HASH_LEN {
        return Err(bad("hash has the wrong length"));
    }
    let ok = pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt.as_bytes(),
        password.as_bytes(),
        &expected,
    )
    .is_ok();
    Ok(match (ok, iterations.get() < ITERATIONS) {
        (false, _) => Check::Invalid,
        (true, false) => Check::Valid,
        (true, true) => Check::ValidOutdated,
    })
}

/// Whether `stored` is the pre-KDF form: 64 hex chars.
fn is_legacy(stored: &str) -> bool {
    stored.len() == 2 * HASH_LEN && stored.bytes().all(|b| b.is_ascii_hexdigit())
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// How a password is shown wherever one would otherwise appear.
pub const MASK: &str = "********";

/// How a token is shown (in `jetstream-client`, which shows tokens too); used throughout the
/// server from here.
pub use jetstream_client::shown::shown_token;

/// `Debug` of an optional secret: `Some(<mask>)` or `None`, never the value.
pub struct MaskedOpt<'a, T>(pub &'a Option<T>);

impl<T> fmt::Debug for MaskedOpt<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => write!(f, "Some({MASK})"),
            None => f.write_str("None"),
        }
    }
}

pub use jetstream_client::shown::ShownTokenOpt;

/// Whether a JSON key names a secret, and which kind: any key containing `password`,
/// `passphrase` or `secret` (any case), or ending in `token` (`token`, `ownerToken`, ...).
pub fn is_secret_key(key: &str) -> Option<SecretKind> {
    let k = key.to_ascii_lowercase();
    if k.contains("password") || k.contains("passphrase") || k.contains("secret") {
        Some(SecretKind::Password)
    } else if k.ends_with("token") {
        Some(SecretKind::Token)
    } else {
        None
    }
}

/// The two ways a secret is hidden.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    /// Replaced by [`MASK`].
    Password,
    /// Replaced by [`shown_token`].
    Token,
}

/// Masks, in place and at any depth, every `ownerToken` (the API token an object was made
/// through) to its first characters: enough to tell one's tokens apart, never enough to log in.
/// Every API answer goes through it. The objects that carry the field are shown to more than
/// the token's holder: its user's password sessions, superusers, and the holder of a download
/// link for a manifest made through the token (`send.getManifest`), who must not get a login
/// for the user's whole account.
pub fn mask_owner_tokens(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                match item {
                    Value::String(s) if k == "ownerToken" => *s = shown_token(s),
                    _ => mask_owner_tokens(item),
                }
            }
        }
        Value::Array(list) => list.iter_mut().for_each(mask_owner_tokens),
        _ => {}
    }
}

/// Replaces, in place and at any depth, every string or number under a secret key (see
/// [`is_secret_key`]) by its masked form; returns the secret strings it replaced, so that the
/// caller can also scrub them from free text.
pub fn redact_json(v: &mut serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    redact_into(v, &mut found);
    found
}

fn redact_into(v: &mut serde_json::Value, found: &mut Vec<String>) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                match (is_secret_key(k), &*item) {
                    (Some(kind), Value::String(s)) => {
                        if !s.is_empty() {
                            found.push(s.clone());
                        }
                        *item = Value::String(match kind {
                            SecretKind::Password => MASK.to_owned(),
                            SecretKind::Token => shown_token(s),
                        });
                    }
                    (Some(_), Value::Number(_)) => *item = Value::String(MASK.to_owned()),
                    _ => redact_into(item, found),
                }
            }
        }
        Value::Array(list) => list.iter_mut().for_each(|i| redact_into(i, found)),
        _ => {}
    }
}

/// `text` with every occurrence of each secret in `secrets` replaced by its shown form
/// (secrets shorter than 4 characters are masked only where a key named them, since
/// replacing them in free text would garble it).
pub fn scrub_text(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| s.chars().count() >= 4) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), &shown_token(s));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kdf_hash_is_self_describing_and_verifies() {
        let h = hash_with(1000, "00112233", "pw");
        assert!(h.starts_with("pbkdf2-sha256$1000$00112233$"), "{h}");
        assert_eq!(h.rsplit('$').next().unwrap().len(), 64);
        assert_eq!(
            verify_password(&h, "ignored", "pw"),
            Ok(Check::ValidOutdated)
        );
        assert_eq!(verify_password(&h, "ignored", "pX"), Ok(Check::Invalid));
        let current = hash_password("salt", "pw");
        assert!(
            current.starts_with("pbkdf2-sha256$600000$salt$"),
            "{current}"
        );
        let t0 = std::time::Instant::now();
        assert_eq!(verify_password(&current, "", "pw"), Ok(Check::Valid));
        // The cost quoted in docs/security.md (printed, not asserted):
        // `cargo test -p jetstream-server --lib kdf_hash -- --nocapture`.
        println!(
            "one verification at the current count: {:.2} s",
            t0.elapsed().as_secs_f64()
        );
        assert_eq!(verify_password(&current, "", ""), Ok(Check::Invalid));
    }

    /// The old form (`hex(SHA-256(salt ‖ password))`, what every server before the KDF
    /// wrote) still verifies, and asks for an upgrade.
    #[test]
    fn legacy_sha256_hash_verifies_and_asks_for_upgrade() {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"abc123");
        ctx.update(b"secret pw");
        let legacy = super::super::objects::hex(ctx.finish().as_ref());
        assert_eq!(
            verify_password(&legacy, "abc123", "secret pw"),
            Ok(Check::ValidOutdated)
        );
        assert_eq!(
            verify_password(&legacy, "abc123", "wrong"),
            Ok(Check::Invalid)
        );
        assert_eq!(
            verify_password(&legacy, "other", "secret pw"),
            Ok(Check::Invalid)
        );
    }

    #[test]
    fn unknown_forms_are_refused() {
        for bad in [
            "",
            "abc",
            "md5$1$s$00",
            "pbkdf2-sha256$0$s$00",
            "pbkdf2-sha256$99999999999$s$00",
            "pbkdf2-sha256$20000000$s$00",
            "pbkdf2-sha256$1000$s$zz",
            "pbkdf2-sha256$1000$s$0011",
            "pbkdf2-sha256$1000$s",
        ] {
            assert!(verify_password(bad, "s", "pw").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let token = "0123456789abcdef0123456789abcdef";
        let mut v = json!({
            "token": token,
            "ownerToken": token,
            "ownerTokenSession": "s1",
            "nested": [{"Password": "hunter22", "x": 1}, {"passphrase": "p"}],
            "tokens": 3,
            "description": "keep",
        });
        let found = redact_json(&mut v);
        let text = v.to_string();
        assert!(!text.contains(token), "{text}");
        assert!(!text.contains("hunter22"), "{text}");
        assert_eq!(v["token"], "012345…");
        assert_eq!(v["nested"][0]["Password"], MASK);
        assert_eq!(v["nested"][1]["passphrase"], MASK);
        assert_eq!(v["tokens"], 3);
        assert_eq!(v["description"], "keep");
        let msg = format!("no shared token \"{token}\" (hunter22)");
        let scrubbed = scrub_text(&msg, &found);
        assert!(
            !scrubbed.contains(token) && !scrubbed.contains("hunter22"),
            "{scrubbed}"
        );
    }

    #[test]
    fn shown_token_cuts_at_a_char_boundary() {
        assert_eq!(shown_token("abcdefgh"), "abcdef…");
        assert_eq!(shown_token("ab"), "ab…");
        assert_eq!(shown_token("ééééééé"), "éééééé…");
    }
}
