//! The copies: `jscp` links the engine and talks to the remote server's API itself (no local
//! daemon, like scp needs only sshd). Pushing, it asks the server to receive
//! (`recv.startTransfer`) and sends from its own engine; pulling, it asks the server to build a
//! manifest and send it (`send.startDownload`) to its own engine. Either way the keys come from
//! the TLS session with the server, and the TLS connection is pinged while data flows so that
//! either side notices the other going away.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jetstream_api::params::{
    CreateManifest, DeleteManifest, Echo, GetManifest, GetManifestFiles, GetReceiveTransfers,
    GetServerInfo, GetSharedToken, Mapping, StartDownload, StartReceive,
};
use jetstream_api::types::{Manifest, ManifestStatus};
use jetstream_api::Api as _;
use jetstream_client::client::{ApiClient, ClientError};
use jetstream_client::ids::{new_id, new_session_id};
use jetstream_client::login::{self, exit, Failure};
use jetstream_client::manifest::{engine_manifest, scan};
use jetstream_client::paths::PathMemory;
use jetstream_client::session::{client_keys, offer, rank};
use jetstream_core::fs::paths::clean_relative;
use jetstream_core::proto::crypto::Cipher;
use jetstream_core::transfer::TransferState;
use jetstream_core::{
    BitsPerSecond, Destination, Engine, EngineConfig, FailureReason, Transfer, TransferStatus,
};
use serde_json::json;

use crate::args::{Location, Options, Remote};
use crate::progress::{Progress, Snapshot};

/// Runs the copy; `Ok` is success.
pub(crate) fn run(
    o: &Options,
    progress: &mut Progress,
    stop: &Arc<AtomicBool>,
) -> Result<(), Failure> {
    match &o.target {
        Location::Remote(r) => push(o, r, progress, stop),
        Location::Local(target) => pull(o, target, progress, stop),
    }
}

fn verbose(o: &Options, m: &str) {
    if o.verbose {
        crate::progress::err(format_args!("jscp: {m}\n"));
    }
}

fn refused(e: ClientError) -> Failure {
    match e {
        ClientError::Api(m) => Failure::new(exit::REFUSED, format!("the server refused: {m}")),
        other => Failure::new(exit::CONNECT, other.to_string()),
    }
}

/// Connects (TLS always: the data keys come from the TLS session) and logs in.
fn open(o: &Options, r: &Remote) -> Result<ApiClient, Failure> {
    let port = r.port.or(o.port).unwrap_or(8886);
    verbose(o, &format!("connecting to {}:{port}", r.host));
    let mut c = login::connect(&r.host, port, o.accept_new_host, true)?;
    login::authenticate(&mut c, &r.host, r.user.as_deref(), o.token.as_deref()).map_err(|f| {
        if f.code == exit::AUTH && o.token.is_none() {
            Failure::new(
                f.code,
                format!("{} (set JETSTREAM_API_PASSWORD, or use --token)", f.message),
            )
        } else {
            f
        }
    })?;
    verbose(o, "logged in");
    Ok(c)
}

fn local_engine() -> Result<Engine, Failure> {
    let mut cfg = EngineConfig::default();
    cfg.bind("0.0.0.0:0".parse().expect("a valid socket address literal"));
    // The rate-control trace (docs/congestion.md): the library reads no environment.
    cfg.trace_file(std::env::var_os("JETSTREAM_TRACE").map(Into::into));
    Engine::spawn(cfg)
        .map_err(|e| Failure::new(exit::LOCAL, format!("cannot open a UDP socket: {e}")))
}

/// Where each local source goes on the server, scp style: one file to a target that does not
/// end in `/` is copied *as* the target; otherwise every source keeps its name below the
/// target directory (a directory source needs `-r`; `dir/` copies its contents, like rsync).
fn push_plan(o: &Options, target: &str) -> Result<Vec<(PathBuf, String)>, Failure> {
    let target_clean = clean_relative(target)
        .map_err(|e| Failure::new(exit::REFUSED, format!("target {target:?}: {e}")))?;
    let mut plan = Vec::new();
    let into_dir = target.is_empty() || target.ends_with('/') || o.sources.len() > 1;
    for s in &o.sources {
        let Location::Local(path) = s else { continue };
        let p = Path::new(path);
        let meta =
            std::fs::metadata(p).map_err(|e| Failure::new(exit::LOCAL, format!("{path}: {e}")))?;
        if meta.is_dir() && !o.recursive {
            return Err(Failure::new(
                exit::USAGE,
                format!("{path} is a directory (use -r)"),
            ));
        }
        let abs = std::path::absolute(p)
            .map_err(|e| Failure::new(exit::LOCAL, format!("{path}: {e}")))?;
        let name = abs
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dest = if meta.is_dir() && path.ends_with('/') {
            target_clean.clone()
        } else if into_dir || meta.is_dir() {
            join(&target_clean, &name)
        } else {
            target_clean.clone()
        };
        plan.push((abs, dest));
    }
    Ok(plan)
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fn push(
    o: &Options,
    r: &Remote,
    progress: &mut Progress,
    stop: &Arc<AtomicBool>,
) -> Result<(), Failure> {
    let plan = push_plan(o, &r.path)?;
    let files = scan(&plan, None, |_, _| {}).map_err(|e| Failure::new(exit::LOCAL, e))?;
    let manifest = engine_manifest(&files).map_err(|e| Failure::new(exit::LOCAL, e))?;
    let mut client = open(o, r)?;
    let transfer_id = new_id();
    let session_id = new_session_id();
    let offered = offer(&[]);
    let started = client
        .start_receive(&StartReceive {
            transfer_id: transfer_id.clone(),
            session_id: session_id.0,
            ciphers: Some(offered.clone()),
            cipher: None,
            destination_path: Some(o.dest_path.clone().unwrap_or_else(|| "/".into())),
            total_size: Some(manifest.total_bytes()),
            total_files: Some(manifest.len() as u64),
            source_public_key: None,
        })
        .map_err(refused)?;
    let port = started.receiver_port;
    let cipher = Cipher::from_name(started.cipher.as_str())
        .filter(|c| offered.iter().any(|o| o == c.name()))
        .ok_or_else(|| {
            Failure::new(
                exit::CONNECT,
                "the server chose a cipher that was not offered",
            )
        })?;
    let keys = client_keys(&client, &transfer_id, session_id, cipher)
        .map_err(|e| Failure::new(exit::CONNECT, format!("cannot derive the data keys: {e}")))?;
    // The data go to the address the API connection reached.
    let ip = client
        .peer_addr()
        .map(|a| a.ip())
        .ok_or_else(|| Failure::new(exit::CONNECT, "lost the connection to the server"))?;
    let engine = local_engine()?;
    // Path memory (docs/jscp.md): what the last complete copy to this server measured.
    let path_key = format!("{ip}:{port}");
    let mut paths = PathMemory::open(&jetstream_client::paths::default_file());
    let hint = paths.hint(&path_key);
    let dest = Destination::new(std::net::SocketAddr::new(ip, port))
        .send_rate_max(o.limit_kbps.map(BitsPerSecond::from_kbps))
        .rate_mode(o.policy)
        .path_hint(hint);
    let files_total = manifest.len() as u64;
    progress.start();
    progress.event(
        json!({"event": "start", "direction": "push", "transferId": transfer_id,
        "totalBytes": manifest.total_bytes(), "totalFiles": files_total}),
    );
    verbose(
        o,
        &format!("transfer {transfer_id}: sending to {ip}:{port}"),
    );
    let t = engine
        .handle()
        .send(dest, keys, manifest)
        .map_err(|e| Failure::new(exit::LOCAL, format!("engine: {e}")))?;
    let mut files_done = 0;
    let mut cap = o.limit_kbps;
    let outcome = watch(&t, progress, stop, |st| {
        // The receiver's view: files finished, and its share of its incoming limit for us
        // (also the liveness ping).
        let list = client.get_receive_transfers(&GetReceiveTransfers {})?;
        if let Some(rt) = list.iter().find(|x| x.transfer_id == transfer_id) {
            files_done = rt.files_done;
            let theirs = rt.rate_limit_kbps;
            let now = [o.limit_kbps, theirs].into_iter().flatten().min();
            if now != cap {
                cap = now;
                t.set_send_rate_max(cap.map(BitsPerSecond::from_kbps));
            }
        }
        Ok(snapshot(st, files_done, files_total))
    });
    let st = t.status();
    let complete = matches!(&outcome, Watched::Ended(s) if s.state == TransferState::Complete);
    paths.record(&path_key, st.path_estimate.filter(|_| complete));
    if let Err(e) = paths.save() {
        verbose(o, &format!("cannot save the path memory: {e}"));
    }
    finish(outcome, &t, progress, "sent")?;
    engine.shutdown();
    Ok(())
}

fn snapshot(st: &TransferStatus, files_done: u64, files_total: u64) -> Snapshot {
    Snapshot {
        bytes: st.bytes_acked,
        total: st.total_bytes,
        files_done,
        files_total,
        sent: st.bytes_sent,
        resent: st.bytes_retransmitted,
        path_hint: st.path_hint_outcome,
    }
}

enum Watched {
    Ended(Box<TransferStatus>),
    Interrupted,
    Lost(ClientError),
}

/// Polls the transfer until it ends, drawing progress; `ping` runs about once a second and
/// also proves the control connection is alive.
fn watch(
    t: &Transfer,
    progress: &mut Progress,
    stop: &Arc<AtomicBool>,
    mut ping: impl FnMut(&TransferStatus) -> Result<Snapshot, ClientError>,
) -> Watched {
    let mut last_ping: Option<Instant> = None;
    let mut snap = Snapshot::default();
    loop {
        let done = t.wait(Duration::from_millis(100)).is_ok();
        let st = t.status();
        if stop.load(Ordering::SeqCst) {
            t.cancel();
            let _ = t.wait(Duration::from_secs(3));
            return Watched::Interrupted;
        }
        // The end of a complete copy needs no more from the server (the engine's Complete
        // already means every file was verified there): a last call would only add a round
        // trip to the copy's time (0.2 s on a 200 ms path).
        let ended = st.state.is_final() && st.state != TransferState::Complete;
        if last_ping.is_none_or(|p| p.elapsed() >= Duration::from_secs(1)) || ended {
            last_ping = Some(Instant::now());
            match ping(&st) {
                Ok(s) => snap = s,
                Err(e) if !st.state.is_final() => {
                    t.cancel();
                    let _ = t.wait(Duration::from_secs(3));
                    return Watched::Lost(e);
                }
                Err(_) => {}
            }
        }
        snap.bytes = st.bytes_acked;
        snap.total = st.total_bytes;
        snap.sent = st.bytes_sent;
        snap.resent = st.bytes_retransmitted;
        if st.state == TransferState::Complete {
            snap.files_done = snap.files_total;
        }
        progress.update(&snap);
        if done || st.state.is_final() {
            return Watched::Ended(Box::new(st));
        }
    }
}

fn finish(w: Watched, t: &Transfer, progress: &mut Progress, verb: &str) -> Result<(), Failure> {
    match w {
        Watched::Interrupted => {
            progress.finish_line();
            Err(Failure::new(
                exit::INTERRUPTED,
                "interrupted; run the same command again to resume (what arrived is kept)",
            ))
        }
        Watched::Lost(e) => {
            progress.finish_line();
            Err(Failure::new(
                exit::CONNECT,
                format!(
                    "lost the connection to the server ({e}); run the same command again to resume"
                ),
            ))
        }
        Watched::Ended(st) => match st.state {
            TransferState::Complete => {
                let s = Snapshot {
                    bytes: st.total_bytes,
                    total: st.total_bytes,
                    files_done: st.files_total.max(st.files_done),
                    files_total: st.files_total.max(st.files_done),
                    sent: st.bytes_sent,
                    resent: st.bytes_retransmitted,
                    path_hint: st.path_hint_outcome,
                };
                let s = if s.files_total == 0 {
                    let n = t.status().files_total;
                    Snapshot {
                        files_done: n,
                        files_total: n,
                        ..s
                    }
                } else {
                    s
                };
                progress.done(verb, &s);
                Ok(())
            }
            _ => {
                progress.finish_line();
                let mut msg = st
                    .error_message
                    .clone()
                    .unwrap_or_else(|| "the transfer failed".into());
                let disk_full = st.failure == Some(FailureReason::NoSpace)
                    || st
                        .failed_files
                        .iter()
                        .any(|f| f.reason == FailureReason::NoSpace);
                if disk_full && !msg.contains("disk is full") {
                    msg.push_str(" (the receiving disk is full)");
                }
                if st.failure.is_some_and(FailureReason::is_interruption) {
                    msg.push_str("; run the same command again to resume");
                }
                if !st.failed_files.is_empty() {
                    let list: Vec<String> = st
                        .failed_files
                        .iter()
                        .take(5)
                        .map(|f| f.to_string())
                        .collect();
                    msg = format!("partial copy: {msg}; failed: {}", list.join("; "));
                }
                Err(Failure::new(failure_exit_code(st.failure), msg))
            }
        },
    }
}

/// `jscp`'s exit status for a transfer the engine ended without completing, from the
/// engine's typed reason (docs/jscp.md "Exit status"): a peer that went silent or an engine
/// that shut down is a lost connection (4; running the command again resumes), anything
/// else a failed or partial transfer (1). Ctrl-C (130) and the control connection's losses
/// are decided before the engine's outcome.
fn failure_exit_code(reason: Option<FailureReason>) -> i32 {
    match reason {
        Some(r) if r.is_interruption() => exit::CONNECT,
        _ => exit::COMMAND_FAILED,
    }
}

fn pull(
    o: &Options,
    target: &str,
    progress: &mut Progress,
    stop: &Arc<AtomicBool>,
) -> Result<(), Failure> {
    let remotes: Vec<&Remote> = o
        .sources
        .iter()
        .filter_map(|s| match s {
            Location::Remote(r) => Some(r),
            Location::Local(_) => None,
        })
        .collect();
    let first = remotes[0];
    let target_path = Path::new(target);
    if o.token.is_some() && remotes.iter().all(|r| r.path.is_empty()) {
        // `jscp --token T HOST: DIR`: download what a shared token shares.
        std::fs::create_dir_all(target_path)
            .map_err(|e| Failure::new(exit::LOCAL, format!("{target}: {e}")))?;
        let mut client = open(o, first)?;
        let token = o.token.clone().unwrap_or_default();
        let t = client
            .get_shared_token(&GetSharedToken {
                token: token.into(),
            })
            .map_err(refused)?;
        let manifest_id = t.manifest_id;
        let m = client
            .get_manifest(&GetManifest {
                manifest_id: manifest_id.clone(),
            })
            .map_err(refused)?;
        return receive_manifest(
            o,
            &mut client,
            &manifest_id,
            &m,
            target_path,
            progress,
            stop,
            false,
        );
    }
    let into_dir = remotes.len() > 1 || target.ends_with('/') || target_path.is_dir();
    // Local root, and each remote source's name below it.
    let (root, mappings): (PathBuf, Vec<(String, String)>) = if into_dir {
        let m = remotes
            .iter()
            .map(|r| {
                let name = Path::new(r.path.trim_end_matches('/'))
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (
                    r.path.clone(),
                    if r.path.ends_with('/') {
                        String::new()
                    } else {
                        name
                    },
                )
            })
            .collect();
        (target_path.to_path_buf(), m)
    } else {
        let name = target_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Failure::new(exit::USAGE, format!("{target}: not a file name")))?;
        let parent = target_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        (parent, vec![(first.path.clone(), name)])
    };
    std::fs::create_dir_all(&root)
        .map_err(|e| Failure::new(exit::LOCAL, format!("{}: {e}", root.display())))?;
    let mut client = open(o, first)?;
    let file_mappings = mappings
        .iter()
        .map(|(src, dst)| Mapping {
            source: src.clone(),
            target: format!("/{dst}"),
        })
        .collect();
    let m = client
        .create_manifest(&CreateManifest { file_mappings })
        .map_err(refused)?;
    let manifest_id = m.manifest_id;
    let deadline = Instant::now() + Duration::from_secs(3600);
    let m = loop {
        let m = client
            .get_manifest(&GetManifest {
                manifest_id: manifest_id.clone(),
            })
            .map_err(refused)?;
        match &m.status {
            ManifestStatus::Complete => break m,
            ManifestStatus::Error => {
                let why = m.error_message.as_deref().unwrap_or("manifest failed");
                return Err(Failure::new(
                    exit::REFUSED,
                    format!("the server cannot read the sources: {why}"),
                ));
            }
            _ if Instant::now() > deadline => {
                return Err(Failure::new(
                    exit::CONNECT,
                    "the server took too long to list the sources",
                ))
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    if !o.recursive {
        let files = client
            .get_manifest_files(&GetManifestFiles {
                manifest_id: manifest_id.clone(),
            })
            .map_err(refused)?;
        let requested: Vec<&str> = remotes.iter().map(|r| r.path.as_str()).collect();
        if let Some(f) = files.file_mappings.iter().find(|f| {
            f.is_empty_dir
                || !requested
                    .iter()
                    .any(|r| f.src_path.ends_with(r.trim_start_matches('/')))
        }) {
            let _ = client.delete_manifest(&DeleteManifest {
                manifest_id: manifest_id.clone(),
            });
            return Err(Failure::new(
                exit::USAGE,
                format!("a source is a directory (use -r): {:?}", f.src_path),
            ));
        }
    }
    receive_manifest(
        o,
        &mut client,
        &manifest_id,
        &m,
        &root,
        progress,
        stop,
        true,
    )
}

/// Downloads manifest `manifest_id` (described by `m`) into `root`; deletes the manifest
/// afterwards when `owned` (made for this copy).
#[allow(clippy::too_many_arguments)]
fn receive_manifest(
    o: &Options,
    client: &mut ApiClient,
    manifest_id: &str,
    m: &Manifest,
    root: &Path,
    progress: &mut Progress,
    stop: &Arc<AtomicBool>,
    owned: bool,
) -> Result<(), Failure> {
    // Complete here (a shared token names a complete manifest; a pull waited for it).
    let files_total = m.total_files.unwrap_or(0);
    let engine = local_engine()?;
    let transfer_id = new_id();
    let session_id = new_session_id();
    // The server sends as soon as it is asked, so the keys (and their cipher) must be ready
    // first: use the fastest cipher here unless the server's floor is above it.
    let floor = client
        .get_server_info(&GetServerInfo {})
        .map(|i| i.min_cipher.as_str().to_owned())
        .unwrap_or_default();
    let cipher = if rank(Cipher::preferred().name()) >= rank(&floor) {
        Cipher::preferred()
    } else {
        Cipher::Aes256Gcm
    };
    let keys = client_keys(client, &transfer_id, session_id, cipher)
        .map_err(|e| Failure::new(exit::CONNECT, format!("cannot derive the data keys: {e}")))?;
    let t = engine
        .handle()
        .receive(keys, root)
        .map_err(|e| Failure::new(exit::LOCAL, format!("engine: {e}")))?;
    progress.start();
    progress.event(
        json!({"event": "start", "direction": "pull", "transferId": transfer_id,
        "totalBytes": m.total_size, "totalFiles": files_total}),
    );
    let port = engine.local_addr().port();
    client
        .start_download(&StartDownload {
            manifest_id: manifest_id.to_owned(),
            transfer_id: transfer_id.clone(),
            session_id: session_id.0,
            ciphers: None,
            cipher: Some(cipher.name().to_owned()),
            receiver_port: port,
            send_rate_max: o.limit_kbps,
            rate_policy: o.policy.map(|p| p.as_str().to_owned()),
        })
        .map_err(refused)?;
    verbose(
        o,
        &format!("transfer {transfer_id}: receiving into {}", root.display()),
    );
    let outcome = watch(&t, progress, stop, |st| {
        client.echo(&Echo::default())?;
        Ok(snapshot(st, st.files_done, files_total))
    });
    let result = finish(outcome, &t, progress, "received");
    if owned {
        let _ = client.delete_manifest(&DeleteManifest {
            manifest_id: manifest_id.to_owned(),
        });
    }
    engine.shutdown();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{parse, Parsed};

    fn plan(args: &[&str]) -> Vec<(PathBuf, String)> {
        let Ok(Parsed::Copy(o)) = parse(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        else {
            panic!("parse {args:?}");
        };
        let Location::Remote(r) = &o.target else {
            panic!()
        };
        push_plan(&o, &r.path).unwrap_or_else(|f| panic!("{}", f.message))
    }

    #[test]
    fn targets_follow_scp_and_rsync() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("my_file");
        std::fs::write(&f, b"x").unwrap();
        let dir = d.path().join("tree");
        std::fs::create_dir(&dir).unwrap();
        let fs = f.to_str().unwrap();
        let ds = dir.to_str().unwrap();
        assert_eq!(plan(&[fs, "h:/target/my_file"])[0].1, "target/my_file");
        assert_eq!(plan(&[fs, "h:/target/"])[0].1, "target/my_file");
        assert_eq!(plan(&[fs, "h:"])[0].1, "my_file");
        assert_eq!(
            plan(&[fs, fs, "h:/t"])
                .iter()
                .map(|p| p.1.as_str())
                .collect::<Vec<_>>(),
            ["t/my_file", "t/my_file"]
        );
        assert_eq!(plan(&["-r", ds, "h:/t"])[0].1, "t/tree");
        let with_slash = format!("{ds}/");
        assert_eq!(plan(&["-r", &with_slash, "h:/t"])[0].1, "t");
    }

    #[test]
    fn exit_codes_come_from_the_engine_reason() {
        assert_eq!(
            failure_exit_code(Some(FailureReason::TimedOut)),
            exit::CONNECT
        );
        assert_eq!(
            failure_exit_code(Some(FailureReason::Shutdown)),
            exit::CONNECT
        );
        for r in [
            FailureReason::NoSpace,
            FailureReason::FilesFailed,
            FailureReason::IntegrityMismatch,
            FailureReason::ProtocolViolation,
        ] {
            assert_eq!(failure_exit_code(Some(r)), exit::COMMAND_FAILED, "{r:?}");
        }
        assert_eq!(failure_exit_code(None), exit::COMMAND_FAILED);
    }
}
