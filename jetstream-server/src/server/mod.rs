//! The server: it binds the UDP data port(s) (one engine each) and the TCP API port, loads
//! the persistent state, serves API clients (one thread each) and runs the transfer
//! scheduler. [`spawn`] starts one from a [`ServerConfig`] and returns a [`ServerHandle`];
//! [`ServerHandle::stop`] checkpoints the running transfers and stops it. The library never
//! exits the process, installs a signal handler or opens a log file: the `jetstream` binary
//! does (SIGTERM/SIGINT stop, SIGHUP reloads).

pub mod access;
pub mod api;
pub mod bandwidth;
pub mod ciphers;
pub mod commands;
pub mod config;
pub mod discover;
pub mod download;
pub mod error;
pub mod events;
pub mod gc;
mod handle;
pub mod info;
pub mod log;
pub mod manifests;
pub mod metrics;
pub mod objects;
pub mod receive;
pub mod secrets;
pub mod shared;
pub mod state;
pub mod sys;
pub mod transfers;
pub mod triggers;
pub mod trust;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jetstream_core::{Engine, EngineConfig, EngineHandle};
use parking_lot::Mutex;

use self::api::{ApiError, Session};
use self::config::ServerArgs;
pub use self::config::ServerConfig;
pub use self::error::ServerError;
use self::events::EventQueue;
pub use self::events::{ServerEvent, ServerTrigger};
pub use self::handle::{spawn, spawn_with_trigger, ServerHandle, LOCAL_TOKEN_DESCRIPTION};
use self::objects::{DestinationRec, ManifestRec, Persisted, RecvRec, TokenRec, TransferRec};
use self::state::StateDir;
use self::transfers::{RunCtl, Stop};
use crate::sandbox::{self, UserIds};
use crate::tls::Identity;
use crate::users::{Authenticator, SuperuserPolicy, SystemUser};

/// Most API connections open at once.
pub const MAX_API_CONNECTIONS: usize = 1024;
/// Most API connections open at once from one source: an IPv4 address, or an IPv6 /64 (see
/// [`crate::users::source_key`]).
pub const MAX_API_CONNECTIONS_PER_SOURCE: usize = 128;

/// The open API connections, in all and per source (IPv6 by /64).
#[derive(Debug, Default)]
pub struct ApiConnections {
    total: usize,
    by_source: HashMap<std::net::IpAddr, usize>,
}

impl ApiConnections {
    /// Counts a connection from `ip` if the caps allow it; returns the key it is counted
    /// under (to give to [`Self::release`]).
    pub fn take(&mut self, ip: std::net::IpAddr) -> Option<std::net::IpAddr> {
        let key = crate::users::source_key(ip);
        let here = self.by_source.get(&key).copied().unwrap_or(0);
        if self.total >= MAX_API_CONNECTIONS || here >= MAX_API_CONNECTIONS_PER_SOURCE {
            return None;
        }
        self.total += 1;
        self.by_source.insert(key, here + 1);
        Some(key)
    }

    /// Forgets a connection counted under `key`.
    pub fn release(&mut self, key: std::net::IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.by_source.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.by_source.remove(&key);
            }
        }
    }
}

/// A held API connection slot (see [`Server::api_slot`]).
#[derive(Debug)]
pub struct ApiSlot {
    server: Arc<Server>,
    key: std::net::IpAddr,
}

impl Drop for ApiSlot {
    fn drop(&mut self) {
        self.server.api_connections.lock().release(self.key);
    }
}

/// The API compatibility version reported as `apiVersion`.
pub const API_VERSION: u32 = 30;
/// The integer revision reported as `revision`.
pub const REVISION: u32 = 1;

/// Everything the server knows, behind one lock (held briefly; never across I/O).
#[derive(Debug, Default)]
pub struct Objects {
    /// Destinations by id.
    pub destinations: BTreeMap<String, DestinationRec>,
    /// Manifests by id.
    pub manifests: BTreeMap<String, ManifestRec>,
    /// Sending transfers by id.
    pub transfers: BTreeMap<String, TransferRec>,
    /// Receiving transfers by id.
    pub receives: BTreeMap<String, RecvRec>,
    /// API tokens by token.
    pub tokens: BTreeMap<String, TokenRec>,
    /// Control blocks of the transfers whose worker runs.
    pub running: HashMap<String, Arc<RunCtl>>,
    /// Downloads this server is sending to clients (`send.startDownload`), with the rate the
    /// client asked for (kbit/s).
    pub downloads: HashMap<String, (jetstream_core::Transfer, Option<u64>)>,
}

impl Objects {
    /// Transfers queued or running to a destination.
    pub fn queued(&self, destination: &str) -> usize {
        self.transfers
            .values()
            .filter(|t| t.destination_id == destination && !t.status.is_final())
            .count()
    }
}

/// A finished `*Async` request.
#[derive(Debug)]
pub struct RequestRec {
    /// The session that made it: user, token and token login. Only that owner (or a
    /// superuser) may read it: a narrowed token or a download link never sees what the user's
    /// other sessions asked for (such as a freshly created API token).
    pub owner: objects::Owner,
    /// Its outcome; `None` while it runs.
    pub outcome: Option<Result<(String, serde_json::Value), ApiError>>,
    created: Instant,
}

/// Largest request id: ids are random below 2^53, so that they survive a JSON number in any
/// client (JavaScript's doubles) and cannot be guessed from one's own.
const REQUEST_ID_LIMIT: u64 = 1 << 53;

/// The `*Async` request table; results expire after an hour.
#[derive(Debug, Default)]
pub struct Requests {
    map: BTreeMap<u64, RequestRec>,
}

impl Requests {
    /// Stores an outcome (`None`: still running); returns its request id, random and unused.
    pub fn insert(
        &mut self,
        owner: objects::Owner,
        outcome: Option<Result<(String, serde_json::Value), ApiError>>,
    ) -> u64 {
        self.map
            .retain(|_, r| r.outcome.is_none() || r.created.elapsed() < Duration::from_secs(3600));
        let id = loop {
            let id = objects::random_u64() % REQUEST_ID_LIMIT;
            if id != 0 && !self.map.contains_key(&id) {
                break id;
            }
        };
        self.map.insert(
            id,
            RequestRec {
                owner,
                outcome,
                created: Instant::now(),
            },
        );
        id
    }

    /// A stored outcome.
    pub fn get(&self, id: u64) -> Option<&RequestRec> {
        self.map.get(&id)
    }
}

/// The running server.
#[derive(Debug)]
pub struct Server {
    /// Its flags as it started. A setting that a reload may change ([`config::LIVE_KEYS`])
    /// is read from [`Self::live`] instead.
    pub args: ServerArgs,
    /// The flags in force and where they came from.
    config: LiveConfig,
    /// Per launch.
    pub server_id: String,
    /// Kept in the state dir.
    pub server_uid: String,
    /// The OS host name.
    pub host_name: String,
    /// `--server-name` or the host name.
    pub server_name: String,
    /// TLS identity (its public key is the server's `publicKey`).
    pub identity: Identity,
    /// TLS configuration of the API.
    pub tls_config: Arc<rustls::ServerConfig>,
    /// Password checks.
    pub auth: Authenticator,
    /// Who may call `superuser`.
    pub supers: SuperuserPolicy,
    /// The bound API address.
    pub api_addr: SocketAddr,
    /// The bound UDP data addresses.
    pub recv_addrs: Vec<SocketAddr>,
    /// The state directory.
    pub state: StateDir,
    /// Objects.
    pub objects: Mutex<Objects>,
    /// `*Async` outcomes.
    pub requests: Mutex<Requests>,
    /// Signalled when a running request ends.
    pub request_done: parking_lot::Condvar,
    /// Signalled (with [`Self::objects`]) when a manifest is finished or a transfer ends
    /// (`send.waitForManifest`, `send.waitForTransfer`).
    pub object_ended: parking_lot::Condvar,
    /// Start time (µs).
    pub start_time: i64,
    /// The event log.
    pub events: events::EventLog,
    /// Trigger scripts.
    pub triggers: triggers::Triggers,
    /// Sending servers allowed to start transfers here.
    pub trust: trust::AuthorizedClients,
    /// The sandbox mappings (`--sandbox-dir` and `setSandboxMapping`).
    pub sandboxes: sandbox::mappings::Mappings,
    /// The relay this server receives through, if any.
    pub relay: crate::relay::client::RelayState,
    /// What the last transfer to each destination measured of the path (`<state>/paths`).
    pub paths: Mutex<jetstream_client::paths::PathMemory>,
    /// Counters for `--metrics-address`.
    pub metrics: metrics::Metrics,
    /// The bound metrics address (`--metrics-address`), if any.
    metrics_addr: Option<SocketAddr>,
    /// The settings kept in the state dir that commands change.
    settings: Settings,
    /// The UDP sockets.
    engines: Engines,
    /// Wakes the scheduler.
    kick: crossbeam_channel::Sender<()>,
    /// Running, stopping, stopped.
    lifecycle: Lifecycle,
    /// The events for the embedding program's trigger.
    event_queue: EventQueue,
    /// Where the engines write their packet trace.
    trace_file: Option<PathBuf>,
    /// Open API connections, in all and per source.
    api_connections: Mutex<ApiConnections>,
    /// One save at a time.
    save_lock: Mutex<()>,
}

/// The flags in force and where they came from.
#[derive(Debug)]
struct LiveConfig {
    /// The flags as last (re)loaded: the start's with the live keys of the latest good reload.
    live: parking_lot::RwLock<Arc<ServerArgs>>,
    /// The command line and configuration file, to read again on reload; `None` for a
    /// configuration built in code.
    source: Option<crate::config_file::ConfigSource>,
}

/// The settings commands change, kept in the state dir.
#[derive(Debug)]
struct Settings {
    gc: Mutex<gc::GcSettings>,
    bandwidth: Mutex<bandwidth::Limits>,
    /// What the bandwidth manager last measured and applied (the housekeeping thread ticks
    /// it every 200 ms; a sending transfer's start ticks it at once).
    bandwidth_manager: Mutex<bandwidth::Manager>,
    /// Wakes the housekeeping thread for a collection now.
    gc_wake: crossbeam_channel::Sender<()>,
}

/// The server's engines: one per receive port, one per destination that has sent.
#[derive(Debug)]
struct Engines {
    /// Those of the receive ports, in `--recv-port` order (taken at stop).
    receive: Mutex<Vec<Engine>>,
    /// Their handles, in the same order.
    handles: Vec<EngineHandle>,
    /// The round robin over `handles` for new receives.
    next: AtomicUsize,
    /// One engine (UDP socket) per destination that has sent: its own send port.
    by_destination: Mutex<HashMap<String, Engine>>,
}

/// Where the server is in its life.
#[derive(Debug, Default)]
struct Lifecycle {
    /// Shutdown has begun.
    stopping: AtomicBool,
    /// Shutdown has ended (transfers checkpointed, state saved, engines closed).
    stopped: Mutex<bool>,
    /// Notified when `stopped` is set.
    stopped_cv: parking_lot::Condvar,
}

impl Server {
    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.lifecycle.stopping.load(Ordering::SeqCst)
    }

    /// The flags in force now, for the settings a reload may change ([`config::LIVE_KEYS`]).
    pub fn live(&self) -> Arc<ServerArgs> {
        self.config.live.read().clone()
    }

    /// Reads the configuration file (and command line) the server started with again and
    /// applies it ([`Self::reconfigure`]); what `SIGHUP` (`systemctl reload jetstream`) does,
    /// after the binary reopened its log file. A configuration built in code has nothing to
    /// read again: the call only logs so.
    ///
    /// # Errors
    /// The file does not parse, or a value is refused: the running configuration stays.
    pub fn reload(&self) -> Result<(), ServerError> {
        let Some(source) = &self.config.source else {
            crate::log!("server: reload: no configuration file to read again");
            return Ok(());
        };
        let new: ServerArgs = source.read().map_err(|e| {
            crate::error!("server: reload: {e}; the running configuration stays");
            let path = e.path.display().to_string();
            let whole = e.to_string();
            ServerError::ConfigFile {
                reason: whole
                    .strip_prefix(&path)
                    .map_or(whole.as_str(), |r| r.trim_start_matches([':', ' ']))
                    .to_owned(),
                path: e.path,
            }
        })?;
        self.reconfigure(new)
    }

    /// Applies the keys of `new` that can change live ([`config::LIVE_KEYS`]); every other
    /// key that changed is logged as needing a restart.
    ///
    /// # Errors
    /// A value the server refuses: it is logged and the running configuration stays.
    pub fn reconfigure(&self, new: ServerArgs) -> Result<(), ServerError> {
        if let Err(e) = handle::check(&new) {
            crate::error!("server: reload: {e}; the running configuration stays");
            return Err(e);
        }
        let old = self.live();
        let changed = crate::config_file::changed_keys(&*old, &new);
        let live: Vec<&str> = changed
            .iter()
            .map(String::as_str)
            .filter(|k| config::LIVE_KEYS.contains(k))
            .collect();
        let now = match crate::config_file::with_keys(&*old, &new, &live) {
            Ok(a) => a,
            Err(e) => {
                crate::error!("server: reload: {e}; the running configuration stays");
                return Err(ServerError::Config {
                    option: live.join(", "),
                    reason: e,
                });
            }
        };
        let shown = crate::config_file::values(&new, true).unwrap_or_default();
        for key in &changed {
            let value = shown
                .get(key)
                .map_or_else(|| "(not set)".to_owned(), ToString::to_string);
            if live.contains(&key.as_str()) {
                crate::log!("server: reload: {key} = {value}: applied");
            } else {
                crate::log!(
                    "server: reload: {key} = {value}: needs a restart to take effect \
                     (systemctl restart jetstream); still running with the old value"
                );
            }
        }
        if changed.is_empty() {
            crate::log!("server: reload: configuration unchanged");
        }
        // The bandwidth keys set in the configuration win again over updateBandwidthLimits.
        let limits = now.bandwidth_over(self.bandwidth_limits());
        log::set_level(now.log_level);
        *self.config.live.write() = Arc::new(now);
        if limits != self.bandwidth_limits() {
            crate::log!("server: reload: bandwidth limits now {}", limits.view());
            self.set_bandwidth_limits(limits);
        }
        Ok(())
    }

    /// Reports `event`: to the embedding program's trigger (if one is set) and to the trigger
    /// script of its name (if it has one in the reference: see [`ServerEvent`]). One source
    /// for both. May wait when the embedding program's trigger is far behind (see
    /// [`events`]); never call it holding a lock.
    pub fn emit(&self, event: ServerEvent) {
        if let Some(job) = event.script() {
            if self.script_allowed(&job.name) {
                self.triggers.fire(&job.name, job.args, job.stdin);
            }
        }
        self.event_queue.push(event);
    }

    /// Whether an event named `name` would reach anyone: a script of that name or the
    /// embedding program's trigger (to skip building one nobody gets).
    pub fn wants_event(&self, name: &str) -> bool {
        self.event_queue.is_open() || (self.script_allowed(name) && self.triggers.has(name))
    }

    /// Whether the script of event `name` may run: `on.<command>` only with
    /// `--trigger-on-api`.
    fn script_allowed(&self, name: &str) -> bool {
        !name.starts_with("on.") || self.live().trigger_on_api
    }

    /// The server-wide bandwidth limits.
    pub fn bandwidth_limits(&self) -> bandwidth::Limits {
        *self.settings.bandwidth.lock()
    }

    /// Changes them (kept in the state dir); the manager applies them within 200 ms.
    pub fn set_bandwidth_limits(&self, l: bandwidth::Limits) {
        *self.settings.bandwidth.lock() = l;
        self.save();
    }

    /// Shares the bandwidth limits among the running transfers now (see [`bandwidth::tick`]).
    pub fn rebalance_bandwidth(&self) {
        bandwidth::tick(self, &mut self.settings.bandwidth_manager.lock());
    }

    /// The garbage-collection settings.
    pub fn gc_settings(&self) -> gc::GcSettings {
        *self.settings.gc.lock()
    }

    /// Changes them (kept in the state dir) and runs a collection now.
    pub fn set_gc_settings(&self, s: gc::GcSettings) {
        *self.settings.gc.lock() = s;
        self.save();
        let _ = self.settings.gc_wake.try_send(());
    }

    /// Runs `work` on its own thread as an `*Async` request of `owner`; returns the request
    /// id at once (for commands that wait, like `recvDiscoverPacketAsync`).
    pub fn spawn_request(
        self: &Arc<Self>,
        owner: objects::Owner,
        work: impl FnOnce(&Arc<Self>) -> Result<(String, serde_json::Value), ApiError> + Send + 'static,
    ) -> u64 {
        let id = self.requests.lock().insert(owner, None);
        let server = self.clone();
        let spawned = std::thread::Builder::new()
            .name("request".into())
            .spawn(move || {
                let outcome = work(&server);
                if let Some(r) = server.requests.lock().map.get_mut(&id) {
                    r.outcome = Some(outcome);
                }
                server.request_done.notify_all();
            });
        if let Err(e) = spawned {
            if let Some(r) = self.requests.lock().map.get_mut(&id) {
                r.outcome = Some(Err(ApiError::internal("starting the request", e)));
            }
        }
        id
    }

    /// Takes a slot for an API connection from `ip`: at most [`MAX_API_CONNECTIONS`] in all
    /// and [`MAX_API_CONNECTIONS_PER_SOURCE`] from one source (IPv6 by /64), so that one
    /// client opening connections cannot take every thread. `None` when full; the slot frees
    /// itself on drop.
    pub fn api_slot(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<ApiSlot> {
        let key = self.api_connections.lock().take(ip)?;
        Some(ApiSlot {
            server: self.clone(),
            key,
        })
    }

    /// Wakes the scheduler.
    pub fn kick(&self) {
        let _ = self.kick.try_send(());
    }

    /// The engine that sends (the first port: `multiplexAvailable`).
    pub fn send_engine(&self) -> &EngineHandle {
        &self.engines.handles[0]
    }

    /// The engine transfers to destination `d` are sent from: its own UDP socket, on
    /// `d.send_port` or a port the system chooses (the primer: one outgoing UDP port per
    /// destination, pinned when created for outbound firewall rules).
    ///
    /// # Errors
    /// The port cannot be bound (in use, permission).
    pub fn destination_engine(&self, d: &DestinationRec) -> Result<EngineHandle, String> {
        let mut map = self.engines.by_destination.lock();
        if let Some(e) = map.get(&d.id) {
            return Ok(e.handle());
        }
        let mut cfg = EngineConfig::default();
        let port = d.send_port.unwrap_or(0);
        cfg.bind(SocketAddr::new(self.args.recv_host, port));
        cfg.trace_file(self.trace_file.clone());
        let e = Engine::spawn(cfg).map_err(|e| {
            format!(
                "cannot open the send port {} of destination {}: {e}",
                if port == 0 {
                    "(dynamic)".to_owned()
                } else {
                    port.to_string()
                },
                d.id
            )
        })?;
        let h = e.handle();
        map.insert(d.id.clone(), e);
        Ok(h)
    }

    /// The local send port of a destination's engine, once it has one.
    pub fn destination_send_port(&self, id: &str) -> Option<u16> {
        self.engines
            .by_destination
            .lock()
            .get(id)
            .map(|e| e.local_addr().port())
    }

    /// Closes a deleted destination's engine (its transfers have ended).
    pub fn drop_destination_engine(&self, id: &str) {
        if let Some(e) = self.engines.by_destination.lock().remove(id) {
            if let Ok(info) = e.handle().info() {
                self.metrics.retire(info.traffic, info.dropped);
            }
            let _ = std::thread::Builder::new()
                .name("engine-close".into())
                .spawn(move || e.shutdown());
        }
    }

    /// The engines of the destinations that have sent.
    pub fn destination_engines(&self) -> Vec<EngineHandle> {
        self.engines
            .by_destination
            .lock()
            .values()
            .map(Engine::handle)
            .collect()
    }

    /// The engines of the receive ports, in `--recv-port` order.
    pub fn receive_engines(&self) -> &[EngineHandle] {
        &self.engines.handles
    }

    /// The engine a new receive goes to (round robin over the receive ports).
    pub fn receive_engine(&self) -> &EngineHandle {
        let handles = &self.engines.handles;
        let i = self.engines.next.fetch_add(1, Ordering::Relaxed) % handles.len();
        &handles[i]
    }

    /// What a session may reach: its user's sandbox mapping (their own level, else the
    /// all-users level, else the whole file system) expanded for that user, narrowed by the
    /// `path` of the token it logged in with. Every command that touches files resolves paths
    /// through this ([`sandbox::Resources::locate`]).
    ///
    /// # Errors
    /// Not logged in; a mapping that does not expand for this user (an internal error: the
    /// administrator's mapping) or a bad token path.
    pub fn resources_of(&self, session: &Session) -> Result<sandbox::Resources, ApiError> {
        let Some(user) = &session.user else {
            return Err(ApiError::of(
                jetstream_api::ErrorKind::NotAuthenticated,
                "not authenticated",
            ));
        };
        let token_path = session.token.as_ref().and_then(|t| {
            self.objects
                .lock()
                .tokens
                .values()
                .find(|r| &r.token == t)
                .and_then(|r| r.path.clone())
        });
        let mapping = self.sandboxes.for_user(&user.name);
        let wants_full_name = mapping.as_ref().is_some_and(|m| {
            m.values().any(|r| match r {
                jetstream_api::types::SandboxResource::File(f) => f.path.contains("%f"),
                _ => false,
            })
        });
        let full_name = if wants_full_name {
            crate::users::full_name(&user.name)
                .map_err(|e| ApiError::internal("reading the user's full name", e))?
        } else {
            user.name.clone()
        };
        Ok(sandbox::Resources::for_user(
            mapping.as_ref(),
            &user.name,
            &full_name,
            token_path.as_deref(),
        )?)
    }

    /// The ids to act with on a user's behalf: `Some` when this server runs as root and the
    /// user is not root.
    pub fn user_ids(&self, user: &SystemUser) -> Option<UserIds> {
        (sys::euid() == 0 && user.uid != 0).then(|| UserIds {
            uid: user.uid,
            gid: user.gid,
            groups: user.groups.clone(),
        })
    }

    /// Writes the persistent objects (what the flags say to keep).
    pub fn save(&self) {
        let _serial = self.save_lock.lock();
        let p = {
            let objs = self.objects.lock();
            let transfers: Vec<TransferRec> = if self.args.persistent_transfers {
                objs.transfers.values().cloned().collect()
            } else {
                Vec::new()
            };
            let manifests = objs
                .manifests
                .values()
                .filter(|m| {
                    transfers.iter().any(|t| t.manifest_id == m.id)
                        || objs
                            .tokens
                            .values()
                            .any(|t| t.shared.as_ref().is_some_and(|s| s.manifest_id == m.id))
                })
                .cloned()
                .collect();
            Persisted {
                destinations: if self.args.persistent_destinations {
                    objs.destinations.values().cloned().collect()
                } else {
                    Vec::new()
                },
                transfers,
                manifests,
                tokens: objs.tokens.values().cloned().collect(),
                gc: Some(self.gc_settings()),
                bandwidth: Some(self.bandwidth_limits()),
            }
        };
        if let Err(e) = self.state.save(&p) {
            crate::error!("state: cannot save {}: {e}", self.state.path().display());
        }
    }

    /// Stops the server: running transfers are checkpointed and kept for the next start, the
    /// state is saved, the engines and the API port close and the queued events are
    /// delivered. Returns when that is done (or at once when another call is doing it: see
    /// [`Self::wait_stopped`]). Never exits the process.
    pub fn stop(&self, why: &str) {
        if self.lifecycle.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        crate::log!("server: stopping ({why})");
        self.events.record(
            "serverStopped",
            serde_json::json!({ "serverId": self.server_id, "reason": why }),
        );
        let running: Vec<Arc<RunCtl>> = self.objects.lock().running.values().cloned().collect();
        for r in &running {
            r.request(Stop::Shutdown);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.objects.lock().running.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.save();
        for (_, e) in self.engines.by_destination.lock().drain() {
            e.shutdown();
        }
        for e in self.engines.receive.lock().drain(..) {
            e.shutdown();
        }
        // The accept loop checks the flag after each connection: this one wakes it.
        let _ = std::net::TcpStream::connect_timeout(
            &handle::reachable(self.api_addr),
            Duration::from_secs(1),
        );
        // The same for the metrics endpoint: its thread ends and its port closes (a program
        // that embeds the server and starts another must find it free).
        if let Some(m) = self.metrics_addr {
            let _ =
                std::net::TcpStream::connect_timeout(&handle::reachable(m), Duration::from_secs(1));
        }
        self.event_queue.close();
        let waits = self.event_queue.stalls();
        if waits > 0 {
            crate::log!("events: producers waited {waits} times for the embedding program");
        }
        crate::log!("server: stopped");
        *self.lifecycle.stopped.lock() = true;
        self.lifecycle.stopped_cv.notify_all();
    }

    /// Waits until [`Self::stop`] has finished (whoever called it).
    pub fn wait_stopped(&self) {
        let mut stopped = self.lifecycle.stopped.lock();
        while !*stopped {
            self.lifecycle.stopped_cv.wait(&mut stopped);
        }
    }

    /// The bound metrics address, if the server serves metrics.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// Issue 15, item 6: the per-source cap counted each IPv6 address alone, so one host with
    /// a /64 had no cap at all. Now a /64 is one source, as in the login throttle.
    #[test]
    fn regression_api_connections_are_capped_per_ipv6_64() {
        let mut c = ApiConnections::default();
        let v6 =
            |net: u16, host: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, net, 0, 0, 0, host));
        let keys: Vec<IpAddr> = (0..MAX_API_CONNECTIONS_PER_SOURCE as u16)
            .map(|i| c.take(v6(1, i)).expect("under the cap"))
            .collect();
        assert!(
            c.take(v6(1, 999)).is_none(),
            "another address of the same /64"
        );
        assert!(c.take(v6(2, 1)).is_some(), "another /64 is another source");
        // IPv4 counts by address, the IPv4-mapped form as the same address.
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        for _ in 0..MAX_API_CONNECTIONS_PER_SOURCE / 2 {
            c.take(v4).unwrap();
            c.take(mapped).unwrap();
        }
        assert!(c.take(v4).is_none() && c.take(mapped).is_none());
        assert!(c.take(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8))).is_some());
        // Released slots come back.
        c.release(keys[0]);
        assert!(c.take(v6(1, 12345)).is_some());
        assert!(c.take(v6(1, 12346)).is_none());
    }

    #[test]
    fn api_connections_are_capped_in_all() {
        let mut c = ApiConnections::default();
        for i in 0..MAX_API_CONNECTIONS {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32));
            assert!(c.take(ip).is_some());
        }
        assert!(c.take(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))).is_none());
    }
}
