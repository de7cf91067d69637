//! Path mapping: the server's sandbox rules (`expand_sandbox`, `clean_relative`, `join_under`,
//! `map_target`) and the engine's manifest-path rules (`validate_relative`, `resolve`,
//! `temp_path`) on arbitrary strings.
//!
//! Input: up to five fields separated by `0xFF` bytes (never part of UTF-8 text): a sandbox
//! template, a user name, a `destinationPath`, a file target path and a manifest path (each
//! decoded lossily as UTF-8, so NUL and any other character can appear).
//!
//! Invariant: whatever is accepted stays inside its root lexically: an accepted mapping is
//! absolute, starts with the sandbox (and with `sandbox/destinationPath`), has no `.`, `..` or
//! empty component and no NUL; a cleaned or validated relative path is not absolute, has no
//! such component and is a fixed point of `clean_relative`.

#![no_main]

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use jetstream_core::fs::paths::{self, MAX_COMPONENT_BYTES, MAX_PATH_BYTES};
use jetstream_server::sandbox::{clean_relative, expand_sandbox, join_under, map_target};
use libfuzzer_sys::fuzz_target;

/// A root that does not exist, so that `resolve` only ever `lstat`s missing paths.
const MISSING_ROOT: &str = "/nonexistent-jetstream-fuzz/root";

fuzz_target!(|data: &[u8]| {
    let mut fields = data
        .split(|&b| b == 0xFF)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let template = fields.next().unwrap_or_default();
    let user = fields.next().unwrap_or_default();
    let dest = fields.next().unwrap_or_default();
    let target = fields.next().unwrap_or_default();
    let rel = fields.next().unwrap_or_default();

    // Every string is tried in every role: the fuzzer need not guess which field is which.
    for s in [&template, &user, &dest, &target, &rel] {
        check_clean(s);
        check_engine_path(s);
    }

    let mut roots = vec![PathBuf::from("/srv/sandbox"), PathBuf::from("/")];
    if let Ok(root) = expand_sandbox(&template, &user, &user) {
        check_mapped(&root, Path::new("/"));
        if template == "/storage/%u" {
            // A user name can never add or remove a level.
            assert_eq!(
                root.parent(),
                Some(Path::new("/storage")),
                "{user:?} -> {root:?}"
            );
        }
        roots.push(root);
    }
    if let Ok(root) = expand_sandbox("/storage/%u", &user, &user) {
        assert_eq!(
            root.parent(),
            Some(Path::new("/storage")),
            "{user:?} -> {root:?}"
        );
    }
    for root in &roots {
        for (d, t) in [(&dest, &target), (&target, &dest), (&rel, &user)] {
            let Ok(p) = map_target(Some(root), d, t) else {
                continue;
            };
            check_mapped(&p, root);
            // A `..` in the target cannot climb into or above the destination path.
            let d_clean = clean_relative(d).expect("map_target accepted it");
            check_mapped(&p, &join_under(root, &d_clean));
        }
    }
    if let Ok(p) = map_target(None, &dest, &target) {
        check_mapped(&p, Path::new("/"));
    }
});

/// `clean_relative`: accepted output is relative, clean and a fixed point.
fn check_clean(s: &str) {
    let Ok(r) = clean_relative(s) else {
        return;
    };
    assert!(!r.starts_with('/'), "{s:?} -> {r:?} is absolute");
    assert!(!r.contains('\0'), "{s:?} -> {r:?} has a NUL");
    if !r.is_empty() {
        for c in r.split('/') {
            assert!(!matches!(c, "" | "." | ".."), "{s:?} -> {r:?}");
        }
    }
    assert_eq!(
        clean_relative(&r).ok().as_deref(),
        Some(r.as_str()),
        "{s:?}"
    );
    check_mapped(
        &join_under(Path::new("/srv/sandbox"), &r),
        Path::new("/srv/sandbox"),
    );
}

/// The engine's manifest-path rules, and their agreement with the server's.
fn check_engine_path(s: &str) {
    let valid = paths::validate_relative(s).is_ok();
    assert_eq!(
        valid,
        jetstream_core::manifest::ManifestEntry::file(s, 0, 0, false).is_ok(),
        "{s:?}: a manifest entry must accept exactly the valid paths"
    );
    if !valid {
        return;
    }
    assert!(
        !s.is_empty() && !s.starts_with('/') && !s.contains('\0'),
        "{s:?}"
    );
    assert!(s.len() <= MAX_PATH_BYTES, "{s:?}");
    for c in s.split('/') {
        assert!(!matches!(c, "" | "." | ".."), "{s:?}");
        assert!(c.len() <= MAX_COMPONENT_BYTES, "{s:?}");
    }
    // Every path the engine accepts is already clean by the server's rule.
    assert_eq!(clean_relative(s).ok().as_deref(), Some(s), "{s:?}");
    let root = Path::new(MISSING_ROOT);
    let resolved = paths::resolve(root, s).expect("a valid path under a missing root resolves");
    check_mapped(&resolved, root);
    let part = paths::temp_path(&resolved, "0123456789abcdef");
    assert_eq!(
        part.parent(),
        resolved.parent(),
        "{s:?}: part file in another directory"
    );
    let name = part.file_name().expect("a part file has a name").as_bytes();
    assert!(
        name.len() <= MAX_COMPONENT_BYTES && name.starts_with(b"."),
        "{part:?}"
    );
}

/// `p` is absolute, below `root` (component-wise), and has no `.`/`..` component or NUL.
fn check_mapped(p: &Path, root: &Path) {
    assert!(p.is_absolute(), "{p:?} is not absolute");
    assert!(p.starts_with(root), "{p:?} is outside {root:?}");
    let bytes = p.as_os_str().as_bytes();
    assert!(!bytes.contains(&0), "{p:?} has a NUL");
    for c in bytes.split(|&b| b == b'/').skip(1) {
        assert!(c != b"." && c != b"..", "{p:?} has a dot component");
    }
    assert!(
        p.components()
            .all(|c| !matches!(c, Component::ParentDir | Component::CurDir)),
        "{p:?}"
    );
}
