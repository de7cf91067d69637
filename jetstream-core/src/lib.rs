//! `jetstream-core`: the embeddable engine of JetStream, a UDP-accelerated file transfer system.
//!
//! An [`Engine`] owns one UDP socket and one event-loop thread and runs any number of
//! transfers in both directions. A transfer moves a [`Manifest`] (files and empty directories)
//! to another engine that expects it, encrypted with AES-256-GCM or ChaCha20-Poly1305, paced by
//! a BBR-like rate controller, verified end to end with BLAKE3, and resumable after a crash of
//! either side.
//!
//! ```text
//!  EngineHandle ──commands──► engine thread: UdpSocket (GSO/GRO) ⇄ proto::Endpoint ⇄ sessions
//!  reader thread ──chunks──►                                 │
//!  sink workers  ◄──units─── (hash + write + finalise)  ◄────┘      trigger thread ◄── events
//! ```
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use jetstream_core::{Destination, Engine, EngineConfig, Manifest, TransferKeys};
//!
//! # fn main() -> Result<(), jetstream_core::Error> {
//! let mut config = EngineConfig::default();
//! config.bind("127.0.0.1:0".parse().expect("literal address"));
//! let receiver = Engine::spawn(config.clone())?;
//! let sender = Engine::spawn(config)?;
//! let keys = TransferKeys::random()?; // in the server: derived over its TLS control channel
//! let incoming = receiver.handle().receive(keys.clone(), "/srv/incoming")?;
//! let manifest = Manifest::from_sources(&["/data/footage"])?;
//! let outgoing = sender.handle().send(Destination::new(receiver.local_addr()), keys, manifest)?;
//! outgoing.wait(Duration::from_secs(3600))?;
//! incoming.wait(Duration::from_secs(60))?;
//! # Ok(()) }
//! ```
//!
//! # Layers
//!
//! - [`proto`]: the sans-IO protocol (the quinn-proto role): codec, AEAD, sessions, loss
//!   recovery, rate control. No sockets, files, clocks or OS randomness; driven through
//!   [`proto::Endpoint`], whose documentation states the driving contract.
//! - [`io`]: the mio driver, the only code that touches sockets.
//! - [`fs`]: reading sources, writing and verifying destinations, path safety, the resume
//!   journal. Blocking work runs on its own threads.
//!
//! # What it does not do
//!
//! Authenticate users, exchange keys, map sandboxes, run trigger scripts or persist server
//! state: that is the server's job (`jetstream-server`). Design notes: `docs/DESIGN.md`.
//!
//! # Failures
//!
//! Every way a transfer or one of its files can fail is a [`FailureReason`], with a stable
//! snake_case code: in [`Error::TransferFailed`], [`TransferStatus::failure`],
//! [`TransferStatus::failed_files`] and the [`TriggerEvent`]s. Match on it, never on message
//! text. The `serde` feature serialises it as its code.

#![cfg_attr(not(fuzzing), warn(missing_docs))]

pub mod config;
pub mod error;
pub mod failure;
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
pub use failure::{FailedFile, FailureReason};
pub use io::{Discovery, Engine, EngineHandle};
pub use manifest::Manifest;
pub use proto::congestion::{PathHint, RateMode};
pub use transfer::{Destination, Transfer, TransferKeys, TransferStatus};
pub use trigger::{Trigger, TriggerEvent};
pub use types::{BitsPerSecond, Digest, FileIndex, Role, SessionId, TransferId};
