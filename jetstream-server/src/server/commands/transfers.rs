//! Transfers (reference §4.5): `send.createTransfer`, `send.getTransfer(s)`, their control
//! (suspend, resume, cancel, fail), `send.deleteTransfer` and `send.setSendRate`.

use jetstream_api::params::{
    CreateTransfer, DeleteTransfer, GetTransfer, GetTransfers, ResumeTransfer, SetSendRate,
};
use serde_json::{json, Value};

use super::{find, find_mut, ok, owner_of, visible, Reply};
use crate::sandbox;
use crate::server::api::{ApiError, Ctx};
use crate::server::objects::{new_id, now_us, TransferRec, TxStatus};
use crate::server::transfers;

/// `send.createTransfer` (`checkpointFrequencySeconds` is accepted and ignored).
pub(super) fn create(ctx: &mut Ctx<'_>, p: CreateTransfer) -> Reply {
    let CreateTransfer {
        destination_id,
        manifest_id,
        destination_path,
        priority,
        checkpoint_frequency_seconds: _,
    } = p;
    let clean = sandbox::clean_relative(destination_path.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::new(format!("destinationPath: {e}")))?;
    let priority = priority.unwrap_or(100);
    let mut objs = ctx.server.objects.lock();
    find(ctx, &objs.destinations, &destination_id)?;
    let m = find(ctx, &objs.manifests, &manifest_id)?;
    if m.status != "complete" {
        return Err(ApiError::new(format!(
            "manifest {manifest_id} is {}{}: only a complete manifest can be sent",
            m.status,
            m.error_message
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        )));
    }
    let now = now_us();
    let rec = TransferRec {
        id: new_id(),
        owner: owner_of(ctx),
        destination_id,
        manifest_id,
        destination_path: format!("/{clean}"),
        priority,
        status: TxStatus::Pending,
        error_message: None,
        error_code: None,
        request_time: now,
        queue_time: now,
        start_time: None,
        end_time: None,
        failed_files: Vec::new(),
        done: Default::default(),
        live: Default::default(),
        total_bytes: m.total_size(),
        total_files: m.files.len() as u64,
        attempts: 0,
        user_data: Default::default(),
    };
    let view = rec.view();
    crate::log!("api: transfer {} queued by {}", rec.id, rec.owner.user);
    objs.transfers.insert(rec.id.clone(), rec);
    drop(objs);
    ctx.server.save();
    ctx.server.kick();
    ok("Transfer created.", view)
}

/// `send.suspendTransfer`, `send.cancelTransfer`, `send.failTransfer`: stops transfer `id`.
pub(super) fn control(ctx: &mut Ctx<'_>, id: &str, stop: transfers::Stop) -> Reply {
    {
        let objs = ctx.server.objects.lock();
        find(ctx, &objs.transfers, id)?;
    }
    let view = transfers::stop(ctx.server, id, stop)?;
    ok("Transfer updated.", view)
}

/// `send.resumeTransfer`.
pub(super) fn resume(ctx: &mut Ctx<'_>, p: &ResumeTransfer) -> Reply {
    let id = &p.transfer_id;
    let mut objs = ctx.server.objects.lock();
    let t = find_mut(ctx, &mut objs.transfers, id)?;
    match t.status {
        TxStatus::Suspended | TxStatus::Error | TxStatus::Cancelled => {
            t.status = TxStatus::Pending;
            t.error_message = None;
            t.end_time = None;
            t.failed_files.clear();
        }
        TxStatus::Pending | TxStatus::Sending => {}
        TxStatus::Complete => {
            return Err(ApiError::new(format!("transfer {id} is already complete")));
        }
    }
    let view = t.view();
    drop(objs);
    ctx.server.save();
    ctx.server.kick();
    ok("Transfer resumed.", view)
}

/// `send.setSendRate`: a running transfer's cap, or else a destination's.
pub(super) fn set_send_rate(ctx: &mut Ctx<'_>, p: &SetSendRate) -> Reply {
    let rate = (p.send_rate_max > 0).then_some(p.send_rate_max);
    // The bandwidth manager applies the new cap to running transfers within 200 ms.
    let mut objs = ctx.server.objects.lock();
    if let Some(tid) = &p.transfer_id {
        let t = find(ctx, &objs.transfers, tid)?;
        let run = objs.running.get(&t.id).cloned().ok_or_else(|| {
            ApiError::new(format!(
                "transfer {tid} is not running: set the destination's rate instead"
            ))
        })?;
        run.set_rate(rate);
    } else {
        let did = p
            .destination_id
            .as_deref()
            .ok_or_else(|| ApiError::new("missing parameter \"destinationId\"".into()))?;
        let d = find_mut(ctx, &mut objs.destinations, did)?;
        d.send_rate_max = rate;
    }
    drop(objs);
    ctx.server.save();
    ok("Send rate set.", json!({ "sendRateMax": rate }))
}
/// `send.getTransfer`.
pub(super) fn get(ctx: &Ctx<'_>, p: &GetTransfer) -> Reply {
    let objs = ctx.server.objects.lock();
    let t = find(ctx, &objs.transfers, &p.transfer_id)?;
    ok("Transfer.", t.view())
}

/// `send.getTransfers`.
pub(super) fn list(ctx: &Ctx<'_>, p: &GetTransfers) -> Reply {
    let objs = ctx.server.objects.lock();
    let list: Vec<Value> = objs
        .transfers
        .values()
        .filter(|t| visible(ctx, &t.owner))
        .filter(|t| p.status.as_deref().is_none_or(|s| s == t.status.as_str()))
        .map(TransferRec::view)
        .collect();
    ok("Transfers.", Value::Array(list))
}

/// `send.deleteTransfer`: a finished or suspended one.
pub(super) fn delete(ctx: &Ctx<'_>, p: &DeleteTransfer) -> Reply {
    let id = &p.transfer_id;
    let mut objs = ctx.server.objects.lock();
    let t = find(ctx, &objs.transfers, id)?;
    if !t.status.is_final() && t.status != TxStatus::Suspended {
        return Err(ApiError::new(format!(
            "transfer {id} is {}: cancel or suspend it before deleting it",
            t.status.as_str()
        )));
    }
    objs.transfers.remove(id);
    drop(objs);
    ctx.server.save();
    ok("Transfer deleted.", Value::Null)
}
