//! Who may call a command: [`check`] applies what a command needs ([`jetstream_api::Access`],
//! from the one list of commands in `jetstream_api::COMMANDS`) to a session, before the
//! command runs.
//!
//! A session is one of: not logged in; logged in with a password (the user's full rights);
//! logged in with an API token (the user's rights narrowed to the token's `permissions` and
//! `path`); logged in with a shared token (a download link: only the commands whose
//! `Meta::link` says so, on its one manifest, see [`super::shared`]); and, after `superuser`,
//! a password session with the server-wide commands. The `*Async` form of a command needs
//! what the command needs.
//!
//! Token permissions (reference §6.6): `upload` sends files (manifests, transfers,
//! destinations, their control) and receives them (`recv.startTransfer`); `download` lets a
//! client pull files (`send.startDownload`); `modify` deletes objects, and files and
//! directories (`rmAsync`, `mvAsync`, `mkdirAsync`); `share` makes and deletes download links.
//! Browsing files (`lsAsync`, `lsRootsAsync`, `duAsync`) needs `upload` or `download`: names
//! and sizes of files are what either already reveals. Reading one's own objects needs no
//! permission: a token with an empty list is a read-only token (it sees no files).

use jetstream_api::Access::{self, AnyOf, Login, Open, Password, Permission, Superuser};

use jetstream_api::ErrorKind;

use super::api::{ApiError, Session};

/// All that a sending server logged in by its key (`authClient`) may call beyond the open
/// commands: receive into its user's sandbox. Trusting a server to deliver files as a user is
/// not trusting it with the user's files: it cannot list, read, send, download, share or
/// delete anything, make destinations or tokens, or become superuser.
pub const CLIENT_KEY_COMMANDS: &[&str] = &["recv.startTransfer", "recv.transferRate"];

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
        return Err(ApiError::of(
            ErrorKind::NotAuthenticated,
            format!(
                "{name}: not authenticated: call auth (user name and password) or authToken first"
            ),
        ));
    }
    if session.by_client_key
        && !CLIENT_KEY_COMMANDS.contains(&name.strip_suffix("Async").unwrap_or(name))
    {
        return Err(ApiError::of(
            ErrorKind::PermissionDenied,
            format!(
                "{name}: a sending server logged in by its key may only deliver files ({})",
                CLIENT_KEY_COMMANDS.join(", ")
            ),
        ));
    }
    match access {
        Open | Login => Ok(()),
        Password if session.token.is_some() => Err(ApiError::of(
            ErrorKind::PermissionDenied,
            format!("{name}: not available to API token logins"),
        )),
        Password => Ok(()),
        Superuser if session.superuser => Ok(()),
        Superuser => Err(ApiError::of(
            ErrorKind::PermissionDenied,
            format!("{name}: superuser rights needed: call superuser first"),
        )),
        Permission(_) | AnyOf(_) if session.token.is_none() => Ok(()),
        AnyOf(ps) => match token_permissions {
            Some(list) if ps.iter().any(|p| list.iter().any(|q| q == p.as_str())) => Ok(()),
            Some(_) => {
                let names: Vec<String> = ps.iter().map(|p| format!("{:?}", p.as_str())).collect();
                Err(ApiError::of(
                    ErrorKind::PermissionDenied,
                    format!(
                        "{name}: this API token has neither of the {} permissions",
                        names.join(" and ")
                    ),
                ))
            }
            None => Err(ApiError::of(
                ErrorKind::NotAuthenticated,
                format!("{name}: this API token no longer exists"),
            )),
        },
        Permission(p) => match token_permissions {
            Some(list) if list.iter().any(|q| q == p.as_str()) => Ok(()),
            Some(_) => Err(ApiError::of(
                ErrorKind::PermissionDenied,
                format!(
                    "{name}: this API token does not have the {:?} permission",
                    p.as_str()
                ),
            )),
            None => Err(ApiError::of(
                ErrorKind::NotAuthenticated,
                format!("{name}: this API token no longer exists"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        use jetstream_api::Permission::{Modify, Upload};
        assert!(check("x", Permission(Modify), &pw, None).is_ok());
        assert!(check("x", Permission(Modify), &tok, Some(&upload)).is_err());
        assert!(check("x", Permission(Upload), &tok, Some(&upload)).is_ok());
        assert!(check("x", Permission(Upload), &tok, None).is_err());
        use jetstream_api::Permission::Download;
        let browse = AnyOf(&[Upload, Download]);
        assert!(check("x", browse, &pw, None).is_ok());
        assert!(check("x", browse, &tok, Some(&upload)).is_ok());
        assert!(check("x", browse, &tok, Some(&["download".to_owned()])).is_ok());
        let m = check("x", browse, &tok, Some(&["modify".to_owned()])).unwrap_err();
        assert_eq!(m.kind, ErrorKind::PermissionDenied);
        assert!(
            m.message.contains("\"upload\" and \"download\""),
            "{}",
            m.message
        );
        assert!(check("x", browse, &anon, None).is_err());
    }

    #[test]
    fn a_sending_server_logged_in_by_its_key_may_only_deliver() {
        let mut key = session(true, false, false);
        key.by_client_key = true;
        for name in CLIENT_KEY_COMMANDS {
            let meta = jetstream_api::COMMANDS
                .iter()
                .find(|m| m.name == *name)
                .expect("a real command");
            assert!(check(name, meta.access, &key, None).is_ok(), "{name}");
        }
        assert!(check("echo", Open, &key, None).is_ok());
        for m in jetstream_api::COMMANDS {
            if m.access != Open && !CLIENT_KEY_COMMANDS.contains(&m.name) {
                assert!(check(m.name, m.access, &key, None).is_err(), "{}", m.name);
                let with_async = format!("{}Async", m.name);
                assert!(
                    check(&with_async, m.access, &key, None).is_err(),
                    "{}",
                    m.name
                );
            }
        }
    }
}
