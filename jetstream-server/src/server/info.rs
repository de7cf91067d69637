//! `getServerInfo`: the Server Information structure of the seed (003) with every nested
//! structure; `configuration` only for superusers.

use serde_json::{json, Value};

use super::api::Ctx;
use super::objects::{now_us, PERMISSIONS};
use super::{API_VERSION, REVISION};

/// The structure for this session.
pub fn server_info(ctx: &Ctx<'_>) -> Value {
    let s = ctx.server;
    let a = s.live();
    let engine = s.send_engine().info().ok();
    let session = &*ctx.session;
    let authed = session.user.is_some();
    let sandboxed = if authed {
        json!(s.sandbox_of(session).map(|p| p.is_some()).unwrap_or(true))
    } else {
        Value::Null
    };
    let permissions: Vec<String> = match &session.token {
        Some(t) => s
            .objects
            .lock()
            .tokens
            .values()
            .find(|r| &r.token == t)
            .map(|r| r.permissions.clone())
            .unwrap_or_default(),
        None if authed => PERMISSIONS.iter().map(|p| (*p).to_owned()).collect(),
        None => Vec::new(),
    };
    let mut v = json!({
        "allowRemoteControl": a.api_allow_remote_control,
        "apiControlPort": s.api_addr.port(),
        "APITokensAvailable": !a.api_disable_api_tokens,
        "apiVersion": API_VERSION,
        "authRequired": true,
        "bandwidthLimits": s.bandwidth_limits().view(),
        "certificateValidation": s.identity.days_to_expiry(std::time::SystemTime::now()),
        "encryptionAvailable": true,
        "eventLogAvailable": true,
        "hostName": s.host_name,
        "license": { "errorMessage": null, "expiry": null, "valid": true },
        "minCipher": a.min_cipher,
        "multiplexAvailable": true,
        "publicKey": s.identity.public_key(),
        "receiver": {
            "authRequired": true,
            "encryptionEnabled": true,
            "onlyAuthorizedClientsAllowed": s.trust.only_authorized(),
            "receiverIP": a.recv_host.to_string(),
            "receiverPort": s.recv_addrs.first().map(|r| r.port()),
            "receiverPorts": s.recv_addrs.iter().map(|r| r.port()).collect::<Vec<_>>(),
            "relayIP": s.relay.relay.map(|r| r.ip().to_string()),
            "relayPort": *s.relay.data_port.lock(),
            "socketRecvBufferSize": engine.as_ref().map(|e| e.recv_buffer),
            "socketSendBufferSize": engine.as_ref().map(|e| e.send_buffer),
        },
        "revision": REVISION,
        "serverExternalAddress": a.external_address,
        "serverId": s.server_id,
        "serverName": s.server_name,
        "serverPlatform": "linux",
        "serverTime": now_us(),
        "serverUid": s.server_uid,
        "sharedTokensAvailable": !a.api_disable_shared_tokens,
        "user": {
            "authed": authed,
            "permissions": permissions,
            "sandboxed": sandboxed,
            "superuser": session.superuser,
            "token": session.token,
            "tokenSession": session.token_session,
            "userName": if session.token.is_none() { session.user.as_ref().map(|u| u.name.clone()) } else { None },
        },
        "version": env!("CARGO_PKG_VERSION"),
    });
    if session.superuser {
        v["configuration"] = json!({
            "cloudFileCache": { "highWatermark": 0, "maximumSize": 0 },
            "garbageCollect": super::gc::view(s.gc_settings()),
            "persistentStateDir": s.state.path(),
            "triggersAvailable": a.trigger_dir.is_dir(),
            "triggerDir": a.trigger_dir,
        });
    }
    v
}
