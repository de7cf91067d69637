//! The API commands (reference §3): server-level (un-prefixed), `send.*` and `recv.*`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::api::{ApiError, Ctx};
use super::metrics::LoginResult;
use super::objects::{
    new_id, now_us, Credentials, DestinationRec, ManifestRec, Micros, Owner, TokenRec, TransferRec,
    TxStatus, PERMISSIONS,
};
use super::params::Params;
use super::{manifests, receive, transfers};
use crate::sandbox;

type Reply = Result<(String, Value), ApiError>;

fn ok(message: &str, result: Value) -> Reply {
    Ok((message.to_owned(), result))
}

/// Runs one command.
///
/// # Errors
/// The error message for the client.
pub fn dispatch(ctx: &mut Ctx<'_>, name: &str, params: &Value) -> Reply {
    let p = Params(params);
    let Some(access) = super::access::access_of(name) else {
        return Err(ApiError(format!("unknown command {name:?}")));
    };
    let mut token_permissions = None;
    if let Some(token) = ctx.session.token.clone() {
        // A token that expired or was deleted stops working at once, also for the sessions
        // that logged in with it.
        let alive = ctx
            .server
            .objects
            .lock()
            .tokens
            .get(&token)
            .filter(|t| !t.expired(now_us()))
            .map(|t| t.permissions.clone());
        match alive {
            Some(perms) => token_permissions = Some(perms),
            None if access != super::access::Access::Open => {
                ctx.session.user = None;
                ctx.session.token = None;
                ctx.session.token_session = None;
                ctx.session.shared_manifest = None;
                return Err(ApiError(format!(
                    "{name}: the token this session logged in with has expired or was deleted"
                )));
            }
            None => {}
        }
    }
    // A download link's narrower rule first: its refusal says what a link may do.
    super::shared::restrict(ctx, name, p)?;
    super::access::check(name, access, ctx.session, token_permissions.as_deref())?;
    if matches!(name, "sendDiscoverPacketAsync" | "recvDiscoverPacketAsync") {
        let owner = owner_of(ctx);
        let params = params.clone();
        let send = name.starts_with("send");
        let id = ctx.server.spawn_request(owner, move |s| {
            if send {
                super::discover::send(s, &params)
            } else {
                super::discover::recv(s, &params)
            }
        });
        return ok(&format!("{name} queued."), json!({ "requestId": id }));
    }
    if let Some(base) = name.strip_suffix("Async") {
        if super::access::access_of(base).is_some() {
            return run_async(ctx, name, base, params);
        }
    }
    match name {
        "getServerInfo" => ok("Server information.", super::info::server_info(ctx)),
        "auth" => auth(ctx, p),
        "authToken" => auth_token(ctx, p),
        "superuser" => superuser(ctx),
        "echo" => ok(
            "Echo.",
            json!({ "text": p.value("text").cloned().unwrap_or(Value::Null) }),
        ),
        "sleep" => {
            let ms = p.opt_u64("milliseconds")?.or(p.opt_u64("ms")?).unwrap_or(0);
            if ms > 60_000 {
                return Err(ApiError("sleep: at most 60000 milliseconds".into()));
            }
            std::thread::sleep(Duration::from_millis(ms));
            ok("Slept.", Value::Null)
        }
        "terminate" => {
            let server = ctx.server.clone();
            std::thread::spawn(move || server.stop("terminate command"));
            ok("Server terminating.", Value::Null)
        }
        "getEventLog" => event_log(ctx, p),
        "garbageCollect" => {
            let c = super::gc::collect(ctx.server, super::objects::now_us());
            ok("Garbage collected.", json!(c))
        }
        "updateGarbageCollectSettings" => {
            let s = super::gc::updated(
                ctx.server.gc_settings(),
                p.opt_u64("intervalSeconds")?,
                p.opt_u64("timeLimitSeconds")?,
            )
            .map_err(ApiError)?;
            ctx.server.set_gc_settings(s);
            ok("Garbage collection settings updated.", super::gc::view(s))
        }
        "getRequestStatus" => request_status(ctx, p, false),
        "getRequestResult" => request_status(ctx, p, true),
        "createAPIToken" => create_api_token(ctx, p),
        "getAPIToken" => {
            let t = p.str("token")?;
            let objs = ctx.server.objects.lock();
            let rec = objs
                .tokens
                .values()
                .find(|r| {
                    r.shared.is_none()
                        && visible(ctx, &r.owner)
                        && ct_eq(r.token.as_bytes(), t.as_bytes())
                })
                .ok_or_else(|| ApiError(format!("no API token {t:?}")))?;
            ok("API token.", rec.view())
        }
        "getAPITokens" => {
            let objs = ctx.server.objects.lock();
            let list: Vec<Value> = objs
                .tokens
                .values()
                .filter(|r| r.shared.is_none() && visible(ctx, &r.owner))
                .map(TokenRec::view)
                .collect();
            ok("API tokens.", Value::Array(list))
        }
        "deleteAPIToken" => {
            let t = p.str("token")?;
            let mut objs = ctx.server.objects.lock();
            let key = objs
                .tokens
                .iter()
                .find(|(_, r)| {
                    r.shared.is_none()
                        && visible(ctx, &r.owner)
                        && ct_eq(r.token.as_bytes(), t.as_bytes())
                })
                .map(|(k, _)| k.clone())
                .ok_or_else(|| ApiError(format!("no API token {t:?}")))?;
            if let Some(t) = objs.tokens.remove(&key) {
                ctx.server
                    .events
                    .record("tokenDeleted", token_event(&t.view()));
            }
            drop(objs);
            ctx.server.save();
            ok("API token deleted.", Value::Null)
        }
        "send.createDestination" => create_destination(ctx, p),
        "send.getDestination" => {
            let id = p.id("destinationId")?;
            let objs = ctx.server.objects.lock();
            let d = find(ctx, &objs.destinations, &id)?;
            let port = ctx.server.destination_send_port(&id);
            ok("Destination.", d.view_with_port(objs.queued(&id), port))
        }
        "send.getDestinations" => {
            let objs = ctx.server.objects.lock();
            let list: Vec<Value> = objs
                .destinations
                .values()
                .filter(|d| visible(ctx, &d.owner))
                .map(|d| d.view(objs.queued(&d.id)))
                .collect();
            ok("Destinations.", Value::Array(list))
        }
        "send.deleteDestination" => delete_destination(ctx, p),
        "send.createManifest" => manifests::create(ctx, p),
        "send.getManifest" => {
            let id = p.id("manifestId")?;
            let objs = ctx.server.objects.lock();
            let m = find(ctx, &objs.manifests, &id)?;
            ok("Manifest.", m.view())
        }
        "send.getManifests" => {
            let objs = ctx.server.objects.lock();
            let list: Vec<Value> = objs
                .manifests
                .values()
                .filter(|m| visible(ctx, &m.owner))
                .map(ManifestRec::view)
                .collect();
            ok("Manifests.", Value::Array(list))
        }
        "send.getManifestFiles" => {
            let id = p.id("manifestId")?;
            let objs = ctx.server.objects.lock();
            let m = find(ctx, &objs.manifests, &id)?;
            ok("Manifest files.", m.files_view())
        }
        "send.deleteManifest" => {
            let id = p.id("manifestId")?;
            let mut objs = ctx.server.objects.lock();
            find(ctx, &objs.manifests, &id)?;
            if objs
                .transfers
                .values()
                .any(|t| t.manifest_id == id && !t.status.is_final())
            {
                return Err(ApiError(format!(
                    "manifest {id} is used by a transfer that has not ended"
                )));
            }
            objs.manifests.remove(&id);
            drop(objs);
            ctx.server.save();
            ok("Manifest deleted.", Value::Null)
        }
        "send.createTransfer" => create_transfer(ctx, p),
        "send.getTransfer" => {
            let id = p.id("transferId")?;
            let objs = ctx.server.objects.lock();
            let t = find(ctx, &objs.transfers, &id)?;
            ok("Transfer.", t.view())
        }
        "send.getTransfers" => {
            let status = p.opt_str("status")?;
            let objs = ctx.server.objects.lock();
            let list: Vec<Value> = objs
                .transfers
                .values()
                .filter(|t| visible(ctx, &t.owner))
                .filter(|t| status.is_none_or(|s| s == t.status.as_str()))
                .map(TransferRec::view)
                .collect();
            ok("Transfers.", Value::Array(list))
        }
        "send.suspendTransfer" => control(ctx, p, transfers::Stop::Suspend),
        "send.resumeTransfer" => resume_transfer(ctx, p),
        "send.cancelTransfer" => control(ctx, p, transfers::Stop::Cancel),
        "send.failTransfer" => {
            let msg = p
                .opt_str("errorMessage")?
                .unwrap_or("failed by request")
                .to_owned();
            control(ctx, p, transfers::Stop::Fail(msg))
        }
        "send.deleteTransfer" => {
            let id = p.id("transferId")?;
            let mut objs = ctx.server.objects.lock();
            let t = find(ctx, &objs.transfers, &id)?;
            if !t.status.is_final() && t.status != TxStatus::Suspended {
                return Err(ApiError(format!(
                    "transfer {id} is {}: cancel or suspend it before deleting it",
                    t.status.as_str()
                )));
            }
            objs.transfers.remove(&id);
            drop(objs);
            ctx.server.save();
            ok("Transfer deleted.", Value::Null)
        }
        "send.setSendRate" => set_send_rate(ctx, p),
        "recv.startTransfer" => receive::start(ctx, p),
        "recv.transferRate" => receive::transfer_rate(ctx, p),
        "updateBandwidthLimits" => {
            let limits = ctx
                .server
                .bandwidth_limits()
                .updated(p.0)
                .map_err(ApiError)?;
            ctx.server.set_bandwidth_limits(limits);
            ok("Bandwidth limits updated.", limits.view())
        }
        "send.createSharedToken" => super::shared::create(ctx, p),
        "send.getSharedToken" => super::shared::get(ctx, p),
        "send.getSharedTokens" => super::shared::list(ctx),
        "send.deleteSharedToken" => super::shared::delete(ctx, p),
        "recv.addAuthorizedClient" => super::trust::add(ctx, p),
        "recv.removeAuthorizedClient" => super::trust::remove(ctx, p),
        "recv.allowOnlyAuthorizedClients" => super::trust::allow_only(ctx, p),
        "send.startDownload" => super::download::start(ctx, p),
        "recv.getTransfers" => ok(
            "Receive transfers.",
            receive::list(ctx.server, |o| visible(ctx, o)),
        ),
        "recv.getSources" => ok(
            "Sources.",
            receive::sources(ctx.server, |o| visible(ctx, o)),
        ),
        _ => Err(ApiError(format!("unknown command {name:?}"))),
    }
}

/// Whether `name` is a command or a command's `Async` form (for the fuzz target `api_request`).
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn is_known(name: &str) -> bool {
    super::access::access_of(name).is_some()
}

/// `xAsync`: runs `x` now and keeps its outcome for `getRequestStatus`/`getRequestResult`.
fn run_async(ctx: &mut Ctx<'_>, name: &str, base: &str, params: &Value) -> Reply {
    let outcome = dispatch(ctx, base, params);
    let owner = owner_of(ctx);
    let id = ctx.server.requests.lock().insert(owner, Some(outcome));
    ok(&format!("{name} queued."), json!({ "requestId": id }))
}

fn request_status(ctx: &Ctx<'_>, p: Params<'_>, with_result: bool) -> Reply {
    let id = p
        .opt_u64("requestId")?
        .ok_or_else(|| ApiError("missing parameter \"requestId\"".into()))?;
    let wait = Duration::from_millis(p.opt_u64("timeoutMs")?.unwrap_or(60_000));
    let me = owner_of(ctx);
    let missing = || ApiError(format!("no request {id} (results expire after an hour)"));
    let mut requests = ctx.server.requests.lock();
    let deadline = std::time::Instant::now() + wait;
    loop {
        let r = requests
            .get(id)
            .filter(|r| r.owner == me || ctx.session.superuser)
            .ok_or_else(missing)?;
        match (&r.outcome, with_result) {
            (Some(Ok((message, result))), true) => return Ok((message.clone(), result.clone())),
            (Some(Err(e)), true) => return Err(ApiError(e.0.clone())),
            (outcome, false) => {
                let error = outcome
                    .as_ref()
                    .and_then(|o| o.as_ref().err())
                    .map(|e| e.0.clone());
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
                    return Err(ApiError(format!("request {id} is still processing")));
                }
            }
        }
    }
}

/// An object with an owner, found by id.
pub trait Owned {
    /// What it is called in messages.
    const KIND: &'static str;
    /// Its owner.
    fn owner(&self) -> &Owner;
}

macro_rules! owned {
    ($($t:ty => $kind:literal),*) => {$(
        impl Owned for $t {
            const KIND: &'static str = $kind;
            fn owner(&self) -> &Owner {
                &self.owner
            }
        }
    )*};
}

owned!(DestinationRec => "destination", ManifestRec => "manifest", TransferRec => "transfer", TokenRec => "API token");

/// The object `id` if the session may see it. Someone else's object is reported exactly like
/// one that does not exist.
fn find<'a, T: Owned>(
    ctx: &Ctx<'_>,
    map: &'a BTreeMap<String, T>,
    id: &str,
) -> Result<&'a T, ApiError> {
    map.get(id)
        .filter(|o| visible(ctx, o.owner()))
        .ok_or_else(|| ApiError(format!("no {} {id}", T::KIND)))
}

/// As [`find`], for changing it.
fn find_mut<'a, T: Owned>(
    ctx: &Ctx<'_>,
    map: &'a mut BTreeMap<String, T>,
    id: &str,
) -> Result<&'a mut T, ApiError> {
    map.get_mut(id)
        .filter(|o| visible(ctx, o.owner()))
        .ok_or_else(|| ApiError(format!("no {} {id}", T::KIND)))
}

/// Whether the session may see an object of `owner` (reference §3.1 visibility rule).
pub fn visible(ctx: &Ctx<'_>, owner: &Owner) -> bool {
    if ctx.session.superuser {
        return true;
    }
    let Some(user) = &ctx.session.user else {
        return false;
    };
    // A shared-token session sees its owner's objects, but `shared::restrict` lets it reach
    // only the shared manifest.
    owner.user == user.name
        && (ctx.session.token.is_none()
            || ctx.session.shared_manifest.is_some()
            || owner.token == ctx.session.token)
}

/// The owner stamp for objects this session creates.
pub fn owner_of(ctx: &Ctx<'_>) -> Owner {
    Owner {
        user: ctx
            .session
            .user
            .as_ref()
            .map_or_else(String::new, |u| u.name.clone()),
        token: ctx.session.token.clone(),
        token_session: ctx.session.token_session.clone(),
    }
}

fn auth(ctx: &mut Ctx<'_>, p: Params<'_>) -> Reply {
    let user = p
        .opt_str("userName")?
        .or(p.opt_str("username")?)
        .ok_or_else(|| ApiError("missing parameter \"userName\"".into()))?;
    let password = p.str("password")?;
    let outcome = ctx.server.auth.login(user, password, ctx.session.peer.ip());
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
            ok("Authenticated.", Value::Null)
        }
        Err(e) => Err(ApiError(format!("auth: {e}"))),
    }
}

fn auth_token(ctx: &mut Ctx<'_>, p: Params<'_>) -> Reply {
    let source = ctx.session.peer.ip();
    if let Err(e) = ctx.server.auth.check_source(source) {
        ctx.server.metrics.login("token", LoginResult::Throttled);
        return Err(ApiError(format!("authToken: {e}")));
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
        if e.0.contains("authentication failed") {
            ctx.server.auth.token_failed(source);
        }
    }
    outcome
}

fn auth_token_checked(ctx: &mut Ctx<'_>, p: Params<'_>) -> Reply {
    let token = p.str("token")?;
    let password = p.opt_str("password")?;
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
        ApiError("authToken: authentication failed: unknown, expired or deleted token, or wrong password".into())
    };
    let rec = found.ok_or_else(refused)?;
    match (&rec.shared, &ctx.server.args) {
        (None, a) if a.api_disable_api_tokens => {
            return Err(ApiError(
                "authToken: API tokens are disabled on this server".into(),
            ));
        }
        (Some(_), a) if a.api_disable_shared_tokens => {
            return Err(ApiError(
                "authToken: shared tokens are disabled on this server".into(),
            ));
        }
        _ => {}
    }
    if rec.expired(now) {
        return Err(refused());
    }
    if let Some(hash) = &rec.password_hash {
        let check = super::secrets::verify_password(hash, &rec.salt, password.unwrap_or(""))
            .map_err(|e| {
                let shown = super::secrets::shown_token(&rec.token);
                crate::error!("auth: token {shown}: {e}; recreate the token");
                refused()
            })?;
        if !check.is_valid() {
            return Err(refused());
        }
        if check == super::secrets::Check::ValidOutdated {
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
        super::secrets::shown_token(&rec.token)
    );
    ctx.session.user = Some(user);
    ctx.session.shared_manifest = rec.shared.as_ref().map(|s| s.manifest_id.clone());
    ctx.session.token = Some(rec.token);
    ctx.session.token_session = Some(new_id());
    ctx.session.superuser = false;
    ok("Authenticated.", Value::Null)
}

/// The `send.destination*` trigger arguments: the destination and the API client that acted,
/// each as `ip:port` (a host name that does not resolve at once is passed as given).
fn destination_trigger_args(ctx: &Ctx<'_>, d: &DestinationRec) -> (String, String) {
    use std::net::ToSocketAddrs;
    let port = d.data_port();
    let ip = d.address.parse::<std::net::IpAddr>().ok().or_else(|| {
        (d.address.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .map(|a| a.ip())
    });
    let destination = match ip {
        Some(ip) => std::net::SocketAddr::new(ip, port).to_string(),
        None => format!("{}:{port}", d.address),
    };
    (destination, ctx.session.peer.to_string())
}

/// A token's event-log entry: its structure without the secret itself.
pub fn token_event(view: &Value) -> Value {
    let mut v = view.clone();
    if let Some(t) = v["token"].as_str() {
        v["token"] = json!(super::secrets::shown_token(t));
    }
    v
}

/// `getEventLog {startTime?, endTime?, events? | event?, limit?}`: entries oldest first (the
/// newest `limit`, default 1000). Users see the entries about their own objects and the
/// server's own events; a superuser sees all.
fn event_log(ctx: &Ctx<'_>, p: Params<'_>) -> Reply {
    let mut names = Vec::new();
    if let Some(e) = p.opt_str("event")? {
        names.push(e.to_owned());
    }
    match p.value("events") {
        None => {}
        Some(Value::Array(list)) => {
            for v in list {
                let n = v.as_str().ok_or_else(|| {
                    ApiError("parameter \"events\" must be a list of names".into())
                })?;
                names.push(n.to_owned());
            }
        }
        Some(Value::String(one)) => names.push(one.clone()),
        Some(_) => {
            return Err(ApiError(
                "parameter \"events\" must be a list of names".into(),
            ))
        }
    }
    let filter = super::events::Filter {
        start_time: p.opt_i64("startTime")?,
        end_time: p.opt_i64("endTime")?,
        events: names,
        limit: usize::try_from(p.opt_u64("limit")?.unwrap_or(1000)).unwrap_or(usize::MAX),
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

/// A token's expiry from `expiryTime` (µs) or `expirySeconds` (from now); `None` = never.
///
/// # Errors
/// An expiry in the past.
pub fn expiry(p: Params<'_>, now: Micros, command: &str) -> Result<Option<Micros>, ApiError> {
    let expiry = match (p.opt_i64("expiryTime")?, p.opt_i64("expirySeconds")?) {
        (Some(t), _) => Some(t),
        (None, Some(s)) => Some(now.saturating_add(s.saturating_mul(1_000_000))),
        (None, None) => None,
    };
    if expiry.is_some_and(|t| t <= now) {
        return Err(ApiError(format!("{command}: the expiry is in the past")));
    }
    Ok(expiry)
}

/// Compares in time that depends only on the lengths (tokens and hashes have fixed lengths).
/// Compares two secrets (tokens, password hashes) in constant time: both are hashed with
/// SHA-256 first, so time can depend neither on where they differ nor on their lengths, and
/// the digests are compared without an early exit (`black_box` keeps the compiler from
/// adding one).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let da = ring::digest::digest(&ring::digest::SHA256, a);
    let db = ring::digest::digest(&ring::digest::SHA256, b);
    let diff = da
        .as_ref()
        .iter()
        .zip(db.as_ref())
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

/// Replaces a token's old-format (SHA-256) or weaker password hash by the current KDF form,
/// after a login proved `password` right.
fn upgrade_token_hash(ctx: &Ctx<'_>, token: &str, password: &str) {
    let mut objs = ctx.server.objects.lock();
    let Some(rec) = objs.tokens.get_mut(token) else {
        return;
    };
    rec.password_hash = Some(super::secrets::hash_password(&rec.salt, password));
    drop(objs);
    ctx.server.save();
    let shown = super::secrets::shown_token(token);
    crate::log!("auth: token {shown}: password hash upgraded to PBKDF2");
}

fn superuser(ctx: &mut Ctx<'_>) -> Reply {
    let Some(user) = &ctx.session.user else {
        return Err(ApiError("superuser: not authenticated".into()));
    };
    if ctx.session.token.is_some() {
        return Err(ApiError(
            "superuser: not available to API token logins".into(),
        ));
    }
    if !ctx.server.supers.is_superuser(user) {
        return Err(ApiError(format!(
            "superuser: {} is not a superuser (see --superuser and --supergroup)",
            user.name
        )));
    }
    ctx.session.superuser = true;
    ok("Superuser rights granted.", Value::Null)
}

fn create_api_token(ctx: &mut Ctx<'_>, p: Params<'_>) -> Reply {
    if ctx.server.args.api_disable_api_tokens {
        return Err(ApiError(
            "createAPIToken: API tokens are disabled on this server".into(),
        ));
    }
    if ctx.session.token.is_some() {
        return Err(ApiError(
            "createAPIToken: an API token cannot create tokens".into(),
        ));
    }
    let now = now_us();
    let expiry = expiry(p, now, "createAPIToken")?;
    let path = match p.opt_str("path")? {
        Some(path) => Some(format!("/{}", sandbox::clean_relative(path)?)),
        None => None,
    };
    let permissions = match p.value("permissions") {
        None => PERMISSIONS.iter().map(|s| (*s).to_owned()).collect(),
        Some(Value::Array(list)) => {
            let mut out = Vec::new();
            for v in list {
                let s = v
                    .as_str()
                    .filter(|s| PERMISSIONS.contains(s))
                    .ok_or_else(|| {
                        ApiError(format!(
                            "createAPIToken: unknown permission {v}; known: {}",
                            PERMISSIONS.join(", ")
                        ))
                    })?;
                out.push(s.to_owned());
            }
            out
        }
        Some(_) => {
            return Err(ApiError(
                "parameter \"permissions\" must be an array".into(),
            ))
        }
    };
    let salt = new_id();
    let rec = TokenRec {
        token: new_id(),
        owner: owner_of(ctx),
        password_hash: p
            .opt_str("password")?
            .map(|pw| super::secrets::hash_password(&salt, pw)),
        salt,
        description: p.opt_str("description")?.unwrap_or("").to_owned(),
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

fn create_destination(ctx: &mut Ctx<'_>, p: Params<'_>) -> Reply {
    let address = p.str("destinationAddress")?.trim().to_owned();
    if address.is_empty() || address.contains(char::is_whitespace) {
        return Err(ApiError(
            "parameter \"destinationAddress\" must be a host name or IP".into(),
        ));
    }
    let port16 = |name: &str| -> Result<Option<u16>, ApiError> {
        p.opt_u64(name)?
            .map(|v| {
                u16::try_from(v).ok().filter(|&v| v > 0).ok_or_else(|| {
                    ApiError(format!(
                        "parameter {name:?} must be a port number (1-65535)"
                    ))
                })
            })
            .transpose()
    };
    let port = port16("destinationPort")?;
    let api_port = port16("destinationApiPort")?.unwrap_or(8886);
    let credentials = match (p.opt_str("token")?, p.opt_str("userName")?) {
        (Some(token), _) => Some(Credentials::Token {
            token: token.to_owned(),
            password: p
                .opt_str("tokenPassword")?
                .or(p.opt_str("password")?)
                .map(str::to_owned),
        }),
        (None, Some(user)) => Some(Credentials::Password {
            user: user.to_owned(),
            password: p.str("password")?.to_owned(),
        }),
        (None, None) => None,
    };
    let send_rate_max = p.opt_u64("sendRateMax")?.filter(|&r| r > 0);
    let rate_policy = match p.opt_str("ratePolicy")? {
        None => None,
        Some(s) => Some(
            s.parse::<jetstream_core::RateMode>()
                .map_err(|e| ApiError(format!("parameter \"ratePolicy\": {e}")))?
                .as_str()
                .to_owned(),
        ),
    };
    let send_port = match p.opt_u64("sendPort")? {
        None | Some(0) => None,
        Some(v) => Some(u16::try_from(v).map_err(|_| {
            ApiError("parameter \"sendPort\" must be a port number (1-65535, 0 = dynamic)".into())
        })?),
    };
    let pinned = p
        .opt_str("permittedDestinationPublicKey")?
        .map(str::to_owned);
    let owner = owner_of(ctx);
    let mut objs = ctx.server.objects.lock();
    // Idempotent: identical parameters give the existing destination.
    if let Some(d) = objs.destinations.values().find(|d| {
        d.owner == owner
            && d.address == address
            && d.port == port
            && d.api_port == api_port
            && d.credentials == credentials
            && d.send_rate_max == send_rate_max
            && d.rate_policy == rate_policy
            && d.send_port == send_port
            && (pinned.is_none() || d.public_key == pinned)
    }) {
        let v = d.view(objs.queued(&d.id));
        return ok("Destination exists.", v);
    }
    let rec = DestinationRec {
        id: new_id(),
        owner,
        address,
        api_port,
        port,
        credentials,
        send_rate_max,
        rate_policy,
        send_port,
        public_key: pinned,
        creation_time: now_us(),
        ip: None,
        learned_port: None,
        last_server_id: None,
        last_server_uid: None,
        last_error: None,
        last_error_message: None,
        last_send_time: None,
        last_recv_time: None,
        state: "disconnected",
        user_data: Default::default(),
    };
    let view = rec.view(0);
    crate::log!(
        "api: destination {} ({}:{}) created by {}",
        rec.id,
        rec.address,
        api_port,
        rec.owner.user
    );
    let (destination, sender) = destination_trigger_args(ctx, &rec);
    let destination_id = rec.id.clone();
    objs.destinations.insert(rec.id.clone(), rec);
    drop(objs);
    ctx.server.save();
    ctx.server.events.record("destinationCreated", view.clone());
    ctx.server.emit(super::ServerEvent::DestinationCreated {
        destination_id,
        destination,
        sender,
    });
    ok("Destination created.", view)
}

fn delete_destination(ctx: &mut Ctx<'_>, p: Params<'_>) -> Reply {
    let id = p.id("destinationId")?;
    let mut objs = ctx.server.objects.lock();
    find(ctx, &objs.destinations, &id)?;
    if objs
        .transfers
        .values()
        .any(|t| t.destination_id == id && !t.status.is_final() && t.status != TxStatus::Suspended)
    {
        return Err(ApiError(format!(
            "destination {id} has transfers queued or running: cancel them first"
        )));
    }
    let gone = objs.destinations.remove(&id);
    drop(objs);
    ctx.server.drop_destination_engine(&id);
    ctx.server.save();
    if let Some(d) = gone {
        ctx.server.events.record("destinationDeleted", d.view(0));
        let (destination, sender) = destination_trigger_args(ctx, &d);
        ctx.server.emit(super::ServerEvent::DestinationDeleted {
            destination_id: d.id,
            destination,
            sender,
        });
    }
    ok("Destination deleted.", Value::Null)
}

fn create_transfer(ctx: &mut Ctx<'_>, p: Params<'_>) -> Reply {
    let destination_id = p.id("destinationId")?;
    let manifest_id = p.id("manifestId")?;
    let destination_path = p.opt_str("destinationPath")?.unwrap_or("");
    let clean = sandbox::clean_relative(destination_path)
        .map_err(|e| ApiError(format!("destinationPath: {e}")))?;
    let priority = p.opt_i64("priority")?.unwrap_or(100);
    let mut objs = ctx.server.objects.lock();
    find(ctx, &objs.destinations, &destination_id)?;
    let m = find(ctx, &objs.manifests, &manifest_id)?;
    if m.status != "complete" {
        return Err(ApiError(format!(
            "manifest {manifest_id} is {}{}: only a complete manifest can be sent",
            m.status,
            m.error_message
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        )));
    }
    let now = now_us();
    let rec = TransferRec {
        id: new_id(),
        owner: owner_of(ctx),
        destination_id,
        manifest_id,
        destination_path: format!("/{clean}"),
        priority,
        status: TxStatus::Pending,
        error_message: None,
        request_time: now,
        queue_time: now,
        start_time: None,
        end_time: None,
        failed_files: Vec::new(),
        done: Default::default(),
        live: Default::default(),
        total_bytes: m.total_size(),
        total_files: m.files.len() as u64,
        attempts: 0,
        user_data: Default::default(),
    };
    let view = rec.view();
    crate::log!("api: transfer {} queued by {}", rec.id, rec.owner.user);
    objs.transfers.insert(rec.id.clone(), rec);
    drop(objs);
    ctx.server.save();
    ctx.server.kick();
    ok("Transfer created.", view)
}

fn control(ctx: &mut Ctx<'_>, p: Params<'_>, stop: transfers::Stop) -> Reply {
    let id = p.id("transferId")?;
    {
        let objs = ctx.server.objects.lock();
        find(ctx, &objs.transfers, &id)?;
    }
    let view = transfers::stop(ctx.server, &id, stop)?;
    ok("Transfer updated.", view)
}

fn resume_transfer(ctx: &mut Ctx<'_>, p: Params<'_>) -> Reply {
    let id = p.id("transferId")?;
    let mut objs = ctx.server.objects.lock();
    let t = find_mut(ctx, &mut objs.transfers, &id)?;
    match t.status {
        TxStatus::Suspended | TxStatus::Error | TxStatus::Cancelled => {
            t.status = TxStatus::Pending;
            t.error_message = None;
            t.end_time = None;
            t.failed_files.clear();
        }
        TxStatus::Pending | TxStatus::Sending => {}
        TxStatus::Complete => {
            return Err(ApiError(format!("transfer {id} is already complete")));
        }
    }
    let view = t.view();
    drop(objs);
    ctx.server.save();
    ctx.server.kick();
    ok("Transfer resumed.", view)
}

fn set_send_rate(ctx: &mut Ctx<'_>, p: Params<'_>) -> Reply {
    let rate = p
        .opt_u64("sendRateMax")?
        .ok_or_else(|| ApiError("missing parameter \"sendRateMax\" (kbit/s)".into()))?;
    let rate = (rate > 0).then_some(rate);
    // The bandwidth manager applies the new cap to running transfers within 200 ms.
    let mut objs = ctx.server.objects.lock();
    if let Some(tid) = p.opt_text("transferId")? {
        let t = find(ctx, &objs.transfers, &tid)?;
        let run = objs.running.get(&t.id).cloned().ok_or_else(|| {
            ApiError(format!(
                "transfer {tid} is not running: set the destination's rate instead"
            ))
        })?;
        run.set_rate(rate);
    } else {
        let did = p.id("destinationId")?;
        let d = find_mut(ctx, &mut objs.destinations, &did)?;
        d.send_rate_max = rate;
    }
    drop(objs);
    ctx.server.save();
    ok("Send rate set.", json!({ "sendRateMax": rate }))
}
