use super::*;
use std::io::Write;
use std::os::unix::fs::symlink;

const CREATE: libc::c_int = libc::O_WRONLY | libc::O_CREAT;

/// Runs `check` with a root opened normally (openat2 where the kernel has it) and with the
/// per-component walk forced.
fn both(check: impl Fn(&Path, Dir)) {
    for walk in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let dir = Dir::open(&root).unwrap();
        check(tmp.path(), if walk { dir.force_walk() } else { dir });
    }
}

fn is_escape<T: fmt::Debug>(r: &Result<T, FsError>) -> bool {
    matches!(r, Err(FsError::Escape { .. }))
}

#[test]
fn creates_and_opens_directories_below_the_root() {
    both(|tmp, root| {
        let d = root.create_dirs("a/b c/ファイル").unwrap();
        assert_eq!(d.path(), tmp.join("root/a/b c/ファイル"));
        assert!(tmp.join("root/a/b c/ファイル").is_dir());
        // Idempotent; open_dir finds it; "" is the root itself.
        root.create_dirs("a/b c/ファイル").unwrap();
        let again = root.open_dir("a//b c/ファイル/").unwrap();
        assert_eq!(again.stat().unwrap().kind, Kind::Directory);
        assert_eq!(root.open_dir("").unwrap().path(), root.path());
        let missing = root.open_dir("a/none");
        assert!(
            matches!(
                &missing,
                Err(FsError::Io {
                    kind: io::ErrorKind::NotFound,
                    ..
                })
            ),
            "{missing:?}"
        );
        // A file written through the parent's descriptor lands there.
        let (parent, name) = root.parent_of("a/b c/ファイル/f.txt", true).unwrap();
        let mut f = parent.open_file(name, CREATE, 0o600).unwrap();
        f.write_all(b"x").unwrap();
        assert_eq!(
            std::fs::read(tmp.join("root/a/b c/ファイル/f.txt")).unwrap(),
            b"x"
        );
    });
}

#[test]
fn refuses_a_symlinked_directory_pointing_outside() {
    both(|tmp, root| {
        let outside = tmp.join("outside");
        std::fs::create_dir(&outside).unwrap();
        symlink(&outside, tmp.join("root/link")).unwrap();
        assert!(is_escape(&root.open_dir("link")), "open link");
        assert!(is_escape(&root.open_dir("link/x")), "open link/x");
        assert!(
            is_escape(&root.create_dirs("link/sub/x")),
            "create below link"
        );
        assert!(is_escape(&root.parent_of("link/f", true)), "parent link");
        // A link pointing back inside is refused too (simple and obviously safe).
        std::fs::create_dir(tmp.join("root/real")).unwrap();
        symlink(tmp.join("root/real"), tmp.join("root/alias")).unwrap();
        assert!(is_escape(&root.create_dirs("alias/y")), "alias");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        assert!(!tmp.join("root/real/y").exists());
    });
}

#[test]
fn refuses_a_symlinked_final_component() {
    both(|tmp, root| {
        let victim = tmp.join("victim");
        std::fs::write(&victim, b"untouched").unwrap();
        symlink(&victim, tmp.join("root/f")).unwrap();
        symlink(tmp.join("nowhere"), tmp.join("root/dangling")).unwrap();
        for name in ["f", "dangling"] {
            let err = root
                .open_file(name, CREATE | libc::O_TRUNC, 0o600)
                .unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{name}: {err}");
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
        assert!(!tmp.join("nowhere").exists());
        // A link as the last directory component.
        std::fs::create_dir(tmp.join("dir")).unwrap();
        symlink(tmp.join("dir"), tmp.join("root/d")).unwrap();
        assert!(is_escape(&root.open_dir("d")));
        assert!(is_escape(&root.create_dirs("d")));
        assert_eq!(root.lstat("d").unwrap().kind, Kind::Symlink);
    });
}

#[test]
fn dot_dot_and_odd_names_are_not_possible() {
    both(|tmp, root| {
        std::fs::create_dir(tmp.join("root/a")).unwrap();
        for rel in ["..", "a/..", "a/../..", "../root", "./a", "a/."] {
            assert!(is_escape(&root.open_dir(rel)), "{rel}");
            assert!(is_escape(&root.create_dirs(rel)), "{rel}");
        }
        for name in ["..", ".", "", "a/b", "x\0y"] {
            let err = root.open_file(name, CREATE, 0o600).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name:?}");
            assert!(root.mkdir(name, 0o700).is_err(), "{name:?}");
            assert!(root.rename(name, "z").is_err(), "{name:?}");
        }
        assert!(!tmp.join("z").exists());
    });
}

#[test]
fn refuses_a_file_used_as_a_directory() {
    both(|tmp, root| {
        std::fs::write(tmp.join("root/file"), b"x").unwrap();
        for r in [root.open_dir("file/x"), root.create_dirs("file/sub/x")] {
            match r {
                Err(FsError::Io {
                    kind,
                    message,
                    path,
                }) => {
                    assert_eq!(kind, io::ErrorKind::Other, "{path:?}");
                    assert_eq!(message, "not a directory");
                    assert_eq!(path, tmp.join("root/file"));
                }
                other => panic!("{other:?}"),
            }
        }
    });
}

/// The race the descriptors close: a directory is resolved, then swapped for a link to a
/// directory outside; everything done through the resolved descriptor stays inside.
#[test]
fn a_directory_swapped_for_a_link_after_resolution_stays_inside() {
    both(|tmp, root| {
        let outside = tmp.join("outside");
        std::fs::create_dir(&outside).unwrap();
        let (parent, name) = root.parent_of("d/f", true).unwrap();
        std::fs::rename(tmp.join("root/d"), tmp.join("root/moved")).unwrap();
        symlink(&outside, tmp.join("root/d")).unwrap();
        let mut f = parent.open_file(".f.part", CREATE, 0o600).unwrap();
        f.write_all(b"data").unwrap();
        parent.rename(".f.part", name).unwrap();
        parent.set_modified(name, SystemTime::UNIX_EPOCH).unwrap();
        parent.sync();
        assert_eq!(std::fs::read(tmp.join("root/moved/f")).unwrap(), b"data");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        // A fresh resolution sees the link and refuses it.
        assert!(is_escape(&root.parent_of("d/g", true)));
        // Removing through the descriptor works on the real directory too.
        parent.remove_file(name).unwrap();
        assert!(!tmp.join("root/moved/f").exists());
    });
}

#[test]
fn the_root_itself_may_be_a_link() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("real")).unwrap();
    symlink(tmp.path().join("real"), tmp.path().join("linked")).unwrap();
    let root = Dir::open(&tmp.path().join("linked")).unwrap();
    root.create_dirs("x").unwrap();
    assert!(tmp.path().join("real/x").is_dir());
    // from_fd refuses a descriptor that is not a directory.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let fd = OwnedFd::from(File::open(&file).unwrap());
    assert!(Dir::from_fd(fd, file).is_err());
}

#[test]
fn the_choice_of_resolver_is_made_by_the_first_resolution() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Dir::open(tmp.path()).unwrap();
    root.create_dirs("a/b").unwrap();
    root.open_dir("a/b").unwrap();
    // Either openat2 worked, or the kernel (or a seccomp filter) refused it and the walk is
    // used from now on; never still undecided.
    let state = OPENAT2.load(Ordering::Relaxed);
    assert_ne!(state, OPENAT2_UNKNOWN);
    eprintln!("openat2 in use: {}", uses_openat2());
}

#[test]
fn lists_entries_of_any_name_without_following() {
    use std::os::unix::ffi::OsStrExt;
    both(|tmp, root| {
        let r = tmp.join("root");
        std::fs::write(r.join("f"), b"12345").unwrap();
        std::fs::create_dir(r.join("d")).unwrap();
        symlink("/etc", r.join("l")).unwrap();
        let odd = OsStr::from_bytes(b"not-utf8-\xff");
        std::fs::write(r.join(odd), b"").unwrap();
        let mut names = root.entries().unwrap();
        names.sort();
        let want: Vec<OsString> = ["d", "f", "l"]
            .iter()
            .map(OsString::from)
            .chain([odd.to_owned()])
            .collect();
        assert_eq!(names, want);
        // A non-UTF-8 name is usable as a component.
        assert_eq!(root.lstat(odd).unwrap().kind, Kind::File);
        root.remove_file(odd).unwrap();
        let f = root.lstat("f").unwrap();
        assert_eq!((f.kind, f.len), (Kind::File, 5));
        let meta = std::fs::metadata(r.join("f")).unwrap();
        assert_eq!(f.mtime, meta.modified().unwrap());
        assert_eq!(f.dev, std::os::unix::fs::MetadataExt::dev(&meta));
        assert_eq!(root.lstat("l").unwrap().kind, Kind::Symlink);
    });
}

#[test]
fn move_to_never_replaces() {
    both(|tmp, root| {
        let r = tmp.join("root");
        std::fs::write(r.join("a"), b"a").unwrap();
        std::fs::write(r.join("b"), b"b").unwrap();
        let d = root.create_dirs("d").unwrap();
        let e = root.move_to("a", &root, "b").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(r.join("b")).unwrap(), b"b");
        root.move_to("a", &d, "a2").unwrap();
        assert_eq!(std::fs::read(r.join("d/a2")).unwrap(), b"a");
        // A directory cannot go into itself.
        let e = root.move_to("d", &d, "inner").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    });
}
