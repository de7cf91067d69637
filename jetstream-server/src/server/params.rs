//! Typed access to a request's `parameters`, with errors that name the parameter.

use serde_json::Value;

use super::api::ApiError;

/// A request's parameters (always an object).
#[derive(Debug, Clone, Copy)]
pub struct Params<'a>(pub &'a Value);

impl<'a> Params<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A required string.
    ///
    /// # Errors
    /// Missing or not a string.
    pub fn str(&self, name: &str) -> Result<&'a str, ApiError> {
        self.opt_str(name)?
            .ok_or_else(|| ApiError(format!("missing parameter {name:?}")))
    }

    /// An optional string.
    ///
    /// # Errors
    /// Present but not a string.
    pub fn opt_str(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ApiError(format!(
                "parameter {name:?} must be a string, not {}",
                kind(other)
            ))),
        }
    }

    /// An optional string or number given as text (ids typed by people).
    ///
    /// # Errors
    /// Present but neither.
    pub fn opt_text(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(ApiError(format!(
                "parameter {name:?} must be a string, not {}",
                kind(other)
            ))),
        }
    }

    /// A required id (32 hex characters, case-insensitive), lowercased.
    ///
    /// # Errors
    /// Missing or malformed.
    pub fn id(&self, name: &str) -> Result<String, ApiError> {
        let s = self
            .opt_text(name)?
            .ok_or_else(|| ApiError(format!("missing parameter {name:?}")))?;
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(s.to_ascii_lowercase())
        } else {
            Err(ApiError(format!(
                "parameter {name:?} must be an id of 32 hex characters"
            )))
        }
    }

    /// An optional integer (a JSON number, or a string of digits from the console).
    ///
    /// # Errors
    /// Present but not an integer.
    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError(format!("parameter {name:?} must be an integer"))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ApiError(format!("parameter {name:?} must be an integer"))),
            Some(other) => Err(ApiError(format!(
                "parameter {name:?} must be an integer, not {}",
                kind(other)
            ))),
        }
    }

    /// An optional non-negative integer.
    ///
    /// # Errors
    /// Present but not a non-negative integer.
    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.opt_i64(name)? {
            None => Ok(None),
            Some(v) => u64::try_from(v)
                .map(Some)
                .map_err(|_| ApiError(format!("parameter {name:?} must not be negative"))),
        }
    }

    /// An optional boolean (JSON bool or "true"/"false").
    ///
    /// # Errors
    /// Present but not a boolean.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
            Some(other) => Err(ApiError(format!(
                "parameter {name:?} must be true or false, not {}",
                kind(other)
            ))),
        }
    }

    /// A raw value.
    pub fn value(&self, name: &str) -> Option<&'a Value> {
        self.get(name)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_parameter_and_the_type() {
        let v =
            json!({"a": 1, "b": "x", "c": "12", "d": -1, "id": "ABCDEF0123456789abcdef0123456789"});
        let p = Params(&v);
        assert_eq!(
            p.str("a").unwrap_err().0,
            "parameter \"a\" must be a string, not a number"
        );
        assert_eq!(p.str("zz").unwrap_err().0, "missing parameter \"zz\"");
        assert_eq!(p.opt_i64("c").unwrap(), Some(12));
        assert!(p.opt_i64("b").is_err());
        assert!(p.opt_u64("d").is_err());
        assert_eq!(p.id("id").unwrap(), "abcdef0123456789abcdef0123456789");
        assert!(p.id("b").is_err());
    }
}
