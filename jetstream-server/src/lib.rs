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

// Internals: the `jetstream` binary's parts (flags and configuration file, `jetstream api`,
// the relay, systemd notify) and the server's modules, public for the binary, the fuzz targets
// and the project's tests. Hidden from the documentation and free to change in any release:
// the API of this crate is what the crate root exports below.
#[doc(hidden)]
pub mod cli_api;
#[doc(hidden)]
pub mod config_file;
#[doc(hidden)]
pub mod notify;
#[doc(hidden)]
pub mod pam;
#[doc(hidden)]
pub mod relay;
#[doc(hidden)]
pub mod sandbox;
#[doc(hidden)]
pub mod server;
#[doc(hidden)]
pub mod tls;
#[doc(hidden)]
pub mod users;

#[doc(hidden)]
pub use jetstream_api::wire;

pub use server::config::{DEFAULT_EVENT_QUEUE, LIVE_KEYS};
pub use server::error::{Port, ServerError};
pub use server::events::{NoServerTrigger, ReceivedFile, ServerEvent, ServerTrigger};
pub use server::log::{set_level as set_log_level, to_sink as log_to_sink, Level as LogLevel};
pub use server::{spawn, spawn_with_trigger, ServerConfig, ServerHandle};
