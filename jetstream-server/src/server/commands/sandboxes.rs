//! `getSandboxMappings`, `setSandboxMapping`, `deleteSandboxMapping` (reference §4.11, §6.4):
//! superusers only (the command list says so). The rules are in [`crate::sandbox::mappings`].

use jetstream_api::params::{DeleteSandboxMapping, SetSandboxMapping};

use super::{ok, Reply};
use crate::server::api::Ctx;
use crate::server::objects::to_json;

/// `getSandboxMappings`: every level in force, `--sandbox-dir` as the all-users root.
pub(super) fn get(ctx: &Ctx<'_>) -> Reply {
    ok("Sandbox mappings.", to_json(&ctx.server.sandboxes.all()))
}

/// `setSandboxMapping`: replaces one level.
pub(super) fn set(ctx: &Ctx<'_>, p: SetSandboxMapping) -> Reply {
    let all = ctx.server.sandboxes.set(&p.user_name, p.mapping)?;
    let level = shown(&p.user_name);
    crate::log!("sandbox: mapping of {level} set");
    let message = match ctx.server.sandboxes.flag() {
        Some(flag) if p.user_name.is_empty() => format!(
            "Sandbox mapping of {level} set; --sandbox-dir={flag} sets this level again at \
             the next start."
        ),
        _ => format!("Sandbox mapping of {level} set."),
    };
    ok(&message, to_json(&all))
}

/// `deleteSandboxMapping`: removes one level.
pub(super) fn delete(ctx: &Ctx<'_>, p: &DeleteSandboxMapping) -> Reply {
    let all = ctx.server.sandboxes.delete(&p.user_name)?;
    let level = shown(&p.user_name);
    crate::log!("sandbox: mapping of {level} deleted");
    ok(
        &format!("Sandbox mapping of {level} deleted."),
        to_json(&all),
    )
}

fn shown(user_name: &str) -> String {
    if user_name.is_empty() {
        "all users".to_owned()
    } else {
        format!("user {user_name:?}")
    }
}
