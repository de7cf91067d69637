//! The rate-control trace ([`EngineConfig::trace_file`](crate::EngineConfig::trace_file)):
//! one JSON line per sending session per status interval (100 ms) with the rate controller's
//! view (state, RTTs, bandwidth estimate, pacing rate, window, in flight, losses), appended to
//! a file. For finding where a transfer on a long path loses time (start-up, cruise, the
//! loss-recovery tail); see docs/congestion.md.
//!
//! The file is opened when the engine starts and owned by its thread: no global state.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::proto::SessionStats;
use crate::types::{Role, TransferId};

/// An open trace file.
#[derive(Debug)]
pub(super) struct Trace(File);

impl Trace {
    /// Opens `path` for appending.
    pub(super) fn open(path: &Path) -> std::io::Result<Self> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(Self)
    }

    /// Appends a sending session's line (receiving sessions have no rate controller).
    pub(super) fn record(&mut self, id: TransferId, role: Role, s: &SessionStats) {
        if role != Role::Sender {
            return;
        }
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let line = format!(
            "{{\"t\":{t:.3},\"transferId\":\"{id}\",\"state\":\"{}\",\"srttUs\":{},\
             \"minRttUs\":{},\"btlBw\":{},\"pacing\":{},\"cwnd\":{},\"inFlight\":{},\
             \"inflightCap\":{},\"acked\":{},\"sent\":{},\"retx\":{},\"lostPackets\":{},\
             \"spurious\":{},\"pathHint\":\"{}\"}}\n",
            s.cc_state,
            s.srtt_us,
            s.min_rtt_us,
            s.bottleneck_bandwidth,
            s.pacing_rate,
            s.cwnd,
            s.bytes_in_flight,
            s.inflight_cap,
            s.bytes_acked,
            s.bytes_sent,
            s.bytes_retransmitted,
            s.packets_lost,
            s.spurious_losses,
            s.path_hint_outcome,
        );
        // One write per line: several engines of a process may append to the same file, and
        // an O_APPEND write of one line is not interleaved with another's. A trace is a
        // diagnostic: a full disk must not disturb the transfer it traces.
        let _ = self.0.write_all(line.as_bytes());
    }
}
