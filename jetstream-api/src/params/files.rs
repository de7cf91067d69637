//! The files API's parameters (`lsAsync`, `lsRootsAsync`, `mkdirAsync`, `mvAsync`, `rmAsync`,
//! `duAsync`): paths as the client sees them, from the top of its sandbox (see
//! `docs/files-api.md`). A leading `/` is optional, `..` may not climb above the top.

use serde::{Deserialize, Serialize};

/// `lsRootsAsync`: no parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LsRoots {}

/// `lsAsync`: the directory to list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ls {
    /// The directory (default `/`, the top of the sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `mkdirAsync`: the directory to make (its missing parents are made too).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mkdir {
    /// The new directory; it must not exist yet.
    pub path: String,
}

/// `mvAsync`: what to move (or rename) and where.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mv {
    /// The file, directory or link to move.
    pub src: String,
    /// Its new path (not the directory to move it into); nothing may be there yet.
    pub dst: String,
}

/// `rmAsync`: what to remove (a directory with everything in it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rm {
    /// The file, link or directory to remove; not the top of the sandbox.
    pub path: String,
}

/// `duAsync`: what to measure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Du {
    /// The directory or file (default `/`, the whole sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}
