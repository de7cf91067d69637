//! In-process event callbacks. The engine sends [`TriggerEvent`]s to one worker thread that
//! calls the [`Trigger`]; it never waits for it. Event names match the trigger scripts of the
//! server (`recv.transferComplete`, ...).
//!
//! # Delivery
//!
//! Events reach the trigger in the order they happened, through a queue of
//! [`EngineConfig::trigger_queue`](crate::EngineConfig::trigger_queue) events (4096 by
//! default). The engine never blocks on a slow trigger: one engine thread moves the data of
//! every transfer, and a trigger that stalled it would stall them all (and, at worst, the
//! trigger waiting on a transfer would deadlock). So when the queue is full, events are dropped
//! but never silently: they are counted, and as soon as the queue has room again the trigger
//! receives [`TriggerEvent::EventsLost`] with the exact number dropped, before any later
//! event. A trigger that must not miss a completion (an asset manager ingesting on
//! `TransferComplete`) reconciles on `EventsLost` from the transfers' statuses. The total is
//! also in [`EngineInfo::trigger_events_lost`](crate::io::EngineInfo::trigger_events_lost).

use std::path::PathBuf;

use crossbeam_channel::{Sender, TrySendError};

use crate::failure::{FailedFile, FailureReason};
use crate::types::{Role, TransferId};

/// Receives engine events. Every method has a no-op default.
pub trait Trigger: Send + 'static {
    /// Called once per event, serially, on the trigger thread.
    fn on_event(&mut self, event: &TriggerEvent) {
        let _ = event;
    }
}

/// A trigger that does nothing.
#[derive(Debug, Default)]
pub struct NoTrigger;

impl Trigger for NoTrigger {}

/// A channel is a trigger: each event is sent on it, for a thread of the program to take
/// (an event sent after the receiving end is gone is dropped: nobody is listening).
impl Trigger for Sender<TriggerEvent> {
    fn on_event(&mut self, event: &TriggerEvent) {
        let _ = self.send(event.clone());
    }
}

/// Something that happened to a transfer.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TriggerEvent {
    /// A transfer started moving data.
    TransferStarted {
        /// The transfer.
        transfer_id: TransferId,
        /// Which end we are.
        role: Role,
    },
    /// The receiver verified an entry and moved it into place.
    FileReceived {
        /// The transfer.
        transfer_id: TransferId,
        /// The manifest path.
        path: String,
        /// Where it was written.
        written: PathBuf,
    },
    /// A transfer completed. On the receiver, `files` lists (manifest path, absolute path
    /// written) for every entry, as the `recv.transferComplete` trigger's stdin does.
    TransferComplete {
        /// The transfer.
        transfer_id: TransferId,
        /// Which end we are.
        role: Role,
        /// Files written (receiver) or sent (sender: written path empty).
        files: Vec<(String, PathBuf)>,
        /// Entries that failed, each with its reason (the transfer then ends in error with
        /// [`FailureReason::FilesFailed`]).
        failed: Vec<FailedFile>,
    },
    /// A transfer failed or was cancelled.
    TransferFailed {
        /// The transfer.
        transfer_id: TransferId,
        /// Which end we are.
        role: Role,
        /// Why, as a type.
        reason: FailureReason,
        /// Why, in words.
        message: String,
    },
    /// The trigger fell behind and this many events were dropped just before this one (see
    /// the [module documentation](self)).
    EventsLost {
        /// How many events were dropped.
        count: u64,
    },
}

impl TriggerEvent {
    /// The event's name as used for trigger scripts.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TransferStarted {
                role: Role::Sender, ..
            } => "send.transferStarted",
            Self::TransferStarted {
                role: Role::Receiver,
                ..
            } => "recv.transferStarted",
            Self::FileReceived { .. } => "recv.fileReceived",
            Self::TransferComplete {
                role: Role::Sender, ..
            } => "send.transferComplete",
            Self::TransferComplete {
                role: Role::Receiver,
                ..
            } => "recv.transferComplete",
            Self::TransferFailed {
                role: Role::Sender, ..
            } => "send.transferFailed",
            Self::TransferFailed {
                role: Role::Receiver,
                ..
            } => "recv.transferFailed",
            Self::EventsLost { .. } => "eventsLost",
        }
    }
}

/// The engine's end of the trigger queue: never blocks, never drops an event without counting
/// it (see the [module documentation](self)).
#[derive(Debug)]
pub(crate) struct TriggerQueue {
    tx: Sender<TriggerEvent>,
    /// Dropped since the last `EventsLost` went out.
    pending_lost: u64,
    /// Dropped in the engine's life.
    total_lost: u64,
}

impl TriggerQueue {
    pub(crate) fn new(tx: Sender<TriggerEvent>) -> Self {
        Self {
            tx,
            pending_lost: 0,
            total_lost: 0,
        }
    }

    /// Queues `event`, after the report of any events dropped before it.
    pub(crate) fn push(&mut self, event: TriggerEvent) {
        if !self.report_lost() {
            self.lose();
            return;
        }
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.lose(),
            // The trigger thread is gone (it panicked): nobody is left to tell.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Sends the pending `EventsLost`, if any, when the queue has room. Returns whether
    /// nothing is pending any more. Called with every event and on every status tick, so the
    /// report goes out as soon as the trigger catches up even if no other event follows.
    pub(crate) fn report_lost(&mut self) -> bool {
        if self.pending_lost == 0 {
            return true;
        }
        match self.tx.try_send(TriggerEvent::EventsLost {
            count: self.pending_lost,
        }) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {
                self.pending_lost = 0;
                true
            }
            Err(TrySendError::Full(_)) => false,
        }
    }

    fn lose(&mut self) {
        self.pending_lost += 1;
        self.total_lost += 1;
    }

    /// Events dropped in the engine's life.
    pub(crate) fn total_lost(&self) -> u64 {
        self.total_lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;

    fn started(n: u8) -> TriggerEvent {
        TriggerEvent::TransferStarted {
            transfer_id: TransferId([n; 16]),
            role: Role::Sender,
        }
    }

    fn id_of(ev: &TriggerEvent) -> Option<u8> {
        match ev {
            TriggerEvent::TransferStarted { transfer_id, .. } => Some(transfer_id.0[0]),
            _ => None,
        }
    }

    #[test]
    fn overflow_is_counted_exactly_and_reported_before_the_next_event() {
        let (tx, rx) = bounded(4);
        let mut q = TriggerQueue::new(tx);
        // A trigger that does not keep up: 4 fit, the next 6 are dropped.
        for n in 0..10 {
            q.push(started(n));
        }
        assert_eq!(q.total_lost(), 6);
        let first: Vec<_> = rx.try_iter().map(|e| id_of(&e)).collect();
        assert_eq!(first, [Some(0), Some(1), Some(2), Some(3)]);
        // It caught up: the loss report comes first, then the new event.
        q.push(started(10));
        let next: Vec<_> = rx.try_iter().collect();
        assert!(
            matches!(next[0], TriggerEvent::EventsLost { count: 6 }),
            "{next:?}"
        );
        assert_eq!(id_of(&next[1]), Some(10));
        assert_eq!(next.len(), 2);
    }

    #[test]
    fn a_loss_is_reported_on_the_tick_even_with_no_later_event() {
        let (tx, rx) = bounded(2);
        let mut q = TriggerQueue::new(tx);
        for n in 0..5 {
            q.push(started(n));
        }
        assert!(!q.report_lost(), "still full");
        assert_eq!(rx.try_iter().count(), 2);
        assert!(q.report_lost());
        let got: Vec<_> = rx.try_iter().collect();
        assert!(
            matches!(got[..], [TriggerEvent::EventsLost { count: 3 }]),
            "{got:?}"
        );
        // Once reported, a loss is not reported again.
        assert!(q.report_lost());
        assert_eq!(rx.try_iter().count(), 0);
    }

    #[test]
    fn a_slow_trigger_on_its_own_thread_sees_every_event_or_an_exact_count() {
        // A trigger held back until the engine has produced all its events, on a real worker
        // thread: every event is either delivered, in order, or counted in `EventsLost`.
        let (tx, rx) = bounded(16);
        let (go_tx, go_rx) = bounded::<()>(0);
        let (seen_tx, seen_rx) = bounded(1);
        let worker = std::thread::spawn(move || {
            go_rx.recv().unwrap();
            let mut seen = Vec::new();
            for ev in rx {
                seen.push(ev);
            }
            seen_tx.send(seen).unwrap();
        });
        let mut q = TriggerQueue::new(tx);
        for n in 0..100 {
            q.push(started(n));
        }
        go_tx.send(()).unwrap();
        // Wait for the worker to drain the queue: the loss report then fits.
        while !q.report_lost() {
            std::thread::yield_now();
        }
        q.push(started(200));
        let lost = q.total_lost();
        drop(q);
        worker.join().unwrap();
        let seen = seen_rx.recv().unwrap();
        let ids: Vec<u8> = seen.iter().filter_map(id_of).collect();
        let mut want: Vec<u8> = (0..16).collect();
        want.push(200);
        assert_eq!(ids, want);
        assert_eq!(lost, 84);
        assert!(matches!(seen[16], TriggerEvent::EventsLost { count: 84 }));
    }
}
