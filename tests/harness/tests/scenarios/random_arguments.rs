//! Issue #13's property over the whole interface: random candid-valid arguments (candid's own
//! generator, from `inference/inference.did`) to every method, as anonymous ingress, as an
//! unlisted canister, as an allowed agency and as a maintainer. For each call:
//! - no trap other than the documented ones (the ingress filter's refusal, and an argument
//!   refused by its size limit or decoding quota, `inference/canister/src/args.rs`);
//! - a caller without the method's role gets its refusal (an `Err`), leaves stable memory
//!   byte-for-byte unchanged, and the refusal costs at most `REFUSAL_BOUND` instructions.

use std::path::PathBuf;

use candid::types::TypeInner;
use candid::{IDLArgs, Principal};
use candid_parser::configs::Configs;
use candid_parser::utils::CandidSource;
use canister_harness::deploy::Deployment;
use canister_harness::{user, CallOutcome};
use inference_api::{ClassifyRequest, InputTensor, JobRequest, TensorData};
use inference_client::calls;
use model_testdata::case;

/// What refusing a caller may cost, decoding its argument included.
const REFUSAL_BOUND: u64 = 5_000_000;
/// Random arguments per method and caller.
const CASES: u64 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    AnonymousIngress,
    UnlistedCanister,
    Agency,
    Maintainer,
}

/// The methods each caller may call (its role); everything else must be refused.
fn may_call(caller: Caller, method: &str) -> bool {
    // Names from the typed client, which holds every method name (#12).
    let request = ClassifyRequest {
        model: String::new(),
        version: None,
        input: InputTensor { shape: vec![], data: TensorData::F32(vec![]) },
        top_k: None,
    };
    let job = JobRequest::Classify(request.clone());
    let anyone = [
        calls::platform_report().method,
        calls::audit_head().method,
        calls::certified_models().method,
        calls::certified_model("").method,
    ];
    let own_jobs = [calls::status(0).method, calls::result(0).method, calls::cancel(0).method];
    let callers = [
        calls::classify(&request).method,
        calls::classify_query(&request).method,
        calls::infer("", None, &[]).method,
        calls::submit(&job).method,
        calls::list_models(None).method,
        calls::model_info("", None).method,
        calls::active_version("").method,
        calls::serving_versions("").method,
        calls::pool().method,
    ];
    match caller {
        Caller::AnonymousIngress => anyone.contains(&method),
        // Any principal may ask about its own jobs: it has none, so it gets `UnknownJob`.
        Caller::UnlistedCanister => anyone.contains(&method) || own_jobs.contains(&method),
        Caller::Agency => anyone.contains(&method) || own_jobs.contains(&method) || callers.contains(&method),
        Caller::Maintainer => true,
    }
}

/// Fixed bytes for candid's generator, different per method and case (splitmix64), so every run
/// sends the same arguments.
fn entropy(method: &str, case: u64) -> Vec<u8> {
    let mut state = method
        .bytes()
        .fold(case.wrapping_mul(0x9e37_79b9_7f4a_7c15), |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (0..512)
        .flat_map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)).to_le_bytes()
        })
        .collect()
}

fn documented_reject(message: &str) -> bool {
    message.contains("inspect_message") || message.contains("the argument")
}

/// The `Err` case of a reply, if the reply is a result.
fn is_err(reply: &IDLArgs) -> bool {
    matches!(reply.args.first(), Some(candid::IDLValue::Variant(v)) if v.0.id == candid::types::Label::Named("Err".into()) || v.0.id == candid::types::Label::Id(candid::idl_hash("Err")))
}

#[test]
fn random_arguments_to_every_method_from_every_kind_of_caller() {
    let did = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../inference/inference.did");
    let (env, actor) = CandidSource::File(&did).load().expect("inference.did parses");
    let actor = actor.expect("a service");
    let methods = env.as_service(&actor).expect("a service").to_vec();
    assert!(methods.len() >= 30, "{} methods", methods.len());

    let mut d = Deployment::new("cls");
    let c = case("rapidocr_cls", "fp32");
    d.publish("cls", &c, &["0", "180"]);
    let unlisted = d.ic.create_canister(user(62));
    let configs: Configs = "".parse().unwrap();
    let mut refusals = 0;
    // Stable memory's sha256 as the last refused call left it (checked unchanged by it), so the
    // next refusal need not hash it again; `None` once an allowed call may have changed it.
    // Hashing hundreds of MB is most of this test's time.
    let mut after_last_refusal: Option<Option<[u8; 32]>> = None;
    for (method, func) in &methods {
        let func = env.as_func(func).expect("a function").clone();
        for caller in [Caller::AnonymousIngress, Caller::UnlistedCanister, Caller::Agency, Caller::Maintainer] {
            for seed in 0..CASES {
                let seed_bytes = entropy(method, seed);
                let args = candid_parser::random::any(&seed_bytes, configs.clone(), &env, &func.args, &None)
                    .expect("a random argument");
                let arg = args.to_bytes_with_types(&env, &func.args).expect("encodes");
                let allowed = may_call(caller, method);
                let known = after_last_refusal.take();
                let before = (!allowed).then(|| known.unwrap_or_else(|| d.ic.stable_memory_sha256(d.inference)));
                let outcome: CallOutcome = match (caller, func.is_query()) {
                    (_, true) => {
                        let who = match caller {
                            Caller::AnonymousIngress => Principal::anonymous(),
                            Caller::UnlistedCanister => unlisted,
                            Caller::Agency => d.agency,
                            Caller::Maintainer => d.maintainer,
                        };
                        d.ic.query_call(d.inference, who, method, arg)
                    }
                    (Caller::AnonymousIngress, false) => {
                        d.ic.update_call(d.inference, Principal::anonymous(), method, arg)
                    }
                    (Caller::Maintainer, false) => d.ic.update_call(d.inference, d.maintainer, method, arg),
                    (Caller::UnlistedCanister, false) => {
                        d.ic.call_from_canister(d.inference, unlisted, method, arg).expect("local replica")
                    }
                    (Caller::Agency, false) => {
                        d.ic.call_from_canister(d.inference, d.agency, method, arg).expect("local replica")
                    }
                };
                let context = format!("{method} as {caller:?}, case {seed}: {args}");
                match &outcome.result {
                    Err(reject) => assert!(documented_reject(&reject.message), "{context}: {reject:?}"),
                    Ok(reply) if !allowed => {
                        let reply = IDLArgs::from_bytes_with_types(reply, &env, &func.rets).expect("decodes");
                        let result_type = func.rets.first().map(|t| env.trace_type(t).unwrap());
                        let returns_result =
                            matches!(result_type.as_ref().map(|t| t.as_ref()), Some(TypeInner::Variant(_)));
                        assert!(returns_result && is_err(&reply), "{context}: refused callers get an Err: {reply}");
                    }
                    Ok(_) => {}
                }
                if let Some(before) = before {
                    refusals += 1;
                    let after = d.ic.stable_memory_sha256(d.inference);
                    assert_eq!(after, before, "{context} changed stable memory");
                    after_last_refusal = Some(after);
                    if let Some(instructions) = outcome.cost.instructions {
                        assert!(instructions <= REFUSAL_BOUND, "{context}: {instructions} instructions to refuse");
                    }
                }
            }
        }
    }
    assert!(refusals >= 100, "{refusals} refusals checked");
}
