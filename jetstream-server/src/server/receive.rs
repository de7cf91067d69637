//! The receiving side of server-to-server transfers: `recv.startTransfer` (called by the
//! sending server over its TLS API connection, logged in as the receiving user), the receive
//! records, and `recv.getTransfersAsync` / `recv.getSourcesAsync`.
//!
//! The data keys are never sent: both servers derive them from the TLS session they share
//! ([`derive_keys`]), so only the two ends of that authenticated connection hold them.

use std::collections::BTreeMap;
use std::sync::Arc;

use jetstream_api::params::{StartReceive, TransferRate};
use jetstream_api::types as api;
use jetstream_client::session::derive_keys;
use jetstream_core::transfer::TransferState;
use jetstream_core::{Role, SessionId, TransferKeys};
use serde_json::Value;

use super::api::{ApiError, Ctx, Session};
use super::objects::{now_us, to_json, to_us, Counters, Owner, RecvRec};
use super::Server;
use crate::sandbox;

type Reply = Result<(String, Value), ApiError>;

/// For a command that starts a data session (`recv.startTransfer`, `send.startDownload`):
/// checks the connection is TLS, reads `transferId`, `sessionId` (16 hex) and `cipher`, and
/// derives the session's keys from the connection.
///
/// # Errors
/// A plain connection, a missing or malformed parameter, or a failed key export.
pub fn session_keys(
    ctx: &Ctx<'_>,
    offer: KeyOffer<'_>,
    command: &str,
) -> Result<TransferKeys, ApiError> {
    if !ctx.stream.is_tls() {
        return Err(ApiError::new(format!(
            "{command}: needs a TLS connection (the data keys come from it)"
        )));
    }
    // The peer offers `ciphers` (best first) or one `cipher`; take the first at or above our
    // floor.
    let offered: Vec<String> = match (offer.ciphers, offer.cipher) {
        (Some(list), _) => list.to_vec(),
        (None, Some(one)) => vec![one.to_owned()],
        (None, None) => vec!["aes-256-gcm".to_owned()],
    };
    let live = ctx.server.live();
    let floor = live.min_cipher.as_str();
    let cipher = super::ciphers::choose(&offered, floor).inspect_err(|e| {
        crate::warn!("{command}: refused {}: {}", ctx.session.peer, e.message);
    })?;
    let stream = ctx.stream;
    derive_keys(
        |label, context, out| stream.export_keying_material(label, context, out),
        offer.transfer_id,
        SessionId(offer.session_id),
        cipher,
    )
    .map_err(|e| ApiError::internal("deriving the data keys", e))
}

/// What a sender or a pulling client offers for a data session's keys
/// (`recv.startTransfer`, `send.startDownload`).
#[derive(Clone, Copy, Debug)]
pub struct KeyOffer<'a> {
    /// The transfer's id.
    pub transfer_id: &'a str,
    /// The data session's id.
    pub session_id: u64,
    /// The ciphers offered, best first.
    pub ciphers: Option<&'a [String]>,
    /// The one cipher offered, without `ciphers`.
    pub cipher: Option<&'a str>,
}

/// Whether a receive record of `owner` may be replaced by `session` (a sender retrying): the
/// same user, through the same token (or none).
fn same_claimant(owner: &Owner, session: &Session) -> bool {
    session
        .user
        .as_ref()
        .is_some_and(|u| u.name == owner.user && session.token == owner.token)
}

/// Refuses a `transferId` that another user's (or another token's) receive holds: receives
/// belong to the session owner that started them, and a clash is refused rather than letting
/// one user cancel and re-own another's transfer.
///
/// # Errors
/// The id is taken by someone else.
fn claimable(
    receives: &BTreeMap<String, RecvRec>,
    transfer_id: &str,
    session: &Session,
) -> Result<(), ApiError> {
    match receives.get(transfer_id) {
        Some(r) if !same_claimant(&r.owner, session) => Err(ApiError::new(format!(
            "recv.startTransfer: transfer id {transfer_id} is in use: the sending server must \
             choose another"
        ))),
        _ => Ok(()),
    }
}

/// `recv.startTransfer`: prepares `<sandbox>/<destinationPath>` and expects the data.
///
/// # Errors
/// Not over TLS, a path outside the sandbox, or the engine refusing the session.
pub fn start(ctx: &mut Ctx<'_>, p: StartReceive) -> Reply {
    ctx.server.trust.check(ctx.session.peer_key.as_deref())?;
    let offer = KeyOffer {
        transfer_id: &p.transfer_id,
        session_id: p.session_id,
        ciphers: p.ciphers.as_deref(),
        cipher: p.cipher.as_deref(),
    };
    let keys = session_keys(ctx, offer, "recv.startTransfer")?;
    let transfer_id = p.transfer_id;
    claimable(
        &ctx.server.objects.lock().receives,
        &transfer_id,
        ctx.session,
    )?;
    let cipher = keys.cipher().name();
    let limits = ctx.server.bandwidth_limits();
    // Transfers received now, besides this one (a retry replaces its own earlier session).
    let others = {
        let mut objs = ctx.server.objects.lock();
        objs.receives
            .values_mut()
            .filter(|r| r.id != transfer_id)
            .map(is_receiving)
            .filter(|&b| b)
            .count() as u64
    };
    let max = limits.incoming_max_connections;
    if max > 0 && others >= max {
        return Err(ApiError::of(
            jetstream_api::ErrorKind::Busy,
            format!(
                "this server is receiving {others} transfers, its limit (incomingMaxConnections); \
             try again later"
            ),
        ));
    }
    let destination_path = p.destination_path.unwrap_or_else(|| "/".into());
    let total_size = p.total_size.unwrap_or(0);
    let server = ctx.server;
    let user = ctx
        .session
        .user
        .clone()
        .ok_or_else(|| ApiError::new("not authenticated".into()))?;
    // The destination path is a path of the user's view (their sandbox's resources, below a
    // token's path): the resource's directory is what the server may create and give to the
    // user, everything below it is created as the user.
    let at = server
        .resources_of(ctx.session)?
        .locate(&destination_path)
        .map_err(|e| {
            ApiError::of(
                e.kind,
                format!("destinationPath {destination_path:?}: {}", e.message),
            )
        })?;
    let (base, rel) = (at.root, at.rel);
    // Running as root for another user, everything below the sandbox is done with the user's
    // file-system identity, so the user's permissions apply (a directory they may not write
    // stays unwritten). Only the sandbox itself may be created by root and given to the user,
    // and only where no user can swap a link in (`sandbox::open`). The engine writes beneath
    // the descriptor resolved here, never the path string.
    let ids = server.user_ids(&user);
    let dest_err = |e: &dyn std::fmt::Display| {
        ApiError::new(format!("destinationPath {destination_path:?}: {e}"))
    };
    let dir = sandbox::open_receive_dir(&base, &rel, ids.as_ref()).map_err(|e| dest_err(&e))?;
    let root = dir.path().to_path_buf();
    // A sender retrying while our old session still runs: stop that one first (the engine
    // handles commands in order, so its files are closed before the new session opens them).
    if let Some(old) = server.objects.lock().receives.get(&transfer_id) {
        if let Some(h) = old
            .handle
            .as_ref()
            .filter(|_| same_claimant(&old.owner, ctx.session))
        {
            h.cancel();
        }
    }
    let engine = server.receive_engine();
    let handle = engine
        .receive_in(keys, dir, ids)
        .map_err(|e| ApiError::internal("starting the receive", e))?;
    let rec = RecvRec {
        id: transfer_id.clone(),
        owner: Owner {
            user: user.name.clone(),
            token: ctx.session.token.clone(),
            token_session: ctx.session.token_session.clone(),
        },
        root: root.clone(),
        destination_path,
        source_ip: ctx.session.peer.ip(),
        source_port: ctx.session.peer.port(),
        status: "receiving".into(),
        total_size,
        last_recv_time: None,
        last_send_time: None,
        last_error_time: None,
        error_message: None,
        error_code: None,
        counters: Counters::default(),
        source_public_key: p.source_public_key,
        handle: Some(handle),
        rate_cap_kbps: None,
        receiver_port: engine.info().map(|i| i.local_addr.port()).unwrap_or(0),
        attempt: ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    };
    let attempt = rec.attempt;
    // The sender paces to its share of our incoming limit from the first datagram (the
    // bandwidth manager updates it every 200 ms and the sender asks every second).
    let mut rec = rec;
    let initial_cap = limits
        .effective(u64::MAX, u64::MAX)
        .0
        .map(|bps| (bps / 1000 / (others + 1)).max(1));
    rec.rate_cap_kbps = initial_cap;
    {
        // Checked again with the insertion, under one lock: another user's receive that took
        // this id meanwhile is neither cancelled nor replaced.
        let mut objs = server.objects.lock();
        if let Err(e) = claimable(&objs.receives, &transfer_id, ctx.session) {
            drop(objs);
            if let Some(h) = &rec.handle {
                h.cancel();
            }
            return Err(e);
        }
        objs.receives.insert(transfer_id.clone(), rec);
    }
    ctx.session.receiving.push((transfer_id.clone(), attempt));
    crate::log!(
        "recv: transfer {transfer_id} from {} as {} into {}",
        ctx.session.peer,
        user.name,
        root.display()
    );
    let mut port = engine
        .info()
        .map(|i| i.local_addr.port())
        .map_err(|e| ApiError::internal("reading the receive port", e))?;
    if ctx.session.via_relay {
        // The sender reaches us through the relay: it sends to the relay's public port.
        port = (*ctx.server.relay.data_port.lock())
            .ok_or_else(|| ApiError::new("the relay link is down: try again in a moment".into()))?;
    }
    let started = api::ReceiveStart {
        transfer_id,
        receiver_port: port,
        cipher: api::Cipher::from_wire(cipher),
        rate_limit_kbps: initial_cap,
    };
    Ok(("Receiving.".into(), to_json(&started)))
}

/// How long a receive whose sender hung up may take to end on its own before it is stopped.
const END_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Starts of receives, numbered (see `RecvRec::attempt`).
static ATTEMPTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// When a sending server's connection ends, its unfinished receive sessions stop (they are
/// checkpointed; the sender reconnects and resumes).
pub fn connection_closed(server: &Arc<Server>, session: &Session) {
    if session.receiving.is_empty() {
        return;
    }
    // The sender closes its connection as soon as its side has ended, which can be a moment
    // before this engine has taken in the session's last frames. Give the engine that moment
    // to record its own outcome (e.g. which file the sender could not read) before calling the
    // end a disconnection.
    let handles: Vec<_> = {
        let objs = server.objects.lock();
        session
            .receiving
            .iter()
            .filter_map(|(id, attempt)| objs.receives.get(id).filter(|r| r.attempt == *attempt))
            .filter_map(|r| r.handle.clone())
            .collect()
    };
    let deadline = std::time::Instant::now() + END_GRACE;
    for h in handles {
        let _ = h.wait(deadline.saturating_duration_since(std::time::Instant::now()));
    }
    let mut objs = server.objects.lock();
    for (id, attempt) in &session.receiving {
        // A retry on another connection replaced the record: that attempt is not ours (the
        // old connection's end can be noticed after the new one started).
        let Some(rec) = objs.receives.get_mut(id).filter(|r| r.attempt == *attempt) else {
            continue;
        };
        refresh(rec);
        if rec.status == "receiving" {
            if let Some(h) = &rec.handle {
                h.cancel();
            }
            rec.status = "error".into();
            rec.last_error_time = Some(now_us());
            rec.error_message =
                Some("the sending server disconnected; it will resume the transfer".into());
        }
    }
}

/// Updates a record from its engine transfer.
fn refresh(rec: &mut RecvRec) {
    let Some(h) = &rec.handle else { return };
    let st = h.status();
    rec.counters = Counters::from_status(&st);
    // The sender's data address (its send port) once its datagrams arrive; until then the
    // address of its API connection.
    if let Some(peer) = st.peer {
        rec.source_ip = peer.ip();
        rec.source_port = peer.port();
    }
    if st.packets_recv > 0 {
        rec.last_recv_time = Some(now_us());
    }
    if st.packets_sent > 0 {
        rec.last_send_time = Some(now_us());
    }
    if rec.status != "receiving" {
        return;
    }
    match st.state {
        TransferState::Complete => rec.status = "complete".into(),
        TransferState::Error | TransferState::Cancelled => {
            rec.status = "error".into();
            rec.last_error_time = st.end_time.map(to_us).or(Some(now_us()));
            rec.error_message = st.error_message.clone();
            rec.error_code = st.failure;
        }
        _ => {}
    }
    debug_assert_eq!(st.role, Role::Receiver);
}

/// `recv.getTransfersAsync`.
pub fn list(server: &Server, visible: impl Fn(&Owner) -> bool) -> Value {
    to_json(&list_api(server, visible))
}

/// `recv.getTransfersAsync`'s structures: the receives `visible` lets the caller see.
pub fn list_api(server: &Server, visible: impl Fn(&Owner) -> bool) -> Vec<api::ReceiveTransfer> {
    let mut objs = server.objects.lock();
    objs.receives
        .values_mut()
        .filter(|r| visible(&r.owner))
        .map(|r| {
            refresh(r);
            r.to_api()
        })
        .collect()
}

/// `recv.getSourcesAsync`: one entry per sending server address.
pub fn sources(server: &Server, visible: impl Fn(&Owner) -> bool) -> Value {
    to_json(&sources_api(server, visible))
}

/// `recv.getSourcesAsync`'s structures: one per sending server address, of the receives
/// `visible` lets the caller see.
pub fn sources_api(server: &Server, visible: impl Fn(&Owner) -> bool) -> Vec<api::Source> {
    struct Agg {
        ip: std::net::IpAddr,
        active: u64,
        complete: u64,
        error: u64,
        bytes: u64,
        port: u16,
        key: Option<String>,
    }
    // Keyed by the address as text: the list is in that order.
    let mut by_ip: BTreeMap<String, Agg> = BTreeMap::new();
    let mut objs = server.objects.lock();
    for r in objs.receives.values_mut().filter(|r| visible(&r.owner)) {
        refresh(r);
        let a = by_ip.entry(r.source_ip.to_string()).or_insert(Agg {
            ip: r.source_ip,
            active: 0,
            complete: 0,
            error: 0,
            bytes: 0,
            port: 0,
            key: None,
        });
        match r.status.as_str() {
            "receiving" => a.active += 1,
            "complete" => a.complete += 1,
            _ => a.error += 1,
        }
        a.bytes += r.counters.bytes_recv;
        a.port = r.source_port;
        a.key = a.key.take().or_else(|| r.source_public_key.clone());
    }
    let since = server.start_time;
    let secs = ((now_us() - since).max(1)) as f64 / 1e6;
    by_ip
        .into_values()
        .map(|a| {
            let rate = (a.bytes as f64 * 8.0 / 1000.0 / secs) as u64;
            api::Source {
                source_ip: a.ip,
                source_port: a.port,
                active_transfer_count: a.active,
                complete_transfer_count: a.complete,
                error_transfer_count: a.error,
                inactive_transfer_count: a.complete + a.error,
                ave_recv_rate: rate,
                ave_recv_rate_window: rate,
                destination_public_key: a.key,
                encrypted_connection_state: if a.active > 0 {
                    api::ConnectionState::Connected
                } else {
                    api::ConnectionState::Disconnected
                },
                encryption_enabled: true,
            }
        })
        .collect()
}

/// An engine event: a receive that completed fires the `recv.transferComplete` trigger with
/// the transfer id and the receiving user, and on stdin one line per file: the manifest path
/// and the absolute path written, separated by a tab (the seed's reading loop).
pub fn engine_event(server: &Server, ev: &jetstream_core::TriggerEvent) {
    let jetstream_core::TriggerEvent::TransferComplete {
        transfer_id,
        role: Role::Receiver,
        files,
        ..
    } = ev
    else {
        return;
    };
    let found = {
        let objs = server.objects.lock();
        objs.receives
            .values()
            .find(|r| r.handle.as_ref().is_some_and(|h| h.id() == *transfer_id))
            .map(|r| (r.id.clone(), r.owner.user.clone()))
    };
    let Some((id, user)) = found else {
        return;
    };
    crate::log!(
        "recv: transfer {id} for {user} complete ({} files)",
        files.len()
    );
    server.metrics.files_received(files.len() as u64);
    server.emit(super::ServerEvent::TransferComplete {
        transfer_id: id,
        role: Role::Receiver,
        user,
        files: files
            .iter()
            .map(|(path, written)| super::events::ReceivedFile::new(path, written.clone()))
            .collect(),
    });
}

/// `recv.transferRate {transferId}`: what this receiver allows the transfer now (its share of
/// the incoming limit, kbit/s; `null` = no limit). The sending side asks every second.
///
/// # Errors
/// An unknown transfer.
pub fn transfer_rate(ctx: &mut Ctx<'_>, p: &TransferRate) -> Reply {
    let id = p.transfer_id.as_str();
    let objs = ctx.server.objects.lock();
    let r = objs
        .receives
        .get(id)
        .filter(|r| super::commands::visible(ctx, &r.owner))
        .ok_or_else(|| ApiError::new(format!("no receive transfer {id}")))?;
    let rate = api::ReceiveRate {
        rate_limit_kbps: r.rate_cap_kbps,
        transfer_id: id.to_owned(),
    };
    Ok(("Transfer rate.".into(), to_json(&rate)))
}

/// Whether a receive is moving data (refreshed from its engine transfer).
pub fn is_receiving(rec: &mut RecvRec) -> bool {
    refresh(rec);
    rec.status == "receiving"
}
