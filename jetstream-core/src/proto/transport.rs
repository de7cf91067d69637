//! [`TransportConfig`]: the per-transfer protocol settings. Here, in `proto`, because the
//! sessions read them; re-exported as `jetstream_core::config::TransportConfig`.

use std::time::Duration;

use crate::proto::congestion::RateMode;
use crate::types::BitsPerSecond;

/// Per-transfer protocol settings.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    pub(crate) max_rate: Option<BitsPerSecond>,
    pub(crate) rate_mode: RateMode,
    pub(crate) initial_rtt: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) keep_alive: Duration,
    pub(crate) max_ack_delay: Duration,
    pub(crate) ack_every: u32,
    pub(crate) recv_window: u64,
    pub(crate) max_datagram_size: usize,
    pub(crate) packet_threshold: u64,
    pub(crate) max_manifest_len: u64,
    /// Set per transfer from [`Destination::path_hint`](crate::Destination::path_hint).
    pub(crate) path_hint: Option<crate::proto::congestion::PathHint>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            max_rate: None,
            rate_mode: RateMode::Fair,
            initial_rtt: Duration::from_millis(100),
            idle_timeout: Duration::from_secs(90),
            keep_alive: Duration::from_secs(1),
            max_ack_delay: Duration::from_millis(1),
            ack_every: 128,
            recv_window: 64 << 20,
            max_datagram_size: crate::proto::packet::MAX_DATAGRAM_LEN,
            packet_threshold: 32,
            max_manifest_len: 256 << 20,
            path_hint: None,
        }
    }
}

impl TransportConfig {
    /// Upper bound on the sending rate (`sendRateMax`). `None`: as fast as the path allows.
    pub fn max_rate(&mut self, rate: Option<BitsPerSecond>) -> &mut Self {
        self.max_rate = rate;
        self
    }
    /// The rate policy: fair (default, BBR-like), fixed or background.
    pub fn rate_mode(&mut self, mode: RateMode) -> &mut Self {
        self.rate_mode = mode;
        self
    }
    /// RTT assumed before the first measurement.
    pub fn initial_rtt(&mut self, rtt: Duration) -> &mut Self {
        self.initial_rtt = rtt;
        self
    }
    /// A session with no authenticated datagram for this long fails with `TimedOut`.
    pub fn idle_timeout(&mut self, t: Duration) -> &mut Self {
        self.idle_timeout = t;
        self
    }
    /// How often an otherwise silent sender says it is alive.
    pub fn keep_alive(&mut self, t: Duration) -> &mut Self {
        self.keep_alive = t;
        self
    }
    /// Receiver: longest time a received packet waits for its acknowledgement.
    pub fn max_ack_delay(&mut self, t: Duration) -> &mut Self {
        self.max_ack_delay = t;
        self
    }
    /// Receiver: acknowledge at least every this many packets.
    pub fn ack_every(&mut self, packets: u32) -> &mut Self {
        self.ack_every = packets.max(1);
        self
    }
    /// Receiver: how far beyond its first missing byte the sender may send file data. Bounds
    /// receiver memory (reassembly buffers) and sender memory (unacknowledged data).
    pub fn recv_window(&mut self, bytes: u64) -> &mut Self {
        self.recv_window = bytes.max(1 << 20);
        self
    }
    /// Largest UDP payload sent (1472 fits a 1500-byte IPv4 MTU).
    pub fn max_datagram_size(&mut self, bytes: usize) -> &mut Self {
        self.max_datagram_size = bytes.clamp(512, crate::proto::packet::MAX_DATAGRAM_LEN);
        self
    }
    /// Largest manifest a receiver accepts.
    pub fn max_manifest_len(&mut self, bytes: u64) -> &mut Self {
        self.max_manifest_len = bytes;
        self
    }
}
