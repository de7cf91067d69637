//! A JetStream control API client, for programs: connect, log in, and call any command with
//! its typed parameters and result.
//!
//! ```no_run
//! use jetstream_api::Api as _;
//! use jetstream_client::client::{ApiClient, ConnectOptions, Trust};
//!
//! # fn main() -> Result<(), jetstream_client::client::ClientError> {
//! // Pin the server's public key (its `publicKey`), as servers do with each other.
//! let key = "3059301306072a8648ce3d0201...".to_owned();
//! let mut client = ApiClient::connect("jet.lan", 8886, &ConnectOptions::new(Trust::Pinned(Some(key))))?;
//! let info = client.get_server_info(&Default::default())?;
//! # let _ = info;
//! # Ok(())
//! # }
//! ```
//!
//! [`client::ApiClient`] implements [`jetstream_api::Api`], one method per command: the
//! parameters are `jetstream_api::params` structs, the results `jetstream_api::types`, and a
//! failure is a [`client::ClientError`] that tells a transport or TLS problem (including an
//! unknown or changed server key) from the server's refusal ([`client::ClientError::Api`], with
//! its message) and from a result that does not decode ([`client::ClientError::Decode`]).
//!
//! This crate links neither the server nor PAM nor the sandbox code: `jscp` is built on it and
//! on `jetstream-core` alone. The server uses it too, to call other servers and for the pieces
//! both ends of a connection share:
//!
//! - [`client`]: the connection (plain TCP on loopback, else TLS trusted by a pinned key or a
//!   known-hosts file, ssh style), raw and typed calls;
//! - [`tls`]: public keys (SPKI hex), fingerprints, the certificate a client presents;
//! - [`session`]: the ciphers offered and the data keys derived from the TLS session;
//! - [`ids`]: fresh object, transfer and session ids;
//! - [`manifest`]: scanning local sources into a manifest (what a sender sends);
//! - [`paths`]: the path memory (what the last transfer to a peer measured);
//! - [`login`]: what console programs (`jetstream api`, `jscp`) share: the terminal prompts,
//!   logging in, exit statuses;
//! - [`shown`]: how a token is shown where it must not appear in full.
#![warn(missing_docs)]

pub mod client;
pub mod ids;
mod local;
pub mod login;
pub mod manifest;
pub mod paths;
pub mod session;
pub mod shown;
pub mod tls;

pub use client::{ApiClient, ClientError, ConnectOptions, Trust};
pub use jetstream_api::Api;
