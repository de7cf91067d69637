//! Logging in: `auth` (a system user's password), `authToken` (an API token or a download
//! link) and `superuser` (a password session raised to the server-wide commands).

use jetstream_api::params::{Auth, AuthToken};
use jetstream_api::ErrorKind;
use serde_json::Value;

use super::{ct_eq, ok, Reply};
use crate::server::api::{ApiError, Ctx};
use crate::server::metrics::LoginResult;
use crate::server::objects::{new_id, now_us};

/// `auth`.
pub(super) fn auth(ctx: &mut Ctx<'_>, p: &Auth) -> Reply {
    let outcome = ctx
        .server
        .auth
        .login(&p.user_name, p.password.expose(), ctx.session.peer.ip());
    ctx.server.metrics.login(
        "password",
        match &outcome {
            Ok(_) => LoginResult::Ok,
            Err(crate::users::AuthError::Throttled { .. }) => LoginResult::Throttled,
            Err(_) => LoginResult::Failed,
        },
    );
    match outcome {
        Ok(u) => {
            crate::log!("api: {} logged in as {}", ctx.session.peer, u.name);
            ctx.session.user = Some(u);
            ctx.session.shared_manifest = None;
            ctx.session.token = None;
            ctx.session.token_session = None;
            ctx.session.superuser = false;
            ctx.session.by_client_key = false;
            ok("Authenticated.", Value::Null)
        }
        Err(e) => {
            use crate::users::AuthError;
            let kind = match &e {
                AuthError::Failed | AuthError::NotPermitted { .. } => ErrorKind::LoginFailed,
                AuthError::Throttled { .. } => ErrorKind::LoginThrottled,
                AuthError::Internal(_) => ErrorKind::Internal,
            };
            Err(ApiError::of(kind, format!("auth: {e}")))
        }
    }
}

/// `authToken`.
pub(super) fn auth_token(ctx: &mut Ctx<'_>, p: &AuthToken) -> Reply {
    let source = ctx.session.peer.ip();
    if let Err(e) = ctx.server.auth.check_source(source) {
        ctx.server.metrics.login("token", LoginResult::Throttled);
        return Err(ApiError::of(
            ErrorKind::LoginThrottled,
            format!("authToken: {e}"),
        ));
    }
    let outcome = auth_token_checked(ctx, p);
    ctx.server.metrics.login(
        "token",
        if outcome.is_ok() {
            LoginResult::Ok
        } else {
            LoginResult::Failed
        },
    );
    if let Err(e) = &outcome {
        if e.kind == ErrorKind::LoginFailed {
            ctx.server.auth.token_failed(source);
        }
    }
    outcome
}

fn auth_token_checked(ctx: &mut Ctx<'_>, p: &AuthToken) -> Reply {
    let token = p.token.expose();
    let password = p.password.as_ref().map(|s| s.expose());
    let now = now_us();
    let found = {
        let objs = ctx.server.objects.lock();
        // Compare with every token in constant time: no early exit that would time the prefix.
        let mut found = None;
        for rec in objs.tokens.values() {
            if ct_eq(rec.token.as_bytes(), token.as_bytes()) {
                found = Some(rec.clone());
            }
        }
        found
    };
    let refused = || {
        ApiError::of(
            ErrorKind::LoginFailed,
            "authToken: authentication failed: unknown, expired or deleted token, or wrong password",
        )
    };
    let rec = found.ok_or_else(refused)?;
    match (&rec.shared, &ctx.server.args) {
        (None, a) if a.api_disable_api_tokens => {
            return Err(ApiError::new(
                "authToken: API tokens are disabled on this server".into(),
            ));
        }
        (Some(_), a) if a.api_disable_shared_tokens => {
            return Err(ApiError::new(
                "authToken: shared tokens are disabled on this server".into(),
            ));
        }
        _ => {}
    }
    if rec.expired(now) {
        return Err(refused());
    }
    if let Some(hash) = &rec.password_hash {
        let check =
            crate::server::secrets::verify_password(hash, &rec.salt, password.unwrap_or(""))
                .map_err(|e| {
                    let shown = crate::server::secrets::shown_token(&rec.token);
                    crate::error!("auth: token {shown}: {e}; recreate the token");
                    refused()
                })?;
        if !check.is_valid() {
            return Err(refused());
        }
        if check == crate::server::secrets::Check::ValidOutdated {
            upgrade_token_hash(ctx, &rec.token, password.unwrap_or(""));
        }
    }
    let user = crate::users::lookup(&rec.owner.user)
        .map_err(|e| ApiError::internal("authToken: looking up the token's user", e))?
        .ok_or_else(refused)?;
    crate::log!(
        "api: {} logged in as {} with {} token {}",
        ctx.session.peer,
        user.name,
        if rec.shared.is_some() {
            "a shared"
        } else {
            "an API"
        },
        crate::server::secrets::shown_token(&rec.token)
    );
    ctx.session.user = Some(user);
    ctx.session.shared_manifest = rec.shared.as_ref().map(|s| s.manifest_id.clone());
    ctx.session.token = Some(rec.token);
    ctx.session.token_session = Some(new_id());
    ctx.session.superuser = false;
    ctx.session.by_client_key = false;
    ok("Authenticated.", Value::Null)
}

/// Replaces a token's old-format (SHA-256) or weaker password hash by the current KDF form,
/// after a login proved `password` right.
fn upgrade_token_hash(ctx: &Ctx<'_>, token: &str, password: &str) {
    let mut objs = ctx.server.objects.lock();
    let Some(rec) = objs.tokens.get_mut(token) else {
        return;
    };
    rec.password_hash = Some(crate::server::secrets::hash_password(&rec.salt, password));
    drop(objs);
    ctx.server.save();
    let shown = crate::server::secrets::shown_token(token);
    crate::log!("auth: token {shown}: password hash upgraded to PBKDF2");
}

/// `superuser`.
pub(super) fn superuser(ctx: &mut Ctx<'_>) -> Reply {
    let Some(user) = &ctx.session.user else {
        return Err(ApiError::new("superuser: not authenticated".into()));
    };
    if ctx.session.token.is_some() {
        return Err(ApiError::new(
            "superuser: not available to API token logins".into(),
        ));
    }
    if !ctx.server.supers.is_superuser(user) {
        return Err(ApiError::new(format!(
            "superuser: {} is not a superuser (see --superuser and --supergroup)",
            user.name
        )));
    }
    ctx.session.superuser = true;
    ok("Superuser rights granted.", Value::Null)
}
