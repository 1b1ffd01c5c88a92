//! What maintainers do to a whole pool at once (the CLI's `pool` commands, and the scenario
//! tests): set its membership on every member, and switch it to another file in two phases so
//! that no router pinned to the old file finds a member without it.
//!
//! Members number their copies of a file each in their own order, so a file is named here by
//! its sha256 and each member's own version of it is looked up.

use candid::Principal;
use inference_api::{ModelInfo, RegistryError, RoleError};

use crate::{CallError, InferenceClient, Transport};

/// One member: its canister id and a client of it.
pub struct Member<T> {
    pub canister: Principal,
    pub client: InferenceClient<T>,
}

/// What stopped a pool operation, and at which member (the members before it were done).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("{member}: {source}")]
    Call { member: Principal, source: CallError },
    #[error("{member} refused: {source}")]
    Registry { member: Principal, source: RegistryError },
    #[error("{member} refused: {source}")]
    Role { member: Principal, source: RoleError },
    #[error("{member} holds no version of {name} with sha256 {sha256}: copy it there first (`pool copy`)")]
    FileMissing { member: Principal, name: String, sha256: String },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl<T: Transport> Member<T> {
    pub fn new(canister: Principal, transport: T) -> Self {
        Member { canister, client: InferenceClient::new(transport) }
    }

    fn registry<R>(&self, reply: Result<Result<R, RegistryError>, CallError>) -> Result<R, PoolError> {
        let member = self.canister;
        reply
            .map_err(|source| PoolError::Call { member, source })?
            .map_err(|source| PoolError::Registry { member, source })
    }

    /// This member's version of `name` that holds the file `sha256`.
    pub async fn version_of_file(&self, name: &str, sha256: &[u8]) -> Result<ModelInfo, PoolError> {
        let models = self.registry(self.client.all_models().await)?;
        models.into_iter().find(|m| m.name == name && m.sha256 == sha256).ok_or_else(|| PoolError::FileMissing {
            member: self.canister,
            name: name.to_string(),
            sha256: hex(sha256),
        })
    }
}

/// Makes `pool` the membership every member keeps (`set_pool`, admins); each then catches up
/// with the others by itself.
pub async fn set_members<T: Transport>(members: &[Member<T>], pool: &[Principal]) -> Result<(), PoolError> {
    for m in members {
        let reply = m.client.set_pool(pool).await;
        let member = m.canister;
        reply
            .map_err(|source| PoolError::Call { member, source })?
            .map_err(|source| PoolError::Role { member, source })?;
    }
    Ok(())
}

/// Switches every member to its version of the file `sha256`, in two phases. First each member
/// builds the file's plan (`enable_version`) and keeps the version active now serving (enabled),
/// so nothing can fail half-way for want of a plan and a router pinned to the old file finds it
/// on every member throughout. Then each activates. Answers each member's version of the file.
/// The old version stays enabled: disable it (`enable_version … false`) once no agency's router
/// is pinned to it.
pub async fn activate<T: Transport>(members: &[Member<T>], name: &str, sha256: &[u8]) -> Result<Vec<u32>, PoolError> {
    let mut versions = Vec::with_capacity(members.len());
    for m in members {
        versions.push(m.version_of_file(name, sha256).await?.version);
    }
    for (m, &version) in members.iter().zip(&versions) {
        match m.registry(m.client.active_version(name).await)? {
            Some(active) if active != version => m.registry(m.client.enable_version(name, active, true).await)?,
            _ => {}
        }
        m.registry(m.client.enable_version(name, version, true).await)?;
    }
    for (m, &version) in members.iter().zip(&versions) {
        m.registry(m.client.activate(name, version).await)?;
    }
    Ok(versions)
}
