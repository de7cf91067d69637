//! `getServerInfo`: the Server Information structure of the seed (003) with every nested
//! structure; `configuration` only for superusers.

use jetstream_api::types as api;
use jetstream_api::Permission;
use serde_json::Value;

use super::api::Ctx;
use super::objects::{api_time, now_us, to_json};
use super::{API_VERSION, REVISION};

/// The structure for this session.
pub fn server_info(ctx: &Ctx<'_>) -> Value {
    to_json(&server_info_api(ctx))
}

/// The structure for this session, typed.
pub fn server_info_api(ctx: &Ctx<'_>) -> api::ServerInfo {
    let s = ctx.server;
    let a = s.live();
    let engine = s.send_engine().info().ok();
    let session = &*ctx.session;
    let authed = session.user.is_some();
    let sandboxed = authed.then(|| {
        s.resources_of(session)
            .map(|r| r.is_sandboxed())
            .unwrap_or(true)
    });
    let permissions: Vec<Permission> = match &session.token {
        Some(t) => s
            .objects
            .lock()
            .tokens
            .values()
            .find(|r| &r.token == t)
            .map(|r| {
                r.permissions
                    .iter()
                    .filter_map(|p| Permission::from_name(p))
                    .collect()
            })
            .unwrap_or_default(),
        None if authed => Permission::ALL.to_vec(),
        None => Vec::new(),
    };
    let configuration = session.superuser.then(|| api::Configuration {
        cloud_file_cache: api::CloudFileCache {
            high_watermark: 0,
            maximum_size: 0,
        },
        garbage_collect: s.gc_settings().to_api(),
        persistent_state_dir: s.state.path().to_string_lossy().into_owned(),
        triggers_available: a.trigger_dir.is_dir(),
        trigger_dir: a.trigger_dir.to_string_lossy().into_owned(),
    });
    api::ServerInfo {
        allow_remote_control: a.api_allow_remote_control,
        api_control_port: s.api_addr.port(),
        api_tokens_available: !a.api_disable_api_tokens,
        api_version: API_VERSION,
        auth_required: true,
        bandwidth_limits: s.bandwidth_limits().to_api(),
        certificate_validation: s.identity.days_to_expiry(std::time::SystemTime::now()),
        configuration,
        encryption_available: true,
        event_log_available: true,
        host_name: s.host_name.clone(),
        license: api::License {
            error_message: None,
            expiry: None,
            valid: true,
        },
        min_cipher: api::Cipher::from_wire(&a.min_cipher),
        multiplex_available: true,
        public_key: s.identity.public_key().to_owned(),
        receiver: api::ReceiverInfo {
            auth_required: true,
            encryption_enabled: true,
            only_authorized_clients_allowed: s.trust.only_authorized(),
            receiver_ip: a.recv_host,
            receiver_port: s.recv_addrs.first().map(|r| r.port()),
            receiver_ports: s.recv_addrs.iter().map(|r| r.port()).collect(),
            relay_ip: s.relay.relay.map(|r| r.ip()),
            relay_port: *s.relay.data_port.lock(),
            socket_recv_buffer_size: engine.as_ref().map(|e| e.recv_buffer as u64),
            socket_send_buffer_size: engine.as_ref().map(|e| e.send_buffer as u64),
        },
        revision: REVISION,
        server_external_address: a.external_address.clone(),
        server_id: s.server_id.clone(),
        server_name: s.server_name.clone(),
        server_platform: api::Platform::Linux,
        server_time: api_time(now_us()),
        server_uid: s.server_uid.clone(),
        shared_tokens_available: !a.api_disable_shared_tokens,
        user: api::UserInfo {
            authed,
            permissions,
            sandboxed,
            superuser: session.superuser,
            token: session.token.clone().map(api::Token::from),
            token_session: session.token_session.clone(),
            user_name: if session.token.is_none() {
                session.user.as_ref().map(|u| u.name.clone())
            } else {
                None
            },
        },
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}
