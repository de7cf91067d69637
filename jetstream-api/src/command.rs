//! What every command is: its wire name, who may call it, how it may be called, its
//! parameters and its result ([`Command`], [`Meta`]), and the [`commands!`] macro that
//! declares them all in one place ([`crate::commands`]).

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A token permission (reference §6.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Send files (manifests, transfers, destinations, their control) and receive them.
    Upload,
    /// Let a client pull files (`send.startDownload`).
    Download,
    /// Delete objects.
    Modify,
    /// Make and delete download links.
    Share,
}

impl Permission {
    /// Every permission, in the order the documents list them.
    pub const ALL: [Self; 4] = [Self::Upload, Self::Download, Self::Modify, Self::Share];

    /// The name on the wire (`"upload"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Download => "download",
            Self::Modify => "modify",
            Self::Share => "share",
        }
    }

    /// The permission named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// On the wire, a permission is its name.
impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::from_name(&name).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
            serde::de::Error::custom(format!(
                "unknown permission {name:?}; known: {}",
                known.join(", ")
            ))
        })
    }
}

/// What a session needs to call a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, before login too.
    Open,
    /// Any logged-in session (it reads its own objects only).
    Login,
    /// A logged-in session whose API token, if it logged in with one, has this permission.
    Permission(Permission),
    /// A logged-in session whose API token, if it logged in with one, has at least one of
    /// these permissions (browsing files: `upload` or `download`).
    AnyOf(&'static [Permission]),
    /// A password login, not a token (`superuser`, `createAPIToken`).
    Password,
    /// A session that has called `superuser`.
    Superuser,
}

/// How a command may be called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// As `name` (answered when done) or as `nameAsync` (answered at once with a request id,
    /// the outcome through `getRequestStatus` / `getRequestResult`).
    Either,
    /// Only as `nameAsync`: the work outlives any reasonable wait (discovery).
    AsyncOnly,
}

/// One parameter of a command, as the documentation and `jetstream api` list it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parameter {
    /// Its name on the wire (`destinationId`).
    pub name: &'static str,
    /// Whether the command needs it.
    pub required: bool,
}

/// The parameters of `C`, read from its serde definition: the names from the field list serde
/// hands to `deserialize_struct`, and which are required by decoding an object where every
/// parameter is `null` (an optional one takes `null` as absent, a required one refuses it).
pub(crate) fn parameters<C: Command>() -> Vec<Parameter> {
    let names = field_names::<C>();
    let mut required: Vec<&'static str> = Vec::new();
    // Each round finds one more required parameter (or ends): at most one round per name.
    for _ in 0..=names.len() {
        let probe: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .filter(|n| !required.contains(n))
            .map(|n| ((*n).to_owned(), serde_json::Value::Null))
            .collect();
        match crate::decode_object::<C>("", probe) {
            Err(crate::ParamError::Invalid { parameter, .. }) => {
                match names.iter().find(|n| **n == parameter) {
                    Some(n) if !required.contains(n) => required.push(n),
                    _ => break,
                }
            }
            _ => break,
        }
    }
    names
        .iter()
        .map(|&name| Parameter {
            name,
            required: required.contains(&name),
        })
        .collect()
}

/// The field names serde's derive gives `deserialize_struct` for `C`.
fn field_names<C: Command>() -> &'static [&'static str] {
    struct Fields(&'static [&'static str]);
    #[derive(Debug)]
    struct Done;
    impl fmt::Display for Done {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("done")
        }
    }
    impl std::error::Error for Done {}
    impl serde::de::Error for Done {
        fn custom<T: fmt::Display>(_: T) -> Self {
            Self
        }
    }
    struct Recorder<'a>(&'a mut Fields);
    impl<'de> serde::Deserializer<'de> for Recorder<'_> {
        type Error = Done;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Done> {
            Err(Done)
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Done> {
            self.0 .0 = fields;
            Err(Done)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields = Fields(&[]);
    let _ = C::deserialize(Recorder(&mut fields));
    fields.0
}

/// One command's description: everything the dispatcher, the permission check, the console
/// client and the documentation know about it.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    /// The wire name without the `Async` suffix, e.g. `send.createTransfer`.
    pub name: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Whether a session that logged in with a shared token (a download link) may call it.
    pub link: bool,
    /// Sync, async, or both.
    pub mode: Mode,
    /// One line for the documentation's command table and `jetstream api --help`.
    pub summary: &'static str,
    /// Its parameters ([`Meta::parameters`]).
    pub(crate) params: fn() -> Vec<Parameter>,
}

impl Meta {
    /// The command's parameters, in the order of its parameter struct.
    pub fn parameters(&self) -> Vec<Parameter> {
        (self.params)()
    }

    /// The name `jetstream api` accepts: the wire name without its `send.` / `recv.` prefix,
    /// with `Async` where the command is async-only.
    pub fn console_name(&self) -> String {
        let bare = self
            .name
            .strip_prefix("send.")
            .or_else(|| self.name.strip_prefix("recv."))
            .unwrap_or(self.name);
        match self.mode {
            Mode::AsyncOnly => format!("{bare}Async"),
            Mode::Either => bare.to_owned(),
        }
    }
}

/// One command: its parameters are `Self`, its result is [`Command::Output`].
pub trait Command: Serialize + DeserializeOwned {
    /// Its description.
    const META: Meta;
    /// What a successful call returns in the response's `result`.
    type Output: Serialize + DeserializeOwned;
}

/// Declares every command: the [`crate::Request`] enum, the [`crate::COMMANDS`] table, one
/// [`Command`] impl per parameter type, and the [`crate::Api`] trait with one typed method per
/// command.
macro_rules! commands {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident / $method:ident = $name:literal, $access:expr, link: $link:literal,
            $mode:ident, $params:ty => $output:ty;
    )*) => {
        /// Every command's parameters, as a server receives them.
        #[derive(Clone, Debug, PartialEq)]
        #[allow(clippy::large_enum_variant)]
        pub enum Request {
            $(
                $(#[doc = $doc])*
                $variant($params),
            )*
        }

        /// Every command's description, in the order of the reference's tables.
        pub const COMMANDS: &[$crate::Meta] = &[$(<$params as $crate::Command>::META),*];

        $(
            impl $crate::Command for $params {
                const META: $crate::Meta = $crate::Meta {
                    name: $name,
                    access: $access,
                    link: $link,
                    mode: $crate::Mode::$mode,
                    summary: concat!($($doc),*),
                    params: $crate::command::parameters::<$params>,
                };
                type Output = $output;
            }
        )*

        impl Request {
            /// This request's description.
            pub fn meta(&self) -> &'static $crate::Meta {
                match self {
                    $(Self::$variant(_) => &<$params as $crate::Command>::META,)*
                }
            }

            /// The parameters as a client sends them (only those it set).
            ///
            /// # Errors
            /// None for this crate's parameter types (every map key is a string); the
            /// serializer's error otherwise.
            pub fn to_parameters(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self {
                    $(Self::$variant(p) => serde_json::to_value(p),)*
                }
            }

            /// Decodes the parameters of the command `name` (without `Async`).
            ///
            /// # Errors
            /// An unknown command, or parameters that do not fit it (naming the parameter).
            pub fn decode(
                name: &str,
                parameters: serde_json::Value,
            ) -> Result<Self, $crate::ParamError> {
                match name {
                    $($name => $crate::decode_params(name, parameters).map(Self::$variant),)*
                    _ => Err($crate::ParamError::UnknownCommand(name.to_owned())),
                }
            }
        }

        /// One typed method per command, over any transport that can carry one call
        /// ([`Api::call`]): the client implements it.
        pub trait Api {
            /// What a failed call returns.
            type Error;

            /// Sends one command and waits for its result.
            ///
            /// # Errors
            /// The transport's, or the server's answer.
            fn call<C: $crate::Command>(&mut self, params: &C) -> Result<C::Output, Self::Error>;

            /// Sends one command as `nameAsync`: the server answers at once with the request's
            /// id; its outcome comes from `getRequestStatus` / `getRequestResult`.
            ///
            /// # Errors
            /// The transport's, or the server's answer.
            fn call_async<C: $crate::Command>(
                &mut self,
                params: &C,
            ) -> Result<$crate::types::RequestId, Self::Error>;

            $(
                $(#[doc = $doc])*
                ///
                /// # Errors
                /// The transport's, or the server's answer.
                fn $method(&mut self, params: &$params) -> Result<$output, Self::Error> {
                    self.call(params)
                }
            )*
        }
    };
}

pub(crate) use commands;
