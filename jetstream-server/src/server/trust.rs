//! (placeholder, being written) Authorized clients: `recv.addAuthorizedClientAsync`,
//! `recv.removeAuthorizedClientAsync`, `recv.allowOnlyAuthorizedClientsAsync`.

use std::path::Path;

use serde_json::Value;

use super::api::{ApiError, Ctx};
use super::params::Params;

type Reply = Result<(String, Value), ApiError>;

/// The authorized-client list and its switch, kept in the state dir.
#[derive(Debug, Default)]
pub struct AuthorizedClients;

impl AuthorizedClients {
    /// Loads the list from `state_dir`.
    ///
    /// # Errors
    /// A corrupt list file.
    pub fn load(_state_dir: &Path) -> Result<Self, String> {
        Ok(Self)
    }
    /// Whether only authorized clients may start transfers.
    pub fn only_authorized(&self) -> bool {
        false
    }
    /// Refuses a transfer from a sending server presenting `peer_key` when it is not allowed.
    ///
    /// # Errors
    /// The message for the sending server.
    pub fn check(&self, _peer_key: Option<&str>) -> Result<(), ApiError> {
        Ok(())
    }
}

/// `recv.addAuthorizedClientAsync`.
///
/// # Errors
/// Not a superuser, a bad key.
pub fn add(_ctx: &mut Ctx<'_>, _p: Params<'_>) -> Reply {
    Err(ApiError("not implemented yet".into()))
}

/// `recv.removeAuthorizedClientAsync`.
///
/// # Errors
/// Not a superuser, a bad key.
pub fn remove(_ctx: &mut Ctx<'_>, _p: Params<'_>) -> Reply {
    Err(ApiError("not implemented yet".into()))
}

/// `recv.allowOnlyAuthorizedClientsAsync`.
///
/// # Errors
/// Not a superuser, a bad value.
pub fn allow_only(_ctx: &mut Ctx<'_>, _p: Params<'_>) -> Reply {
    Err(ApiError("not implemented yet".into()))
}
