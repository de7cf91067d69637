//! What kind of refusal an error answer is: the `errorCode` of an error response, so that a
//! program can react to a refusal without reading its message (which is written for people and
//! may change).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The kind of an error answer (the response's `errorCode`, a snake_case code). Servers before
/// error codes send none; a newer server's code this version does not know is kept as sent
/// ([`ErrorKind::Other`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No command has that name (`unknown_command`).
    UnknownCommand,
    /// The parameters do not fit the command: unknown, missing or of the wrong type
    /// (`bad_parameters`).
    BadParameters,
    /// The command needs a login, or the token the session logged in with is gone
    /// (`not_authenticated`).
    NotAuthenticated,
    /// The session may not call the command, or not on that object: a token without the
    /// permission, a download link, a command for superusers (`permission_denied`).
    PermissionDenied,
    /// No such object, or not one this session may see (`not_found`).
    NotFound,
    /// The user name and password, or the token, were not accepted (`login_failed`).
    LoginFailed,
    /// Too many failed logins from this source or for this user: wait and retry
    /// (`login_throttled`).
    LoginThrottled,
    /// The server is at a limit (incoming connections, transfers): retry later (`busy`).
    Busy,
    /// The server failed inside; its log has the detail under the message's reference
    /// (`internal`).
    Internal,
    /// Any other refusal: the message says why (`failed`).
    Failed,
    /// A code from a newer server.
    Other(String),
}

impl ErrorKind {
    /// The code on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::UnknownCommand => "unknown_command",
            Self::BadParameters => "bad_parameters",
            Self::NotAuthenticated => "not_authenticated",
            Self::PermissionDenied => "permission_denied",
            Self::NotFound => "not_found",
            Self::LoginFailed => "login_failed",
            Self::LoginThrottled => "login_throttled",
            Self::Busy => "busy",
            Self::Internal => "internal",
            Self::Failed => "failed",
            Self::Other(s) => s,
        }
    }

    /// Every kind this version sends, for documentation and tests.
    pub const ALL: [Self; 10] = [
        Self::UnknownCommand,
        Self::BadParameters,
        Self::NotAuthenticated,
        Self::PermissionDenied,
        Self::NotFound,
        Self::LoginFailed,
        Self::LoginThrottled,
        Self::Busy,
        Self::Internal,
        Self::Failed,
    ];

    /// The kind of `code`.
    pub fn from_code(code: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == code)
            .unwrap_or_else(|| Self::Other(code.to_owned()))
    }

    /// Whether the same request may succeed later without any change (the server was busy
    /// or throttling).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Busy | Self::LoginThrottled)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_code(&String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_kept() {
        for k in ErrorKind::ALL {
            let text = serde_json::to_string(&k).unwrap();
            assert_eq!(serde_json::from_str::<ErrorKind>(&text).unwrap(), k);
        }
        let newer: ErrorKind = serde_json::from_str("\"quota_exceeded\"").unwrap();
        assert_eq!(newer, ErrorKind::Other("quota_exceeded".into()));
        assert_eq!(serde_json::to_string(&newer).unwrap(), "\"quota_exceeded\"");
        assert!(ErrorKind::Busy.is_transient() && !ErrorKind::NotFound.is_transient());
    }
}
