//! The mio driver: the only code that touches sockets.

pub mod socket;
