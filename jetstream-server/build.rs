//! Build script: the list of third-party crates the `jetstream` binary links, with their
//! licenses and license texts, for the `getThirdPartyLicenses` command.
//!
//! It runs no cargo command (a `cargo metadata` from a build script can wait for ever on the
//! package-cache lock the outer cargo holds). Instead it reads what cargo has already written:
//!
//! - the workspace's `Cargo.lock`: every package and its dependency edges, for all targets and
//!   kinds (a registry crate's edges never include its dev-dependencies; a workspace member's
//!   do);
//! - each package's `Cargo.toml` (registry crates: the normalized manifest under
//!   `$CARGO_HOME/registry/src/*/NAME-VERSION/`; workspace members: their own): which edges
//!   are normal dependencies (not `[dev-dependencies]`, not `[build-dependencies]`), and for
//!   which targets (`[target.'cfg(...)'.dependencies]`, evaluated for the target being built);
//!   its `license` and `repository`, and the license files in its root directory.
//!
//! Walking the normal edges from `jetstream-server` gives the crates of the binary. An
//! optional dependency is followed when the lock has its edge, that is when some crate of the
//! workspace turns it on (cargo unifies features across the workspace, so the binary may lack
//! one that another member enabled: the list errs on the side of listing).
//!
//! Writes `$OUT_DIR/third_party.rs` (a table for `server::licenses`). A manifest that cannot be
//! found (a vendored or unusual source) is reported as a build warning and its crate listed
//! with what the lock says (name, version, all its edges), never silently dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// One package of the lock file.
struct Package {
    name: String,
    version: String,
    /// Registry crates have a source; workspace members none.
    source: Option<String>,
    /// Dependency edges: (name, version if the lock names it).
    deps: Vec<(String, Option<String>)>,
}

/// What the build script writes for one crate.
struct Entry {
    name: String,
    version: String,
    license: Option<String>,
    repository: Option<String>,
    /// (file name, index into the texts).
    files: Vec<(String, usize)>,
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CARGO_HOME");
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it")).join("third_party.rs");
    let code = match generate(&manifest_dir) {
        Ok(code) => code,
        Err(e) => {
            println!("cargo:warning=getThirdPartyLicenses: {e}; the list will be empty");
            render(&[], &[])
        }
    };
    fs::write(&out, code).expect("write OUT_DIR/third_party.rs");
}

fn generate(manifest_dir: &Path) -> Result<String, String> {
    let root = manifest_dir
        .parent()
        .ok_or("the package has no parent directory (no workspace)")?;
    let lock_path = root.join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    let lock =
        fs::read_to_string(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    let packages = parse_lock(&lock)?;
    let members = workspace_members(root)?;
    for dir in members.values() {
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("Cargo.toml").display()
        );
    }
    let registries = registry_dirs();
    let target = Target::from_env();

    let by_name: HashMap<&str, Vec<usize>> =
        packages
            .iter()
            .enumerate()
            .fold(HashMap::new(), |mut m, (i, p)| {
                m.entry(p.name.as_str()).or_default().push(i);
                m
            });
    let find = |name: &str, version: Option<&str>| -> Option<usize> {
        let candidates = by_name.get(name)?;
        match version {
            Some(v) => candidates
                .iter()
                .copied()
                .find(|&i| packages[i].version == v),
            None => candidates.first().copied(),
        }
    };

    let start = find("jetstream-server", None).ok_or("jetstream-server is not in Cargo.lock")?;
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    let mut manifests: HashMap<usize, Option<toml::Table>> = HashMap::new();
    while let Some(i) = stack.pop() {
        if !seen.insert(i) {
            continue;
        }
        let p = &packages[i];
        let dir = package_dir(p, &members, &registries);
        let manifest = dir.as_ref().and_then(|d| {
            fs::read_to_string(d.join("Cargo.toml"))
                .ok()
                .and_then(|t| t.parse::<toml::Table>().ok())
        });
        if manifest.is_none() {
            println!(
                "cargo:warning=getThirdPartyLicenses: no Cargo.toml found for {} {}; all its \
                 locked dependencies are listed",
                p.name, p.version
            );
        }
        let normal = manifest.as_ref().map(|m| normal_dependencies(m, &target));
        for (name, version) in &p.deps {
            if let Some(normal) = &normal {
                if !normal.contains(name.as_str()) {
                    continue;
                }
            }
            if let Some(j) = find(name, version.as_deref()) {
                stack.push(j);
            }
        }
        manifests.insert(i, manifest);
    }

    let mut texts: Vec<String> = Vec::new();
    let mut text_index: HashMap<String, usize> = HashMap::new();
    let mut entries = Vec::new();
    for &i in &seen {
        let p = &packages[i];
        if p.source.is_none() {
            continue; // a workspace member: ours, not third-party
        }
        let manifest = manifests.get(&i).and_then(Option::as_ref);
        let field = |k: &str| {
            manifest
                .and_then(|m| m.get("package"))
                .and_then(|pk| pk.get(k))
                .and_then(toml::Value::as_str)
                .map(str::to_owned)
        };
        let mut files = Vec::new();
        if let Some(dir) = package_dir(p, &members, &registries) {
            for (file, text) in license_files(&dir, field("license-file").as_deref()) {
                let n = *text_index.entry(text.clone()).or_insert_with(|| {
                    texts.push(text);
                    texts.len() - 1
                });
                files.push((file, n));
            }
        }
        entries.push(Entry {
            name: p.name.clone(),
            version: p.version.clone(),
            license: field("license"),
            repository: field("repository"),
            files,
        });
    }
    entries.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    Ok(render(&entries, &texts))
}

fn render(entries: &[Entry], texts: &[String]) -> String {
    let mut s = String::from("// Generated by jetstream-server/build.rs.\n");
    s.push_str("static TEXTS: &[&str] = &[\n");
    for t in texts {
        let _ = writeln!(s, "    {t:?},");
    }
    s.push_str("];\n");
    s.push_str("static CRATES: &[ThirdParty] = &[\n");
    for e in entries {
        let files: Vec<String> = e
            .files
            .iter()
            .map(|(f, n)| format!("({f:?}, {n})"))
            .collect();
        let _ = writeln!(
            s,
            "    ThirdParty {{ name: {:?}, version: {:?}, license: {:?}, repository: {:?}, files: &[{}] }},",
            e.name,
            e.version,
            e.license,
            e.repository,
            files.join(", ")
        );
    }
    s.push_str("];\n");
    s
}

/// The lock file's packages.
fn parse_lock(text: &str) -> Result<Vec<Package>, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("Cargo.lock is not TOML: {e}"))?;
    let list = table
        .get("package")
        .and_then(toml::Value::as_array)
        .ok_or("Cargo.lock has no [[package]]")?;
    let mut out = Vec::new();
    for p in list {
        let s = |k: &str| p.get(k).and_then(toml::Value::as_str).map(str::to_owned);
        let (Some(name), Some(version)) = (s("name"), s("version")) else {
            return Err("a Cargo.lock package has no name or version".into());
        };
        let deps = p
            .get("dependencies")
            .and_then(toml::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(toml::Value::as_str)
                    .map(|d| {
                        // "name", "name version" or "name version (source)".
                        let mut parts = d.split_whitespace();
                        let n = parts.next().unwrap_or_default().to_owned();
                        (n, parts.next().map(str::to_owned))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Package {
            name,
            version,
            source: s("source"),
            deps,
        });
    }
    Ok(out)
}

/// The workspace's members by package name, from the root manifest's `members`.
fn workspace_members(root: &Path) -> Result<HashMap<String, PathBuf>, String> {
    let path = root.join("Cargo.toml");
    println!("cargo:rerun-if-changed={}", path.display());
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let members = table
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(toml::Value::as_array)
        .ok_or("the workspace manifest has no members")?;
    let mut out = HashMap::new();
    for m in members.iter().filter_map(toml::Value::as_str) {
        let dir = root.join(m);
        let Ok(text) = fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        if let Some(name) = text
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| t.get("package")?.get("name")?.as_str().map(str::to_owned))
        {
            out.insert(name, dir);
        }
    }
    Ok(out)
}

/// `$CARGO_HOME/registry/src/*` (CARGO_HOME defaults to `~/.cargo`).
fn registry_dirs() -> Vec<PathBuf> {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry").join("src")) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = fs::read_dir(src)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn package_dir(
    p: &Package,
    members: &HashMap<String, PathBuf>,
    registries: &[PathBuf],
) -> Option<PathBuf> {
    if p.source.is_none() {
        return members.get(&p.name).cloned();
    }
    registries
        .iter()
        .map(|r| r.join(format!("{}-{}", p.name, p.version)))
        .find(|d| d.join("Cargo.toml").is_file())
}

/// The package names of the normal dependencies of a manifest, for `target`: `[dependencies]`
/// and the `[target.X.dependencies]` whose X matches (a `package = "..."` rename gives the
/// package's name).
fn normal_dependencies(manifest: &toml::Table, target: &Target) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |deps: Option<&toml::Value>| {
        let Some(deps) = deps.and_then(toml::Value::as_table) else {
            return;
        };
        for (key, spec) in deps {
            let name = spec
                .get("package")
                .and_then(toml::Value::as_str)
                .unwrap_or(key);
            out.insert(name.to_owned());
        }
    };
    add(manifest.get("dependencies"));
    if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
        for (spec, t) in targets {
            if target.matches(spec) {
                add(t.get("dependencies"));
            }
        }
    }
    out
}

/// The license files in a crate's root directory (and its `license-file`), by name.
fn license_files(dir: &Path, license_file: Option<&str>) -> Vec<(String, String)> {
    let mut names: BTreeSet<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| {
                    let u = n.to_ascii_uppercase();
                    [
                        "LICENSE",
                        "LICENCE",
                        "COPYING",
                        "NOTICE",
                        "COPYRIGHT",
                        "UNLICENSE",
                    ]
                    .iter()
                    .any(|p| u.starts_with(p))
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(f) = license_file {
        names.insert(f.to_owned());
    }
    let mut out = BTreeMap::new();
    for n in names {
        let path = dir.join(&n);
        // Only files inside the crate, of reasonable size.
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() || meta.len() > 256 * 1024 {
            continue;
        }
        if let Ok(bytes) = fs::read(&path) {
            out.insert(n, String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    out.into_iter().collect()
}

/// The target being built, as `cfg(...)` sees it (from cargo's `CARGO_CFG_*` variables).
struct Target {
    triple: String,
    /// `key -> values` (`target_os -> [linux]`, `target_family -> [unix]`, ...).
    values: HashMap<String, Vec<String>>,
    /// Bare names set (`unix`, `debug_assertions`, ...).
    names: BTreeSet<String>,
}

impl Target {
    fn from_env() -> Self {
        let mut values: HashMap<String, Vec<String>> = HashMap::new();
        let mut names = BTreeSet::new();
        for (k, v) in env::vars() {
            let Some(key) = k.strip_prefix("CARGO_CFG_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if v.is_empty() {
                names.insert(key);
            } else {
                values
                    .entry(key)
                    .or_default()
                    .extend(v.split(',').map(str::to_owned));
            }
        }
        // `unix` / `windows` come as CARGO_CFG_UNIX= (empty): names above.
        Self {
            triple: env::var("TARGET").unwrap_or_default(),
            values,
            names,
        }
    }

    /// Whether a `[target.X]` key applies: a triple, or `cfg(...)`.
    fn matches(&self, spec: &str) -> bool {
        match spec
            .trim()
            .strip_prefix("cfg(")
            .and_then(|s| s.strip_suffix(')'))
        {
            Some(expr) => {
                let tokens = tokenize(expr);
                let mut pos = 0;
                // A parse failure lists the dependency (over-listing beats dropping one).
                self.eval(&tokens, &mut pos).unwrap_or(true)
            }
            None => spec.trim() == self.triple,
        }
    }

    fn eval(&self, t: &[Tok], pos: &mut usize) -> Option<bool> {
        let Some(Tok::Ident(name)) = t.get(*pos).cloned() else {
            return None;
        };
        *pos += 1;
        match t.get(*pos) {
            Some(Tok::Eq) => {
                *pos += 1;
                let Some(Tok::Str(value)) = t.get(*pos).cloned() else {
                    return None;
                };
                *pos += 1;
                Some(self.values.get(&name).is_some_and(|vs| vs.contains(&value)))
            }
            Some(Tok::Open) if matches!(name.as_str(), "all" | "any" | "not") => {
                *pos += 1;
                let mut results = Vec::new();
                loop {
                    if let Some(Tok::Close) = t.get(*pos) {
                        *pos += 1;
                        break;
                    }
                    results.push(self.eval(t, pos)?);
                    if let Some(Tok::Comma) = t.get(*pos) {
                        *pos += 1;
                    }
                }
                match name.as_str() {
                    "all" => Some(results.iter().all(|&b| b)),
                    "any" => Some(results.iter().any(|&b| b)),
                    _ => Some(!*results.first()?),
                }
            }
            _ => Some(self.names.contains(&name)),
        }
    }
}

#[derive(Clone, Debug)]
enum Tok {
    Ident(String),
    Str(String),
    Eq,
    Open,
    Close,
    Comma,
}

fn tokenize(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '(' => {
                out.push(Tok::Open);
                chars.next();
            }
            ')' => {
                out.push(Tok::Close);
                chars.next();
            }
            ',' => {
                out.push(Tok::Comma);
                chars.next();
            }
            '=' => {
                out.push(Tok::Eq);
                chars.next();
            }
            '"' => {
                chars.next();
                let mut v = String::new();
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    v.push(c);
                }
                out.push(Tok::Str(v));
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            _ => {
                let mut v = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' {
                        v.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if v.is_empty() {
                    chars.next();
                } else {
                    out.push(Tok::Ident(v));
                }
            }
        }
    }
    out
}
