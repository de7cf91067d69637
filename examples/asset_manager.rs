//! A media asset manager's ingest, as it would embed JetStream: two servers in one process (an
//! "edge" that sends and an "ingest" that receives), their events watched in-process, and
//! every file that lands printed with its path, ready to be catalogued.
//!
//! It shows:
//! - [`jetstream_server::spawn_with_trigger`] with a [`ServerConfig`] built in code (loopback,
//!   port 0, a state directory of its own), and the bound ports read back from the handle;
//! - a [`ServerTrigger`] (here: a channel) receiving [`ServerEvent`]s: nothing is dropped, so
//!   ingesting on `TransferComplete` misses no transfer;
//! - the control API through the typed client (`jetstream_api::Api`, one method per command,
//!   typed parameters and results): log in with the server's local token,
//!   create a destination (the ingest server, logged in there with its local token), a
//!   manifest and a transfer;
//! - [`ServerHandle::stop`]: no signal handler, no `process::exit`, no log file.
//!
//! Run it with `cargo run -p jetstream-server --example asset_manager` (its files go to a
//! temporary directory, removed at the end). It binds to loopback only, and uses `unwrap`
//! for brevity. The server test suite runs it too (`embed::the_asset_manager_example_runs`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crossbeam_channel::Receiver;
use jetstream_api::params::{
    AuthToken, CreateDestination, CreateManifest, CreateTransfer, GetManifest,
};
use jetstream_api::types::ManifestStatus;
use jetstream_api::Api as _;
use jetstream_client::client::{ApiClient, ConnectOptions, Trust};
use jetstream_core::Role;
use jetstream_server::{ServerConfig, ServerEvent, ServerHandle};

/// How long the example waits for any one event before it gives up.
const PATIENCE: Duration = Duration::from_secs(60);

fn main() {
    let work = tempfile::tempdir().unwrap();
    let received = run(work.path());
    println!("ingested {} files", received.len());
}

/// Everything, in `work`: returns the paths of the received files, in the order they landed.
pub fn run(work: &Path) -> Vec<PathBuf> {
    // The assets to send.
    let assets = work.join("assets");
    std::fs::create_dir_all(assets.join("shoot-42")).unwrap();
    let names = ["shoot-42/take-1.mov", "shoot-42/take-2.mov", "poster.png"];
    for (i, name) in names.iter().enumerate() {
        let bytes: Vec<u8> = (0..200_000u32).map(|b| (b * 31 + i as u32) as u8).collect();
        std::fs::write(assets.join(name), bytes).unwrap();
    }
    let inbox = work.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();

    // Two servers; each reports its events to a channel of ours.
    let (edge, edge_events) = start(&work.join("edge"));
    let (ingest, ingest_events) = start(&work.join("ingest"));
    expect(&edge_events, |e| matches!(e, ServerEvent::Launch { .. }));
    expect(&ingest_events, |e| matches!(e, ServerEvent::Launch { .. }));

    // The control API of the sending server, as the account running it (its local token).
    let mut api = connect(edge.api_addr());
    api.auth_token(&AuthToken::new(edge.local_token().unwrap()))
        .unwrap();
    let d = api
        .create_destination(&CreateDestination {
            destination_api_port: Some(ingest.api_addr().port()),
            token: Some(ingest.local_token().unwrap().into()),
            ..CreateDestination::new("127.0.0.1")
        })
        .unwrap();
    let destination = d.destination_id;
    expect(&edge_events, |e| {
        matches!(e, ServerEvent::DestinationCreated { destination_id, .. }
                    if *destination_id == destination)
    });

    let m = api
        .create_manifest(&CreateManifest::new(
            names
                .iter()
                .map(|n| (assets.join(n).display().to_string(), format!("/{n}"))),
        ))
        .unwrap();
    let manifest = m.manifest_id;
    wait_manifest(&mut api, &manifest);

    let t = api
        .create_transfer(&CreateTransfer {
            destination_path: Some(inbox.display().to_string()),
            ..CreateTransfer::new(&destination, &manifest)
        })
        .unwrap();
    let transfer = t.transfer_id;
    println!("transfer {transfer} to the ingest server started");

    // The ingest side: each file that lands, from the event, without polling.
    let mut received = Vec::new();
    let files = expect(&ingest_events, |e| {
        matches!(
            e,
            ServerEvent::TransferComplete {
                role: Role::Receiver,
                ..
            }
        )
    });
    if let ServerEvent::TransferComplete { files, .. } = files {
        for f in files {
            println!("landed: {} ({})", f.path.display(), f.manifest_path);
            received.push(f.path);
        }
    }
    // The sending side says so too.
    expect(&edge_events, |e| {
        matches!(e, ServerEvent::TransferComplete { transfer_id, role: Role::Sender, .. }
                    if *transfer_id == transfer)
    });

    edge.stop().unwrap();
    ingest.stop().unwrap();
    let landed: BTreeSet<&PathBuf> = received.iter().collect();
    assert_eq!(landed.len(), names.len(), "every asset landed once");
    received
}

/// A server on loopback, any free ports, its state in `state`, no trigger scripts; its events
/// on the returned channel.
fn start(state: &Path) -> (ServerHandle, Receiver<ServerEvent>) {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = ServerConfig::new(state);
    config
        .api_address(loopback)
        .data_address(loopback)
        .allow_remote_control(false)
        .trigger_dir(state.join("triggers"));
    let (tx, rx) = crossbeam_channel::unbounded();
    let handle = jetstream_server::spawn_with_trigger(config, tx).unwrap();
    println!(
        "server in {}: API {}, data {}",
        state.display(),
        handle.api_addr(),
        handle.data_addr()
    );
    (handle, rx)
}

/// A plain connection to a loopback API (TLS is for remote clients).
fn connect(addr: SocketAddr) -> ApiClient {
    let opts = ConnectOptions::new(Trust::Pinned(None));
    ApiClient::connect(&addr.ip().to_string(), addr.port(), &opts).unwrap()
}

/// The next event that `wanted` accepts (the others are printed and passed over).
fn expect(events: &Receiver<ServerEvent>, wanted: impl Fn(&ServerEvent) -> bool) -> ServerEvent {
    loop {
        let e = events
            .recv_timeout(PATIENCE)
            .expect("no event within a minute");
        if wanted(&e) {
            println!("event: {}", e.name());
            return e;
        }
        println!("event: {} (passed over)", e.name());
    }
}

/// Waits until the manifest is built (the server reads the files in the background).
fn wait_manifest(api: &mut ApiClient, id: &str) {
    for _ in 0..3000 {
        let m = api.get_manifest(&GetManifest::new(id)).unwrap();
        match m.status {
            ManifestStatus::Complete => return,
            ManifestStatus::Error => panic!("manifest: {:?}", m.error_message),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    panic!("manifest {id} not built within a minute");
}
