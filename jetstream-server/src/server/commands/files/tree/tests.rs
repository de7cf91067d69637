//! The operations on a scratch tree, as the test's own identity (the server tests run them
//! as real users through a root server).

use std::os::unix::fs::symlink;
use std::path::Path;

use super::*;

/// A top directory `top` in a scratch dir, and an `outside` directory beside it holding a
/// file that must survive every test.
fn scratch() -> (tempfile::TempDir, Dir) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("top")).unwrap();
    std::fs::create_dir(tmp.path().join("outside")).unwrap();
    std::fs::write(tmp.path().join("outside/keep"), b"keep").unwrap();
    let top = Dir::open(&tmp.path().join("top")).unwrap();
    (tmp, top)
}

fn outside_intact(tmp: &Path) {
    assert_eq!(std::fs::read(tmp.join("outside/keep")).unwrap(), b"keep");
}

fn problem<T: std::fmt::Debug>(r: Result<T, TreeError>) -> (String, Problem) {
    let e = r.unwrap_err();
    (e.rel, e.problem)
}

#[test]
fn lists_sorted_entries_without_following_links() {
    let (tmp, top) = scratch();
    let t = tmp.path().join("top");
    std::fs::write(t.join("b.txt"), b"12345").unwrap();
    std::fs::create_dir(t.join("a")).unwrap();
    symlink(tmp.path().join("outside"), t.join("c")).unwrap();
    let (entries, skipped) = list(&top, "", MAX_LISTED).unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a", "b.txt", "c"]);
    assert_eq!(skipped, 0);
    assert_eq!(entries[1].stat.len, 5);
    assert_eq!(entries[1].rel, "b.txt");
    assert_eq!(entries[2].stat.kind, Kind::Symlink);
    assert_eq!(
        entries[2].link_target.as_deref(),
        Some(tmp.path().join("outside").to_str().unwrap())
    );
    // The link is not a way out: listing through it is refused.
    assert!(matches!(problem(list(&top, "c", 10)), (p, Problem::Symlink) if p == "c"));
    assert!(matches!(
        problem(list(&top, "b.txt", 10)).1,
        Problem::NotADirectory
    ));
    assert!(matches!(
        problem(list(&top, "none", 10)).1,
        Problem::NotFound
    ));
    // The cap.
    let (entries, skipped) = list(&top, "", 2).unwrap();
    assert_eq!((entries.len(), skipped), (2, 1));
}

#[test]
fn mkdir_makes_parents_and_refuses_what_exists() {
    let (tmp, top) = scratch();
    let e = mkdir(&top, "x/y/z").unwrap();
    assert_eq!((e.name.as_str(), e.rel.as_str()), ("z", "x/y/z"));
    assert!(tmp.path().join("top/x/y/z").is_dir());
    assert!(matches!(
        problem(mkdir(&top, "x/y/z")).1,
        Problem::AlreadyExists
    ));
    assert!(matches!(problem(mkdir(&top, "")).1, Problem::AlreadyExists));
    // Not through a link, even to make a parent.
    symlink(tmp.path().join("outside"), tmp.path().join("top/l")).unwrap();
    assert!(matches!(problem(mkdir(&top, "l/new")), (p, Problem::Symlink) if p == "l"));
    assert!(!tmp.path().join("outside/new").exists());
    outside_intact(tmp.path());
}

#[test]
fn mv_renames_within_the_top_and_replaces_nothing() {
    let (tmp, top) = scratch();
    let t = tmp.path().join("top");
    std::fs::create_dir_all(t.join("d/sub")).unwrap();
    std::fs::write(t.join("f"), b"f").unwrap();
    std::fs::write(t.join("g"), b"g").unwrap();
    let e = mv(&top, "f", "d/sub/f2").unwrap();
    assert_eq!(e.rel, "d/sub/f2");
    assert_eq!(std::fs::read(t.join("d/sub/f2")).unwrap(), b"f");
    assert!(matches!(
        problem(mv(&top, "g", "d/sub/f2")).1,
        Problem::AlreadyExists
    ));
    assert_eq!(std::fs::read(t.join("g")).unwrap(), b"g");
    assert!(matches!(
        problem(mv(&top, "d", "d/sub/d")).1,
        Problem::IntoItself
    ));
    assert!(matches!(problem(mv(&top, "", "x")).1, Problem::Top));
    assert!(matches!(problem(mv(&top, "g", "")).1, Problem::Top));
    assert!(matches!(
        problem(mv(&top, "none", "x")).1,
        Problem::NotFound
    ));
    // A link is moved as a link; a link on the way of the destination is refused.
    symlink(tmp.path().join("outside"), t.join("l")).unwrap();
    assert!(matches!(problem(mv(&top, "g", "l/g")).1, Problem::Symlink));
    assert!(!tmp.path().join("outside/g").exists());
    mv(&top, "l", "l2").unwrap();
    assert!(std::fs::symlink_metadata(t.join("l2"))
        .unwrap()
        .file_type()
        .is_symlink());
    outside_intact(tmp.path());
}

#[test]
fn rm_removes_links_not_their_targets_and_never_the_top() {
    let (tmp, top) = scratch();
    let t = tmp.path().join("top");
    std::fs::create_dir_all(t.join("d/e")).unwrap();
    std::fs::write(t.join("d/e/f"), b"f").unwrap();
    std::fs::write(t.join("d/g"), b"g").unwrap();
    symlink(tmp.path().join("outside"), t.join("d/e/link")).unwrap();
    symlink(tmp.path().join("outside/keep"), t.join("file-link")).unwrap();
    let r = rm(&top, "d").unwrap();
    assert_eq!((r.files, r.dirs), (3, 2));
    assert!(!t.join("d").exists());
    let r = rm(&top, "file-link").unwrap();
    assert_eq!((r.files, r.dirs), (1, 0));
    assert!(matches!(problem(rm(&top, "")).1, Problem::Top));
    assert!(matches!(problem(rm(&top, "d")).1, Problem::NotFound));
    // Through a link: refused.
    symlink(tmp.path().join("outside"), t.join("l")).unwrap();
    assert!(matches!(problem(rm(&top, "l/keep")).1, Problem::Symlink));
    outside_intact(tmp.path());
    assert_eq!(
        std::fs::read_dir(&t).unwrap().count(),
        1,
        "only the link l is left"
    );
}

#[test]
fn du_counts_without_following_links() {
    let (tmp, top) = scratch();
    let t = tmp.path().join("top");
    std::fs::create_dir_all(t.join("a/b")).unwrap();
    std::fs::write(t.join("a/one"), vec![0u8; 1000]).unwrap();
    std::fs::write(t.join("a/b/two"), vec![0u8; 24]).unwrap();
    symlink(tmp.path().join("outside"), t.join("a/out")).unwrap();
    let u = du(&top, "").unwrap();
    assert_eq!(
        u,
        Usage {
            total_size: 1024,
            files: 2,
            dirs: 2,
            symlinks: 1,
            ..Usage::default()
        }
    );
    let u = du(&top, "a/one").unwrap();
    assert_eq!((u.files, u.total_size), (1, 1000));
    assert_eq!(du(&top, "a/b").unwrap().total_size, 24);
    assert!(matches!(
        problem(du(&top, "a/out/keep")).1,
        Problem::Symlink
    ));
}

#[test]
fn rm_and_du_stop_at_the_depth_limit() {
    let (tmp, top) = scratch();
    let deep: Vec<&str> = std::iter::repeat_n("d", MAX_DEPTH + 1).collect();
    let deep = deep.join("/");
    mkdir(&top, &deep).unwrap();
    assert!(matches!(problem(du(&top, "")).1, Problem::TooDeep));
    assert!(matches!(problem(rm(&top, "d")).1, Problem::TooDeep));
    assert!(tmp.path().join("top/d").is_dir());
}
