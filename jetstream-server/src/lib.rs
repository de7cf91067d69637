//! The JetStream server: the control API, users, sandboxes, persistent state and the
//! orchestration of server-to-server transfers around the `jetstream-core` engine.
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
