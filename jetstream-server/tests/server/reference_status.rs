//! `docs/reference-status.md`: every command, flag and structure field that the reference
//! (`shared/spec/jetstream-reference.md` §2-§4) names, with its status here. The reference's
//! lists are copied below (the reference is not part of this repository); what this server
//! has is read from the code itself: commands from `jetstream_api::COMMANDS`, flags from the
//! binaries' own `--help`, structure fields from the samples that the result types round-trip
//! exactly (`jetstream-api/src/types/samples`, printed by this server). A reference item that
//! is missing here must carry a reason below, or the test fails; the page is rewritten with
//! `UPDATE_DOCS=1` and the test fails when it is stale.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use jetstream_api::{Mode, COMMANDS};
use serde_json::Value;

/// Reference §3.2-§3.4, by wire name (an `…Async` name is the asynchronous form), with why it
/// is not here when it is not ("" when it is).
const REFERENCE_COMMANDS: &[(&str, &str)] = &[
    // §3.2 ServerInterface.
    ("auth", ""),
    ("authAsync", ""),
    ("authToken", ""),
    ("superuser", ""),
    ("getServerInfo", ""),
    ("echo", ""),
    ("sleep", ""),
    ("terminate", ""),
    ("getRequestStatus", ""),
    ("getRequestResult", ""),
    ("getEventLog", ""),
    ("garbageCollect", ""),
    ("updateGarbageCollectSettings", ""),
    ("updateBandwidthLimits", ""),
    ("getSandboxMappings", ""),
    ("setSandboxMapping", ""),
    ("deleteSandboxMapping", ""),
    ("lsAsync", ""),
    ("lsRootsAsync", ""),
    ("mkdirAsync", ""),
    ("mvAsync", ""),
    ("rmAsync", ""),
    ("duAsync", ""),
    ("sendDiscoverPacketAsync", ""),
    ("recvDiscoverPacketAsync", ""),
    ("setLicenseKeyAsync", ""),
    ("getThirdPartyLicenses", ""),
    ("createAPIToken", ""),
    ("getAPIToken", ""),
    ("getAPITokens", ""),
    ("deleteAPIToken", ""),
    // §3.3 SendInterface.
    ("send.createDestination", ""),
    ("send.getDestination", ""),
    ("send.getDestinations", ""),
    ("send.deleteDestination", ""),
    ("send.getConnection", ""),
    ("send.getConnections", ""),
    ("send.createManifest", ""),
    ("send.getManifest", ""),
    ("send.getManifests", ""),
    ("send.waitForManifest", ""),
    ("send.getManifestFiles", ""),
    ("send.deleteManifest", ""),
    ("send.createTransfer", ""),
    ("send.getTransfer", ""),
    ("send.getTransfers", ""),
    ("send.waitForTransfer", ""),
    ("send.deleteTransfer", ""),
    ("send.failTransfer", ""),
    ("send.setSendRateAsync", ""),
    // The reference: "suspend / resume / cancel of a transfer … names not documented publicly";
    // these are the names chosen here (docs/server.md).
    ("send.suspendTransfer", ""),
    ("send.resumeTransfer", ""),
    ("send.cancelTransfer", ""),
    ("send.createSharedToken", ""),
    ("send.getSharedToken", ""),
    ("send.getSharedTokens", ""),
    ("send.deleteSharedToken", ""),
    ("send.updateObjectUserData", ""),
    ("send.deleteObjectUserData", ""),
    // §3.4 RecvInterface.
    ("recv.addAuthorizedClientAsync", ""),
    ("recv.removeAuthorizedClientAsync", ""),
    ("recv.allowOnlyAuthorizedClientsAsync", ""),
    ("recv.getSourcesAsync", ""),
    ("recv.getTransfersAsync", ""),
];

/// Reference §2: `jetstream server` options, then (after the marker) `jetstream relay_server`.
const REFERENCE_SERVER_FLAGS: &[(&str, &str)] = &[
    ("--api-port", ""),
    ("--api-host", ""),
    ("--api-allow-remote-control", ""),
    ("--recv-port", ""),
    ("--recv-relay-host", ""),
    ("--recv-relay-port", ""),
    (
        "--send-relay-host",
        "the reference marks it unverified (its source page was cut off); not built: a sender \
         reaches a receiver behind a relay through the relay's public address",
    ),
    ("--send-relay-port", "as --send-relay-host"),
    ("--external-address", ""),
    ("--persistent-state-dir", ""),
    ("--persistent-destinations", ""),
    ("--persistent-transfers", ""),
    ("--sandbox-dir", ""),
    ("--superuser", ""),
    ("--supergroup", ""),
    ("--trigger-dir", ""),
    ("--trigger-log", ""),
    ("--trigger-on-api", ""),
    ("--log", ""),
    ("--disable-telemetry", ""),
    ("--license-password", ""),
    ("--api-disable-shared-tokens", ""),
    ("--api-disable-api-tokens", ""),
    ("--max-cloud-cache-size", ""),
];

const REFERENCE_RELAY_FLAGS: &[(&str, &str)] = &[("--control-port", "")];

/// Reference §4: each structure, the sample that shows it, and its documented fields (a
/// nested structure's fields as `outer.inner`).
const REFERENCE_STRUCTURES: &[(&str, &str, &[&str])] = &[
    (
        "4.1 Server Information",
        "server_info_superuser",
        &[
            "allowRemoteControl",
            "apiControlPort",
            "APITokensAvailable",
            "apiVersion",
            "authRequired",
            "bandwidthLimits",
            "certificateValidation",
            "configuration",
            "encryptionAvailable",
            "eventLogAvailable",
            "hostName",
            "license.errorMessage",
            "license.expiry",
            "license.valid",
            "minCipher",
            "multiplexAvailable",
            "publicKey",
            "receiver",
            "revision",
            "serverExternalAddress",
            "serverId",
            "serverName",
            "serverPlatform",
            "serverTime",
            "serverUid",
            "sharedTokensAvailable",
            "user",
            "version",
            "receiver.authRequired",
            "receiver.encryptionEnabled",
            "receiver.onlyAuthorizedClientsAllowed",
            "receiver.receiverIP",
            "receiver.receiverPort",
            "receiver.relayIP",
            "receiver.relayPort",
            "receiver.socketRecvBufferSize",
            "receiver.socketSendBufferSize",
            "bandwidthLimits.borrowIncoming",
            "bandwidthLimits.borrowOutgoing",
            "bandwidthLimits.incomingLimitActive",
            "bandwidthLimits.incomingMaxConnections",
            "bandwidthLimits.incomingRateLimit",
            "bandwidthLimits.outgoingLimitActive",
            "bandwidthLimits.outgoingRateLimit",
            "configuration.cloudFileCache.highWatermark",
            "configuration.cloudFileCache.maximumSize",
            "configuration.garbageCollect.intervalSeconds",
            "configuration.garbageCollect.timeLimitSeconds",
            "configuration.persistentStateDir",
            "configuration.triggersAvailable",
            "user.authed",
            "user.permissions",
            "user.sandboxed",
            "user.superuser",
            "user.token",
            "user.tokenSession",
            "user.userName",
        ],
    ),
    (
        "4.2 Destination",
        "destination_get",
        &[
            "connectionId",
            "destinationAddress",
            "destinationId",
            "destinationIP",
            "destinationPort",
            "destinationPublicKey",
            "encryptedConnectionState",
            "encryptionEnabled",
            "lastDestinationServerId",
            "lastDestinationServerUid",
            "lastError",
            "lastErrorMessage",
            "lastRecvTime",
            "lastSendTime",
            "numTransfersQueued",
            "owner",
            "ownerToken",
            "ownerTokenSession",
            "permittedDestinationPublicKey",
        ],
    ),
    (
        "4.3 Manifest",
        "manifest",
        &[
            "errorMessage",
            "manifestId",
            "owner",
            "ownerToken",
            "ownerTokenSession",
            "processing",
            "status",
            "totalFiles",
            "totalSize",
            "userData",
        ],
    ),
    (
        "4.3 Manifest Files",
        "manifest_files",
        &[
            "manifestId",
            "fileMappings",
            "fileMappings.srcPath",
            "fileMappings.destPath",
            "fileMappings.fileSize",
            "fileMappings.isEmptyDir",
            "fileMappings.executable",
            "fileMappings.modificationTime",
        ],
    ),
    (
        "4.4 Connection",
        "connection",
        &[
            "connectionId",
            "destinationIP",
            "destinationPort",
            "destinationPublicKey",
            "encryptedConnectionState",
            "encryptionEnabled",
            "lastDestinationServerId",
            "lastDestinationServerUid",
            "lastError",
            "lastErrorMessage",
            "lastRecvTime",
            "lastSendTime",
            "numTransfersQueued",
            "rateControllerActive",
            "rateControlMethod",
            "relayIP",
            "relayPort",
        ],
    ),
    (
        "4.5 Transfer",
        "transfer",
        &[
            "blocksAcked",
            "blockSize",
            "blocksRetransmitted",
            "blocksSent",
            "bytesRecv",
            "bytesSent",
            "checkpointFrequencySeconds",
            "destinationId",
            "destinationPath",
            "endTime",
            "errorMessage",
            "manifestId",
            "owner",
            "ownerToken",
            "ownerTokenSession",
            "packetsRecv",
            "packetsSent",
            "priority",
            "processing",
            "queueTime",
            "requestTime",
            "snapshotTime",
            "startTime",
            "status",
            "totalBlocks",
            "totalBytes",
            "transferId",
        ],
    ),
    (
        "4.6 Receive Transfer",
        "receive_transfers",
        &[
            "destinationPath",
            "lastErrorTime",
            "lastRecvTime",
            "lastSendTime",
            "sourceIP",
            "sourcePort",
            "status",
            "totalSize",
            "transferId",
        ],
    ),
    (
        "4.7 Source",
        "sources",
        &[
            "activeTransferCount",
            "aveRecvRate",
            "aveRecvRateWindow",
            "completeTransferCount",
            "destinationPublicKey",
            "encryptedConnectionState",
            "encryptionEnabled",
            "errorTransferCount",
            "inactiveTransferCount",
            "sourceIP",
            "sourcePort",
        ],
    ),
    (
        "4.8 Token (shared)",
        "shared_token",
        &[
            "creationTime",
            "description",
            "expiryTime",
            "owner",
            "ownerToken",
            "ownerTokenSession",
            "passwordRequired",
            "permissions",
            "token",
            "userData",
            "downloadCount",
            "downloadLimit",
            "manifestId",
        ],
    ),
    (
        "4.8 Token (API)",
        "api_token",
        &[
            "creationTime",
            "description",
            "expiryTime",
            "owner",
            "ownerToken",
            "ownerTokenSession",
            "passwordRequired",
            "permissions",
            "token",
            "userData",
            "path",
        ],
    ),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether the typed command list has the reference's `wire` name, in its form.
fn command_status(wire: &str) -> Option<&'static jetstream_api::Meta> {
    let (base, asynchronous) = match wire.strip_suffix("Async") {
        Some(b) => (b, true),
        None => (wire, false),
    };
    COMMANDS
        .iter()
        .find(|m| m.name == base && (asynchronous || m.mode != Mode::AsyncOnly))
}

/// The `--flags` a binary's usage line names.
fn flags_of(args: &[&str]) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_jetstream"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let usage = text.lines().next().unwrap_or_default();
    usage
        .split(|c: char| c == '[' || c == ']' || c.is_whitespace())
        .filter(|w| w.starts_with("--"))
        .map(str::to_owned)
        .collect()
}

/// Every field path in `v` (`a`, `a.b`; an array's items as the array's own path).
fn field_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, inner) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(path.clone());
                field_paths(inner, &path, out);
            }
        }
        Value::Array(items) => {
            for i in items {
                field_paths(i, prefix, out);
            }
        }
        _ => {}
    }
}

fn sample(name: &str) -> Option<Value> {
    let p = repo().join(format!("jetstream-api/src/types/samples/{name}.json"));
    std::fs::read_to_string(p)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap())
}

fn status_rows(
    page: &mut String,
    items: &[(&str, &str)],
    have: impl Fn(&str) -> Option<String>,
    missing: &mut Vec<String>,
) -> (usize, usize) {
    let mut done = 0;
    for (name, why_not) in items {
        match have(name) {
            Some(note) => {
                done += 1;
                writeln!(page, "| `{name}` | yes | {note} |").unwrap();
            }
            None => {
                if why_not.is_empty() {
                    missing.push((*name).to_owned());
                }
                writeln!(page, "| `{name}` | **no** | {why_not} |").unwrap();
            }
        }
    }
    (done, items.len())
}

#[test]
fn reference_status_page_is_current() {
    let mut missing = Vec::new();
    let mut page = String::from(
        "# What the reference names, and its status here\n\n\
         Generated by `jetstream-server/tests/server/reference_status.rs` from the code: \
         commands from the typed command list (`jetstream_api::COMMANDS`), flags from the \
         binaries' `--help`, structure fields from the samples the result types round-trip \
         (printed by this server). The reference's own lists are copied into that test. \
         Rewrite with `UPDATE_DOCS=1 cargo test -p jetstream-server --test server \
         reference_status`; the test fails when this page is stale or when a reference item \
         is missing without a reason.\n\n\
         Commands are described in [api-commands.md](api-commands.md); choices the reference \
         leaves open are in [server.md](server.md).\n\n",
    );
    page.push_str(
        "## Commands (reference §3.2-§3.4)\n\n| command | here | note |\n|---|---|---|\n",
    );
    let (c_done, c_all) = status_rows(
        &mut page,
        REFERENCE_COMMANDS,
        |n| command_status(n).map(|m| m.summary.replace('|', "\\|")),
        &mut missing,
    );
    let extra: Vec<&str> = COMMANDS
        .iter()
        .filter(|m| {
            !REFERENCE_COMMANDS
                .iter()
                .any(|(r, _)| r.strip_suffix("Async").unwrap_or(r) == m.name)
        })
        .map(|m| m.name)
        .collect();
    writeln!(
        page,
        "\nCommands this server adds (the protocol between servers and `jscp`, and the \
         reference's gaps): {}.\n",
        extra
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
    .unwrap();

    let server_flags = flags_of(&["server"]);
    let relay_flags = flags_of(&["relay_server"]);
    page.push_str("## Flags (reference §2)\n\n| flag | here | note |\n|---|---|---|\n");
    let (f_done, f_all) = status_rows(
        &mut page,
        REFERENCE_SERVER_FLAGS,
        |n| {
            server_flags
                .contains(n)
                .then(|| "`jetstream server`".to_owned())
        },
        &mut missing,
    );
    let (r_done, r_all) = status_rows(
        &mut page,
        REFERENCE_RELAY_FLAGS,
        |n| {
            relay_flags
                .contains(n)
                .then(|| "`jetstream relay_server`".to_owned())
        },
        &mut missing,
    );

    page.push_str("\n## Structures (reference §4)\n\n");
    let (mut s_done, mut s_all) = (0, 0);
    for (title, sample_name, fields) in REFERENCE_STRUCTURES {
        let Some(v) = sample(sample_name) else {
            missing.push(format!("{title} (no sample {sample_name}.json)"));
            writeln!(page, "### {title}\n\n**no sample**: not built\n").unwrap();
            continue;
        };
        let mut have = BTreeSet::new();
        field_paths(&v, "", &mut have);
        let absent: Vec<&str> = fields
            .iter()
            .copied()
            .filter(|f| !have.contains(*f))
            .collect();
        s_all += fields.len();
        s_done += fields.len() - absent.len();
        for f in &absent {
            missing.push(format!("{title}: {f}"));
        }
        let documented: BTreeSet<&str> = fields.iter().copied().collect();
        let added: Vec<String> = have
            .iter()
            .filter(|h| {
                !documented.contains(h.as_str())
                    && !documented.iter().any(|d| h.starts_with(&format!("{d}.")))
            })
            .map(|h| format!("`{h}`"))
            .collect();
        writeln!(
            page,
            "### {title}\n\nAll {} documented fields: {}.{}\n",
            fields.len(),
            if absent.is_empty() {
                "present".to_owned()
            } else {
                format!("**missing** {}", absent.join(", "))
            },
            if added.is_empty() {
                String::new()
            } else {
                format!(" Added here: {}.", added.join(", "))
            }
        )
        .unwrap();
    }
    let summary = format!(
        "## Summary\n\n- commands: {c_done} of {c_all}\n- flags: {} of {}\n- structure fields: \
         {s_done} of {s_all}\n\n",
        f_done + r_done,
        f_all + r_all
    );
    let at = page.find("## Commands").unwrap();
    page.insert_str(at, &summary);

    assert!(
        missing.is_empty(),
        "reference items missing without a reason: {missing:?}"
    );
    let path = repo().join("docs/reference-status.md");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &page).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == page,
        "docs/reference-status.md is stale: rewrite it with UPDATE_DOCS=1"
    );
}
