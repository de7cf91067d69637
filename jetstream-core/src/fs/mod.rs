//! Files: reading sources, writing and verifying destinations, path safety, resume journal.
//!
//! Everything here may block on the disk, so none of it runs on the event-loop thread except
//! the cheap bookkeeping calls documented as such.

pub mod beneath;
pub mod identity;
pub mod journal;
pub mod paths;
pub mod reader;
mod scan;
pub mod sink;
pub mod tree;

pub use crate::error::FsError;
