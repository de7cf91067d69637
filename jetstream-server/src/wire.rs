//! The control API's wire format: newline-delimited JSON, one request per line, one response
//! per line, on plain TCP (loopback only) or TLS.
//!
//! A request is `{"request": "send.createManifest", "parameters": {...}, "id": ...}` (`id`
//! optional, echoed back); a response is `{"status": "success" | "error", "message": "...",
//! "result": ..., "id": ...}`.

use std::fmt;
use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest request or response line accepted, in bytes (a manifest of many thousand
/// mappings fits; a client that never sends a newline cannot grow our memory past it).
pub const MAX_LINE: usize = 16 << 20;

/// One API request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    /// The command name, e.g. `getServerInfo`, `send.createTransfer`.
    pub request: String,
    /// Named parameters (an object; absent means none).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub parameters: Value,
    /// Opaque client value echoed in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
}

/// One API response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    /// `"success"` or `"error"`.
    pub status: String,
    /// Human-readable text.
    #[serde(default)]
    pub message: String,
    /// The command's result (`null` on error).
    #[serde(default)]
    pub result: Value,
    /// The request's `id`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
}

impl Response {
    /// A success response.
    pub fn success(message: impl Into<String>, result: Value) -> Self {
        Self {
            status: "success".into(),
            message: message.into(),
            result,
            id: None,
        }
    }

    /// An error response.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            status: "error".into(),
            message: message.into(),
            result: Value::Null,
            id: None,
        }
    }

    /// Whether `status` is `"success"`.
    pub fn is_success(&self) -> bool {
        self.status == "success"
    }
}

/// Why a line could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The peer closed the connection cleanly between lines.
    Closed,
    /// A line longer than [`MAX_LINE`].
    TooLong,
    /// The socket failed (or closed mid-line).
    Io(io::Error),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("connection closed"),
            Self::TooLong => write!(f, "line longer than {MAX_LINE} bytes"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Reads one line (without its `\n`) into `buf`, refusing lines over [`MAX_LINE`].
///
/// # Errors
/// [`FrameError::Closed`] at a clean end of stream, [`FrameError::TooLong`], or the I/O error.
pub fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> Result<(), FrameError> {
    buf.clear();
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FrameError::Io(e)),
        };
        if chunk.is_empty() {
            return if buf.is_empty() {
                Err(FrameError::Closed)
            } else {
                Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into()))
            };
        }
        let (used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let take = if done { used - 1 } else { used };
        if buf.len() + take > MAX_LINE {
            return Err(FrameError::TooLong);
        }
        buf.extend_from_slice(&chunk[..take]);
        r.consume(used);
        if done {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(());
        }
    }
}

/// Writes `value` as one JSON line and flushes.
///
/// # Errors
/// The I/O error.
pub fn write_line(w: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    w.write_all(&bytes)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_on_newline_and_strip_cr() {
        let mut r = io::BufReader::with_capacity(3, &b"{\"a\":1}\r\n{}\n"[..]);
        let mut buf = Vec::new();
        read_line(&mut r, &mut buf).unwrap();
        assert_eq!(buf, b"{\"a\":1}");
        read_line(&mut r, &mut buf).unwrap();
        assert_eq!(buf, b"{}");
        assert!(matches!(
            read_line(&mut r, &mut buf),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn a_line_cut_by_eof_is_an_error_not_a_request() {
        let mut r = io::BufReader::new(&b"{\"request\":"[..]);
        let mut buf = Vec::new();
        assert!(matches!(
            read_line(&mut r, &mut buf),
            Err(FrameError::Io(_))
        ));
    }

    #[test]
    fn request_round_trips_and_id_is_optional() {
        let r: Request = serde_json::from_str(r#"{"request":"echo"}"#).unwrap();
        assert_eq!(r.request, "echo");
        assert!(r.parameters.is_null() && r.id.is_none());
        let s = serde_json::to_string(&Response::error("nope")).unwrap();
        assert_eq!(s, r#"{"status":"error","message":"nope","result":null}"#);
    }
}
