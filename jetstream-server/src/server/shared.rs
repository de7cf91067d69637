//! Shared tokens (download links, reference §6.3): made for an existing manifest, with an
//! optional expiry, download limit and passphrase. A recipient who has only the token logs in
//! with `authToken` and may do nothing but look at that manifest and download it
//! (`send.startDownload`, which `jscp --token T HOST: DIR` uses); each download counts, and an
//! expired or exhausted token stops working at once.

use jetstream_api::params::{CreateSharedToken, DeleteSharedToken, GetSharedToken};
use jetstream_api::{Meta, Request};
use serde_json::Value;

use super::api::{ApiError, Ctx};
use super::commands::{owner_of, visible};
use super::objects::{new_id, now_us, SharedInfo, TokenRec};
use super::Server;

type Reply = Result<(String, Value), ApiError>;

fn enabled(ctx: &Ctx<'_>, name: &str) -> Result<(), ApiError> {
    if ctx.server.args.api_disable_shared_tokens {
        Err(ApiError::new(format!(
            "{name}: shared tokens are disabled on this server"
        )))
    } else {
        Ok(())
    }
}

/// `send.createSharedToken {manifestId, expiryTime | expirySeconds, downloadLimit, password,
/// description}`.
///
/// # Errors
/// Disabled, no `share` permission, an unknown or unfinished manifest, a past expiry.
pub fn create(ctx: &mut Ctx<'_>, p: CreateSharedToken) -> Reply {
    enabled(ctx, "createSharedToken")?;
    let manifest_id = p.manifest_id;
    {
        let objs = ctx.server.objects.lock();
        let m = objs
            .manifests
            .get(&manifest_id)
            .filter(|m| visible(ctx, &m.owner))
            .ok_or_else(|| ApiError::not_found(format!("no manifest {manifest_id}")))?;
        if m.status != "complete" {
            return Err(ApiError::new(format!(
                "manifest {manifest_id} is {}: only a complete manifest can be shared",
                m.status
            )));
        }
    }
    let now = now_us();
    let expiry =
        super::commands::expiry(p.expiry_time, p.expiry_seconds, now, "createSharedToken")?;
    let limit = p.download_limit;
    if limit == Some(0) {
        return Err(ApiError::new(
            "parameter \"downloadLimit\" must be at least 1".into(),
        ));
    }
    let salt = new_id();
    let rec = TokenRec {
        token: new_id(),
        owner: owner_of(ctx),
        password_hash: p
            .password
            .as_ref()
            .map(|pw| pw.expose())
            .filter(|pw| !pw.is_empty())
            .map(|pw| super::secrets::hash_password(&salt, pw)),
        salt,
        description: p.description.unwrap_or_default(),
        creation_time: now,
        expiry_time: expiry,
        path: None,
        permissions: vec!["download".into()],
        user_data: Default::default(),
        shared: Some(SharedInfo {
            manifest_id,
            download_count: 0,
            download_limit: limit,
        }),
    };
    let view = rec.view();
    ctx.server
        .events
        .record("sharedTokenCreated", super::commands::token_event(&view));
    ctx.server
        .objects
        .lock()
        .tokens
        .insert(rec.token.clone(), rec);
    ctx.server.save();
    Ok(("Shared token created.".into(), view))
}

/// A shared token the session may see: its owner's (or a superuser's), or the one the
/// session logged in with.
fn find(ctx: &Ctx<'_>, token: &str) -> Result<TokenRec, ApiError> {
    let objs = ctx.server.objects.lock();
    objs.tokens
        .values()
        .find(|t| {
            t.shared.is_some()
                && (visible(ctx, &t.owner) || ctx.session.token.as_deref() == Some(token))
                && super::commands::ct_eq(t.token.as_bytes(), token.as_bytes())
        })
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no shared token {token:?}")))
}

/// `send.getSharedToken {token}`.
///
/// # Errors
/// Unknown or not visible.
pub fn get(ctx: &mut Ctx<'_>, p: &GetSharedToken) -> Reply {
    enabled(ctx, "getSharedToken")?;
    let t = find(ctx, p.token.expose())?;
    Ok(("Shared token.".into(), t.view()))
}

/// `send.getSharedTokens`.
///
/// # Errors
/// Disabled.
pub fn list(ctx: &mut Ctx<'_>) -> Reply {
    enabled(ctx, "getSharedTokens")?;
    let objs = ctx.server.objects.lock();
    let list: Vec<Value> = objs
        .tokens
        .values()
        .filter(|t| t.shared.is_some() && visible(ctx, &t.owner))
        .map(TokenRec::view)
        .collect();
    Ok(("Shared tokens.".into(), Value::Array(list)))
}

/// `send.deleteSharedToken {token}`: stops working at once.
///
/// # Errors
/// Unknown or not the caller's.
pub fn delete(ctx: &mut Ctx<'_>, p: &DeleteSharedToken) -> Reply {
    let token = p.token.expose();
    let mut objs = ctx.server.objects.lock();
    let key = objs
        .tokens
        .iter()
        .find(|(_, t)| {
            t.shared.is_some()
                && visible(ctx, &t.owner)
                && super::commands::ct_eq(t.token.as_bytes(), token.as_bytes())
        })
        .map(|(k, _)| k.clone())
        .ok_or_else(|| ApiError::not_found(format!("no shared token {token:?}")))?;
    let gone = objs.tokens.remove(&key);
    drop(objs);
    if let Some(t) = gone {
        ctx.server.events.record(
            "sharedTokenDeleted",
            super::commands::token_event(&t.view()),
        );
    }
    ctx.server.save();
    Ok(("Shared token deleted.".into(), Value::Null))
}

/// Refuses to a session of a shared token every command but those a download link may call
/// ([`Meta::link`]), and their `Async` forms (whose results it could not read).
///
/// # Errors
/// Another command.
pub fn restrict(ctx: &Ctx<'_>, name: &str, meta: &Meta, is_async: bool) -> Result<(), ApiError> {
    if ctx.session.shared_manifest.is_some() && (is_async || !meta.link) {
        return Err(ApiError::of(
            jetstream_api::ErrorKind::PermissionDenied,
            format!("{name}: a shared token only allows downloading the files it shares"),
        ));
    }
    Ok(())
}

/// Refuses to a session of a shared token any manifest but the one it shares.
///
/// # Errors
/// Another manifest (reported as one that does not exist).
pub fn restrict_manifest(ctx: &Ctx<'_>, request: &Request) -> Result<(), ApiError> {
    let Some(manifest) = &ctx.session.shared_manifest else {
        return Ok(());
    };
    let asked = match request {
        Request::GetManifest(p) => Some(&p.manifest_id),
        Request::GetManifestFiles(p) => Some(&p.manifest_id),
        Request::StartDownload(p) => Some(&p.manifest_id),
        _ => None,
    };
    match asked {
        Some(m) if m != manifest => Err(ApiError::not_found(format!("no manifest {m}"))),
        _ => Ok(()),
    }
}

/// Counts one download with the session's shared token; refuses an expired or exhausted one.
///
/// # Errors
/// The token is gone, expired, used up, or for another manifest.
pub fn count_download(server: &Server, token: &str, manifest_id: &str) -> Result<(), ApiError> {
    let mut objs = server.objects.lock();
    let t = objs
        .tokens
        .values_mut()
        .find(|t| t.token == token && t.shared.is_some())
        .ok_or_else(|| ApiError::new("this shared token no longer exists".into()))?;
    if t.expired(now_us()) {
        return Err(ApiError::new("this shared token has expired".into()));
    }
    let Some(sh) = t.shared.as_mut() else {
        return Err(ApiError::new("not a shared token".into()));
    };
    if sh.manifest_id != manifest_id {
        return Err(ApiError::not_found(format!("no manifest {manifest_id}")));
    }
    if sh.download_limit.is_some_and(|l| sh.download_count >= l) {
        return Err(ApiError::new(format!(
            "this shared token has been used {} times, its limit",
            sh.download_count
        )));
    }
    sh.download_count += 1;
    drop(objs);
    server.save();
    Ok(())
}
