//! Per-session timers, kept in a small table indexed by [`Timer`] (the quinn shape).

use std::time::Instant;

/// The timers a session can arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Receiver: send the pending acknowledgement.
    Ack = 0,
    /// Sender: time-threshold loss detection or probe timeout.
    LossDetection = 1,
    /// Sender: the pacer allows the next datagram.
    Pacing = 2,
    /// Both: no authenticated datagram for the idle timeout ends the session.
    Idle = 3,
    /// Both: nothing else is being sent; say we are alive.
    KeepAlive = 4,
    /// Both: retransmit a CLOSE or COMPLETE that has not been acknowledged.
    Control = 5,
    /// Both: the closing/draining period is over; the session can be freed.
    Drain = 6,
}

const COUNT: usize = 7;

/// Deadlines for each [`Timer`]; `None` when stopped.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TimerTable {
    deadlines: [Option<Instant>; COUNT],
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer as usize] = Some(at);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer as usize]
    }

    pub(crate) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|t| t <= now)
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn next_is_earliest_and_stop_clears() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Idle, t0 + Duration::from_secs(30));
        t.set(Timer::Ack, t0 + Duration::from_millis(2));
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(2)));
        assert!(t.is_expired(Timer::Ack, t0 + Duration::from_millis(2)));
        assert!(!t.is_expired(Timer::Idle, t0 + Duration::from_millis(2)));
        t.stop(Timer::Ack);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(30)));
    }
}
