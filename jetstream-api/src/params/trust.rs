//! Parameters of the authorized-client commands that are more than one plain field:
//! `recv.addAuthorizedClient`'s two places for `userName`, and `authClient`.

use serde::{Deserialize, Serialize};

use super::flex;

/// `authClient`: a sending server logs in by the key of the TLS client certificate it
/// presented, which the receiver's superuser authorized (`recv.addAuthorizedClient`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthClient {
    /// The user who owns the transfer on the sending server: the receiver acts as its local
    /// user of the same name, unless the key was authorized for a given user (which then wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
}

/// `recv.addAuthorizedClient` as it arrives: `userName` beside `clientPublicKey` or inside
/// its object form.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawAddAuthorizedClient {
    #[serde(deserialize_with = "flex::client_key_entry")]
    client_public_key: (String, Option<String>),
    #[serde(default)]
    user_name: Option<String>,
}

impl TryFrom<RawAddAuthorizedClient> for super::AddAuthorizedClient {
    type Error = String;

    fn try_from(raw: RawAddAuthorizedClient) -> Result<Self, String> {
        let (key, inner) = raw.client_public_key;
        let user_name = match (raw.user_name, inner) {
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "userName is given twice, as {a:?} and as {b:?}: give it once"
                ))
            }
            (a, b) => a.or(b),
        };
        Ok(Self {
            client_public_key: key,
            user_name,
        })
    }
}
