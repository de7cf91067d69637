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
pub mod transfer;
pub mod trigger;
pub mod types;

pub use config::{EngineConfig, TransportConfig};
pub use error::Error;
pub use io::{Engine, EngineHandle};
pub use manifest::Manifest;
pub use transfer::{Destination, Transfer, TransferKeys, TransferStatus};
pub use trigger::{Trigger, TriggerEvent};
pub use types::{BitsPerSecond, Digest, FileIndex, Role, SessionId, TransferId};
