//! Who may call which command: the one table ([`COMMANDS`]) that the dispatcher checks before
//! any command runs.
//!
//! A session is one of: not logged in; logged in with a password (the user's full rights);
//! logged in with an API token (the user's rights narrowed to the token's `permissions` and
//! `path`); logged in with a shared token (a download link: only [`super::shared`]'s
//! recipient commands on its one manifest); and, after `superuser`, a password session with
//! the server-wide commands. The `*Async` form of a command needs what the command needs.
//!
//! Token permissions (reference §6.6): `upload` sends files (manifests, transfers,
//! destinations, their control) and receives them (`recv.startTransfer`); `download` lets a
//! client pull files (`send.startDownload`); `modify` deletes objects; `share` makes and
//! deletes download links. Reading one's own objects needs no permission: a token with an
//! empty list is a read-only token.

use super::api::{ApiError, Session};

/// What a command needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, before login too.
    Open,
    /// Any logged-in session (reads its own objects only).
    Login,
    /// A logged-in session whose token (if any) has this permission.
    Permission(&'static str),
    /// A password login (not a token): `superuser`, `createAPIToken`.
    Password,
    /// A session that has called `superuser`.
    Superuser,
}

use Access::{Login, Open, Password, Permission, Superuser};

/// Every command and what it needs.
pub const COMMANDS: &[(&str, Access)] = &[
    ("getServerInfo", Open),
    ("auth", Open),
    ("authToken", Open),
    ("echo", Open),
    ("superuser", Password),
    ("sleep", Login),
    ("terminate", Superuser),
    ("getRequestStatus", Login),
    ("getRequestResult", Login),
    ("getEventLog", Login),
    ("garbageCollect", Superuser),
    ("updateGarbageCollectSettings", Superuser),
    ("updateBandwidthLimits", Superuser),
    ("createAPIToken", Password),
    ("getAPIToken", Login),
    ("getAPITokens", Login),
    ("deleteAPIToken", Permission("modify")),
    ("send.createDestination", Permission("upload")),
    ("send.getDestination", Login),
    ("send.getDestinations", Login),
    ("send.deleteDestination", Permission("modify")),
    ("send.createManifest", Permission("upload")),
    ("send.getManifest", Login),
    ("send.getManifests", Login),
    ("send.getManifestFiles", Login),
    ("send.deleteManifest", Permission("modify")),
    ("send.createTransfer", Permission("upload")),
    ("send.getTransfer", Login),
    ("send.getTransfers", Login),
    ("send.suspendTransfer", Permission("upload")),
    ("send.resumeTransfer", Permission("upload")),
    ("send.cancelTransfer", Permission("upload")),
    ("send.failTransfer", Permission("upload")),
    ("send.deleteTransfer", Permission("modify")),
    ("send.setSendRate", Permission("upload")),
    ("send.startDownload", Permission("download")),
    ("send.createSharedToken", Permission("share")),
    ("send.getSharedToken", Login),
    ("send.getSharedTokens", Login),
    ("send.deleteSharedToken", Permission("share")),
    ("recv.startTransfer", Permission("upload")),
    ("recv.transferRate", Login),
    ("recv.getTransfers", Login),
    ("recv.getSources", Login),
    ("recv.addAuthorizedClient", Superuser),
    ("recv.removeAuthorizedClient", Superuser),
    ("recv.allowOnlyAuthorizedClients", Superuser),
    // Discovery makes this server send UDP probes (or wait for them): an upload-side tool.
    ("sendDiscoverPacket", Permission("upload")),
    ("recvDiscoverPacket", Permission("upload")),
];

/// What `name` (or the command whose `Async` form it is) needs; `None` for an unknown command.
pub fn access_of(name: &str) -> Option<Access> {
    let find = |n: &str| COMMANDS.iter().find(|(c, _)| *c == n).map(|(_, a)| *a);
    find(name).or_else(|| name.strip_suffix("Async").and_then(find))
}

/// Checks that `session` may call `name` whose entry is `access`; `token_permissions` are the
/// permissions of the token it logged in with (`None`: no token, or the token is gone).
///
/// # Errors
/// The message for the client, naming the command and what it lacks.
pub fn check(
    name: &str,
    access: Access,
    session: &Session,
    token_permissions: Option<&[String]>,
) -> Result<(), ApiError> {
    if access == Open {
        return Ok(());
    }
    if session.user.is_none() {
        return Err(ApiError(format!(
            "{name}: not authenticated: call auth (user name and password) or authToken first"
        )));
    }
    match access {
        Open | Login => Ok(()),
        Password if session.token.is_some() => Err(ApiError(format!(
            "{name}: not available to API token logins"
        ))),
        Password => Ok(()),
        Superuser if session.superuser => Ok(()),
        Superuser => Err(ApiError(format!(
            "{name}: superuser rights needed: call superuser first"
        ))),
        Permission(_) if session.token.is_none() => Ok(()),
        Permission(p) => match token_permissions {
            Some(list) if list.iter().any(|q| q == p) => Ok(()),
            Some(_) => Err(ApiError(format!(
                "{name}: this API token does not have the {p:?} permission"
            ))),
            None => Err(ApiError(format!("{name}: this API token no longer exists"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_in_the_table_once() {
        for (i, (name, _)) in COMMANDS.iter().enumerate() {
            assert!(
                COMMANDS[i + 1..].iter().all(|(n, _)| n != name),
                "{name} twice"
            );
        }
        assert_eq!(
            access_of("send.cancelTransferAsync"),
            access_of("send.cancelTransfer")
        );
        assert_eq!(access_of("nope"), None);
        assert_eq!(access_of("nopeAsync"), None);
    }

    #[test]
    fn permissions_named_in_the_table_exist() {
        for (name, a) in COMMANDS {
            if let Permission(p) = a {
                assert!(
                    super::super::objects::PERMISSIONS.contains(p),
                    "{name}: {p}"
                );
            }
        }
    }

    fn session(user: bool, token: bool, superuser: bool) -> Session {
        let mut s = Session::new("127.0.0.1:1".parse().unwrap());
        if user {
            s.user = Some(crate::users::SystemUser {
                name: "u".into(),
                uid: 1000,
                gid: 1000,
                groups: vec![],
                home: "/".into(),
            });
        }
        if token {
            s.token = Some("t".into());
        }
        s.superuser = superuser;
        s
    }

    #[test]
    fn checks_each_kind() {
        let anon = session(false, false, false);
        let pw = session(true, false, false);
        let tok = session(true, true, false);
        let sup = session(true, false, true);
        let upload = vec!["upload".to_owned()];
        assert!(check("x", Open, &anon, None).is_ok());
        assert!(check("x", Login, &anon, None).is_err());
        assert!(check("x", Login, &tok, Some(&[])).is_ok());
        assert!(check("x", Password, &tok, Some(&upload)).is_err());
        assert!(check("x", Password, &pw, None).is_ok());
        assert!(check("x", Superuser, &pw, None).is_err());
        assert!(check("x", Superuser, &sup, None).is_ok());
        assert!(check("x", Permission("modify"), &pw, None).is_ok());
        assert!(check("x", Permission("modify"), &tok, Some(&upload)).is_err());
        assert!(check("x", Permission("upload"), &tok, Some(&upload)).is_ok());
        assert!(check("x", Permission("upload"), &tok, None).is_err());
    }
}
