//! Reading and deleting manifests (reference §4.3): `send.getManifest(s)`,
//! `send.getManifestFiles`, `send.deleteManifest`. Making one, `send.createManifest`, is
//! [`crate::server::manifests`].

use jetstream_api::params::{DeleteManifest, GetManifest, GetManifestFiles};
use serde_json::Value;

use super::{find, ok, visible, Reply};
use crate::server::api::{ApiError, Ctx};
use crate::server::objects::ManifestRec;

/// `send.getManifest`.
pub(super) fn get(ctx: &Ctx<'_>, p: &GetManifest) -> Reply {
    let objs = ctx.server.objects.lock();
    let m = find(ctx, &objs.manifests, &p.manifest_id)?;
    ok("Manifest.", m.view())
}

/// `send.getManifests`.
pub(super) fn list(ctx: &Ctx<'_>) -> Reply {
    let objs = ctx.server.objects.lock();
    let list: Vec<Value> = objs
        .manifests
        .values()
        .filter(|m| visible(ctx, &m.owner))
        .map(ManifestRec::view)
        .collect();
    ok("Manifests.", Value::Array(list))
}

/// `send.getManifestFiles`.
pub(super) fn files(ctx: &Ctx<'_>, p: &GetManifestFiles) -> Reply {
    let objs = ctx.server.objects.lock();
    let m = find(ctx, &objs.manifests, &p.manifest_id)?;
    ok("Manifest files.", m.files_view())
}

/// `send.deleteManifest`: one no transfer that has not ended uses.
pub(super) fn delete(ctx: &Ctx<'_>, p: &DeleteManifest) -> Reply {
    let id = &p.manifest_id;
    let mut objs = ctx.server.objects.lock();
    find(ctx, &objs.manifests, id)?;
    if objs
        .transfers
        .values()
        .any(|t| &t.manifest_id == id && !t.status.is_final())
    {
        return Err(ApiError::new(format!(
            "manifest {id} is used by a transfer that has not ended"
        )));
    }
    objs.manifests.remove(id);
    drop(objs);
    ctx.server.save();
    ok("Manifest deleted.", Value::Null)
}
