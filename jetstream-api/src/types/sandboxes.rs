//! Sandbox mappings (reference §4.11, §6.4): `getSandboxMappings`, `setSandboxMapping`,
//! `deleteSandboxMapping`.
//!
//! A mapping is `{resourceName: config}`: the resource `""` is the root of the user's view,
//! other names are shown to the user as top-level folders (`/home/...`, `/common/...`). A
//! `config` is written either as a path string (the simplified File form) or as an object with
//! a `type` ([`SandboxResource`]); answers always use the object form.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every mapping: user name (`""` = all users) → that level's [`SandboxMapping`].
pub type SandboxMappings = BTreeMap<String, SandboxMapping>;

/// One level's mapping: resource name (`""` = the root) → resource.
pub type SandboxMapping = BTreeMap<String, SandboxResource>;

/// One resource of a sandbox mapping.
///
/// On the wire it is `{"type": "File", "path": "/storage/%u"}`, or, when decoding, the bare
/// path string `"/storage/%u"` (the simplified File form). The `S3` type of the reference is
/// recognised and refused as not supported yet; the Windows-only File fields (`userName`,
/// `password`, `shareName`) are refused on this platform. Both are errors naming what is
/// wrong, never silently dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SandboxResource {
    /// A directory of the server's file system.
    File(FileResource),
}

/// A `File` resource: a directory template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileResource {
    /// An absolute directory with the placeholders `%u` (user name), `%d` (domain), `%f`
    /// (full user name) and `%%` (a literal `%`).
    pub path: String,
}

impl SandboxResource {
    /// A `File` resource for the directory template `path`.
    pub fn file(path: impl Into<String>) -> Self {
        Self::File(FileResource { path: path.into() })
    }

    /// The resource's type name on the wire (`"File"`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::File(_) => "File",
        }
    }
}

impl fmt::Display for SandboxResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(r) => write!(f, "File {}", r.path),
        }
    }
}

impl Serialize for SandboxResource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Tagged<'a, T> {
            #[serde(rename = "type")]
            kind: &'static str,
            #[serde(flatten)]
            fields: &'a T,
        }
        match self {
            Self::File(r) => Tagged {
                kind: self.type_name(),
                fields: r,
            }
            .serialize(s),
        }
    }
}

/// The Windows-only fields of a `File` resource (UNC shares, credential pass-through).
const WINDOWS_ONLY: [&str; 3] = ["userName", "password", "shareName"];

impl<'de> Deserialize<'de> for SandboxResource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let mut object = match value {
            serde_json::Value::String(path) => return Ok(Self::file(path)),
            serde_json::Value::Object(o) => o,
            other => {
                return Err(D::Error::custom(format!(
                    "a sandbox resource is a path string or an object with a \"type\", not {other}"
                )))
            }
        };
        let kind = match object.remove("type") {
            Some(serde_json::Value::String(k)) => k,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "a sandbox resource's \"type\" is a string (\"File\"), not {other}"
                )))
            }
            None => {
                return Err(D::Error::custom(
                    "a sandbox resource object needs a \"type\" (\"File\"); or give the path \
                     as a plain string",
                ))
            }
        };
        match kind.as_str() {
            "File" => {
                if let Some(field) = WINDOWS_ONLY.iter().find(|f| object.contains_key(**f)) {
                    return Err(D::Error::custom(format!(
                        "the File resource field \"{field}\" (userName, password, shareName: \
                         Windows shares) is not supported on this platform"
                    )));
                }
                let file: FileResource = serde_json::from_value(serde_json::Value::Object(object))
                    .map_err(|e| D::Error::custom(format!("File resource: {e}")))?;
                Ok(Self::File(file))
            }
            "S3" => Err(D::Error::custom(
                "the S3 sandbox resource type is not supported yet by this server (File only)",
            )),
            other => Err(D::Error::custom(format!(
                "unknown sandbox resource type {other:?} (known: File)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(v: serde_json::Value) -> Result<SandboxResource, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn both_forms_decode_and_answers_use_the_object() {
        let short = decode(serde_json::json!("/storage/%u")).unwrap();
        let long = decode(serde_json::json!({"type": "File", "path": "/storage/%u"})).unwrap();
        assert_eq!(short, long);
        assert_eq!(
            serde_json::to_value(&short).unwrap(),
            serde_json::json!({"type": "File", "path": "/storage/%u"})
        );
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let cases = [
            (serde_json::json!({"type": "S3", "bucketName": "b"}), "S3"),
            (
                serde_json::json!({"type": "File", "path": "/x", "shareName": "s"}),
                "shareName",
            ),
            (serde_json::json!({"type": "Ftp", "path": "/x"}), "Ftp"),
            (serde_json::json!({"path": "/x"}), "type"),
            (serde_json::json!({"type": "File"}), "path"),
            (
                serde_json::json!({"type": "File", "path": "/x", "colour": 1}),
                "colour",
            ),
            (serde_json::json!(7), "7"),
        ];
        for (v, needle) in cases {
            let e = decode(v.clone()).unwrap_err();
            assert!(e.contains(needle), "{v}: {e}");
        }
    }
}
