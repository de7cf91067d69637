//! Engine and transport settings. Defaults are tuned for long fat links (up to ~1 Gbit/s at
//! 300 ms) on ordinary servers, and work unchanged on loopback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::fs::reader::ReaderConfig;
use crate::fs::sink::SinkConfig;
use crate::io::socket::SocketConfig;
pub use crate::proto::TransportConfig;

/// Settings of one engine (one UDP socket, many transfers).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub(crate) bind: SocketAddr,
    pub(crate) socket: SocketConfig,
    pub(crate) transport: TransportConfig,
    pub(crate) sink: SinkConfig,
    pub(crate) reader: ReaderConfig,
    pub(crate) status_interval: Duration,
    pub(crate) trigger_queue: usize,
    pub(crate) trace_file: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 8886)),
            socket: SocketConfig::default(),
            transport: TransportConfig::default(),
            sink: SinkConfig::default(),
            reader: ReaderConfig::default(),
            status_interval: Duration::from_millis(100),
            trigger_queue: 4096,
            trace_file: None,
        }
    }
}

impl EngineConfig {
    /// The UDP address to bind (default `0.0.0.0:8886`, the server's data port).
    pub fn bind(&mut self, addr: SocketAddr) -> &mut Self {
        self.bind = addr;
        self
    }
    /// Socket options (buffer sizes, GSO/GRO).
    pub fn socket(&mut self, c: SocketConfig) -> &mut Self {
        self.socket = c;
        self
    }
    /// Default transport settings for transfers started on this engine.
    pub fn transport(&mut self, c: TransportConfig) -> &mut Self {
        self.transport = c;
        self
    }
    /// Mutable access to the transport settings.
    pub fn transport_mut(&mut self) -> &mut TransportConfig {
        &mut self.transport
    }
    /// How received files are written (workers, fsync, checkpoints).
    pub fn sink(&mut self, c: SinkConfig) -> &mut Self {
        self.sink = c;
        self
    }
    /// How sent files are read.
    pub fn reader(&mut self, c: ReaderConfig) -> &mut Self {
        self.reader = c;
        self
    }
    /// How many trigger events may wait for a slow [`Trigger`](crate::Trigger) (default
    /// 4096). Beyond that the engine drops events rather than stall every transfer, and tells
    /// the trigger how many with [`TriggerEvent::EventsLost`](crate::TriggerEvent::EventsLost)
    /// (see [`trigger`](crate::trigger#delivery)).
    pub fn trigger_queue(&mut self, events: usize) -> &mut Self {
        self.trigger_queue = events.max(1);
        self
    }
    /// Appends a rate-control trace to this file: one JSON line per sending transfer per
    /// status interval (see docs/congestion.md). Off by default (and with an empty path). The file is opened when the
    /// engine starts; [`Engine::spawn`](crate::Engine::spawn) fails if it cannot be. (The
    /// binaries set it from `JETSTREAM_TRACE`; the library reads no environment variable.)
    pub fn trace_file(&mut self, path: Option<PathBuf>) -> &mut Self {
        self.trace_file = path.filter(|p| !p.as_os_str().is_empty());
        self
    }
}
