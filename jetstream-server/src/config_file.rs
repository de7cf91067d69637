//! The configuration file of `jetstream server` (`/etc/jetstream/jetstream.toml`) and of
//! `jetstream relay_server` (`/etc/jetstream/relay.toml`): TOML whose keys are the long flag
//! names without `--`, spelled as on the command line (`sandbox-dir = "/storage/%u"`,
//! `api-allow-remote-control = false`, a repeatable flag takes an array:
//! `recv-port = [8886, 8887]`, a switch takes `true` or `false`).
//!
//! One definition: the flags are the argh struct, and nothing here names a flag. The file is
//! turned back into command-line arguments (`--key value`, in the flag's own syntax) and parsed
//! by the same argh parser, so a value the command line refuses is refused from the file too,
//! and a flag added to the struct is a key at once. [`ArgsInfo`] says which flags exist and
//! of which kind; `serde::Serialize` on the same struct gives the effective values for
//! `--print-config`.
//!
//! Precedence: the command line, then the file, then the built-in default. A flag given on the
//! command line replaces the file's value whole (a repeatable flag's list too).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use argh::{ArgsInfo, EarlyExit, FlagInfoKind, FromArgs, Optionality};
use serde::Serialize;
use toml::{Spanned, Value};

/// A command whose flags can also come from a configuration file.
pub trait FileConfig: FromArgs + ArgsInfo + Serialize + Sized {
    /// How the command is named in messages (`jetstream server`).
    const COMMAND: &'static str;
    /// The file read when it exists and no `--config` names another.
    const DEFAULT_PATH: &'static str;
    /// Flags (without `--`) that are actions or name the file, not settings: never read from a
    /// file, never printed. `help` is always one.
    const COMMAND_LINE_ONLY: &'static [&'static str];
    /// Keys whose values `--print-config` masks (none of today's flags takes a secret).
    const SECRET_KEYS: &'static [&'static str] = &[];
    /// `--config`: `Some` names the file (`none`: no file).
    fn config_flag(&self) -> Option<&Path>;
    /// `--no-config`.
    fn no_config(&self) -> bool;
    /// `--print-config`.
    fn print_config(&self) -> bool;
}

/// What kind of value a flag takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A switch: `true` (given) or `false` (not given).
    Switch,
    /// An option given at most once: one value.
    Single,
    /// A repeatable option: an array.
    Repeating,
}

/// A flag as the file sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flag {
    /// The key: the long name without `--`.
    pub key: String,
    /// Its one-letter form, if any.
    pub short: Option<char>,
    /// What it takes.
    pub kind: Kind,
    /// Its help text.
    pub description: String,
}

/// Every flag of `A` (`--help` left out).
pub fn flags<A: FileConfig>() -> Vec<Flag> {
    A::get_args_info()
        .flags
        .iter()
        .filter(|f| f.long != "--help")
        .map(|f| Flag {
            key: f.long.trim_start_matches("--").to_owned(),
            short: f.short,
            kind: match (&f.kind, &f.optionality) {
                (FlagInfoKind::Switch, _) => Kind::Switch,
                (FlagInfoKind::Option { .. }, Optionality::Repeating) => Kind::Repeating,
                (FlagInfoKind::Option { .. }, _) => Kind::Single,
            },
            description: f.description.to_owned(),
        })
        .collect()
}

/// The flags of `A` that a file may set.
pub fn file_keys<A: FileConfig>() -> Vec<Flag> {
    flags::<A>()
        .into_iter()
        .filter(|f| !A::COMMAND_LINE_ONLY.contains(&f.key.as_str()))
        .collect()
}

/// A configuration file that cannot be used: which file, where, which key, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// The line (1-based), when the fault has a place.
    pub line: Option<usize>,
    /// The key at fault, if one is.
    pub key: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key {key:?}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Where the running configuration came from, to read it again (`SIGHUP`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigSource {
    /// The command line (after `--name=value` was split).
    pub cli: Vec<String>,
    /// The file read, if any.
    pub file: Option<PathBuf>,
}

/// A parsed configuration and where it came from.
#[derive(Debug)]
pub struct Loaded<A> {
    /// The effective flags.
    pub args: A,
    /// The command line and the file.
    pub source: ConfigSource,
}

/// Why the flags could not be had.
#[derive(Debug)]
pub enum LoadError {
    /// The command line asked for help or is wrong (argh's own message).
    CommandLine(EarlyExit),
    /// The file is missing, unreadable or wrong.
    File(ConfigError),
}

/// Splits `--name=value` into `--name value` (argh wants them apart) so that both spellings
/// of the reference's examples work.
pub fn split_equals(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        match a.split_once('=') {
            Some((name, value)) if a.starts_with("--") => {
                out.push(name.to_owned());
                out.push(value.to_owned());
            }
            _ => out.push(a.clone()),
        }
    }
    out
}

fn parse_args<A: FileConfig>(args: &[String]) -> Result<A, EarlyExit> {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    A::from_args(&[A::COMMAND], &refs)
}

/// Parses the command line `cli` and the configuration file it selects.
///
/// # Errors
/// The command line is wrong or asks for help, or the file is missing (when named) or wrong.
pub fn load<A: FileConfig>(cli: &[String]) -> Result<Loaded<A>, LoadError> {
    let cli = split_equals(cli);
    let on_cli: A = parse_args(&cli).map_err(LoadError::CommandLine)?;
    let file = match (on_cli.no_config(), on_cli.config_flag()) {
        (true, _) => None,
        (false, Some(p)) if p == Path::new("none") => None,
        (false, Some(p)) => Some(p.to_owned()),
        (false, None) => {
            let p = Path::new(A::DEFAULT_PATH);
            // Only "not there" means no file: an unreadable one is an error, not a default.
            match std::fs::symlink_metadata(p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                _ => Some(p.to_owned()),
            }
        }
    };
    let source = ConfigSource { cli, file };
    let args = source.read::<A>().map_err(LoadError::File)?;
    Ok(Loaded { args, source })
}

impl ConfigSource {
    /// Reads the file again and merges it under the command line.
    ///
    /// # Errors
    /// The file is missing, unreadable or wrong.
    pub fn read<A: FileConfig>(&self) -> Result<A, ConfigError> {
        let Some(path) = &self.file else {
            return parse_args(&self.cli).map_err(|e| ConfigError {
                path: PathBuf::from("(command line)"),
                line: None,
                key: None,
                reason: e.output.trim_end().to_owned(),
            });
        };
        let fail = |reason: String| ConfigError {
            path: path.clone(),
            line: None,
            key: None,
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
        let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
        trusted(&meta, crate::server::sys::euid()).map_err(fail)?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_FILE), &mut text)
            .map_err(|e| fail(e.to_string()))?;
        if text.len() as u64 >= MAX_FILE {
            return Err(fail(format!("larger than {MAX_FILE} bytes")));
        }
        merge::<A>(&self.cli, path, &text)
    }
}

/// A configuration file is at most this long (a few kilobytes in practice).
const MAX_FILE: u64 = 1 << 20;

/// Whether a file with `meta` may configure a process running as `euid`: the server runs as
/// root and its file says which programs it runs (`trigger-dir`) and where users' files go,
/// so a file someone else could write would hand them the server. Refused: a file writable by
/// every user, or owned by anyone but root or `euid`.
fn trusted(meta: &std::fs::Metadata, euid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.mode() & 0o002 != 0 {
        return Err(format!(
            "writable by every user (mode {:04o}): anyone could change what the server does; \
             chmod o-w it",
            meta.mode() & 0o7777
        ));
    }
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(format!(
            "owned by uid {}, neither root nor the account running this process (uid {euid}): \
             its owner could change what the server does; chown it",
            meta.uid()
        ));
    }
    Ok(())
}

/// The flags of `cli` merged over the file `path` holding `text`.
///
/// # Errors
/// The file's syntax, an unknown key, a value of the wrong type or one the flag's parser
/// refuses: each names the line and the key.
pub fn merge<A: FileConfig>(cli: &[String], path: &Path, text: &str) -> Result<A, ConfigError> {
    let err =
        |span: Option<std::ops::Range<usize>>, key: Option<&str>, reason: String| ConfigError {
            path: path.to_owned(),
            line: span.map(|s| line_of(text, s.start)),
            key: key.map(str::to_owned),
            reason,
        };
    let table: std::collections::BTreeMap<Spanned<String>, Spanned<Value>> = toml::from_str(text)
        .map_err(|e| {
        err(
            e.span(),
            None,
            format!("not valid TOML: {}", e.message().trim_end()),
        )
    })?;
    let given = given_on_cli::<A>(cli);
    let known = file_keys::<A>();
    // A key with a default has the default's TOML type: `api-port = "8886"` is refused.
    let defaults = parse_args::<A>(&[])
        .ok()
        .and_then(|d| values(&d, false).ok())
        .unwrap_or_default();
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut extra = Vec::new();
    for (key, value) in entries {
        let name = key.get_ref().as_str();
        let span = Some(key.span());
        let Some(flag) = known.iter().find(|f| f.key == name) else {
            let reason = if A::COMMAND_LINE_ONLY.contains(&name) || name == "help" {
                format!("--{name} is given on the command line only")
            } else {
                match closest(name, known.iter().map(|f| f.key.as_str())) {
                    Some(m) => format!("unknown key (did you mean {m:?}?)"),
                    None => "unknown key".to_owned(),
                }
            };
            return Err(err(span, Some(name), reason));
        };
        if let Some(d) = defaults.get(name) {
            let v = value.get_ref();
            if flag.kind == Kind::Single && d.type_str() != v.type_str() {
                let reason = format!(
                    "expected {} (like {d}), not {}",
                    a(d.type_str()),
                    describe(v)
                );
                return Err(err(span, Some(name), reason));
            }
        }
        let fragment = to_args(flag, value.get_ref())
            .map_err(|reason| err(span.clone(), Some(name), reason))?;
        // The value alone through the flag's own parser: its error names this key and line.
        if let Err(e) = parse_args::<A>(&fragment) {
            return Err(err(span, Some(name), flag_error(&e.output)));
        }
        if !given.contains(name) {
            extra.extend(fragment);
        }
    }
    let mut all = cli.to_vec();
    all.extend(extra);
    parse_args::<A>(&all).map_err(|e| err(None, None, flag_error(&e.output)))
}

/// The keys given on the command line `cli` (argh's own walk: a switch takes nothing, an
/// option the next argument).
fn given_on_cli<A: FileConfig>(cli: &[String]) -> HashSet<String> {
    let flags = flags::<A>();
    let mut given = HashSet::new();
    let mut i = 0;
    while i < cli.len() {
        let a = cli[i].as_str();
        if a == "--" {
            break;
        }
        let found = flags.iter().find(|f| {
            a.strip_prefix("--") == Some(f.key.as_str())
                || f.short
                    .is_some_and(|c| a.len() == 2 && a == format!("-{c}"))
        });
        if let Some(f) = found {
            given.insert(f.key.clone());
            if f.kind != Kind::Switch {
                i += 1;
            }
        }
        i += 1;
    }
    given
}

/// The arguments that say what the file's `value` says for `flag`.
fn to_args(flag: &Flag, value: &Value) -> Result<Vec<String>, String> {
    let long = format!("--{}", flag.key);
    match flag.kind {
        Kind::Switch => match value {
            Value::Boolean(true) => Ok(vec![long]),
            Value::Boolean(false) => Ok(Vec::new()),
            other => Err(format!(
                "a switch takes true or false, not {}",
                describe(other)
            )),
        },
        Kind::Single => Ok(vec![long, scalar(value)?]),
        Kind::Repeating => match value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len() * 2);
                for item in items {
                    out.push(long.clone());
                    out.push(scalar(item)?);
                }
                Ok(out)
            }
            other => Err(format!(
                "a repeatable flag takes an array (e.g. {} = [...]), not {}",
                flag.key,
                describe(other)
            )),
        },
    }
}

fn scalar(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!("expected one value, not {}", describe(other))),
    }
}

fn a(type_str: &str) -> String {
    match type_str {
        "integer" => "an integer".into(),
        other => format!("a {other}"),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Table(_) => "a table".into(),
        other => format!("{} {other}", v.type_str()),
    }
}

/// argh's "Error parsing option '--x' with value 'y': why" without the flag (the message
/// names the key already).
fn flag_error(output: &str) -> String {
    let text = output.trim_end();
    match text.strip_prefix("Error parsing option ") {
        Some(rest) => match rest.split_once("' with value '") {
            Some((_, tail)) => match tail.split_once("': ") {
                Some((value, why)) => format!("invalid value {value:?}: {why}"),
                None => text.to_owned(),
            },
            None => text.to_owned(),
        },
        None => text.to_owned(),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The known key nearest to `name`, when it is close enough to be a typo.
fn closest<'a>(name: &str, keys: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    keys.map(|k| (edit_distance(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

/// The effective values of `args` by key (unset options absent), secrets masked when `mask`.
///
/// # Errors
/// A value TOML cannot hold (a path that is not UTF-8).
pub fn values<A: FileConfig>(args: &A, mask: bool) -> Result<toml::Table, String> {
    let Value::Table(mut table) = Value::try_from(args).map_err(|e| e.to_string())? else {
        return Err("the flags are not a table".into());
    };
    if mask {
        for key in A::SECRET_KEYS {
            if let Some(v) = table.get_mut(*key) {
                *v = Value::String("********".into());
            }
        }
    }
    Ok(table)
}

/// The effective configuration as a TOML file: every key with its help as a comment, set
/// ones as `key = value`, unset ones as `# key =` (to be filled in). Feeding it back as the
/// file gives the same configuration. With `commented`, every value line is commented out:
/// the example file of the package (`packaging/*.toml`).
///
/// # Errors
/// A value TOML cannot hold.
pub fn render<A: FileConfig>(args: &A, header: &str, commented: bool) -> Result<String, String> {
    let values = values(args, true)?;
    let mut out = String::new();
    for line in header.lines() {
        out.push_str(format!("# {line}").trim_end());
        out.push('\n');
    }
    for flag in file_keys::<A>() {
        out.push('\n');
        for line in wrap(&flag.description, 96) {
            out.push_str(&format!("# {line}\n"));
        }
        match values.get(&flag.key) {
            Some(v) => {
                let mut one = toml::Table::new();
                one.insert(flag.key.clone(), v.clone());
                let text = toml::to_string(&one).map_err(|e| e.to_string())?;
                let text = text.trim_end();
                if commented {
                    out.push_str(&format!("#{text}\n"));
                } else {
                    out.push_str(&format!("{text}\n"));
                }
            }
            None => out.push_str(&format!("#{} =\n", flag.key)),
        }
    }
    Ok(out)
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The keys whose effective values differ between `old` and `new`, in flag order.
pub fn changed_keys<A: FileConfig>(old: &A, new: &A) -> Vec<String> {
    let (Ok(a), Ok(b)) = (values(old, false), values(new, false)) else {
        return Vec::new();
    };
    file_keys::<A>()
        .into_iter()
        .filter(|f| a.get(&f.key) != b.get(&f.key))
        .map(|f| f.key)
        .collect()
}

/// `old` with the keys `keys` taken from `new` (the others kept): how a reload applies what
/// can change live. Goes through the same file-to-flags path as a configuration file.
///
/// # Errors
/// A value that does not parse back (never for values that came from a parse).
pub fn with_keys<A: FileConfig>(old: &A, new: &A, keys: &[&str]) -> Result<A, String> {
    let mut table = values(old, false)?;
    let newer = values(new, false)?;
    for key in keys {
        match newer.get(*key) {
            Some(v) => {
                table.insert((*key).to_owned(), v.clone());
            }
            None => {
                table.remove(*key);
            }
        }
    }
    let mut args = Vec::new();
    for flag in file_keys::<A>() {
        if let Some(v) = table.get(&flag.key) {
            args.extend(to_args(&flag, v)?);
        }
    }
    parse_args::<A>(&args).map_err(|e| e.output)
}

/// The entry point of a command with a configuration file: parses the command line and the
/// file, answers `--help` and `--print-config`, and otherwise calls `run`. Returns the exit
/// code: 0 after help or the printed configuration, 2 for a wrong command line or file.
pub fn main<A: FileConfig>(cli: &[String], run: impl FnOnce(Loaded<A>) -> i32) -> i32 {
    match load::<A>(cli) {
        Ok(loaded) if loaded.args.print_config() => {
            let header = format!(
                "The effective configuration of `{}`{}.\nKeys are the long flag names; \
                 `jetstream {} --help` describes them.",
                A::COMMAND,
                match &loaded.source.file {
                    Some(p) => format!(" (file {}, then the command line)", p.display()),
                    None => " (no configuration file)".to_owned(),
                },
                A::COMMAND.trim_start_matches("jetstream "),
            );
            match render(&loaded.args, &header, false) {
                Ok(text) => {
                    print!("{text}");
                    0
                }
                Err(e) => {
                    eprintln!("{}: --print-config: {e}", A::COMMAND);
                    1
                }
            }
        }
        Ok(loaded) => run(loaded),
        Err(LoadError::CommandLine(early)) if early.status.is_ok() => {
            println!("{}", early.output);
            0
        }
        Err(LoadError::CommandLine(early)) => {
            eprintln!("{}: {}", A::COMMAND, early.output.trim_end());
            eprintln!("Run `{} --help` for the options.", A::COMMAND);
            2
        }
        Err(LoadError::File(e)) => {
            eprintln!("{}: {e}", A::COMMAND);
            2
        }
    }
}

#[cfg(test)]
mod tests;
