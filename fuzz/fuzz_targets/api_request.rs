//! The control API's request layer without a server: line framing (`wire::read_line`), request
//! parsing (`api::parse_request`), and the pure parameter parsers and validators the commands
//! use (`Params`, `parse_mappings`, `Limits::updated`, `gc::updated`, `expiry`, cipher names,
//! `clean_relative`), chosen by the command name as `commands::dispatch` would.
//!
//! Input: the first byte sets the reader's buffer size (1..=64, so lines cross buffer
//! boundaries), the rest is the byte stream a client sends.
//!
//! Must never panic. Oracles: a read line never holds `\n` and never exceeds `MAX_LINE`; an
//! error is an error response; every response (with the request's `id` echoed) is one JSON line
//! that reads back with the same status and `id`; an accepted request re-serialises to a line
//! that parses to the same command; an accepted id is 32 lowercase hex digits; accepted
//! bandwidth limits round-trip through their view; an accepted expiry is in the future.

#![no_main]

use std::io::BufReader;

use jetstream_server::sandbox::clean_relative;
use jetstream_server::server::api::parse_request;
use jetstream_server::server::bandwidth::Limits;
use jetstream_server::server::params::Params;
use jetstream_server::server::{ciphers, commands, gc, manifests};
use jetstream_server::wire::{self, FrameError, Response, MAX_LINE};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Parameter names the commands read (reference §3), tried on every request.
const NAMES: &[&str] = &[
    "id",
    "destinationId",
    "manifestId",
    "transferId",
    "requestId",
    "token",
    "userName",
    "username",
    "password",
    "tokenPassword",
    "path",
    "destinationPath",
    "address",
    "port",
    "cipher",
    "expiryTime",
    "expirySeconds",
    "intervalSeconds",
    "timeLimitSeconds",
    "rate",
    "event",
    "status",
    "errorMessage",
    "fileMappings",
    "permissions",
];

const NOW_US: i64 = 1_700_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&cap, stream)) = data.split_first() else {
        return;
    };
    let mut reader = BufReader::with_capacity(usize::from(cap % 64) + 1, stream);
    let mut line = Vec::new();
    loop {
        match wire::read_line(&mut reader, &mut line) {
            Ok(()) => {}
            Err(FrameError::Closed | FrameError::Io(_)) => break,
            Err(FrameError::TooLong) => panic!("no input is longer than MAX_LINE"),
        }
        assert!(line.len() <= MAX_LINE && !line.contains(&b'\n'));
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        handle(&line);
    }
});

fn handle(line: &[u8]) {
    let (req, params) = match parse_request(line) {
        Ok(r) => r,
        Err(response) => {
            assert!(!response.is_success());
            round_trip(&response);
            return;
        }
    };
    let again = serde_json::to_vec(&req).expect("a parsed request serialises");
    let (req2, _) = parse_request(&again).expect("a serialised request parses again");
    assert_eq!(req.request, req2.request);
    assert!(
        same(req.id.as_ref(), req2.id.as_ref()),
        "{:?} {:?}",
        req.id,
        req2.id
    );

    let mut response = match params.as_object() {
        Some(_) => match validate(&req.request, &params) {
            Ok(()) => Response::success(format!("{} parameters accepted", req.request), params),
            Err(message) => Response::error(message),
        },
        None => Response::error("bad request: \"parameters\" must be an object"),
    };
    response.id = req.id;
    round_trip(&response);
}

/// What `dispatch` and the command handlers check before touching any server state.
fn validate(name: &str, params: &Value) -> Result<(), String> {
    let p = Params(params);
    let known = commands::is_known(name);
    if known && !name.ends_with("Async") {
        assert!(commands::is_known(&format!("{name}Async")), "{name:?}");
    }
    let keys: Vec<String> = params
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    for n in keys.iter().map(String::as_str).chain(NAMES.iter().copied()) {
        let _ = p.str(n);
        let _ = p.opt_str(n);
        let _ = p.opt_text(n);
        let _ = p.opt_bool(n);
        let _ = p.value(n);
        if let Ok(id) = p.id(n) {
            assert!(
                id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "{id:?}"
            );
        }
        match (p.opt_i64(n), p.opt_u64(n)) {
            (Ok(Some(i)), Ok(Some(u))) => assert_eq!(u64::try_from(i).ok(), Some(u)),
            (Ok(Some(i)), Err(_)) => assert!(i < 0),
            (Err(_), Ok(_)) => panic!("opt_u64 accepted what opt_i64 refused: {n:?}"),
            _ => {}
        }
    }
    if !known {
        return Err(format!("unknown command {name:?}"));
    }
    let err = |e: jetstream_server::server::api::ApiError| e.0;
    match name.strip_suffix("Async").unwrap_or(name) {
        "send.createManifest" => {
            let mappings = manifests::parse_mappings(p.value("fileMappings")).map_err(err)?;
            assert!(!mappings.is_empty());
            for (_, dest) in &mappings {
                clean_relative(dest).map_err(|e| e.to_string())?;
            }
        }
        "updateBandwidthLimits" => {
            let limits = Limits::default().updated(params)?;
            assert_eq!(Limits::default().updated(&limits.view()), Ok(limits));
        }
        "updateGarbageCollectSettings" => {
            let current = gc::GcSettings {
                interval_seconds: 60,
                time_limit_seconds: 3600,
            };
            let s = gc::updated(
                current,
                p.opt_u64("intervalSeconds").map_err(err)?,
                p.opt_u64("timeLimitSeconds").map_err(err)?,
            )?;
            assert!(s.interval_seconds >= 1);
        }
        "createAPIToken" | "send.createSharedToken" => {
            if let Some(t) = commands::expiry(p, NOW_US, name).map_err(err)? {
                assert!(t > NOW_US);
            }
            if let Some(path) = p.opt_str("path").map_err(err)? {
                clean_relative(path).map_err(|e| e.to_string())?;
            }
        }
        "send.createTransfer" => {
            if let Some(d) = p.opt_str("destinationPath").map_err(err)? {
                clean_relative(d).map_err(|e| e.to_string())?;
            }
        }
        _ => {}
    }
    if let Some(c) = p.opt_str("cipher").map_err(err)? {
        let cipher = ciphers::parse(c)?;
        assert_eq!(cipher.name(), c);
    }
    Ok(())
}

/// A response is one JSON line that reads back with the same status and id.
fn round_trip(response: &Response) {
    let mut out = Vec::new();
    wire::write_line(&mut out, response).expect("writing to a Vec cannot fail");
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    assert_eq!(out.last(), Some(&b'\n'));
    let mut r = BufReader::new(&out[..]);
    let mut line = Vec::new();
    wire::read_line(&mut r, &mut line).expect("the line reads back");
    let back: Response = serde_json::from_slice(&line).expect("the response parses");
    assert_eq!(back.status, response.status);
    assert!(
        same(back.id.as_ref(), response.id.as_ref()),
        "{:?} {:?}",
        back.id,
        response.id
    );
    assert_eq!(back.message, response.message);
}

/// Equal, except that floats may differ in their last bits: serde_json (without its
/// `float_roundtrip` feature) may parse a long decimal to a neighbouring f64, so a huge numeric
/// `id` can come back one ulp off. Everything else must be exact.
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-14,
                _ => false,
            }
        }
        _ => a == b,
    }
}
