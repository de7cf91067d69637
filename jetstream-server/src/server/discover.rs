//! Discovery packets (reference §3.2, §7.9): `sendDiscoverPacketAsync` and
//! `recvDiscoverPacketAsync` let two servers test UDP reachability before a transfer, with a
//! clear result when the path is blocked.
//!
//! The probes and echoes are the engine's discovery datagrams
//! ([`EngineHandle::send_discovery`]): 25 bytes with a random 16-byte nonce, answered by any
//! JetStream engine with an echo of the same nonce, outside any session. Both functions run
//! on a request thread of their own ([`Server::spawn_request`]) and poll the engines' rings of
//! received discovery datagrams every 20 ms.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jetstream_api::params::{RecvDiscoverPacket, SendDiscoverPacket};
use jetstream_api::types as api;
use jetstream_core::{Discovery, EngineHandle};
use serde_json::Value;

use super::api::ApiError;
use super::objects::to_json;
use super::Server;

/// The UDP port probed when the caller names none (the reference's default data port).
const DEFAULT_PORT: u16 = 8886;
/// Probes sent by default.
const DEFAULT_COUNT: u64 = 3;
/// At most this many probes per call.
const MAX_COUNT: u64 = 100;
/// Default wait of `send` for an echo.
const DEFAULT_SEND_TIMEOUT_MS: u64 = 3000;
/// Default wait of `recv` for a probe.
const DEFAULT_RECV_TIMEOUT_MS: u64 = 10_000;
/// Longest wait either accepts (10 minutes).
const MAX_TIMEOUT_MS: u64 = 600_000;
/// Time between two probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// Time between two looks at the engines' discovery rings.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// `sendDiscoverPacketAsync`: sends `count` probes (default 3, 100 ms apart; no more once the
/// echo is in) from the sending engine to UDP `address:port` (default port 8886) and waits up
/// to `timeoutMs` (default 3000) for the echo.
///
/// The result is `{"nonce", "address", "port", "sent", "echoed", "roundTripMs", "message"}`:
/// `address` is the resolved IP, `sent` the probes actually sent, `roundTripMs` the time from
/// the first probe to the echo (`null` without an echo; an upper bound when the first probe
/// was lost). No echo is a successful check with `echoed: false` and a message saying the path
/// is blocked or nothing listens there.
///
/// # Errors
/// Bad or missing parameters, a host name that does not resolve, a stopped engine or server.
pub fn send(server: &Arc<Server>, p: &SendDiscoverPacket) -> Result<(String, Value), ApiError> {
    let host = p.address.as_str();
    let port = match p.port {
        None => DEFAULT_PORT,
        Some(0) => {
            return Err(ApiError::new(
                "parameter \"port\" must be a UDP port (1-65535)".into(),
            ))
        }
        Some(n) => n,
    };
    let count = p.count.unwrap_or(DEFAULT_COUNT);
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(ApiError::new(format!(
            "parameter \"count\" must be between 1 and {MAX_COUNT}"
        )));
    }
    let timeout = timeout_param(p.timeout_ms, DEFAULT_SEND_TIMEOUT_MS)?;
    let engine = server.send_engine();
    let local = engine.info().map_err(engine_error)?.local_addr;
    let to = resolve(host, port, local)?;
    let nonce = super::objects::random_bytes::<16>();

    let start = Instant::now();
    let deadline = start + timeout;
    let mut sent = 0u64;
    let mut next_probe = start;
    let mut send_error: Option<String> = None;
    let echo = loop {
        let now = Instant::now();
        if sent < count && now >= next_probe {
            match engine.send_discovery(to, nonce) {
                Ok(()) => {}
                Err(jetstream_core::Error::EngineStopped) => {
                    return Err(engine_error(jetstream_core::Error::EngineStopped))
                }
                // No route, link down and the like: that is the answer, not an API error.
                Err(e) => send_error = Some(e.to_string()),
            }
            sent += 1;
            next_probe += PROBE_INTERVAL;
        }
        let found = engine
            .discoveries()
            .map_err(engine_error)?
            .into_iter()
            .find(|d| d.echo && d.nonce == nonce && d.at >= start);
        if found.is_some() || now >= deadline || server.is_stopping() {
            break found;
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline.saturating_duration_since(now)));
    };

    let round_trip = echo
        .as_ref()
        .map(|d| u64::try_from(d.at.duration_since(start).as_millis()).unwrap_or(u64::MAX));
    let message = match round_trip {
        Some(ms) => format!("UDP {to} answered in {ms} ms"),
        None => {
            let mut m = format!(
                "no answer from UDP {to} within {}: the path is blocked or no JetStream server \
                 listens there",
                human(timeout)
            );
            if let Some(e) = send_error {
                m.push_str(&format!(" (sending failed: {e})"));
            }
            m
        }
    };
    let result = api::SendDiscoverResult {
        nonce: hex(&nonce),
        address: to.ip(),
        port: to.port(),
        sent,
        echoed: echo.is_some(),
        round_trip_ms: round_trip,
        message: message.clone(),
    };
    Ok((message, to_json(&result)))
}

/// `recvDiscoverPacketAsync`: waits up to `timeoutMs` (default 10000) for a discovery probe
/// received after the call started on any of the server's UDP ports, with the given `nonce`
/// (32 hex characters) and from `sourceAddress` (an IP or a host name) when they are given.
///
/// The result is `{"received", "sourceIP", "sourcePort", "nonce", "message"}` (`null`s when
/// nothing arrived; `received: false` is a successful check, not an error).
///
/// # Errors
/// Bad parameters, a `sourceAddress` that does not resolve, a stopped engine or server.
pub fn recv(server: &Arc<Server>, p: &RecvDiscoverPacket) -> Result<(String, Value), ApiError> {
    let timeout = timeout_param(p.timeout_ms, DEFAULT_RECV_TIMEOUT_MS)?;
    let nonce = match &p.nonce {
        None => None,
        Some(s) => Some(unhex(s).ok_or_else(|| {
            ApiError::new("parameter \"nonce\" must be 32 hex characters".into())
        })?),
    };
    let sources: Option<BTreeSet<IpAddr>> = match &p.source_address {
        None => None,
        Some(s) => Some(
            (s.as_str(), 0)
                .to_socket_addrs()
                .map_err(|e| ApiError::new(format!("cannot resolve {s:?}: {e}")))?
                .map(|a| a.ip().to_canonical())
                .collect(),
        ),
    };
    let start = Instant::now();
    let deadline = start + timeout;
    let engines = engines(server)?;
    let matches = |d: &Discovery| {
        !d.echo
            && d.at >= start
            && nonce.is_none_or(|n| n == d.nonce)
            && sources
                .as_ref()
                .is_none_or(|s| s.contains(&d.from.ip().to_canonical()))
    };
    let found = loop {
        let mut found = None;
        for e in &engines {
            found = e
                .discoveries()
                .map_err(engine_error)?
                .into_iter()
                .find(matches);
            if found.is_some() {
                break;
            }
        }
        let now = Instant::now();
        if found.is_some() || now >= deadline || server.is_stopping() {
            break found;
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline.saturating_duration_since(now)));
    };
    let ports = ports(server);
    let (message, result) = match found {
        Some(d) => {
            let m = format!("discovery probe from UDP {} received", d.from);
            let r = api::RecvDiscoverResult {
                received: true,
                source_ip: Some(d.from.ip().to_canonical()),
                source_port: Some(d.from.port()),
                nonce: Some(hex(&d.nonce)),
                message: m.clone(),
            };
            (m, r)
        }
        None => {
            let mut what = String::from("no discovery probe");
            if let Some(s) = &p.source_address {
                what.push_str(&format!(" from {s}"));
            }
            if nonce.is_some() {
                what.push_str(" with that nonce");
            }
            let m = format!(
                "{what} arrived on UDP port {ports} within {}: the path from the sender is \
                 blocked, or nothing was sent",
                human(timeout)
            );
            let r = api::RecvDiscoverResult {
                received: false,
                source_ip: None,
                source_port: None,
                nonce: nonce.as_ref().map(hex),
                message: m.clone(),
            };
            (m, r)
        }
    };
    Ok((message, to_json(&result)))
}

/// Every receiving engine of the server (one per `--recv-port`).
fn engines(server: &Server) -> Result<Vec<EngineHandle>, ApiError> {
    Ok(server.receive_engines().to_vec())
}

/// The server's UDP ports, e.g. `8886` or `8886, 8887`.
fn ports(server: &Server) -> String {
    server
        .recv_addrs
        .iter()
        .map(|a| a.port().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn timeout_param(timeout_ms: Option<u64>, default_ms: u64) -> Result<Duration, ApiError> {
    let ms = timeout_ms.unwrap_or(default_ms);
    if ms > MAX_TIMEOUT_MS {
        return Err(ApiError::new(format!(
            "parameter \"timeoutMs\" must be at most {MAX_TIMEOUT_MS}"
        )));
    }
    Ok(Duration::from_millis(ms))
}

/// Resolves `host`, preferring an address of the engine socket's family (an IPv4 socket
/// cannot reach an IPv6 address).
fn resolve(host: &str, port: u16, local: SocketAddr) -> Result<SocketAddr, ApiError> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| ApiError::new(format!("cannot resolve {host:?}: {e}")))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| ApiError::new(format!("{host:?} has no address")))
}

fn engine_error(e: jetstream_core::Error) -> ApiError {
    ApiError::internal("reaching the UDP engine", e)
}

/// `3 s` for whole seconds, else `1500 ms`.
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

fn hex(b: &[u8; 16]) -> String {
    super::objects::hex(b)
}

fn unhex(s: &str) -> Option<[u8; 16]> {
    let s = s.as_bytes();
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        // Two hex digits are at most 0xff.
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let n = *b"\x00\x01\xfeABCDEFGHIJKLM";
        assert_eq!(unhex(&hex(&n)), Some(n));
        assert_eq!(unhex(&hex(&n).to_uppercase()), Some(n));
        assert_eq!(unhex("00"), None);
        assert_eq!(unhex(&"zz".repeat(16)), None);
        assert_eq!(unhex(&"é".repeat(16)), None);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_secs(3)), "3 s");
        assert_eq!(human(Duration::from_millis(1500)), "1500 ms");
    }

    #[test]
    fn resolution_prefers_the_socket_family() {
        let v4: SocketAddr = "0.0.0.0:1".parse().unwrap();
        assert_eq!(
            resolve("127.0.0.1", 9, v4).unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert!(resolve("no-such-host.invalid", 9, v4).is_err());
    }
}
