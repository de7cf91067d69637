//! The sans-IO protocol core. No sockets, files, clocks or OS randomness in here: time comes in
//! as arguments, datagrams go in and out through caller buffers, and file data goes through the
//! [`Storage`] trait (receiving) or is pushed in (sending).

pub mod congestion;
pub mod crypto;
mod endpoint;
pub(crate) mod layout;
pub mod pacing;
pub mod packet;
pub mod rangeset;
pub mod rtt;
pub(crate) mod session;
pub(crate) mod timer;
mod transport;

pub use endpoint::{
    Endpoint, EndpointStats, Event, ReceiveParams, SendParams, SessionHandle, TrafficStats,
    Transmit,
};
pub use session::SessionStats;
pub use transport::TransportConfig;

use crate::types::{Digest, FileIndex};

/// Where a receiving session puts file data. Implemented by the file-backed sink in the
/// driver, and by in-memory checkers in the simulator.
///
/// Calls come from the event loop and must not block.
pub trait Storage {
    /// Bytes of `file` at `offset`. May overlap data written before (ignore the overlap).
    fn write(&mut self, session: SessionHandle, file: FileIndex, offset: u64, data: &[u8]);
    /// Every byte of `file` has been written and the sender's digest is `digest`: verify,
    /// make durable and move into place, then report with [`Endpoint::file_done`].
    fn finish(&mut self, session: SessionHandle, file: FileIndex, digest: Digest);
    /// Bytes accepted by `write` but not yet written out (for flow control).
    fn buffered_bytes(&self, session: SessionHandle) -> u64;
}

/// [`Storage`] bound to one session.
pub(crate) trait SessionStorage {
    fn write(&mut self, file: FileIndex, offset: u64, data: &[u8]);
    fn finish(&mut self, file: FileIndex, digest: Digest);
}

#[cfg(test)]
mod tests;
