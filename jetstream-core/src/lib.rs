//! `jetstream-core`: the embeddable engine of JetStream, a UDP-accelerated file transfer system.
//!
//! (Crate documentation is completed in `docs/DESIGN.md`; see the README for an overview.)

#![cfg_attr(not(fuzzing), warn(missing_docs))]

pub mod config;
pub mod error;
pub mod fs;
pub mod io;
pub mod manifest;
pub mod proto;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod types;

pub use types::{BitsPerSecond, Digest, FileIndex, Role, SessionId, TransferId};
