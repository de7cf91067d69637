//! The API commands (reference §3): server-level (un-prefixed), `send.*` and `recv.*`.
//!
//! [`dispatch`] takes a request as it arrived (a name and its JSON parameters) and runs it:
//! the command's description ([`jetstream_api::Meta`]) says who may call it, whether a
//! download link may, and whether it runs in the background; its parameters are decoded once
//! into the command's struct ([`jetstream_api::Request`]), and the handler gets that struct.
//! The handlers live with what they work on: logging in (`login`), API tokens (`tokens`),
//! async requests (`requests`), destinations, manifests and transfers, the other
//! server-level commands (`general`), and in the server's modules for receiving
//! ([`super::receive`]), download links ([`super::shared`]), pulls ([`super::download`]),
//! trusted senders ([`super::trust`]), discovery ([`super::discover`]) and making manifests
//! ([`super::manifests`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use jetstream_api::{Access, ErrorKind, Meta, Mode, Request};
use serde_json::{json, Value};

use super::api::{ApiError, Ctx};
use super::objects::{now_us, DestinationRec, ManifestRec, Owner, TokenRec, TransferRec};
use super::{transfers::Stop, Server};

mod destinations;
mod files;
mod general;
mod login;
mod manifests;
mod remaining;
mod requests;
mod sandboxes;
mod tokens;
mod transfers;

pub use tokens::{expiry, token_event};

type Reply = Result<(String, Value), ApiError>;

fn ok(message: &str, result: Value) -> Reply {
    Ok((message.to_owned(), result))
}

/// Runs one command: `name` as the client gave it (with `Async` or not), `params` its
/// parameters (an object, or `null` for none).
///
/// In order: the command must exist; a session whose token has expired or was deleted is
/// logged out; a download link may call only what [`Meta::link`] allows; the session must
/// have what [`Meta::access`] needs; then the parameters are decoded (an unknown, missing or
/// ill-typed parameter is an error naming it) and the command runs, now, or as an async
/// request ([`Meta::mode`]).
///
/// # Errors
/// The error message for the client.
pub fn dispatch(ctx: &mut Ctx<'_>, name: &str, params: Value) -> Reply {
    let Some((meta, is_async)) = jetstream_api::lookup(name) else {
        return Err(ApiError::of(
            ErrorKind::UnknownCommand,
            format!("unknown command {name:?}"),
        ));
    };
    let token_permissions = live_token_permissions(ctx, name, meta)?;
    // A download link's narrower rule first: its refusal says what a link may do.
    super::shared::restrict(ctx, name, meta, is_async)?;
    super::access::check(name, meta.access, ctx.session, token_permissions.as_deref())?;
    let request =
        Request::decode(meta.name, params).map_err(|e| ApiError::of(e.kind(), e.to_string()))?;
    super::shared::restrict_manifest(ctx, &request)?;
    match (meta.mode, is_async) {
        (Mode::Either, false) => run(ctx, request),
        (Mode::Either, true) => {
            // The commands are quick: an `xAsync` runs now, and its outcome is kept.
            let outcome = run(ctx, request);
            requests::keep(ctx, name, outcome)
        }
        (Mode::AsyncOnly, true) => {
            // What the files API needs of the session (user, sandbox), taken now.
            let caller = files::Caller::of(ctx);
            let id = ctx
                .server
                .spawn_request(owner_of(ctx), move |s| in_background(s, caller, request));
            ok(&format!("{name} queued."), json!({ "requestId": id }))
        }
        (Mode::AsyncOnly, false) => Err(ApiError::of(
            ErrorKind::BadParameters,
            format!("{name}: runs only in the background: call {name}Async"),
        )),
    }
}

/// The permissions of the token the session logged in with (`None`: no token). A token that
/// expired or was deleted stops working at once, also for the sessions that logged in with
/// it: they are logged out (except for the commands anyone may call).
fn live_token_permissions(
    ctx: &mut Ctx<'_>,
    name: &str,
    meta: &Meta,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(token) = ctx.session.token.clone() else {
        return Ok(None);
    };
    let alive = ctx
        .server
        .objects
        .lock()
        .tokens
        .get(&token)
        .filter(|t| !t.expired(now_us()))
        .map(|t| t.permissions.clone());
    match alive {
        Some(perms) => Ok(Some(perms)),
        None if meta.access != Access::Open => {
            ctx.session.user = None;
            ctx.session.token = None;
            ctx.session.token_session = None;
            ctx.session.shared_manifest = None;
            Err(ApiError::of(
                ErrorKind::NotAuthenticated,
                format!("{name}: the token this session logged in with has expired or was deleted"),
            ))
        }
        None => Ok(None),
    }
}

/// Runs a command that answers when done.
fn run(ctx: &mut Ctx<'_>, request: Request) -> Reply {
    use Request as R;
    match request {
        R::GetServerInfo(_) => ok("Server information.", super::info::server_info(ctx)),
        R::Auth(p) => login::auth(ctx, &p),
        R::AuthToken(p) => login::auth_token(ctx, &p),
        R::Echo(p) => general::echo(p),
        R::Superuser(_) => login::superuser(ctx),
        R::Sleep(p) => general::sleep(&p),
        R::Terminate(_) => general::terminate(ctx),
        R::GetRequestStatus(p) => requests::status(ctx, p.request_id, p.timeout_ms, false),
        R::GetRequestResult(p) => requests::status(ctx, p.request_id, p.timeout_ms, true),
        R::GetEventLog(p) => general::event_log(ctx, p),
        R::GarbageCollect(_) => general::garbage_collect(ctx),
        R::UpdateGarbageCollectSettings(p) => general::update_gc_settings(ctx, &p),
        R::UpdateBandwidthLimits(p) => general::update_bandwidth_limits(ctx, &p),
        R::CreateApiToken(p) => tokens::create(ctx, p),
        R::GetApiToken(p) => tokens::get(ctx, &p),
        R::GetApiTokens(_) => tokens::list(ctx),
        R::DeleteApiToken(p) => tokens::delete(ctx, &p),
        R::CreateDestination(p) => destinations::create(ctx, p),
        R::GetDestination(p) => destinations::get(ctx, &p),
        R::GetDestinations(_) => destinations::list(ctx),
        R::DeleteDestination(p) => destinations::delete(ctx, &p),
        R::CreateManifest(p) => super::manifests::create(ctx, p),
        R::GetManifest(p) => manifests::get(ctx, &p),
        R::GetManifests(_) => manifests::list(ctx),
        R::GetManifestFiles(p) => manifests::files(ctx, &p),
        R::DeleteManifest(p) => manifests::delete(ctx, &p),
        R::CreateTransfer(p) => transfers::create(ctx, p),
        R::GetTransfer(p) => transfers::get(ctx, &p),
        R::GetTransfers(p) => transfers::list(ctx, &p),
        R::SuspendTransfer(p) => transfers::control(ctx, &p.transfer_id, Stop::Suspend),
        R::ResumeTransfer(p) => transfers::resume(ctx, &p),
        R::CancelTransfer(p) => transfers::control(ctx, &p.transfer_id, Stop::Cancel),
        R::FailTransfer(p) => {
            let why = p
                .error_message
                .unwrap_or_else(|| "failed by request".into());
            transfers::control(ctx, &p.transfer_id, Stop::Fail(why))
        }
        R::DeleteTransfer(p) => transfers::delete(ctx, &p),
        R::SetSendRate(p) => transfers::set_send_rate(ctx, &p),
        R::StartDownload(p) => super::download::start(ctx, p),
        R::CreateSharedToken(p) => super::shared::create(ctx, p),
        R::GetSharedToken(p) => super::shared::get(ctx, &p),
        R::GetSharedTokens(_) => super::shared::list(ctx),
        R::DeleteSharedToken(p) => super::shared::delete(ctx, &p),
        R::StartReceive(p) => super::receive::start(ctx, p),
        R::TransferRate(p) => super::receive::transfer_rate(ctx, &p),
        R::GetReceiveTransfers(_) => ok(
            "Receive transfers.",
            super::receive::list(ctx.server, |o| visible(ctx, o)),
        ),
        R::GetSources(_) => ok(
            "Sources.",
            super::receive::sources(ctx.server, |o| visible(ctx, o)),
        ),
        R::AddAuthorizedClient(p) => {
            super::trust::add(ctx, &p.client_public_key, p.user_name.as_deref())
        }
        R::RemoveAuthorizedClient(p) => super::trust::remove(ctx, &p.client_public_key),
        R::AllowOnlyAuthorizedClients(p) => {
            super::trust::allow_only(ctx, p.only_authorized_clients_allowed)
        }
        R::GetSandboxMappings(_) => sandboxes::get(ctx),
        R::SetSandboxMapping(p) => sandboxes::set(ctx, p),
        R::DeleteSandboxMapping(p) => sandboxes::delete(ctx, &p),
        R::AuthClient(p) => super::trust::auth_client(ctx, &p),
        // Issue 18, item 5.
        R::GetConnection(p) => remaining::get_connection(ctx, &p),
        R::GetConnections(_) => remaining::get_connections(ctx),
        R::UpdateObjectUserData(p) => remaining::update_user_data(ctx, p),
        R::DeleteObjectUserData(p) => remaining::delete_user_data(ctx, p),
        R::WaitForManifest(p) => remaining::wait_for_manifest(ctx, &p),
        R::WaitForTransfer(p) => remaining::wait_for_transfer(ctx, &p),
        R::GetThirdPartyLicenses(_) => remaining::third_party_licenses(),
        R::SetLicenseKey(_) => remaining::set_license_key(),
        // `dispatch` sends these to `in_background` (their mode is `AsyncOnly`).
        R::SendDiscoverPacket(_) | R::RecvDiscoverPacket(_) => Err(ApiError::internal(
            "running a background command",
            "an async-only command reached run",
        )),
        R::LsRoots(_) | R::Ls(_) | R::Mkdir(_) | R::Mv(_) | R::Rm(_) | R::Du(_) => {
            Err(ApiError::internal(
                "running a background command",
                "a files command reached run",
            ))
        }
    }
}

/// Runs an async-only command on a request thread of its own (`caller`: what the files
/// commands need of the session that asked).
fn in_background(
    server: &Arc<Server>,
    caller: Result<files::Caller, ApiError>,
    request: Request,
) -> Reply {
    match request {
        Request::SendDiscoverPacket(p) => super::discover::send(server, &p),
        Request::RecvDiscoverPacket(p) => super::discover::recv(server, &p),
        Request::LsRoots(_) => files::ls_roots(caller),
        Request::Ls(p) => files::ls(caller, &p),
        Request::Mkdir(p) => files::mkdir(caller, &p),
        Request::Mv(p) => files::mv(caller, &p),
        Request::Rm(p) => files::rm(caller, &p),
        Request::Du(p) => files::du(caller, &p),
        other => Err(ApiError::internal(
            "running a background command",
            format!("{} is not async-only", other.meta().name),
        )),
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
        .ok_or_else(|| ApiError::not_found(format!("no {} {id}", T::KIND)))
}

/// As [`find`], for changing it.
fn find_mut<'a, T: Owned>(
    ctx: &Ctx<'_>,
    map: &'a mut BTreeMap<String, T>,
    id: &str,
) -> Result<&'a mut T, ApiError> {
    map.get_mut(id)
        .filter(|o| visible(ctx, o.owner()))
        .ok_or_else(|| ApiError::not_found(format!("no {} {id}", T::KIND)))
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
