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
pub mod params;
pub mod types;
pub mod wire;

use std::fmt;

pub use command::{Access, Command, Meta, Mode, Permission};
pub use commands::{Api, Request, COMMANDS};

/// The description of the command `name`, with or without its `Async` suffix; `None` for an
/// unknown command. The second value is whether `name` is the `Async` form.
pub fn lookup(name: &str) -> Option<(&'static Meta, bool)> {
    let find = |n: &str| COMMANDS.iter().find(|m| m.name == n);
    if let Some(m) = find(name) {
        return Some((m, false));
    }
    name.strip_suffix("Async").and_then(find).map(|m| (m, true))
}

/// Why a request's parameters do not fit its command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamError {
    /// No command has this name.
    UnknownCommand(String),
    /// `parameters` is not a JSON object (nor absent).
    NotAnObject {
        /// The command.
        command: String,
    },
    /// A parameter the command does not take, one it needs that is missing, or one of the
    /// wrong type or value.
    Invalid {
        /// The command.
        command: String,
        /// The parameter's path (`destinationPath`, `paths[2].source`), empty when the message
        /// names it.
        parameter: String,
        /// What is wrong, as serde says it.
        message: String,
    },
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownCommand(name) => write!(f, "unknown command {name:?}"),
            Self::NotAnObject { command } => {
                write!(f, "{command}: parameters must be a JSON object")
            }
            Self::Invalid {
                command,
                parameter,
                message,
            } if parameter.is_empty() || parameter == "." => {
                write!(f, "{command}: {message}")
            }
            Self::Invalid {
                command,
                parameter,
                message,
            } => write!(f, "{command}: parameter {parameter:?}: {message}"),
        }
    }
}

impl std::error::Error for ParamError {}

/// Decodes `parameters` (an object, or null for none) as the parameters of `command`.
///
/// # Errors
/// Not an object, an unknown or missing parameter, or a wrong type, naming the parameter.
pub fn decode_params<C: Command>(
    command: &str,
    parameters: serde_json::Value,
) -> Result<C, ParamError> {
    let parameters = match parameters {
        serde_json::Value::Null => serde_json::Value::Object(serde_json::Map::new()),
        v @ serde_json::Value::Object(_) => v,
        _ => {
            return Err(ParamError::NotAnObject {
                command: command.to_owned(),
            })
        }
    };
    serde_path_to_error::deserialize(parameters).map_err(|e| ParamError::Invalid {
        command: command.to_owned(),
        parameter: e.path().to_string(),
        message: e.into_inner().to_string(),
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
