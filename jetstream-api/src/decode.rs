//! Decoding a request's parameters (a `serde_json::Value`) into a command's parameter struct,
//! with errors that say what is wrong as data, not as serde's text: a missing parameter, an
//! unknown one (with the names the command takes), a value of the wrong type (what was
//! expected and what was found), or a bad value.
//!
//! serde_json's own `Value` deserializer reports these as one formatted string; this one
//! builds [`Fault`]s, so that [`crate::ParamError`] can name the parameter and phrase the
//! message the same way for every command. [`serde_path_to_error`] supplies the parameter's
//! path (`paths[2].source`).

use std::fmt;

use serde::de::value::{MapDeserializer, SeqDeserializer, StringDeserializer};
use serde::de::{self, Deserializer, IntoDeserializer, Unexpected, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::Value;

/// What went wrong at one place in the parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A parameter the struct needs is absent.
    Missing(&'static str),
    /// A parameter the struct does not take.
    Unknown {
        /// Its name.
        name: String,
        /// The names the struct takes.
        expected: &'static [&'static str],
    },
    /// A value of the wrong JSON type: `expected` ("a string"), `found` ("integer `5`").
    Type { expected: String, found: String },
    /// Any other complaint about a value, phrased to follow "parameter "x": ".
    Value(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(name) => write!(f, "missing field `{name}`"),
            Self::Unknown { name, .. } => write!(f, "unknown field `{name}`"),
            Self::Type { expected, found } => write!(f, "must be {expected}, not {found}"),
            Self::Value(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Fault {}

impl de::Error for Fault {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::Value(msg.to_string())
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::Type {
            expected: exp.to_string(),
            found: found(unexp),
        }
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::invalid_type(unexp, exp)
    }

    fn missing_field(field: &'static str) -> Self {
        Self::Missing(field)
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self::Unknown {
            name: field.to_owned(),
            expected,
        }
    }
}

/// How a wrong value is shown: JSON's words (`null`, `an object`), not Rust's.
fn found(unexp: Unexpected<'_>) -> String {
    match unexp {
        Unexpected::Unit => "null".into(),
        Unexpected::Map => "an object".into(),
        Unexpected::Seq => "an array".into(),
        Unexpected::Str(s) if s.chars().count() > 40 => "a string".into(),
        Unexpected::Str(s) => format!("{s:?}"),
        Unexpected::Bool(b) => b.to_string(),
        Unexpected::Unsigned(n) => n.to_string(),
        Unexpected::Signed(n) => n.to_string(),
        Unexpected::Float(x) => x.to_string(),
        other => other.to_string(),
    }
}

/// A JSON value as a serde [`Deserializer`] whose errors are [`Fault`]s.
#[derive(Debug)]
pub(crate) struct ValueDe(pub(crate) Value);

impl IntoDeserializer<'_, Fault> for ValueDe {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for ValueDe {
    type Error = Fault;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fault> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    // serde_json's numbers are u64, i64 or f64 (no arbitrary precision here).
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(list) => {
                let mut seq = SeqDeserializer::new(list.into_iter().map(Self));
                let v = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(v)
            }
            Value::Object(map) => {
                let mut m = MapDeserializer::new(map.into_iter().map(|(k, v)| (k, Self(v))));
                let v = visitor.visit_map(&mut m)?;
                m.end()?;
                Ok(v)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fault> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            v => visitor.visit_some(Self(v)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Fault> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Fault> {
        // Only unit variants named by a string are used in parameters.
        match self.0 {
            Value::String(s) => {
                let d: StringDeserializer<Fault> = s.into_deserializer();
                visitor.visit_enum(d)
            }
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

/// What `v` is, for an error.
pub(crate) fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (None, Some(i)) => Unexpected::Signed(i),
            _ => Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}
