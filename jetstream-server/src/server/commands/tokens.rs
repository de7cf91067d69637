//! API tokens (reference §6.3): `createAPIToken`, `getAPIToken(s)`, `deleteAPIToken`, and
//! what download links (`super::super::shared`) share with them: the expiry and the event-log
//! entry.

use jetstream_api::params::{CreateApiToken, DeleteApiToken, GetApiToken};
use jetstream_api::Permission;
use serde_json::{json, Value};

use super::{ct_eq, ok, owner_of, visible, Reply};
use crate::sandbox;
use crate::server::api::{ApiError, Ctx};
use crate::server::objects::{new_id, now_us, Micros, TokenRec};

/// A token's event-log entry: its structure without the secret itself.
pub fn token_event(view: &Value) -> Value {
    let mut v = view.clone();
    if let Some(t) = v["token"].as_str() {
        v["token"] = json!(crate::server::secrets::shown_token(t));
    }
    v
}

/// A token's expiry from `expiryTime` (µs) or `expirySeconds` (from now); `None` = never.
///
/// # Errors
/// An expiry in the past.
pub fn expiry(
    expiry_time: Option<Micros>,
    expiry_seconds: Option<i64>,
    now: Micros,
    command: &str,
) -> Result<Option<Micros>, ApiError> {
    let expiry = match (expiry_time, expiry_seconds) {
        (Some(t), _) => Some(t),
        (None, Some(s)) => Some(now.saturating_add(s.saturating_mul(1_000_000))),
        (None, None) => None,
    };
    if expiry.is_some_and(|t| t <= now) {
        return Err(ApiError::new(format!(
            "{command}: the expiry is in the past"
        )));
    }
    Ok(expiry)
}

/// `createAPIToken`.
pub(super) fn create(ctx: &mut Ctx<'_>, p: CreateApiToken) -> Reply {
    if ctx.server.args.api_disable_api_tokens {
        return Err(ApiError::new(
            "createAPIToken: API tokens are disabled on this server".into(),
        ));
    }
    if ctx.session.token.is_some() {
        return Err(ApiError::new(
            "createAPIToken: an API token cannot create tokens".into(),
        ));
    }
    let now = now_us();
    let expiry = expiry(p.expiry_time, p.expiry_seconds, now, "createAPIToken")?;
    let path = match &p.path {
        Some(path) => Some(format!("/{}", sandbox::clean_relative(path)?)),
        None => None,
    };
    let permissions = p
        .permissions
        .as_deref()
        .unwrap_or(&Permission::ALL)
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    let salt = new_id();
    let rec = TokenRec {
        token: new_id(),
        owner: owner_of(ctx),
        password_hash: p
            .password
            .as_ref()
            .map(|pw| crate::server::secrets::hash_password(&salt, pw.expose())),
        salt,
        description: p.description.unwrap_or_default(),
        creation_time: now,
        expiry_time: expiry,
        path,
        permissions,
        user_data: Default::default(),
        shared: None,
    };
    let view = rec.view();
    ctx.server.events.record("tokenCreated", token_event(&view));
    ctx.server
        .objects
        .lock()
        .tokens
        .insert(rec.token.clone(), rec);
    ctx.server.save();
    ok("API token created.", view)
}

/// `getAPIToken`.
pub(super) fn get(ctx: &Ctx<'_>, p: &GetApiToken) -> Reply {
    let t = p.token.expose();
    let objs = ctx.server.objects.lock();
    let rec = objs
        .tokens
        .values()
        .find(|r| {
            r.shared.is_none() && visible(ctx, &r.owner) && ct_eq(r.token.as_bytes(), t.as_bytes())
        })
        .ok_or_else(|| ApiError::new(format!("no API token {t:?}")))?;
    ok("API token.", rec.view())
}

/// `getAPITokens`.
pub(super) fn list(ctx: &Ctx<'_>) -> Reply {
    let objs = ctx.server.objects.lock();
    let list: Vec<Value> = objs
        .tokens
        .values()
        .filter(|r| r.shared.is_none() && visible(ctx, &r.owner))
        .map(TokenRec::view)
        .collect();
    ok("API tokens.", Value::Array(list))
}

/// `deleteAPIToken`.
pub(super) fn delete(ctx: &Ctx<'_>, p: &DeleteApiToken) -> Reply {
    let t = p.token.expose();
    let mut objs = ctx.server.objects.lock();
    let key = objs
        .tokens
        .iter()
        .find(|(_, r)| {
            r.shared.is_none() && visible(ctx, &r.owner) && ct_eq(r.token.as_bytes(), t.as_bytes())
        })
        .map(|(k, _)| k.clone())
        .ok_or_else(|| ApiError::new(format!("no API token {t:?}")))?;
    if let Some(t) = objs.tokens.remove(&key) {
        ctx.server
            .events
            .record("tokenDeleted", token_event(&t.view()));
    }
    drop(objs);
    ctx.server.save();
    ok("API token deleted.", Value::Null)
}
