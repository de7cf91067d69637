//! How a token is shown where it must not appear in full (`Debug`, messages, the event log).

use std::fmt;

/// A token's first 6 characters and `…`: enough to tell tokens apart, far too little to use
/// one.
pub fn shown_token(token: &str) -> String {
    let end = token.char_indices().nth(6).map_or(token.len(), |(i, _)| i);
    format!("{}…", &token[..end])
}

/// `Debug` of an optional token: `Some("abcdef…")` or `None`.
pub struct ShownTokenOpt<'a>(pub &'a Option<String>);

impl fmt::Debug for ShownTokenOpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(t) => write!(f, "Some({:?})", shown_token(t)),
            None => f.write_str("None"),
        }
    }
}
