//! `jetstream api`: one control API command per invocation, from the console.
//!
//! ```text
//! jetstream api [--host H] [--api-control-port P] [--user U] [--token T] [--superuser]
//!               [--accept-new-host] [--json-params '{...}'] <command> [--param value ...]
//! ```
//!
//! Parsing is two-stage (ripgrep style): `parse` turns argv into a typed `Invocation` (pure,
//! tested), then `run` connects, authenticates and calls. The commands it knows, and their
//! console names, come from `jetstream_api::COMMANDS`; connecting and logging in from
//! `jetstream_client::login`.
//!
//! It stays in the server crate because it is a subcommand of the `jetstream` binary (which
//! links the server anyway) and masks secrets in `Debug` with the server's redaction; it uses
//! nothing of the server besides that.

use std::fmt;
use std::io::{self, Write};

use serde_json::{Map, Value};

use jetstream_api::{Mode, COMMANDS};
use jetstream_client::login::{self, exit, Failure};

/// The default API port.
const DEFAULT_PORT: u16 = 8886;

const HELP: &str = "\
Usage: jetstream api [global options] <command> [--param value | --param=value ...]

Calls one control API command and prints its JSON result on stdout.

Global options (before the command):
  --host H                 server to talk to (default: localhost)
  --api-control-port P     its API port (default: 8886)
  --user U                 log in as U (default: your login name); the password comes from
                           $JETSTREAM_API_PASSWORD or is asked for on the terminal
  --token T                log in with an API or shared token instead (password, if the token
                           has one, from $JETSTREAM_API_PASSWORD)
  --superuser              elevate to superuser after logging in
  --accept-new-host        trust and remember a server not yet in the known hosts file
                           ($JETSTREAM_KNOWN_HOSTS, default ~/.config/jetstream/known_hosts)
  --json-params '{...}'    base parameters as a JSON object (--params override them)
  -h, --help               this text

Parameters: `--name value` or `--name=value`; a flag with no value is `true`. A value that
parses as a JSON number, boolean, null, object or array is sent as that (write '\"123\"' to
send a string of digits), anything else as a string. A repeated name becomes an array.
`--fileMappings SRC:DST` (repeatable) builds the source -> destination map, split at the last
':' (or at '::' when both sides carry a Windows drive letter); a JSON object is also accepted.

Command names: the API's names without their send. / recv. prefix (createDestination,
getTransfers, ...); a name that both interfaces have is the send-side one, and with Async
the receive-side one (getTransfersAsync, getSourcesAsync, addAuthorizedClientAsync, ...), as
the reference writes them. An Async form is answered with the request's result. A name
written with its prefix (send.getTransfers) is sent as written. getServerInfo and echo need
no login unless --user is given. `jetstream api --help` ends with the list.

Exit status: 0 success, 1 the command failed, 2 usage error, 3 authentication failed,
4 cannot connect (or TLS / host identity problem).

Example:
  jetstream api createDestination --destinationAddress=jetstream02.lan --sendRateMax=1500000
  jetstream api createManifest --fileMappings /source/my_file:/target/my_file
  jetstream api createTransfer --destinationId <destinationId> --manifestId <manifestId> \\
      --destinationPath /project
";

/// Runs `jetstream api` with `args` (the arguments after `api`); returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let invocation = match parse(args) {
        Ok(Parsed::Help) => {
            // `jetstream api --help | head`: a closed pipe ends the output, not the program.
            let _ = write!(io::stdout().lock(), "{HELP}{}", command_list());
            return exit::OK;
        }
        Ok(Parsed::Run(inv)) => inv,
        Err(e) => {
            report(&e.to_string());
            eprintln!("Try `jetstream api --help`.");
            return exit::USAGE;
        }
    };
    match run(&invocation) {
        Ok(result) => print_result(&result),
        Err(failure) => {
            report(&failure.message);
            failure.code
        }
    }
}

fn report(message: &str) {
    eprintln!("jetstream api: {}", message.replace('\n', " "));
}

fn print_result(result: &Value) -> i32 {
    let text = match serde_json::to_string_pretty(result) {
        Ok(t) => t,
        Err(e) => {
            report(&format!("cannot format the result: {e}"));
            return exit::COMMAND_FAILED;
        }
    };
    let mut out = io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => exit::OK,
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            report(&format!("cannot write the result: {e}"));
            exit::COMMAND_FAILED
        }
    }
}

/// A command line that cannot be run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
enum Parsed {
    Help,
    Run(Invocation),
}

/// `Debug` shows only the token's first characters and masks password parameters.
#[derive(Clone, PartialEq)]
struct Invocation {
    host: String,
    port: u16,
    user: Option<String>,
    token: Option<String>,
    superuser: bool,
    accept_new_host: bool,
    /// The wire command name (prefixed).
    command: String,
    parameters: Map<String, Value>,
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parameters = Value::Object(self.parameters.clone());
        crate::server::secrets::redact_json(&mut parameters);
        f.debug_struct("Invocation")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field(
                "token",
                &jetstream_client::shown::ShownTokenOpt(&self.token),
            )
            .field("superuser", &self.superuser)
            .field("accept_new_host", &self.accept_new_host)
            .field("command", &self.command)
            .field("parameters", &parameters)
            .finish()
    }
}

/// Parses the arguments after `api`.
fn parse(args: &[String]) -> Result<Parsed, UsageError> {
    let mut inv = Invocation {
        host: "localhost".into(),
        port: DEFAULT_PORT,
        user: None,
        token: None,
        superuser: false,
        accept_new_host: false,
        command: String::new(),
        parameters: Map::new(),
    };
    let mut i = 0;
    let command = loop {
        let Some(arg) = args.get(i) else {
            return Err(usage("no command given"));
        };
        i += 1;
        if arg == "-h" || arg == "--help" {
            return Ok(Parsed::Help);
        }
        let Some(flag) = arg.strip_prefix("--") else {
            if arg.starts_with('-') {
                return Err(usage(format!("unknown option {arg}")));
            }
            break arg.as_str();
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        match name {
            "superuser" | "accept-new-host" => {
                if inline.is_some() {
                    return Err(usage(format!("--{name} takes no value")));
                }
                if name == "superuser" {
                    inv.superuser = true;
                } else {
                    inv.accept_new_host = true;
                }
                continue;
            }
            "host" | "api-control-port" | "user" | "token" | "json-params" => {}
            _ => {
                return Err(usage(format!(
                    "unknown option --{name} (command parameters go after the command)"
                )))
            }
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = args
                    .get(i)
                    .ok_or_else(|| usage(format!("--{name} needs a value")))?;
                i += 1;
                v.as_str()
            }
        };
        match name {
            "host" if !value.is_empty() => inv.host = value.to_owned(),
            "api-control-port" => {
                inv.port = value
                    .parse()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| usage(format!("--api-control-port: bad port {value:?}")))?;
            }
            "user" if !value.is_empty() => inv.user = Some(value.to_owned()),
            "token" if !value.is_empty() => inv.token = Some(value.to_owned()),
            "json-params" => match serde_json::from_str(value) {
                Ok(Value::Object(m)) => inv.parameters = m,
                _ => return Err(usage("--json-params must be a JSON object")),
            },
            _ => return Err(usage(format!("--{name} needs a non-empty value"))),
        }
    };
    inv.command = qualify(command)?;
    parse_parameters(&args[i..], &mut inv.parameters)?;
    Ok(Parsed::Run(inv))
}

/// Parses `--name value` / `--name=value` / bare `--name` pairs into `params` (over whatever
/// `--json-params` put there).
fn parse_parameters(args: &[String], params: &mut Map<String, Value>) -> Result<(), UsageError> {
    let mut repeated: Vec<(String, Vec<Value>)> = Vec::new();
    let mut mappings: Option<Map<String, Value>> = None;
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        let flag = arg
            .strip_prefix("--")
            .filter(|f| !f.is_empty() && !f.starts_with('='))
            .ok_or_else(|| {
                usage(format!(
                    "unexpected argument {arg:?}: parameters are written --name value"
                ))
            })?;
        let (name, text) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => match args.get(i).filter(|next| !next.starts_with("--")) {
                Some(next) => {
                    i += 1;
                    (flag, Some(next.as_str()))
                }
                None => (flag, None),
            },
        };
        if name == "fileMappings" {
            let text = text.ok_or_else(|| usage("--fileMappings needs SRC:DST"))?;
            add_file_mapping(mappings.get_or_insert_with(Map::new), text)?;
            continue;
        }
        let value = text.map_or(Value::Bool(true), typed_value);
        match repeated.iter_mut().find(|(n, _)| n == name) {
            Some((_, values)) => values.push(value),
            None => repeated.push((name.to_owned(), vec![value])),
        }
    }
    for (name, mut values) in repeated {
        let value = if values.len() == 1 {
            values.swap_remove(0)
        } else {
            Value::Array(values)
        };
        params.insert(name, value);
    }
    if let Some(new) = mappings {
        match params.get_mut("fileMappings") {
            Some(Value::Object(base)) => base.extend(new),
            _ => {
                params.insert("fileMappings".into(), Value::Object(new));
            }
        }
    }
    Ok(())
}

/// A parameter's text as a JSON value: a JSON number, boolean, null, object or array is used as
/// such, a JSON string literal (`"123"`) as its string, anything else as the text itself.
fn typed_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => v,
        Err(_) => Value::String(text.to_owned()),
    }
}

/// Adds one `--fileMappings` value: a JSON object, or `SRC:DST` split at the last `:` (at `::`
/// when present, for Windows drive letters on both sides).
fn add_file_mapping(map: &mut Map<String, Value>, text: &str) -> Result<(), UsageError> {
    if text.trim_start().starts_with('{') {
        return match serde_json::from_str(text) {
            Ok(Value::Object(m)) => {
                map.extend(m);
                Ok(())
            }
            _ => Err(usage(format!("--fileMappings: bad JSON object {text:?}"))),
        };
    }
    let (src, dst) = match text.rfind("::") {
        Some(at) => (&text[..at], &text[at + 2..]),
        None => match text.rfind(':') {
            Some(at) => (&text[..at], &text[at + 1..]),
            None => {
                return Err(usage(format!(
                    "--fileMappings {text:?}: expected SRC:DST (SRC::DST with drive letters)"
                )))
            }
        },
    };
    if src.is_empty() || dst.is_empty() {
        return Err(usage(format!(
            "--fileMappings {text:?}: source and destination must not be empty"
        )));
    }
    map.insert(src.to_owned(), Value::String(dst.to_owned()));
    Ok(())
}

/// The commands, for `--help`: console name and summary, one a line.
fn command_list() -> String {
    let mut out = String::from("\nCommands:\n");
    let names: Vec<String> = COMMANDS.iter().map(console_name).collect();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    for (name, m) in names.iter().zip(COMMANDS) {
        out.push_str(&format!("  {name:width$}  {}\n", m.summary));
    }
    out
}

/// The name a command is given in the console: [`jetstream_api::Meta::console_name`], with
/// `Async` for the receive interface where the send interface has the same name (the
/// reference writes the receive side's commands that way: `getTransfersAsync`).
fn console_name(m: &jetstream_api::Meta) -> String {
    let name = m.console_name();
    let shadowed = m.name.starts_with("recv.")
        && COMMANDS
            .iter()
            .any(|o| o.name.starts_with("send.") && o.console_name() == name);
    if shadowed {
        format!("{name}Async")
    } else {
        name
    }
}

/// The wire name of a console command name: a prefixed name as written; a console name
/// (`createDestination`, `getTransfersAsync`) as its command's wire name, with `Async` when it
/// was given so or the command runs only asynchronously.
///
/// # Errors
/// A name no command has.
fn qualify(command: &str) -> Result<String, UsageError> {
    if command.contains('.') {
        return Ok(command.to_owned());
    }
    let wire = |m: &jetstream_api::Meta, asked_async: bool| match (m.mode, asked_async) {
        (Mode::AsyncOnly, _) | (Mode::Either, true) => format!("{}Async", m.name),
        (Mode::Either, false) => m.name.to_owned(),
    };
    // The exact console name first (`getTransfersAsync` is the receive side's), then the
    // `Async` form of a command that may run either way (`setSendRateAsync`).
    if let Some(m) = COMMANDS.iter().find(|m| console_name(m) == command) {
        return Ok(wire(m, console_name(m) != m.console_name()));
    }
    command
        .strip_suffix("Async")
        .and_then(|bare| {
            COMMANDS
                .iter()
                .find(|m| m.mode == Mode::Either && console_name(m) == bare)
        })
        .map(|m| wire(m, true))
        .ok_or_else(|| {
            usage(format!(
                "unknown command {command:?} (`jetstream api --help` lists them)"
            ))
        })
}

fn run(inv: &Invocation) -> Result<Value, Failure> {
    let mut client = login::connect(&inv.host, inv.port, inv.accept_new_host, false)?;
    let anonymous = inv.user.is_none() && matches!(inv.command.as_str(), "getServerInfo" | "echo");
    if inv.token.is_some() || !anonymous {
        login::authenticate(
            &mut client,
            &inv.host,
            inv.user.as_deref(),
            inv.token.as_deref(),
        )?;
    }
    if inv.superuser {
        client
            .call("superuser", Value::Null)
            .map_err(Failure::of_auth)?;
    }
    let result = client
        .call(&inv.command, Value::Object(inv.parameters.clone()))
        .map_err(Failure::of_command)?;
    // An `*Async` command answers with a request id; a console user wants its result.
    match (&result, inv.command.ends_with("Async")) {
        (Value::Object(m), true) if m.len() == 1 && m.contains_key("requestId") => {
            // Said on stderr so that a script can ask about it from elsewhere (the id is
            // random, and only this login's owner may read it).
            eprintln!(
                "{}: request {} queued; waiting for its result",
                inv.command, m["requestId"]
            );
            client
                .call("getRequestResult", result.clone())
                .map_err(Failure::of_command)
        }
        _ => Ok(result),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jetstream_api::ErrorKind;
    use jetstream_client::client::{ClientError, Refusal};
    use serde_json::json;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| (*a).to_owned()).collect()
    }

    fn run_of(s: &[&str]) -> Invocation {
        match parse(&args(s)) {
            Ok(Parsed::Run(inv)) => inv,
            other => panic!("{other:?}"),
        }
    }

    fn params_of(s: &[&str]) -> Value {
        Value::Object(run_of(s).parameters)
    }

    /// Regression (issue 15, item 13): `Invocation` derived `Debug`, which printed the token
    /// and `--password` values.
    #[test]
    fn regression_debug_hides_token_and_passwords() {
        let token = "0123456789abcdef0123456789abcdef";
        let inv = run_of(&[
            "--token",
            token,
            "createDestination",
            "--destinationAddress=h",
            "--password",
            "hunter2-secret",
        ]);
        let shown = format!("{inv:?}");
        assert!(!shown.contains(token), "{shown}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("createDestination"), "{shown}");
    }

    #[test]
    fn seed_example_types_values_and_prefixes() {
        let inv = run_of(&[
            "createDestination",
            "--destinationAddress=jetstream02.lan",
            "--sendRateMax=1500000",
        ]);
        assert_eq!(inv.command, "send.createDestination");
        assert_eq!((inv.host.as_str(), inv.port), ("localhost", 8886));
        assert_eq!(
            Value::Object(inv.parameters),
            json!({"destinationAddress": "jetstream02.lan", "sendRateMax": 1_500_000})
        );
        assert_eq!(
            params_of(&[
                "createTransfer",
                "--destinationPath",
                "/project",
                "--priority",
                "-1",
                "--ok",
                "true",
                "--x",
                "null",
                "--list",
                "[1,2]",
                "--id",
                "\"123\"",
                "--text",
                "hello world",
            ]),
            json!({"destinationPath": "/project", "priority": -1, "ok": true, "x": null,
                   "list": [1, 2], "id": "123", "text": "hello world"})
        );
    }

    #[test]
    fn command_names_map_to_their_interface() {
        let q = |name: &str| qualify(name).unwrap();
        assert_eq!(q("getTransfers"), "send.getTransfers");
        assert_eq!(q("getTransfersAsync"), "recv.getTransfersAsync");
        assert_eq!(q("getSourcesAsync"), "recv.getSourcesAsync");
        assert_eq!(
            q("addAuthorizedClientAsync"),
            "recv.addAuthorizedClientAsync"
        );
        assert_eq!(q("createDestination"), "send.createDestination");
        assert_eq!(q("setSendRateAsync"), "send.setSendRateAsync");
        assert_eq!(q("startTransfer"), "recv.startTransfer");
        assert_eq!(q("getServerInfo"), "getServerInfo");
        assert_eq!(q("sendDiscoverPacketAsync"), "sendDiscoverPacketAsync");
        assert_eq!(q("recv.getSourcesAsync"), "recv.getSourcesAsync");
        assert_eq!(q("send.whatever"), "send.whatever");
        assert!(qualify("noSuchCommand").is_err());
        assert!(qualify("noSuchCommandAsync").is_err());
    }

    /// Every command has one console name, and each console name leads back to its command.
    #[test]
    fn every_command_has_a_console_name_that_resolves_to_it() {
        for m in COMMANDS {
            let name = console_name(m);
            let wire = qualify(&name).unwrap();
            assert_eq!(
                wire.strip_suffix("Async").unwrap_or(&wire),
                m.name,
                "{name}"
            );
            let twins = COMMANDS.iter().filter(|o| console_name(o) == name).count();
            assert_eq!(twins, 1, "{name} names {twins} commands");
        }
        let help = command_list();
        assert!(help.contains("getTransfersAsync") && help.contains("createDestination"));
    }

    #[test]
    fn bare_flags_are_true_and_repeats_become_arrays() {
        assert_eq!(
            params_of(&[
                "getTransfers",
                "--all",
                "--tag",
                "a",
                "--tag",
                "b",
                "--tag=3",
                "--last"
            ]),
            json!({"all": true, "tag": ["a", "b", 3], "last": true})
        );
    }

    #[test]
    fn file_mappings_split_at_last_colon_or_double_colon() {
        assert_eq!(
            params_of(&[
                "createManifest",
                "--fileMappings",
                "/source/my_file:/target/my_file",
                "--fileMappings=/a:b:/c",
                "--fileMappings",
                "C:\\data\\x::D:\\y",
                "--fileMappings",
                r#"{"/j":"/k"}"#,
            ]),
            json!({"fileMappings": {"/source/my_file": "/target/my_file", "/a:b": "/c",
                                    "C:\\data\\x": "D:\\y", "/j": "/k"}})
        );
        let inv = run_of(&[
            "--json-params",
            r#"{"fileMappings":{"/p":"/q"},"n":1}"#,
            "createManifest",
            "--fileMappings",
            "/r:/s",
            "--n",
            "2",
        ]);
        assert_eq!(
            Value::Object(inv.parameters),
            json!({"fileMappings": {"/p": "/q", "/r": "/s"}, "n": 2})
        );
    }

    #[test]
    fn global_options_before_the_command() {
        let inv = run_of(&[
            "--host",
            "jet.lan",
            "--api-control-port=9000",
            "--user",
            "alice",
            "--superuser",
            "--accept-new-host",
            "--token=t0k",
            "getServerInfo",
        ]);
        assert_eq!(inv.host, "jet.lan");
        assert_eq!(inv.port, 9000);
        assert_eq!(inv.user.as_deref(), Some("alice"));
        assert_eq!(inv.token.as_deref(), Some("t0k"));
        assert!(inv.superuser && inv.accept_new_host);
        assert_eq!(parse(&args(&["--help"])), Ok(Parsed::Help));
        assert_eq!(parse(&args(&["--host", "h", "-h", "x"])), Ok(Parsed::Help));
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["--host"],
            &["--api-control-port", "99999", "echo"],
            &["--api-control-port", "0", "echo"],
            &["--bogus", "echo"],
            &["-x", "echo"],
            &["--superuser=yes", "echo"],
            &["--json-params", "[1]", "echo"],
            &["echo", "stray"],
            &["echo", "--"],
            &["createManifest", "--fileMappings"],
            &["createManifest", "--fileMappings", "nocolon"],
            &["createManifest", "--fileMappings", ":/dst"],
            &["createManifest", "--fileMappings", "/src:"],
            &["createManifest", "--fileMappings", "{bad json"],
        ] {
            assert!(
                parse(&args(bad)).is_err(),
                "{bad:?} should be a usage error"
            );
        }
    }

    #[test]
    fn failures_map_to_exit_codes() {
        assert_eq!(
            Failure::of_command(ClientError::Api(Refusal::new(
                ErrorKind::NotFound,
                "no such transfer"
            )))
            .code,
            exit::COMMAND_FAILED
        );
        assert_eq!(
            Failure::of_auth(ClientError::Api(Refusal::new(
                ErrorKind::LoginFailed,
                "bad"
            )))
            .code,
            exit::AUTH
        );
        assert_eq!(
            Failure::of_command(ClientError::Protocol("closed".into())).code,
            exit::CONNECT
        );
    }
}
