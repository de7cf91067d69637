//! The mio driver: the only code that touches sockets. One thread owns the UDP socket and the
//! protocol [`Endpoint`](crate::proto::Endpoint); other threads reach it through an
//! [`EngineHandle`] (a channel plus a `mio::Waker`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};
use parking_lot::{Condvar, Mutex};

use crate::config::{EngineConfig, TransportConfig};
use crate::error::Error;
use crate::manifest::Manifest;
use crate::proto::{EndpointStats, TrafficStats};
use crate::transfer::{Destination, Shared, Transfer, TransferKeys, TransferStatus};
use crate::trigger::{NoTrigger, Trigger};
use crate::types::{BitsPerSecond, Role, TransferId};

mod driver;
pub mod socket;

/// A request to the engine thread.
#[derive(Debug)]
pub(crate) enum Command {
    Send(Box<SendCommand>),
    Receive(Box<ReceiveCommand>),
    Cancel(TransferId),
    SetRate(TransferId, Option<BitsPerSecond>),
    Info(Sender<EngineInfo>),
    /// Send one discovery probe (to, nonce) and say whether the socket took it.
    Discover(SocketAddr, [u8; 16], Sender<Result<(), Error>>),
    /// A copy of the ring of received discovery datagrams, oldest first.
    Discoveries(Sender<Vec<Discovery>>),
    Shutdown,
}

#[derive(Debug)]
pub(crate) struct SendCommand {
    pub(crate) destination: Destination,
    pub(crate) keys: TransferKeys,
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: TransportConfig,
    pub(crate) reply: Sender<Result<(), Error>>,
}

#[derive(Debug)]
pub(crate) struct ReceiveCommand {
    pub(crate) keys: TransferKeys,
    pub(crate) root: crate::fs::sink::SinkRoot,
    pub(crate) owner: Option<crate::fs::identity::FsIdentity>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: TransportConfig,
    pub(crate) reply: Sender<Result<(), Error>>,
}

/// Facts about a running engine.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineInfo {
    /// The bound UDP address.
    pub local_addr: SocketAddr,
    /// Socket receive buffer the kernel granted (bytes).
    pub recv_buffer: usize,
    /// Socket send buffer the kernel granted (bytes).
    pub send_buffer: usize,
    /// UDP generic segmentation offload in use for sending.
    pub gso: bool,
    /// UDP generic receive offload in use.
    pub gro: bool,
    /// Datagrams dropped before reaching a session.
    pub dropped: EndpointStats,
    /// Live sessions.
    pub sessions: usize,
    /// Discovery datagrams (reachability probes and echoes) seen and sent.
    pub discovery: DiscoveryStats,
    /// Bytes carried by every session of this engine so far (closed ones included).
    pub traffic: TrafficStats,
    /// Trigger events dropped because the trigger fell behind (each loss is also reported to
    /// the trigger as [`TriggerEvent::EventsLost`](crate::TriggerEvent::EventsLost)).
    pub trigger_events_lost: u64,
}

/// A discovery datagram the engine received: a reachability probe from another engine, or
/// the echo of one of ours. See [`EngineHandle::send_discovery`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Discovery {
    /// Where it came from (as seen by this engine's socket).
    pub from: SocketAddr,
    /// The nonce the prober chose; an echo carries the probe's nonce back.
    pub nonce: [u8; 16],
    /// An echo of a probe of ours (`false`: a probe from `from`).
    pub echo: bool,
    /// When it was received.
    pub at: Instant,
}

/// Counters of discovery traffic (part of [`EngineInfo`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveryStats {
    /// Probes received.
    pub probes: u64,
    /// Echoes received.
    pub echoes: u64,
    /// Echoes sent in answer to probes.
    pub echoes_sent: u64,
    /// Probes not answered: over the echo rate limit, or the socket refused the echo.
    pub echoes_dropped: u64,
    /// Datagrams with the discovery magic but an unknown kind byte.
    pub invalid: u64,
}

/// A cheap, cloneable, thread-safe handle on an engine.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    tx: Sender<Command>,
    waker: Arc<mio::Waker>,
    config: Arc<EngineConfig>,
}

impl EngineHandle {
    pub(crate) fn command(&self, cmd: Command) -> bool {
        if self.tx.send(cmd).is_err() {
            return false;
        }
        self.waker.wake().is_ok()
    }

    fn new_shared(role: Role) -> Result<Arc<Shared>, Error> {
        let mut id = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .map_err(|_| Error::Config("OS random generator failed".into()))?;
        Ok(Arc::new(Shared {
            status: Mutex::new(TransferStatus::new(TransferId(id), role)),
            ended: Condvar::new(),
        }))
    }

    /// Hands a start command to the engine and waits for its verdict.
    fn start(
        &self,
        cmd: Command,
        reply: &crossbeam_channel::Receiver<Result<(), Error>>,
        shared: Arc<Shared>,
    ) -> Result<Transfer, Error> {
        if !self.command(cmd) {
            return Err(Error::EngineStopped);
        }
        reply
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| Error::EngineStopped)??;
        Ok(Transfer {
            shared,
            engine: self.clone(),
        })
    }

    /// Sends `manifest` to `destination`, which must expect `keys` (see [`Self::receive`]).
    ///
    /// # Errors
    /// If the engine has stopped or the session id is in use.
    pub fn send(
        &self,
        destination: Destination,
        keys: TransferKeys,
        manifest: Manifest,
    ) -> Result<Transfer, Error> {
        let shared = Self::new_shared(Role::Sender)?;
        let mut config = self.config.transport.clone();
        if destination.send_rate_max.is_some() {
            config.max_rate = destination.send_rate_max;
        }
        if let Some(mode) = destination.rate_mode {
            config.rate_mode = mode;
        }
        config.path_hint = destination.path_hint;
        let (reply, rx) = bounded(1);
        let cmd = SendCommand {
            destination,
            keys,
            manifest: Arc::new(manifest),
            shared: shared.clone(),
            config,
            reply,
        };
        self.start(Command::Send(Box::new(cmd)), &rx, shared)
    }

    /// Expects a transfer with `keys` and writes what arrives under `root` (created if
    /// missing). An interrupted earlier transfer of the same manifest into the same root is
    /// resumed: only what is missing is sent.
    ///
    /// # Errors
    /// If the engine has stopped or the session id is in use.
    pub fn receive(&self, keys: TransferKeys, root: impl Into<PathBuf>) -> Result<Transfer, Error> {
        self.receive_as(keys, root, None)
    }

    /// As [`Self::receive`], doing all of the file-system work of the transfer with `owner`'s
    /// file-system identity (uid, gid and supplementary groups): a server running as root
    /// receives on behalf of a system user. Creating `root` if missing, the resume journal,
    /// directories, part files, renames, mtimes and modes all run on threads switched to that
    /// identity (see [`crate::fs::identity`]), so the user's permissions (mode bits, ACLs,
    /// read-only mounts) are enforced as if the user wrote the files, and what is created
    /// belongs to the user. An entry the user may not write fails with "the receiver may not
    /// write there"; the other entries go on. `None` writes with the process's own identity.
    ///
    /// # Errors
    /// If the engine has stopped or the session id is in use.
    pub fn receive_as(
        &self,
        keys: TransferKeys,
        root: impl Into<PathBuf>,
        owner: Option<crate::fs::identity::FsIdentity>,
    ) -> Result<Transfer, Error> {
        self.receive_at(keys, crate::fs::sink::SinkRoot::Path(root.into()), owner)
    }

    /// As [`Self::receive_as`], writing beneath a directory the caller opened and resolved
    /// safely (a server that walked a user's sandbox without following untrusted links, see
    /// [`crate::fs::beneath`]): nothing is resolved from `root`'s path again, every file goes
    /// below that descriptor, and no symbolic link below it is followed.
    ///
    /// # Errors
    /// If the engine has stopped or the session id is in use.
    pub fn receive_in(
        &self,
        keys: TransferKeys,
        root: crate::fs::beneath::Dir,
        owner: Option<crate::fs::identity::FsIdentity>,
    ) -> Result<Transfer, Error> {
        self.receive_at(keys, root.into(), owner)
    }

    fn receive_at(
        &self,
        keys: TransferKeys,
        root: crate::fs::sink::SinkRoot,
        owner: Option<crate::fs::identity::FsIdentity>,
    ) -> Result<Transfer, Error> {
        let shared = Self::new_shared(Role::Receiver)?;
        shared.status.lock().destination_path = Some(root.path().to_path_buf());
        let (reply, rx) = bounded(1);
        let cmd = ReceiveCommand {
            keys,
            root,
            owner,
            shared: shared.clone(),
            config: self.config.transport.clone(),
            reply,
        };
        self.start(Command::Receive(Box::new(cmd)), &rx, shared)
    }

    /// Facts about the engine (bound address, granted socket buffers, offloads).
    ///
    /// # Errors
    /// If the engine has stopped.
    pub fn info(&self) -> Result<EngineInfo, Error> {
        let (tx, rx) = bounded(1);
        if !self.command(Command::Info(tx)) {
            return Err(Error::EngineStopped);
        }
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| Error::EngineStopped)
    }

    /// Sends one discovery probe carrying `nonce` from the engine's socket to `to`. An engine
    /// listening there records it and answers with an echo carrying the same nonce (at most
    /// 100 echoes per second per engine), which shows up here in [`Self::discoveries`] with
    /// `echo: true`. Discovery creates no session state at either end.
    ///
    /// # Errors
    /// If the engine has stopped, or the socket refused the datagram (e.g. no route to `to`,
    /// or the send buffer is full).
    pub fn send_discovery(&self, to: SocketAddr, nonce: [u8; 16]) -> Result<(), Error> {
        let (tx, rx) = bounded(1);
        if !self.command(Command::Discover(to, nonce, tx)) {
            return Err(Error::EngineStopped);
        }
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| Error::EngineStopped)?
    }

    /// The last 64 discovery datagrams (probes and echoes) this engine received, oldest
    /// first.
    ///
    /// # Errors
    /// If the engine has stopped.
    pub fn discoveries(&self) -> Result<Vec<Discovery>, Error> {
        let (tx, rx) = bounded(1);
        if !self.command(Command::Discoveries(tx)) {
            return Err(Error::EngineStopped);
        }
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| Error::EngineStopped)
    }
}

/// An engine: one UDP socket, one event-loop thread, any number of transfers in both
/// directions. Dropping it stops the thread; running transfers keep their resume state.
#[derive(Debug)]
pub struct Engine {
    handle: EngineHandle,
    thread: Option<JoinHandle<()>>,
    local_addr: SocketAddr,
}

impl Engine {
    /// Binds the socket and starts the event loop.
    ///
    /// # Errors
    /// If the socket cannot be bound (address in use, permission).
    pub fn spawn(config: EngineConfig) -> Result<Self, Error> {
        Self::spawn_with_trigger(config, NoTrigger)
    }

    /// Like [`Self::spawn`], with a [`Trigger`] called (on its own thread) for every event.
    ///
    /// # Errors
    /// If the socket cannot be bound (address in use, permission).
    pub fn spawn_with_trigger(config: EngineConfig, trigger: impl Trigger) -> Result<Self, Error> {
        let config = Arc::new(config);
        let (driver, waker, tx) = driver::Driver::new(config.clone(), Box::new(trigger))?;
        let local_addr = driver.local_addr();
        let thread = std::thread::Builder::new()
            .name("jetstream-engine".into())
            .spawn(move || driver.run())
            .map_err(Error::Io)?;
        Ok(Self {
            handle: EngineHandle { tx, waker, config },
            thread: Some(thread),
            local_addr,
        })
    }

    /// A handle to start and control transfers.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the event loop and waits for it. Running transfers are checkpointed.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.handle.command(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}
