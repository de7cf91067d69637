//! The sans-IO protocol core. No sockets, files, clocks or OS randomness in here.

pub mod congestion;
pub mod crypto;
pub mod packet;
pub mod pacing;
pub mod rangeset;
pub mod rtt;
