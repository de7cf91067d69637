//! Congestion control: a BBR-like, rate-based controller.
//!
//! JetStream exists because TCP collapses on long, lossy paths: a loss-based window halves on
//! every random drop. This controller instead paces at the *measured* bottleneck bandwidth and
//! keeps a window of about two bandwidth-delay products, so random loss carries no signal in the
//! control law (it only shaves the lost bytes off the delivery rate). The design note is
//! `docs/congestion.md`.
//!
//! Driving contract (sans-IO; every input carries `now`):
//! 1. before sending a datagram, check `bytes_in_flight + size <= congestion_window()` and the
//!    [`Pacer`](crate::proto::pacing::Pacer) budget at [`Bbr::pacing_rate`];
//! 2. on sending it, call [`Bbr::on_packet_sent`] and store the returned [`SendSnapshot`] with the
//!    packet's send time in the per-packet record;
//! 3. for one ACK frame: [`Bbr::on_packet_acked`] for each newly acknowledged packet, then
//!    [`Bbr::on_packets_lost`] if loss detection declared packets lost, then
//!    [`Bbr::on_ack_end`] once (after updating the [`RttEstimator`](crate::proto::rtt::RttEstimator));
//! 4. when the sender had window and pacing budget but no data, call [`Bbr::on_app_limited`].

use std::time::{Duration, Instant};

use crate::types::BitsPerSecond;

mod bbr;
mod delivery;
#[cfg(test)]
mod tests;

pub use bbr::Bbr;

/// How the sending rate is chosen: the rate policy (`ratePolicy` of a destination, `jscp
/// --policy`). `sendRateMax` bounds every policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateMode {
    /// `fair`, the default. Model-based (BBR-like): pace at the measured bottleneck bandwidth,
    /// ignoring random loss, and share a congested bottleneck with other flows (including TCP)
    /// instead of starving them.
    #[default]
    Fair,
    /// `fixed`: always pace at `sendRateMax`, whatever the path does (for dedicated or
    /// provisioned links). Without a maximum rate this behaves like [`RateMode::Fair`].
    Fixed,
    /// `background`: as [`RateMode::Fair`] on an idle path, but yields to other traffic: once
    /// the queue it sees at the bottleneck grows past a small target (a delay signal, as in
    /// LEDBAT), it divides its rate until the queue is gone, and only grows back while it stays
    /// gone.
    Background,
}

impl RateMode {
    /// The policy's name in the API and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fair => "fair",
            Self::Fixed => "fixed",
            Self::Background => "background",
        }
    }
}

impl std::str::FromStr for RateMode {
    type Err = UnknownRateMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fair" => Ok(Self::Fair),
            "fixed" => Ok(Self::Fixed),
            "background" => Ok(Self::Background),
            _ => Err(UnknownRateMode),
        }
    }
}

/// A rate policy name that is not `fair`, `fixed` or `background`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownRateMode;

impl std::fmt::Display for UnknownRateMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unknown rate policy (expected fair, fixed or background)")
    }
}

impl std::error::Error for UnknownRateMode {}

/// What an earlier transfer measured of a path: its bottleneck bandwidth and minimum RTT (path
/// memory, after the IETF's "careful resume" of congestion-control state).
///
/// Given one, a `fair` sender starts at that rate instead of ramping up from a 512 KiB window
/// (which costs about four round trips of the link's capacity: at 500 Mbit/s and 200 ms, 0.75 s),
/// and checks the path at once: if the first RTT sample is far from the remembered one, or the
/// first round of acknowledgements arrives at less than 3/4 of the remembered rate, it retreats
/// to the rate the path really delivered and continues as a fresh start would. See
/// `docs/congestion.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathHint {
    /// Bottleneck bandwidth, bytes/s of UDP payload.
    pub bandwidth: u64,
    /// Minimum round-trip time.
    pub min_rtt: Duration,
}

impl PathHint {
    /// A hint, or `None` unless both figures are positive.
    pub fn new(bandwidth: u64, min_rtt: Duration) -> Option<Self> {
        (bandwidth > 0 && !min_rtt.is_zero()).then_some(Self { bandwidth, min_rtt })
    }
}

/// Settings of the congestion controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CongestionConfig {
    pub(crate) max_rate: Option<BitsPerSecond>,
    pub(crate) mode: RateMode,
    pub(crate) initial_rtt: Duration,
    pub(crate) max_datagram_size: u64,
    pub(crate) path_hint: Option<PathHint>,
}

impl Default for CongestionConfig {
    fn default() -> Self {
        Self {
            max_rate: None,
            mode: RateMode::Fair,
            initial_rtt: Duration::from_millis(100),
            max_datagram_size: 1200,
            path_hint: None,
        }
    }
}

impl CongestionConfig {
    /// Upper bound of the sending rate (`sendRateMax`); `None` for no bound. Default `None`.
    pub fn max_rate(mut self, max_rate: Option<BitsPerSecond>) -> Self {
        self.max_rate = max_rate;
        self
    }

    /// Rate mode. Default [`RateMode::Fair`].
    pub fn mode(mut self, mode: RateMode) -> Self {
        self.mode = mode;
        self
    }

    /// RTT assumed before the first sample. Default 100 ms. Zero is raised to 1 µs.
    pub fn initial_rtt(mut self, initial_rtt: Duration) -> Self {
        self.initial_rtt = initial_rtt.max(Duration::from_micros(1));
        self
    }

    /// What an earlier transfer measured of this path ([`PathHint`]); used by
    /// [`RateMode::Fair`] only. Default `None`.
    pub fn path_hint(mut self, hint: Option<PathHint>) -> Self {
        self.path_hint = hint;
        self
    }

    /// Largest datagram the sender emits, in bytes. Default 1200. Zero is raised to 1.
    pub fn max_datagram_size(mut self, max_datagram_size: u64) -> Self {
        self.max_datagram_size = max_datagram_size.max(1);
        self
    }
}

/// Delivery-rate state captured when a packet is sent (draft-cheng-iccrg-delivery-rate-estimation).
/// The session stores it in the packet's record and hands it back on ACK.
#[derive(Clone, Copy, Debug)]
pub struct SendSnapshot {
    /// Bytes delivered (acknowledged) when the packet was sent.
    delivered: u64,
    /// When `delivered` was last updated.
    delivered_time: Instant,
    /// Send time of the first packet of the current flight.
    first_sent_time: Instant,
    /// Whether the sender was application-limited.
    is_app_limited: bool,
    /// Bytes in flight just after sending this packet.
    tx_in_flight: u64,
}

impl SendSnapshot {
    /// Bytes in flight just after this packet was sent (for diagnostics).
    pub fn tx_in_flight(&self) -> u64 {
        self.tx_in_flight
    }
}
