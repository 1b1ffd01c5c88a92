//! The canister's certified data: the root hash of a tree holding the audit log's head and
//! every model's active version (`inference_api::model_leaf`):
//!
//! ```text
//! fork( labeled("log", leaf(head_sha256)),
//!       labeled("models", { name → leaf(version ‖ sha256) }) )
//! ```
//!
//! The head's entry holds its own index, so the leaf needs only its hash. The models' labeled
//! hash is kept between registry changes: a new head costs the leaf, its label and the fork.
//!
//! Set after every change to either (an audit entry, a registry change). A query answers with
//! the IC's certificate of that data and a witness of the leaves it rests on, so a reader
//! outside the subnet can check a reply answered by one node against the subnet's signature.
//! Certificates exist only in non-replicated queries: a canister calling these endpoints gets
//! the data without them.

use std::cell::RefCell;

use ic_certification::{fork, fork_hash, labeled, labeled_hash, leaf, leaf_hash, pruned, AsHashTree, HashTree, RbTree};
use inference_api::{model_leaf, ActiveModel, Certified, CERTIFIED_AUDIT_HEAD, CERTIFIED_MODELS};
use serde::Serialize;

use crate::state;

thread_local! {
    /// Each model's active version; rebuilt from the registry at start and after every change.
    static MODELS: RefCell<RbTree<Vec<u8>, Vec<u8>>> = const { RefCell::new(RbTree::new()) };
    /// The models subtree's labeled hash, computed when it changes.
    static MODELS_HASH: RefCell<[u8; 32]> = const { RefCell::new([0; 32]) };
}

fn head() -> Vec<u8> {
    state::with(|s| s.audit.head().to_vec())
}

fn models_hash() -> [u8; 32] {
    MODELS_HASH.with(|h| *h.borrow())
}

/// Sets the certified data to the tree's root hash.
pub fn publish() {
    let audit = labeled_hash(CERTIFIED_AUDIT_HEAD, &leaf_hash(&head()));
    ic_cdk::api::certified_data_set(fork_hash(&audit, &models_hash()));
}

/// Rebuilds the models' subtree from the registry's active versions, then publishes.
pub fn refresh_models() {
    let active = state::with(|s| s.registry.active_models());
    MODELS.with(|m| {
        let mut tree = RbTree::new();
        for model in active {
            tree.insert(model.name.into_bytes(), model_leaf(model.version, &model.sha256));
        }
        MODELS_HASH.with(|h| *h.borrow_mut() = labeled_hash(CERTIFIED_MODELS, &tree.root_hash()));
        *m.borrow_mut() = tree;
    });
    publish();
}

/// The certificate (when this is a query that has one) with `witness`.
fn certified(witness: HashTree) -> Option<Certified> {
    let certificate = ic_cdk::api::data_certificate()?;
    let mut out = serde_cbor::Serializer::new(Vec::new());
    out.self_describe().expect("writing to a Vec");
    witness.serialize(&mut out).expect("a hash tree encodes");
    Some(Certified { certificate, witness: out.into_inner() })
}

/// The audit head's leaf, the models' subtree pruned.
pub fn head_certified() -> Option<Certified> {
    certified(fork(labeled(CERTIFIED_AUDIT_HEAD, leaf(head())), pruned(models_hash())))
}

/// Every model's leaf, the audit head pruned.
pub fn models_certified() -> Option<Certified> {
    let audit = pruned(labeled_hash(CERTIFIED_AUDIT_HEAD, &leaf_hash(&head())));
    certified(fork(audit, MODELS.with(|m| labeled(CERTIFIED_MODELS, m.borrow().as_hash_tree()))))
}

/// One model's leaf (or its absence), everything else pruned.
pub fn model_certified(name: &str) -> Option<Certified> {
    let audit = pruned(labeled_hash(CERTIFIED_AUDIT_HEAD, &leaf_hash(&head())));
    certified(fork(audit, MODELS.with(|m| labeled(CERTIFIED_MODELS, m.borrow().witness(name.as_bytes())))))
}

pub fn active_models() -> Vec<ActiveModel> {
    state::with(|s| s.registry.active_models())
}
