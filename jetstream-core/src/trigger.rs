//! In-process event callbacks. The engine sends [`TriggerEvent`]s to one worker thread that
//! calls the [`Trigger`]; it never waits for it. Event names match the trigger scripts of the
//! server (`recv.transferComplete`, ...).

use std::path::PathBuf;

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
    },
    /// A transfer failed or was cancelled.
    TransferFailed {
        /// The transfer.
        transfer_id: TransferId,
        /// Which end we are.
        role: Role,
        /// Why.
        message: String,
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
        }
    }
}
