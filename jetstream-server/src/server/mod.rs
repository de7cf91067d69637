//! `jetstream server`: the process. It binds the UDP data port(s) (one engine each) and the
//! TCP API port, loads the persistent state, serves API clients (one thread each), runs the
//! transfer scheduler, and on SIGTERM/SIGINT checkpoints and exits cleanly.

pub mod access;
pub mod api;
pub mod bandwidth;
pub mod ciphers;
pub mod commands;
pub mod config;
pub mod discover;
pub mod download;
pub mod events;
pub mod gc;
pub mod info;
pub mod log;
pub mod manifests;
pub mod metrics;
pub mod objects;
pub mod params;
pub mod receive;
pub mod secrets;
pub mod shared;
pub mod state;
pub mod sys;
pub mod transfers;
pub mod triggers;
pub mod trust;

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jetstream_core::{Engine, EngineConfig, EngineHandle};
use parking_lot::Mutex;

use self::api::{ApiError, Session};
use self::config::ServerArgs;
use self::objects::{
    new_id, now_us, DestinationRec, ManifestRec, Persisted, RecvRec, TokenRec, TransferRec,
    TxStatus,
};
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
    /// The flags as last (re)loaded: `args` with the live keys of the latest good reload.
    live: parking_lot::RwLock<Arc<ServerArgs>>,
    /// The command line and configuration file, to read again on `SIGHUP`.
    config_source: crate::config_file::ConfigSource,
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
    /// Start time (µs).
    pub start_time: i64,
    /// The event log.
    pub events: events::EventLog,
    /// Trigger scripts.
    pub triggers: triggers::Triggers,
    /// Sending servers allowed to start transfers here.
    pub trust: trust::AuthorizedClients,
    /// The relay this server receives through, if any.
    pub relay: crate::relay::client::RelayState,
    /// What the last transfer to each destination measured of the path (`<state>/paths`).
    pub paths: Mutex<jetstream_client::paths::PathMemory>,
    /// Counters for `--metrics-address`.
    pub metrics: metrics::Metrics,
    gc: Mutex<gc::GcSettings>,
    bandwidth: Mutex<bandwidth::Limits>,
    gc_wake: crossbeam_channel::Sender<()>,
    engines: Mutex<Vec<Engine>>,
    /// One engine (UDP socket) per destination that has sent: its own send port.
    dest_engines: Mutex<HashMap<String, Engine>>,
    handles: Vec<EngineHandle>,
    next_engine: AtomicUsize,
    kick: crossbeam_channel::Sender<()>,
    stopping: AtomicBool,
    /// Open API connections, in all and per source.
    api_connections: Mutex<ApiConnections>,
    save_lock: Mutex<()>,
}

impl Server {
    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The flags in force now, for the settings a reload may change ([`config::LIVE_KEYS`]).
    pub fn live(&self) -> Arc<ServerArgs> {
        self.live.read().clone()
    }

    /// What `SIGHUP` (`systemctl reload jetstream`) does: reopens the log file, reads the
    /// configuration file again and applies the keys that can change live; every other key
    /// that changed is logged as needing a restart. A file that does not parse, or a value
    /// the server refuses, is logged and the running configuration stays.
    pub fn reload(&self) {
        log::reload();
        let new: ServerArgs = match self.config_source.read() {
            Ok(a) => a,
            Err(e) => {
                crate::error!("server: reload: {e}; the running configuration stays");
                return;
            }
        };
        if let Err(e) = check(&new) {
            crate::error!("server: reload: {e}; the running configuration stays");
            return;
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
                return;
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
        *self.live.write() = Arc::new(now);
        if limits != self.bandwidth_limits() {
            crate::log!("server: reload: bandwidth limits now {}", limits.view());
            self.set_bandwidth_limits(limits);
        }
    }

    /// The server-wide bandwidth limits.
    pub fn bandwidth_limits(&self) -> bandwidth::Limits {
        *self.bandwidth.lock()
    }

    /// Changes them (kept in the state dir); the manager applies them within 200 ms.
    pub fn set_bandwidth_limits(&self, l: bandwidth::Limits) {
        *self.bandwidth.lock() = l;
        self.save();
    }

    /// The garbage-collection settings.
    pub fn gc_settings(&self) -> gc::GcSettings {
        *self.gc.lock()
    }

    /// Changes them (kept in the state dir) and runs a collection now.
    pub fn set_gc_settings(&self, s: gc::GcSettings) {
        *self.gc.lock() = s;
        self.save();
        let _ = self.gc_wake.try_send(());
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
        &self.handles[0]
    }

    /// The engine transfers to destination `d` are sent from: its own UDP socket, on
    /// `d.send_port` or a port the system chooses (the primer: one outgoing UDP port per
    /// destination, pinned when created for outbound firewall rules).
    ///
    /// # Errors
    /// The port cannot be bound (in use, permission).
    pub fn destination_engine(&self, d: &DestinationRec) -> Result<EngineHandle, String> {
        let mut map = self.dest_engines.lock();
        if let Some(e) = map.get(&d.id) {
            return Ok(e.handle());
        }
        let mut cfg = EngineConfig::default();
        let port = d.send_port.unwrap_or(0);
        cfg.bind(SocketAddr::new(self.args.recv_host, port));
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
        self.dest_engines
            .lock()
            .get(id)
            .map(|e| e.local_addr().port())
    }

    /// Closes a deleted destination's engine (its transfers have ended).
    pub fn drop_destination_engine(&self, id: &str) {
        if let Some(e) = self.dest_engines.lock().remove(id) {
            if let Ok(info) = e.handle().info() {
                self.metrics.retire(info.traffic, info.dropped);
            }
            let _ = std::thread::Builder::new()
                .name("engine-close".into())
                .spawn(move || e.shutdown());
        }
    }

    /// The engines of the receive ports, in `--recv-port` order.
    pub fn receive_engines(&self) -> &[EngineHandle] {
        &self.handles
    }

    /// The engine a new receive goes to (round robin over the receive ports).
    pub fn receive_engine(&self) -> &EngineHandle {
        let i = self.next_engine.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }

    /// The directory a session's paths are confined to; `None` = the whole filesystem.
    ///
    /// # Errors
    /// A bad `--sandbox-dir` template or token path.
    pub fn sandbox_of(&self, session: &Session) -> Result<Option<PathBuf>, ApiError> {
        let (base, token_rel) = self.sandbox_parts(session)?;
        Ok(match token_rel {
            Some(rel) => Some(sandbox::join_under(
                base.as_deref().unwrap_or(std::path::Path::new("/")),
                &rel,
            )),
            None => base,
        })
    }

    /// [`Self::sandbox_of`] in its two parts: the user's sandbox (`--sandbox-dir` expanded;
    /// `None` = the whole filesystem) and the token's path below it, cleaned (a token login
    /// with a `path`). The receive path creates the first as the server and the second as
    /// the user.
    ///
    /// # Errors
    /// A bad `--sandbox-dir` template or token path.
    pub fn sandbox_parts(
        &self,
        session: &Session,
    ) -> Result<(Option<PathBuf>, Option<String>), ApiError> {
        let Some(user) = &session.user else {
            return Err(ApiError("not authenticated".into()));
        };
        let base = match &self.args.sandbox_dir {
            Some(t) => Some(sandbox::expand_sandbox(t, &user.name, &user.name)?),
            None => None,
        };
        let token_path = session.token.as_ref().and_then(|t| {
            self.objects
                .lock()
                .tokens
                .values()
                .find(|r| &r.token == t)
                .and_then(|r| r.path.clone())
        });
        let token_rel = token_path
            .map(|p| sandbox::clean_relative(&p))
            .transpose()?;
        Ok((base, token_rel))
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
                gc: Some(*self.gc.lock()),
                bandwidth: Some(*self.bandwidth.lock()),
            }
        };
        if let Err(e) = self.state.save(&p) {
            crate::error!("state: cannot save {}: {e}", self.state.path().display());
        }
    }

    /// Stops the server: running transfers are checkpointed and kept for the next start.
    pub fn stop(&self, why: &str) {
        if self.stopping.swap(true, Ordering::SeqCst) {
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
        for (_, e) in self.dest_engines.lock().drain() {
            e.shutdown();
        }
        for e in self.engines.lock().drain(..) {
            e.shutdown();
        }
        crate::log!("server: stopped");
        std::process::exit(0);
    }
}

/// Runs `jetstream server` with `args`; returns the exit code on a start-up failure (a
/// running server leaves through [`Server::stop`]).
pub fn run(config: crate::config_file::Loaded<ServerArgs>) -> i32 {
    log::set_level(config.args.log_level);
    match start(config.args, config.source) {
        Ok(()) => 0,
        Err(e) => {
            crate::error!("jetstream server: {e}");
            1
        }
    }
}

/// The checks on values that argh cannot make alone (at start and on reload).
fn check(args: &ServerArgs) -> Result<(), String> {
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    ciphers::parse(&args.min_cipher).map_err(|e| format!("--min-cipher: {e}"))?;
    for c in &args.cipher {
        ciphers::parse(c).map_err(|e| format!("--cipher: {e}"))?;
    }
    if let Some(t) = &args.sandbox_dir {
        sandbox::expand_sandbox(t, "user", "user").map_err(|e| format!("--sandbox-dir: {e}"))?;
    }
    Ok(())
}

fn start(args: ServerArgs, config_source: crate::config_file::ConfigSource) -> Result<(), String> {
    if let Some(path) = &args.log {
        log::to_file(path).map_err(|e| format!("--log {}: {e}", path.display()))?;
    }
    check(&args)?;
    let state = StateDir::open(&args.persistent_state_dir)?;
    // The previous run's local token goes before the API port opens: a script that waits for
    // the port and then reads the file must find the fresh token (written before the first
    // connection is served) or none yet, never the old one.
    match std::fs::remove_file(state.path().join("local.token")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("{}/local.token: {e}", state.path().display()));
        }
        _ => {}
    }
    let paths = jetstream_client::paths::PathMemory::open(&state.path().join("paths"));
    let server_uid = state.server_uid()?;
    let identity = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Identity::from_pem_files(c, k).map_err(|e| e.to_string())?,
        _ => Identity::load_or_create(state.path()).map_err(|e| e.to_string())?,
    };
    let tls_config = identity.server_config();
    let mut engines = Vec::new();
    let mut recv_addrs = Vec::new();
    let (engine_events, engine_events_rx) = crossbeam_channel::unbounded();
    for port in args.recv_ports() {
        let mut cfg = EngineConfig::default();
        cfg.bind(SocketAddr::new(args.recv_host, port));
        let e =
            Engine::spawn_with_trigger(cfg, EngineEvents(engine_events.clone())).map_err(|e| {
                format!(
                    "cannot open the UDP receive port {}:{port}: {e}",
                    args.recv_host
                )
            })?;
        recv_addrs.push(e.local_addr());
        engines.push(e);
    }
    let listener = TcpListener::bind((args.api_host.as_str(), args.api_port)).map_err(|e| {
        format!(
            "cannot listen on the API port {}:{}: {e}",
            args.api_host, args.api_port
        )
    })?;
    let api_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let metrics_listener = metrics::bind(args.metrics_address.as_deref())?;
    // API and data ports are bound: systemd may start what comes after us (Type=notify).
    crate::notify::ready(&format!("API tcp {api_addr}"));
    let persisted = state.load()?;
    let auth = Authenticator::new("jetstream").map_err(|e| format!("users: {e}"))?;
    let supers = SuperuserPolicy::new(args.superuser.clone(), args.supergroup.clone());
    let host_name = sys::host_name();
    let (kick, kicks) = crossbeam_channel::bounded(1);
    let (gc_wake, gc_woken) = crossbeam_channel::bounded(1);
    let events = events::EventLog::open(state.path());
    let triggers = triggers::Triggers::start(args.trigger_dir.clone(), args.trigger_log, 1000);
    let gc_settings = persisted.gc.unwrap_or_default();
    let trust = trust::AuthorizedClients::load(state.path())?;
    let relay_pin = crate::relay::client::relay_key(&args)?;
    let relay_addr = match &args.recv_relay_host {
        Some(h) => Some(
            std::net::ToSocketAddrs::to_socket_addrs(&(h.as_str(), args.recv_relay_port))
                .map_err(|e| format!("--recv-relay-host {h}: {e}"))?
                .find(SocketAddr::is_ipv4)
                .ok_or_else(|| format!("--recv-relay-host {h}: no IPv4 address"))?,
        ),
        None => None,
    };
    let handles = engines.iter().map(Engine::handle).collect();
    let server = Arc::new(Server {
        server_id: new_id(),
        server_uid,
        server_name: args
            .server_name
            .clone()
            .unwrap_or_else(|| host_name.clone()),
        host_name,
        identity,
        tls_config,
        auth,
        supers,
        api_addr,
        recv_addrs,
        state,
        objects: Mutex::new(Objects::default()),
        requests: Mutex::new(Requests::default()),
        request_done: parking_lot::Condvar::new(),
        start_time: now_us(),
        events,
        triggers,
        trust,
        relay: crate::relay::client::RelayState {
            relay: relay_addr,
            data_port: Mutex::new(None),
        },
        paths: Mutex::new(paths),
        metrics: metrics::Metrics::default(),
        gc: Mutex::new(gc_settings),
        bandwidth: Mutex::new(args.bandwidth_over(persisted.bandwidth.unwrap_or_default())),
        gc_wake,
        engines: Mutex::new(engines),
        dest_engines: Mutex::new(HashMap::new()),
        handles,
        next_engine: AtomicUsize::new(0),
        kick,
        stopping: AtomicBool::new(false),
        api_connections: Mutex::new(ApiConnections::default()),
        save_lock: Mutex::new(()),
        live: parking_lot::RwLock::new(Arc::new(args.clone())),
        config_source,
        args,
    });
    restore(&server, persisted);
    if !server.args.api_disable_api_tokens {
        local_token(&server)?;
    }
    server.events.record(
        "serverStarted",
        serde_json::json!({
            "serverId": server.server_id,
            "serverUid": server.server_uid,
            "apiControlPort": server.api_addr.port(),
            "version": env!("CARGO_PKG_VERSION"),
        }),
    );
    if let Some(l) = metrics_listener {
        metrics::serve(&server, l)?;
    }
    let s = server.clone();
    std::thread::Builder::new()
        .name("housekeeping".into())
        .spawn(move || gc::run(&s, &gc_woken))
        .map_err(|e| e.to_string())?;
    let s = server.clone();
    std::thread::Builder::new()
        .name("engine-events".into())
        .spawn(move || {
            for ev in engine_events_rx {
                receive::engine_event(&s, &ev);
            }
        })
        .map_err(|e| e.to_string())?;
    let s = server.clone();
    std::thread::Builder::new()
        .name("scheduler".into())
        .spawn(move || transfers::scheduler(&s, &kicks))
        .map_err(|e| e.to_string())?;
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| format!("signals: {e}"))?;
    let s = server.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == signal_hook::consts::SIGHUP {
                    s.reload();
                    continue;
                }
                s.stop(if sig == signal_hook::consts::SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                });
                break;
            }
        })
        .map_err(|e| e.to_string())?;
    crate::log!(
        "server: {} listening: API tcp {} (remote control {}), data udp {}; state {}; sandbox {}",
        server.server_name,
        server.api_addr,
        if server.args.api_allow_remote_control {
            "on, TLS"
        } else {
            "off"
        },
        server
            .recv_addrs
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        server.state.path().display(),
        server.args.sandbox_dir.as_deref().unwrap_or("none"),
    );
    if let (Some(relay), Some(engine)) = (relay_addr, server.recv_addrs.first()) {
        crate::relay::client::start(&server, relay, relay_pin, *engine);
    }
    server
        .triggers
        .fire("launch", vec![server.api_addr.port().to_string()], None);
    for conn in listener.incoming() {
        if server.is_stopping() {
            break;
        }
        let Ok(tcp) = conn else { continue };
        let Ok(peer) = tcp.peer_addr() else { continue };
        if !server.live().api_allow_remote_control && !peer.ip().is_loopback() {
            crate::warn!("api: refused {peer}: remote control is off");
            continue;
        }
        let Some(slot) = server.api_slot(peer.ip()) else {
            crate::warn!("api: refused {peer}: too many API connections");
            continue;
        };
        let s = server.clone();
        let spawned = std::thread::Builder::new()
            .name("api".into())
            .stack_size(256 * 1024)
            .spawn(move || api::serve(&s, tcp, peer, slot));
        if let Err(e) = spawned {
            crate::error!("api: cannot serve {peer}: {e}");
        }
    }
    Ok(())
}

/// Forwards the engines' events to the server (the engine calls it on its trigger thread).
#[derive(Debug)]
struct EngineEvents(crossbeam_channel::Sender<jetstream_core::TriggerEvent>);

impl jetstream_core::Trigger for EngineEvents {
    fn on_event(&mut self, event: &jetstream_core::TriggerEvent) {
        if matches!(event, jetstream_core::TriggerEvent::TransferComplete { .. }) {
            let _ = self.0.send(event.clone());
        }
    }
}

/// What marks the local token among the API tokens.
pub const LOCAL_TOKEN_DESCRIPTION: &str = "local token of the server's own account";

/// Writes `<state>/local.token`: a fresh API token (replaced at every start) that logs in as
/// the account running the server. Only that account can read the file (mode 0600 in a 0700
/// directory), so it grants nothing that account does not already have; it lets local scripts
/// (and the README's first command) use the API without a password.
fn local_token(server: &Arc<Server>) -> Result<(), String> {
    let me = crate::users::by_uid(sys::euid())
        .map_err(|e| format!("cannot look up the server's own user: {e}"))?
        .ok_or("the server's own uid has no user name")?;
    let rec = TokenRec {
        token: new_id(),
        owner: objects::Owner {
            user: me.name,
            token: None,
            token_session: None,
        },
        password_hash: None,
        salt: new_id(),
        description: LOCAL_TOKEN_DESCRIPTION.into(),
        creation_time: now_us(),
        expiry_time: None,
        path: None,
        permissions: objects::PERMISSIONS
            .iter()
            .map(|p| (*p).to_owned())
            .collect(),
        user_data: Default::default(),
        shared: None,
    };
    let path = server.state.path().join("local.token");
    state::write_atomic(&path, format!("{}\n", rec.token).as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut objs = server.objects.lock();
    objs.tokens
        .retain(|_, t| t.description != LOCAL_TOKEN_DESCRIPTION);
    objs.tokens.insert(rec.token.clone(), rec);
    drop(objs);
    server.save();
    Ok(())
}

/// Loads persisted objects; transfers that were running are queued again (they resume).
fn restore(server: &Arc<Server>, p: Persisted) {
    let mut objs = server.objects.lock();
    if server.args.persistent_destinations {
        for d in p.destinations {
            objs.destinations.insert(d.id.clone(), d);
        }
    }
    let shared: Vec<&str> = p
        .tokens
        .iter()
        .filter_map(|t| t.shared.as_ref().map(|sh| sh.manifest_id.as_str()))
        .collect();
    for m in &p.manifests {
        // Manifests come back with their transfers, or with the shared tokens using them.
        if server.args.persistent_transfers || shared.contains(&m.id.as_str()) {
            objs.manifests.insert(m.id.clone(), m.clone());
        }
    }
    if server.args.persistent_transfers {
        for mut t in p.transfers {
            if t.status == TxStatus::Sending || t.status == TxStatus::Pending {
                if t.destination_id.starts_with(download::CLIENT_PREFIX) {
                    // A download belongs to its client's connection, which is gone: the
                    // client asks again (and resumes).
                    t.status = TxStatus::Error;
                    t.error_message =
                        Some("interrupted by a server restart; the client must ask again".into());
                    t.end_time = Some(now_us());
                } else if t.status == TxStatus::Sending {
                    t.status = TxStatus::Pending;
                    t.error_message = Some("interrupted by a server restart; resuming".into());
                }
            }
            objs.transfers.insert(t.id.clone(), t);
        }
    }
    for t in p.tokens {
        objs.tokens.insert(t.token.clone(), t);
    }
    let n = objs.transfers.len();
    drop(objs);
    if n > 0 {
        crate::log!("state: restored {n} transfers");
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
