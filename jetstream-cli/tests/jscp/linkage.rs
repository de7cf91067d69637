//! `jscp` is a client only: it links neither the server nor PAM (issue 17). Checked on the
//! built binary (its dynamic section, and the PAM library name the server's loader carries)
//! and on the dependency graph cargo resolves.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use super::util::{bin, need, runs};
use super::JSCP;

/// The `NEEDED` entries of an ELF file's dynamic section, from `readelf -d`.
fn needed(path: &str) -> Vec<String> {
    let out = Command::new("readelf")
        .args(["-d", "--wide", path])
        .output()
        .expect("run readelf");
    assert!(out.status.success(), "readelf -d {path} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split('[').nth(1)?.split(']').next()?.to_owned()))
        .collect()
}

/// Whether the file holds the bytes `what` (the server's PAM loader names `libpam.so.0`; PAM
/// is loaded at run time, so a dynamic section alone cannot show it).
fn contains(path: &str, what: &[u8]) -> bool {
    let bytes = std::fs::read(path).expect("read binary");
    bytes.windows(what.len()).any(|w| w == what)
}

#[test]
fn jscp_links_no_pam() {
    if !need(runs("readelf", &["--version"]), "readelf", "binutils") {
        return;
    }
    let libs = needed(JSCP);
    assert!(
        libs.iter().any(|l| l.starts_with("libc.so")),
        "readelf found no libc in {libs:?}: the check would prove nothing"
    );
    assert!(
        !libs.iter().any(|l| l.contains("libpam")),
        "jscp links PAM: {libs:?}"
    );
    assert!(
        !contains(JSCP, b"libpam.so"),
        "jscp carries the PAM loader (the server's code)"
    );
    // The same check finds the loader in the server, which does carry it.
    assert!(contains(bin(), b"libpam.so"), "the check cannot see PAM");
}

/// The packages jetstream-cli depends on through normal (not dev or build) dependencies.
fn normal_closure(metadata: &Value, root: &str) -> BTreeSet<String> {
    let nodes = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve nodes");
    let name_of = |id: &str| -> String {
        metadata["packages"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["id"] == id))
            .and_then(|p| p["name"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let root_id = metadata["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == root))
        .and_then(|p| p["id"].as_str())
        .expect("the root package")
        .to_owned();
    let mut seen = BTreeSet::new();
    let mut stack = vec![root_id];
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let Some(node) = nodes.iter().find(|n| n["id"] == id.as_str()) else {
            continue;
        };
        for dep in node["deps"].as_array().into_iter().flatten() {
            let normal = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null());
            if normal {
                stack.push(dep["pkg"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    seen.iter().map(|id| name_of(id)).collect()
}

#[test]
fn jscp_depends_on_no_server_code() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let deps = normal_closure(&metadata, "jetstream-cli");
    assert!(deps.contains("jetstream-client"), "{deps:?}");
    assert!(deps.contains("jetstream-core"), "{deps:?}");
    assert!(
        !deps.contains("jetstream-server"),
        "jscp depends on the server: {deps:?}"
    );
    // What the server alone brings: its configuration file, metrics and certificate maker.
    for server_only in ["toml", "prometheus-client", "rcgen"] {
        assert!(!deps.contains(server_only), "{server_only} in {deps:?}");
    }
}
