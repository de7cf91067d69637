//! The forms a parameter value may take besides the plain one, as the server has always
//! accepted them (`jetstream api` sends `--transferId 12` as a number and `--x '"12"'` as a
//! string; people type ids): `deserialize_with` functions for [`super`]'s structs.
//!
//! - an id: a string or a number, 32 hex digits, any case (lowercased);
//! - an integer: a JSON number or a string of digits (spaces around allowed);
//! - a boolean: `true`/`false` or the strings `"true"`/`"false"`;
//! - a list of names: a list of strings or one string;
//! - `null` is the same as absent for every optional parameter.
//!
//! Each goes through a `serde_json::Value` first: parameters arrive as one, and the value is
//! moved, not copied.

use std::fmt::Display;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Error as _};
use serde::Serializer;
use serde_json::Value;

use super::Mapping;
use crate::decode::unexpected;

/// An id: 32 hex digits, given as a string or (typed by a person) a number; lowercased.
pub(crate) fn id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Id::deserialize(d).map(|i| i.0)
}

/// An optional [`id`].
pub(crate) fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<Id>::deserialize(d).map(|o| o.map(|i| i.0))
}

struct Id(String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let text = match &v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err(D::Error::invalid_type(
                    unexpected(other),
                    &"an id (32 hex digits)",
                ))
            }
        };
        if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(text.to_ascii_lowercase()))
        } else {
            Err(D::Error::invalid_value(
                unexpected(&v),
                &"an id of 32 hex digits",
            ))
        }
    }
}

/// An integer: a JSON number or a string of digits (the console sends `"12"` as given).
pub(crate) fn int<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Integer,
{
    Int::deserialize(d).map(|i| i.0)
}

/// An optional [`int`].
pub(crate) fn opt_int<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Integer,
{
    Option::<Int<T>>::deserialize(d).map(|o| o.map(|i| i.0))
}

/// The integer types parameters use.
pub(crate) trait Integer: Sized + TryFrom<i64> + TryFrom<u64> + FromStr + Display {
    /// The range, for the error message.
    const RANGE: (&'static str, &'static str);
}

impl Integer for u64 {
    const RANGE: (&'static str, &'static str) = ("0", "18446744073709551615");
}

impl Integer for i64 {
    const RANGE: (&'static str, &'static str) = ("-9223372036854775808", "9223372036854775807");
}

impl Integer for u16 {
    const RANGE: (&'static str, &'static str) = ("0", "65535");
}

struct Int<T>(T);

impl<'de, T: Integer> Deserialize<'de> for Int<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let out_of_range = || {
            let (lo, hi) = T::RANGE;
            D::Error::invalid_value(
                unexpected(&v),
                &format!("an integer from {lo} to {hi}").as_str(),
            )
        };
        let n = match &v {
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => T::try_from(u).ok(),
                (None, Some(i)) => T::try_from(i).ok(),
                _ => return Err(D::Error::invalid_type(unexpected(&v), &"an integer")),
            },
            Value::String(s) => match s.trim().parse::<T>() {
                Ok(n) => Some(n),
                Err(_) if s.trim().parse::<i128>().is_ok() => None,
                Err(_) => return Err(D::Error::invalid_type(unexpected(&v), &"an integer")),
            },
            other => return Err(D::Error::invalid_type(unexpected(other), &"an integer")),
        };
        n.map(Self).ok_or_else(out_of_range)
    }
}

/// A boolean: `true`/`false`, or the strings `"true"`/`"false"`.
pub(crate) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Bool::deserialize(d).map(|b| b.0)
}

/// An optional [`boolean`].
pub(crate) fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Option::<Bool>::deserialize(d).map(|o| o.map(|b| b.0))
}

struct Bool(bool);

impl<'de> Deserialize<'de> for Bool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(Self(b)),
            Value::String(s) if s == "true" || s == "false" => Ok(Self(s == "true")),
            other => Err(D::Error::invalid_type(unexpected(&other), &"true or false")),
        }
    }
}

/// A list of names, or one name.
pub(crate) fn opt_names<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let expected = &"a list of names or one name";
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s])),
        Some(Value::Array(list)) => list
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(D::Error::invalid_type(unexpected(&other), expected)),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(other) => Err(D::Error::invalid_type(unexpected(&other), expected)),
    }
}

/// `fileMappings`: an object `{"/src": "/dst"}`, a list of `["/src", "/dst"]` pairs, or a
/// list of `{"srcPath", "destPath"}` objects; not empty.
pub(crate) fn mappings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Mapping>, D::Error> {
    const EXPECTED: &str = "an object {\"/src\": \"/dst\"}, a list of [src, dst] pairs or a list \
                            of {srcPath, destPath} objects";
    let bad = |v: &Value| D::Error::invalid_type(unexpected(v), &EXPECTED);
    let text = |v: Value| match v {
        Value::String(s) => Ok(s),
        other => Err(bad(&other)),
    };
    let out: Vec<Mapping> = match Value::deserialize(d)? {
        Value::Object(m) => m
            .into_iter()
            .map(|(source, t)| {
                Ok(Mapping {
                    source,
                    target: text(t)?,
                })
            })
            .collect::<Result<_, D::Error>>()?,
        Value::Array(list) => list
            .into_iter()
            .map(|item| match item {
                Value::Array(pair) if pair.len() == 2 => {
                    let mut pair = pair.into_iter();
                    let source = text(pair.next().unwrap_or(Value::Null))?;
                    let target = text(pair.next().unwrap_or(Value::Null))?;
                    Ok(Mapping { source, target })
                }
                Value::Object(mut o) => {
                    const FIELDS: &[&str] = &["srcPath", "destPath"];
                    if let Some(k) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
                        return Err(D::Error::unknown_field(k, FIELDS));
                    }
                    let mut field = |k: &'static str| match o.remove(k) {
                        Some(v) => text(v),
                        None => Err(D::Error::missing_field(k)),
                    };
                    let source = field("srcPath")?;
                    let target = field("destPath")?;
                    Ok(Mapping { source, target })
                }
                other => Err(bad(&other)),
            })
            .collect::<Result<_, D::Error>>()?,
        other => return Err(bad(&other)),
    };
    if out.is_empty() {
        return Err(D::Error::custom("must hold at least one mapping"));
    }
    Ok(out)
}

/// `clientPublicKey`: a string, or an object holding `clientPublicKey` as a string (what
/// another server's `getServerInfo` or the trust list gives; its other members are ignored).
pub(crate) fn client_key<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    const NAME: &str = "clientPublicKey";
    let expected = &"a public key in hex, or an object holding one as clientPublicKey";
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Object(mut o) => match o.remove(NAME) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(D::Error::invalid_type(unexpected(&other), expected)),
            None => Err(D::Error::missing_field(NAME)),
        },
        other => Err(D::Error::invalid_type(unexpected(&other), expected)),
    }
}

/// `recv.addAuthorizedClient`'s `clientPublicKey`: a key string, or an object holding it as
/// `clientPublicKey` and optionally the local user as `userName` (a string or `null`).
pub(crate) fn client_key_entry<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<(String, Option<String>), D::Error> {
    const USER: &str = "userName";
    let expected = &"a public key in hex, or an object holding one as clientPublicKey";
    match Value::deserialize(d)? {
        Value::String(s) => Ok((s, None)),
        Value::Object(mut o) => {
            let user = match o.remove(USER) {
                None | Some(Value::Null) => None,
                Some(Value::String(u)) => Some(u),
                Some(other) => {
                    return Err(D::Error::invalid_type(
                        unexpected(&other),
                        &"a user name (userName)",
                    ))
                }
            };
            let key = client_key(Value::Object(o)).map_err(D::Error::custom)?;
            Ok((key, user))
        }
        other => Err(D::Error::invalid_type(unexpected(&other), expected)),
    }
}

/// A data session's id: up to 16 hex digits on the wire (a `u64`).
pub(crate) mod hex_u64 {
    use super::*;

    /// Reads 1 to 16 hex digits.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let expected = &"16 hex digits";
        match Value::deserialize(d)? {
            Value::String(s)
                if (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                u64::from_str_radix(&s, 16)
                    .map_err(|_| D::Error::invalid_value(de::Unexpected::Str(&s), expected))
            }
            other => Err(D::Error::invalid_value(unexpected(&other), expected)),
        }
    }

    /// Writes 16 lowercase hex digits.
    pub(crate) fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }
}
