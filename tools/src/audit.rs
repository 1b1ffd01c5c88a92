//! The audit log as JSON lines (`inference-cli audit`), and their verification: every line's
//! hash is recomputed from its fields with the canister's own canonical encoding
//! ([`inference_api::AuditEntry::encode`]), and consecutive lines must chain. An exported file
//! verifies on its own; its last hash also matches the certified head when the export reached
//! the log's end.

use candid::Principal;
use inference_api::{
    verify_chain, AuditEntry, AuditEvent, AuditRecord, ChainError, ChangeAction, ChangeRecord, InferenceRecord,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One line of an export.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub index: u64,
    pub time_ns: u64,
    pub caller: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(flatten)]
    pub event: Event,
    pub prev_sha256: String,
    pub sha256: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Inference {
        endpoint: String,
        model: String,
        version: Option<u32>,
        model_sha256: Option<String>,
        input_sha256: String,
        output_sha256: Option<String>,
        instructions: u64,
        messages: u32,
        error: Option<String>,
    },
    Change {
        action: String,
        model: Option<String>,
        version: Option<u32>,
        model_sha256: Option<String>,
        subject: Option<String>,
        role: Option<String>,
    },
}

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("line {line}: {message}")]
    Unreadable { line: usize, message: String },
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("the file holds no entries")]
    Empty,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err(format!("{text} is not hex"));
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| e.to_string())).collect()
}

fn principal(text: &str) -> Result<Principal, String> {
    Principal::from_text(text).map_err(|e| format!("{text}: {e}"))
}

impl From<&AuditRecord> for Line {
    fn from(record: &AuditRecord) -> Line {
        let e = &record.entry;
        let event = match &e.event {
            AuditEvent::Inference(r) => Event::Inference {
                endpoint: r.endpoint.clone(),
                model: r.model.clone(),
                version: r.version,
                model_sha256: r.model_sha256.as_deref().map(hex),
                input_sha256: hex(&r.input_sha256),
                output_sha256: r.output_sha256.as_deref().map(hex),
                instructions: r.instructions,
                messages: r.messages,
                error: r.error.clone(),
            },
            AuditEvent::Change(c) => Event::Change {
                action: c.action.name(),
                model: c.model.clone(),
                version: c.version,
                model_sha256: c.model_sha256.as_deref().map(hex),
                subject: c.subject.map(|p| p.to_text()),
                role: c.role.clone(),
            },
        };
        Line {
            index: e.index,
            time_ns: e.time_ns,
            caller: e.caller.to_text(),
            via: e.via.map(|p| p.to_text()),
            event,
            prev_sha256: hex(&e.prev_sha256),
            sha256: hex(&record.sha256),
        }
    }
}

impl TryFrom<&Line> for AuditRecord {
    type Error = String;

    fn try_from(line: &Line) -> Result<AuditRecord, String> {
        let opt_hex = |h: &Option<String>| h.as_deref().map(unhex).transpose();
        let event = match &line.event {
            Event::Inference {
                endpoint,
                model,
                version,
                model_sha256,
                input_sha256,
                output_sha256,
                instructions,
                messages,
                error,
            } => AuditEvent::Inference(InferenceRecord {
                endpoint: endpoint.clone(),
                model: model.clone(),
                version: *version,
                model_sha256: opt_hex(model_sha256)?,
                input_sha256: unhex(input_sha256)?,
                output_sha256: opt_hex(output_sha256)?,
                instructions: *instructions,
                messages: *messages,
                error: error.clone(),
            }),
            Event::Change { action, model, version, model_sha256, subject, role } => AuditEvent::Change(ChangeRecord {
                action: ChangeAction::from_name(action).ok_or_else(|| format!("no change action {action}"))?,
                model: model.clone(),
                version: *version,
                model_sha256: opt_hex(model_sha256)?,
                subject: subject.as_deref().map(principal).transpose()?,
                role: role.clone(),
            }),
        };
        let entry = AuditEntry {
            index: line.index,
            time_ns: line.time_ns,
            caller: principal(&line.caller)?,
            via: line.via.as_deref().map(principal).transpose()?,
            event,
            prev_sha256: unhex(&line.prev_sha256)?,
        };
        Ok(AuditRecord { entry, sha256: unhex(&line.sha256)? })
    }
}

/// Records as JSON lines, one per record, each ending in a newline.
pub fn to_json_lines<'a>(records: impl IntoIterator<Item = &'a AuditRecord>) -> String {
    records.into_iter().map(|r| serde_json::to_string(&Line::from(r)).expect("a line encodes") + "\n").collect()
}

/// What a verified file holds.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub first_index: u64,
    pub last_index: u64,
    pub last_sha256: Vec<u8>,
}

/// Reads JSON lines and verifies them as one contiguous run of the chain (see
/// [`inference_api::verify_chain`]).
pub fn verify_json_lines(text: &str) -> Result<Verified, ExportError> {
    let records = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let unreadable = |message: String| ExportError::Unreadable { line: i + 1, message };
            let line: Line = serde_json::from_str(l).map_err(|e| unreadable(e.to_string()))?;
            AuditRecord::try_from(&line).map_err(unreadable)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let last_sha256 = verify_chain(&records)?.ok_or(ExportError::Empty)?;
    Ok(Verified {
        first_index: records[0].entry.index,
        last_index: records[records.len() - 1].entry.index,
        last_sha256,
    })
}

/// What [`export`] read: the entries the filter asked for and, when checked, the chain they
/// belong to.
#[derive(Debug)]
pub struct Export {
    pub records: Vec<AuditRecord>,
    /// When checked: the whole kept log verified as one chain ending in the certified head.
    pub verified: Option<CheckedHead>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct CheckedHead {
    pub entries: u64,
    pub next_index: u64,
    pub head_sha256: Vec<u8>,
    /// The certificate's time.
    pub certified_at_ns: u64,
}

#[derive(Debug, Error)]
pub enum AuditFetchError {
    #[error(transparent)]
    Call(#[from] inference_client::CallError),
    #[error("the canister refused: {0}")]
    Refused(#[from] inference_api::AuditError),
    #[error("the head is not certified: {0}")]
    Certificate(#[from] inference_client::certified::VerifyError),
    #[error("the log does not verify: {0}")]
    Chain(#[from] ChainError),
    #[error("the log's last entry is {got}, the certified head is entry {expected}")]
    Incomplete { expected: u64, got: String },
}

/// Reads the audit log as an auditor: the entries `filter` selects (its `from` and `limit`
/// ignored: every page is read). With `check` (the canister and the root key), reads the
/// certified head first and the whole kept log up to it, verifies the chain and that it ends
/// in the certified head, then filters here.
pub async fn export<T: inference_client::Transport>(
    client: &inference_client::InferenceClient<T>,
    filter: &inference_api::AuditQuery,
    check: Option<(Principal, &[u8])>,
) -> Result<Export, AuditFetchError> {
    let Some((canister, root_key)) = check else {
        return Ok(Export { records: read_all(client, filter, u64::MAX).await?, verified: None });
    };
    let head = client.audit_head().await?;
    let certified_at_ns = inference_client::certified::verify_head(&head, canister, root_key)?;
    let all = read_all(client, &inference_api::AuditQuery::default(), head.next_index).await?;
    let last = verify_chain(&all)?;
    let reaches_head = match &last {
        Some(hash) => *hash == head.head_sha256 && all.last().map(|r| r.entry.index + 1) == Some(head.next_index),
        // Retention dropped every entry.
        None => head.first_index >= head.next_index,
    };
    if !reaches_head {
        let got = all.last().map_or("none".to_string(), |r| r.entry.index.to_string());
        return Err(AuditFetchError::Incomplete { expected: head.next_index.saturating_sub(1), got });
    }
    let verified = Some(CheckedHead {
        entries: all.len() as u64,
        next_index: head.next_index,
        head_sha256: head.head_sha256,
        certified_at_ns,
    });
    let records = all.into_iter().filter(|r| filter.selects(&r.entry)).collect();
    Ok(Export { records, verified })
}

/// Every page of `query` from the oldest kept entry, up to index `end` (exclusive).
async fn read_all<T: inference_client::Transport>(
    client: &inference_client::InferenceClient<T>,
    query: &inference_api::AuditQuery,
    end: u64,
) -> Result<Vec<AuditRecord>, AuditFetchError> {
    let mut records = Vec::new();
    let mut from = None;
    loop {
        let page = client.audit_log(&inference_api::AuditQuery { from, limit: None, ..query.clone() }).await??;
        records.extend(page.records.into_iter().filter(|r| r.entry.index < end));
        match page.next {
            Some(next) if next < end => from = Some(next),
            _ => return Ok(records),
        }
    }
}
