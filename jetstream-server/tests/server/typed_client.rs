//! The typed client (`jetstream_client`, the `jetstream_api::Api` methods) against a real
//! server: log in, create a destination and read it back, a refusal as a typed server error,
//! a result of the wrong type as a typed decode error naming the command, an async call.

use jetstream_api::params::{Auth, CreateDestination, Echo, GetDestination, GetRequestResult};
use jetstream_api::{Access, Api, Command, Meta, Mode};
use jetstream_client::client::ClientError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::util::*;

/// Placeholder parameter structs take any object (until the real ones land).
fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn typed_calls_create_read_and_refuse() {
    if !can_run() {
        return;
    }
    let dir = scratch();
    let s = Srv::start(dir.path(), "s", &[]);
    let (u, pw) = user();
    let mut c = s.client();
    c.auth(&Auth {
        raw: object(json!({"userName": u.name(), "password": pw})),
    })
    .expect("typed auth");

    let created = c
        .create_destination(&CreateDestination {
            raw: object(json!({
                "destinationAddress": "127.0.0.1",
                "destinationApiPort": s.api,
                "userName": u.name(),
                "password": pw,
                "sendRateMax": 1_500_000,
            })),
        })
        .expect("createDestination");
    let id = created["destinationId"].as_str().expect("an id").to_owned();
    let read = c
        .get_destination(&GetDestination {
            raw: object(json!({ "destinationId": id })),
        })
        .expect("getDestination");
    assert_eq!(read["destinationId"], created["destinationId"]);
    assert_eq!(read["sendRateMax"], 1_500_000);
    assert_eq!(read["destinationApiPort"], s.api);

    // No such destination: the server's refusal, typed, with its message.
    let missing = c.get_destination(&GetDestination {
        raw: object(json!({ "destinationId": "0".repeat(32) })),
    });
    match missing {
        Err(ClientError::Api(m)) => assert!(!m.is_empty()),
        other => panic!("expected the server's error, got {other:?}"),
    }
    // The connection is still usable after a refusal.
    let echoed = c
        .echo(&Echo {
            raw: object(json!({"text": "still here"})),
        })
        .expect("echo");
    assert_eq!(echoed["text"], "still here");
}

/// `echo` declared with a result type it does not have.
#[derive(Serialize, Deserialize)]
struct EchoAsNumber {
    text: String,
}

impl Command for EchoAsNumber {
    const META: Meta = Meta {
        name: "echo",
        access: Access::Open,
        link: true,
        mode: Mode::Either,
        summary: "echo, read as a number",
    };
    type Output = u64;
}

#[test]
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
            raw: object(json!({"text": "later"})),
        })
        .expect("echoAsync");
    let result = c
        .get_request_result(&GetRequestResult {
            raw: object(json!({ "requestId": id.request_id })),
        })
        .expect("getRequestResult");
    assert_eq!(result["text"], "later");
}
