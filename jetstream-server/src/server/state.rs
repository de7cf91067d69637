//! The persistent state directory (`--persistent-state-dir`): the server's identity
//! (`serverUid`), its TLS key and certificate (see [`crate::tls`]) and the persisted objects.
//! Every file is written atomically (temporary file, fsync, rename) and readable only by the
//! server's own user: the objects file holds destination credentials.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::objects::{new_id, Persisted};

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Identity {
    server_uid: String,
}

const IDENTITY: &str = "server.json";
const OBJECTS: &str = "objects.json";

impl StateDir {
    /// Opens (creating, mode 0700) the directory and checks it is writable.
    ///
    /// # Errors
    /// A message naming the directory when it cannot be created or written.
    pub fn open(dir: &Path) -> Result<Self, String> {
        let fail = |what: &str, e: io::Error| {
            format!("persistent state dir {}: cannot {what}: {e}", dir.display())
        };
        fs::create_dir_all(dir).map_err(|e| fail("create it", e))?;
        let meta = fs::metadata(dir).map_err(|e| fail("read it", e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| fail("make it private (chmod 700)", e))?;
        }
        let probe = dir.join(".write-test");
        write_atomic(&probe, b"ok").map_err(|e| fail("write to it", e))?;
        let _ = fs::remove_file(&probe);
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The `serverUid`, generated at the first start and kept.
    ///
    /// # Errors
    /// When the identity file is unreadable or cannot be written.
    pub fn server_uid(&self) -> Result<String, String> {
        let path = self.dir.join(IDENTITY);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Identity>(&bytes)
                .map(|i| i.server_uid)
                .map_err(|e| format!("{}: corrupt identity file: {e}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let id = Identity {
                    server_uid: new_id(),
                };
                // Serialising a struct of one String cannot fail.
                let bytes = serde_json::to_vec_pretty(&id).expect("serialise identity");
                write_atomic(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(id.server_uid)
            }
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// The persisted objects (empty on the first start).
    ///
    /// # Errors
    /// When the file exists but cannot be read or parsed (the server refuses to start rather
    /// than silently forget transfers).
    pub fn load(&self) -> Result<Persisted, String> {
        let path = self.dir.join(OBJECTS);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: corrupt state file: {e}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Persisted::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Replaces the persisted objects.
    ///
    /// # Errors
    /// The I/O error.
    pub fn save(&self, p: &Persisted) -> io::Result<()> {
        let bytes = serde_json::to_vec(p).map_err(io::Error::other)?;
        write_atomic(&self.dir.join(OBJECTS), &bytes)
    }
}

/// Writes `bytes` to `path` atomically with mode 0600.
///
/// # Errors
/// The I/O error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_is_generated_once_and_files_are_private() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(&d.path().join("state")).unwrap();
        let a = s.server_uid().unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(StateDir::open(s.path()).unwrap().server_uid().unwrap(), a);
        let mode = fs::metadata(s.path().join(IDENTITY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = fs::metadata(s.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn objects_round_trip_and_corruption_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(d.path()).unwrap();
        assert!(s.load().unwrap().transfers.is_empty());
        s.save(&Persisted::default()).unwrap();
        assert!(s.load().unwrap().destinations.is_empty());
        fs::write(d.path().join(OBJECTS), b"{not json").unwrap();
        assert!(s.load().unwrap_err().contains("corrupt"));
    }

    #[test]
    fn an_unwritable_dir_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("f");
        fs::write(&file, b"x").unwrap();
        let e = StateDir::open(&file.join("state")).unwrap_err();
        assert!(e.contains("cannot create"), "{e}");
    }
}
