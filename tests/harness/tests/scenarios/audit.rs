//! The audit log and the certified registry (#18) on the real canister: a classification's
//! receipt is its log entry; the chain verifies after upgrades and after retention drops
//! entries; a tampered export fails verification; a certified `certified_model` verifies and a
//! forged one does not; only auditors and admins read the log.

use std::cell::RefCell;
use std::time::Duration;

use agency_api::Document;
use canister_harness::deploy::{Deployment, IcTransport, AGENCY_USER};
use canister_harness::user;
use inference_api::{
    input_sha256, output_sha256, verify_chain, AuditError, AuditEvent, AuditQuery, AuditRecord, AuditRetention,
    ChainError, ChangeAction, ClassifyRequest, InputTensor, NotAuthorized, Role, TensorData,
};
use inference_client::certified::{verify_head, verify_model, verify_models, VerifyError};
use inference_client::{calls, InferenceClient};
use inference_tools::audit::{export, to_json_lines, verify_json_lines, AuditFetchError, ExportError};
use model_testdata::tabular;

const MODEL: &str = "forest";
const CALLER: u8 = 5;
const AUDITOR: u8 = 6;

fn rows(n: usize) -> InputTensor {
    let case = tabular("random_forest");
    let width = case.input_shape[1];
    InputTensor {
        shape: vec![n as u64, width as u64],
        data: TensorData::F32(case.input[..n * width as usize].to_vec()),
    }
}

/// The inference canister with a random forest active as [`MODEL`], the agency classifying
/// with it, an allowed caller and an auditor.
fn deployment() -> Deployment {
    let mut d = Deployment::new(MODEL);
    d.as_admin(calls::allow_caller(user(CALLER))).unwrap();
    d.as_admin(calls::grant_auditor(user(AUDITOR))).unwrap();
    let case = tabular("random_forest");
    let info = d.upload_as(d.maintainer, MODEL, &case.model, vec![], None, 1 << 20).expect("upload");
    let maintainer = d.maintainer;
    d.call(maintainer, calls::activate(MODEL, info.version)).0.unwrap().expect("activate");
    d
}

fn classify(d: &mut Deployment, n: usize) -> inference_api::Classification {
    let request = ClassifyRequest { model: MODEL.into(), version: None, input: rows(n), top_k: Some(1) };
    d.call(user(CALLER), calls::classify(&request)).0.unwrap().expect("classify")
}

/// Every kept entry, as the auditor pages through them.
fn log(d: &mut Deployment) -> Vec<AuditRecord> {
    let (mut records, mut from) = (Vec::new(), None);
    loop {
        let page = d.call(user(AUDITOR), calls::audit_log(&AuditQuery { from, ..Default::default() })).0.unwrap();
        let page = page.expect("the auditor reads the log");
        records.extend(page.records);
        match page.next {
            Some(next) => from = Some(next),
            None => return records,
        }
    }
}

/// The log's head, checked against the replica's certificate; answers (next index, head hash).
fn certified_head(d: &mut Deployment) -> (u64, Vec<u8>) {
    let head = d.call(user(99), calls::audit_head()).0.unwrap();
    let root_key = d.ic.root_key();
    verify_head(&head, d.inference, &root_key).expect("the head is certified");
    (head.next_index, head.head_sha256)
}

/// The whole kept log verifies as one chain that ends in the certified head.
fn assert_log_verifies(d: &mut Deployment) -> Vec<AuditRecord> {
    let records = log(d);
    let (next_index, head) = certified_head(d);
    assert_eq!(verify_chain(&records), Ok(Some(head)));
    assert_eq!(records.last().unwrap().entry.index + 1, next_index);
    records
}

#[test]
fn a_classifications_receipt_matches_its_log_entry_and_the_agency_keeps_it() {
    let mut d = deployment();
    let answer = classify(&mut d, 3);
    let receipt = answer.receipt.clone().expect("an update's answer carries its receipt");
    let records = log(&mut d);
    let record = records.iter().find(|r| r.entry.index == receipt.index).expect("the entry is in the log");
    assert_eq!(record.sha256, receipt.entry_sha256);
    assert_eq!(record.entry.caller, user(CALLER));
    let AuditEvent::Inference(inference) = &record.entry.event else { panic!("an inference entry") };
    assert_eq!((inference.endpoint.as_str(), inference.model.as_str()), ("classify", MODEL));
    assert_eq!(
        (inference.version, inference.model_sha256.as_ref()),
        (Some(answer.model.version), Some(&answer.model.sha256))
    );
    // The caller can recompute the input's hash; the output's is that of the raw outputs `infer`
    // gives for the same input.
    assert_eq!(inference.input_sha256, input_sha256(&[rows(3)]));
    assert_eq!(receipt.input_sha256, inference.input_sha256);
    let raw = d.call(user(CALLER), calls::infer(MODEL, None, &[rows(3)])).0.unwrap().expect("infer");
    assert_eq!(Some(&receipt.output_sha256), inference.output_sha256.as_ref());
    assert_eq!(receipt.output_sha256, output_sha256(&raw.outputs));
    assert_eq!((inference.error.as_ref(), inference.messages), (None, answer.messages));
    assert!(inference.instructions > 0);

    // The registry's changes were logged before it: the upload's finish, then its activation.
    let changes: Vec<ChangeAction> = records
        .iter()
        .filter_map(|r| match &r.entry.event {
            AuditEvent::Change(c) => Some(c.action),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        [ChangeAction::RoleGranted, ChangeAction::RoleGranted, ChangeAction::RoleGranted, ChangeAction::RoleGranted]
            .into_iter()
            .chain([ChangeAction::UploadFinished, ChangeAction::Activated])
            .collect::<Vec<_>>()
    );

    // A refused inference is logged with its error and no output; a stranger's is not logged.
    let bad = InputTensor { shape: vec![1, 2], data: TensorData::F32(vec![0.0, 1.0]) };
    let request = ClassifyRequest { model: MODEL.into(), version: None, input: bad.clone(), top_k: None };
    assert!(d.call(user(CALLER), calls::classify(&request)).0.unwrap().is_err());
    let before = certified_head(&mut d).0;
    assert!(d.call(user(77), calls::classify(&request)).0.is_err());
    assert_eq!(certified_head(&mut d).0, before, "a stranger's refused call is not logged");
    let last = log(&mut d).pop().unwrap();
    let AuditEvent::Inference(refused) = &last.entry.event else { panic!("an inference entry") };
    assert_eq!((refused.error.as_deref(), &refused.output_sha256), (Some("InputShape"), &None));
    assert_eq!(refused.input_sha256, input_sha256(&[bad]));
    // A large input's elements are hashed as four segments, in the canister's vector lanes: the
    // same digest as the client's (here an odd length, whose last segment is the longest).
    let large = (0..4_321).map(|i| i as f32 * 0.37).collect::<Vec<_>>();
    let large = InputTensor { shape: vec![1, 4_321], data: TensorData::F32(large) };
    const { assert!(inference_api::SEGMENTED_FROM < 4 * 4_321 && 4 * 4_321 % 256 != 0) };
    let request = ClassifyRequest { model: MODEL.into(), version: None, input: large.clone(), top_k: None };
    assert!(d.call(user(CALLER), calls::classify(&request)).0.unwrap().is_err());
    let AuditEvent::Inference(refused) = log(&mut d).pop().unwrap().entry.event else { panic!("an inference entry") };
    assert_eq!(refused.input_sha256, input_sha256(&[large]));

    // The agency canister's decision keeps its receipt, which is the entry of its call.
    let document = Document { id: "case-1".into(), image: rows(1) };
    let decision = d.call_agency(user(AGENCY_USER), agency_api::calls::decide(&document)).0.unwrap().expect("decide");
    let receipt = decision.receipt.expect("the decision keeps its receipt");
    let entry = log(&mut d).into_iter().find(|r| r.entry.index == receipt.index).unwrap();
    assert_eq!((entry.sha256, entry.entry.caller), (receipt.entry_sha256, d.agency));

    // A query cannot log (its changes are discarded), so its answer has no receipt.
    let query = ClassifyRequest { model: MODEL.into(), version: None, input: rows(1), top_k: None };
    let answer = d.call(user(CALLER), calls::classify_query(&query)).0.unwrap().expect("classify_query");
    assert_eq!(answer.receipt, None);
    assert_log_verifies(&mut d);
}

#[test]
fn the_chain_verifies_after_upgrades_and_after_retention_drops_entries() {
    let mut d = deployment();
    for n in 1..=3 {
        classify(&mut d, n);
    }
    let before = assert_log_verifies(&mut d);

    // An upgrade keeps every entry and the head; new entries chain on.
    d.upgrade_inference();
    classify(&mut d, 4);
    let after = assert_log_verifies(&mut d);
    assert_eq!(after[..before.len()], before[..]);

    // By count: only the newest 3 stay, the first kept still chains to the head.
    let controller = d.controller;
    let keep_three = AuditRetention { max_entries: Some(3), max_age_ns: None };
    d.call(controller, calls::set_audit_retention(&keep_three)).0.unwrap().expect("admins set retention");
    let kept = assert_log_verifies(&mut d);
    assert_eq!(kept.len(), 3);
    assert_eq!(kept[0], after[after.len() - 2], "dropped whole from the front, never rewritten");
    for n in 1..=5 {
        classify(&mut d, n);
        assert_eq!(assert_log_verifies(&mut d).len(), 3);
    }

    // By age: entries older than an hour go as time passes, and survive an upgrade as they were.
    let hour = AuditRetention { max_entries: None, max_age_ns: Some(3_600_000_000_000) };
    d.call(controller, calls::set_audit_retention(&hour)).0.unwrap().unwrap();
    d.ic.advance_time(Duration::from_secs(2 * 3600));
    classify(&mut d, 2);
    d.upgrade_inference();
    let kept = assert_log_verifies(&mut d);
    assert_eq!(kept.len(), 1, "only the entry of the last classification is an hour old or less");

    // Refusals: nobody but an admin sets retention, and it always keeps the head.
    let zero = AuditRetention { max_entries: Some(0), max_age_ns: None };
    assert!(matches!(
        d.call(controller, calls::set_audit_retention(&zero)).0.unwrap(),
        Err(AuditError::InvalidRequest(_))
    ));
    let maintainer = d.maintainer;
    let refused = d.call(maintainer, calls::set_audit_retention(&keep_three)).0;
    assert!(refused.is_err() || matches!(refused, Ok(Err(AuditError::NotAuthorized(_)))));
}

#[test]
fn an_export_verifies_against_the_certified_head_and_a_tampered_one_does_not() {
    let mut d = deployment();
    classify(&mut d, 2);
    classify(&mut d, 3);
    let root_key = d.ic.root_key();
    let canister = d.inference;
    let client = InferenceClient::new(IcTransport { ic: RefCell::new(&mut *d.ic), canister, sender: user(AUDITOR) });
    let filter = AuditQuery { caller: Some(user(CALLER)), ..Default::default() };
    let checked = futures::executor::block_on(export(&client, &filter, Some((canister, &root_key)))).expect("export");
    let head = checked.verified.expect("checked against the certified head");
    assert_eq!(checked.records.len(), 2, "the caller's two classifications");
    let all = futures::executor::block_on(export(&client, &AuditQuery::default(), None)).unwrap().records;
    assert_eq!(all.len() as u64, head.entries);

    let lines = to_json_lines(&all);
    let verified = verify_json_lines(&lines).expect("the export verifies");
    assert_eq!((verified.last_index + 1, verified.last_sha256), (head.next_index, head.head_sha256));

    // Any change to a line's contents, a dropped line or a swapped pair fails.
    let tampered = lines.replacen("\"instructions\":", "\"instructions\":1", 1);
    assert!(matches!(verify_json_lines(&tampered), Err(ExportError::Chain(ChainError::WrongHash { .. }))));
    let mut kept: Vec<&str> = lines.lines().collect();
    kept.remove(1);
    assert!(matches!(verify_json_lines(&kept.join("\n")), Err(ExportError::Chain(ChainError::Gap { .. }))));
    let caller = user(CALLER).to_text();
    let forged = lines.replacen(&caller, &user(88).to_text(), 1);
    assert!(verify_json_lines(&forged).is_err());

    // Checked against another canister's certificate (or another root key), the head fails.
    let other_key = {
        let mut k = root_key.clone();
        let last = k.len() - 1;
        k[last] ^= 1;
        k
    };
    let wrong = futures::executor::block_on(export(&client, &filter, Some((canister, &other_key))));
    assert!(matches!(wrong, Err(AuditFetchError::Certificate(_))));
}

#[test]
fn a_certified_model_verifies_and_a_forged_one_does_not() {
    let mut d = deployment();
    let root_key = d.ic.root_key();
    let canister = d.inference;
    // Anyone may read the certified registry (a citizen outside the subnet, say).
    let stranger = user(200);
    let reply = d.call(stranger, calls::certified_model(MODEL)).0.unwrap();
    let model = reply.model.clone().expect("the forest is active");
    verify_model(&reply, MODEL, canister, &root_key).expect("the subnet certifies it");
    let info = d.call(user(CALLER), calls::model_info(MODEL, None)).0.unwrap().unwrap();
    assert_eq!((model.version, &model.sha256), (info.version, &info.sha256));

    let mut forged = reply.clone();
    forged.model.as_mut().unwrap().version += 1;
    assert!(matches!(verify_model(&forged, MODEL, canister, &root_key), Err(VerifyError::Mismatch(_))));
    let mut forged = reply.clone();
    forged.model.as_mut().unwrap().sha256[0] ^= 1;
    assert!(matches!(verify_model(&forged, MODEL, canister, &root_key), Err(VerifyError::Mismatch(_))));
    let mut forged = reply.clone();
    forged.model = None;
    assert!(matches!(verify_model(&forged, MODEL, canister, &root_key), Err(VerifyError::Mismatch(_))));
    // Another model's witness, the certificate of another canister, or a broken signature.
    let absent = d.call(stranger, calls::certified_model("nothing")).0.unwrap();
    assert_eq!(absent.model, None);
    verify_model(&absent, "nothing", canister, &root_key).expect("a certified absence");
    let mut forged = reply.clone();
    forged.certified.as_mut().unwrap().witness = absent.certified.clone().unwrap().witness;
    assert!(verify_model(&forged, MODEL, canister, &root_key).is_err());
    assert!(matches!(verify_model(&reply, MODEL, d.agency, &root_key), Err(VerifyError::WitnessNotCertified)));
    let mut forged = reply.clone();
    let certificate = &mut forged.certified.as_mut().unwrap().certificate;
    let at = certificate.len() - 60;
    certificate[at] ^= 1;
    assert!(verify_model(&forged, MODEL, canister, &root_key).is_err());

    // The whole registry verifies; a reply that hides an active model does not.
    let other = tabular("gradient_boosting");
    let maintainer = d.maintainer;
    let info = d.upload_as(maintainer, "other", &other.model, vec![], None, 1 << 20).expect("upload");
    d.call(maintainer, calls::activate("other", info.version)).0.unwrap().expect("activate");
    let all = d.call(stranger, calls::certified_models()).0.unwrap();
    assert_eq!(all.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), [MODEL, "other"]);
    verify_models(&all, canister, &root_key).expect("the registry is certified");
    let mut hiding = all.clone();
    hiding.models.remove(1);
    assert!(matches!(verify_models(&hiding, canister, &root_key), Err(VerifyError::Mismatch(_))));
}

#[test]
fn only_auditors_and_admins_read_the_log() {
    let mut d = deployment();
    classify(&mut d, 1);
    let query = AuditQuery::default();
    let refused = |who| AuditError::NotAuthorized(NotAuthorized { caller: who, needs: Role::Auditor });
    // An agency canister, an allowed caller and a maintainer are not auditors.
    let agency = d.agency;
    let from_agency = d.call_from_canister(agency, calls::audit_log(&query)).expect("a query");
    assert_eq!(from_agency.unwrap(), Err(refused(agency)));
    assert_eq!(d.call(user(CALLER), calls::audit_log(&query)).0.unwrap(), Err(refused(user(CALLER))));
    let maintainer = d.maintainer;
    assert_eq!(d.call(maintainer, calls::audit_log(&query)).0.unwrap(), Err(refused(maintainer)));
    // Admins and auditors read it; a revoked auditor no longer does, and the revocation is logged.
    let controller = d.controller;
    assert!(d.call(controller, calls::audit_log(&query)).0.unwrap().is_ok());
    assert!(d.call(user(AUDITOR), calls::audit_log(&query)).0.unwrap().is_ok());
    d.as_admin(calls::revoke_auditor(user(AUDITOR))).unwrap();
    assert_eq!(d.call(user(AUDITOR), calls::audit_log(&query)).0.unwrap(), Err(refused(user(AUDITOR))));
    d.as_admin(calls::grant_auditor(agency)).unwrap();
    let page = d.call_from_canister(agency, calls::audit_log(&query)).unwrap().unwrap().expect("now an auditor");
    let revoked = page.records.iter().rev().find_map(|r| match &r.entry.event {
        AuditEvent::Change(c) if c.action == ChangeAction::RoleRevoked => Some(c.clone()),
        _ => None,
    });
    let revoked = revoked.expect("the revocation is logged");
    assert_eq!((revoked.subject, revoked.role.as_deref()), (Some(user(AUDITOR)), Some("auditor")));
    assert_eq!(page.records.last().unwrap().entry.caller, controller);
}
