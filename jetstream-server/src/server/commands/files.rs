//! The files API (issue 18, item 4): `lsRootsAsync`, `lsAsync`, `mkdirAsync`, `mvAsync`,
//! `rmAsync`, `duAsync` — browsing and managing files in the caller's sandbox, as the caller.
//!
//! Each runs as an async request (its outcome through `getRequestStatus` /
//! `getRequestResult`, visible to the session that asked only). What it needs of the session
//! is taken when it is asked ([`Caller::of`]); the work runs on the request's thread:
//!
//! 1. the client's path is placed in the sandbox by [`locate`], the one place a path is
//!    resolved: through the session's sandbox resources ([`sandbox::Resources::locate`],
//!    narrowed by a token's `path`) exactly as a receive places `destinationPath` (a leading
//!    `/` is the top, `..` may not climb above it, `/<name>` is a named resource);
//! 2. the top is opened by [`sandbox::open_receive_dir`], the receive path's own walk (root
//!    makes and follows nothing a user could redirect; a token's path is made as the user);
//! 3. the operation runs below that descriptor with the user's file-system identity
//!    ([`sandbox::run_as_user`]), so the kernel's permission checks are the user's, and
//!    never follows a symbolic link ([`tree`]).
//!
//! Paths in answers and errors are the client's (from the top of its sandbox), never the
//! server's.

use std::path::PathBuf;

use jetstream_api::params::{Du, Ls, Mkdir, Mv, Rm};
use jetstream_api::types::{
    DiskUsage, FileEntry, FileRoot, FileType, Listing, Removed, RootType, Timestamp,
};
use jetstream_api::ErrorKind;
use jetstream_core::fs::beneath::{Dir, Kind};

use super::{ok, Reply};
use crate::sandbox::{self, UserIds};
use crate::server::api::{ApiError, Ctx};

mod tree;

use tree::{Entry, Problem, TreeError};

/// What the files commands need of the session that asked, taken when it asked.
#[derive(Debug)]
pub(super) struct Caller {
    /// The identity to act with (`None`: the server's own).
    ids: Option<UserIds>,
    /// The part of the file system the session may reach (its sandbox resources, narrowed
    /// by a token's path).
    resources: sandbox::Resources,
}

impl Caller {
    /// The session's identity and sandbox resources.
    ///
    /// # Errors
    /// Not logged in, or a bad sandbox mapping or token path.
    pub(super) fn of(ctx: &Ctx<'_>) -> Result<Self, ApiError> {
        let user = ctx.session.user.as_ref().ok_or_else(|| {
            ApiError::of(ErrorKind::NotAuthenticated, "not authenticated".to_owned())
        })?;
        Ok(Self {
            ids: ctx.server.user_ids(user),
            resources: ctx.server.resources_of(ctx.session)?,
        })
    }
}

/// Where a client's path is.
#[derive(Debug)]
struct Located {
    /// The directory opened as a receive opens a sandbox (root may make it for the user).
    root: PathBuf,
    /// Below `root`, made as the user when missing: a token's path (`""`: none).
    top: String,
    /// The path below `top`, cleaned (`""`: the top itself).
    rel: String,
    /// The sandbox resource it is in (`""`: the one unnamed resource).
    resource: String,
    /// The client's path of the top (`/`).
    prefix: String,
}

impl Located {
    /// The client's path of `rel` (below the top).
    fn shown(&self, rel: &str) -> String {
        let prefix = self.prefix.trim_end_matches('/');
        if rel.is_empty() {
            if prefix.is_empty() {
                "/".to_owned()
            } else {
                prefix.to_owned()
            }
        } else {
            format!("{prefix}/{rel}")
        }
    }

    /// Opens the top (making the sandbox and a token's path as a receive would).
    fn open_top(&self, ids: Option<&UserIds>) -> Result<Dir, ApiError> {
        sandbox::open_receive_dir(&self.root, &self.top, ids).map_err(|e| {
            let what = format!("opening the top of the sandbox {}", self.shown(""));
            match e {
                sandbox::SandboxError::BadTemplate(_) | sandbox::SandboxError::Io { .. } => {
                    ApiError::internal(&what, e)
                }
                // The walk's other refusals (a link, a file in the way, no right to make a
                // token's path) are the user's to fix; their paths are the server's, so the
                // client gets the kind only.
                _ => ApiError::new(format!("{what}: refused ({})", refusal(&e))),
            }
        })
    }

    /// The error for `e`, with the client's path.
    fn error(&self, e: &TreeError) -> ApiError {
        let kind = match e.problem {
            Problem::NotFound => ErrorKind::NotFound,
            Problem::PermissionDenied => ErrorKind::PermissionDenied,
            Problem::Top => ErrorKind::BadParameters,
            _ => ErrorKind::Failed,
        };
        ApiError::of(kind, format!("{}: {}", self.shown(&e.rel), e.problem))
    }
}

/// What kind of refusal a sandbox error is, without its server path.
fn refusal(e: &sandbox::SandboxError) -> &'static str {
    use sandbox::SandboxError as S;
    match e {
        S::Symlink { .. } | S::UnsafeSymlink { .. } => "a symbolic link on the way",
        S::NotADirectory { .. } => "a file where a directory should be",
        S::UserCannotCreate { .. } => "the user may not create it",
        S::Escape { .. } | S::InvalidPath { .. } => "an invalid path",
        _ => "see the server log",
    }
}

/// Places the client's `path` in the caller's sandbox: the one function that resolves a files
/// API path.
///
/// [`sandbox::Resources::locate`] finds the resource and the path below its directory (the
/// same resolution as a receive's `destinationPath`); the top is the root of
/// [`sandbox::Resources::roots`] that holds it: a resource's directory, or a token's path in
/// it. The resource's directory is opened by the server's walk, the rest as the user.
///
/// # Errors
/// A path that climbs above the top (`..`), is malformed, or is in no resource.
fn locate(caller: &Caller, path: &str) -> Result<Located, ApiError> {
    let at = caller.resources.locate(path)?;
    let holds =
        |top: &str| top.is_empty() || at.rel == top || at.rel.starts_with(&format!("{top}/"));
    let root = caller
        .resources
        .roots()
        .into_iter()
        .filter(|r| r.at.root == at.root && r.at.resource == at.resource && holds(&r.at.rel))
        .max_by_key(|r| r.at.rel.len())
        .ok_or_else(|| {
            ApiError::internal("placing a path", format!("no root holds {:?}", at.path()))
        })?;
    let top = root.at.rel;
    let rel = at.rel[top.len()..].trim_start_matches('/').to_owned();
    Ok(Located {
        root: at.root,
        top,
        rel,
        resource: at.resource,
        prefix: format!("/{}", root.name),
    })
}

/// The caller's top-level folders: the root view (`""`, `/`) when there is one, and every
/// named resource (`/<name>`); a token's path is the one root.
fn roots(caller: &Caller) -> Vec<FileRoot> {
    caller
        .resources
        .roots()
        .into_iter()
        .map(|r| FileRoot {
            path: format!("/{}", r.name),
            name: r.name,
            root_type: RootType::File,
        })
        .collect()
}

/// Runs `op` below the top of `at` with the caller's identity.
fn below<T: Send + 'static>(
    caller: &Caller,
    at: &Located,
    op: impl FnOnce(&Dir) -> Result<T, TreeError> + Send + 'static,
) -> Result<T, ApiError> {
    let top = at.open_top(caller.ids.as_ref())?;
    sandbox::run_as_user(caller.ids.clone(), move || op(&top))
        .map_err(|e| ApiError::internal("acting as the user", e))?
        .map_err(|e| at.error(&e))
}

fn view(at: &Located, e: &Entry) -> FileEntry {
    let st = &e.stat;
    FileEntry {
        name: e.name.clone(),
        path: at.shown(&e.rel),
        file_type: match st.kind {
            Kind::Directory => FileType::Directory,
            Kind::File => FileType::File,
            Kind::Symlink => FileType::Symlink,
            _ => FileType::Special,
        },
        size: st.len,
        modification_time: Timestamp::from_system_time(st.mtime),
        mode: st.mode,
        executable: st.kind == Kind::File && st.mode & 0o111 != 0,
        link_target: e.link_target.clone(),
    }
}

fn answer<T: serde::Serialize>(message: &str, value: &T) -> Reply {
    let value =
        serde_json::to_value(value).map_err(|e| ApiError::internal("encoding the answer", e))?;
    ok(message, value)
}

/// `lsRootsAsync`.
pub(super) fn ls_roots(caller: Result<Caller, ApiError>) -> Reply {
    answer("Roots.", &roots(&caller?))
}

/// `lsAsync`.
pub(super) fn ls(caller: Result<Caller, ApiError>, p: &Ls) -> Reply {
    let caller = caller?;
    let at = locate(&caller, p.path.as_deref().unwrap_or("/"))?;
    let rel = at.rel.clone();
    let (entries, skipped) = below(&caller, &at, move |top| {
        tree::list(top, &rel, tree::MAX_LISTED)
    })?;
    let listing = Listing {
        path: at.shown(&at.rel),
        entries: entries.iter().map(|e| view(&at, e)).collect(),
        truncated: skipped > 0,
        skipped,
    };
    answer("Listing.", &listing)
}

/// `mkdirAsync`.
pub(super) fn mkdir(caller: Result<Caller, ApiError>, p: &Mkdir) -> Reply {
    let caller = caller?;
    let at = locate(&caller, &p.path)?;
    let rel = at.rel.clone();
    let made = below(&caller, &at, move |top| tree::mkdir(top, &rel))?;
    answer("Directory created.", &view(&at, &made))
}

/// `mvAsync`: within one resource only.
pub(super) fn mv(caller: Result<Caller, ApiError>, p: &Mv) -> Reply {
    let caller = caller?;
    let from = locate(&caller, &p.src)?;
    let to = locate(&caller, &p.dst)?;
    if (&from.resource, &from.root, &from.top) != (&to.resource, &to.root, &to.top) {
        return Err(ApiError::of(
            ErrorKind::BadParameters,
            format!(
                "{} and {} are in different resources: a move stays within one",
                from.shown(&from.rel),
                to.shown(&to.rel)
            ),
        ));
    }
    let (src, dst) = (from.rel.clone(), to.rel.clone());
    let moved = below(&caller, &from, move |top| tree::mv(top, &src, &dst))?;
    answer("Moved.", &view(&to, &moved))
}

/// `rmAsync`: never the top.
pub(super) fn rm(caller: Result<Caller, ApiError>, p: &Rm) -> Reply {
    let caller = caller?;
    let at = locate(&caller, &p.path)?;
    if at.rel.is_empty() {
        return Err(at.error(&TreeError {
            rel: String::new(),
            problem: Problem::Top,
        }));
    }
    let rel = at.rel.clone();
    let removed = below(&caller, &at, move |top| tree::rm(top, &rel))?;
    answer(
        "Removed.",
        &Removed {
            path: at.shown(&at.rel),
            files_removed: removed.files,
            directories_removed: removed.dirs,
        },
    )
}

/// `duAsync`.
pub(super) fn du(caller: Result<Caller, ApiError>, p: &Du) -> Reply {
    let caller = caller?;
    let at = locate(&caller, p.path.as_deref().unwrap_or("/"))?;
    let rel = at.rel.clone();
    let u = below(&caller, &at, move |top| tree::du(top, &rel))?;
    answer(
        "Disk usage.",
        &DiskUsage {
            path: at.shown(&at.rel),
            total_size: u.total_size,
            file_count: u.files,
            dir_count: u.dirs,
            symlink_count: u.symlinks,
            special_count: u.special,
            unreadable_count: u.unreadable,
            mount_point_count: u.mount_points,
        },
    )
}
