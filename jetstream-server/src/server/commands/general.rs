//! The server-level commands that are neither logging in, tokens nor async requests: `echo`,
//! `sleep`, `terminate`, `getEventLog`, and the superuser's settings (`garbageCollect`,
//! `updateGarbageCollectSettings`, `updateBandwidthLimits`).

use std::time::Duration;

use jetstream_api::params::{
    Echo, GetEventLog, Sleep, UpdateBandwidthLimits, UpdateGarbageCollectSettings,
};
use serde_json::{json, Value};

use super::{ok, visible, Reply};
use crate::server::api::{ApiError, Ctx};
use crate::server::objects::Owner;
use crate::server::{events, gc};

/// `echo`: `{"text": <the text>}`.
pub(super) fn echo(p: Echo) -> Reply {
    ok("Echo.", json!({ "text": p.text.unwrap_or(Value::Null) }))
}

/// `sleep`: at most 60 s.
pub(super) fn sleep(p: &Sleep) -> Reply {
    let ms = p.milliseconds.unwrap_or(0);
    if ms > 60_000 {
        return Err(ApiError::new("sleep: at most 60000 milliseconds".into()));
    }
    std::thread::sleep(Duration::from_millis(ms));
    ok("Slept.", Value::Null)
}

/// `terminate`: stops the server (from another thread, so that this answer goes out).
pub(super) fn terminate(ctx: &Ctx<'_>) -> Reply {
    let server = ctx.server.clone();
    std::thread::spawn(move || server.stop("terminate command"));
    ok("Server terminating.", Value::Null)
}

/// `garbageCollect`.
pub(super) fn garbage_collect(ctx: &Ctx<'_>) -> Reply {
    let c = gc::collect(ctx.server, crate::server::objects::now_us());
    ok("Garbage collected.", json!(c))
}

/// `updateGarbageCollectSettings`.
pub(super) fn update_gc_settings(ctx: &Ctx<'_>, p: &UpdateGarbageCollectSettings) -> Reply {
    let s = gc::updated(
        ctx.server.gc_settings(),
        p.interval_seconds,
        p.time_limit_seconds,
    )
    .map_err(ApiError::new)?;
    ctx.server.set_gc_settings(s);
    ok("Garbage collection settings updated.", gc::view(s))
}

/// `updateBandwidthLimits`.
pub(super) fn update_bandwidth_limits(ctx: &Ctx<'_>, p: &UpdateBandwidthLimits) -> Reply {
    let limits = ctx.server.bandwidth_limits().updated(p);
    ctx.server.set_bandwidth_limits(limits);
    ok("Bandwidth limits updated.", limits.view())
}

/// `getEventLog {startTime?, endTime?, events? | event?, limit?}`: entries oldest first (the
/// newest `limit`, default 1000). Users see the entries about their own objects and the
/// server's own events; a superuser sees all.
pub(super) fn event_log(ctx: &Ctx<'_>, p: GetEventLog) -> Reply {
    let mut names: Vec<String> = p.event.into_iter().collect();
    names.extend(p.events.unwrap_or_default());
    let filter = events::Filter {
        start_time: p.start_time,
        end_time: p.end_time,
        events: names,
        limit: usize::try_from(p.limit.unwrap_or(1000)).unwrap_or(usize::MAX),
    };
    // An entry about an object is shown to whoever may see that object (a token login sees
    // only what was made through its token); the server's own events to everyone logged in.
    let list = ctx.server.events.query(&filter, |e| {
        let Some(user) = e.get("owner").and_then(Value::as_str) else {
            return true;
        };
        let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
        let owner = Owner {
            user: user.to_owned(),
            token: text("ownerToken"),
            token_session: text("ownerTokenSession"),
        };
        visible(ctx, &owner)
    });
    ok("Event log.", Value::Array(list))
}
