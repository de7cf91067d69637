//! Destinations (reference §4.2): `send.createDestination` (idempotent),
//! `send.getDestination(s)`, `send.deleteDestination`, and their triggers.

use jetstream_api::params::{CreateDestination, DeleteDestination, GetDestination};
use serde_json::Value;

use super::{find, ok, owner_of, visible, Reply};
use crate::server::api::{ApiError, Ctx};
use crate::server::objects::{new_id, now_us, Credentials, DestinationRec, TxStatus};

/// The `send.destination*` trigger arguments: the destination and the API client that acted,
/// each as `ip:port` (a host name that does not resolve at once is passed as given).
fn destination_trigger_args(ctx: &Ctx<'_>, d: &DestinationRec) -> (String, String) {
    use std::net::ToSocketAddrs;
    let port = d.data_port();
    let ip = d.address.parse::<std::net::IpAddr>().ok().or_else(|| {
        (d.address.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .map(|a| a.ip())
    });
    let destination = match ip {
        Some(ip) => std::net::SocketAddr::new(ip, port).to_string(),
        None => format!("{}:{port}", d.address),
    };
    (destination, ctx.session.peer.to_string())
}

/// `send.createDestination`.
pub(super) fn create(ctx: &mut Ctx<'_>, p: CreateDestination) -> Reply {
    let address = p.destination_address.trim().to_owned();
    if address.is_empty() || address.contains(char::is_whitespace) {
        return Err(ApiError::new(
            "parameter \"destinationAddress\" must be a host name or IP".into(),
        ));
    }
    let nonzero = |name: &str, v: Option<u16>| -> Result<Option<u16>, ApiError> {
        match v {
            Some(0) => Err(ApiError::new(format!(
                "parameter {name:?} must be a port number (1-65535)"
            ))),
            v => Ok(v),
        }
    };
    let port = nonzero("destinationPort", p.destination_port)?;
    // The documented server listens on one port number for its API (TCP) and its data (UDP):
    // `destinationPort` alone names both; `destinationApiPort` names the API port apart.
    let api_port = nonzero("destinationApiPort", p.destination_api_port)?
        .or(port)
        .unwrap_or(8886);
    let credentials = match (p.token, p.user_name) {
        (Some(token), _) => Some(Credentials::Token {
            token: token.expose().to_owned(),
            password: p
                .token_password
                .or(p.password)
                .map(|s| s.expose().to_owned()),
        }),
        (None, Some(user)) => Some(Credentials::Password {
            user,
            password: p
                .password
                .ok_or_else(|| ApiError::new("missing parameter \"password\"".into()))?
                .expose()
                .to_owned(),
        }),
        (None, None) => None,
    };
    let send_rate_max = p.send_rate_max.filter(|&r| r > 0);
    let rate_policy = match &p.rate_policy {
        None => None,
        Some(s) => Some(
            s.parse::<jetstream_core::RateMode>()
                .map_err(|e| ApiError::new(format!("parameter \"ratePolicy\": {e}")))?
                .as_str()
                .to_owned(),
        ),
    };
    let send_port = p.send_port.filter(|&v| v > 0);
    let pinned = p.permitted_destination_public_key;
    let owner = owner_of(ctx);
    let mut objs = ctx.server.objects.lock();
    // Idempotent: identical parameters give the existing destination.
    if let Some(d) = objs.destinations.values().find(|d| {
        d.owner == owner
            && d.address == address
            && d.port == port
            && d.api_port == api_port
            && d.credentials == credentials
            && d.send_rate_max == send_rate_max
            && d.rate_policy == rate_policy
            && d.send_port == send_port
            && (pinned.is_none() || d.public_key == pinned)
    }) {
        let v = d.view(objs.queued(&d.id));
        return ok("Destination exists.", v);
    }
    let rec = DestinationRec {
        id: new_id(),
        owner,
        address,
        api_port,
        port,
        credentials,
        send_rate_max,
        rate_policy,
        send_port,
        public_key: pinned,
        creation_time: now_us(),
        ip: None,
        learned_port: None,
        last_server_id: None,
        last_server_uid: None,
        last_error: None,
        last_error_message: None,
        last_send_time: None,
        last_recv_time: None,
        state: "disconnected",
        user_data: Default::default(),
    };
    let view = rec.view(0);
    crate::log!(
        "api: destination {} ({}:{}) created by {}",
        rec.id,
        rec.address,
        api_port,
        rec.owner.user
    );
    let (destination, sender) = destination_trigger_args(ctx, &rec);
    let destination_id = rec.id.clone();
    objs.destinations.insert(rec.id.clone(), rec);
    drop(objs);
    ctx.server.save();
    ctx.server.events.record("destinationCreated", view.clone());
    ctx.server
        .emit(crate::server::ServerEvent::DestinationCreated {
            destination_id,
            destination,
            sender,
        });
    ok("Destination created.", view)
}

/// `send.deleteDestination`.
pub(super) fn delete(ctx: &mut Ctx<'_>, p: &DeleteDestination) -> Reply {
    let id = p.destination_id.as_str();
    let mut objs = ctx.server.objects.lock();
    find(ctx, &objs.destinations, id)?;
    if objs
        .transfers
        .values()
        .any(|t| t.destination_id == id && !t.status.is_final() && t.status != TxStatus::Suspended)
    {
        return Err(ApiError::new(format!(
            "destination {id} has transfers queued or running: cancel them first"
        )));
    }
    let gone = objs.destinations.remove(id);
    drop(objs);
    ctx.server.drop_destination_engine(id);
    ctx.server.save();
    if let Some(d) = gone {
        ctx.server.events.record("destinationDeleted", d.view(0));
        let (destination, sender) = destination_trigger_args(ctx, &d);
        ctx.server
            .emit(crate::server::ServerEvent::DestinationDeleted {
                destination_id: d.id,
                destination,
                sender,
            });
    }
    ok("Destination deleted.", Value::Null)
}

/// `send.getDestination`.
pub(super) fn get(ctx: &Ctx<'_>, p: &GetDestination) -> Reply {
    let id = &p.destination_id;
    let objs = ctx.server.objects.lock();
    let d = find(ctx, &objs.destinations, id)?;
    let port = ctx.server.destination_send_port(id);
    ok("Destination.", d.view_with_port(objs.queued(id), port))
}

/// `send.getDestinations`.
pub(super) fn list(ctx: &Ctx<'_>) -> Reply {
    let objs = ctx.server.objects.lock();
    let list: Vec<Value> = objs
        .destinations
        .values()
        .filter(|d| visible(ctx, &d.owner))
        .map(|d| d.view(objs.queued(&d.id)))
        .collect();
    ok("Destinations.", Value::Array(list))
}
