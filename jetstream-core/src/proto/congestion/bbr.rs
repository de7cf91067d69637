//! The BBR(v1)-like controller with a BBRv2-style in-flight bound on heavy, congestive loss.
//!
//! Model: `btl_bw` is a windowed maximum of delivery-rate samples over [`BW_WINDOW_ROUNDS`]
//! round trips; `min_rtt` a windowed minimum over [`MIN_RTT_WINDOW`]. The product is the
//! bandwidth-delay product (BDP). The sender paces at `pacing_gain × btl_bw` and keeps at most
//! `cwnd_gain × BDP` plus the measured ACK aggregation in flight (ACKs are deferred and
//! aggregated by the receiver, so the window must cover the data delivered but not yet
//! acknowledged).
//!
//! States: Startup (pacing gain 2/ln 2, window 2 BDP, until the bandwidth stops growing by 25 %
//! for 3 rounds, or at once when the round's loss looks congestive: see
//! [`Bbr::check_startup_loss`]), Drain (inverse gain until the queue is gone), ProbeBW
//! (gain cycle 1.25, 0.75, 1 × 6, one phase per `min_rtt`), ProbeRTT (half a BDP in flight for
//! 200 ms and one round, when `min_rtt` has not been refreshed for 10 s).
//!
//! Loss does not enter the control law unless one round loses more than [`LOSS_THRESH`] of its
//! bytes *and* the smoothed RTT shows a standing queue: then in-flight is capped at
//! `BETA × max in-flight of that round`, a cap that grows back by 1/16 per clean round.

use std::time::{Duration, Instant};

use super::delivery::{DeliveryRate, RateSample};
use super::{CongestionConfig, PathHint, RateMode, SendSnapshot};
use crate::proto::rtt::RttEstimator;
use crate::types::BitsPerSecond;

/// Startup pacing gain: 2/ln 2, the smallest gain that doubles the delivery rate per round.
const STARTUP_GAIN: f64 = 2.885;
/// Startup (and Drain) window gain, as in BBRv2/v3: the window, not the pacing rate, bounds the
/// overshoot. Once the bandwidth estimate reaches the bottleneck rate, in-flight is at most
/// 2 BDP + the aggregation allowance, so a drop-tail queue of one BDP overflows by only that
/// allowance per round (2.885 overflowed it by ~0.9 BDP per round).
const STARTUP_CWND_GAIN: f64 = 2.0;
/// Drain pacing gain: the inverse of Startup's, to empty the queue Startup built in one round.
const DRAIN_GAIN: f64 = 1.0 / STARTUP_GAIN;
/// Window gain outside Startup and Drain.
const CWND_GAIN: f64 = 2.0;
/// ProbeBW pacing gains, one phase each.
const CYCLE: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// The phase ProbeBW starts at (cruising, so that the queue Drain emptied stays empty).
const CYCLE_START: usize = 2;
/// A ProbeBW phase lasts `max(min_rtt, MIN_PHASE)`: delivery-rate samples span at least one ACK
/// interval, so shorter phases (on sub-millisecond paths) could not be measured.
const MIN_PHASE: Duration = Duration::from_millis(5);
/// Length, in rounds, of the bottleneck-bandwidth max filter.
const BW_WINDOW_ROUNDS: usize = 10;
/// Length of the min-RTT filter.
const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// An RTT sample within min-RTT / this refreshes the min-RTT filter (see
/// [`Bbr::update_min_rtt`]).
const MIN_RTT_TOLERANCE_DIVISOR: u32 = 32;
/// Time spent at the reduced window in ProbeRTT (plus one round).
const PROBE_RTT_TIME: Duration = Duration::from_millis(200);
/// Extra window for data delivered but not yet acknowledged by an aggregating receiver, in
/// Fixed mode (which does not measure it).
const ACK_AGGREGATION: Duration = Duration::from_millis(10);
/// The measured aggregation allowance (see [`AckAggregation`]) is at most this much of the
/// bandwidth...
const AGGREGATION_MAX: Duration = Duration::from_millis(50);
/// ... and at least this much: the receiver acknowledges every 2 ms (or 128 datagrams), so at
/// least that much is always delivered but not yet acknowledged.
const AGGREGATION_MIN: Duration = Duration::from_millis(2);
/// Smallest window outside ProbeRTT: even on a loopback path, a few ms of ACK aggregation must
/// not stall the sender.
const MIN_CWND: u64 = 64 * 1024;
/// Window before the first bandwidth sample, paced over the initial RTT (not sent as a burst).
/// 256 KiB (180 datagrams) saved two Startup rounds against 64 KiB: 0.6 s on a 300 ms path,
/// +3 % utilisation for 256 MiB at 100 Mbit/s. 512 KiB (the first flight, which carries file
/// data with the manifest) saves one more: in `proto::tests::wan_grid_in_simulation` every cell
/// gains, 0.4 to 5.4 points (100 Mbit/s, 300 ms, 5 %: 57.5 -> 62.9 %). The price is a larger
/// overshoot where the first flights land near the BDP: 0.18 BDP of drops once on a 100 Mbit/s,
/// 50 ms path (test (j)). A slower path overflows in the first round at worst, which Startup's
/// loss exit handles.
const INITIAL_CWND: u64 = 512 * 1024;
/// Startup ends when the bandwidth grew less than this factor...
const FULL_BW_GROWTH: f64 = 1.25;
/// ... for this many consecutive rounds.
const FULL_BW_ROUNDS: u32 = 3;
/// Startup's one-flat-round exit under a standing queue applies from this min-RTT up (see
/// [`Bbr::queued_all_round`]).
const QUEUED_ROUND_MIN_RTT: Duration = Duration::from_millis(10);
/// Fraction of a round's bytes lost above which the loss may be congestion.
const LOSS_THRESH: f64 = 0.2;
/// A round needs at least this many datagrams lost before its loss rate is believed.
const LOSS_MIN_DATAGRAMS: u64 = 4;
/// Multiplicative in-flight cut on congestive loss.
const BETA: f64 = 0.7;
/// Startup ends as soon as the current round has lost more than this fraction of its bytes...
const STARTUP_LOSS_THRESH: f64 = 0.02;
/// ... and at least this many datagrams, if the loss looks like congestion (see
/// [`Bbr::check_startup_loss`]).
const STARTUP_LOSS_MIN_DATAGRAMS: u64 = 8;
/// How far above the background loss rate of the earlier Startup rounds, in standard
/// deviations, a round's loss must be to count as congestion without a queue-delay signal.
const STARTUP_LOSS_SIGMAS: f64 = 4.0;
/// ... over a round of at least this many datagrams (random loss on real paths comes in bursts
/// that a smaller sample cannot tell from an overflow).
const STARTUP_LOSS_MIN_SAMPLE: u64 = 100;
/// Background policy: the queue delay (the round's smallest RTT sample above min-RTT) beyond
/// which the flow yields is min-RTT / 4, within these bounds. The lower bound stays above
/// timer and scheduling noise; the upper keeps the delay a background flow tolerates small on
/// long paths (a loss-based competitor fills a one-BDP queue: 100 ms at 100 ms RTT).
const YIELD_TARGET_MIN: Duration = Duration::from_millis(2);
const YIELD_TARGET_MAX: Duration = Duration::from_millis(25);
/// Background policy: per round with a queue, the rate is multiplied by this...
const YIELD_DECREASE: f64 = 0.7;
/// ... and per round without one, by this (from the floor back to the full rate in ~30 rounds).
const YIELD_INCREASE: f64 = 1.15;
/// Background policy: ProbeRTTs in a row (10 s apart) whose fresh minimum shows a standing queue
/// and is set aside before it is believed: 30, five minutes.
const BASE_RTT_PROBES: u32 = 30;
/// Background policy: the smallest fraction of the model rate kept (the flow never stops, so it
/// keeps measuring the queue).
const YIELD_FLOOR: f64 = 1.0 / 64.0;
/// The RTT used for the pacing floor (2 datagrams per RTT) is at least this long, so the floor
/// stays negligible on short paths.
const FLOOR_RTT: Duration = Duration::from_millis(10);

/// Path memory: a remembered rate is believed if the first round of acknowledgements arrives at
/// at least this fraction of it (random loss alone takes off its own few percent)...
const RESUME_VALID: f64 = 0.75;
/// ... and every RTT sample until then lies within [min-RTT / 2, min-RTT × 5/4 + this] of the
/// remembered one (a different path, a queue someone else built, or the queue the remembered
/// rate itself builds on a path that now carries less, fails it; see [`Bbr::check_resume`]).
const RESUME_RTT_SLACK: Duration = Duration::from_millis(2);

/// Path memory ([`PathHint`]): where the check of the remembered rate stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResumePhase {
    /// Sending at the remembered rate, the check not done yet.
    Jumping,
    /// The path delivered the remembered rate: cruising from it.
    Validated,
    /// The path did not: Startup continues from what it did deliver.
    Retreated,
}

#[derive(Clone, Copy, Debug)]
struct Resume {
    /// The remembered rate (bytes/s), at most `sendRateMax`.
    bandwidth: u64,
    min_rtt: Duration,
    phase: ResumePhase,
    /// When the first acknowledgement arrived, and `delivered` and `lost_total` then: the check
    /// measures the acknowledgement rate from there over one remembered min-RTT.
    first_ack: Option<(Instant, u64, u64)>,
    /// After a retreat, `delivered` once everything sent at the remembered rate is accounted
    /// for: until then its losses say nothing about the rate Startup now tries.
    settle_until: u64,
}

/// Controller state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Drain,
    ProbeBw,
    ProbeRtt,
    Startup,
}

/// Windowed max over the last [`BW_WINDOW_ROUNDS`] rounds: one slot per round number modulo the
/// window, each tagged with its round so that stale slots are ignored.
///
/// The window ends at the round of the latest accepted sample, not at the current round: while
/// the sender is application-limited no sample is accepted and the estimate is kept, as Linux's
/// `minmax` filter does.
#[derive(Clone, Debug)]
struct BwFilter {
    slots: [(u64, u64); BW_WINDOW_ROUNDS],
    latest_round: u64,
}

impl BwFilter {
    fn new() -> Self {
        Self {
            slots: [(u64::MAX, 0); BW_WINDOW_ROUNDS],
            latest_round: 0,
        }
    }

    fn update(&mut self, round: u64, bw: u64) {
        self.latest_round = self.latest_round.max(round);
        let slot = &mut self.slots[(round % BW_WINDOW_ROUNDS as u64) as usize];
        if slot.0 == round {
            slot.1 = slot.1.max(bw);
        } else {
            *slot = (round, bw);
        }
    }

    fn max(&self) -> u64 {
        let round = self.latest_round;
        self.slots
            .iter()
            .filter(|(r, _)| *r <= round && round - *r < BW_WINDOW_ROUNDS as u64)
            .map(|&(_, bw)| bw)
            .max()
            .unwrap_or(0)
    }
}

/// The ACK-aggregation estimate: how far ACKs ran ahead of the bandwidth estimate. An epoch
/// starts when the bytes acknowledged since its start fall behind `btl_bw × elapsed`; the excess
/// beyond that line is data the path delivered in a clump (receiver ACK deferral, timer and
/// scheduling noise at either end, the emulator's or a NIC's batching). Its maximum over
/// [`BW_WINDOW_ROUNDS`] rounds is what the window must hold beyond the BDP to keep sending while
/// the ACKs for delivered data are held back. A fixed allowance (10 ms of the bandwidth, before)
/// was 5 BDP on a 2 ms path: a one-BDP queue overflowed and 4 % was sent twice on the emulated
/// 500 Mbit/s, 2 ms link.
#[derive(Clone, Debug)]
struct AckAggregation {
    epoch_start: Option<Instant>,
    epoch_acked: u64,
    max: BwFilter,
}

impl AckAggregation {
    fn new() -> Self {
        Self {
            epoch_start: None,
            epoch_acked: 0,
            max: BwFilter::new(),
        }
    }

    fn update(&mut self, now: Instant, round: u64, acked: u64, btl_bw: u64) {
        let expected = self.epoch_start.map_or(0, |start| {
            (btl_bw as f64 * now.saturating_duration_since(start).as_secs_f64()) as u64
        });
        if self.epoch_start.is_none() || self.epoch_acked <= expected {
            self.epoch_start = Some(now);
            self.epoch_acked = 0;
        }
        let expected = if self.epoch_acked == 0 { 0 } else { expected };
        self.epoch_acked = self.epoch_acked.saturating_add(acked);
        self.max
            .update(round, self.epoch_acked.saturating_sub(expected));
    }

    fn bytes(&self) -> u64 {
        self.max.max()
    }
}

/// Round-trip counting by delivered bytes, plus the per-round loss accounting.
#[derive(Clone, Debug, Default)]
struct Round {
    count: u64,
    /// The round ends when a packet sent after `delivered` reached this value is acknowledged.
    next_delivered: u64,
    /// Whether the ACK being processed started a new round.
    is_start: bool,
    delivered_at_start: u64,
    lost: u64,
    max_inflight: u64,
    /// `max_inflight` of the previous round.
    prev_max_inflight: u64,
}

/// Startup's "has the bandwidth stopped growing" detector.
#[derive(Clone, Debug, Default)]
struct FullBw {
    bw: u64,
    count: u32,
    is_filled: bool,
}

/// ProbeRTT bookkeeping.
#[derive(Clone, Debug, Default)]
struct ProbeRtt {
    done_at: Option<Instant>,
    is_round_done: bool,
    /// Smallest RTT sample seen during the probe; becomes the new `min_rtt` at its end, even if
    /// larger than the old one (the path may have changed).
    min_sample: Option<Duration>,
}

/// A BBR-like rate-based congestion controller. See the [module docs](super).
#[derive(Clone, Debug)]
pub struct Bbr {
    config: CongestionConfig,
    /// `config.max_rate` in bytes/s.
    max_rate: Option<u64>,
    rate: DeliveryRate,
    bw_filter: BwFilter,
    btl_bw: u64,
    /// Windowed minimum and the time it was last refreshed.
    min_rtt: Option<(Duration, Instant)>,
    smoothed_rtt: Duration,
    round: Round,
    state: State,
    pacing_gain: f64,
    cwnd_gain: f64,
    full_bw: FullBw,
    cycle_index: usize,
    cycle_stamp: Option<Instant>,
    probe_rtt: ProbeRtt,
    inflight_hi: Option<u64>,
    /// Bytes lost and sent (lost + delivered) in the completed Startup rounds: the path's
    /// background loss rate, against which Startup's loss exit is judged.
    startup_background: (u64, u64),
    cwnd: u64,
    /// Model pacing rate before the floor and the maximum-rate clamp.
    pacing_rate: u64,
    /// Background policy: the fraction of the model rate sent (1 when not yielding).
    yield_factor: f64,
    /// Smallest RTT sample of the current round (the background policy's queue signal).
    round_min_rtt: Option<Duration>,
    /// ... and of the last completed round (Startup's plateau exit).
    last_round_min_rtt: Option<Duration>,
    /// Background policy: consecutive ProbeRTTs whose minimum was set aside.
    inflated_probes: u32,
    /// Moving average (1/8 per round) of the rounds' loss rates.
    loss_ewma: f64,
    aggregation: AckAggregation,
    resume: Option<Resume>,
    /// Bytes declared lost, in all.
    lost_total: u64,
    /// In ProbeBW while not application-limited: time, bytes acknowledged and bytes lost
    /// (the path estimate's average delivery rate), and the previous ACK's time and loss count.
    cruise: (Duration, u64, u64),
    last_ack: Option<(Instant, u64)>,
}

impl Bbr {
    /// A controller in Startup.
    pub fn new(config: CongestionConfig) -> Self {
        let max_rate = config.max_rate.map(BitsPerSecond::bytes_per_sec);
        let smoothed_rtt = config.initial_rtt;
        let mut bbr = Self {
            config,
            max_rate,
            rate: DeliveryRate::default(),
            bw_filter: BwFilter::new(),
            btl_bw: 0,
            min_rtt: None,
            smoothed_rtt,
            round: Round::default(),
            state: State::Startup,
            pacing_gain: STARTUP_GAIN,
            cwnd_gain: STARTUP_CWND_GAIN,
            full_bw: FullBw::default(),
            cycle_index: CYCLE_START,
            cycle_stamp: None,
            probe_rtt: ProbeRtt::default(),
            inflight_hi: None,
            startup_background: (0, 0),
            cwnd: INITIAL_CWND,
            pacing_rate: 0,
            yield_factor: 1.0,
            round_min_rtt: None,
            last_round_min_rtt: None,
            inflated_probes: 0,
            loss_ewma: 0.0,
            aggregation: AckAggregation::new(),
            resume: None,
            lost_total: 0,
            cruise: (Duration::ZERO, 0, 0),
            last_ack: None,
        };
        if let Some(hint) = bbr
            .config
            .path_hint
            .filter(|_| bbr.config.mode == RateMode::Fair)
        {
            let bandwidth = bbr
                .max_rate
                .map_or(hint.bandwidth, |m| hint.bandwidth.min(m));
            bbr.resume = Some(Resume {
                bandwidth,
                min_rtt: hint.min_rtt,
                phase: ResumePhase::Jumping,
                first_ack: None,
                settle_until: 0,
            });
            bbr.cwnd = bbr.jump_cwnd();
        }
        bbr.update_pacing_rate();
        bbr
    }

    fn is_jumping(&self) -> bool {
        self.resume.is_some_and(|r| r.phase == ResumePhase::Jumping)
    }

    /// Sending at the remembered rate, or just retreated from it with some of that data still
    /// unaccounted for: Startup's loss signals are not about the current rate.
    fn resume_unsettled(&self) -> bool {
        self.resume.is_some_and(|r| {
            r.phase == ResumePhase::Jumping
                || (r.phase == ResumePhase::Retreated && self.rate.delivered() < r.settle_until)
        })
    }

    /// The window while sending at the remembered rate: 5/4 of the remembered BDP, at least
    /// the initial window. Pacing at the remembered rate is what bounds the first round trip;
    /// the extra quarter keeps the sender going when the first acknowledgements come late (the
    /// receiving server opens its files after the manifest arrives). With exactly one BDP (plus
    /// 2 ms) the sender stalled until they came, the acknowledgement rate the check measures
    /// showed the gap, and a right hint was refused on the emulated 500 Mbit/s, 100 ms, 3 %
    /// link. With two, a hint four times too high overfilled the path by 4.8 BDP instead of 3.4.
    fn jump_cwnd(&self) -> u64 {
        let Some(r) = self.resume else {
            return INITIAL_CWND;
        };
        let bdp = r.bandwidth as f64 * r.min_rtt.as_secs_f64();
        ((bdp * 1.25) as u64).max(INITIAL_CWND)
    }

    /// Path memory, on each ACK while sending at the remembered rate: every RTT sample must be
    /// near the remembered min-RTT; one remembered min-RTT after the first acknowledgement, the
    /// rate at which acknowledgements came in (the path's delivery rate for the data sent at the
    /// remembered rate) must be at least [`RESUME_VALID`] of it. Then cruise (ProbeBW) from
    /// there; otherwise retreat to what was measured and let Startup find the rest.
    fn check_resume(&mut self, now: Instant, rtt: &RttEstimator, bytes_in_flight: u64) {
        let Some(mut r) = self.resume.filter(|r| r.phase == ResumePhase::Jumping) else {
            return;
        };
        let delivered = self.rate.delivered();
        // Without the receiver's ACK delay: the first acknowledgements wait for the receiving
        // server to open its files (25 ms seen on the emulated link), which is not the path.
        let sample = rtt.latest_path();
        let (t0, d0, l0) = *r.first_ack.get_or_insert((now, delivered, self.lost_total));
        self.resume = Some(r);
        let elapsed = now.saturating_duration_since(t0);
        // Another path (half or twice the RTT) shows at once; the queue the remembered rate
        // builds on a path that now takes less shows as the RTT rising past 5/4 of it, judged
        // after the first quarter round trip of acknowledgements (which carry the receiver's
        // start-up: 15-25 ms extra seen on the emulated link, beyond its reported ACK delay).
        let far = sample < r.min_rtt / 2 || sample > r.min_rtt * 2 + RESUME_RTT_SLACK;
        let queued = sample > r.min_rtt * 5 / 4 + RESUME_RTT_SLACK && elapsed >= r.min_rtt / 4;
        let off_path = rtt.has_samples() && (far || queued);
        if !off_path && elapsed < r.min_rtt {
            return;
        }
        // The acknowledgement rate since the first acknowledgement. The bottleneck takes what
        // was not lost before it: with a fraction p lost on the way, acknowledgements come at
        // (1 - p) of the rate that fills it, so the estimate is the acknowledgement rate /
        // (1 - p), never above the remembered rate. (Seeding it with the raw rate left a path
        // with 5 % loss cruising 5 % below its capacity until ProbeBW's probes found the rest.)
        let acked = delivered.saturating_sub(d0);
        let rate = acked as f64 / elapsed.as_secs_f64().max(1e-9);
        let lost = self.lost_total.saturating_sub(l0);
        let p = (lost as f64 / (lost + acked).max(1) as f64).min(0.5);
        let estimate = ((rate / (1.0 - p)) as u64).min(r.bandwidth);
        if off_path {
            // A queue grew (or this is another path). If acknowledgements came in long enough
            // to be measured, the link was full and they show its rate: drain the queue and
            // cruise from there. The remembered rate of the emulated 500 Mbit/s, 200 ms link
            // read 15 % high (ACK-compression noise in the estimate kept), and a Startup from
            // scratch after the retreat cost more than the hint had saved.
            let drain = elapsed >= r.min_rtt / 4 && estimate > 0;
            let measured = drain.then_some(estimate);
            self.end_resume(
                now,
                ResumePhase::Retreated,
                measured,
                bytes_in_flight,
                drain,
            );
            return;
        }
        let phase = if rate >= RESUME_VALID * r.bandwidth as f64 {
            ResumePhase::Validated
        } else {
            ResumePhase::Retreated
        };
        self.end_resume(now, phase, Some(estimate), bytes_in_flight, false);
    }

    /// Ends the check of the remembered rate. `Validated`: cruise (ProbeBW) from `measured`;
    /// `Retreated` with `drain`: the link is full at `measured`, drain the queue the remembered
    /// rate built, then cruise; `Retreated` without: Startup from `measured` (or from nothing).
    fn end_resume(
        &mut self,
        now: Instant,
        phase: ResumePhase,
        measured: Option<u64>,
        bytes_in_flight: u64,
        drain: bool,
    ) {
        let delivered = self.rate.delivered();
        let Some(r) = &mut self.resume else { return };
        r.phase = phase;
        r.settle_until = delivered.saturating_add(bytes_in_flight);
        if let Some(rate) = measured {
            self.bw_filter.update(self.round.count, rate);
            self.btl_bw = self.bw_filter.max();
        }
        if phase == ResumePhase::Validated || drain {
            self.full_bw = FullBw {
                bw: self.btl_bw,
                count: 0,
                is_filled: true,
            };
            if drain {
                self.state = State::Drain;
                self.pacing_gain = DRAIN_GAIN;
                self.cwnd_gain = STARTUP_CWND_GAIN;
                self.cwnd = self.target_cwnd();
            } else {
                self.enter_probe_bw(now);
            }
        } else {
            // Startup from what the path delivered: its pacing rate only ever rises, so it
            // starts again from zero, and the window from the measured BDP (or the initial
            // window when nothing was measured).
            self.pacing_rate = 0;
            self.cwnd = self.target_cwnd();
        }
    }

    /// Where the path memory stands: `""` (none given, or not `fair`), `"jumping"` (sending at
    /// the remembered rate, not checked yet), `"validated"` or `"retreated"`.
    pub fn resume_state(&self) -> &'static str {
        match self.resume.map(|r| r.phase) {
            None => "",
            Some(ResumePhase::Jumping) => "jumping",
            Some(ResumePhase::Validated) => "validated",
            Some(ResumePhase::Retreated) => "retreated",
        }
    }

    /// What this transfer measured of the path, for the next one ([`PathHint`]): once Startup
    /// found the pipe full (or a remembered rate was checked), the bandwidth estimate and the
    /// minimum RTT. `None` before that, for a path never filled (an application-limited
    /// transfer says nothing about the path's capacity) and in [`RateMode::Fixed`], which does
    /// not measure. Under `sendRateMax` the estimate is at most that rate: a capped sender
    /// learns only that the path carries the cap (its bursts read higher on short paths).
    pub fn path_estimate(&self) -> Option<PathHint> {
        if self.config.mode == RateMode::Fixed || !self.full_bw.is_filled || self.is_jumping() {
            return None;
        }
        let min_rtt = self.min_rtt()?;
        let mut bw = self.max_rate.map_or(self.btl_bw, |m| self.btl_bw.min(m));
        // The bandwidth estimate is a maximum over delivery-rate samples and reads high after
        // a clump of ACKs (15 % over the link seen on the emulated 500 Mbit/s, 200 ms path):
        // given a few round trips of cruising, what the path really took then (the average
        // acknowledgement rate, corrected for loss as in the check) is kept instead.
        let (time, acked, lost) = self.cruise;
        if time >= min_rtt * 4 && acked > 0 {
            let p = (lost as f64 / (lost + acked) as f64).min(0.5);
            let average = acked as f64 / time.as_secs_f64() / (1.0 - p);
            bw = bw.min(average as u64);
        }
        PathHint::new(bw, min_rtt)
    }

    /// Records a datagram of `bytes` leaving now, with `bytes_in_flight_before` already in
    /// flight. The returned snapshot must be handed back to [`Bbr::on_packet_acked`].
    pub fn on_packet_sent(
        &mut self,
        now: Instant,
        bytes: u64,
        bytes_in_flight_before: u64,
    ) -> SendSnapshot {
        let snapshot = self.rate.on_packet_sent(now, bytes, bytes_in_flight_before);
        self.round.max_inflight = self.round.max_inflight.max(snapshot.tx_in_flight);
        snapshot
    }

    /// Records one newly acknowledged packet of the ACK frame being processed; `sent_time` and
    /// `snapshot` are from its record.
    pub fn on_packet_acked(
        &mut self,
        now: Instant,
        sent_time: Instant,
        snapshot: &SendSnapshot,
        bytes: u64,
    ) {
        self.rate.on_packet_acked(now, sent_time, snapshot, bytes);
    }

    /// Records `lost_bytes` declared lost; `bytes_in_flight` no longer counts them.
    pub fn on_packets_lost(&mut self, now: Instant, lost_bytes: u64, bytes_in_flight: u64) {
        let _ = (now, bytes_in_flight);
        self.round.lost = self.round.lost.saturating_add(lost_bytes);
        self.lost_total = self.lost_total.saturating_add(lost_bytes);
    }

    /// The sender had window and pacing budget but nothing to send: samples taken until the
    /// data now in flight is acknowledged are application-limited.
    pub fn on_app_limited(&mut self, bytes_in_flight: u64) {
        self.rate.on_app_limited(bytes_in_flight);
    }

    /// Ends the processing of one ACK frame: takes the delivery-rate sample and advances the
    /// model and the state machine. `rtt` must already include this ACK's RTT sample, and
    /// `bytes_in_flight` excludes everything acknowledged or declared lost.
    pub fn on_ack_end(&mut self, now: Instant, rtt: &RttEstimator, bytes_in_flight: u64) {
        let Some(sample) = self.rate.take_sample(self.min_rtt.map(|m| m.0)) else {
            return;
        };
        if rtt.has_samples() {
            self.smoothed_rtt = rtt.smoothed();
        }
        self.check_resume(now, rtt, bytes_in_flight);
        if let Some((at, lost)) = self.last_ack {
            if self.state == State::ProbeBw && !sample.is_app_limited {
                self.cruise.0 += now.saturating_duration_since(at);
                self.cruise.1 += sample.newly_acked;
                self.cruise.2 += self.lost_total.saturating_sub(lost);
            }
        }
        self.last_ack = Some((now, self.lost_total));
        self.check_startup_loss();
        self.update_round(&sample, bytes_in_flight);
        if rtt.has_samples() {
            let latest = rtt.latest();
            self.round_min_rtt = Some(self.round_min_rtt.map_or(latest, |m| m.min(latest)));
        }
        if let Some(bw) = sample.delivery_rate {
            // A yielding background flow sends below the model on purpose: like an
            // application-limited one, its lower samples say nothing about the path.
            let limited = sample.is_app_limited || self.yield_factor < 1.0;
            if !limited || bw >= self.btl_bw {
                self.bw_filter.update(self.round.count, bw);
            }
        }
        self.btl_bw = self.bw_filter.max();
        self.aggregation
            .update(now, self.round.count, sample.newly_acked, self.btl_bw);
        let min_rtt_expired = rtt.has_samples() && self.update_min_rtt(now, rtt.latest());
        self.check_full_pipe(&sample);
        self.check_drain(now, bytes_in_flight);
        self.update_cycle_phase(now, bytes_in_flight);
        self.check_probe_rtt(now, bytes_in_flight, min_rtt_expired);
        self.update_pacing_rate();
        self.update_cwnd(sample.newly_acked);
    }

    /// Changes the maximum rate (`sendRateMax`) live; `None` removes the bound.
    pub fn set_max_rate(&mut self, max: Option<BitsPerSecond>) {
        self.config.max_rate = max;
        self.max_rate = max.map(BitsPerSecond::bytes_per_sec);
    }

    /// The rate to pace at, in bytes/s. Never above the maximum rate when one is set; otherwise
    /// at least two datagrams per RTT.
    pub fn pacing_rate(&self) -> u64 {
        if let Some(max) = self.fixed_rate() {
            return max;
        }
        let rtt = self.min_rtt_or_initial().max(FLOOR_RTT);
        let floor = self.mds().saturating_mul(2) as f64 / rtt.as_secs_f64();
        let rate = ((self.pacing_rate as f64 * self.yield_factor) as u64).max(floor as u64);
        match self.max_rate {
            // The cap, not the path, is the bottleneck (the path delivered at least 90% of
            // it): pace at the cap itself. Gain cycling below it would only waste the rate
            // the user asked for (a shared server-wide limit would then be undershot), and
            // a path that cannot take the full cap still bounds us through loss.
            Some(max)
                if self.yield_factor >= 1.0
                    && self.btl_bw.saturating_mul(10) >= max.saturating_mul(9) =>
            {
                max
            }
            Some(max) => rate.min(max),
            None => rate,
        }
    }

    /// Bytes allowed in flight.
    pub fn congestion_window(&self) -> u64 {
        if let Some(rate) = self.fixed_rate() {
            // Fixed mode: enough window never to limit the configured rate, bounded so that a
            // dead path cannot absorb unbounded data.
            let rtt = self.min_rtt_or_initial().max(self.smoothed_rtt);
            let w = rate as f64 * (CWND_GAIN * rtt.as_secs_f64() + ACK_AGGREGATION.as_secs_f64());
            return (w as u64).max(MIN_CWND);
        }
        let mut w = self.cwnd;
        if let Some(hi) = self.inflight_hi {
            w = w.min(hi);
        }
        if self.state == State::ProbeRtt {
            w = w.min(self.probe_rtt_cwnd());
        }
        if self.state == State::ProbeBw && self.pacing_gain == 1.0 {
            w = w.min(self.cruise_cwnd());
        }
        w
    }

    /// In-flight bound while cruising (ProbeBW at gain 1): one BDP, plus what the recent loss
    /// rate keeps in flight undetected, plus the aggregation allowance. Pacing alone would keep
    /// whatever queue an estimate a few percent high builds between probes (measured: +30 ms
    /// at 100 ms RTT on the emulated link); the bound keeps it under the allowance.
    fn cruise_cwnd(&self) -> u64 {
        let loss = self.loss_ewma.min(0.5);
        let w = self.bdp() as f64 / (1.0 - loss) + self.aggregation_allowance() as f64;
        (w as u64).max(MIN_CWND)
    }

    /// The bottleneck-bandwidth estimate, in bytes/s (0 before the first sample).
    pub fn bottleneck_bandwidth(&self) -> u64 {
        self.btl_bw
    }

    /// The windowed minimum RTT, once measured.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt.map(|m| m.0)
    }

    /// The state, for status and logs: `Startup`, `Drain`, `ProbeBW` or `ProbeRTT`.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Drain => "Drain",
            State::ProbeBw => "ProbeBW",
            State::ProbeRtt => "ProbeRTT",
            State::Startup => "Startup",
        }
    }

    /// The in-flight cap set by congestive loss, if any (for status and tests).
    pub fn inflight_cap(&self) -> Option<u64> {
        self.inflight_hi
    }

    fn mds(&self) -> u64 {
        self.config.max_datagram_size.max(1)
    }

    fn fixed_rate(&self) -> Option<u64> {
        match self.config.mode {
            RateMode::Fixed => self.max_rate,
            RateMode::Fair | RateMode::Background => None,
        }
    }

    /// Background policy: whether ProbeRTT's `fresh` minimum, above the `kept` one by more
    /// than the yield target, is another flow's standing queue rather than a longer path. Up to
    /// [`BASE_RTT_PROBES`] probes in a row the old minimum is kept (LEDBAT keeps its base delay
    /// for minutes for the same reason): adopting the queue as the base would end the yielding
    /// while the competitor is still there. Later, the path is taken to have changed.
    fn keeps_base_rtt(&mut self, fresh: Duration, kept: Duration) -> bool {
        if self.config.mode != RateMode::Background || fresh <= kept + self.yield_target(kept) {
            self.inflated_probes = 0;
            return false;
        }
        self.inflated_probes += 1;
        if self.inflated_probes > BASE_RTT_PROBES {
            self.inflated_probes = 0;
            return false;
        }
        true
    }

    fn yield_target(&self, min_rtt: Duration) -> Duration {
        (min_rtt / 4).clamp(YIELD_TARGET_MIN, YIELD_TARGET_MAX)
    }

    /// The fraction of the model rate a background flow currently sends (1: not yielding).
    pub fn yield_factor(&self) -> f64 {
        self.yield_factor
    }

    /// Background policy, once per round: yield while the round's smallest RTT sample shows a
    /// queue beyond the target, grow back while it does not. A queue in Startup also ends
    /// Startup (whoever built it, doubling further is wrong).
    fn update_yield(&mut self, round_min: Option<Duration>) {
        let Some(round_min) = round_min else {
            return;
        };
        if self.config.mode != RateMode::Background {
            return;
        }
        let min_rtt = self.min_rtt_or_initial();
        if round_min > min_rtt + self.yield_target(min_rtt) {
            self.yield_factor = (self.yield_factor * YIELD_DECREASE).max(YIELD_FLOOR);
            self.full_bw.is_filled = true;
            // Yielding is the response to the queue: the loss cap would only stay behind and
            // slow the return once the other traffic is gone (it regrows by 1/16 per round).
            self.inflight_hi = None;
        } else {
            self.yield_factor = (self.yield_factor * YIELD_INCREASE).min(1.0);
        }
    }

    fn min_rtt_or_initial(&self) -> Duration {
        self.min_rtt.map_or(self.config.initial_rtt, |m| m.0)
    }

    fn bdp(&self) -> u64 {
        (self.btl_bw as f64 * self.min_rtt_or_initial().as_secs_f64()) as u64
    }

    /// Bytes in flight that keep the pipe full at `gain` with an empty queue.
    fn inflight(&self, gain: f64) -> u64 {
        (gain * self.bdp() as f64) as u64 + self.aggregation_allowance()
    }

    /// The window beyond `gain × BDP` for data delivered but not yet acknowledged: the measured
    /// ACK aggregation, between [`AGGREGATION_MIN`] and [`AGGREGATION_MAX`] of the bandwidth.
    fn aggregation_allowance(&self) -> u64 {
        let of_bw = |d: Duration| (self.btl_bw as f64 * d.as_secs_f64()) as u64;
        self.aggregation
            .bytes()
            .clamp(of_bw(AGGREGATION_MIN), of_bw(AGGREGATION_MAX))
    }

    fn probe_rtt_cwnd(&self) -> u64 {
        (self.bdp() / 2).max(self.mds().saturating_mul(4))
    }

    fn target_cwnd(&self) -> u64 {
        if self.btl_bw == 0 {
            return INITIAL_CWND;
        }
        let w = if self.full_bw.is_filled {
            self.inflight(self.cwnd_gain)
        } else {
            // Startup's gain already leaves a BDP of room for aggregated ACKs (Linux BBR adds
            // its aggregation allowance only once the pipe is full, too): adding the allowance on
            // top would overflow a one-BDP queue by that much every round. With a background
            // loss rate p, a fraction p of the window is data lost before the bottleneck (it
            // occupies neither pipe nor queue until declared lost), so the gain is raised to
            // 2 / (1 - p), at most Startup's pacing gain: the ramp keeps doubling per round.
            let gain = (self.cwnd_gain / (1.0 - self.startup_loss_rate())).min(STARTUP_GAIN);
            ((gain * self.bdp() as f64) as u64).max(self.inflight(1.0))
        };
        w.max(MIN_CWND)
    }

    fn update_round(&mut self, sample: &RateSample, bytes_in_flight: u64) {
        self.round.is_start = false;
        if sample.prior_delivered < self.round.next_delivered {
            return;
        }
        self.on_round_end();
        let round_min = self.round_min_rtt.take();
        if round_min.is_some() {
            self.last_round_min_rtt = round_min;
        }
        self.update_yield(round_min);
        let delivered = self.rate.delivered();
        self.round.next_delivered = delivered;
        self.round.count += 1;
        self.round.is_start = true;
        self.round.delivered_at_start = delivered;
        self.round.lost = 0;
        self.round.prev_max_inflight = self.round.max_inflight;
        self.round.max_inflight = bytes_in_flight;
    }

    /// Loss rate of the completed Startup rounds (0 before the first).
    fn startup_loss_rate(&self) -> f64 {
        let (lost, sent) = self.startup_background;
        if sent == 0 {
            0.0
        } else {
            lost as f64 / sent as f64
        }
    }

    /// Whether the smoothed RTT shows a standing queue: above min-RTT by a quarter of it (at
    /// least 1 ms).
    fn is_queueing(&self) -> bool {
        let min_rtt = self.min_rtt_or_initial();
        let threshold = (min_rtt / 4).max(Duration::from_millis(1));
        self.smoothed_rtt > min_rtt + threshold
    }

    /// Startup's loss exit, checked on every ACK (not at the end of the round: another round at
    /// Startup's rate would overflow the queue again). The round so far must have lost at least
    /// [`STARTUP_LOSS_MIN_DATAGRAMS`] datagrams and more than [`STARTUP_LOSS_THRESH`] of its
    /// bytes (BBRv2/v3's rule), and the loss must look like congestion rather than a lossy path:
    ///
    /// * either the RTT shows a standing queue (a queue in Startup means the sending rate already
    ///   exceeds the bottleneck, so leaving is right whatever the cause of the loss), or
    /// * the round's loss exceeds what the loss rate of the earlier Startup rounds predicts by
    ///   [`STARTUP_LOSS_THRESH`] of the round plus [`STARTUP_LOSS_SIGMAS`] standard deviations
    ///   (binomial, counting the uncertainty of the background rate). This catches a shallow
    ///   queue or a policer, where no queue delay builds, while a stationary random loss, even
    ///   20 %, stays within its own noise.
    ///
    /// Sets the in-flight cap to [`BETA`] × the largest in-flight of this or the previous round
    /// (the flight that overflowed).
    fn check_startup_loss(&mut self) {
        // While the remembered rate is being checked, its own check decides (within a round).
        if self.state != State::Startup || self.full_bw.is_filled || self.resume_unsettled() {
            return;
        }
        let mds = self.mds() as f64;
        let lost = self.round.lost as f64 / mds;
        let delivered = self
            .rate
            .delivered()
            .saturating_sub(self.round.delivered_at_start);
        let sent = lost + delivered as f64 / mds;
        if lost < STARTUP_LOSS_MIN_DATAGRAMS as f64 || lost <= STARTUP_LOSS_THRESH * sent {
            return;
        }
        let (bg_lost, bg_sent) = self.startup_background;
        let p = self.startup_loss_rate();
        // Variance of `lost - p × sent`: the round's own binomial noise, plus that of `p`
        // (measured over `bg_datagrams`) scaled to the round. The variance uses Laplace's
        // estimate of the rate, so that a background of a few datagrams without loss (or none
        // at all, in the first round) is not taken as proof of a loss-free path.
        let bg_datagrams = bg_sent as f64 / mds;
        let q = (bg_lost as f64 / mds + 1.0) / (bg_datagrams + 2.0);
        let variance = sent * q * (1.0 - q) * (1.0 + sent / bg_datagrams.max(1.0));
        let excess = lost - p * sent;
        let significant = sent >= STARTUP_LOSS_MIN_SAMPLE as f64
            && excess >= STARTUP_LOSS_MIN_DATAGRAMS as f64
            && excess > STARTUP_LOSS_THRESH * sent + STARTUP_LOSS_SIGMAS * variance.sqrt();
        if !significant && !self.is_queueing() {
            return;
        }
        let flight = self.round.max_inflight.max(self.round.prev_max_inflight);
        self.inflight_hi = Some(((flight as f64 * BETA) as u64).max(MIN_CWND));
        self.full_bw.is_filled = true;
    }

    /// Loss response, once per round: cap in-flight only on heavy loss with a standing queue.
    fn on_round_end(&mut self) {
        let lost = self.round.lost;
        let delivered = self
            .rate
            .delivered()
            .saturating_sub(self.round.delivered_at_start);
        if self.state == State::Startup && !self.resume_unsettled() {
            let (bg_lost, bg_sent) = self.startup_background;
            self.startup_background = (
                bg_lost.saturating_add(lost),
                bg_sent.saturating_add(lost).saturating_add(delivered),
            );
        }
        let sent = lost.saturating_add(delivered);
        if sent > 0 {
            let rate = lost as f64 / sent as f64;
            self.loss_ewma += (rate - self.loss_ewma) / 8.0;
        }
        let heavy = lost >= self.mds().saturating_mul(LOSS_MIN_DATAGRAMS)
            && lost as f64 > LOSS_THRESH * lost.saturating_add(delivered) as f64
            && !self.resume_unsettled();
        let yielding = self.yield_factor < 1.0;
        if heavy && self.is_queueing() && !yielding {
            let base = self
                .inflight_hi
                .unwrap_or(u64::MAX)
                .min(self.round.max_inflight);
            self.inflight_hi = Some(((base as f64 * BETA) as u64).max(MIN_CWND));
            if self.state == State::Startup {
                self.full_bw.is_filled = true;
            }
        } else if let Some(hi) = self.inflight_hi {
            let grown = hi.saturating_add((hi / 16).max(self.mds()));
            self.inflight_hi = if grown >= self.target_cwnd().saturating_mul(2) {
                None
            } else {
                Some(grown)
            };
        }
    }

    /// Updates the windowed min RTT; returns whether the window has expired (time for
    /// ProbeRTT). An expired value is kept until ProbeRTT measures a fresh one: replacing it with
    /// the current sample, which includes whatever queue exists, would inflate the BDP and let the
    /// probe itself keep that queue.
    fn update_min_rtt(&mut self, now: Instant, sample: Duration) -> bool {
        if self.state == State::ProbeRtt {
            let m = self.probe_rtt.min_sample.map_or(sample, |m| m.min(sample));
            self.probe_rtt.min_sample = Some(m);
        }
        match self.min_rtt {
            None => {
                self.min_rtt = Some((sample, now));
                false
            }
            Some((min, stamp)) => {
                if sample <= min {
                    self.min_rtt = Some((sample, now));
                    return false;
                }
                // A sample within 1/32 of the minimum shows the queue empty: the minimum is
                // still right, and ProbeRTT (half the window for 200 ms and a round, ~1 % of
                // the throughput on a 300 ms path) would only re-measure it. A path whose RTT
                // grew, or a standing queue, gives no such sample, and ProbeRTT follows.
                if sample <= min + min / MIN_RTT_TOLERANCE_DIVISOR {
                    self.min_rtt = Some((min, now));
                    return false;
                }
                now.saturating_duration_since(stamp) > MIN_RTT_WINDOW
            }
        }
    }

    fn check_full_pipe(&mut self, sample: &RateSample) {
        if self.full_bw.is_filled
            || !self.round.is_start
            || sample.is_app_limited
            || self.is_jumping()
        {
            return;
        }
        if self.btl_bw as f64 >= self.full_bw.bw as f64 * FULL_BW_GROWTH {
            self.full_bw.bw = self.btl_bw;
            self.full_bw.count = 0;
            return;
        }
        self.full_bw.count += 1;
        if self.full_bw.count >= FULL_BW_ROUNDS || self.queued_all_round() {
            self.full_bw.is_filled = true;
        }
    }

    /// Whether even the smallest RTT sample of the last round was above min-RTT by the queue
    /// target (min-RTT / 4, 2 to 25 ms): a queue stood through the whole round. Startup then
    /// needs one round without 25 % growth to end, not [`FULL_BW_ROUNDS`]: the delivery rate
    /// cannot grow past a saturated bottleneck, and each further round at Startup's gain only
    /// adds queue (at 500 Mbit/s and 200 ms, the two extra rounds at a doubled RTT kept a
    /// full one-BDP queue for 0.8 s).
    ///
    /// Only on paths of [`QUEUED_ROUND_MIN_RTT`] or more: on a short path a round lasts about a
    /// millisecond, and one late wake-up of a busy receiver delays every ACK of it, which would
    /// read as a standing queue.
    fn queued_all_round(&self) -> bool {
        let min_rtt = self.min_rtt_or_initial();
        min_rtt >= QUEUED_ROUND_MIN_RTT
            && self
                .last_round_min_rtt
                .is_some_and(|m| m > min_rtt + self.yield_target(min_rtt))
    }

    fn check_drain(&mut self, now: Instant, bytes_in_flight: u64) {
        if self.state == State::Startup && self.full_bw.is_filled {
            self.state = State::Drain;
            self.pacing_gain = DRAIN_GAIN;
            self.cwnd_gain = STARTUP_CWND_GAIN;
        }
        if self.state == State::Drain && bytes_in_flight <= self.inflight(1.0) {
            self.enter_probe_bw(now);
        }
    }

    fn enter_probe_bw(&mut self, now: Instant) {
        self.state = State::ProbeBw;
        self.cwnd_gain = CWND_GAIN;
        self.cycle_index = CYCLE_START;
        self.cycle_stamp = Some(now);
        self.pacing_gain = CYCLE[self.cycle_index];
    }

    fn update_cycle_phase(&mut self, now: Instant, bytes_in_flight: u64) {
        if self.state != State::ProbeBw {
            return;
        }
        let phase = self.min_rtt_or_initial().max(MIN_PHASE);
        let elapsed = self
            .cycle_stamp
            .is_none_or(|s| now.saturating_duration_since(s) > phase);
        let next = if self.pacing_gain < 1.0 {
            // Leave the drain phase early once the queue is gone.
            // Drained to one BDP (not the BDP plus the aggregation allowance, which left ~10 ms
            // of standing queue after every probe).
            elapsed || bytes_in_flight <= self.bdp()
        } else {
            elapsed
        };
        if next {
            self.cycle_index = (self.cycle_index + 1) % CYCLE.len();
            self.cycle_stamp = Some(now);
            self.pacing_gain = CYCLE[self.cycle_index];
        }
    }

    fn check_probe_rtt(&mut self, now: Instant, bytes_in_flight: u64, min_rtt_expired: bool) {
        if self.state != State::ProbeRtt && min_rtt_expired {
            self.state = State::ProbeRtt;
            self.pacing_gain = 1.0;
            self.probe_rtt = ProbeRtt::default();
        }
        if self.state != State::ProbeRtt {
            return;
        }
        match self.probe_rtt.done_at {
            None => {
                if bytes_in_flight <= self.probe_rtt_cwnd() {
                    self.probe_rtt.done_at = Some(now + PROBE_RTT_TIME);
                    self.probe_rtt.is_round_done = false;
                    // The probe lasts at least one full round from here.
                    self.round.next_delivered = self.rate.delivered();
                }
            }
            Some(done_at) => {
                if self.round.is_start {
                    self.probe_rtt.is_round_done = true;
                }
                if self.probe_rtt.is_round_done && now >= done_at {
                    let fresh = self.probe_rtt.min_sample;
                    let kept = self.min_rtt.map(|m| m.0);
                    let min = match (fresh, kept) {
                        (Some(f), Some(k)) if self.keeps_base_rtt(f, k) => k,
                        (Some(f), _) => f,
                        (None, k) => k.unwrap_or(self.config.initial_rtt),
                    };
                    self.min_rtt = Some((min, now));
                    if self.full_bw.is_filled {
                        self.enter_probe_bw(now);
                    } else {
                        self.state = State::Startup;
                        self.pacing_gain = STARTUP_GAIN;
                        self.cwnd_gain = STARTUP_CWND_GAIN;
                    }
                }
            }
        }
    }

    fn update_pacing_rate(&mut self) {
        if let Some(r) = self.resume.filter(|r| r.phase == ResumePhase::Jumping) {
            self.pacing_rate = r.bandwidth;
            return;
        }
        let bw = if self.btl_bw > 0 {
            self.btl_bw as f64
        } else {
            INITIAL_CWND as f64 / self.config.initial_rtt.as_secs_f64()
        };
        let rate = (self.pacing_gain * bw) as u64;
        // In Startup the rate only goes up: a low early sample must not slow the ramp.
        if self.full_bw.is_filled || rate > self.pacing_rate {
            self.pacing_rate = rate;
        }
    }

    fn update_cwnd(&mut self, acked: u64) {
        if self.is_jumping() {
            self.cwnd = self.jump_cwnd();
            return;
        }
        let target = self.target_cwnd();
        if self.full_bw.is_filled {
            self.cwnd = self.cwnd.saturating_add(acked).min(target);
        } else if self.cwnd < target || self.rate.delivered() < INITIAL_CWND {
            self.cwnd = self.cwnd.saturating_add(acked);
        }
        self.cwnd = self.cwnd.max(MIN_CWND);
    }
}
