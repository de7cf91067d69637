//! What every command is: its wire name, who may call it, how it may be called, its
//! parameters and its result ([`Command`], [`Meta`]), and the [`commands!`] macro that
//! declares them all in one place ([`crate::commands`]).

use serde::de::DeserializeOwned;
use serde::Serialize;

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

/// What a session needs to call a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, before login too.
    Open,
    /// Any logged-in session (it reads its own objects only).
    Login,
    /// A logged-in session whose API token, if it logged in with one, has this permission.
    Permission(Permission),
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
}

impl Meta {
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
        #[derive(Clone, Debug)]
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
