//! The control API's request layer without a server: line framing (`wire::read_line`), request
//! parsing (`api::parse_request`), the typed decoding every command's parameters go through
//! (`jetstream_api::lookup` and `Request::decode`, as `commands::dispatch` does), and the pure
//! checks the handlers then make on the decoded values (`Limits::updated`, `gc::updated`,
//! `expiry`, cipher names, `clean_relative`).
//!
//! Input: the first byte sets the reader's buffer size (1..=64, so lines cross buffer
//! boundaries), the rest is the byte stream a client sends.
//!
//! Must never panic. Oracles: a read line never holds `\n` and never exceeds `MAX_LINE`; an
//! error is an error response; every response (with the request's `id` echoed) is one JSON line
//! that reads back with the same status and `id`; an accepted request re-serialises to a line
//! that parses to the same command; a decoded request is of the command looked up, and its
//! parameters as a client sends them decode to the same request; a refusal names the command's
//! parameter when it is about one; accepted bandwidth limits round-trip through their view; an
//! accepted expiry is in the future.

#![no_main]

use std::io::BufReader;

use jetstream_api::{ParamError, Request};
use jetstream_server::sandbox::clean_relative;
use jetstream_server::server::api::parse_request;
use jetstream_server::server::bandwidth::Limits;
use jetstream_server::server::{ciphers, commands, gc};
use jetstream_server::wire::{self, FrameError, Response, MAX_LINE};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

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

    let mut response = match validate(&req.request, params.clone()) {
        Ok(()) => Response::success(format!("{} parameters accepted", req.request), params),
        Err(message) => Response::error(message),
    };
    response.id = req.id;
    round_trip(&response);
}

/// What `dispatch` and the command handlers check before touching any server state.
fn validate(name: &str, params: Value) -> Result<(), String> {
    let Some((meta, _is_async)) = jetstream_api::lookup(name) else {
        return Err(format!("unknown command {name:?}"));
    };
    let request = match Request::decode(meta.name, params) {
        Ok(r) => r,
        Err(e) => {
            if let Some(p) = e.parameter() {
                // An unknown parameter is named as the client wrote it (`""` included); a
                // missing or invalid one is one of the command's own, never empty.
                assert!(matches!(e, ParamError::Unknown { .. }) || !p.is_empty(), "{e:?}");
            }
            assert!(!matches!(e, ParamError::UnknownCommand(_)), "{e:?}");
            return Err(e.to_string());
        }
    };
    assert_eq!(request.meta().name, meta.name);
    // What a client would send for this request decodes to the same request.
    let sent = request.to_parameters().expect("parameters serialise");
    let back = Request::decode(meta.name, sent).expect("sent parameters decode");
    assert_eq!(back, request);

    match &request {
        Request::CreateManifest(p) => {
            assert!(!p.file_mappings.is_empty());
            for m in &p.file_mappings {
                clean_relative(&m.target).map_err(|e| e.to_string())?;
            }
        }
        Request::UpdateBandwidthLimits(p) => {
            let limits = Limits::default().updated(p);
            let view: jetstream_api::params::UpdateBandwidthLimits =
                serde_json::from_value(limits.view()).expect("the view is a full update");
            assert_eq!(Limits::default().updated(&view), limits);
        }
        Request::UpdateGarbageCollectSettings(p) => {
            let current = gc::GcSettings {
                interval_seconds: 60,
                time_limit_seconds: 3600,
            };
            let s = gc::updated(current, p.interval_seconds, p.time_limit_seconds)?;
            assert!(s.interval_seconds >= 1);
        }
        Request::CreateApiToken(p) => {
            expiry_is_future(p.expiry_time, p.expiry_seconds, name)?;
            if let Some(path) = &p.path {
                clean_relative(path).map_err(|e| e.to_string())?;
            }
        }
        Request::CreateSharedToken(p) => expiry_is_future(p.expiry_time, p.expiry_seconds, name)?,
        Request::CreateTransfer(p) => {
            if let Some(d) = &p.destination_path {
                clean_relative(d).map_err(|e| e.to_string())?;
            }
        }
        Request::StartReceive(p) => cipher(p.cipher.as_deref())?,
        Request::StartDownload(p) => cipher(p.cipher.as_deref())?,
        _ => {}
    }
    Ok(())
}

fn expiry_is_future(time: Option<i64>, seconds: Option<i64>, name: &str) -> Result<(), String> {
    if let Some(t) = commands::expiry(time, seconds, NOW_US, name).map_err(|e| e.message)? {
        assert!(t > NOW_US);
    }
    Ok(())
}

fn cipher(name: Option<&str>) -> Result<(), String> {
    if let Some(c) = name {
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
