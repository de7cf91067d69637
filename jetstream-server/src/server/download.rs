//! `send.startDownload`: a client that links the engine (`jscp` pulling files) asks this
//! server to send a manifest to the client's own engine. The client's address is the API
//! connection's peer address; the keys come from that TLS session, as for
//! `recv.startTransfer`. The download is a transfer record of the user's, tied to the
//! connection: if the client goes away, the sending stops (and resumes when it asks again).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jetstream_api::params::StartDownload;
use jetstream_core::transfer::TransferState;
use jetstream_core::Destination;
use serde_json::Value;

use super::api::{ApiError, Ctx};
use super::commands::{owner_of, visible};
use super::objects::{now_us, Counters, TransferRec, TxStatus};
use super::receive::{session_keys, KeyOffer};
use super::Server;

type Reply = Result<(String, Value), ApiError>;

/// What marks a download's record: its `destinationId` is `client:<ip:port>`.
pub const CLIENT_PREFIX: &str = "client:";

/// `send.startDownload {manifestId, transferId, sessionId, cipher, receiverPort}`.
///
/// # Errors
/// Not TLS, an unknown manifest, a bad port, or the engine refusing.
pub fn start(ctx: &mut Ctx<'_>, p: StartDownload) -> Reply {
    let offer = KeyOffer {
        transfer_id: &p.transfer_id,
        session_id: p.session_id,
        ciphers: p.ciphers.as_deref(),
        cipher: p.cipher.as_deref(),
    };
    let keys = session_keys(ctx, offer, "send.startDownload")?;
    let (manifest_id, transfer_id) = (p.manifest_id, p.transfer_id);
    let port = Some(p.receiver_port)
        .filter(|&v| v > 0)
        .ok_or_else(|| ApiError::new("parameter \"receiverPort\" must be a UDP port".into()))?;
    let rate = p.send_rate_max.filter(|&r| r > 0);
    let policy = p
        .rate_policy
        .as_deref()
        .map(str::parse::<jetstream_core::RateMode>)
        .transpose()
        .map_err(|e| ApiError::new(format!("parameter \"ratePolicy\": {e}")))?;
    let (manifest, total_bytes, total_files) = {
        let mut objs = ctx.server.objects.lock();
        let m = objs
            .manifests
            .get_mut(&manifest_id)
            .filter(|m| visible(ctx, &m.owner))
            .ok_or_else(|| ApiError::new(format!("no manifest {manifest_id}")))?;
        if m.status != "complete" {
            return Err(ApiError::new(format!(
                "manifest {manifest_id} is {}",
                m.status
            )));
        }
        (
            m.engine().map_err(ApiError::new)?,
            m.total_size(),
            m.files.len() as u64,
        )
    };
    if let Some(old) = ctx.server.objects.lock().transfers.get(&transfer_id) {
        if !visible(ctx, &old.owner) {
            return Err(ApiError::new(format!("transfer id {transfer_id} is taken")));
        }
    }
    // A shared token counts the download once everything else is known to be fine.
    if ctx.session.shared_manifest.is_some() {
        let token = ctx.session.token.clone().unwrap_or_default();
        super::shared::count_download(ctx.server, &token, &manifest_id)?;
    }
    let client = SocketAddr::new(ctx.session.peer.ip(), port);
    // The server-wide outgoing limit holds from the first datagram, not from the next tick.
    let cap = super::bandwidth::initial_send_cap(ctx.server, rate.map(|k| k.saturating_mul(1000)));
    let target = Destination::new(client)
        .send_rate_max(cap.map(jetstream_core::BitsPerSecond))
        .rate_mode(policy);
    let handle = ctx
        .server
        .send_engine()
        .send(target, keys, (*manifest).clone())
        .map_err(|e| ApiError::internal("starting the download", e))?;
    let now = now_us();
    let rec = TransferRec {
        id: transfer_id.clone(),
        owner: owner_of(ctx),
        destination_id: format!("{CLIENT_PREFIX}{client}"),
        manifest_id,
        destination_path: String::new(),
        priority: 0,
        status: TxStatus::Sending,
        error_message: None,
        error_code: None,
        request_time: now,
        queue_time: now,
        start_time: Some(now),
        end_time: None,
        failed_files: Vec::new(),
        done: Counters::default(),
        live: Counters::default(),
        total_bytes,
        total_files,
        attempts: 1,
        user_data: Default::default(),
    };
    let mut objs = ctx.server.objects.lock();
    objs.transfers.insert(transfer_id.clone(), rec);
    objs.downloads
        .insert(transfer_id.clone(), (handle.clone(), rate));
    drop(objs);
    ctx.server.rebalance_bandwidth();
    ctx.session.downloads.push(handle.clone());
    let server = ctx.server.clone();
    let id = transfer_id.clone();
    std::thread::Builder::new()
        .name("download".into())
        .spawn(move || watch(&server, &id, &handle))
        .map_err(|e| ApiError::internal("watching the download", e))?;
    crate::log!("send: download {transfer_id} to {client} started");
    let started = jetstream_api::types::DownloadStart { transfer_id };
    Ok(("Sending.".into(), super::objects::to_json(&started)))
}

/// Keeps the download's record up to date until it ends.
fn watch(server: &Arc<Server>, id: &str, handle: &jetstream_core::Transfer) {
    loop {
        let done = handle.wait(Duration::from_millis(250));
        let st = handle.status();
        let mut objs = server.objects.lock();
        let Some(t) = objs.transfers.get_mut(id) else {
            objs.downloads.remove(id);
            drop(objs);
            server.save();
            return;
        };
        t.live = Counters::from_status(&st);
        if done.is_ok() || st.state.is_final() {
            t.end_time = Some(now_us());
            (t.status, t.error_message, t.error_code) = match st.state {
                TransferState::Complete => (TxStatus::Complete, None, None),
                TransferState::Cancelled => (TxStatus::Cancelled, None, None),
                _ => (TxStatus::Error, st.error_message.clone(), st.failure),
            };
            t.failed_files = st.failed_files.iter().map(Into::into).collect();
            if t.status == TxStatus::Complete {
                server.metrics.files_sent(t.total_files);
            }
            objs.downloads.remove(id);
            drop(objs);
            server.object_ended.notify_all();
            server.save();
            return;
        }
    }
}
