//! The relay's Prometheus endpoint (`relay_server --metrics-address`): datagrams forwarded and
//! dropped, and whether a private server is registered. Served like the server's (see
//! [`crate::server::metrics`]).

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// Why the relay dropped a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// From the public side while no private server is registered.
    NoServer,
    /// From the public side: the table of public peers is full of live peers.
    PeersFull,
    /// From the public side: the link to the private server is full (it reads too slowly).
    LinkFull,
    /// From the private server, to a peer that has not sent to the relay recently.
    UnknownPeer,
}

/// The relay's counters (atomics: the UDP thread and the link thread count).
#[derive(Debug, Default)]
pub struct RelayCounters {
    to_server: AtomicU64,
    to_server_bytes: AtomicU64,
    to_peer: AtomicU64,
    to_peer_bytes: AtomicU64,
    dropped: [AtomicU64; 4],
    registrations: AtomicU64,
}

impl RelayCounters {
    /// A datagram of `len` bytes forwarded from a public peer to the private server.
    pub fn to_server(&self, len: usize) {
        self.to_server.fetch_add(1, Ordering::Relaxed);
        self.to_server_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
    }

    /// A datagram of `len` bytes forwarded from the private server to a public peer.
    pub fn to_peer(&self, len: usize) {
        self.to_peer.fetch_add(1, Ordering::Relaxed);
        self.to_peer_bytes.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// A datagram dropped.
    pub fn dropped(&self, why: Dropped) {
        self.dropped[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A private server registered.
    pub fn registered(&self) {
        self.registrations.fetch_add(1, Ordering::Relaxed);
    }

    /// The OpenMetrics text; `registered`: whether a private server's link is live now.
    pub fn render(&self, registered: bool) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut reg = Registry::default();
        reg.register(
            "jetstream_relay_build",
            "The relay's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let datagrams = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let bytes = Family::<[(&'static str, &'static str); 1], Counter>::default();
        for (direction, n, b) in [
            ("to_server", &self.to_server, &self.to_server_bytes),
            ("to_peer", &self.to_peer, &self.to_peer_bytes),
        ] {
            datagrams
                .get_or_create(&[("direction", direction)])
                .inc_by(get(n));
            bytes
                .get_or_create(&[("direction", direction)])
                .inc_by(get(b));
        }
        reg.register(
            "jetstream_relay_forwarded_datagrams",
            "Datagrams forwarded: to_server (from a public peer to the private server) or \
             to_peer (back)",
            datagrams,
        );
        reg.register_with_unit(
            "jetstream_relay_forwarded",
            "Bytes of the datagrams forwarded, by direction",
            Unit::Bytes,
            bytes,
        );
        let dropped = Family::<[(&'static str, &'static str); 1], Counter>::default();
        for (reason, why) in [
            ("no_server", Dropped::NoServer),
            ("peers_full", Dropped::PeersFull),
            ("link_full", Dropped::LinkFull),
            ("unknown_peer", Dropped::UnknownPeer),
        ] {
            dropped
                .get_or_create(&[("reason", reason)])
                .inc_by(get(&self.dropped[why as usize]));
        }
        reg.register(
            "jetstream_relay_dropped_datagrams",
            "Datagrams dropped: no_server (none registered), peers_full (too many public \
             peers), link_full (the private server reads too slowly), unknown_peer (from the \
             server to an address that has not sent to the relay)",
            dropped,
        );
        reg.register(
            "jetstream_relay_registered",
            "1 while a private server is registered, else 0",
            ConstGauge::new(i64::from(registered)),
        );
        reg.register(
            "jetstream_relay_registrations",
            "Private server registrations accepted",
            ConstCounter::new(get(&self.registrations)),
        );
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &reg);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_exposition_names_and_values() {
        let c = RelayCounters::default();
        c.to_server(100);
        c.to_server(50);
        c.to_peer(10);
        c.dropped(Dropped::NoServer);
        c.dropped(Dropped::UnknownPeer);
        c.dropped(Dropped::UnknownPeer);
        c.registered();
        let text = c.render(true);
        for line in [
            "# TYPE jetstream_relay_forwarded_datagrams counter",
            "jetstream_relay_forwarded_datagrams_total{direction=\"to_server\"} 2",
            "jetstream_relay_forwarded_bytes_total{direction=\"to_server\"} 150",
            "jetstream_relay_forwarded_bytes_total{direction=\"to_peer\"} 10",
            "jetstream_relay_dropped_datagrams_total{reason=\"no_server\"} 1",
            "jetstream_relay_dropped_datagrams_total{reason=\"unknown_peer\"} 2",
            "jetstream_relay_dropped_datagrams_total{reason=\"link_full\"} 0",
            "# TYPE jetstream_relay_registered gauge",
            "jetstream_relay_registered 1",
            "jetstream_relay_registrations_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(c.render(false).contains("\njetstream_relay_registered 0\n"));
    }
}
