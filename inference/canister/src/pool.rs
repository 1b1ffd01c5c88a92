//! A pool of inference canisters serving the same models (#16). An admin gives each member the
//! pool's members (`set_pool`); members are each other's peers, which may read the registry and
//! copy versions (`version_chunk`). A member catches up with its peers by itself when its pool
//! is set, and again whenever a maintainer asks (`catch_up`): every file that serves on a peer
//! is copied (and checked against the peer's sha256) and enabled here, and the file active on
//! most peers becomes active here. Files are known across the pool by their sha256: each member
//! numbers its versions in its own order.
//!
//! Catching up leaves serving what served before (the previously active version stays enabled
//! when another becomes active), so a router pinned to a file (the typed client's `Router`)
//! never finds it gone from a member that caught up.

use std::collections::BTreeMap;

use candid::Principal;
use inference_api::{CatchUp, ChangeAction, ModelRef, PeerFailure, PoolView, RegistryError, RoleError, ServingVersion};
use inference_client::{CdkTransport, InferenceClient};
use inference_engine::access::List;

use crate::inference::Awaiting;
use crate::{audit, registry_api, state};

/// The members, this canister among them, in principal order.
pub fn members() -> Vec<Principal> {
    let mut members = state::with(|s| s.access.members(List::Peers));
    members.push(ic_cdk::api::canister_self());
    members.sort();
    members
}

pub fn view() -> PoolView {
    state::with(|s| PoolView { members: members(), catching_up: s.catching_up, last_catch_up: s.last_catch_up.clone() })
}

/// Makes `members` this canister's pool (itself may be among them or not), then catches up with
/// them in the background: `pool` shows when that ended and what it did.
pub fn set(members: Vec<Principal>) -> Result<(), RoleError> {
    let me = ic_cdk::api::canister_self();
    let mut peers: Vec<Principal> = members.into_iter().filter(|&m| m != me).collect();
    peers.sort();
    peers.dedup();
    state::with_mut(|s| s.access.replace(List::Peers, &peers))?;
    if !peers.is_empty() && !state::with(|s| s.catching_up) {
        ic_cdk::futures::spawn(async {
            // Its outcome is kept for `pool` to show; nobody waits for it here.
            let _ = catch_up().await;
        });
    }
    Ok(())
}

/// Whether `peer` is still one of this canister's peers: asked after every wait of a catch-up,
/// so a pool changed meanwhile stops copying from a member that left it.
fn still_peer(peer: Principal) -> Result<(), RegistryError> {
    if state::with(|s| s.access.contains(List::Peers, peer)) {
        Ok(())
    } else {
        Err(RegistryError::PeerFailed { peer, message: "no longer a member of this canister's pool".into() })
    }
}

/// Marks a catch-up running for as long as it lives (also when a message of it traps: the
/// flag is cleared in the call's cleanup).
struct Running;

impl Running {
    fn begin() -> Result<Running, RegistryError> {
        state::with_mut(|s| {
            if s.catching_up {
                return Err(RegistryError::CatchUpRunning);
            }
            s.catching_up = true;
            Ok(Running)
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        state::with_mut(|s| s.catching_up = false);
    }
}

/// One file that serves on some peer: where it can be copied from, and on how many peers it is
/// the active one.
struct Wanted {
    sha256: Vec<u8>,
    sources: Vec<(Principal, u32)>,
    active_on: u32,
}

/// What serves on `peer`, by name.
async fn serving_on(peer: Principal) -> Result<BTreeMap<String, Vec<ServingVersion>>, String> {
    let client = InferenceClient::new(CdkTransport { canister: peer });
    let models = {
        let _awaiting = Awaiting::begin();
        client.all_models().await
    };
    let models = models.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    let mut names: Vec<String> = models.into_iter().map(|m| m.name).collect();
    names.dedup();
    let mut serving = BTreeMap::new();
    for name in names {
        let versions = {
            let _awaiting = Awaiting::begin();
            client.serving_versions(&name).await
        };
        match versions.map_err(|e| e.to_string())? {
            Ok(versions) => {
                serving.insert(name, versions);
            }
            // Nothing serves under that name there (uploaded, never activated).
            Err(RegistryError::UnknownModel(_)) => {}
            Err(refused) => return Err(refused.to_string()),
        }
    }
    Ok(serving)
}

/// Brings this canister level with its peers (see the module's documentation) and reports
/// what it did. One peer that cannot be read or copied from is reported and the others used.
pub async fn catch_up() -> Result<CatchUp, RegistryError> {
    let running = Running::begin()?;
    let me = ic_cdk::api::canister_self();
    let mut report = CatchUp::default();

    let mut wanted: BTreeMap<String, Vec<Wanted>> = BTreeMap::new();
    for peer in state::with(|s| s.access.members(List::Peers)) {
        match serving_on(peer).await {
            Ok(serving) => {
                for (name, versions) in serving {
                    let files = wanted.entry(name).or_default();
                    for v in versions {
                        let at = files.iter().position(|f| f.sha256 == v.sha256).unwrap_or_else(|| {
                            files.push(Wanted { sha256: v.sha256.clone(), sources: vec![], active_on: 0 });
                            files.len() - 1
                        });
                        let file = &mut files[at];
                        file.sources.push((peer, v.version));
                        file.active_on += u32::from(v.active);
                    }
                }
            }
            Err(message) => report.failed.push(PeerFailure { peer, message }),
        }
    }

    for (name, files) in &wanted {
        let mut here_by_file = Vec::new();
        for file in files {
            match file_here(me, name, file, &mut report).await {
                Some(version) => here_by_file.push((file, version)),
                None => continue,
            }
        }
        // The file active on most peers (the first seen among equals) becomes active here; what
        // was active stays enabled, so a router pinned to it still finds it.
        let Some(&(_, target)) = here_by_file.iter().filter(|(f, _)| f.active_on > 0).max_by_key(|(f, _)| f.active_on)
        else {
            continue;
        };
        let active = state::with(|s| s.registry.active_version(name));
        if active == Some(target) {
            continue;
        }
        if let Some(previous) = active {
            state::with_mut(|s| s.registry.set_enabled(name, previous, true))?;
            audit::model_change(me, ChangeAction::VersionEnabled, name, previous);
        }
        let still = || Ok(());
        match registry_api::after_plan_built(me, still, name, target, |s| s.registry.activate(name, target)).await {
            Ok(()) => {
                audit::model_change(me, ChangeAction::Activated, name, target);
                report.activated.push(model_ref(name, target))
            }
            Err(e) => {
                report.failed.push(PeerFailure { peer: me, message: format!("activating {name} v{target}: {e}") })
            }
        }
    }

    report.finished_at_ns = ic_cdk::api::time();
    state::with_mut(|s| s.last_catch_up = Some(report.clone()));
    drop(running);
    Ok(report)
}

/// This canister's version of `file`, copied from the first source that gives it and enabled
/// (its plan built) when it does not serve here yet; `None` when no source gave it.
async fn file_here(me: Principal, name: &str, file: &Wanted, report: &mut CatchUp) -> Option<u32> {
    let held = state::with(|s| s.registry.versions_of(name).into_iter().find(|v| v.sha256 == file.sha256));
    let version = match held {
        Some(info) => info.version,
        None => {
            let mut copied = None;
            for &(peer, version) in &file.sources {
                match registry_api::copy_version(me, || still_peer(peer), peer, name, version).await {
                    Ok(info) => {
                        copied = Some(info.version);
                        break;
                    }
                    Err(e) => report.failed.push(PeerFailure { peer, message: e.to_string() }),
                }
            }
            let version = copied?;
            report.copied.push(model_ref(name, version));
            version
        }
    };
    if state::with(|s| s.registry.serving_now(name, Some(version)).is_ok()) {
        return Some(version);
    }
    let still = || Ok(());
    match registry_api::after_plan_built(me, still, name, version, |s| s.registry.set_enabled(name, version, true))
        .await
    {
        Ok(()) => {
            audit::model_change(me, ChangeAction::VersionEnabled, name, version);
            report.enabled.push(model_ref(name, version));
            Some(version)
        }
        Err(e) => {
            report.failed.push(PeerFailure { peer: me, message: format!("enabling {name} v{version}: {e}") });
            None
        }
    }
}

fn model_ref(name: &str, version: u32) -> ModelRef {
    let sha256 = state::with(|s| s.registry.info(name, Some(version)).map(|i| i.sha256).unwrap_or_default());
    ModelRef { name: name.to_string(), version, sha256 }
}
