use super::*;
use crate::relay::server::RelayArgs;
use crate::server::config::{ServerArgs, LIVE_KEYS};

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

fn from_file<A: FileConfig>(cli: &[&str], text: &str) -> Result<A, ConfigError> {
    merge::<A>(&split_equals(&strings(cli)), Path::new("/etc/j.toml"), text)
}

/// Values a flag of any of today's types (and likely tomorrow's) accepts.
fn samples() -> Vec<Value> {
    let mut v = vec![
        Value::Integer(1),
        Value::Integer(2),
        Value::Boolean(false),
        Value::Boolean(true),
    ];
    for s in [
        "127.0.0.1:9100",
        "127.0.0.2",
        "x",
        "aes-256-gcm",
        "debug",
        "warn",
        "/tmp/x",
    ] {
        v.push(Value::String(s.into()));
    }
    v
}

/// Every flag that is a setting is a key: some value of it in a file shows in the effective
/// configuration, differing from the default. A new flag the file machinery cannot carry
/// (one whose printed form does not parse back,
/// or a renamed `long`) fails here.
fn every_flag_is_a_key<A: FileConfig>() {
    let defaults = values(&merge::<A>(&[], Path::new("x"), "").unwrap(), false).unwrap();
    let keys = file_keys::<A>();
    assert!(keys.len() > 5);
    for flag in keys {
        let accepted = samples().into_iter().find_map(|sample| {
            let value = match flag.kind {
                Kind::Repeating => Value::Array(vec![sample]),
                _ => sample,
            };
            if flag.kind == Kind::Switch && !matches!(value, Value::Boolean(true)) {
                return None;
            }
            if defaults.get(&flag.key) == Some(&value) {
                return None;
            }
            let mut t = toml::Table::new();
            t.insert(flag.key.clone(), value.clone());
            let text = toml::to_string(&t).unwrap();
            let args = merge::<A>(&[], Path::new("x"), &text).ok()?;
            let shown = values(&args, false).unwrap();
            // A secret (`license-password`) is read, and only ever shown masked.
            let expected = if A::SECRET_KEYS.contains(&flag.key.as_str()) {
                Value::String(crate::server::secrets::MASK.into())
            } else {
                value
            };
            (shown.get(&flag.key) == Some(&expected)).then_some(text)
        });
        assert!(
            accepted.is_some(),
            "{}: no value of key {:?} is read from a configuration file and shown by \
             --print-config",
            A::COMMAND,
            flag.key
        );
    }
}

#[test]
fn every_server_flag_is_a_key() {
    every_flag_is_a_key::<ServerArgs>();
}

#[test]
fn every_relay_flag_is_a_key() {
    every_flag_is_a_key::<RelayArgs>();
}

#[test]
fn no_flag_is_required() {
    // Each key of a file is checked alone through the flag parser: that needs every flag to
    // be optional (a server with a configuration file has no use for required flags anyway).
    for f in ServerArgs::get_args_info()
        .flags
        .iter()
        .chain(RelayArgs::get_args_info().flags)
    {
        assert_ne!(f.optionality, Optionality::Required, "{}", f.long);
    }
}

#[test]
fn live_keys_are_keys() {
    let keys: Vec<String> = file_keys::<ServerArgs>()
        .into_iter()
        .map(|f| f.key)
        .collect();
    for k in LIVE_KEYS {
        assert!(keys.iter().any(|x| x == k), "{k}");
    }
}

#[test]
fn the_file_sets_flags_and_the_command_line_wins() {
    let text = "api-port = 9000\nrecv-port = [9001, 9002]\nsandbox-dir = \"/storage/%u\"\n\
                api-allow-remote-control = false\ntrigger-log = true\nsuperuser = [\"alice\"]\n";
    let a: ServerArgs = from_file(&[], text).unwrap();
    assert_eq!(a.api_port, 9000);
    assert_eq!(a.recv_port, vec![9001, 9002]);
    assert_eq!(a.sandbox_dir.as_deref(), Some("/storage/%u"));
    assert!(!a.api_allow_remote_control && a.trigger_log);
    assert_eq!(a.superuser, vec!["alice"]);
    let a: ServerArgs = from_file(
        &[
            "--api-port=9100",
            "--recv-port",
            "9200",
            "--superuser",
            "bob",
        ],
        text,
    )
    .unwrap();
    assert_eq!(a.api_port, 9100);
    // A repeatable flag on the command line replaces the file's list.
    assert_eq!(a.recv_port, vec![9200]);
    assert_eq!(a.superuser, vec!["bob"]);
    assert_eq!(a.sandbox_dir.as_deref(), Some("/storage/%u"));
    // An option's value that looks like a flag is no flag given.
    let a: ServerArgs = from_file(&["--server-name", "--api-port"], text).unwrap();
    assert_eq!(a.api_port, 9000);
    assert_eq!(a.server_name.as_deref(), Some("--api-port"));
}

#[test]
fn mistakes_name_the_line_and_the_key() {
    let check = |text: &str, line: usize, key: Option<&str>, reason: &str| {
        let e = from_file::<ServerArgs>(&[], text).unwrap_err();
        assert_eq!(e.line, Some(line), "{e}");
        assert_eq!(e.key.as_deref(), key, "{e}");
        assert!(e.reason.contains(reason), "{e}");
        assert!(
            e.to_string().starts_with(&format!("/etc/j.toml:{line}: ")),
            "{e}"
        );
    };
    let ok = "# comment\napi-port = 9000\n\n";
    check(
        &format!("{ok}sandbox-dirr = \"/x\"\n"),
        4,
        Some("sandbox-dirr"),
        "unknown key (did you mean \"sandbox-dir\"?)",
    );
    check(&format!("{ok}zzz = 1\n"), 4, Some("zzz"), "unknown key");
    check(
        &format!("{ok}recv-port = 8886\n"),
        4,
        Some("recv-port"),
        "takes an array",
    );
    check(
        &format!("{ok}api-host = [\"a\"]\n"),
        4,
        Some("api-host"),
        "expected a string (like \"0.0.0.0\"), not an array",
    );
    check(
        &format!("{ok}trigger-log = \"yes\"\n"),
        4,
        Some("trigger-log"),
        "a switch takes true or false",
    );
    check(
        "\napi-allow-remote-control = \"maybe\"\n",
        2,
        Some("api-allow-remote-control"),
        "expected a boolean (like true), not the string \"maybe\"",
    );
    check(
        "api-port = 70000\n",
        1,
        Some("api-port"),
        "invalid value \"70000\"",
    );
    check(
        "recv-host = \"nowhere\"\n",
        1,
        Some("recv-host"),
        "invalid value",
    );
    check(
        "print-config = true\n",
        1,
        Some("print-config"),
        "command line only",
    );
    check(
        "\n\napi-port = \"8886\"\n",
        3,
        Some("api-port"),
        "expected an integer (like 8886), not the string \"8886\"",
    );
    check(
        "api-host = 1\n",
        1,
        Some("api-host"),
        "expected a string (like \"0.0.0.0\"), not integer 1",
    );
    check("api-port = \n", 1, None, "not valid TOML");
    check("a = 1\na = 2\n", 2, None, "not valid TOML");
    // A mistake in the file is one even when the command line sets the same key.
    let e = from_file::<ServerArgs>(&["--api-port", "1"], "api-port = \"x\"\n").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("api-port"));
}

#[test]
fn print_config_round_trips() {
    let text = "api-port = 9000\nrecv-port = [9001, 9002]\nsandbox-dir = \"/storage/%u\"\n\
                api-allow-remote-control = false\ntrigger-log = true\nlog = \"/tmp/l\"\n\
                incoming-rate-limit = 5000\nborrow-outgoing = true\n";
    let a: ServerArgs =
        from_file(&["--server-name", "n \"q\" \\ é", "--api-port=9100"], text).unwrap();
    let printed = render(&a, "header\nline two", false).unwrap();
    assert!(printed.starts_with("# header\n# line two\n"), "{printed}");
    assert!(printed.contains("\napi-port = 9100\n"), "{printed}");
    assert!(printed.contains("\n#external-address =\n"), "{printed}");
    let back: ServerArgs = from_file(&[], &printed).unwrap();
    assert_eq!(values(&back, false).unwrap(), values(&a, false).unwrap());
    assert!(changed_keys(&a, &back).is_empty());
    let r: RelayArgs =
        from_file(&["--data-port", "1"], "authorized-server-key = [\"ab\"]\n").unwrap();
    let back: RelayArgs = from_file(&[], &render(&r, "", false).unwrap()).unwrap();
    assert_eq!(values(&back, false).unwrap(), values(&r, false).unwrap());
}

#[test]
fn reload_takes_only_the_keys_asked_for() {
    let old: ServerArgs = from_file(&[], "api-port = 1\napi-idle-timeout = 5\n").unwrap();
    let new: ServerArgs = from_file(
        &[],
        "api-port = 2\napi-idle-timeout = 6\ncipher = [\"aes-256-gcm\"]\n",
    )
    .unwrap();
    assert_eq!(
        changed_keys(&old, &new),
        vec!["api-port", "api-idle-timeout", "cipher"]
    );
    let now = with_keys(&old, &new, &["api-idle-timeout", "cipher"]).unwrap();
    assert_eq!(now.api_port, 1);
    assert_eq!(now.api_idle_timeout, 6);
    assert_eq!(now.cipher, vec!["aes-256-gcm"]);
    // A key the new file no longer sets goes back to its default.
    let unset: ServerArgs = from_file(&[], "").unwrap();
    let now = with_keys(&now, &unset, &["cipher", "api-idle-timeout"]).unwrap();
    assert!(now.cipher.is_empty());
    assert_eq!(now.api_idle_timeout, 900);
}

/// A command with a secret, to check the masking.
#[derive(argh::FromArgs, argh::ArgsInfo, Debug)]
/// test
#[allow(dead_code)] // read through Debug
struct WithSecret {
    /// a secret
    #[argh(option)]
    license_password: Option<String>,
    /// a port
    #[argh(option, default = "1")]
    port: u16,
}

impl FileConfig for WithSecret {
    const COMMAND: &'static str = "test";
    const DEFAULT_PATH: &'static str = "/nonexistent";
    const COMMAND_LINE_ONLY: &'static [&'static str] = &[];
    const SECRET_KEYS: &'static [&'static str] = &["license-password"];

    fn config_flag(&self) -> Option<&Path> {
        None
    }

    fn no_config(&self) -> bool {
        false
    }

    fn print_config(&self) -> bool {
        false
    }
}

#[test]
fn secrets_are_masked_in_print() {
    let a: WithSecret = from_file(&[], "license-password = \"hunter2\"\nport = 3\n").unwrap();
    assert_eq!(a.license_password.as_deref(), Some("hunter2"));
    let printed = render(&a, "", false).unwrap();
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(
        printed.contains("license-password = \"********\""),
        "{printed}"
    );
    assert!(printed.contains("\nport = 3\n"), "{printed}");
}

#[test]
fn near_keys_are_suggested() {
    let keys = ["sandbox-dir", "api-port", "recv-port"];
    assert_eq!(
        closest("sandbox-dirr", keys.into_iter()),
        Some("sandbox-dir")
    );
    assert_eq!(closest("api_port", keys.into_iter()), Some("api-port"));
    assert_eq!(closest("something", keys.into_iter()), None);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

/// The example files shipped in the package (`packaging/jetstream.toml`,
/// `packaging/relay.toml`) hold every key, commented out at its default. After adding a flag,
/// regenerate them: `JETSTREAM_WRITE_EXAMPLES=1 cargo test -p jetstream-server --lib
/// packaging_examples`.
#[test]
fn packaging_examples_are_current() {
    fn example<A: FileConfig>(file: &str, intro: &str) {
        let defaults: A = merge::<A>(&[], Path::new("x"), "").unwrap();
        let text = render(&defaults, intro, true).unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../packaging")
            .join(file);
        if std::env::var_os("JETSTREAM_WRITE_EXAMPLES").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == text,
            "{} is not current; regenerate it with JETSTREAM_WRITE_EXAMPLES=1 cargo test -p \
             jetstream-server --lib packaging_examples",
            path.display()
        );
        // Commented out, it sets nothing.
        let args: A = merge::<A>(&[], Path::new("x"), &on_disk).unwrap();
        assert_eq!(values(&args, false), values(&defaults, false));
    }
    example::<ServerArgs>(
        "jetstream.toml",
        "/etc/jetstream/jetstream.toml: the configuration of `jetstream server`.\n\
         \n\
         Keys are the long flag names without `--` (`jetstream server --help`); a repeatable\n\
         flag takes an array, a switch true or false. A flag on the command line wins over\n\
         this file. Every key is shown commented out at its built-in default.\n\
         `jetstream server --print-config` shows the configuration in force;\n\
         `systemctl reload jetstream` applies the keys that can change live (docs/server.md).",
    );
    example::<RelayArgs>(
        "relay.toml",
        "/etc/jetstream/relay.toml: the configuration of `jetstream relay_server`.\n\
         \n\
         Keys are the long flag names without `--` (`jetstream relay_server --help`); a\n\
         repeatable flag takes an array, a switch true or false. A flag on the command line\n\
         wins over this file. Every key is shown commented out at its built-in default.\n\
         `jetstream relay_server --print-config` shows the configuration in force.",
    );
}

#[test]
fn a_file_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.toml");
    std::fs::write(&path, "api-port = 9\n").unwrap();
    let source = ConfigSource {
        cli: Vec::new(),
        file: Some(path.clone()),
        default: None,
    };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(source.read::<ServerArgs>().unwrap().api_port, 9);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = source.read::<ServerArgs>().unwrap_err();
    assert!(
        e.reason.contains("writable by every user (mode 0666)"),
        "{e}"
    );
    let meta = std::fs::metadata(dir.path()).unwrap();
    assert!(trusted(&meta, 0)
        .unwrap_err()
        .contains("not a regular file"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    use std::os::unix::fs::MetadataExt;
    if meta.uid() == 0 {
        // Owned by root: trusted by anyone.
        assert!(trusted(&meta, 1234).is_ok());
    } else {
        assert!(trusted(&meta, meta.uid() + 1)
            .unwrap_err()
            .contains("owned by uid"));
    }
}

/// A level like `--log-level`'s: an enum read in lowercase, shown by `Debug` capitalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Info,
    Debug,
}

impl argh::FromArgValue for Level {
    fn from_arg_value(value: &str) -> Result<Self, String> {
        match value {
            "info" => Ok(Self::Info),
            "debug" => Ok(Self::Debug),
            _ => Err(format!("unknown level {value:?}")),
        }
    }
}

/// Flags of types with no trait beyond argh's and `Debug`.
#[derive(argh::FromArgs, argh::ArgsInfo, Debug)]
/// test
#[allow(dead_code)] // read through Debug
struct Odd {
    /// a level
    #[argh(option, default = "Level::Info")]
    level: Level,
    /// levels
    #[argh(option)]
    levels: Vec<Level>,
    /// an address
    #[argh(option)]
    addr: Option<std::net::SocketAddr>,
    /// a v6 address
    #[argh(option, default = "std::net::IpAddr::from([0u16; 8])")]
    host: std::net::IpAddr,
    /// a path
    #[argh(option)]
    path: Option<PathBuf>,
    /// names
    #[argh(option)]
    name: Vec<String>,
    /// a switch
    #[argh(switch)]
    on: bool,
    /// a maybe
    #[argh(option)]
    maybe: Option<bool>,
}

impl FileConfig for Odd {
    const COMMAND: &'static str = "odd";
    const DEFAULT_PATH: &'static str = "/nonexistent";
    const COMMAND_LINE_ONLY: &'static [&'static str] = &[];

    fn config_flag(&self) -> Option<&Path> {
        None
    }

    fn no_config(&self) -> bool {
        false
    }

    fn print_config(&self) -> bool {
        false
    }
}

#[test]
fn values_of_any_flag_type_round_trip() {
    every_flag_is_a_key::<Odd>();
    let weird = "a, b \"c\" } ] ) \\ \n\t é \u{7} None Some(x) '";
    let a: Odd = merge(
        &strings(&["--name", weird, "--name", "", "--path", "/p/Some(\"x\")"]),
        Path::new("x"),
        "level = \"debug\"\nlevels = [\"debug\", \"info\"]\naddr = \"[::1]:80\"\n\
         host = \"::1\"\non = true\nmaybe = false\n",
    )
    .unwrap();
    let shown = values(&a, false).unwrap();
    assert_eq!(shown["level"], Value::String("debug".into()));
    assert_eq!(
        shown["levels"],
        Value::Array(vec![
            Value::String("debug".into()),
            Value::String("info".into())
        ])
    );
    assert_eq!(shown["addr"], Value::String("[::1]:80".into()));
    assert_eq!(shown["host"], Value::String("::1".into()));
    assert_eq!(shown["maybe"], Value::Boolean(false));
    assert_eq!(shown["on"], Value::Boolean(true));
    assert_eq!(
        shown["name"],
        Value::Array(vec![
            Value::String(weird.into()),
            Value::String(String::new())
        ])
    );
    let printed = render(&a, "", false).unwrap();
    let back: Odd = merge(&[], Path::new("x"), &printed).unwrap();
    assert_eq!(format!("{back:?}"), format!("{a:?}"));
    let defaults: Odd = merge(&[], Path::new("x"), "").unwrap();
    let shown = values(&defaults, false).unwrap();
    assert_eq!(shown["level"], Value::String("info".into()));
    assert!(!shown.contains_key("addr") && !shown.contains_key("path"));
}

#[test]
fn the_default_file_is_looked_for_at_every_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jetstream.toml");
    let source = ConfigSource {
        cli: strings(&["--api-port", "7"]),
        file: None,
        default: Some(path.clone()),
    };
    assert_eq!(source.path(), None);
    assert_eq!(source.read::<ServerArgs>().unwrap().api_port, 7);
    std::fs::write(&path, "api-port = 9\napi-idle-timeout = 5\n").unwrap();
    assert_eq!(source.path(), Some(path));
    let a = source.read::<ServerArgs>().unwrap();
    assert_eq!((a.api_port, a.api_idle_timeout), (7, 5));
}
