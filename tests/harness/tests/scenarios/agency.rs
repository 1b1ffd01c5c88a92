//! The example agency canister on the real canisters: only its users decide, only its readers
//! (and admins) read, the first call for a document id wins, a failed or trapped call gives its
//! id back, storage is bounded without eviction, and inputs are validated with typed errors.

use agency_api::{AgencyError, AgencyRole, Decision, Document, Roles, Settings, MAX_DOCUMENT_ID_BYTES, MAX_PAGE};
use canister_harness::deploy::{Deployment, AGENCY_USER};
use canister_harness::{await_call, canister_wasm, submit_call, user, Call, CallError, Principal};
use inference_api::InferenceError;
use model_testdata::{case, Case};

use crate::text_direction::{deployed, MODEL};

fn document(id: &str, c: &Case) -> Document {
    Document { id: id.into(), image: canister_harness::cases::input(c) }
}

fn agency<R: candid::CandidType + serde::de::DeserializeOwned>(
    d: &mut Deployment,
    who: Principal,
    call: Call<R>,
) -> Result<R, CallError> {
    d.call_agency(who, call).0
}

fn decide(d: &mut Deployment, who: Principal, doc: &Document) -> Result<Result<Decision, AgencyError>, CallError> {
    agency(d, who, agency_api::calls::decide(doc))
}

fn admin<R: candid::CandidType + serde::de::DeserializeOwned>(d: &mut Deployment, call: Call<R>) -> R {
    let controller = d.controller;
    agency(d, controller, call).expect("the admin's call replies")
}

fn refusal(caller: Principal, needs: AgencyRole) -> AgencyError {
    AgencyError::NotAuthorized { caller, needs }
}

const USER: fn() -> Principal = || user(AGENCY_USER);

#[test]
fn only_users_decide_so_a_stranger_can_neither_get_inference_nor_squat_an_id() {
    let (mut d, c) = deployed();
    let stranger = user(7);
    let doc = document("permit-0001", &c);
    // A stranger's ingress `decide` is refused before it runs (inspect_message), and so is the
    // anonymous principal's.
    assert!(decide(&mut d, stranger, &doc).is_err(), "a stranger must not get a decision");
    assert!(decide(&mut d, Principal::anonymous(), &doc).is_err());
    // The id was not taken: the agency's user decides it, and the decision says who asked.
    let decision = decide(&mut d, USER(), &doc).unwrap().expect("the user's decision");
    assert_eq!(decision.submitted_by, Some(USER()));
    // Admins grant and revoke the user role; the anonymous principal can hold none.
    assert_eq!(admin(&mut d, agency_api::calls::set_user(stranger, true)), Ok(()));
    let own = decide(&mut d, stranger, &document("permit-0002", &c)).unwrap().expect("a granted user decides");
    assert_eq!(own.submitted_by, Some(stranger));
    // Another user learns the id is taken, not what was decided about someone else's document.
    let taken = AgencyError::AlreadyDecided { document_id: doc.id.clone(), decision: None };
    assert_eq!(decide(&mut d, stranger, &doc).unwrap(), Err(taken));
    assert_eq!(admin(&mut d, agency_api::calls::set_user(stranger, false)), Ok(()));
    assert!(decide(&mut d, stranger, &document("permit-0003", &c)).is_err(), "revoked");
    assert_eq!(
        admin(&mut d, agency_api::calls::set_user(Principal::anonymous(), true)),
        Err(AgencyError::AnonymousPrincipal)
    );
    let roles = admin(&mut d, agency_api::calls::roles()).unwrap();
    assert_eq!(roles, Roles { users: vec![USER()], readers: vec![USER()] });
    // Only admins manage roles: refused at ingress for updates, typed in the method for queries.
    assert!(agency(&mut d, USER(), agency_api::calls::set_user(stranger, true)).is_err());
    assert!(agency(&mut d, USER(), agency_api::calls::set_reader(USER(), true)).is_err());
    assert_eq!(agency(&mut d, USER(), agency_api::calls::roles()).unwrap(), Err(refusal(USER(), AgencyRole::Admin)));
    assert!(decide(&mut d, stranger, &document("permit-0003", &c)).is_err());
}

#[test]
fn concurrent_calls_for_one_id_make_exactly_one_decision() {
    let (mut d, c) = deployed();
    let other = user(7);
    admin(&mut d, agency_api::calls::set_user(other, true)).unwrap();
    // Several messages per inference, so both calls are in flight together.
    d.set_budget(5_000_000);
    let doc = document("permit-0042", &c);
    let call = agency_api::calls::decide(&doc);
    let first = submit_call(&mut *d.ic, d.agency, USER(), &call).expect("accepted");
    let second = submit_call(&mut *d.ic, d.agency, other, &call).expect("accepted");
    let second = await_call(&mut *d.ic, second, &call).0.expect("replies");
    let first = await_call(&mut *d.ic, first, &call).0.expect("replies");
    assert_eq!(second, Err(AgencyError::InProgress { document_id: doc.id.clone() }));
    let decision = first.expect("the first caller's decision");
    assert_eq!(decision.submitted_by, Some(USER()));
    let page = agency(&mut d, USER(), agency_api::calls::decisions(None, 10)).unwrap().unwrap();
    assert_eq!((page.total, page.decisions), (1, vec![decision]));
}

#[test]
fn a_failed_inference_gives_the_id_back() {
    // No model published yet: the inference canister refuses, and the id stays free.
    let mut d = Deployment::new(MODEL);
    let c = case("rapidocr_cls", "fp32");
    let doc = document("permit-0007", &c);
    let unknown = AgencyError::Inference(InferenceError::UnknownModel(MODEL.into()));
    assert_eq!(decide(&mut d, USER(), &doc).unwrap(), Err(unknown));
    d.publish(MODEL, &c, &["0", "180"]);
    assert!(decide(&mut d, USER(), &doc).unwrap().is_ok(), "the retry decides");
}

/// Local replica only (PocketIC cannot inject a trap): the agency's message that gets the
/// inference canister's reply traps; the reservation does not outlive the call.
#[test]
fn a_trap_after_the_inference_call_gives_the_id_back() {
    use canister_harness::LocalBackend;
    let c = case("rapidocr_cls", "fp32");
    let mut d = Deployment::with_backend(Box::new(LocalBackend::new()), MODEL);
    d.publish(MODEL, &c, &["0", "180"]);
    d.set_budget(5_000_000);
    let doc = document("permit-0099", &c);
    let call = agency_api::calls::decide(&doc);
    let first = submit_call(&mut *d.ic, d.agency, USER(), &call).expect("accepted");
    // While the first call waits for the inference canister, its id is reserved...
    let second = submit_call(&mut *d.ic, d.agency, USER(), &call).expect("accepted");
    let second = await_call(&mut *d.ic, second, &call).0.expect("replies");
    assert_eq!(second, Err(AgencyError::InProgress { document_id: doc.id.clone() }));
    // ...then the agency's next message, the reply's callback, traps.
    let agency = d.agency;
    d.ic.as_any().downcast_mut::<LocalBackend>().unwrap().replica.trap_nth_message(agency, 1);
    let err = await_call(&mut *d.ic, first, &call).0.expect_err("the callback trapped");
    assert!(err.to_string().contains("injected trap"), "{err}");
    // The call's cleanup released the id: nothing was recorded and a retry decides.
    assert_eq!(agency_decision(&mut d, &doc.id), None);
    assert!(decide(&mut d, USER(), &doc).unwrap().is_ok(), "the retry decides");
}

fn agency_decision(d: &mut Deployment, id: &str) -> Option<Decision> {
    agency(d, USER(), agency_api::calls::decision(id)).unwrap().unwrap()
}

#[test]
fn decisions_are_read_only_by_readers_and_admins_a_page_at_a_time_and_survive_an_upgrade() {
    let (mut d, c) = deployed();
    let (user_only, stranger, auditor) = (user(7), user(8), user(10));
    admin(&mut d, agency_api::calls::set_user(user_only, true)).unwrap();
    let mut decided = vec![];
    for id in ["a-1", "a-2", "a-3"] {
        decided.push(decide(&mut d, USER(), &document(id, &c)).unwrap().unwrap());
    }
    // Neither a stranger nor a user that is no reader reads anything (queries are not filtered
    // at ingress: the methods refuse, typed).
    for who in [stranger, user_only, Principal::anonymous()] {
        let needs_reader = refusal(who, AgencyRole::Reader);
        assert_eq!(agency(&mut d, who, agency_api::calls::decision("a-1")).unwrap(), Err(needs_reader.clone()));
        assert_eq!(agency(&mut d, who, agency_api::calls::decisions(None, 10)).unwrap().err(), Some(needs_reader));
        assert!(matches!(
            agency(&mut d, who, agency_api::calls::settings()).unwrap(),
            Err(AgencyError::NotAuthorized { .. })
        ));
    }
    // Readers and admins page through them in id order.
    admin(&mut d, agency_api::calls::set_reader(auditor, true)).unwrap();
    let controller = d.controller;
    for who in [USER(), auditor, controller] {
        let first = agency(&mut d, who, agency_api::calls::decisions(None, 2)).unwrap().unwrap();
        assert_eq!((first.decisions.as_slice(), first.next.as_deref(), first.total), (&decided[..2], Some("a-2"), 3));
        let rest = agency(&mut d, who, agency_api::calls::decisions(first.next.as_deref(), 2)).unwrap().unwrap();
        assert_eq!((rest.decisions.as_slice(), rest.next), (&decided[2..], None));
        assert_eq!(agency(&mut d, who, agency_api::calls::decision("a-3")).unwrap(), Ok(Some(decided[2].clone())));
        assert_eq!(agency(&mut d, who, agency_api::calls::decision("nope")).unwrap(), Ok(None));
    }
    // A page is never larger than MAX_PAGE, whatever is asked (0 asks for a full page).
    for limit in [0, MAX_PAGE + 1, u32::MAX] {
        let page = agency(&mut d, auditor, agency_api::calls::decisions(None, limit)).unwrap().unwrap();
        assert_eq!((page.decisions.len(), page.next), (3, None));
    }
    admin(&mut d, agency_api::calls::set_reader(auditor, false)).unwrap();
    assert_eq!(
        agency(&mut d, auditor, agency_api::calls::decision("a-1")).unwrap(),
        Err(refusal(auditor, AgencyRole::Reader))
    );
    // Decisions, roles and settings are in stable memory: an upgrade keeps them.
    let (agency_id, wasm) = (d.agency, canister_wasm("agency_canister"));
    d.ic.upgrade_canister(agency_id, &wasm, candid::encode_args(()).unwrap(), controller).expect("upgrade");
    let all = agency(&mut d, USER(), agency_api::calls::decisions(None, 0)).unwrap().unwrap();
    assert_eq!(all.decisions, decided);
    assert!(decide(&mut d, USER(), &document("a-4", &c)).unwrap().is_ok());
    assert!(decide(&mut d, user_only, &document("a-5", &c)).unwrap().is_ok());
    assert!(agency(&mut d, auditor, agency_api::calls::decision("a-1")).unwrap().is_err());
}

#[test]
fn a_full_store_refuses_new_documents_and_evicts_nothing() {
    let (mut d, c) = deployed();
    let settings = |max| Settings {
        inference_canister: d.inference,
        model: MODEL.into(),
        max_decisions: max,
        text_model: None,
        text_canister: None,
    };
    let (two, three, zero) = (settings(Some(2)), settings(Some(3)), settings(Some(0)));
    // Only admins change settings; the limit has a range.
    assert!(agency(&mut d, USER(), agency_api::calls::set_settings(&two)).is_err());
    let out_of_range = AgencyError::OutOfRange {
        field: "max_decisions".into(),
        value: 0,
        min: 1,
        max: agency_api::MAX_DECISIONS_LIMIT,
    };
    assert_eq!(admin(&mut d, agency_api::calls::set_settings(&zero)), Err(out_of_range));
    assert_eq!(admin(&mut d, agency_api::calls::set_settings(&two)), Ok(()));
    assert_eq!(agency(&mut d, USER(), agency_api::calls::settings()).unwrap(), Ok(two.clone()));
    let a = decide(&mut d, USER(), &document("f-1", &c)).unwrap().unwrap();
    let b = decide(&mut d, USER(), &document("f-2", &c)).unwrap().unwrap();
    assert_eq!(decide(&mut d, USER(), &document("f-3", &c)).unwrap(), Err(AgencyError::StorageFull { limit: 2 }));
    let page = agency(&mut d, USER(), agency_api::calls::decisions(None, 0)).unwrap().unwrap();
    assert_eq!(page.decisions, vec![a, b]);
    // Decisions in progress count: two concurrent calls cannot both take the last record.
    admin(&mut d, agency_api::calls::set_settings(&three)).unwrap();
    d.set_budget(5_000_000);
    let (x, y) = (agency_api::calls::decide(&document("f-3", &c)), agency_api::calls::decide(&document("f-4", &c)));
    let sx = submit_call(&mut *d.ic, d.agency, USER(), &x).expect("accepted");
    let sy = submit_call(&mut *d.ic, d.agency, USER(), &y).expect("accepted");
    let ry = await_call(&mut *d.ic, sy, &y).0.expect("replies");
    let rx = await_call(&mut *d.ic, sx, &x).0.expect("replies");
    assert!(rx.is_ok(), "{rx:?}");
    assert_eq!(ry, Err(AgencyError::StorageFull { limit: 3 }));
}

#[test]
fn document_ids_are_validated() {
    let (mut d, c) = deployed();
    let max = MAX_DOCUMENT_ID_BYTES as u64;
    let invalid = |length| Err(AgencyError::InvalidDocumentId { length, max });
    assert_eq!(decide(&mut d, USER(), &document("", &c)).unwrap(), invalid(0));
    let long = "x".repeat(MAX_DOCUMENT_ID_BYTES + 1);
    assert_eq!(decide(&mut d, USER(), &document(&long, &c)).unwrap(), invalid(max + 1));
    // Counted in bytes: 43 three-byte characters are 129 bytes.
    assert_eq!(decide(&mut d, USER(), &document(&"€".repeat(43), &c)).unwrap(), invalid(129));
    let longest = "y".repeat(MAX_DOCUMENT_ID_BYTES);
    assert_eq!(decide(&mut d, USER(), &document(&longest, &c)).unwrap().unwrap().document_id, longest);
    // None of the refusals took a record.
    let page = agency(&mut d, USER(), agency_api::calls::decisions(None, 0)).unwrap().unwrap();
    assert_eq!(page.total, 1);
}
