//! Authorized clients (reference §3.4, §6.7): `recv.addAuthorizedClientAsync`,
//! `recv.removeAuthorizedClientAsync`, `recv.allowOnlyAuthorizedClientsAsync`.
//!
//! A sending server presents its own certificate as a TLS client certificate when it connects
//! to a receiver ([`crate::tls::ApiStream::peer_public_key`]). When only authorized clients
//! are allowed, `recv.startTransfer` is refused unless that key is on the list, whatever
//! credentials the sender logged in with. The list and the switch are kept in
//! `<state-dir>/authorized_clients.json` (mode 0600, written atomically).
//!
//! An authorized key also logs in ([`auth_client`], `authClient`): a sending server whose
//! destination carries no credentials acts as the local user the key was authorized for
//! (`userName` given to `addAuthorizedClient`), or else as the local user of the same name as
//! the transfer's owner on the sending server, never root or a superuser (see
//! `docs/authorized-clients.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use jetstream_api::params::AuthClient;
use jetstream_api::types::AuthorizedClients as AuthorizedClientsView;
use jetstream_api::ErrorKind;

use super::api::{ApiError, Ctx};
use super::objects::to_json;
use jetstream_client::tls::fingerprint_of;

type Reply = Result<(String, Value), ApiError>;

const FILE: &str = "authorized_clients.json";

/// What is persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct List {
    only_authorized_clients_allowed: bool,
    /// Lowercase hex SPKIs.
    authorized_clients: BTreeSet<String>,
    /// The local user each key acts as, for the keys authorized with a `userName` (absent
    /// from the files of earlier versions: every key then acts as the same-named user).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    client_users: BTreeMap<String, String>,
}

/// How an authorized key may act: as the user it was authorized for, or as the same-named
/// user of the transfer's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActsAs {
    /// The local user named when the key was authorized.
    Named(String),
    /// The local user of the name the sending server gives.
    SameName,
}

/// The authorized-client list and its switch, kept in the state dir.
#[derive(Debug, Default)]
pub struct AuthorizedClients {
    /// The file; `None` keeps the list in memory only.
    path: Option<PathBuf>,
    list: Mutex<List>,
}

impl AuthorizedClients {
    /// Loads the list from `state_dir` (an absent file is an empty list, switch off).
    ///
    /// # Errors
    /// A corrupt or unreadable list file (never silently forgotten: that would open the
    /// receiver to every sender).
    pub fn load(state_dir: &Path) -> Result<Self, String> {
        let path = state_dir.join(FILE);
        let list = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<List>(&bytes)
                .map_err(|e| format!("{}: corrupt authorized clients file: {e}", path.display()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => List::default(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(Self {
            path: Some(path),
            list: Mutex::new(list),
        })
    }

    /// Whether only authorized clients may start transfers.
    pub fn only_authorized(&self) -> bool {
        self.list.lock().only_authorized_clients_allowed
    }

    /// How `key` may log in, `None` when it is not on the list (whatever the switch says).
    pub fn acts_as(&self, key: &str) -> Option<ActsAs> {
        let key = key.to_ascii_lowercase();
        let list = self.list.lock();
        if !list.authorized_clients.contains(&key) {
            return None;
        }
        Some(match list.client_users.get(&key) {
            Some(user) => ActsAs::Named(user.clone()),
            None => ActsAs::SameName,
        })
    }

    /// Refuses a transfer from a sending server presenting `peer_key` when it is not allowed.
    ///
    /// # Errors
    /// The message for the sending server.
    pub fn check(&self, peer_key: Option<&str>) -> Result<(), ApiError> {
        let list = self.list.lock();
        if !list.only_authorized_clients_allowed {
            return Ok(());
        }
        match peer_key {
            Some(key) if list.authorized_clients.contains(&key.to_ascii_lowercase()) => Ok(()),
            Some(key) => {
                crate::warn!("trust: refused a transfer from an unauthorized client, key {key}");
                Err(ApiError::new(format!(
                    "this server accepts transfers only from authorized clients, and the key \
                     presented ({}) is not one of them: the receiver's administrator must add \
                     it with addAuthorizedClientAsync",
                    fingerprint_of(key)
                )))
            }
            None => {
                crate::warn!("trust: refused a transfer from a client that presented no key");
                Err(ApiError::new(
                    "this server accepts transfers only from authorized clients, and no client \
                     certificate was presented: connect with TLS as a server, and have the \
                     receiver's administrator add its key with addAuthorizedClientAsync"
                        .into(),
                ))
            }
        }
    }

    /// Applies `change` to the list and saves it; on a failed save the list is unchanged.
    /// `change` returns `Ok(false)` when there is nothing to save.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut List) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut list = self.list.lock();
        let mut next = list.clone();
        let out = change(&mut next)?;
        if next == *list {
            return Ok(out);
        }
        if let Some(path) = &self.path {
            let bytes = serde_json::to_vec_pretty(&next)
                .map_err(|e| ApiError::internal("saving the authorized clients", e))?;
            super::state::write_atomic(path, &bytes).map_err(|e| {
                ApiError::internal(
                    "saving the authorized clients",
                    format!("{}: {e}", path.display()),
                )
            })?;
        }
        *list = next;
        Ok(out)
    }
}

/// `clientPublicKey` (given as a string or an object holding one, reference §3.4; the API
/// crate takes either form): checked to be hex of a plausible SPKI, lowercased.
fn client_key(text: &str) -> Result<String, ApiError> {
    jetstream_client::tls::plausible_public_key(text).ok_or_else(|| {
        ApiError::new(format!(
            "parameter \"clientPublicKey\" must be a public key in hex (a server's publicKey \
             from getServerInfo: {} to {} hex digits)",
            jetstream_client::tls::PUBLIC_KEY_HEX.start(),
            jetstream_client::tls::PUBLIC_KEY_HEX.end()
        ))
    })
}

fn user_name(ctx: &Ctx<'_>) -> String {
    ctx.session
        .user
        .as_ref()
        .map(|u| u.name.clone())
        .unwrap_or_default()
}

/// The result of adding or removing `key` (`None`: of changing the switch).
fn to_api(list: &List, key: Option<&str>) -> AuthorizedClientsView {
    AuthorizedClientsView {
        client_public_key: key.map(str::to_owned),
        fingerprint: key.map(fingerprint_of),
        user_name: key.and_then(|k| list.client_users.get(k).cloned()),
        only_authorized_clients_allowed: list.only_authorized_clients_allowed,
        authorized_client_count: list.authorized_clients.len() as u64,
    }
}

fn view(list: &List, key: &str) -> Value {
    to_json(&to_api(list, Some(key)))
}

/// `recv.addAuthorizedClientAsync`: authorizes `key`, acting as `acts_as` (a local user) or,
/// without it, as the same-named user; adding a listed key again changes only that.
///
/// # Errors
/// Not a superuser, a bad key, a `userName` that is no local user.
pub fn add(ctx: &mut Ctx<'_>, key: &str, acts_as: Option<&str>) -> Reply {
    let key = client_key(key)?;
    let acts_as = match acts_as.map(str::trim) {
        None => None,
        Some(name) => {
            let found = crate::users::lookup(name)
                .map_err(|e| ApiError::internal("looking up the user", e))?;
            if name.is_empty() || found.is_none() {
                return Err(ApiError::not_found(format!(
                    "parameter \"userName\": there is no user {name:?} on this server"
                )));
            }
            Some(name.to_owned())
        }
    };
    let (added, result) = ctx.server.trust.update(|list| {
        let before = list.clone();
        list.authorized_clients.insert(key.clone());
        match &acts_as {
            Some(name) => list.client_users.insert(key.clone(), name.clone()),
            None => list.client_users.remove(&key),
        };
        Ok((*list != before, view(list, &key)))
    })?;
    if !added {
        return Ok(("The client was already authorized.".into(), result));
    }
    let user = user_name(ctx);
    let shown = acts_as.as_deref().unwrap_or("(the same-named user)");
    crate::log!(
        "trust: {user} authorized the client key {} ({key}), acting as {shown}",
        fingerprint_of(&key)
    );
    ctx.server.events.record(
        "authorizedClientAdded",
        json!({ "clientPublicKey": key, "fingerprint": fingerprint_of(&key), "owner": user,
                "userName": acts_as }),
    );
    Ok(("Client authorized.".into(), result))
}

/// `recv.removeAuthorizedClientAsync`.
///
/// # Errors
/// Not a superuser, a bad key, a key not on the list.
pub fn remove(ctx: &mut Ctx<'_>, key: &str) -> Reply {
    let key = client_key(key)?;
    let result = ctx.server.trust.update(|list| {
        if list.authorized_clients.remove(&key) {
            list.client_users.remove(&key);
            Ok(view(list, &key))
        } else {
            Err(ApiError::new(format!(
                "the key {} is not an authorized client",
                fingerprint_of(&key)
            )))
        }
    })?;
    let user = user_name(ctx);
    crate::log!(
        "trust: {user} removed the authorized client key {} ({key})",
        fingerprint_of(&key)
    );
    ctx.server.events.record(
        "authorizedClientRemoved",
        json!({ "clientPublicKey": key, "fingerprint": fingerprint_of(&key), "owner": user }),
    );
    Ok(("Client no longer authorized.".into(), result))
}

/// `recv.allowOnlyAuthorizedClientsAsync {onlyAuthorizedClientsAllowed: bool}`.
///
/// # Errors
/// Not a superuser, a bad value.
pub fn allow_only(ctx: &mut Ctx<'_>, on: bool) -> Reply {
    let (changed, result) = ctx.server.trust.update(|list| {
        let changed = list.only_authorized_clients_allowed != on;
        list.only_authorized_clients_allowed = on;
        Ok((changed, to_api(list, None)))
    })?;
    let count = result.authorized_client_count;
    if changed {
        crate::log!(
            "trust: {} set onlyAuthorizedClientsAllowed to {on} ({count} authorized)",
            user_name(ctx)
        );
    }
    let message = if on {
        "Only authorized clients may start transfers."
    } else {
        "Any client may start transfers."
    };
    Ok((message.into(), to_json(&result)))
}

/// Longest user name `authClient` considers (longer ones are refused unread).
const MAX_USER_NAME: usize = 256;

/// `authClient {userName}`: logs in a sending server by the key of the TLS client certificate
/// it presented, when that key is an authorized client (whatever the
/// `onlyAuthorizedClientsAllowed` switch says). The session is the one a password log-in gives
/// the user the key acts as ([`ActsAs`]), except that it may not become superuser nor make API
/// tokens. Subject to the log-in throttle of the client's address, as token log-ins are; a key
/// not on the list (or no certificate) counts as a failed log-in.
///
/// # Errors
/// [`ErrorKind::LoginThrottled`]; [`ErrorKind::LoginFailed`] for no certificate or a key not
/// on the list; [`ErrorKind::PermissionDenied`] when the key may not act as the user (none of
/// that name here, root or a superuser by same name, or a user this server cannot write as).
pub fn auth_client(ctx: &mut Ctx<'_>, p: &AuthClient) -> Reply {
    use super::metrics::LoginResult;
    let source = ctx.session.peer.ip();
    if let Err(e) = ctx.server.auth.check_source(source) {
        ctx.server
            .metrics
            .login("client_key", LoginResult::Throttled);
        return Err(ApiError::of(
            ErrorKind::LoginThrottled,
            format!("authClient: {e}"),
        ));
    }
    match client_user(ctx, p) {
        Ok(user) => {
            ctx.server.metrics.login("client_key", LoginResult::Ok);
            crate::log!(
                "api: {} logged in as {} by its authorized client key {}",
                ctx.session.peer,
                user.name,
                ctx.session
                    .peer_key
                    .as_deref()
                    .map(fingerprint_of)
                    .unwrap_or_default()
            );
            ctx.session.user = Some(user);
            ctx.session.shared_manifest = None;
            ctx.session.token = None;
            ctx.session.token_session = None;
            ctx.session.superuser = false;
            ctx.session.by_client_key = true;
            Ok(("Authenticated.".into(), Value::Null))
        }
        Err(e) => {
            ctx.server.metrics.login("client_key", LoginResult::Failed);
            crate::warn!("trust: {}: {}", ctx.session.peer, e.message);
            // A key not on the list counts against the address, as a wrong token does; an
            // authorized key refused a user is no guess at a secret.
            if e.kind == ErrorKind::LoginFailed {
                ctx.server.auth.token_failed(source);
            }
            Err(e)
        }
    }
}

/// The local user an `authClient` caller acts as.
fn client_user(ctx: &Ctx<'_>, p: &AuthClient) -> Result<crate::users::SystemUser, ApiError> {
    let Some(key) = ctx.session.peer_key.as_deref() else {
        return Err(ApiError::of(
            ErrorKind::LoginFailed,
            "authClient: no client certificate was presented: a sending server logs in by the \
             key of the certificate it presents over TLS",
        ));
    };
    let Some(acts_as) = ctx.server.trust.acts_as(key) else {
        return Err(ApiError::of(
            ErrorKind::LoginFailed,
            format!(
                "authClient: the key presented ({}) is not an authorized client of this server: \
                 a superuser here must add it with addAuthorizedClientAsync",
                fingerprint_of(key)
            ),
        ));
    };
    let (name, named) =
        match (&acts_as, p.user_name.as_deref()) {
            (ActsAs::Named(name), _) => (name.as_str(), true),
            (ActsAs::SameName, Some(name)) if !name.is_empty() && name.len() <= MAX_USER_NAME => {
                (name, false)
            }
            (ActsAs::SameName, _) => return Err(ApiError::of(
                ErrorKind::LoginFailed,
                "authClient: parameter \"userName\" must name the user the transfer is for (up \
                 to 256 characters)",
            )),
        };
    let refused = |why: String| {
        ApiError::of(
            ErrorKind::PermissionDenied,
            format!(
                "authClient: the authorized key {} {why}",
                fingerprint_of(key)
            ),
        )
    };
    let user = crate::users::lookup(name)
        .map_err(|e| ApiError::internal("authClient: looking up the user", e))?
        .ok_or_else(|| refused(format!("acts as user {name:?}, who does not exist here")))?;
    if !named && (user.uid == 0 || ctx.server.supers.is_superuser(&user)) {
        return Err(refused(format!(
            "may not act as {name:?} by name alone: it is root or a superuser here (a superuser \
             may authorize the key with that userName explicitly)"
        )));
    }
    let euid = super::sys::euid();
    if euid != 0 && user.uid != euid {
        return Err(refused(format!(
            "acts as {name:?}, but this server does not run as root and can write files only \
             as its own user"
        )));
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const KEY_A: &str = "3059301306072a8648ce3d020106082a8648ce3d03010703420004aa";
    const KEY_B: &str = "3059301306072a8648ce3d020106082a8648ce3d03010703420004bb";

    fn add_key(t: &AuthorizedClients, key: &str) {
        t.update(|l| Ok(l.authorized_clients.insert(key.to_owned())))
            .unwrap();
    }

    #[test]
    fn check_persist_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let t = AuthorizedClients::load(dir.path()).unwrap();
        assert!(!t.only_authorized());
        assert!(t.check(None).is_ok() && t.check(Some(KEY_B)).is_ok());
        assert!(!dir.path().join(FILE).exists(), "nothing to save yet");

        add_key(&t, KEY_A);
        t.update(|l| {
            l.only_authorized_clients_allowed = true;
            Ok(())
        })
        .unwrap();
        assert!(t.check(Some(KEY_A)).is_ok());
        assert!(t.check(Some(&KEY_A.to_uppercase())).is_ok());
        let e = t.check(Some(KEY_B)).unwrap_err().message;
        assert!(e.contains(&fingerprint_of(KEY_B)), "{e}");
        assert!(e.contains("addAuthorizedClientAsync"), "{e}");
        assert!(t
            .check(None)
            .unwrap_err()
            .message
            .contains("no client certificate"));

        let mode = fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = AuthorizedClients::load(dir.path()).unwrap();
        assert!(again.only_authorized());
        assert!(again.check(Some(KEY_A)).is_ok() && again.check(Some(KEY_B)).is_err());

        fs::write(dir.path().join(FILE), b"{oops").unwrap();
        let e = AuthorizedClients::load(dir.path()).unwrap_err();
        assert!(e.contains("corrupt"), "{e}");
    }

    #[test]
    fn files_of_earlier_versions_load_and_users_are_kept_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let old = format!(
            r#"{{"onlyAuthorizedClientsAllowed": false, "authorizedClients": ["{KEY_A}"]}}"#
        );
        fs::write(dir.path().join(FILE), old).unwrap();
        let t = AuthorizedClients::load(dir.path()).unwrap();
        assert_eq!(t.acts_as(KEY_A), Some(ActsAs::SameName));
        assert_eq!(t.acts_as(&KEY_A.to_uppercase()), Some(ActsAs::SameName));
        assert_eq!(t.acts_as(KEY_B), None);

        t.update(|l| {
            l.authorized_clients.insert(KEY_B.to_owned());
            l.client_users.insert(KEY_B.to_owned(), "bob".to_owned());
            Ok(())
        })
        .unwrap();
        let again = AuthorizedClients::load(dir.path()).unwrap();
        assert_eq!(again.acts_as(KEY_B), Some(ActsAs::Named("bob".into())));
        assert_eq!(again.acts_as(KEY_A), Some(ActsAs::SameName));
        let text = fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(text.contains("clientUsers"), "{text}");
    }

    #[test]
    fn a_failed_change_leaves_the_list_alone() {
        let dir = tempfile::tempdir().unwrap();
        let t = AuthorizedClients::load(dir.path()).unwrap();
        add_key(&t, KEY_A);
        let r: Result<(), _> = t.update(|l| {
            l.authorized_clients.clear();
            Err(ApiError::new("no".into()))
        });
        assert!(r.is_err());
        assert!(t.list.lock().authorized_clients.contains(KEY_A));
    }

    #[test]
    fn keys_are_validated_and_lowercased() {
        assert_eq!(client_key(&KEY_A.to_uppercase()).unwrap(), KEY_A);
        assert_eq!(client_key(KEY_B).unwrap(), KEY_B);
        for bad in [
            String::new(),
            "abc".to_owned(),
            format!("{KEY_A}0"),
            KEY_A.replace('a', "g"),
            "ab".repeat(1001),
        ] {
            assert!(client_key(&bad).is_err(), "{bad}");
        }
    }
}
