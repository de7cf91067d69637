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
//! of which kind; the struct's `Debug` form gives the effective values for `--print-config`
//! (each checked by parsing it back), so a flag's type needs nothing beyond what argh and
//! `#[derive(Debug)]` already ask of it.
//!
//! Precedence: the command line, then the file, then the built-in default. A flag given on the
//! command line replaces the file's value whole (a repeatable flag's list too).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use argh::{ArgsInfo, EarlyExit, FlagInfoKind, FromArgs, Optionality};
use toml::{Spanned, Value};

/// A command whose flags can also come from a configuration file.
pub trait FileConfig: FromArgs + ArgsInfo + fmt::Debug + Sized {
    /// How the command is named in messages (`jetstream server`).
    const COMMAND: &'static str;
    /// The file read when it exists and no `--config` names another.
    const DEFAULT_PATH: &'static str;
    /// Flags (without `--`) that are actions or name the file, not settings: never read from a
    /// file, never printed. `help` is always one.
    const COMMAND_LINE_ONLY: &'static [&'static str];
    /// Keys whose values `--print-config` masks.
    const SECRET_KEYS: &'static [&'static str] = &[];
    /// Boolean options (`--x true|false`) that may also be given bare, meaning true, as the
    /// reference writes them (see [`bare_booleans`]).
    const BARE_MEANS_TRUE: &'static [&'static str] = &[];
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
    /// The file named by `--config`; `None` with `default`: none.
    pub file: Option<PathBuf>,
    /// The default file, read when it exists (no `--config`, no `--no-config`); looked for
    /// again at every reload, so a file created after the start is read by the next reload.
    pub default: Option<PathBuf>,
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

/// Lets the boolean options of [`FileConfig::BARE_MEANS_TRUE`] be given bare (`--x`, meaning
/// `--x true`: when the next argument is absent or another flag) and as `1`/`0`, besides
/// `--x true|false` and `--x=true|false` (after [`split_equals`]). Any other value is left for
/// argh to refuse.
pub fn bare_booleans<A: FileConfig>(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut it = args.into_iter().peekable();
    while let Some(a) = it.next() {
        if a == "--" {
            out.push(a);
            out.extend(it);
            break;
        }
        let bare_ok = a
            .strip_prefix("--")
            .is_some_and(|k| A::BARE_MEANS_TRUE.contains(&k));
        out.push(a);
        if bare_ok {
            match it.peek().map(String::as_str) {
                None => out.push("true".into()),
                Some(next) if next.starts_with('-') => out.push("true".into()),
                Some("1") => {
                    it.next();
                    out.push("true".into());
                }
                Some("0") => {
                    it.next();
                    out.push("false".into());
                }
                Some(_) => {}
            }
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
    let cli = bare_booleans::<A>(split_equals(cli));
    let on_cli: A = parse_args(&cli).map_err(LoadError::CommandLine)?;
    let (file, default) = match (on_cli.no_config(), on_cli.config_flag()) {
        (true, _) => (None, None),
        (false, Some(p)) if p == Path::new("none") => (None, None),
        (false, Some(p)) => (Some(p.to_owned()), None),
        (false, None) => (None, Some(PathBuf::from(A::DEFAULT_PATH))),
    };
    let source = ConfigSource { cli, file, default };
    let args = source.read::<A>().map_err(LoadError::File)?;
    Ok(Loaded { args, source })
}

impl ConfigSource {
    /// The file to read now: the one named, or the default one if it exists.
    pub fn path(&self) -> Option<PathBuf> {
        if self.file.is_some() {
            return self.file.clone();
        }
        let p = self.default.as_ref()?;
        // Only "not there" means no file: an unreadable one is an error, not a default.
        match std::fs::symlink_metadata(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            _ => Some(p.clone()),
        }
    }

    /// Reads the file again and merges it under the command line.
    ///
    /// # Errors
    /// The file is missing, unreadable or wrong.
    pub fn read<A: FileConfig>(&self) -> Result<A, ConfigError> {
        let Some(path) = &self.path() else {
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
/// They are read from the flags' `Debug` form (which argh's structs have anyway), so a flag
/// needs no other trait: numbers and booleans become TOML integers and booleans, quoted
/// strings and paths strings, bare words (an address, an enum's variant) strings, `None`
/// nothing, lists arrays. Each value is checked by parsing it back through the flag's parser
/// (trying the lowercase spelling when the `Debug` one is refused, as for an enum).
///
/// # Errors
/// A value whose `Debug` form does not parse back as the same value.
pub fn values<A: FileConfig>(args: &A, mask: bool) -> Result<toml::Table, String> {
    let fields = debug_fields(&format!("{args:?}"))?;
    let mut table = toml::Table::new();
    for flag in file_keys::<A>() {
        let Some(shown) = fields.get(&flag.key.replace('-', "_")) else {
            return Err(format!("{}: key {:?} has no field", A::COMMAND, flag.key));
        };
        let Some(value) = shown_value(&flag, shown, |v| {
            let args = to_args(&flag, v).ok()?;
            let parsed: A = parse_args(&args).ok()?;
            let again = debug_fields(&format!("{parsed:?}")).ok()?;
            Some(again.get(&flag.key.replace('-', "_")) == Some(shown))
        })?
        else {
            continue;
        };
        let value = if mask && A::SECRET_KEYS.contains(&flag.key.as_str()) {
            Value::String(crate::server::secrets::MASK.into())
        } else {
            value
        };
        table.insert(flag.key.clone(), value);
    }
    Ok(table)
}

/// A value as `Debug` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Shown {
    /// `"text"` (a string or a path), unescaped.
    Quoted(String),
    /// A number, `true`, an address, an enum's variant: as written.
    Bare(String),
    /// `None`.
    Nothing,
    /// `Some(x)`.
    Some(Box<Self>),
    /// `[a, b]`.
    List(Vec<Self>),
}

/// The TOML value of a flag shown as `shown` (`None`: not set); `same(v)` says whether `v`
/// parses back to it.
fn shown_value(
    flag: &Flag,
    shown: &Shown,
    same: impl Fn(&Value) -> Option<bool>,
) -> Result<Option<Value>, String> {
    fn candidates(s: &Shown) -> Vec<Value> {
        match s {
            Shown::Quoted(t) => vec![Value::String(t.clone())],
            Shown::Bare(t) if t == "true" || t == "false" => vec![Value::Boolean(t == "true")],
            Shown::Bare(t) => {
                let mut v = Vec::new();
                if let Ok(i) = t.parse::<i64>() {
                    v.push(Value::Integer(i));
                }
                v.push(Value::String(t.clone()));
                if t.to_lowercase() != *t {
                    v.push(Value::String(t.to_lowercase()));
                }
                v
            }
            Shown::Some(x) => candidates(x),
            Shown::Nothing => Vec::new(),
            Shown::List(items) => {
                // Each item's first spelling that parses back, found item by item below.
                vec![Value::Array(
                    items
                        .iter()
                        .filter_map(|i| candidates(i).into_iter().next())
                        .collect(),
                )]
            }
        }
    }
    let mut options = match shown {
        Shown::Nothing => return Ok(None),
        Shown::List(items) if items.is_empty() => return Ok(Some(Value::Array(Vec::new()))),
        Shown::List(items) => {
            // Try the spellings of all items together, first the plain ones, then lowercase.
            let plain: Vec<Value> = items
                .iter()
                .filter_map(|i| candidates(i).into_iter().next())
                .collect();
            let lower: Vec<Value> = items
                .iter()
                .filter_map(|i| candidates(i).into_iter().last())
                .collect();
            vec![Value::Array(plain), Value::Array(lower)]
        }
        other => candidates(other),
    };
    if flag.kind == Kind::Switch {
        options = vec![Value::Boolean(
            matches!(shown, Shown::Bare(t) if t == "true"),
        )];
    }
    for v in options {
        if same(&v) == Some(true) {
            return Ok(Some(v));
        }
    }
    Err(format!(
        "key {:?}: its value ({shown:?}) cannot be written so that it reads back the same",
        flag.key
    ))
}

/// The fields of a struct's `Debug` form (`Name { a: 1, b: "x" }`), by field name.
fn debug_fields(text: &str) -> Result<std::collections::HashMap<String, Shown>, String> {
    let bad = || format!("unexpected Debug form: {text}");
    let open = text.find(" { ").ok_or_else(bad)?;
    let mut rest = &text[open + 3..];
    let mut fields = std::collections::HashMap::new();
    loop {
        let colon = rest.find(": ").ok_or_else(bad)?;
        let name = rest[..colon].trim().to_owned();
        let (value, after) = debug_value(&rest[colon + 2..]).ok_or_else(bad)?;
        fields.insert(name, value);
        if let Some(r) = after.strip_prefix(", ") {
            rest = r;
        } else if after.trim() == "}" {
            return Ok(fields);
        } else {
            return Err(bad());
        }
    }
}

/// A list at the start of `text` (`[a, b]`, but not `[::1]:80`, an address), and what
/// follows it.
fn debug_list(text: &str) -> Option<(Shown, &str)> {
    let mut body = text.strip_prefix('[')?;
    let mut items = Vec::new();
    let after = loop {
        if items.is_empty() {
            if let Some(after) = body.strip_prefix(']') {
                break after;
            }
        }
        let (item, after) = debug_value(body)?;
        items.push(item);
        if let Some(r) = after.strip_prefix(", ") {
            body = r;
        } else {
            break after.strip_prefix(']')?;
        }
    };
    let ends = after.is_empty() || after.starts_with([',', ')', ']', ' ']);
    ends.then_some((Shown::List(items), after))
}

/// One value at the start of `text`, and what follows it.
fn debug_value(text: &str) -> Option<(Shown, &str)> {
    if let Some(body) = text.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Some((Shown::Quoted(out), &body[i + 1..])),
                '\\' => match chars.next()?.1 {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    '0' => out.push('\0'),
                    'u' => {
                        let (j, _) = chars.next()?; // '{'
                        let end = body[j..].find('}')? + j;
                        let code = u32::from_str_radix(&body[j + 1..end], 16).ok()?;
                        out.push(char::from_u32(code)?);
                        while chars.next()?.0 < end {}
                    }
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
        return None;
    }
    if let Some(body) = text.strip_prefix("Some(") {
        let (inner, after) = debug_value(body)?;
        return Some((Shown::Some(Box::new(inner)), after.strip_prefix(')')?));
    }
    if let Some(list) = debug_list(text) {
        return Some(list);
    }
    // A bare token: up to a comma or a closing bracket outside any nesting of its own.
    let mut depth = 0usize;
    let mut end = text.len();
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => {
                end = i;
                break;
            }
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let token = text[..end].trim_end();
    if token == "None" {
        return Some((Shown::Nothing, &text[token.len()..]));
    }
    (!token.is_empty()).then(|| (Shown::Bare(token.to_owned()), &text[token.len()..]))
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
                match &loaded.source.path() {
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
