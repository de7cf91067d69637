//! The files API's results (`lsAsync`, `lsRootsAsync`, `mkdirAsync`, `mvAsync`, `rmAsync`,
//! `duAsync`; the reference leaves their structures undocumented, `docs/files-api.md` documents
//! these). Paths are as the client sees them: from the top of its sandbox, starting with `/`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

use super::Timestamp;

wire_enum! {
    /// What a directory entry is, seen without following it.
    FileType {
        /// A directory.
        Directory = "directory",
        /// A regular file.
        File = "file",
        /// A device, a fifo or a socket.
        Special = "special",
        /// A symbolic link (never followed: `linkTarget` says where it points).
        Symlink = "symlink",
    }
}

wire_enum! {
    /// The kind of storage a root is (a sandbox resource type, reference §6.4).
    RootType {
        /// Directories of this server's file system.
        File = "File",
    }
}

/// One file, directory or link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    /// Its name (the last component of `path`; `""` for the top of the sandbox).
    pub name: String,
    /// Its path, from the top of the sandbox (`/a/b`).
    pub path: String,
    /// What it is.
    #[serde(rename = "type")]
    pub file_type: FileType,
    /// Size in bytes (of a link: the length of its target; of a directory: what the file
    /// system says).
    pub size: u64,
    /// Last modification (µs since the Unix epoch).
    pub modification_time: Timestamp,
    /// Permission bits (`0o644` is 420), including setuid, setgid and sticky.
    pub mode: u32,
    /// Whether it is a regular file someone may execute (any `x` bit).
    pub executable: bool,
    /// A link's target, as written in the link (left out for anything else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
}

/// `lsAsync`'s result: a directory's entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listing {
    /// The directory listed, from the top of the sandbox.
    pub path: String,
    /// Its entries, sorted by name (`.` and `..` left out).
    pub entries: Vec<FileEntry>,
    /// Whether entries were left out: past the cap on one answer, or names that are not
    /// UTF-8 (see `skipped`).
    pub truncated: bool,
    /// Entries not listed: names that are not UTF-8 (JSON cannot name them) and those past
    /// the cap.
    pub skipped: u64,
}

/// One of `lsRootsAsync`'s roots: a top-level folder of the caller's sandbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRoot {
    /// Its name (the resource's name; `""` for the one unnamed root).
    pub name: String,
    /// Its path, for the other commands (`/` for the unnamed root).
    pub path: String,
    /// Its storage.
    #[serde(rename = "type")]
    pub root_type: RootType,
}

/// `rmAsync`'s result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Removed {
    /// What was removed, from the top of the sandbox.
    pub path: String,
    /// Files, links and special files removed.
    pub files_removed: u64,
    /// Directories removed (the path itself included, when it was one).
    pub directories_removed: u64,
}

/// `duAsync`'s result: what a directory holds, every level down, links not followed and
/// other file systems not entered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskUsage {
    /// What was measured, from the top of the sandbox.
    pub path: String,
    /// The sizes of the regular files, in bytes (a file with several hard links counts once
    /// per link).
    pub total_size: u64,
    /// Regular files.
    pub file_count: u64,
    /// Directories below the path (not the path itself).
    pub dir_count: u64,
    /// Symbolic links (counted, not followed).
    pub symlink_count: u64,
    /// Devices, fifos and sockets.
    pub special_count: u64,
    /// Directories that could not be read (no permission, or removed meanwhile): their
    /// contents are not counted.
    pub unreadable_count: u64,
    /// Directories on another file system (mount points): counted, not entered.
    pub mount_point_count: u64,
}
