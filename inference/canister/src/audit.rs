//! Logging to the audit log ([`inference_engine::audit`]): every inference an allowed caller
//! asks for (served or refused once its access is checked; strangers' calls are refused before
//! and never fill the log), and every change to the registry, the roles and the settings.
//! Each append moves the certified head ([`crate::certified`]). An entry holds the hashes of
//! the input and output, never the data.
//!
//! A query's state changes are discarded, so `classify_query` cannot log: its answer has no
//! receipt. A message that traps rolls its entry back with everything else it did.

use candid::Principal;
use inference_api::{
    AuditError, AuditEvent, AuditRetention, ChangeAction, ChangeRecord, Classification, Inference, InferenceError,
    InferenceRecord, ModelRef, Profile, Receipt, TextClassification, TextEmbeddings,
};

use crate::{certified, state};

/// What logging has cost since this heap began (the bench reads it through `audit_head`).
#[derive(Default)]
pub struct Stats {
    pub entries: u64,
    pub instructions: u64,
}

/// The log's head as `audit_head` answers it, with `certified` when the query has it.
pub fn head(certified: Option<inference_api::Certified>) -> inference_api::AuditHead {
    state::with(|s| inference_api::AuditHead {
        next_index: s.audit.next_index(),
        first_index: s.audit.first_kept(ic_cdk::api::time()),
        head_sha256: s.audit.head().to_vec(),
        retention: s.audit.retention(),
        entries_logged: s.audit_stats.entries,
        logging_instructions: s.audit_stats.instructions,
        stable_bytes: s.audit.stable_bytes(),
        certified,
    })
}

/// Sets retention (dropping what it no longer keeps) and logs that it did.
pub fn set_retention(caller: Principal, retention: AuditRetention) -> Result<(), AuditError> {
    if retention.max_entries == Some(0) {
        return Err(AuditError::InvalidRequest("max_entries must keep at least one entry (the head)".into()));
    }
    state::with_mut(|s| s.audit.set_retention(&retention, ic_cdk::api::time()));
    change(caller, ChangeAction::RetentionSet, None, None);
    Ok(())
}

/// Appends an entry, moves the certified head, and counts what that cost.
fn append(caller: Principal, via: Option<Principal>, event: AuditEvent) -> (u64, Vec<u8>) {
    let before = ic_cdk::api::performance_counter(0);
    let now = ic_cdk::api::time();
    let appended = state::with_mut(|s| s.audit.append(now, caller, via, event));
    certified::publish();
    let cost = ic_cdk::api::performance_counter(0).saturating_sub(before);
    state::with_mut(|s| {
        s.audit_stats.entries += 1;
        s.audit_stats.instructions += cost;
    });
    appended
}

/// Logs a change made by `caller`.
pub fn change(caller: Principal, action: ChangeAction, model: Option<&ModelRef>, subject: Option<(Principal, &str)>) {
    let record = ChangeRecord {
        action,
        model: model.map(|m| m.name.clone()),
        version: model.map(|m| m.version),
        model_sha256: model.map(|m| m.sha256.clone()),
        subject: subject.map(|(p, _)| p),
        role: subject.map(|(_, r)| r.to_string()),
    };
    append(caller, None, AuditEvent::Change(record));
}

/// Logs a change to a model version and refreshes the certified registry.
pub fn model_change(caller: Principal, action: ChangeAction, name: &str, version: u32) {
    let sha256 = state::with(|s| s.registry.info(name, Some(version)).map(|i| i.sha256).unwrap_or_default());
    let model = ModelRef { name: name.to_string(), version, sha256 };
    change(caller, action, Some(&model), None);
    certified::refresh_models();
}

/// An answer that carries a receipt and says which model gave it at what cost.
pub trait Answer {
    fn model(&self) -> &ModelRef;
    fn cost(&self) -> (u64, u32);
    fn set_receipt(&mut self, receipt: Receipt);
}

macro_rules! answers {
    ($($t:ty),*) => {$(
        impl Answer for $t {
            fn model(&self) -> &ModelRef {
                &self.model
            }
            fn cost(&self) -> (u64, u32) {
                (self.instructions, self.messages)
            }
            fn set_receipt(&mut self, receipt: Receipt) {
                self.receipt = Some(receipt);
            }
        }
    )*};
}
answers!(Classification, Inference, TextClassification, TextEmbeddings);

/// A maintainer's profile is logged; it has no receipt to carry.
impl Answer for Profile {
    fn model(&self) -> &ModelRef {
        &self.model
    }
    fn cost(&self) -> (u64, u32) {
        (self.instructions, self.messages)
    }
    fn set_receipt(&mut self, _: Receipt) {}
}

impl Answer for inference_api::JobResult {
    fn model(&self) -> &ModelRef {
        match self {
            inference_api::JobResult::Classification(c) => c.model(),
            inference_api::JobResult::Inference(i) => i.model(),
        }
    }
    fn cost(&self) -> (u64, u32) {
        match self {
            inference_api::JobResult::Classification(c) => c.cost(),
            inference_api::JobResult::Inference(i) => i.cost(),
        }
    }
    fn set_receipt(&mut self, receipt: Receipt) {
        match self {
            inference_api::JobResult::Classification(c) => c.set_receipt(receipt),
            inference_api::JobResult::Inference(i) => i.set_receipt(receipt),
        }
    }
}

/// An inference whose caller's access was checked, to be logged when it ends.
pub struct Pending {
    caller: Principal,
    via: Option<Principal>,
    endpoint: &'static str,
    model: String,
    version: Option<u32>,
    input_sha256: Vec<u8>,
}

impl Pending {
    /// Begins logging an inference for `caller` (whom it runs for; `via`, the text front calling
    /// on its behalf), hashing its input with `input_sha256`. A caller whose quota is spent is
    /// refused first, unlogged: hashing a 10 MiB input costs hundreds of millions of instructions
    /// that a refusal could not charge.
    pub fn begin(
        caller: Principal,
        via: Option<Principal>,
        endpoint: &'static str,
        model: &str,
        version: Option<u32>,
        input_sha256: impl FnOnce() -> Vec<u8>,
    ) -> Result<Pending, InferenceError> {
        crate::quota::check(caller, ic_cdk::api::time())?;
        let input_sha256 = input_sha256();
        Ok(Pending { caller, via, endpoint, model: model.to_string(), version, input_sha256 })
    }

    /// Logs the outcome; an answer (given with its output's sha256) gets its receipt.
    pub fn close<T: Answer, E: Refusal>(self, outcome: Result<(T, Vec<u8>), E>) -> Result<T, E> {
        let (mut answer, output_sha256) = match outcome {
            Ok(answered) => answered,
            Err(refusal) => return Err(self.refused(refusal)),
        };
        let model = answer.model().clone();
        let (instructions, messages) = answer.cost();
        let record = InferenceRecord {
            endpoint: self.endpoint.to_string(),
            model: model.name,
            version: Some(model.version),
            model_sha256: Some(model.sha256),
            input_sha256: self.input_sha256.clone(),
            output_sha256: Some(output_sha256.clone()),
            instructions,
            messages,
            error: None,
        };
        let (index, entry_sha256) = append(self.caller, self.via, AuditEvent::Inference(record));
        answer.set_receipt(Receipt { index, entry_sha256, input_sha256: self.input_sha256, output_sha256 });
        Ok(answer)
    }

    /// Logs a refusal and gives it back.
    pub fn refused<E: Refusal>(self, refusal: E) -> E {
        let record = InferenceRecord {
            endpoint: self.endpoint.to_string(),
            model: self.model,
            version: self.version,
            model_sha256: None,
            input_sha256: self.input_sha256,
            output_sha256: None,
            instructions: ic_cdk::api::performance_counter(1),
            messages: 0,
            error: Some(refusal.code().to_string()),
        };
        append(self.caller, self.via, AuditEvent::Inference(record));
        refusal
    }
}

/// An endpoint's error, as an entry names it.
pub trait Refusal {
    fn code(&self) -> &'static str;
}

impl Refusal for InferenceError {
    fn code(&self) -> &'static str {
        InferenceError::code(self)
    }
}

impl Refusal for inference_api::JobError {
    fn code(&self) -> &'static str {
        use inference_api::JobError::*;
        match self {
            Inference(e) => e.code(),
            RecordsFull { .. } => "RecordsFull",
            CallerRecordsFull { .. } => "CallerRecordsFull",
            UnknownJob(_) => "UnknownJob",
            Pending { .. } => "Pending",
            Cancelled => "Cancelled",
            Interrupted(_) => "Interrupted",
        }
    }
}

/// Runs `f` (hashing an input or output for an entry), counting its instructions as
/// logging's.
pub fn hashing<T>(f: impl FnOnce() -> T) -> T {
    let before = ic_cdk::api::performance_counter(0);
    let value = f();
    let cost = ic_cdk::api::performance_counter(0).saturating_sub(before);
    state::with_mut(|s| s.audit_stats.instructions += cost);
    value
}

/// The sha256 of `infer`'s outputs.
pub fn outputs_sha256(outputs: &[inference_api::OutputTensor]) -> Vec<u8> {
    hashing(|| inference_api::output_sha256(outputs))
}

/// The sha256 of input tensors.
pub fn inputs_sha256(inputs: &[inference_api::InputTensor]) -> Vec<u8> {
    hashing(|| inference_api::input_sha256(inputs))
}

/// The sha256 of tokenized texts.
pub fn tokens_sha256(texts: &[inference_api::Tokens]) -> Vec<u8> {
    hashing(|| inference_api::tokens_sha256(texts))
}
