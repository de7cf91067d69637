//! The JetStream server: the control API, users, sandboxes, persistent state and the
//! orchestration of server-to-server transfers around the `jetstream-core` engine.
//!
//! # Embedding
//!
//! [`spawn`] (or [`spawn_with_trigger`]) starts a server from a [`ServerConfig`] and returns
//! a [`ServerHandle`]: its bound addresses, `stop`, `wait` and `reload`. Its events
//! ([`ServerEvent`]: destination created, transfer started / complete / failed, command
//! processed...) reach a [`ServerTrigger`] on a thread of its own, none dropped. The library
//! never exits the process, installs no signal handler and opens no log file; errors are
//! [`ServerError`]s. `examples/asset_manager.rs` embeds two servers and moves files between
//! them.
#![warn(missing_docs)]

pub mod cli_api;
pub mod config_file;
pub mod notify;
pub mod pam;
pub mod relay;
pub mod sandbox;
pub mod server;
pub mod tls;
pub mod users;

/// The control API's framing, now defined in `jetstream-api`.
pub use jetstream_api::wire;

pub use server::error::{Port, ServerError};
pub use server::events::{NoServerTrigger, ReceivedFile, ServerEvent, ServerTrigger};
pub use server::{spawn, spawn_with_trigger, ServerConfig, ServerHandle};
