//! The typed client (`jetstream_client`, the `jetstream_api::Api` methods) against a real
//! server: log in, create a destination and read it back, a refusal as a typed server error,
//! a result of the wrong type as a typed decode error naming the command, an async call.

use jetstream_api::params::{Auth, CreateDestination, Echo, GetDestination, GetRequestResult};
use jetstream_api::{Api, Command, Meta};
use jetstream_client::client::ClientError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::util::*;

#[test]
#[ignore = "needs root: system users (PAM)"]
fn typed_calls_create_read_and_refuse() {
    if !can_run() {
        return;
    }
    let dir = scratch();
    let s = Srv::start(dir.path(), "s", &[]);
    let (u, pw) = user();
    let mut c = s.client();
    c.auth(&Auth {
        user_name: u.name().to_owned(),
        password: pw.as_str().into(),
    })
    .expect("typed auth");

    let created = c
        .create_destination(&CreateDestination {
            destination_address: "127.0.0.1".into(),
            destination_port: None,
            destination_api_port: Some(s.api),
            token: None,
            token_password: None,
            user_name: Some(u.name().to_owned()),
            password: Some(pw.as_str().into()),
            send_rate_max: Some(1_500_000),
            rate_policy: None,
            send_port: None,
            permitted_destination_public_key: None,
        })
        .expect("createDestination");
    assert_eq!(created.destination_id.len(), 32, "{created:?}");
    let read = c
        .get_destination(&GetDestination {
            destination_id: created.destination_id.clone(),
        })
        .expect("getDestination");
    assert_eq!(read.destination_id, created.destination_id);
    assert_eq!(read.send_rate_max, Some(1_500_000));
    assert_eq!(read.destination_api_port, s.api);
    assert_eq!(read.destination_address, "127.0.0.1");

    // No such destination: the server's refusal, typed, with its message.
    let missing = c.get_destination(&GetDestination {
        destination_id: "0".repeat(32),
    });
    match missing {
        Err(ClientError::Api(m)) => {
            assert!(!m.message.is_empty());
            assert_eq!(m.kind, jetstream_api::ErrorKind::NotFound, "{m}");
        }
        other => panic!("expected the server's error, got {other:?}"),
    }
    // The connection is still usable after a refusal.
    let echoed = c
        .echo(&Echo {
            text: Some(json!("still here")),
        })
        .expect("echo");
    assert_eq!(echoed.text, "still here");
}

/// `echo` declared with a result type it does not have.
#[derive(Serialize, Deserialize)]
struct EchoAsNumber {
    text: String,
}

impl Command for EchoAsNumber {
    const META: Meta = <Echo as Command>::META;
    type Output = u64;
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn a_result_of_the_wrong_type_is_a_decode_error_and_async_calls_return_an_id() {
    if !can_run() {
        return;
    }
    let dir = scratch();
    let s = Srv::start(dir.path(), "s", &[]);
    let (u, pw) = user();
    let mut c = s.login(u.name(), &pw);
    let params = EchoAsNumber { text: "x".into() };
    match Api::call(&mut c, &params) {
        Err(
            e @ ClientError::Decode {
                command: "echo", ..
            },
        ) => {
            assert!(e.to_string().starts_with("echo: "), "{e}");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    // The same command sent as `echoAsync`: a request id, then its result.
    let id = c
        .call_async(&Echo {
            text: Some(json!("later")),
        })
        .expect("echoAsync");
    let result = c
        .get_request_result(&GetRequestResult {
            request_id: id.request_id,
            timeout_ms: None,
        })
        .expect("getRequestResult");
    assert_eq!(result["text"], "later");
}
