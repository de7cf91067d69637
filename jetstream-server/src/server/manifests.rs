//! `send.createManifest`: turns source → target mappings into a manifest, in the background,
//! reading the sources with the requesting user's rights.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jetstream_api::params::CreateManifest;
use jetstream_client::manifest::{engine_manifest, scan, Skipped};
use serde_json::Value;

use super::api::{ApiError, Ctx};
use super::commands::owner_of;
use super::objects::{new_id, now_us, ManifestRec};
use super::Server;
use crate::sandbox;

type Reply = Result<(String, Value), ApiError>;

/// `send.createManifest`.
///
/// # Errors
/// Bad parameters or a mapping outside the user's sandbox (checked before anything is read).
pub fn create(ctx: &mut Ctx<'_>, p: CreateManifest) -> Reply {
    let requested: Vec<(String, String)> = p
        .file_mappings
        .into_iter()
        .map(|m| (m.source, m.target))
        .collect();
    let resources = ctx.server.resources_of(ctx.session)?;
    // Each source with the directory below which no symbolic link is followed: its resource
    // (or a token's `path`); none for an unconfined user.
    let mut plan = Vec::with_capacity(requested.len());
    for (src, dst) in &requested {
        let target = sandbox::clean_relative(dst)
            .map_err(|e| ApiError::new(format!("target path {dst:?}: {e}")))?;
        if !resources.is_sandboxed() && !Path::new(src).is_absolute() {
            return Err(ApiError::new(format!(
                "source path {src:?} must be absolute"
            )));
        }
        let at = resources
            .locate(src)
            .map_err(|e| ApiError::of(e.kind, format!("source path {src:?}: {}", e.message)))?;
        let confine = resources.confine(&at);
        plan.push((at.path(), target, confine));
    }
    let rec = ManifestRec {
        id: new_id(),
        owner: owner_of(ctx),
        status: "pending".into(),
        error_message: None,
        requested,
        files: Vec::new(),
        creation_time: now_us(),
        user_data: Default::default(),
        built: None,
    };
    let id = rec.id.clone();
    let view = rec.view();
    ctx.server.objects.lock().manifests.insert(id.clone(), rec);
    let server = ctx.server.clone();
    let ids = ctx.session.user.as_ref().and_then(|u| server.user_ids(u));
    std::thread::Builder::new()
        .name("manifest".into())
        .spawn(move || build(&server, &id, plan, ids))
        .map_err(|e| ApiError::internal("starting the manifest builder", e))?;
    Ok(("Manifest requested.".into(), view))
}

fn build(
    server: &Arc<Server>,
    id: &str,
    plan: Vec<(PathBuf, String, Option<PathBuf>)>,
    ids: Option<sandbox::UserIds>,
) {
    let skipped = |path: &Path, why: Skipped| match why {
        Skipped::SandboxLink => {
            crate::debug!(
                "manifest: skipping symbolic link {} (sandbox)",
                path.display()
            );
        }
        Skipped::Link => crate::debug!("manifest: skipping symbolic link {}", path.display()),
        Skipped::Special => crate::debug!("manifest: skipping special file {}", path.display()),
    };
    // One scan per source: each is confined to its own resource.
    let outcome = sandbox::run_as_user(ids, move || {
        let mut files = Vec::new();
        for (source, target, confine) in plan {
            files.extend(scan(&[(source, target)], confine.as_deref(), skipped)?);
        }
        Ok(files)
    })
    .map_err(|e| format!("cannot read the sources as the user: {e}"))
    .and_then(|r| r);
    let outcome = outcome.and_then(|files| {
        let manifest = engine_manifest(&files)?;
        Ok((files, manifest))
    });
    let mut objs = server.objects.lock();
    let Some(rec) = objs.manifests.get_mut(id) else {
        return;
    };
    match outcome {
        Ok((files, manifest)) => {
            rec.files = files;
            rec.built = Some(Arc::new(manifest));
            rec.status = "complete".into();
        }
        Err(e) => {
            rec.status = "error".into();
            rec.error_message = Some(e);
        }
    }
    drop(objs);
    server.object_ended.notify_all();
}
