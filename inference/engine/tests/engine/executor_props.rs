//! Property test: however the executor's work is split into messages (random budgets, a fake
//! instruction meter with random per-read costs), the outputs are bit-identical to one unsplit
//! run.

use std::sync::{Arc, OnceLock};

use inference_engine::executor::{run_to_end, Job, Progress};
use inference_engine::model::{inspect, load};
use model_testdata as support;
use proptest::prelude::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::model::typed::TypedSimplePlan;

/// A bundled model's plan, its test input, and the output bits of an unsplit run.
struct Fixture {
    plan: Arc<TypedSimplePlan>,
    inputs: TVec<TValue>,
    whole: Vec<Vec<u32>>,
}

fn bits(outputs: &[TValue]) -> Vec<Vec<u32>> {
    outputs
        .iter()
        .map(|o| {
            o.cast_to::<f32>()
                .unwrap()
                .try_as_plain_ram()
                .unwrap()
                .as_slice::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        })
        .collect()
}

fn fixture(model: &str, variant: &str) -> Fixture {
    let case = support::case(model, variant);
    let info = inspect(&case.model).unwrap();
    let specs = support::specs(&case);
    let loaded = load(&case.model, &specs, info.weight_format).unwrap();
    let inputs: TVec<TValue> =
        case.inputs.iter().map(|t| Tensor::from_shape(&t.shape, &t.data).unwrap().into()).collect();
    let whole = bits(&run_to_end(&loaded.plan, inputs.clone()).unwrap());
    Fixture { plan: loaded.plan, inputs, whole }
}

/// Runs the fixture's plan message by message: message `k` gets budget `budgets[k % len]`, and
/// the fake meter (reset at each message, as the IC's counter is) advances by the next of
/// `costs` (cyclically) at each reading. Answers the output bits and the number of messages.
fn split_run(f: &Fixture, budgets: &[u64], costs: &[u64]) -> (Vec<Vec<u32>>, usize) {
    let mut job = Job::new(&f.plan, f.inputs.clone()).unwrap();
    let total = job.total_steps();
    let mut read = 0usize;
    let mut messages = 0usize;
    let mut done_before = 0;
    loop {
        let budget = budgets[messages % budgets.len()];
        messages += 1;
        let mut meter = 0u64;
        let progress = job
            .advance(budget, || {
                let now = meter;
                meter += costs[read % costs.len()];
                read += 1;
                now
            })
            .unwrap();
        match progress {
            Progress::Finished(out) => return (bits(&out), messages),
            Progress::Paused { done, total: t } => {
                assert_eq!(t, total);
                assert!(done > done_before, "every message runs at least one node");
                done_before = done;
            }
        }
    }
}

/// Budgets from a few instructions (one node per message) to more than any run takes.
fn budgets() -> impl Strategy<Value = Vec<u64>> {
    proptest::collection::vec(prop_oneof![4 => 0u64..200, 4 => 200u64..5_000, 1 => Just(u64::MAX)], 1..12)
}

fn costs() -> impl Strategy<Value = Vec<u64>> {
    proptest::collection::vec(0u64..100, 1..24)
}

static FP32: OnceLock<Fixture> = OnceLock::new();
static DYN_U8: OnceLock<Fixture> = OnceLock::new();
static QDQ: OnceLock<Fixture> = OnceLock::new();

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The f32 text-direction classifier (233 plan nodes, tract's own kernels).
    #[test]
    fn f32_model_outputs_do_not_depend_on_the_budgets(budgets in budgets(), costs in costs()) {
        let f = FP32.get_or_init(|| fixture("rapidocr_cls", "fp32"));
        let (split, _) = split_run(f, &budgets, &costs);
        prop_assert!(split == f.whole);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The same model quantized dynamically: our integer convolution, zero-point shift,
    /// transpose and dynamic quantize operators between messages.
    #[test]
    fn dynamic_int8_model_outputs_do_not_depend_on_the_budgets(budgets in budgets(), costs in costs()) {
        let f = DYN_U8.get_or_init(|| fixture("rapidocr_cls", "dyn_u8"));
        let (split, _) = split_run(f, &budgets, &costs);
        prop_assert!(split == f.whole);
    }

    /// The same model quantized statically (QDQ, Softmax included): our integer convolution,
    /// quantize/dequantize passes and the quantized-Softmax guard's nodes between messages.
    #[test]
    fn static_int8_model_outputs_do_not_depend_on_the_budgets(budgets in budgets(), costs in costs()) {
        let f = QDQ.get_or_init(|| fixture("rapidocr_cls", "qdq"));
        let (split, _) = split_run(f, &budgets, &costs);
        prop_assert!(split == f.whole);
    }
}
