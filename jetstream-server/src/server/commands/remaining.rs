//! Issue 18's remaining commands: `send.getConnection(s)` (connections, reference §4.4),
//! `send.updateObjectUserData` / `send.deleteObjectUserData` (user data on destinations,
//! manifests, transfers and tokens), `send.waitForManifest`, `getThirdPartyLicenses` and
//! `setLicenseKey(Async)`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jetstream_api::params::{
    DeleteObjectUserData, GetConnection, ObjectType, UpdateObjectUserData, WaitForManifest,
    WaitForTransfer,
};
use jetstream_api::types as api;
use jetstream_api::ErrorKind;
use serde_json::Value;

use super::{find, find_mut, ok, visible, Reply};
use crate::server::api::{ApiError, Ctx};
use crate::server::objects::{api_time, to_json, DestinationRec, TxStatus};
use crate::server::secrets::shown_token;
use crate::server::Objects;

// ---------------------------------------------------------------------------------------------
// Connections

/// The connections of the destinations the session may see, by connection id.
///
/// A connection is the receiving server as the destinations name it: the destination's
/// `connectionId`, `host:port` with the host as given (`destinationAddress`) and the UDP data
/// port. Destinations naming the same receiver share it; the id is stable for as long as such a
/// destination exists, across restarts (it is made from what the destination stores).
fn connections(ctx: &Ctx<'_>, objs: &Objects) -> BTreeMap<String, api::Connection> {
    let mut groups: BTreeMap<String, Vec<&DestinationRec>> = BTreeMap::new();
    for d in objs.destinations.values() {
        if visible(ctx, &d.owner) {
            groups.entry(d.connection_id()).or_default().push(d);
        }
    }
    groups
        .into_iter()
        .map(|(id, ds)| {
            let c = connection(objs, id.clone(), &ds);
            (id, c)
        })
        .collect()
}

/// The last time the destination was in contact or, before any, made.
fn last_active(d: &DestinationRec) -> i64 {
    d.last_recv_time
        .max(d.last_send_time)
        .unwrap_or(d.creation_time)
}

fn connection(objs: &Objects, id: String, ds: &[&DestinationRec]) -> api::Connection {
    // `ds` is never empty: each group has the destination that made it.
    let recent = ds
        .iter()
        .copied()
        .max_by_key(|d| last_active(d))
        .unwrap_or(ds[0]);
    let rank = |s: &str| match s {
        "connected" => 2,
        "negotiating" => 1,
        _ => 0,
    };
    let state = ds
        .iter()
        .map(|d| d.state)
        .max_by_key(|s| rank(s))
        .unwrap_or("disconnected");
    let running = |d: &DestinationRec| {
        objs.transfers
            .values()
            .any(|t| t.destination_id == d.id && t.status == TxStatus::Sending)
    };
    let adapts = |d: &DestinationRec| {
        d.rate_mode() != jetstream_core::RateMode::Fixed || d.send_rate_max.is_none()
    };
    api::Connection {
        connection_id: id,
        destination_address: recent.address.clone(),
        destination_ids: ds.iter().map(|d| d.id.clone()).collect(),
        destination_ip: ds
            .iter()
            .filter(|d| d.ip.is_some())
            .max_by_key(|d| last_active(d))
            .and_then(|d| d.ip.as_deref()?.parse().ok()),
        destination_port: recent.data_port(),
        destination_public_key: recent
            .public_key
            .clone()
            .or_else(|| ds.iter().find_map(|d| d.public_key.clone())),
        encrypted_connection_state: api::ConnectionState::from_wire(state),
        encryption_enabled: true,
        last_destination_server_id: recent.last_server_id.clone(),
        last_destination_server_uid: recent.last_server_uid.clone(),
        last_error: recent.last_error.clone(),
        last_error_message: recent.last_error_message.clone(),
        last_recv_time: ds
            .iter()
            .filter_map(|d| d.last_recv_time)
            .max()
            .map(api_time),
        last_send_time: ds
            .iter()
            .filter_map(|d| d.last_send_time)
            .max()
            .map(api_time),
        num_transfers_queued: ds.iter().map(|d| objs.queued(&d.id) as u64).sum(),
        rate_controller_active: ds.iter().any(|d| running(d) && adapts(d)),
        rate_control_method: api::RatePolicy::from_wire(recent.rate_mode().as_str()),
        // This server sends directly: a relay serves only the receiving side.
        relay_ip: None,
        relay_port: None,
    }
}

/// `send.getConnection`.
pub(super) fn get_connection(ctx: &Ctx<'_>, p: &GetConnection) -> Reply {
    let objs = ctx.server.objects.lock();
    let id = p.connection_id.trim();
    connections(ctx, &objs)
        .remove(id)
        .map(|c| ("Connection.".to_owned(), to_json(&c)))
        .ok_or_else(|| ApiError::not_found(format!("no connection {id}")))
}

/// `send.getConnections`.
pub(super) fn get_connections(ctx: &Ctx<'_>) -> Reply {
    let objs = ctx.server.objects.lock();
    let list: Vec<api::Connection> = connections(ctx, &objs).into_values().collect();
    ok("Connections.", to_json(&list))
}

// ---------------------------------------------------------------------------------------------
// User data

/// Most bytes of JSON one object's user data may take.
pub(super) const MAX_USER_DATA: usize = 64 * 1024;

/// Applies `change` to the user data of the object the session names, if it may see it
/// (someone else's object is reported as not found), keeps it at most [`MAX_USER_DATA`]
/// bytes, persists it, and answers the user data now.
fn change_user_data(
    ctx: &Ctx<'_>,
    kind: ObjectType,
    id: &str,
    change: impl FnOnce(&mut BTreeMap<String, Value>),
) -> Reply {
    let mut objs = ctx.server.objects.lock();
    let data = match kind {
        ObjectType::Destination => &mut find_mut(ctx, &mut objs.destinations, id)?.user_data,
        ObjectType::Manifest => &mut find_mut(ctx, &mut objs.manifests, id)?.user_data,
        ObjectType::Transfer => &mut find_mut(ctx, &mut objs.transfers, id)?.user_data,
        ObjectType::SharedToken | ObjectType::ApiToken => {
            let shared = kind == ObjectType::SharedToken;
            let what = if shared { "shared token" } else { "API token" };
            &mut objs
                .tokens
                .get_mut(id)
                .filter(|t| t.shared.is_some() == shared && visible(ctx, &t.owner))
                .ok_or_else(|| ApiError::not_found(format!("no {what} {}", shown_token(id))))?
                .user_data
        }
    };
    let mut updated = data.clone();
    change(&mut updated);
    let size = serde_json::to_vec(&updated).map_or(usize::MAX, |v| v.len());
    if size > MAX_USER_DATA {
        return Err(ApiError::of(
            ErrorKind::BadParameters,
            format!(
                "userData of {} {}: would be {size} bytes of JSON; at most {MAX_USER_DATA}",
                kind.as_str(),
                shown_id(kind, id)
            ),
        ));
    }
    *data = updated;
    let view = api::ObjectUserData {
        object_type: kind.as_str().to_owned(),
        object_id: shown_id(kind, id),
        user_data: Value::Object(data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
    };
    drop(objs);
    ctx.server.save();
    ok("User data updated.", to_json(&view))
}

/// An object's id as answers and messages show it: a token only by its first characters.
fn shown_id(kind: ObjectType, id: &str) -> String {
    match kind {
        ObjectType::SharedToken | ObjectType::ApiToken => shown_token(id),
        _ => id.to_owned(),
    }
}

/// `send.updateObjectUserData`: the given keys are set (replacing their values), the others
/// kept.
pub(super) fn update_user_data(ctx: &Ctx<'_>, p: UpdateObjectUserData) -> Reply {
    change_user_data(ctx, p.object_type, &p.object_id, move |data| {
        data.extend(p.user_data);
    })
}

/// `send.deleteObjectUserData`: the given keys are removed, or all without `keys`.
pub(super) fn delete_user_data(ctx: &Ctx<'_>, p: DeleteObjectUserData) -> Reply {
    change_user_data(ctx, p.object_type, &p.object_id, move |data| match p.keys {
        Some(keys) => {
            for k in keys {
                data.remove(&k);
            }
        }
        None => data.clear(),
    })
}

// ---------------------------------------------------------------------------------------------
// Waiting for a manifest

/// The longest `send.waitForManifest` waits.
pub(super) const MAX_MANIFEST_WAIT: Duration = Duration::from_secs(600);

/// `send.waitForManifest`: the manifest once it is `complete` or `error`, or as it is when
/// `timeoutMs` (default 60 s, at most [`MAX_MANIFEST_WAIT`]) runs out or the server stops.
///
/// It waits on this API connection's own thread, without holding the objects' lock (the
/// condition variable releases it), woken when a manifest is finished; other connections and
/// the transfers go on meanwhile.
pub(super) fn wait_for_manifest(ctx: &Ctx<'_>, p: &WaitForManifest) -> Reply {
    let wait = Duration::from_millis(p.timeout_ms.unwrap_or(60_000)).min(MAX_MANIFEST_WAIT);
    let deadline = Instant::now() + wait;
    let server = ctx.server;
    let mut objs = server.objects.lock();
    loop {
        let m = find(ctx, &objs.manifests, &p.manifest_id)?;
        let now = Instant::now();
        if m.status != "pending" || now >= deadline || server.is_stopping() {
            return ok("Manifest.", m.view());
        }
        // At most a second at a time, to notice the server stopping.
        let slice = deadline.min(now + Duration::from_secs(1));
        server.object_ended.wait_until(&mut objs, slice);
    }
}

/// `send.waitForTransfer`: the transfer once it has ended (`complete`, `cancelled` or
/// `error`; its `processing` is then false), or as it is when `timeoutMs` (default 60 s, at
/// most [`MAX_MANIFEST_WAIT`]) runs out or the server stops. A suspended transfer has not
/// ended: the wait runs out unless it is resumed and ends. Waits as
/// [`wait_for_manifest`] does.
pub(super) fn wait_for_transfer(ctx: &Ctx<'_>, p: &WaitForTransfer) -> Reply {
    let wait = Duration::from_millis(p.timeout_ms.unwrap_or(60_000)).min(MAX_MANIFEST_WAIT);
    let deadline = Instant::now() + wait;
    let server = ctx.server;
    let mut objs = server.objects.lock();
    loop {
        let t = find(ctx, &objs.transfers, &p.transfer_id)?;
        let now = Instant::now();
        if t.status.is_final() || now >= deadline || server.is_stopping() {
            return ok("Transfer.", t.view());
        }
        let slice = deadline.min(now + Duration::from_secs(1));
        server.object_ended.wait_until(&mut objs, slice);
    }
}

// ---------------------------------------------------------------------------------------------
// Licenses

/// `getThirdPartyLicenses`: the list the build made (see `jetstream-server/build.rs`).
pub(super) fn third_party_licenses() -> Reply {
    let list = api::ThirdPartyLicenses {
        license: env!("CARGO_PKG_LICENSE").to_owned(),
        crates: generated::list(),
    };
    ok("Third-party licenses.", to_json(&list))
}

/// `setLicenseKey` / `setLicenseKeyAsync`: this server is free software and needs no key. The
/// key is accepted so that scripts written for licensed servers keep working, and dropped at
/// once: never stored, logged or answered. The answer is the `license` block of
/// `getServerInfo`, unchanged.
pub(super) fn set_license_key() -> Reply {
    let license = crate::server::info::license();
    ok(
        concat!(
            "This server is free software (",
            env!("CARGO_PKG_LICENSE"),
            "): it needs no license key; the key was not stored."
        ),
        to_json(&license),
    )
}

/// The table `build.rs` writes.
mod generated {
    use jetstream_api::types::{LicenseText, ThirdPartyLicense};

    /// One crate: name, version, license, repository, (license file, index into `TEXTS`).
    struct ThirdParty {
        name: &'static str,
        version: &'static str,
        license: Option<&'static str>,
        repository: Option<&'static str>,
        files: &'static [(&'static str, usize)],
    }

    include!(concat!(env!("OUT_DIR"), "/third_party.rs"));

    /// The crates, as API structures.
    pub(super) fn list() -> Vec<ThirdPartyLicense> {
        CRATES
            .iter()
            .map(|c| ThirdPartyLicense {
                name: c.name.to_owned(),
                version: c.version.to_owned(),
                license: c.license.map(str::to_owned),
                repository: c.repository.map(str::to_owned),
                license_texts: c
                    .files
                    .iter()
                    .map(|&(file, n)| LicenseText {
                        file_name: file.to_owned(),
                        text: TEXTS.get(n).copied().unwrap_or_default().to_owned(),
                    })
                    .collect(),
            })
            .collect()
    }
}
