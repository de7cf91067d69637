//! The JetStream control API, defined once.
//!
//! Every command of the reference (§3) is a type here: its parameters are a struct (serde,
//! camelCase on the wire, unknown parameters refused), its result is [`Command::Output`], and its
//! [`Meta`] says who may call it, whether a download link may, and whether it runs async. The
//! server's dispatcher and permission check, the Rust client's typed methods ([`Api`]), the
//! console client's command list, the fuzz target and the documentation's command table are all
//! made from [`COMMANDS`] and [`Request`]; nothing else lists command names.
//!
//! This crate does no I/O. [`wire`] is the framing (one JSON object a line); the client and the
//! server bring the sockets.
#![warn(missing_docs)]

mod command;
mod commands;
mod decode;
mod error;
pub mod params;
pub mod types;
pub mod wire;

use std::fmt;

pub use command::{Access, Command, Meta, Mode, Parameter, Permission};
pub use commands::{Api, Request, COMMANDS};
pub use error::ErrorKind;

/// The description of the command `name`, with or without its `Async` suffix; `None` for an
/// unknown command. The second value is whether `name` is the `Async` form.
pub fn lookup(name: &str) -> Option<(&'static Meta, bool)> {
    let find = |n: &str| COMMANDS.iter().find(|m| m.name == n);
    if let Some(m) = find(name) {
        return Some((m, false));
    }
    name.strip_suffix("Async").and_then(find).map(|m| (m, true))
}

/// Why a request's parameters do not fit its command. The messages name the parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamError {
    /// No command has this name.
    UnknownCommand(String),
    /// `parameters` is not a JSON object (nor absent).
    NotAnObject {
        /// The command.
        command: String,
    },
    /// A parameter the command needs is absent (or `null`).
    Missing {
        /// The command.
        command: String,
        /// The parameter's path (`password`, `fileMappings[0].srcPath`).
        parameter: String,
    },
    /// A parameter the command does not take.
    Unknown {
        /// The command.
        command: String,
        /// The parameter's path.
        parameter: String,
        /// The parameters the command (or the object holding this one) takes.
        expected: &'static [&'static str],
    },
    /// A parameter of the wrong type or with a bad value.
    Invalid {
        /// The command.
        command: String,
        /// The parameter's path (`destinationPort`, `permissions[1]`).
        parameter: String,
        /// What is wrong, e.g. `must be a string, not 5`.
        message: String,
    },
}

impl ParamError {
    /// The kind of error answer it makes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownCommand(_) => ErrorKind::UnknownCommand,
            _ => ErrorKind::BadParameters,
        }
    }

    /// The command the error is about.
    pub fn command(&self) -> &str {
        match self {
            Self::UnknownCommand(c)
            | Self::NotAnObject { command: c }
            | Self::Missing { command: c, .. }
            | Self::Unknown { command: c, .. }
            | Self::Invalid { command: c, .. } => c,
        }
    }

    /// The parameter the error is about, if it is about one.
    pub fn parameter(&self) -> Option<&str> {
        match self {
            Self::Missing { parameter, .. }
            | Self::Unknown { parameter, .. }
            | Self::Invalid { parameter, .. } => Some(parameter),
            Self::UnknownCommand(_) | Self::NotAnObject { .. } => None,
        }
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownCommand(name) => write!(f, "unknown command {name:?}"),
            Self::NotAnObject { .. } => {
                f.write_str("bad request: \"parameters\" must be an object")
            }
            Self::Missing { parameter, .. } => write!(f, "missing parameter {parameter:?}"),
            Self::Unknown {
                command,
                parameter,
                expected,
            } => {
                write!(f, "unknown parameter {parameter:?} of {command}: ")?;
                if expected.is_empty() {
                    f.write_str("it takes none")
                } else {
                    write!(f, "it takes {}", expected.join(", "))
                }
            }
            Self::Invalid {
                parameter, message, ..
            } if message.starts_with("must ") => write!(f, "parameter {parameter:?} {message}"),
            Self::Invalid {
                parameter, message, ..
            } => write!(f, "parameter {parameter:?}: {message}"),
        }
    }
}

impl std::error::Error for ParamError {}

/// Decodes `parameters` (an object, or null for none) as the parameters of `command`.
///
/// Every parameter is checked here: an unknown one, a missing one, and a value of the wrong
/// type are errors naming the parameter. Where the documents allow it a value may take more
/// than one form (an id as a string or a number, a number as a string of digits, a boolean
/// as `"true"`); [`params`] says which.
///
/// # Errors
/// Not an object, an unknown or missing parameter, or a wrong type, naming the parameter.
pub fn decode_params<C: Command>(
    command: &str,
    parameters: serde_json::Value,
) -> Result<C, ParamError> {
    match parameters {
        serde_json::Value::Null => decode_object(command, serde_json::Map::new()),
        serde_json::Value::Object(mut map) => {
            // A parameter given as `null` is absent (as the server has always read them).
            map.retain(|_, v| !v.is_null());
            decode_object(command, map)
        }
        _ => Err(ParamError::NotAnObject {
            command: command.to_owned(),
        }),
    }
}

/// Decodes an object as `C`, as it is (a `null` is a value of the wrong type for a required
/// parameter, which [`command::parameters`] relies on).
pub(crate) fn decode_object<C: Command>(
    command: &str,
    parameters: serde_json::Map<String, serde_json::Value>,
) -> Result<C, ParamError> {
    let parameters = serde_json::Value::Object(parameters);
    serde_path_to_error::deserialize(decode::ValueDe(parameters)).map_err(|e| {
        let path = e.path().to_string();
        // The path names the object holding a missing or unknown field (and, for an unknown
        // one, the key itself when serde_path_to_error had already read it).
        let under = |name: &str| match path.as_str() {
            "" | "." => name.to_owned(),
            p if p == name || p.ends_with(&format!(".{name}")) => p.to_owned(),
            p => format!("{p}.{name}"),
        };
        let command = command.to_owned();
        match e.into_inner() {
            decode::Fault::Missing(name) => ParamError::Missing {
                command,
                parameter: under(name),
            },
            decode::Fault::Unknown { name, expected } => ParamError::Unknown {
                command,
                parameter: under(&name),
                expected,
            },
            fault => ParamError::Invalid {
                command,
                parameter: path,
                message: fault.to_string(),
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_once_and_async_forms_resolve() {
        for (i, m) in COMMANDS.iter().enumerate() {
            assert!(
                COMMANDS[i + 1..].iter().all(|n| n.name != m.name),
                "{} twice",
                m.name
            );
            assert!(!m.name.ends_with("Async"), "{}", m.name);
        }
        assert_eq!(
            lookup("send.cancelTransferAsync").map(|(m, a)| (m.name, a)),
            Some(("send.cancelTransfer", true))
        );
        assert!(lookup("nope").is_none() && lookup("nopeAsync").is_none());
    }

    #[test]
    fn unknown_commands_and_non_objects_are_refused() {
        assert_eq!(
            Request::decode("nope", serde_json::Value::Null).unwrap_err(),
            ParamError::UnknownCommand("nope".into())
        );
        let e = Request::decode("echo", serde_json::json!([1])).unwrap_err();
        assert!(matches!(e, ParamError::NotAnObject { .. }), "{e}");
    }
}
