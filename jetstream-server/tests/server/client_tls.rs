//! The client's connection against the server's TLS socket: plain on loopback, TLS when
//! forced (both ends export the same keying material), pinned keys and the known-hosts file
//! (unknown, accepted and recorded, then changed). No server process: one connection per
//! configuration served from a thread with the server's own `tls::accept`.

use std::fs;
use std::io::{self, BufRead};
use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use jetstream_api::wire::{self, Request, Response};
use jetstream_client::client::{ApiClient, ClientError, ConnectOptions, Trust};
use jetstream_server::tls::{accept, Identity};
use serde_json::Value;

/// Serves one connection per config, in order: `echo` returns the parameters, `fail`
/// answers an error, `ekm` returns the exported keying material as hex.
fn serve(configs: Vec<Arc<rustls::ServerConfig>>) -> (u16, JoinHandle<Vec<bool>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut tls_flags = Vec::new();
        for config in configs {
            let (tcp, _) = listener.accept().unwrap();
            // Each connection of these tests ends well within 10 s.
            let until = std::time::Instant::now() + Duration::from_secs(10);
            let Ok(stream) = accept(tcp, &config, until) else {
                continue;
            };
            tls_flags.push(stream.is_tls());
            let mut r = io::BufReader::new(stream);
            let mut buf = Vec::new();
            while wire::read_line(&mut r, &mut buf).is_ok() {
                let req: Request = serde_json::from_slice(&buf).unwrap();
                let resp = match req.request.as_str() {
                    "fail" => Response::error("nope"),
                    "ekm" => {
                        let mut out = [0u8; 32];
                        r.get_ref()
                            .export_keying_material(b"test label", b"ctx", &mut out)
                            .unwrap();
                        Response::success("", Value::from(jetstream_client::tls::hex_encode(&out)))
                    }
                    _ => Response::success("ok", req.parameters),
                };
                wire::write_line(r.get_mut(), &resp).unwrap();
            }
            let _ = r.fill_buf();
        }
        tls_flags
    });
    (port, handle)
}

fn identity() -> (tempfile::TempDir, Identity) {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::load_or_create(dir.path()).unwrap();
    (dir, id)
}

fn opts(trust: Trust, force_tls: bool) -> ConnectOptions {
    ConnectOptions {
        client_identity: None,
        trust,
        timeout: Duration::from_secs(10),
        force_tls,
    }
}

#[test]
fn plain_on_loopback_and_tls_when_forced_with_equal_keying_material() {
    let (_d, a) = identity();
    let (port, server) = serve(vec![a.server_config(), a.server_config()]);

    let mut plain =
        ApiClient::connect("127.0.0.1", port, &opts(Trust::Pinned(None), false)).unwrap();
    assert!(!plain.is_tls());
    assert_eq!(plain.peer_public_key(), None);
    let params = serde_json::json!({"x": 1});
    assert_eq!(plain.call("echo", params.clone()).unwrap(), params);
    match plain.call("fail", Value::Null) {
        Err(ClientError::Api(m)) => assert_eq!(m.message, "nope"),
        other => panic!("{other:?}"),
    }
    assert!(plain
        .export_keying_material(b"l", b"c", &mut [0; 8])
        .is_err());
    drop(plain);

    let mut tls = ApiClient::connect("127.0.0.1", port, &opts(Trust::Pinned(None), true)).unwrap();
    assert!(tls.is_tls());
    assert_eq!(tls.peer_public_key(), Some(a.public_key()));
    assert_eq!(tls.call("echo", params.clone()).unwrap(), params);
    let mut mine = [0u8; 32];
    tls.export_keying_material(b"test label", b"ctx", &mut mine)
        .unwrap();
    let theirs = tls.call("ekm", Value::Null).unwrap();
    assert_eq!(
        theirs,
        Value::from(jetstream_client::tls::hex_encode(&mine))
    );
    drop(tls);

    assert_eq!(server.join().unwrap(), vec![false, true]);
}

#[test]
fn pinned_key_mismatch_is_refused() {
    let (_d, a) = identity();
    let (_e, b) = identity();
    let (port, server) = serve(vec![a.server_config(), a.server_config()]);
    let wrong = Trust::Pinned(Some(b.public_key().to_owned()));
    match ApiClient::connect("127.0.0.1", port, &opts(wrong, true)) {
        Err(ClientError::HostKeyChanged {
            expected_fingerprint,
            presented_fingerprint,
            file: None,
            ..
        }) => {
            assert_eq!(expected_fingerprint, b.fingerprint());
            assert_eq!(presented_fingerprint, a.fingerprint());
        }
        other => panic!("{other:?}"),
    }
    let right = Trust::Pinned(Some(a.public_key().to_uppercase()));
    let mut c = ApiClient::connect("127.0.0.1", port, &opts(right, true)).unwrap();
    assert_eq!(c.call("echo", Value::from(5)).unwrap(), Value::from(5));
    drop(c);
    assert_eq!(server.join().unwrap(), vec![true]);
}

#[test]
fn known_hosts_unknown_accept_new_then_changed() {
    let (_d, a) = identity();
    let (_e, b) = identity();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sub/known_hosts");
    let (port, server) = serve(vec![
        a.server_config(),
        a.server_config(),
        a.server_config(),
        b.server_config(),
    ]);
    let kh = |accept_new| Trust::KnownHosts {
        file: file.clone(),
        accept_new,
    };

    match ApiClient::connect("127.0.0.1", port, &opts(kh(false), true)) {
        Err(e @ ClientError::UnknownHost { .. }) => {
            let ClientError::UnknownHost { fingerprint, .. } = &e else {
                unreachable!()
            };
            assert_eq!(*fingerprint, a.fingerprint());
            assert!(e.to_string().contains("--accept-new-host"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!file.exists());

    let c = ApiClient::connect("127.0.0.1", port, &opts(kh(true), true)).unwrap();
    drop(c);
    let text = fs::read_to_string(&file).unwrap();
    assert_eq!(text, format!("127.0.0.1:{port} {}\n", a.public_key()));

    let c = ApiClient::connect("127.0.0.1", port, &opts(kh(false), true)).unwrap();
    drop(c);

    match ApiClient::connect("127.0.0.1", port, &opts(kh(true), true)) {
        Err(e @ ClientError::HostKeyChanged { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&b.fingerprint()), "{msg}");
            assert!(msg.contains(&a.fingerprint()), "{msg}");
            assert!(msg.contains("delete line 1 of"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fs::read_to_string(&file).unwrap(), text, "file unchanged");
    assert_eq!(server.join().unwrap(), vec![true, true]);
}

#[test]
fn connection_refused_names_the_port() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = ApiClient::connect("127.0.0.1", port, &opts(Trust::Pinned(None), false))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("running on port {port}")), "{err}");
}
