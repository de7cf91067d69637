//! System users: looking them up, deciding who is a superuser, and logging them in through PAM
//! with per-source and per-user throttling of failed attempts.
//!
//! Rules (reference §6.1, §6.2):
//! - logins are checked by PAM with the service [`PAM_SERVICE`] (`/etc/pam.d/jetstream`);
//!   accounts without a password cannot log in;
//! - a server not running as root can only log in the account it runs as;
//! - failed attempts are throttled per (user, source), per source and per user, so that a
//!   stranger guessing a user's password from one address cannot lock that user out of the
//!   others (see [`Authenticator::login`]);
//! - superusers are root, the account running the server, the users named by `--superuser`
//!   and the members of the `--supergroup` groups (default `sudo`, `wheel`, `admin`).
//!
//! Layout: `database` reads the user and group databases ([`SystemUser`], [`lookup`]),
//! `superuser` is [`SuperuserPolicy`], `throttle` keeps the failure tables, `authenticator`
//! is [`Authenticator`] (the login itself), and [`test_support`] makes throwaway system users
//! for tests.

use std::path::Path;

mod authenticator;
mod database;
mod superuser;
#[doc(hidden)]
pub mod test_support;
mod throttle;

pub use authenticator::{AuthError, Authenticator};
pub use database::{by_uid, current, full_name, group_gid, lookup, SystemUser};
pub use superuser::{SuperuserPolicy, DEFAULT_SUPERGROUPS};
pub use throttle::source_key;

/// The PAM service the server authenticates with.
pub const PAM_SERVICE: &str = "jetstream";

/// Where the PAM service file must be installed.
pub(crate) const PAM_DIR: &str = "/etc/pam.d";

/// Whether `/etc/pam.d/jetstream` exists (without it, PAM would silently fall back to the
/// `other` service).
pub fn pam_service_installed() -> bool {
    Path::new(PAM_DIR).join(PAM_SERVICE).exists()
}
