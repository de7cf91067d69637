//! (placeholder: the trigger runner is being written; this stub keeps the crate compiling)
use std::path::PathBuf;
use std::time::Duration;

/// The trigger runner.
#[derive(Debug)]
pub struct Triggers;

impl Triggers {
    /// Starts the executor thread.
    pub fn start(_dir: PathBuf, _log: bool, _capacity: usize) -> Self {
        Self
    }
    /// A runner that runs nothing.
    pub fn disabled() -> Self {
        Self
    }
    /// Queues a trigger.
    pub fn fire(&self, _name: &str, _args: Vec<String>, _stdin: Option<Vec<u8>>) {}
    /// Whether a script for `name` exists.
    pub fn has(&self, _name: &str) -> bool {
        false
    }
    /// Jobs dropped so far.
    pub fn dropped(&self) -> u64 {
        0
    }
    /// Waits until idle.
    pub fn wait_idle(&self, _timeout: Duration) -> bool {
        true
    }
}
