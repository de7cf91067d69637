//! The sandbox mappings of a server (reference §4.11, §6.4): the all-users level (`""`) and
//! the per-user levels, kept in `<state-dir>/sandbox_mappings.json` (mode 0600, written
//! atomically) and changed by `setSandboxMapping` / `deleteSandboxMapping`.
//!
//! Rules (docs/sandboxes.md says them for users):
//! - a user's own level, when there is one, *replaces* the all-users level for that user
//!   (the two are not merged);
//! - `--sandbox-dir T` is the all-users root mapping `{"": T}`: at start it sets the all-users
//!   level in force (whatever the file holds for it), and `getSandboxMappings` reports it. A
//!   command changing the all-users level while the flag is set applies at once and is saved,
//!   but the flag sets that level again at the next start; without the flag, the saved level
//!   is in force. The flag's value itself is never written to the file, so removing the flag
//!   removes that sandbox.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jetstream_api::types::{SandboxMapping, SandboxMappings, SandboxResource};
use jetstream_api::ErrorKind;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::expand_sandbox;
use crate::server::api::ApiError;

const FILE: &str = "sandbox_mappings.json";

/// What the file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Saved {
    mappings: SandboxMappings,
}

/// The levels: in force, and as saved.
#[derive(Debug, Default)]
struct Levels {
    /// In force: the saved levels, with the all-users level from `--sandbox-dir` at start.
    effective: SandboxMappings,
    /// What commands set (the file's content).
    saved: SandboxMappings,
}

/// The server's sandbox mappings.
#[derive(Debug, Default)]
pub struct Mappings {
    /// The file; `None` keeps them in memory only.
    path: Option<PathBuf>,
    /// `--sandbox-dir`, when given.
    flag: Option<String>,
    levels: Mutex<Levels>,
}

/// Checks one level before it is set (or loaded): at least one resource; resource names that
/// are `""` or one folder name; File paths that are absolute templates with known
/// placeholders.
///
/// # Errors
/// What is wrong, naming the user level and the resource.
pub fn check(user_name: &str, mapping: &SandboxMapping) -> Result<(), String> {
    let level = if user_name.is_empty() {
        "the all-users mapping".to_owned()
    } else {
        format!("the mapping of user {user_name:?}")
    };
    if user_name.contains('\0') {
        return Err(format!("{level}: the user name contains a NUL byte"));
    }
    if mapping.is_empty() {
        return Err(format!(
            "{level} has no resource: give at least one, e.g. {{\"\": \"/data/%u\"}} \
             (deleteSandboxMapping removes a mapping)"
        ));
    }
    for (name, resource) in mapping {
        let bad_name = name.contains('/') || name.contains('\0') || name == "." || name == "..";
        if bad_name {
            return Err(format!(
                "{level}: resource name {name:?} must be \"\" (the root) or one folder name \
                 (no '/', not . or ..)"
            ));
        }
        let shown = if name.is_empty() {
            "the root resource \"\"".to_owned()
        } else {
            format!("resource {name:?}")
        };
        match resource {
            SandboxResource::File(f) => {
                // Expanding for a plain user finds every template error (relative path,
                // unknown placeholder, `..`, lone `%`).
                expand_sandbox(&f.path, "user", "user")
                    .map_err(|e| format!("{level}, {shown}: {e}"))?;
            }
            other => {
                return Err(format!(
                    "{level}, {shown}: the {} resource type is not supported yet",
                    other.type_name()
                ))
            }
        }
    }
    Ok(())
}

impl Mappings {
    /// Loads the saved mappings from `state_dir` (an absent file is none) and applies
    /// `--sandbox-dir` (`flag`) as the all-users root mapping.
    ///
    /// # Errors
    /// A corrupt or unreadable file, or a saved mapping that is no longer valid (never
    /// silently dropped: that would widen what users reach).
    pub fn load(state_dir: &Path, flag: Option<&str>) -> Result<Self, String> {
        let path = state_dir.join(FILE);
        let saved = match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<Saved>(&bytes)
                    .map_err(|e| format!("{}: corrupt sandbox mappings file: {e}", path.display()))?
                    .mappings
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => SandboxMappings::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        for (user, mapping) in &saved {
            check(user, mapping).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let mut out = Self::in_memory(flag);
        out.path = Some(path);
        let mut levels = out.levels.lock();
        levels.saved = saved.clone();
        let flag_level = levels.effective.remove("");
        levels.effective = saved;
        if let Some(level) = flag_level {
            levels.effective.insert(String::new(), level);
        }
        drop(levels);
        Ok(out)
    }

    /// Mappings kept in memory only, with `--sandbox-dir` (`flag`) as the all-users root.
    pub fn in_memory(flag: Option<&str>) -> Self {
        let mut levels = Levels::default();
        if let Some(t) = flag {
            let level: SandboxMapping = [(String::new(), SandboxResource::file(t))].into();
            levels.effective.insert(String::new(), level);
        }
        Self {
            path: None,
            flag: flag.map(str::to_owned),
            levels: Mutex::new(levels),
        }
    }

    /// Every level in force.
    pub fn all(&self) -> SandboxMappings {
        self.levels.lock().effective.clone()
    }

    /// Whether `--sandbox-dir` was given (it sets the all-users level at every start).
    pub fn flag(&self) -> Option<&str> {
        self.flag.as_deref()
    }

    /// The mapping in force for `user`: their own level, else the all-users level, else
    /// `None` (the whole file system).
    pub fn for_user(&self, user: &str) -> Option<SandboxMapping> {
        let levels = self.levels.lock();
        levels
            .effective
            .get(user)
            .or_else(|| levels.effective.get(""))
            .cloned()
    }

    /// Sets (replaces) the level of `user_name` (`""`: all users) and saves.
    ///
    /// # Errors
    /// [`ErrorKind::BadParameters`] naming what is wrong with the mapping; an internal error
    /// when it cannot be saved (nothing changes then).
    pub fn set(
        &self,
        user_name: &str,
        mapping: SandboxMapping,
    ) -> Result<SandboxMappings, ApiError> {
        check(user_name, &mapping).map_err(|e| ApiError::of(ErrorKind::BadParameters, e))?;
        self.update(|levels| {
            levels.saved.insert(user_name.to_owned(), mapping.clone());
            levels.effective.insert(user_name.to_owned(), mapping);
            Ok(())
        })
    }

    /// Removes the level of `user_name` (`""`: all users) and saves.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when that level has no mapping; an internal error when the
    /// change cannot be saved (nothing changes then).
    pub fn delete(&self, user_name: &str) -> Result<SandboxMappings, ApiError> {
        self.update(|levels| {
            if levels.effective.remove(user_name).is_none() {
                let level = if user_name.is_empty() {
                    "all users (\"\")".to_owned()
                } else {
                    format!("user {user_name:?}")
                };
                return Err(ApiError::not_found(format!(
                    "there is no sandbox mapping for {level}"
                )));
            }
            levels.saved.remove(user_name);
            Ok(())
        })
    }

    /// Applies `change` to a copy, saves the copy's `saved` levels, then keeps it.
    fn update(
        &self,
        change: impl FnOnce(&mut Levels) -> Result<(), ApiError>,
    ) -> Result<SandboxMappings, ApiError> {
        let mut levels = self.levels.lock();
        let mut next = Levels {
            effective: levels.effective.clone(),
            saved: levels.saved.clone(),
        };
        change(&mut next)?;
        if let Some(path) = &self.path {
            if next.saved != levels.saved {
                let saved = Saved {
                    mappings: next.saved.clone(),
                };
                let bytes = serde_json::to_vec_pretty(&saved)
                    .map_err(|e| ApiError::internal("saving the sandbox mappings", e))?;
                crate::server::state::write_atomic(path, &bytes).map_err(|e| {
                    ApiError::internal(
                        "saving the sandbox mappings",
                        format!("{}: {e}", path.display()),
                    )
                })?;
            }
        }
        *levels = next;
        Ok(levels.effective.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(pairs: &[(&str, &str)]) -> SandboxMapping {
        pairs
            .iter()
            .map(|(n, p)| ((*n).to_owned(), SandboxResource::file(*p)))
            .collect()
    }

    #[test]
    fn per_user_replaces_all_users() {
        let m = Mappings::in_memory(None);
        assert_eq!(m.for_user("alice"), None);
        m.set("", level(&[("", "/data/%u")])).unwrap();
        m.set("alice", level(&[("home", "/h/%u")])).unwrap();
        assert_eq!(m.for_user("alice"), Some(level(&[("home", "/h/%u")])));
        assert_eq!(m.for_user("bob"), Some(level(&[("", "/data/%u")])));
        m.delete("alice").unwrap();
        assert_eq!(m.for_user("alice"), Some(level(&[("", "/data/%u")])));
        assert_eq!(m.delete("alice").unwrap_err().kind, ErrorKind::NotFound);
    }

    #[test]
    fn refuses_bad_levels_naming_them() {
        let m = Mappings::in_memory(None);
        for (user, lvl, needle) in [
            ("", level(&[("", "data/%u")]), "not an absolute path"),
            ("bob", level(&[("home", "/h/%x")]), "%x"),
            ("bob", level(&[("a/b", "/h")]), "\"a/b\""),
            ("bob", level(&[("..", "/h")]), "\"..\""),
            ("bob", level(&[]), "no resource"),
            ("bob", level(&[("", "/h/../etc")]), ".."),
        ] {
            let e = m.set(user, lvl).unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadParameters);
            assert!(e.message.contains(needle), "{}", e.message);
        }
        assert!(m.all().is_empty());
    }

    #[test]
    fn the_flag_is_the_all_users_root_and_is_not_saved() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mappings::load(dir.path(), Some("/data")).unwrap();
        assert_eq!(m.all()[""], level(&[("", "/data")]));
        m.set("bob", level(&[("", "/b")])).unwrap();
        // Without the flag, only what commands set comes back.
        let again = Mappings::load(dir.path(), None).unwrap();
        assert_eq!(again.for_user("alice"), None);
        assert_eq!(again.for_user("bob"), Some(level(&[("", "/b")])));
        // An all-users level set by command is saved; the flag wins at start.
        again.set("", level(&[("", "/saved")])).unwrap();
        let flagged = Mappings::load(dir.path(), Some("/data")).unwrap();
        assert_eq!(flagged.for_user("alice"), Some(level(&[("", "/data")])));
        let plain = Mappings::load(dir.path(), None).unwrap();
        assert_eq!(plain.for_user("alice"), Some(level(&[("", "/saved")])));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(dir.path().join(FILE)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}
