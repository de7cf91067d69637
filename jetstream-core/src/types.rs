//! Identifiers and quantities shared by every layer. Newtypes, never bare integers.

use std::fmt;

/// Identifies one transfer session on the wire. Many sessions share one UDP port; the receiver
/// demultiplexes on this id. Chosen at random by whoever sets the session up (the caller, not the
/// protocol core), and expected by the receiver before the first datagram arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Index of an entry in a transfer's manifest, as carried in data frames.
///
/// Two values are reserved for the transfer's own metadata, which travels through the same
/// reliable byte space as the files: [`FileIndex::MANIFEST`] and [`FileIndex::DIGESTS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileIndex(pub u32);

impl FileIndex {
    /// The encoded manifest itself.
    pub const MANIFEST: Self = Self(u32::MAX);
    /// The table of per-file BLAKE3 digests (32 bytes per manifest entry).
    pub const DIGESTS: Self = Self(u32::MAX - 1);
    /// Largest index usable by a real manifest entry.
    pub const MAX_ENTRY: u32 = u32::MAX - 16;
}

/// Which end of a transfer a session is. Matches the `send.` / `recv.` prefixes of event names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Reads files and sends them.
    Sender,
    /// Receives and writes files.
    Receiver,
}

/// A data rate. The JSON API speaks kbit/s; the engine converts at the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BitsPerSecond(pub u64);

impl BitsPerSecond {
    /// From the kbit/s unit used by the reference API (`sendRateMax`).
    pub fn from_kbps(kbps: u64) -> Self {
        Self(kbps.saturating_mul(1000))
    }
    /// As kbit/s, for the API.
    pub fn as_kbps(self) -> u64 {
        self.0 / 1000
    }
    /// As bytes per second.
    pub fn bytes_per_sec(self) -> u64 {
        self.0 / 8
    }
}

/// Opaque 128-bit transfer identifier, shown as 32 lowercase hex characters like every id of the
/// reference API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId(pub [u8; 16]);

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for TransferId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(());
        }
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| ())?;
        }
        Ok(Self(out))
    }
}

/// The 32-byte BLAKE3 digest of a file's contents.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// What a sender puts in an entry's digest slot when it could not read the entry (an I/O
    /// error, or the file changed size): the receiver then fails that entry at once, keeping
    /// what arrived for a resume, instead of waiting for bytes that will never come. No file
    /// has this BLAKE3 digest in practice (2^-256).
    pub const SOURCE_FAILED: Self = Self([0xff; 32]);
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
