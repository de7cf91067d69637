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
/// mappings fits; a client that never sends a newline cannot grow our memory past it). The
/// server takes requests this long only from a logged-in client.
pub const MAX_LINE: usize = 16 << 20;

/// Longest request line the server takes from a client that has not logged in: every command
/// allowed then (`auth`, `authToken`, `getServerInfo`, `echo`) fits in a few hundred bytes, and
/// an anonymous client must not make the server buffer and parse megabytes.
pub const MAX_LINE_BEFORE_LOGIN: usize = 8 << 10;

/// Most JSON values (arrays, objects, and their elements) one request may hold: 524,288.
/// Parsed, each costs 32 bytes or more however short its text (`[],` is 3 bytes; an object
/// member ~150 bytes), so the line cap alone let a 16 MiB request take ~360 MiB; with this
/// bound parsing one request takes at most ~80 MiB (measured). A `createManifest` of 100,000
/// mappings holds ~100,000 values.
pub const MAX_VALUES: usize = 1 << 19;

/// The number of JSON values in `line` if it is valid JSON (one, plus one per `,` and per
/// non-empty array or object, outside strings), counted without parsing, in one pass.
pub fn count_values(line: &[u8]) -> usize {
    let (mut n, mut in_string, mut escaped, mut opened) = (1, false, false, false);
    for &b in line {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        if b.is_ascii_whitespace() {
            continue;
        }
        if std::mem::take(&mut opened) && b != b']' && b != b'}' {
            // The first element of a non-empty array or object.
            n += 1;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => opened = true,
            b',' => n += 1,
            _ => {}
        }
    }
    n
}

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
    /// An error's kind (`errorCode`; absent on success, and from servers before error codes).
    #[serde(default, rename = "errorCode", skip_serializing_if = "Option::is_none")]
    pub error_code: Option<crate::ErrorKind>,
}

impl Response {
    /// A success response.
    pub fn success(message: impl Into<String>, result: Value) -> Self {
        Self {
            status: "success".into(),
            message: message.into(),
            result,
            id: None,
            error_code: None,
        }
    }

    /// An error response of kind [`crate::ErrorKind::Failed`].
    pub fn error(message: impl Into<String>) -> Self {
        Self::refused(crate::ErrorKind::Failed, message)
    }

    /// An error response of kind `kind`.
    pub fn refused(kind: crate::ErrorKind, message: impl Into<String>) -> Self {
        Self {
            status: "error".into(),
            message: message.into(),
            result: Value::Null,
            id: None,
            error_code: Some(kind),
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

/// Reads one line (without its `\n`) into `buf`, refusing lines over [`MAX_LINE`] (the rest
/// of such a line is left unread).
///
/// # Errors
/// [`FrameError::Closed`] at a clean end of stream, [`FrameError::TooLong`], or the I/O error.
pub fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> Result<(), FrameError> {
    read_line_at_most(r, buf, MAX_LINE, false)
}

/// Reads one request line (without its `\n`) of at most `max` bytes into `buf`. A longer
/// line is not kept: the part beyond `max` is read and dropped as it arrives, up to and
/// including its newline, so that the next line can be read (the reader stays in step with
/// the client) and memory never holds more than `max` bytes of it.
///
/// # Errors
/// [`FrameError::TooLong`] once a longer line has been read to its end (`buf` is then
/// empty); [`FrameError::Closed`] at a clean end of stream; the I/O error (also for a stream
/// that ends inside a line).
pub fn read_request_line(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<(), FrameError> {
    read_line_at_most(r, buf, max, true)
}

fn read_line_at_most(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
    skip_long: bool,
) -> Result<(), FrameError> {
    buf.clear();
    let mut too_long = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FrameError::Io(e)),
        };
        if chunk.is_empty() {
            return if buf.is_empty() && !too_long {
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
        if too_long || buf.len() + take > max {
            if !skip_long {
                return Err(FrameError::TooLong);
            }
            // Dropped as it arrives: the line is never buffered, however long.
            if !too_long {
                too_long = true;
                *buf = Vec::new();
            }
            r.consume(used);
            if done {
                return Err(FrameError::TooLong);
            }
            continue;
        }
        let need = buf.len() + take;
        if need > buf.capacity() {
            // Doubling as `extend` would, but never past `max`: a line of `max` bytes holds
            // `max` bytes, not twice that.
            let target = (buf.capacity() * 2).max(need).min(max);
            buf.reserve_exact(target - buf.len());
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
    fn long_request_lines_are_dropped_through_their_newline_without_buffering() {
        let mut input = vec![b'x'; 100_000];
        input.extend_from_slice(b"\n{\"request\":\"echo\"}\n");
        let mut r = io::BufReader::with_capacity(1024, &input[..]);
        let mut buf = Vec::new();
        assert!(matches!(
            read_request_line(&mut r, &mut buf, 64),
            Err(FrameError::TooLong)
        ));
        assert!(buf.capacity() <= 64, "kept {} bytes", buf.capacity());
        // The next line is read whole: the reader stayed in step.
        read_request_line(&mut r, &mut buf, 64).unwrap();
        assert_eq!(buf, br#"{"request":"echo"}"#);
        // Exactly `max` bytes is allowed; a long line cut by the end of the stream is an error.
        let mut r = io::BufReader::new(&b"abcd\nabcde"[..]);
        read_request_line(&mut r, &mut buf, 4).unwrap();
        assert_eq!(buf, b"abcd");
        assert!(matches!(
            read_request_line(&mut r, &mut buf, 4),
            Err(FrameError::Io(_))
        ));
    }

    #[test]
    fn values_are_counted_outside_strings_only() {
        assert_eq!(count_values(b"1"), 1);
        // The object, [1,2], 1, 2, {}.
        assert_eq!(count_values(br#"{"a": [1, 2], "b": {}}"#), 5);
        assert_eq!(count_values(br#"[ ]"#), 1);
        assert_eq!(count_values(br#"["[{,", "\"[,", 3]"#), 4);
        let mut many = b"[".to_vec();
        many.extend_from_slice(&b"[],".repeat(1000));
        many.extend_from_slice(b"{}]");
        assert_eq!(count_values(&many), 1002);
        for text in [
            r#"{"a": [1, [2, {"b": null}]], "c": "x,y"}"#,
            "[[[]], {}, 0]",
        ] {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(count_values(text.as_bytes()), values_in(&v), "{text}");
        }
    }

    fn values_in(v: &serde_json::Value) -> usize {
        1 + match v {
            serde_json::Value::Array(a) => a.iter().map(values_in).sum(),
            serde_json::Value::Object(o) => o.values().map(values_in).sum(),
            _ => 0,
        }
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
        assert_eq!(
            s,
            r#"{"status":"error","message":"nope","result":null,"errorCode":"failed"}"#
        );
        // A success carries no errorCode; an answer from a server before error codes reads.
        let ok = serde_json::to_string(&Response::success("ok", Value::Null)).unwrap();
        assert!(!ok.contains("errorCode"), "{ok}");
        let old: Response =
            serde_json::from_str(r#"{"status":"error","message":"nope","result":null}"#).unwrap();
        assert_eq!(old.error_code, None);
    }
}
