//! The sending side of server-to-server transfers: a scheduler that starts queued transfers
//! (one at a time per destination, lowest `priority` first, then oldest), and one worker
//! thread per running transfer that logs in to the receiving server over TLS, derives the data
//! keys from that session, runs the engine, watches both, and resumes after interruptions.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jetstream_core::proto::crypto::Cipher;
use jetstream_core::transfer::TransferState;
use jetstream_core::{BitsPerSecond, Destination, FailureReason};
use parking_lot::{Condvar, Mutex};
use serde_json::Value;

use super::api::ApiError;
use super::objects::{now_us, Counters, Credentials, DestinationRec, FailedFileRec, TxStatus};
use super::Server;
use jetstream_api::params::{
    Auth, AuthClient, AuthToken, Echo, GetServerInfo, Secret, StartReceive, TransferRate,
};
use jetstream_api::Api as _;
use jetstream_api::ErrorKind;
use jetstream_client::client::{ApiClient, ClientError, ConnectOptions, Trust};
use jetstream_client::session::client_keys;

/// Why a running transfer is asked to stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// `send.suspendTransfer`: keep the progress, wait for `resumeTransfer`.
    Suspend,
    /// `send.cancelTransfer`.
    Cancel,
    /// `send.failTransfer` with its message.
    Fail(String),
    /// The server is shutting down: keep the status so the transfer resumes at the next start.
    Shutdown,
}

/// The control block of a running transfer, shared by its worker and the API.
#[derive(Debug, Default)]
pub struct RunCtl {
    stop: Mutex<Option<Stop>>,
    wake: Condvar,
    engine: Mutex<Option<jetstream_core::Transfer>>,
    /// `setSendRate` on this transfer (kbit/s).
    user_cap: Mutex<Option<u64>>,
    /// What the receiving server allows this transfer (kbit/s; its incoming limit's share).
    remote_cap: Mutex<Option<u64>>,
}

impl RunCtl {
    /// Caps this transfer's rate (kbit/s; `None` = uncapped); the bandwidth manager applies
    /// it with the other caps within 200 ms.
    pub fn set_rate(&self, kbps: Option<u64>) {
        *self.user_cap.lock() = kbps;
    }

    /// The caps on this transfer other than the server-wide limit: its own and the
    /// receiver's (kbit/s).
    fn own_caps(&self) -> (Option<u64>, Option<u64>) {
        (*self.user_cap.lock(), *self.remote_cap.lock())
    }

    /// This transfer's rate cap (kbit/s) before any server-wide share: `setSendRate` on it
    /// replaces its destination's `sendRateMax`; the receiver's share bounds both.
    pub fn effective_cap(&self, destination_cap: Option<u64>) -> Option<u64> {
        let (user, remote) = self.own_caps();
        [user.or(destination_cap), remote]
            .into_iter()
            .flatten()
            .min()
    }

    /// The running engine transfer, if any.
    pub fn engine(&self) -> Option<jetstream_core::Transfer> {
        self.engine.lock().clone()
    }

    /// Asks the worker to stop.
    pub fn request(&self, stop: Stop) {
        *self.stop.lock() = Some(stop);
        if let Some(t) = &*self.engine.lock() {
            t.cancel();
        }
        self.wake.notify_all();
    }

    fn stopped(&self) -> Option<Stop> {
        self.stop.lock().clone()
    }

    /// Sleeps up to `d`; returns early with the stop request if one comes.
    fn sleep(&self, d: Duration) -> Option<Stop> {
        let deadline = Instant::now() + d;
        let mut s = self.stop.lock();
        while s.is_none() {
            if self.wake.wait_until(&mut s, deadline).timed_out() {
                break;
            }
        }
        s.clone()
    }
}

/// Applies a user's stop request to a transfer and returns its new view.
///
/// # Errors
/// When the transfer has already ended.
pub fn stop(server: &Arc<Server>, id: &str, stop: Stop) -> Result<Value, ApiError> {
    let mut objs = server.objects.lock();
    let run = objs.running.get(id).cloned();
    let t = objs
        .transfers
        .get_mut(id)
        .ok_or_else(|| ApiError::new(format!("no transfer {id}")))?;
    if t.status.is_final() {
        return Err(ApiError::new(format!(
            "transfer {id} has already ended ({})",
            t.status.as_str()
        )));
    }
    match &stop {
        Stop::Suspend => t.status = TxStatus::Suspended,
        Stop::Cancel => {
            t.status = TxStatus::Cancelled;
            t.end_time = Some(now_us());
        }
        Stop::Fail(msg) => {
            t.status = TxStatus::Error;
            t.error_message = Some(msg.clone());
            t.end_time = Some(now_us());
        }
        Stop::Shutdown => {}
    }
    let view = t.view();
    drop(objs);
    server.object_ended.notify_all();
    if let Some(run) = run {
        run.request(stop);
    }
    server.save();
    server.kick();
    Ok(view)
}

/// The scheduler loop: runs until the server stops.
pub fn scheduler(server: &Arc<Server>, kicks: &crossbeam_channel::Receiver<()>) {
    while !server.is_stopping() {
        start_due(server);
        let _ = kicks.recv_timeout(Duration::from_secs(1));
    }
}

fn start_due(server: &Arc<Server>) {
    let mut objs = server.objects.lock();
    let busy: Vec<String> = objs
        .running
        .keys()
        .filter_map(|id| objs.transfers.get(id).map(|t| t.destination_id.clone()))
        .collect();
    let mut best: std::collections::BTreeMap<String, (i64, i64, String)> = Default::default();
    for t in objs.transfers.values() {
        if t.status != TxStatus::Pending || objs.running.contains_key(&t.id) {
            continue;
        }
        if busy.contains(&t.destination_id) {
            continue;
        }
        let key = (t.priority, t.queue_time, t.id.clone());
        let slot = best
            .entry(t.destination_id.clone())
            .or_insert_with(|| key.clone());
        if key < *slot {
            *slot = key;
        }
    }
    for (_, (_, _, id)) in best {
        let ctl = Arc::new(RunCtl::default());
        objs.running.insert(id.clone(), ctl.clone());
        let failed_id = id.clone();
        let server = server.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("transfer-{}", &id[..8]))
            .spawn(move || worker(&server, &id, &ctl));
        if let Err(e) = spawned {
            crate::error!("transfers: cannot start a worker thread: {e}");
            objs.running.remove(&failed_id);
        }
    }
}

enum Outcome {
    Complete,
    Stopped,
    /// Why (the engine's reason, if the engine failed it), and the files that failed.
    Failed(String, Option<FailureReason>, Vec<FailedFileRec>),
    /// Why, and the engine's reason if it was the engine's interruption.
    Interrupted(String, Option<FailureReason>),
}

/// Longest time a transfer keeps retrying without getting data through.
const RETRY_WINDOW: Duration = Duration::from_secs(3600);

fn worker(server: &Arc<Server>, id: &str, ctl: &Arc<RunCtl>) {
    let mut backoff = Duration::from_secs(1);
    let mut last_progress = Instant::now();
    // How the transfer ended, for the embedding program's trigger (sent without the lock).
    let mut ended = None;
    loop {
        if ctl.stopped().is_some() {
            break;
        }
        let (outcome, progressed) = attempt(server, id, ctl);
        if progressed {
            last_progress = Instant::now();
            backoff = Duration::from_secs(1);
        }
        let mut objs = server.objects.lock();
        let Some(t) = objs.transfers.get_mut(id) else {
            break;
        };
        let live = std::mem::take(&mut t.live);
        t.done.accumulate(&live);
        t.live.blocks_acked = live.blocks_acked;
        t.live.bytes_acked = live.bytes_acked;
        t.live.block_size = live.block_size;
        if !matches!(t.status, TxStatus::Pending | TxStatus::Sending) {
            // A user stopped it: stop() has set the status already.
            break;
        }
        match outcome {
            Outcome::Complete => {
                t.status = TxStatus::Complete;
                t.error_message = None;
                t.error_code = None;
                t.end_time = Some(now_us());
                crate::log!("transfers: {id} complete");
                server.metrics.files_sent(t.total_files);
                ended = Some(super::ServerEvent::TransferComplete {
                    transfer_id: id.to_owned(),
                    role: jetstream_core::Role::Sender,
                    user: t.owner.user.clone(),
                    files: Vec::new(),
                });
                break;
            }
            Outcome::Stopped => break,
            Outcome::Failed(msg, code, failed) => {
                crate::warn!("transfers: {id} failed: {msg}");
                t.status = TxStatus::Error;
                ended = Some(failed_event(id, &msg, code));
                t.error_message = Some(msg);
                t.error_code = code;
                t.failed_files = failed;
                t.end_time = Some(now_us());
                break;
            }
            Outcome::Interrupted(msg, code) => {
                t.error_code = code;
                if last_progress.elapsed() > RETRY_WINDOW {
                    t.status = TxStatus::Error;
                    let msg = format!("gave up after an hour of retries: {msg}");
                    ended = Some(failed_event(id, &msg, code));
                    t.error_message = Some(msg);
                    t.end_time = Some(now_us());
                    break;
                }
                crate::warn!("transfers: {id} interrupted ({msg}); retrying in {backoff:?}");
                t.error_message = Some(format!(
                    "interrupted: {msg}; retrying in {} s",
                    backoff.as_secs()
                ));
            }
        }
        drop(objs);
        server.save();
        if ctl.sleep(backoff).is_some() {
            break;
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
    let mut objs = server.objects.lock();
    objs.running.remove(id);
    drop(objs);
    server.object_ended.notify_all();
    server.save();
    server.kick();
    if let Some(ev) = ended {
        server.emit(ev);
    }
}

/// `send.transferFailed` of transfer `id`.
fn failed_event(
    id: &str,
    message: &str,
    reason: Option<jetstream_core::FailureReason>,
) -> super::ServerEvent {
    super::ServerEvent::TransferFailed {
        transfer_id: id.to_owned(),
        role: jetstream_core::Role::Sender,
        message: message.to_owned(),
        reason,
    }
}

fn resolve(host: &str, port: u16) -> Result<IpAddr, String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(SocketAddr::ip)
        .ok_or_else(|| format!("{host} has no address"))
}

fn update_destination(server: &Arc<Server>, id: &str, f: impl FnOnce(&mut DestinationRec)) {
    if let Some(d) = server.objects.lock().destinations.get_mut(id) {
        f(d);
    }
}

/// One engine session of a transfer. Returns the outcome and whether data got through.
fn attempt(server: &Arc<Server>, id: &str, ctl: &Arc<RunCtl>) -> (Outcome, bool) {
    let fail = |m: String| (Outcome::Failed(m, None, Vec::new()), false);
    let interrupted = |m: String| (Outcome::Interrupted(m, None), false);
    // Snapshot what the attempt needs.
    let (dest, manifest, destination_path, owner) = {
        let mut objs = server.objects.lock();
        let Some(t) = objs.transfers.get(id).cloned() else {
            return (Outcome::Stopped, false);
        };
        let Some(dest) = objs.destinations.get(&t.destination_id).cloned() else {
            return fail("its destination was deleted".into());
        };
        let Some(m) = objs.manifests.get_mut(&t.manifest_id) else {
            return fail("its manifest was deleted".into());
        };
        let manifest = match m.engine() {
            Ok(b) => b,
            Err(e) => return fail(format!("manifest: {e}")),
        };
        (dest, manifest, t.destination_path, t.owner.user)
    };
    let ip = match resolve(&dest.address, dest.api_port) {
        Ok(ip) => ip,
        Err(e) => return interrupted(e),
    };
    update_destination(server, &dest.id, |d| {
        d.ip = Some(ip.to_string());
        d.state = "negotiating";
    });
    let opts = ConnectOptions {
        trust: Trust::Pinned(dest.public_key.clone()),
        timeout: Duration::from_secs(15),
        force_tls: true,
        client_identity: Some(server.identity.client_cert()),
    };
    let mut client = match ApiClient::connect(&ip.to_string(), dest.api_port, &opts) {
        Ok(c) => c,
        Err(e @ ClientError::HostKeyChanged { .. }) => {
            let msg = format!("{e}");
            update_destination(server, &dest.id, |d| {
                d.last_error = Some("hostKeyChanged".into());
                d.last_error_message = Some(msg.clone());
                d.state = "disconnected";
            });
            return fail(msg);
        }
        Err(e) => {
            let msg = format!("cannot reach {}:{}: {e}", dest.address, dest.api_port);
            update_destination(server, &dest.id, |d| {
                d.last_error = Some("connect".into());
                d.last_error_message = Some(msg.clone());
                d.state = "disconnected";
            });
            return interrupted(msg);
        }
    };
    if dest.public_key.is_none() {
        if let Some(key) = client.peer_public_key() {
            let key = key.to_owned();
            update_destination(server, &dest.id, |d| d.public_key = Some(key));
            server.save();
        }
    }
    let info = match client.get_server_info(&GetServerInfo {}) {
        Ok(i) => Some(i),
        // A receiver of another version may describe itself otherwise: its ids and data port
        // are then unknown, as they were from receivers that did not report them.
        Err(ClientError::Decode { .. }) => None,
        Err(e) => return interrupted(format!("getServerInfo: {e}")),
    };
    let learned = info.as_ref().and_then(|i| i.receiver.receiver_port);
    update_destination(server, &dest.id, |d| {
        d.last_server_id = info.as_ref().map(|i| i.server_id.clone());
        d.last_server_uid = info.as_ref().map(|i| i.server_uid.clone());
        d.learned_port = learned.or(d.learned_port);
    });
    let login = match &dest.credentials {
        Some(Credentials::Password { user, password }) => client.auth(&Auth {
            user_name: user.clone(),
            password: password.as_str().into(),
        }),
        Some(Credentials::Token { token, password }) => client.auth_token(&AuthToken {
            token: token.as_str().into(),
            password: password.as_deref().map(Secret::from),
        }),
        // No credentials: log in by this server's key, if the receiver authorized it.
        None => match client.auth_client(&AuthClient {
            user_name: Some(owner),
        }) {
            Err(ClientError::Api(m))
                if m.kind == ErrorKind::LoginFailed || m.kind == ErrorKind::UnknownCommand =>
            {
                return fail(untrusted(
                    &dest.address,
                    dest.api_port,
                    server.identity.public_key(),
                    &m.to_string(),
                ));
            }
            Err(ClientError::Api(m)) if m.kind == ErrorKind::PermissionDenied => {
                return fail(format!(
                    "the receiving server {}:{} trusts this server's key but refused the user: \
                     {m}; on the receiver, a superuser runs `jetstream api \
                     addAuthorizedClientAsync --clientPublicKey {} --userName <local user>`, or \
                     give userName and password (or token) to createDestination here",
                    dest.address,
                    dest.api_port,
                    server.identity.public_key()
                ));
            }
            other => other,
        },
    };
    match login {
        Ok(_) => {}
        Err(ClientError::Api(m)) if m.kind == ErrorKind::LoginThrottled => {
            return interrupted(format!("the receiving server is throttling log-ins: {m}"));
        }
        Err(ClientError::Api(m)) => {
            return fail(format!("the receiving server refused the log-in: {m}"))
        }
        Err(e) => return interrupted(format!("log-in: {e}")),
    }
    let session_id = super::objects::new_session_id();
    let offered = jetstream_client::session::offer(&server.live().cipher);
    let started = client.start_receive(&StartReceive {
        transfer_id: id.to_owned(),
        session_id: session_id.0,
        ciphers: Some(offered.clone()),
        cipher: None,
        destination_path: Some(destination_path),
        total_size: Some(manifest.total_bytes()),
        total_files: Some(manifest.len() as u64),
        source_public_key: Some(server.identity.public_key().to_owned()),
    });
    let (receiver_port, cipher) = match started {
        Ok(started) => {
            *ctl.remote_cap.lock() = started.rate_limit_kbps;
            (
                Some(started.receiver_port),
                Cipher::from_name(started.cipher.as_str()),
            )
        }
        Err(ClientError::Api(m)) if m.kind == ErrorKind::Busy => {
            return interrupted(format!("the receiving server is busy: {m}"));
        }
        Err(ClientError::Api(m)) => {
            return fail(format!("the receiving server refused the transfer: {m}"))
        }
        Err(e @ ClientError::Decode { .. }) => return fail(e.to_string()),
        Err(e) => return interrupted(format!("recv.startTransfer: {e}")),
    };
    let Some(cipher) = cipher.filter(|c| offered.iter().any(|o| o == c.name())) else {
        return fail("the receiving server chose a cipher that was not offered".into());
    };
    let Some(port) = dest.port.or(receiver_port).or(learned) else {
        return fail("the receiving server did not say which UDP port receives".into());
    };
    let keys = match client_keys(&client, id, session_id, cipher) {
        Ok(k) => k,
        Err(e) => return fail(format!("cannot derive the data keys: {e}")),
    };
    let (rate, mode) = server
        .objects
        .lock()
        .destinations
        .get(&dest.id)
        .map_or((None, None), |d| (d.send_rate_max, Some(d.rate_mode())));
    let rate = ctl.effective_cap(rate);
    // Path memory, for a transfer's first attempt only: a later one resumes, and the remembered
    // first flight could carry data the receiver already holds.
    let fresh = server
        .objects
        .lock()
        .transfers
        .get(id)
        .is_some_and(|t| t.attempts == 0);
    let hint = if fresh {
        server.paths.lock().hint(&dest.id)
    } else {
        None
    };
    // The server-wide outgoing limit holds from the first datagram, not from the next tick.
    let rate = super::bandwidth::initial_send_cap(server, rate.map(|k| k.saturating_mul(1000)));
    let target = Destination::new(SocketAddr::new(ip, port))
        .send_rate_max(rate.map(BitsPerSecond))
        .rate_mode(mode)
        .path_hint(hint);
    let engine = match server.destination_engine(&dest) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let handle = match engine.send(target, keys, (*manifest).clone()) {
        Ok(h) => h,
        Err(e) => return fail(format!("engine: {e}")),
    };
    *ctl.engine.lock() = Some(handle.clone());
    if ctl.stopped().is_some() {
        handle.cancel();
    }
    server.rebalance_bandwidth();
    let first_attempt = {
        let mut objs = server.objects.lock();
        let mut first = false;
        if let Some(t) = objs.transfers.get_mut(id) {
            if t.status == TxStatus::Pending || t.status == TxStatus::Sending {
                t.status = TxStatus::Sending;
                first = t.start_time.is_none();
                t.start_time.get_or_insert(now_us());
                t.attempts += 1;
            }
        }
        if let Some(d) = objs.destinations.get_mut(&dest.id) {
            d.state = "connected";
            d.last_error = None;
            d.last_error_message = None;
        }
        first
    };
    server.save();
    if first_attempt {
        server.emit(super::ServerEvent::TransferStarted {
            transfer_id: id.to_owned(),
            role: jetstream_core::Role::Sender,
        });
    }
    crate::debug!(
        "transfers: {id} sending to {ip}:{port} (attempt via {})",
        dest.address
    );
    let out = monitor(server, id, &dest.id, ctl, &handle, &mut client);
    *ctl.engine.lock() = None;
    let complete = matches!(out.0, Outcome::Complete);
    remember_path(server, id, &dest.id, &handle.status(), complete);
    update_destination(server, &dest.id, |d| d.state = "disconnected");
    out
}

/// Path memory: what this attempt measured, for the next transfer to the destination; an
/// incomplete attempt forgets it (the next one resumes).
fn remember_path(
    server: &Server,
    id: &str,
    dest_id: &str,
    st: &jetstream_core::TransferStatus,
    complete: bool,
) {
    let estimate = st.path_estimate.filter(|_| complete);
    crate::log!(
        "transfers: {id} to destination {dest_id}: path hint {}, measured {}",
        if st.path_hint_outcome.is_empty() {
            "none"
        } else {
            st.path_hint_outcome
        },
        estimate.map_or_else(
            || "nothing kept".to_owned(),
            |h| format!(
                "{:.1} Mbit/s, min-RTT {:.1} ms",
                h.bandwidth as f64 * 8.0 / 1e6,
                h.min_rtt.as_secs_f64() * 1e3
            )
        )
    );
    let mut paths = server.paths.lock();
    paths.record(dest_id, estimate);
    if let Err(e) = paths.save() {
        crate::warn!("transfers: cannot save the path memory: {e}");
    }
}

fn monitor(
    server: &Arc<Server>,
    id: &str,
    dest_id: &str,
    ctl: &Arc<RunCtl>,
    handle: &jetstream_core::Transfer,
    client: &mut ApiClient,
) -> (Outcome, bool) {
    let mut last_ping = Instant::now();
    let mut progressed = false;
    loop {
        let st = match handle.wait(Duration::from_millis(250)) {
            Ok(st) => st,
            Err(_) => handle.status(),
        };
        progressed |= st.bytes_acked > 0;
        {
            let mut objs = server.objects.lock();
            if let Some(t) = objs.transfers.get_mut(id) {
                t.live = Counters::from_status(&st);
            }
            if let Some(d) = objs.destinations.get_mut(dest_id) {
                if st.packets_sent > 0 {
                    d.last_send_time = Some(now_us());
                }
                if st.packets_recv > 0 {
                    d.last_recv_time = Some(now_us());
                }
            }
        }
        if ctl.stopped().is_some() {
            handle.cancel();
            let _ = handle.wait(Duration::from_secs(5));
            return (Outcome::Stopped, progressed);
        }
        if st.state.is_final() {
            return match st.state {
                TransferState::Complete => (Outcome::Complete, true),
                _ if !st.failed_files.is_empty() => (
                    Outcome::Failed(
                        st.error_message
                            .clone()
                            .unwrap_or_else(|| "entries failed".into()),
                        st.failure,
                        st.failed_files.iter().map(FailedFileRec::from).collect(),
                    ),
                    progressed,
                ),
                _ => {
                    let msg = st.error_message.unwrap_or_else(|| "stopped".into());
                    // The receiver going away (restart, crash) shows on the control
                    // connection, or as a silent peer or an engine shut down: an interruption
                    // to resume, not a failure.
                    let interruption = st.failure.is_some_and(FailureReason::is_interruption);
                    if interruption || client.echo(&Echo::default()).is_err() {
                        (Outcome::Interrupted(msg, st.failure), progressed)
                    } else {
                        (Outcome::Failed(msg, st.failure, Vec::new()), progressed)
                    }
                }
            };
        }
        if last_ping.elapsed() >= Duration::from_secs(1) {
            last_ping = Instant::now();
            // The receiver's share of its incoming limit for us; also proves it is there.
            let asked = client.transfer_rate(&TransferRate {
                transfer_id: id.to_owned(),
            });
            if let Ok(rate) = &asked {
                *ctl.remote_cap.lock() = rate.rate_limit_kbps;
            }
            if let Err(e) = asked.map(drop).or_else(|e| match e {
                // An older receiver without the command (or with another answer to it) is
                // alive all the same.
                ClientError::Api(_) | ClientError::Decode { .. } => Ok(()),
                other => Err(other),
            }) {
                handle.cancel();
                let _ = handle.wait(Duration::from_secs(5));
                return (
                    Outcome::Interrupted(
                        format!("lost the connection to the receiving server: {e}"),
                        None,
                    ),
                    progressed,
                );
            }
        }
    }
}

/// Why a transfer to a destination without credentials failed when the receiver does not
/// trust this server's key: what to configure, on which side. `key` is this server's public
/// key; `said` is the receiver's answer.
fn untrusted(address: &str, api_port: u16, key: &str, said: &str) -> String {
    format!(
        "the receiving server {address}:{api_port} does not trust this server's key and the \
         destination has no credentials: on the receiver, a superuser runs `jetstream api \
         addAuthorizedClientAsync --clientPublicKey {key}` (optionally with --userName <local \
         user>), or give userName and password (or token) to createDestination here (the \
         receiver said: {said})"
    )
}
