//! The sandbox-mapping commands' parameters (reference §4.11, §6.4).

use serde::{Deserialize, Serialize};

use crate::types::SandboxMapping;

/// `getSandboxMappings`: no parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetSandboxMappings {}

/// `setSandboxMapping`: one level's mapping, replacing what that level had.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetSandboxMapping {
    /// The user the mapping is for; `""` is every user (the all-users level).
    pub user_name: String,
    /// `{resourceName: config}`: `""` names the root, other names are shown to the user as
    /// top-level folders; a config is a path string or `{"type": "File", "path": ...}`.
    pub mapping: SandboxMapping,
}

/// `deleteSandboxMapping`: the level to remove.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteSandboxMapping {
    /// The user whose mapping goes; `""` is the all-users level.
    pub user_name: String,
}
