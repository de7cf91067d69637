//! What one session may reach on this server's file system: its sandbox mapping expanded for
//! its user, narrowed by its token's `path` ([`Resources`]), and the one way every command
//! turns a path the client gave into a directory ([`Resources::locate`]).
//!
//! The user sees a *virtual* tree. Without a mapping it is the whole file system (`/`). With a
//! mapping (reference §4.11, §6.4) it is made of resources: the root resource (`""`) is the
//! top of the tree; every named resource is a folder at the top (`/home/...`, `/common/...`)
//! whose contents are that resource's directory. When a mapping has a root and named
//! resources, a path whose first folder is a resource's name goes to that resource (the name
//! hides a same-named folder of the root); any other path goes to the root. When it has only
//! named resources, a path must start with one of their names.
//!
//! A token's `path` narrows the tree: the token's paths are read below it, and `..` cannot
//! climb above it (it is cleaned apart from the path given).
//!
//! [`Located`] is the answer: the resource's directory (`root`, which the server prepares the
//! way it prepares a sandbox today: created as root only where no user can interfere, then
//! given to the user, see [`super::open`]) and the path below it (`rel`, created and read as
//! the user, no link followed). Callers never join strings themselves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jetstream_api::types::{SandboxMapping, SandboxResource};
use jetstream_api::ErrorKind;

use super::{clean_relative, expand_sandbox, join_under, SandboxError};
use crate::server::api::ApiError;

/// The part of the file system one session may reach (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    /// The root resource's directory; `None` when the mapping has only named resources.
    /// Without a mapping: `/`.
    top: Option<PathBuf>,
    /// The named resources' directories.
    named: BTreeMap<String, PathBuf>,
    /// Whether a sandbox mapping applies (false: the whole file system).
    mapped: bool,
    /// A token's `path`, cleaned (relative to the top of the virtual tree).
    token: Option<String>,
}

/// Where a virtual path is: a resource's directory and the clean path below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The resource's directory (the user's sandbox, or `/` without one): prepared as the
    /// server, like a sandbox ([`super::open_receive_dir`]'s `base`).
    pub root: PathBuf,
    /// The path below `root`, cleaned ([`clean_relative`]; `""` is `root` itself): created and
    /// read as the user.
    pub rel: String,
    /// The resource's name (`""` for the root resource, and without a mapping).
    pub resource: String,
}

impl Located {
    /// `root` joined with `rel`: the real path (for messages and reading; a receive opens
    /// `root` and `rel` separately).
    pub fn path(&self) -> PathBuf {
        join_under(&self.root, &self.rel)
    }
}

/// One folder at the top of what a user sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    /// Its name at the top: `""` for the root itself (the whole view, when there is a root
    /// resource or no mapping), else the named resource's name (shown as `/<name>`).
    pub name: String,
    /// Where it is.
    pub at: Located,
}

impl Resources {
    /// No mapping, no token: the whole file system.
    pub fn whole() -> Self {
        Self {
            top: Some(PathBuf::from("/")),
            named: BTreeMap::new(),
            mapped: false,
            token: None,
        }
    }

    /// The resources of `user` (full name `full_name`) under `mapping` (`None`: the whole
    /// file system), narrowed to `token_path` when the session logged in with a token that
    /// has one.
    ///
    /// # Errors
    /// [`SandboxError::BadTemplate`] when a resource's path does not expand for this user (a
    /// user name or full name with `/`, say), [`SandboxError::Escape`] for a token path that
    /// climbs above the top.
    pub fn for_user(
        mapping: Option<&SandboxMapping>,
        user: &str,
        full_name: &str,
        token_path: Option<&str>,
    ) -> Result<Self, SandboxError> {
        let mut out = match mapping {
            None => Self::whole(),
            Some(m) => {
                let mut top = None;
                let mut named = BTreeMap::new();
                for (name, resource) in m {
                    let dir = match resource {
                        SandboxResource::File(f) => expand_sandbox(&f.path, user, full_name)?,
                        other => {
                            return Err(SandboxError::BadTemplate(format!(
                                "the {} resource type is not supported yet",
                                other.type_name()
                            )))
                        }
                    };
                    if name.is_empty() {
                        top = Some(dir);
                    } else {
                        named.insert(name.clone(), dir);
                    }
                }
                Self {
                    top,
                    named,
                    mapped: true,
                    token: None,
                }
            }
        };
        out.token = token_path.map(clean_relative).transpose()?;
        Ok(out)
    }

    /// Whether a sandbox mapping applies (`false`: the whole file system, maybe narrowed by
    /// a token).
    pub fn is_mapped(&self) -> bool {
        self.mapped
    }

    /// Whether the session is confined at all: a mapping applies, or its token has a `path`
    /// (`getServerInfo().user.sandboxed`).
    pub fn is_sandboxed(&self) -> bool {
        self.mapped || self.token.is_some()
    }

    /// The names of the named resources (the folders shown at the top), in order.
    pub fn resource_names(&self) -> Vec<&str> {
        self.named.keys().map(String::as_str).collect()
    }

    /// Where the virtual path `path` is (`/`, `""` and `.` are the top; a leading `/` is
    /// optional; `..` may not climb above the top, nor above the token's path).
    ///
    /// # Errors
    /// [`ErrorKind::BadParameters`] for a path that escapes or is malformed, or that is not
    /// inside any resource (the mapping has only named resources and the path does not start
    /// with one of their names: the message names them).
    pub fn locate(&self, path: &str) -> Result<Located, ApiError> {
        let v = clean_relative(path)
            .map_err(|e| ApiError::of(ErrorKind::BadParameters, e.to_string()))?;
        let full = match &self.token {
            Some(t) if !t.is_empty() && !v.is_empty() => format!("{t}/{v}"),
            Some(t) if !t.is_empty() => t.clone(),
            _ => v,
        };
        if !self.named.is_empty() {
            let (first, rest) = full.split_once('/').unwrap_or((&full, ""));
            if let Some(dir) = self.named.get(first) {
                return Ok(Located {
                    root: dir.clone(),
                    rel: rest.to_owned(),
                    resource: first.to_owned(),
                });
            }
        }
        match &self.top {
            Some(top) => Ok(Located {
                root: top.clone(),
                rel: full,
                resource: String::new(),
            }),
            None => {
                let names: Vec<String> = self.named.keys().map(|n| format!("/{n}")).collect();
                Err(ApiError::of(
                    ErrorKind::BadParameters,
                    format!(
                        "path {:?} is not inside any of this user's sandbox resources ({}): \
                         start it with one of them",
                        format!("/{full}"),
                        names.join(", ")
                    ),
                ))
            }
        }
    }

    /// What the user sees at the top: the root (`name` `""`), when there is one, then every
    /// named resource as a folder. A token's `path` makes it one root: that directory.
    pub fn roots(&self) -> Vec<Root> {
        if self.token.as_deref().is_some_and(|t| !t.is_empty()) {
            return self
                .locate("")
                .map(|at| Root {
                    name: String::new(),
                    at,
                })
                .into_iter()
                .collect();
        }
        let mut out = Vec::with_capacity(self.named.len() + 1);
        if let Some(top) = &self.top {
            out.push(Root {
                name: String::new(),
                at: Located {
                    root: top.clone(),
                    rel: String::new(),
                    resource: String::new(),
                },
            });
        }
        for (name, dir) in &self.named {
            out.push(Root {
                name: name.clone(),
                at: Located {
                    root: dir.clone(),
                    rel: String::new(),
                    resource: name.clone(),
                },
            });
        }
        out
    }

    /// The directory below which no symbolic link is followed when reading `at` (the
    /// resource's directory; without a mapping, the token's directory, else nothing).
    pub fn confine(&self, at: &Located) -> Option<PathBuf> {
        if self.mapped {
            Some(at.root.clone())
        } else {
            self.token.as_deref().map(|t| join_under(Path::new("/"), t))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(pairs: &[(&str, &str)]) -> SandboxMapping {
        pairs
            .iter()
            .map(|(n, p)| ((*n).to_owned(), SandboxResource::file(*p)))
            .collect()
    }

    fn at(root: &str, rel: &str, resource: &str) -> Located {
        Located {
            root: root.into(),
            rel: rel.into(),
            resource: resource.into(),
        }
    }

    #[test]
    fn whole_file_system() {
        let r = Resources::whole();
        assert!(!r.is_sandboxed());
        assert_eq!(r.locate("/mnt/x").unwrap(), at("/", "mnt/x", ""));
        assert_eq!(r.roots().len(), 1);
        assert!(r.locate("/../x").is_err());
        assert_eq!(r.confine(&r.locate("/a").unwrap()), None);
    }

    #[test]
    fn root_resource_expands_for_the_user() {
        let m = mapping(&[("", "/storage/%u")]);
        let r = Resources::for_user(Some(&m), "alice", "Alice", None).unwrap();
        assert!(r.is_sandboxed());
        assert_eq!(
            r.locate("/repository1").unwrap(),
            at("/storage/alice", "repository1", "")
        );
        assert_eq!(r.locate("").unwrap().path(), Path::new("/storage/alice"));
        assert!(r.locate("../bob").is_err());
    }

    #[test]
    fn named_resources_are_top_folders() {
        let m = mapping(&[("home", "/h/%u"), ("common", "/srv/common")]);
        let r = Resources::for_user(Some(&m), "alice", "alice", None).unwrap();
        assert_eq!(
            r.locate("/home/x/y").unwrap(),
            at("/h/alice", "x/y", "home")
        );
        assert_eq!(r.locate("common").unwrap(), at("/srv/common", "", "common"));
        // `..` is cleaned first: it cannot leave one resource for another.
        assert_eq!(
            r.locate("/home/../common/z").unwrap(),
            at("/srv/common", "z", "common")
        );
        assert!(r.locate("/home/../../etc").is_err());
        let e = r.locate("/elsewhere").unwrap_err();
        assert!(e.message.contains("/common, /home"), "{}", e.message);
        assert!(r.locate("/").is_err());
        let names: Vec<String> = r.roots().into_iter().map(|x| x.name).collect();
        assert_eq!(names, ["common", "home"]);
    }

    #[test]
    fn root_and_named_together() {
        let m = mapping(&[("", "/data/%u"), ("common", "/srv/common")]);
        let r = Resources::for_user(Some(&m), "bob", "bob", None).unwrap();
        assert_eq!(
            r.locate("/common/a").unwrap(),
            at("/srv/common", "a", "common")
        );
        assert_eq!(
            r.locate("/other/a").unwrap(),
            at("/data/bob", "other/a", "")
        );
        assert_eq!(r.roots().len(), 2);
    }

    #[test]
    fn a_token_path_narrows() {
        let m = mapping(&[("home", "/h/%u"), ("common", "/srv/common")]);
        let r = Resources::for_user(Some(&m), "alice", "alice", Some("/home/proj")).unwrap();
        assert_eq!(r.locate("/a").unwrap(), at("/h/alice", "proj/a", "home"));
        assert!(r.locate("../../common").is_err());
        let roots = r.roots();
        assert_eq!(roots.len(), 1);
        assert_eq!(roots[0].at, at("/h/alice", "proj", "home"));
        let w = Resources::for_user(None, "alice", "alice", Some("/srv/x")).unwrap();
        assert!(w.is_sandboxed() && !w.is_mapped());
        assert_eq!(w.locate("/y").unwrap(), at("/", "srv/x/y", ""));
        assert_eq!(
            w.confine(&w.locate("/y").unwrap()),
            Some(PathBuf::from("/srv/x"))
        );
    }

    #[test]
    fn placeholders_and_bad_names() {
        let m = mapping(&[("", "/s/%d/%f/%%/%u")]);
        let r = Resources::for_user(Some(&m), "alice", "Alice Liddell", None).unwrap();
        assert_eq!(
            r.locate("").unwrap().root,
            Path::new("/s/Alice Liddell/%/alice")
        );
        let m = mapping(&[("", "/s/%f")]);
        assert!(Resources::for_user(Some(&m), "alice", "a/b", None).is_err());
    }
}
