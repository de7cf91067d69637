//! The lines between the crates and between the engine's modules that must never be crossed
//! (docs/DESIGN.md, "Crates and the arrows that must not exist"). Read from the sources, so a
//! change that crosses one fails here before a review has to notice it.

use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds the core")
        .to_owned()
}

/// The workspace crates named in `[dependencies]` of `krate` (dev-dependencies may be wider:
/// a test may start a server).
fn our_dependencies(krate: &str) -> Vec<String> {
    let text = fs::read_to_string(workspace().join(krate).join("Cargo.toml")).expect("Cargo.toml");
    let mut in_deps = false;
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && line.starts_with("jetstream-") {
            let name = line.split(['.', ' ', '=']).next().unwrap_or_default();
            found.push(name.to_owned());
        }
    }
    found
}

#[test]
fn the_crates_depend_only_downwards() {
    // core <- api <- client <- server; the CLI on core, api and client.
    let allowed: [(&str, &[&str]); 5] = [
        ("jetstream-core", &[]),
        ("jetstream-api", &["jetstream-core"]),
        ("jetstream-client", &["jetstream-core", "jetstream-api"]),
        (
            "jetstream-server",
            &["jetstream-core", "jetstream-api", "jetstream-client"],
        ),
        (
            "jetstream-cli",
            &["jetstream-core", "jetstream-api", "jetstream-client"],
        ),
    ];
    for (krate, may) in allowed {
        let deps = our_dependencies(krate);
        for d in &deps {
            assert!(
                may.contains(&d.as_str()),
                "{krate} must not depend on {d} (docs/DESIGN.md: the arrows that must not exist)"
            );
        }
        println!("{krate} -> {deps:?}");
    }
    // The check reads what it means to: the server does name the client.
    assert!(our_dependencies("jetstream-server").contains(&"jetstream-client".to_owned()));
}

/// Every `.rs` file under `dir`, with its code (no comment lines) before its first
/// `#[cfg(test)]` (tests may use the clock and files; the protocol may not).
fn sources(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for e in fs::read_dir(dir).expect("source dir") {
        let path = e.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            let text = fs::read_to_string(&path).expect("source");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            // Comments (doc links among them) name what they like.
            let body: String = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .map(|l| format!("{l}\n"))
                .collect();
            out.push((path, body));
        }
    }
}

#[test]
fn the_protocol_is_sans_io_and_below_the_rest_of_the_engine() {
    let mut files = Vec::new();
    sources(&workspace().join("jetstream-core/src/proto"), &mut files);
    assert!(files.len() > 10, "found the protocol's sources");
    // What proto may use of the crate: its own modules and the plain data types beneath it.
    let below = ["proto", "types", "error", "failure", "manifest", "testing"];
    let io = [
        "std::fs",
        "std::net::UdpSocket",
        "mio::",
        "Instant::now()",
        "SystemTime::now()",
        "std::thread",
    ];
    for (path, body) in &files {
        for (at, _) in body.match_indices("crate::") {
            let module: String = body[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                below.contains(&module.as_str()),
                "{}: proto must not use crate::{module} (it sits below config, io, fs)",
                path.display()
            );
        }
        for word in io {
            assert!(
                !body.contains(word),
                "{}: proto is sans-IO, but uses {word}",
                path.display()
            );
        }
    }
}
