//! The real inference canister wasm, run on the backend the environment selects.

use canister_harness::{backend, canister_wasm, canister_wasm_path, query_candid_as, update_candid_as, user, Ic};
use inference_canister::{EngineError, PlatformInfo, SelfTestReport};

fn installed() -> (Box<dyn Ic>, candid::Principal) {
    let mut ic = backend();
    let controller = user(1);
    let id = ic.create_canister(controller);
    ic.install_canister(id, &canister_wasm("inference_canister"), candid::encode_args(()).unwrap(), controller)
        .expect("the inference canister installs");
    (ic, id)
}

#[test]
fn tract_kernels_and_constructors_work_across_consecutive_messages() {
    let (mut ic, id) = installed();
    let mut reports = Vec::new();
    let mut digests = Vec::new();
    for _message in 0..3 {
        let (platform, _) = query_candid_as::<_, (PlatformInfo,)>(&mut *ic, id, user(2), "platform_report", ());
        let platform = platform.expect("platform_report replies").0;
        assert!(platform.wasm_simd_active, "tract selected no wasm simd128 kernel: {platform:?}");
        assert!(platform.isa.contains("simd128"), "{platform:?}");
        assert!(platform.routines_registered > 0);
        reports.push(platform);

        let (outcome, cost) =
            update_candid_as::<_, (Result<SelfTestReport, EngineError>,)>(&mut *ic, id, user(2), "self_test", ());
        let report = outcome.expect("self_test replies").0.expect("self_test succeeds");
        assert!(
            report.plan.iter().any(|node| node.contains("wasm_f32")),
            "the optimised plan uses no wasm simd128 matmul kernel: {:?}",
            report.plan
        );
        assert!(report.instructions > 0);
        if let Some(measured) = cost.instructions {
            // The canister read its counter before replying; the replica counts the whole message.
            assert!(measured >= report.instructions, "{measured} < {}", report.instructions);
            assert_eq!(cost.messages, Some(1));
        }
        digests.push(report.output_sha256);
    }
    // Constructors ran once: the registry is the same in every message, and so are the results.
    assert!(reports.windows(2).all(|w| w[0] == w[1]), "{reports:?}");
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
}

#[test]
fn the_self_test_survives_an_upgrade_bit_for_bit() {
    let (mut ic, id) = installed();
    let run = |ic: &mut dyn Ic| {
        let (r, _) = update_candid_as::<_, (Result<SelfTestReport, EngineError>,)>(ic, id, user(2), "self_test", ());
        r.unwrap().0.unwrap().output_sha256
    };
    let before = run(&mut *ic);
    ic.upgrade_canister(id, &canister_wasm("inference_canister"), candid::encode_args(()).unwrap(), user(1))
        .expect("upgrade by the controller");
    assert_eq!(run(&mut *ic), before);
}

#[test]
fn the_module_fits_the_ic_limits_with_a_quarter_to_spare() {
    let wasm = std::fs::read(canister_wasm_path("inference_canister")).unwrap();
    let mut code_bytes = 0;
    let mut imports = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&wasm) {
        match payload.unwrap() {
            wasmparser::Payload::CodeSectionStart { size, .. } => code_bytes = size as usize,
            wasmparser::Payload::ImportSection(s) => {
                for i in s.into_imports() {
                    imports.push(i.unwrap().module.to_string());
                }
            }
            _ => {}
        }
    }
    let budget = 10 * 1024 * 1024 * 3 / 4;
    assert!(code_bytes <= budget, "code section {code_bytes} bytes > 7.5 MiB");
    assert!(imports.iter().all(|m| m == "ic0"), "{imports:?}");
}
