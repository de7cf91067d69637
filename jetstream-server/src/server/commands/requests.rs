//! Async requests (reference §3.1): an `xAsync` command is answered at once with a request
//! id; `getRequestStatus` and `getRequestResult` report its outcome to the session owner that
//! made it.

use std::time::Duration;

use serde_json::json;

use super::{ok, owner_of, Reply};
use crate::server::api::{ApiError, Ctx};

/// Keeps `outcome`, the outcome of `name` (an `xAsync` command that ran at once), for
/// `getRequestStatus`/`getRequestResult`, and answers with its request id.
pub(super) fn keep(ctx: &mut Ctx<'_>, name: &str, outcome: Reply) -> Reply {
    let owner = owner_of(ctx);
    let id = ctx.server.requests.lock().insert(owner, Some(outcome));
    ok(&format!("{name} queued."), json!({ "requestId": id }))
}

/// `getRequestStatus` (`with_result` false: answers at once) and `getRequestResult` (waits up
/// to `timeout_ms`, default 60 s, for a request still running).
pub(super) fn status(ctx: &Ctx<'_>, id: u64, timeout_ms: Option<u64>, with_result: bool) -> Reply {
    let wait = Duration::from_millis(timeout_ms.unwrap_or(60_000));
    let me = owner_of(ctx);
    let missing = || ApiError::new(format!("no request {id} (results expire after an hour)"));
    let mut requests = ctx.server.requests.lock();
    let deadline = std::time::Instant::now() + wait;
    loop {
        let r = requests
            .get(id)
            .filter(|r| r.owner == me || ctx.session.superuser)
            .ok_or_else(missing)?;
        match (&r.outcome, with_result) {
            (Some(Ok((message, result))), true) => return Ok((message.clone(), result.clone())),
            (Some(Err(e)), true) => return Err(e.clone()),
            (outcome, false) => {
                let error = outcome
                    .as_ref()
                    .and_then(|o| o.as_ref().err())
                    .map(|e| e.message.clone());
                return ok(
                    "Request status.",
                    json!({
                        "requestId": id,
                        "processing": outcome.is_none(),
                        "status": match outcome {
                            None => "processing",
                            Some(Ok(_)) => "complete",
                            Some(Err(_)) => "error",
                        },
                        "errorMessage": error,
                    }),
                );
            }
            (None, true) => {
                // getRequestResult blocks until the request ends (up to `timeoutMs`).
                if ctx
                    .server
                    .request_done
                    .wait_until(&mut requests, deadline)
                    .timed_out()
                {
                    return Err(ApiError::new(format!("request {id} is still processing")));
                }
            }
        }
    }
}
