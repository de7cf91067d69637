//! Starting a server ([`spawn`]) and the handle to it ([`ServerHandle`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::thread::JoinHandle;

use jetstream_core::{Engine, EngineConfig, Role};
use parking_lot::Mutex;

use super::config::ServerArgs;
use super::error::Port;
use super::events::{EventQueue, ServerEvent, ServerTrigger};
use super::objects::{self, new_id, now_us, Persisted, TokenRec, TxStatus};
use super::state::{self, StateDir};
use super::{
    api, ciphers, download, events, gc, metrics, receive, sys, transfers, triggers, trust,
    ApiConnections, Engines, Lifecycle, LiveConfig, Objects, Requests, Server, ServerConfig,
    ServerError, Settings,
};
use crate::sandbox;
use crate::tls::Identity;
use crate::users::{Authenticator, SuperuserPolicy};

/// Starts a server (binds its ports, loads its state, starts its threads) and returns its
/// handle. Events go to the trigger scripts only; [`spawn_with_trigger`] also sends them to
/// the program.
///
/// The library installs no signal handler, opens no log file (the log goes where the program
/// sent it: stderr by default, see [`super::log`]) and never exits the process.
///
/// # Errors
/// A port cannot be bound, an option is refused, the state directory cannot be used, the TLS
/// identity cannot be loaded, the system's users cannot be read, a thread cannot start.
pub fn spawn(config: ServerConfig) -> Result<ServerHandle, ServerError> {
    start(config, None)
}

/// [`spawn`], with `trigger` receiving every [`ServerEvent`] on a thread of its own (see
/// [`super::events`] for the delivery: bounded, nothing dropped, the producer waits when the
/// trigger is far behind). The first event is [`ServerEvent::Launch`].
///
/// # Errors
/// As [`spawn`].
pub fn spawn_with_trigger(
    config: ServerConfig,
    trigger: impl ServerTrigger,
) -> Result<ServerHandle, ServerError> {
    start(config, Some(Box::new(trigger)))
}

/// A running server: its addresses, and stop / wait / reload. Cloning gives another handle to
/// the same server; dropping every handle does not stop it (call [`Self::stop`]).
#[derive(Clone, Debug)]
pub struct ServerHandle {
    server: Arc<Server>,
    /// The threads [`Self::wait`] joins: the accept loop and the event delivery.
    threads: Arc<Mutex<Vec<Named>>>,
}

/// A thread of the server and its name.
type Named = (&'static str, JoinHandle<()>);

impl ServerHandle {
    /// The bound API address (the actual port when the configuration asked for port 0).
    pub fn api_addr(&self) -> SocketAddr {
        self.server.api_addr
    }

    /// The first bound UDP data address (the actual port when asked for port 0).
    pub fn data_addr(&self) -> SocketAddr {
        self.server.recv_addrs[0]
    }

    /// Every bound UDP data address, in the configuration's order.
    pub fn data_addrs(&self) -> &[SocketAddr] {
        &self.server.recv_addrs
    }

    /// The bound metrics address, when the server serves metrics.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.server.metrics_addr()
    }

    /// The persistent state directory.
    pub fn state_dir(&self) -> &Path {
        self.server.state.path()
    }

    /// The server's local API token: it logs in as the account running the server (as
    /// `<state>/local.token`, which holds the same); `None` with API tokens disabled.
    pub fn local_token(&self) -> Option<String> {
        self.server
            .objects
            .lock()
            .tokens
            .values()
            .find(|t| t.description == super::LOCAL_TOKEN_DESCRIPTION)
            .map(|t| t.token.clone())
    }

    /// Reads the configuration file and command line the server started with again and
    /// applies the keys that can change live (what `SIGHUP` does in the binary). A
    /// configuration built in code has nothing to read again.
    ///
    /// # Errors
    /// The file does not parse or a value is refused; the running configuration stays.
    pub fn reload(&self) -> Result<(), ServerError> {
        self.server.reload()
    }

    /// Applies the keys of `config` that can change live (`super::config::LIVE_KEYS`: the
    /// login and idle timeouts, remote control, ciphers, bandwidth limits, `on.<command>`
    /// triggers, the log level); a change to any other key is logged as needing a restart.
    ///
    /// # Errors
    /// A value is refused; the running configuration stays.
    pub fn reconfigure(&self, config: &ServerConfig) -> Result<(), ServerError> {
        self.server.reconfigure(config.args.clone())
    }

    /// Whether the server is stopping (or stopped).
    pub fn is_stopping(&self) -> bool {
        self.server.is_stopping()
    }

    /// Stops the server and waits until it has stopped ([`Self::wait`]): running transfers
    /// are checkpointed (they resume at the next start on the same state directory), the
    /// state is saved, the ports close and the queued events are delivered.
    ///
    /// # Errors
    /// As [`Self::wait`].
    pub fn stop(&self) -> Result<(), ServerError> {
        self.server.stop("stopped by the program");
        self.wait()
    }

    /// Waits until the server has stopped: by [`Self::stop`], the API's `terminate` command,
    /// or another handle. The event trigger has had every event when it returns.
    ///
    /// # Errors
    /// [`ServerError::Panicked`] when the accept loop or the event thread panicked.
    pub fn wait(&self) -> Result<(), ServerError> {
        self.server.wait_stopped();
        let threads = std::mem::take(&mut *self.threads.lock());
        let mut result = Ok(());
        for (name, t) in threads {
            if t.join().is_err() {
                result = Err(ServerError::Panicked { thread: name });
            }
        }
        result
    }
}

/// An address that reaches `addr` from this host: the loopback address of its family when it
/// is the unspecified one (a server bound to all interfaces).
pub(super) fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// The checks on values that argh cannot make alone (at start and on reload).
pub(super) fn check(args: &ServerArgs) -> Result<(), ServerError> {
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        return Err(ServerError::config(
            "tls-cert",
            "--tls-cert and --tls-key go together",
        ));
    }
    ciphers::parse(&args.min_cipher).map_err(|e| ServerError::config("min-cipher", e))?;
    for c in &args.cipher {
        ciphers::parse(c).map_err(|e| ServerError::config("cipher", e))?;
    }
    if let Some(t) = &args.sandbox_dir {
        sandbox::expand_sandbox(t, "user", "user")
            .map_err(|e| ServerError::config("sandbox-dir", e))?;
    }
    Ok(())
}

/// A state-directory failure (the state module's errors are text naming the file).
fn state_error(dir: &Path, reason: String) -> ServerError {
    ServerError::StateDir {
        path: dir.to_owned(),
        reason,
    }
}

fn start(
    config: ServerConfig,
    trigger: Option<Box<dyn ServerTrigger>>,
) -> Result<ServerHandle, ServerError> {
    let ServerConfig {
        args,
        source,
        event_queue,
        trace_file,
    } = config;
    check(&args)?;
    let state_path = args.persistent_state_dir.clone();
    let state = StateDir::open(&state_path).map_err(|e| state_error(&state_path, e))?;
    // The previous run's local token goes before the API port opens: a script that waits for
    // the port and then reads the file must find the fresh token (written before the first
    // connection is served) or none yet, never the old one.
    match std::fs::remove_file(state.path().join("local.token")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(state_error(
                &state_path,
                format!("{}/local.token: {e}", state.path().display()),
            ));
        }
        _ => {}
    }
    let paths = jetstream_client::paths::PathMemory::open(&state.path().join("paths"));
    let server_uid = state
        .server_uid()
        .map_err(|e| state_error(&state_path, e))?;
    let identity = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Identity::from_pem_files(c, k),
        _ => Identity::load_or_create(state.path()),
    }
    .map_err(|e| ServerError::Tls(e.to_string()))?;
    let tls_config = identity.server_config();
    let mut engines = Vec::new();
    let mut recv_addrs = Vec::new();
    let (engine_events, engine_events_rx) = crossbeam_channel::unbounded();
    for port in args.recv_ports() {
        let mut cfg = EngineConfig::default();
        let addr = SocketAddr::new(args.recv_host, port);
        cfg.bind(addr);
        cfg.trace_file(trace_file.clone());
        let e =
            Engine::spawn_with_trigger(cfg, EngineEvents(engine_events.clone())).map_err(|e| {
                match e {
                    jetstream_core::Error::Io(io) => ServerError::bind(Port::Data, addr, &io),
                    other => ServerError::Bind {
                        port: Port::Data,
                        address: addr.to_string(),
                        kind: std::io::ErrorKind::Other,
                        cause: other.to_string(),
                    },
                }
            })?;
        recv_addrs.push(e.local_addr());
        engines.push(e);
    }
    let api_address = format!("{}:{}", args.api_host, args.api_port);
    let listener = TcpListener::bind((args.api_host.as_str(), args.api_port))
        .map_err(|e| ServerError::bind(Port::Api, &api_address, &e))?;
    let api_addr = listener
        .local_addr()
        .map_err(|e| ServerError::bind(Port::Api, &api_address, &e))?;
    let metrics_listener = match args.metrics_address.as_deref() {
        None => None,
        Some(s) => {
            let addr =
                metrics::parse_address(s).map_err(|e| ServerError::config("metrics-address", e))?;
            Some(metrics::bind(Some(s)).map_err(|e| ServerError::Bind {
                port: Port::Metrics,
                address: addr.to_string(),
                kind: std::io::ErrorKind::Other,
                cause: e,
            })?)
        }
    }
    .flatten();
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
    let persisted = state.load().map_err(|e| state_error(&state_path, e))?;
    let auth = Authenticator::new("jetstream").map_err(|e| ServerError::Users(e.to_string()))?;
    let supers = SuperuserPolicy::new(args.superuser.clone(), args.supergroup.clone());
    let host_name = sys::host_name();
    let (kick, kicks) = crossbeam_channel::bounded(1);
    let (gc_wake, gc_woken) = crossbeam_channel::bounded(1);
    let events = events::EventLog::open(state.path());
    let triggers = triggers::Triggers::start(args.trigger_dir.clone(), args.trigger_log, 1000);
    let gc_settings = persisted.gc.unwrap_or_default();
    let trust =
        trust::AuthorizedClients::load(state.path()).map_err(|e| state_error(&state_path, e))?;
    let sandboxes =
        crate::sandbox::mappings::Mappings::load(state.path(), args.sandbox_dir.as_deref())
            .map_err(|e| state_error(&state_path, e))?;
    let relay_pin = crate::relay::client::relay_key(&args)
        .map_err(|e| ServerError::config("recv-relay-public-key", e))?;
    let relay_addr = match &args.recv_relay_host {
        Some(h) => Some(
            std::net::ToSocketAddrs::to_socket_addrs(&(h.as_str(), args.recv_relay_port))
                .map_err(|e| ServerError::config("recv-relay-host", format!("{h}: {e}")))?
                .find(SocketAddr::is_ipv4)
                .ok_or_else(|| {
                    ServerError::config("recv-relay-host", format!("{h}: no IPv4 address"))
                })?,
        ),
        None => None,
    };
    let mut threads = Vec::new();
    let event_queue = match trigger {
        Some(t) => {
            let (queue, thread) = EventQueue::start(t, event_queue)
                .map_err(|e| ServerError::thread("server-events", &e))?;
            threads.push(("server-events", thread));
            queue
        }
        None => EventQueue::none(),
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
        object_ended: parking_lot::Condvar::new(),
        start_time: now_us(),
        events,
        triggers,
        trust,
        sandboxes,
        relay: crate::relay::client::RelayState {
            relay: relay_addr,
            data_port: Mutex::new(None),
        },
        paths: Mutex::new(paths),
        metrics: metrics::Metrics::default(),
        metrics_addr,
        settings: Settings {
            gc: Mutex::new(gc_settings),
            bandwidth: Mutex::new(args.bandwidth_over(persisted.bandwidth.unwrap_or_default())),
            bandwidth_manager: Mutex::default(),
            gc_wake,
        },
        engines: Engines {
            receive: Mutex::new(engines),
            handles,
            next: AtomicUsize::new(0),
            by_destination: Mutex::new(HashMap::new()),
        },
        kick,
        lifecycle: Lifecycle {
            stopping: AtomicBool::new(false),
            ..Lifecycle::default()
        },
        event_queue,
        trace_file,
        api_connections: Mutex::new(ApiConnections::default()),
        save_lock: Mutex::new(()),
        config: LiveConfig {
            live: parking_lot::RwLock::new(Arc::new(args.clone())),
            source,
        },
        args,
    });
    // From here on a failure must stop what started (threads, engines, the event thread).
    let started = Started {
        persisted,
        listener,
        metrics_listener,
        relay_addr,
        relay_pin,
        kicks,
        gc_woken,
        engine_events_rx,
    };
    match run(&server, started) {
        Ok(accept) => {
            threads.insert(0, ("api-accept", accept));
            Ok(ServerHandle {
                server,
                threads: Arc::new(Mutex::new(threads)),
            })
        }
        Err(e) => {
            server.stop("start-up failed");
            for (_, t) in threads {
                let _ = t.join();
            }
            Err(e)
        }
    }
}

/// What [`start`] made for [`run`].
struct Started {
    persisted: Persisted,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    relay_addr: Option<SocketAddr>,
    relay_pin: Option<String>,
    /// Scheduler kicks.
    kicks: crossbeam_channel::Receiver<()>,
    /// Collection wake-ups.
    gc_woken: crossbeam_channel::Receiver<()>,
    engine_events_rx: crossbeam_channel::Receiver<jetstream_core::TriggerEvent>,
}

/// Restores the state, starts the server's threads and the accept loop; returns the accept
/// loop's thread.
fn run(server: &Arc<Server>, started: Started) -> Result<JoinHandle<()>, ServerError> {
    let Started {
        persisted,
        listener,
        metrics_listener,
        relay_addr,
        relay_pin,
        kicks,
        gc_woken,
        engine_events_rx,
    } = started;
    restore(server, persisted);
    if !server.args.api_disable_api_tokens {
        local_token(server)?;
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
        metrics::serve(server, l).map_err(|e| ServerError::Thread {
            name: "metrics",
            cause: e,
        })?;
    }
    let spawn = |name: &'static str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .map_err(|e| ServerError::thread(name, &e))
    };
    let s = server.clone();
    spawn("housekeeping", Box::new(move || gc::run(&s, &gc_woken)))?;
    let s = server.clone();
    spawn(
        "engine-events",
        Box::new(move || {
            for ev in engine_events_rx {
                engine_event(&s, &ev);
            }
        }),
    )?;
    let s = server.clone();
    spawn(
        "scheduler",
        Box::new(move || transfers::scheduler(&s, &kicks)),
    )?;
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
        crate::relay::client::start(server, relay, relay_pin, *engine);
    }
    server.emit(ServerEvent::Launch {
        api_addr: server.api_addr,
    });
    let s = server.clone();
    std::thread::Builder::new()
        .name("api-accept".into())
        .spawn(move || accept(&s, &listener))
        .map_err(|e| ServerError::thread("api-accept", &e))
}

/// The accept loop: one thread per API connection, until the server stops.
fn accept(server: &Arc<Server>, listener: &TcpListener) {
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
            .spawn(move || {
                // A panic outside a request (a request's own is answered in api::serve) ends
                // this connection only; it is logged here, not left to the thread's death.
                let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    api::serve(&s, tcp, peer, slot);
                }));
                if let Err(panic) = served {
                    crate::error!(
                        "api: {peer}: the connection's handler panicked: {}; the connection \
                         is closed, the server goes on",
                        api::panic_message(&*panic)
                    );
                }
            });
        if let Err(e) = spawned {
            crate::error!("api: cannot serve {peer}: {e}");
        }
    }
}

/// Forwards the engines' events to the server (the engine calls it on its trigger thread).
#[derive(Debug)]
struct EngineEvents(crossbeam_channel::Sender<jetstream_core::TriggerEvent>);

impl jetstream_core::Trigger for EngineEvents {
    fn on_event(&mut self, event: &jetstream_core::TriggerEvent) {
        use jetstream_core::TriggerEvent as E;
        if matches!(
            event,
            E::TransferComplete { .. } | E::TransferStarted { .. } | E::TransferFailed { .. }
        ) {
            let _ = self.0.send(event.clone());
        }
    }
}

/// An engine event of a receive port, on the `engine-events` thread.
fn engine_event(server: &Server, ev: &jetstream_core::TriggerEvent) {
    use jetstream_core::TriggerEvent as E;
    let receive_of = |engine_id: &jetstream_core::TransferId| {
        server
            .objects
            .lock()
            .receives
            .values()
            .find(|r| r.handle.as_ref().is_some_and(|h| h.id() == *engine_id))
            .map(|r| r.id.clone())
    };
    match ev {
        E::TransferComplete { .. } => receive::engine_event(server, ev),
        E::TransferStarted {
            transfer_id,
            role: Role::Receiver,
        } => {
            if let Some(id) = receive_of(transfer_id) {
                server.emit(ServerEvent::TransferStarted {
                    transfer_id: id,
                    role: Role::Receiver,
                });
            }
        }
        E::TransferFailed {
            transfer_id,
            role: Role::Receiver,
            message,
            reason,
        } => {
            if let Some(id) = receive_of(transfer_id) {
                server.emit(ServerEvent::TransferFailed {
                    transfer_id: id,
                    role: Role::Receiver,
                    message: message.clone(),
                    reason: Some(*reason),
                });
            }
        }
        _ => {}
    }
}

/// What marks the local token among the API tokens.
pub const LOCAL_TOKEN_DESCRIPTION: &str = "local token of the server's own account";

/// Writes `<state>/local.token`: a fresh API token (replaced at every start) that logs in as
/// the account running the server. Only that account can read the file (mode 0600 in a 0700
/// directory), so it grants nothing that account does not already have; it lets local scripts
/// (and the README's first command) use the API without a password.
fn local_token(server: &Arc<Server>) -> Result<(), ServerError> {
    let me = crate::users::by_uid(sys::euid())
        .map_err(|e| ServerError::Users(format!("cannot look up the server's own user: {e}")))?
        .ok_or_else(|| ServerError::Users("the server's own uid has no user name".into()))?;
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
        permissions: jetstream_api::Permission::ALL
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        user_data: Default::default(),
        shared: None,
    };
    let path = server.state.path().join("local.token");
    state::write_atomic(&path, format!("{}\n", rec.token).as_bytes())
        .map_err(|e| state_error(server.state.path(), format!("{}: {e}", path.display())))?;
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
