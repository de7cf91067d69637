//! The link model, sans-IO: packets and time in, delivery times and drops out.
//!
//! One [`Pipe`] per direction. A packet offered at `now` is first subjected to random loss
//! (seeded Bernoulli), then to the bottleneck: a drop-tail queue of `queue_bytes` in front of a
//! serialiser at `rate` bit/s. A packet that fits leaves the serialiser at `busy_until`, travels
//! `delay ± jitter` and is delivered. Delivery order is FIFO unless `reorder` is set (then jitter
//! may reorder packets, as netem's does). Time is nanoseconds since the emulator started.

use std::collections::VecDeque;

/// Nanoseconds since the emulator started.
pub(crate) type Nanos = u64;

/// Settings of one direction.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DirConfig {
    /// Bottleneck rate in bit/s; 0 for no bottleneck (no queue either).
    pub(crate) rate: u64,
    /// Drop-tail queue limit in bytes (the packet in service included).
    pub(crate) queue_bytes: u64,
    /// One-way propagation delay.
    pub(crate) delay: Nanos,
    /// Delay varies uniformly in `delay ± jitter`.
    pub(crate) jitter: Nanos,
    /// Probability that a packet is lost (before the queue), 0..=1.
    pub(crate) loss: f64,
    /// Whether jitter may reorder packets.
    pub(crate) reorder: bool,
}

/// Why a packet was not forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Drop {
    /// Random loss.
    Loss,
    /// The bottleneck queue was full.
    Queue,
}

/// Counters of one direction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DirStats {
    /// Packets and bytes offered (what the sender put on the wire).
    pub(crate) packets_in: u64,
    pub(crate) bytes_in: u64,
    /// Packets dropped by random loss and by the full queue.
    pub(crate) lost: u64,
    pub(crate) queue_drops: u64,
    /// Packets and bytes delivered.
    pub(crate) packets_out: u64,
    pub(crate) bytes_out: u64,
    /// Largest backlog seen at the bottleneck, in bytes.
    pub(crate) max_queue_bytes: u64,
}

/// Deterministic PRNG (SplitMix64): reproducible loss and jitter per seed.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One direction of the link. `T` is whatever the caller stores per packet (a buffer index).
#[derive(Debug)]
pub(crate) struct Pipe<T> {
    config: DirConfig,
    rng: Rng,
    /// When the serialiser finishes the last accepted packet.
    busy_until: Nanos,
    /// Latest delivery time handed out (FIFO delivery).
    last_delivery: Nanos,
    /// Packets in flight, by delivery time (sorted: FIFO, or insertion-sorted when reordering).
    line: VecDeque<(Nanos, T, usize)>,
    stats: DirStats,
}

impl<T> Pipe<T> {
    pub(crate) fn new(config: DirConfig, seed: u64) -> Self {
        Self {
            config,
            rng: Rng::new(seed),
            busy_until: 0,
            last_delivery: 0,
            line: VecDeque::new(),
            stats: DirStats::default(),
        }
    }

    #[cfg(test)]
    pub(crate) fn config(&self) -> &DirConfig {
        &self.config
    }

    /// Changes the settings from now on; packets already accepted keep their delivery times.
    pub(crate) fn set_config(&mut self, config: DirConfig) {
        self.config = config;
    }

    pub(crate) fn stats(&self) -> &DirStats {
        &self.stats
    }

    /// Bytes waiting at the bottleneck at `now` (the packet in service included).
    pub(crate) fn backlog(&self, now: Nanos) -> u64 {
        if self.config.rate == 0 {
            return 0;
        }
        let ns = self.busy_until.saturating_sub(now) as u128;
        (ns * self.config.rate as u128 / 8_000_000_000) as u64
    }

    /// Offers a packet of `len` bytes at `now`. On success the packet is held until
    /// [`Pipe::pop_due`] returns it; on a drop `item` is handed back.
    pub(crate) fn offer(&mut self, now: Nanos, item: T, len: usize) -> Result<Nanos, (Drop, T)> {
        self.stats.packets_in += 1;
        self.stats.bytes_in += len as u64;
        if self.config.loss > 0.0 && self.rng.unit() < self.config.loss {
            self.stats.lost += 1;
            return Err((Drop::Loss, item));
        }
        let leaves = if self.config.rate == 0 {
            now
        } else {
            let backlog = self.backlog(now);
            if backlog + len as u64 > self.config.queue_bytes.max(len as u64) {
                self.stats.queue_drops += 1;
                return Err((Drop::Queue, item));
            }
            let service = len as u128 * 8_000_000_000 / self.config.rate as u128;
            self.busy_until = self.busy_until.max(now) + service as u64;
            self.stats.max_queue_bytes = self.stats.max_queue_bytes.max(backlog + len as u64);
            self.busy_until
        };
        let mut delay = self.config.delay;
        if self.config.jitter > 0 {
            let j = self.config.jitter as f64 * (2.0 * self.rng.unit() - 1.0);
            delay = (delay as f64 + j).max(0.0) as Nanos;
        }
        let mut at = leaves + delay;
        if self.config.reorder {
            let pos = self.line.partition_point(|(t, _, _)| *t <= at);
            self.line.insert(pos, (at, item, len));
        } else {
            at = at.max(self.last_delivery);
            self.last_delivery = at;
            self.line.push_back((at, item, len));
        }
        Ok(at)
    }

    /// The next delivery time, if any packet is in flight.
    pub(crate) fn next_due(&self) -> Option<Nanos> {
        self.line.front().map(|(t, _, _)| *t)
    }

    /// The next packet due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Nanos) -> Option<(T, usize)> {
        if self.line.front().is_some_and(|(t, _, _)| *t <= now) {
            let (_, item, len) = self.line.pop_front()?;
            self.stats.packets_out += 1;
            self.stats.bytes_out += len as u64;
            return Some((item, len));
        }
        None
    }

    /// Packets in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.line.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    fn config(rate: u64, queue_bytes: u64, delay: Nanos, loss: f64) -> DirConfig {
        DirConfig {
            rate,
            queue_bytes,
            delay,
            jitter: 0,
            loss,
            reorder: false,
        }
    }

    /// Offers `len`-byte packets back to back at `offered` bit/s for `duration`, delivering as it
    /// goes; returns (delivered bytes, last delivery time).
    fn drive(pipe: &mut Pipe<u32>, offered: u64, len: usize, duration: Nanos) -> (u64, Nanos) {
        let gap = len as u64 * 8_000_000_000 / offered;
        let mut delivered = 0;
        let mut last = 0;
        let mut t = 0;
        while t < duration {
            let _ = pipe.offer(t, 0, len);
            t += gap;
        }
        let end = pipe.line.back().map_or(0, |b| b.0);
        while let Some(at) = pipe.next_due() {
            let (_, n) = pipe.pop_due(end).expect("due");
            delivered += n as u64;
            last = at;
        }
        (delivered, last)
    }

    #[test]
    fn bottleneck_serialises_at_the_rate() {
        // 1 Gbit/s offered into 100 Mbit/s for 1 s with an unbounded queue: the last packet
        // leaves ~10 s later; everything is delivered at exactly the rate.
        let mut pipe = Pipe::new(config(100_000_000, u64::MAX, 0, 0.0), 1);
        let (bytes, last) = drive(&mut pipe, 1_000_000_000, 1500, 1_000 * MS);
        let rate = bytes as f64 * 8.0 / (last as f64 / 1e9);
        assert!((rate / 1e8 - 1.0).abs() < 0.001, "rate {rate}");
    }

    #[test]
    fn drop_tail_queue_bounds_the_backlog() {
        let queue = 150_000;
        let mut pipe = Pipe::new(config(100_000_000, queue, 0, 0.0), 1);
        let (bytes, _) = drive(&mut pipe, 200_000_000, 1500, 1_000 * MS);
        let stats = pipe.stats().clone();
        assert!(stats.max_queue_bytes <= queue, "{stats:?}");
        assert!(stats.queue_drops > 0);
        // Half the offered load fits through a 100 Mbit/s bottleneck over 1 s, plus the queue.
        let expect = 100_000_000 / 8 + queue;
        assert!(bytes.abs_diff(expect) < 3_000, "{bytes} vs {expect}");
        assert_eq!(stats.packets_in, stats.packets_out + stats.queue_drops);
    }

    #[test]
    fn delay_is_added_once_per_packet() {
        let mut pipe = Pipe::new(config(0, 0, 50 * MS, 0.0), 1);
        assert_eq!(pipe.offer(7, 1u32, 100), Ok(7 + 50 * MS));
        assert_eq!(pipe.pop_due(50 * MS), None);
        assert_eq!(pipe.pop_due(7 + 50 * MS), Some((1, 100)));
    }

    #[test]
    fn loss_rate_matches_and_is_reproducible() {
        let run = |seed| {
            let mut pipe = Pipe::new(config(0, 0, 0, 0.03), seed);
            (0..200_000u32)
                .map(|i| pipe.offer(u64::from(i), i, 1200).is_err())
                .collect::<Vec<_>>()
        };
        let a = run(9);
        assert_eq!(a, run(9));
        assert_ne!(a, run(10));
        let rate = a.iter().filter(|d| **d).count() as f64 / a.len() as f64;
        assert!((rate - 0.03).abs() < 0.002, "{rate}");
    }

    #[test]
    fn jitter_keeps_order_unless_reordering_is_allowed() {
        for reorder in [false, true] {
            let mut c = config(0, 0, 10 * MS, 0.0);
            c.jitter = 5 * MS;
            c.reorder = reorder;
            let mut pipe = Pipe::new(c, 3);
            for i in 0..1000u32 {
                pipe.offer(u64::from(i) * 10_000, i, 100).expect("no loss");
            }
            let mut order = Vec::new();
            while let Some((i, _)) = pipe.pop_due(u64::MAX) {
                order.push(i);
            }
            assert_eq!(order.len(), 1000);
            let sorted = order.windows(2).all(|w| w[0] < w[1]);
            assert_eq!(sorted, !reorder, "reorder={reorder}");
        }
    }

    #[test]
    fn blackout_drops_everything_and_recovers() {
        let mut pipe = Pipe::new(config(0, 0, 0, 0.0), 1);
        let mut c = pipe.config().clone();
        c.loss = 1.0;
        pipe.set_config(c.clone());
        assert!((0..100u32).all(|i| pipe.offer(0, i, 100).is_err()));
        c.loss = 0.0;
        pipe.set_config(c);
        assert!(pipe.offer(0, 1u32, 100).is_ok());
    }
}
