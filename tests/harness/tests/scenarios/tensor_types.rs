//! Every element type the API carries, and symbolic dimensions, on the real canister (#14): a
//! model with one input per type and a symbolic batch is uploaded without declared shapes,
//! keeps its batch symbolic, and answers batches of two sizes in each type; bad element types,
//! ranks, empty and over-bound dimensions get typed errors; a symbolic width serves three widths
//! with the plans the cache reports.

use canister_harness::deploy::Deployment;
use canister_harness::user;
use inference_api::{DType, InferenceError, InputTensor, RegistryError, ShapeMismatch, TensorData, TensorSpec};
use inference_client::calls;
use inference_tools::upload::UploadError;
use model_testdata::onnx::{every_element_type_model, symbolic_width_model, ELEMENT_TYPES};

const CALLER: u8 = 5;

fn deployment(name: &str) -> Deployment {
    let mut d = Deployment::new(name);
    d.as_admin(calls::allow_caller(user(CALLER))).unwrap();
    d
}

/// Uploads as the maintainer and activates.
fn publish(d: &mut Deployment, name: &str, bytes: &[u8], inputs: Option<Vec<TensorSpec>>) -> inference_api::ModelInfo {
    let info = d.upload_as(d.maintainer, name, bytes, vec![], inputs, 1 << 20).expect("upload");
    let maintainer = d.maintainer;
    d.call(maintainer, calls::activate(name, info.version)).0.unwrap().expect("activate");
    info
}

/// `batch` rows of 3 elements of the type, values small enough that doubling fits every type.
fn data(dtype: &str, batch: usize) -> TensorData {
    let n = batch * 3;
    let ints = (0..n).map(|i| (i % 50) as i64 - if dtype.starts_with('u') { 0 } else { 20 });
    match dtype {
        "f32" => TensorData::F32(ints.map(|i| i as f32 * 0.25).collect()),
        "f16" => TensorData::F16(ints.map(|i| half_bits(i as f32 * 0.5)).collect()),
        "f64" => TensorData::F64(ints.map(|i| i as f64 * 0.125).collect()),
        "i8" => TensorData::I8(ints.map(|i| i as i8).collect()),
        "u8" => TensorData::U8(ints.map(|i| i as u8).collect::<Vec<_>>().into()),
        "i16" => TensorData::I16(ints.map(|i| i as i16 * 300).collect()),
        "u16" => TensorData::U16(ints.map(|i| i as u16 * 600).collect()),
        "i32" => TensorData::I32(ints.map(|i| i as i32 * 70_000).collect()),
        "u32" => TensorData::U32(ints.map(|i| i as u32 * 70_000).collect()),
        "i64" => TensorData::I64(ints.map(|i| i * 5_000_000_000).collect()),
        "u64" => TensorData::U64(ints.map(|i| i as u64 * 5_000_000_000).collect()),
        "bool" => TensorData::Bool(ints.map(|i| i % 3 == 0).collect()),
        "text" => TensorData::Text(ints.map(|i| format!("é{i}ß")).collect()),
        other => unreachable!("{other}"),
    }
}

/// The f16 bits of a small float that f16 represents exactly (a multiple of 0.5 below 64).
fn half_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x == 0.0 {
        return 0;
    }
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exponent = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    let mantissa = ((bits >> 13) & 0x3ff) as u16;
    sign | ((exponent as u16) << 10) | mantissa
}

/// What the model answers for `data`: each element doubled, negated for booleans, the same
/// for text.
fn expected(data: &TensorData) -> TensorData {
    match data {
        TensorData::F32(v) => TensorData::F32(v.iter().map(|x| x + x).collect()),
        TensorData::F32Bytes(_) => unreachable!("the f32 input is sent as a vector here"),
        TensorData::F16(v) => {
            TensorData::F16(v.iter().map(|&x| if x & 0x7fff == 0 { x } else { x + (1 << 10) }).collect())
        }
        TensorData::F64(v) => TensorData::F64(v.iter().map(|x| x + x).collect()),
        TensorData::I8(v) => TensorData::I8(v.iter().map(|x| x + x).collect()),
        TensorData::U8(v) => TensorData::U8(v.iter().map(|x| x + x).collect::<Vec<_>>().into()),
        TensorData::I16(v) => TensorData::I16(v.iter().map(|x| x + x).collect()),
        TensorData::U16(v) => TensorData::U16(v.iter().map(|x| x + x).collect()),
        TensorData::I32(v) => TensorData::I32(v.iter().map(|x| x + x).collect()),
        TensorData::U32(v) => TensorData::U32(v.iter().map(|x| x + x).collect()),
        TensorData::I64(v) => TensorData::I64(v.iter().map(|x| x + x).collect()),
        TensorData::U64(v) => TensorData::U64(v.iter().map(|x| x + x).collect()),
        TensorData::Bool(v) => TensorData::Bool(v.iter().map(|x| !x).collect()),
        TensorData::Text(v) => TensorData::Text(v.clone()),
    }
}

fn batch_of(batch: usize) -> Vec<InputTensor> {
    ELEMENT_TYPES.iter().map(|(t, _)| InputTensor { shape: vec![batch as u64, 3], data: data(t, batch) }).collect()
}

#[test]
fn every_element_type_round_trips_through_infer_with_a_symbolic_batch() {
    let mut d = deployment("types");
    let info = publish(&mut d, "types", &every_element_type_model(), None);
    // Nothing pinned: the batch stays symbolic in the version record.
    assert!(info.inputs.iter().all(|i| i.shape == vec![-1, 3]), "{:?}", info.inputs);
    let dtypes: Vec<String> = info.inputs.iter().map(|i| i.dtype.to_string()).collect();
    assert_eq!(dtypes, ELEMENT_TYPES.map(|(t, _)| t.to_string()));
    assert_eq!(DType::ALL.map(|d| d.to_string()), ELEMENT_TYPES.map(|(t, _)| t.to_string()));
    for batch in [2, 5] {
        let inputs = batch_of(batch);
        let out = d.call(user(CALLER), calls::infer("types", None, &inputs)).0.unwrap().expect("infer");
        assert_eq!(out.outputs.len(), ELEMENT_TYPES.len());
        for ((output, input), (t, _)) in out.outputs.iter().zip(&inputs).zip(ELEMENT_TYPES) {
            assert_eq!(output.name, format!("y_{t}"));
            assert_eq!(output.shape, vec![batch as u64, 3], "{t}");
            assert_eq!(output.data, expected(&input.data), "{t} at batch {batch}");
        }
    }
    let maintainer = d.maintainer;
    let cache = d.call(maintainer, calls::plan_cache()).0.unwrap().unwrap();
    assert_eq!(cache.plans, 2, "one plan per batch size: {cache:?}");
}

#[test]
fn bad_element_types_and_shapes_get_typed_errors() {
    let mut d = deployment("types");
    let bounded: Vec<TensorSpec> = ELEMENT_TYPES
        .iter()
        .map(|(t, _)| TensorSpec {
            max_shape: Some(vec![4, 3]),
            ..TensorSpec::new(format!("x_{t}"), vec![-1, 3], dtype(t))
        })
        .collect();
    publish(&mut d, "types", &every_element_type_model(), Some(bounded));
    let mut call = |inputs: Vec<InputTensor>| d.call(user(CALLER), calls::infer("types", None, &inputs)).0.unwrap();
    // f32 data for the i64 input.
    let mut wrong_type = batch_of(2);
    wrong_type[9].data = data("f32", 2);
    assert_eq!(
        call(wrong_type),
        Err(InferenceError::InputDType { input: "x_i64".into(), expected: DType::I64, got: DType::F32 })
    );
    let shape_error = |shape: Vec<u64>, mismatch| InferenceError::InputShape {
        input: "x_f32".into(),
        shape,
        declared: vec![-1, 3],
        max_shape: Some(vec![4, 3]),
        mismatch,
    };
    let mut wrong_rank = batch_of(2);
    wrong_rank[0].shape = vec![6];
    assert_eq!(call(wrong_rank), Err(shape_error(vec![6], ShapeMismatch::Rank { expected: 2 })));
    let mut wrong_width = batch_of(2);
    wrong_width[0].shape = vec![3, 2];
    assert_eq!(call(wrong_width), Err(shape_error(vec![3, 2], ShapeMismatch::Fixed { dim: 1, expected: 3 })));
    let mut empty = batch_of(2);
    empty[0] = InputTensor { shape: vec![0, 3], data: TensorData::F32(vec![]) };
    assert_eq!(call(empty), Err(shape_error(vec![0, 3], ShapeMismatch::Empty { dim: 0 })));
    assert_eq!(call(batch_of(5)), Err(shape_error(vec![5, 3], ShapeMismatch::OverBound { dim: 0, max: 4 })));
    // Within the bound it serves.
    assert!(call(batch_of(4)).is_ok());
    // Declarations that contradict the model, or themselves, are refused at upload.
    let refused = |d: &mut Deployment, inputs: Vec<TensorSpec>| match d.upload_as(
        d.maintainer,
        "types2",
        &every_element_type_model(),
        vec![],
        Some(inputs),
        1 << 20,
    ) {
        Err(UploadError::Registry(RegistryError::InvalidRequest(m))) => m,
        other => panic!("{other:?}"),
    };
    let declared = |f: &dyn Fn(&mut TensorSpec)| -> Vec<TensorSpec> {
        ELEMENT_TYPES
            .iter()
            .map(|(t, _)| {
                let mut spec = TensorSpec::new(format!("x_{t}"), vec![-1, 3], dtype(t));
                if *t == "i64" {
                    f(&mut spec);
                }
                spec
            })
            .collect()
    };
    let m = refused(&mut d, declared(&|s| s.dtype = DType::I32));
    assert!(m.contains("x_i64"), "{m}");
    let m = refused(&mut d, declared(&|s| s.shape = vec![-1, 4]));
    assert!(m.contains("fixes"), "{m}");
    let m = refused(&mut d, declared(&|s| s.max_shape = Some(vec![8, 4])));
    assert!(m.contains("max_shape[1]"), "{m}");
    let m = refused(&mut d, declared(&|s| s.shape = vec![0, 3]));
    assert!(m.contains("dimension 0 is 0"), "{m}");
    // A declaration may fix the symbolic batch: then other batches are refused.
    let fixed = declared(&|s| s.shape = vec![2, 3]);
    let info = d.upload_as(d.maintainer, "types2", &every_element_type_model(), vec![], Some(fixed), 1 << 20).unwrap();
    assert_eq!(info.inputs[9].shape, vec![2, 3]);
}

/// `y = conv(x, w)` with one output channel, 3 taps, padding 1, computed here for the check.
fn reference(x: &[f32], width: usize) -> (Vec<f32>, f32) {
    let w: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) / 8.0).collect();
    let y: Vec<f32> = (0..width)
        .map(|o| {
            let mut acc = 0f64;
            for c in 0..4 {
                for k in 0..3 {
                    let at = o as i64 + k as i64 - 1;
                    if (0..width as i64).contains(&at) {
                        acc += (x[c * width + at as usize] * w[c * 3 + k]) as f64;
                    }
                }
            }
            acc as f32
        })
        .collect();
    let mean = y.iter().map(|&v| v as f64).sum::<f64>() / width as f64;
    (y, mean as f32)
}

#[test]
fn a_symbolic_width_serves_three_widths_with_a_plan_each() {
    let mut d = deployment("line");
    let info = publish(&mut d, "line", &symbolic_width_model(), None);
    assert_eq!(info.inputs[0].shape, vec![1, 4, -1], "the width stays symbolic");
    for width in [7usize, 64, 301] {
        let x: Vec<f32> = (0..4 * width).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        let input = InputTensor { shape: vec![1, 4, width as u64], data: TensorData::F32(x.clone()) };
        let out = d.call(user(CALLER), calls::infer("line", None, &[input])).0.unwrap().expect("infer");
        let (y, mean) = reference(&x, width);
        assert_eq!(out.outputs[0].shape, vec![1, 1, width as u64]);
        let got = out.outputs[0].data.as_f32().unwrap();
        let worst = got.iter().zip(&y).map(|(g, e)| (g - e).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-5, "width {width}: max |Δ| {worst}");
        assert!((out.outputs[1].data.as_f32().unwrap()[0] - mean).abs() <= 1e-5, "width {width}");
    }
    let maintainer = d.maintainer;
    assert_eq!(d.call(maintainer, calls::plan_cache()).0.unwrap().unwrap().plans, 3);
}

/// Our element type of a name of [`ELEMENT_TYPES`] (both lists are in the same order).
fn dtype(name: &str) -> DType {
    ELEMENT_TYPES.iter().position(|(t, _)| *t == name).map(|i| DType::ALL[i]).unwrap()
}

/// A shape the model cannot be built for (#14 review): the failed build is charged to the
/// caller's quota, and remembered, so asking again costs one message and no build.
#[test]
fn a_failed_plan_build_is_charged_and_remembered() {
    use model_testdata::onnx::{ElemType as DataType, Graph};
    let mut d = deployment("reshape");
    // A symbolic batch reshaped to one row: it builds (and activates) at batch 1, never at 2.
    let model = Graph::new(17)
        .input("x", DataType::Float, &[-1, 4])
        .output("y", DataType::Float)
        .i64("shape", &[2], &[1, 4])
        .node("Reshape", &["x", "shape"], &["y"], vec![])
        .to_bytes();
    let info = publish(&mut d, "reshape", &model, None);
    assert_eq!(info.inputs[0].shape, vec![-1, 4]);
    let rows = |n: usize| InputTensor { shape: vec![n as u64, 4], data: TensorData::F32(vec![0.5; 4 * n]) };
    let call = |d: &mut Deployment, who: u8, n| {
        let (reply, cost) = d.call(user(who), calls::infer("reshape", None, &[rows(n)]));
        (reply.expect("infer replies"), cost.messages.expect("the local replica counts messages"))
    };
    let (first, messages) = call(&mut d, CALLER, 2);
    let Err(InferenceError::Engine(why)) = first else { panic!("{first:?}") };
    assert!(messages > 1, "the build ran in a message of its own ({messages} messages)");
    let (again, messages) = call(&mut d, CALLER, 2);
    assert_eq!(again, Err(InferenceError::Engine(why)), "the same refusal");
    assert_eq!(messages, 1, "remembered: no build this time");
    assert!(call(&mut d, CALLER, 1).0.is_ok(), "the shape the model takes still serves");
    // Another caller under a quota far below one build: its failed build (a shape not tried
    // yet) spends the quota, so its next call, however small, is refused.
    const OTHER: u8 = 6;
    d.as_admin(calls::allow_caller(user(OTHER))).unwrap();
    d.configure(|c| c.instruction_quota_per_caller = 1_000_000);
    assert!(matches!(call(&mut d, OTHER, 3).0, Err(InferenceError::Engine(_))));
    assert!(
        matches!(call(&mut d, OTHER, 1).0, Err(InferenceError::QuotaExceeded { .. })),
        "the failed build was charged"
    );
}

/// A model whose reduction axes are an input (#14): tract needs them to build a plan, so the
/// canister builds one per value a call brings, as per shape. Each answer is the reduction
/// over the axes sent; the same axes again reuse their plan; a value the model refuses is a
/// typed error that leaves the others serving, and an oversized one is refused before any build.
#[test]
fn reduction_axes_sent_by_the_caller_build_a_plan_per_value() {
    use model_testdata::onnx::{int, ElemType as DataType, Graph};
    let mut d = deployment("reduce");
    let model = Graph::new(17)
        .input("x", DataType::Float, &[2, 3, 4])
        .input("axes", DataType::Int64, &[-1])
        .output("y", DataType::Float)
        .node("ReduceSum", &["x", "axes"], &["y"], vec![int("keepdims", 0)])
        .to_bytes();
    let info = publish(&mut d, "reduce", &model, None);
    assert_eq!(info.plan_value_inputs, Some(vec![1]), "the axes build the plan");
    let x: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
    let at = |i: usize, j: usize, k: usize| x[i * 12 + j * 4 + k];
    let call = |d: &mut Deployment, axes: &[i64]| {
        let inputs = [
            InputTensor { shape: vec![2, 3, 4], data: TensorData::F32(x.clone()) },
            InputTensor { shape: vec![axes.len() as u64], data: TensorData::I64(axes.to_vec()) },
        ];
        d.call(user(CALLER), calls::infer("reduce", None, &inputs)).0.unwrap()
    };
    let over_rows: Vec<f32> = (0..2).flat_map(|i| (0..4).map(move |k| (0..3).map(|j| at(i, j, k)).sum())).collect();
    let over_columns: Vec<f32> = (0..2).flat_map(|i| (0..3).map(move |j| (0..4).map(|k| at(i, j, k)).sum())).collect();
    let over_both: Vec<f32> = (0..3).map(|j| (0..2).flat_map(|i| (0..4).map(move |k| at(i, j, k))).sum()).collect();
    for (axes, shape, want) in
        [(&[1][..], vec![2, 4], &over_rows), (&[2], vec![2, 3], &over_columns), (&[0, -1], vec![3], &over_both)]
    {
        let out = call(&mut d, axes).expect("infer");
        assert_eq!(out.outputs[0].shape, shape, "axes {axes:?}");
        assert_eq!(out.outputs[0].data.as_f32().unwrap(), want.as_slice(), "axes {axes:?}");
    }
    let maintainer = d.maintainer;
    assert_eq!(d.call(maintainer, calls::plan_cache()).0.unwrap().unwrap().plans, 3);
    assert_eq!(call(&mut d, &[1]).unwrap().outputs[0].data.as_f32().unwrap(), over_rows.as_slice());
    assert_eq!(d.call(maintainer, calls::plan_cache()).0.unwrap().unwrap().plans, 3, "the same axes, the same plan");
    assert!(matches!(call(&mut d, &[7]), Err(InferenceError::Engine(_))), "an axis the input lacks");
    let too_many = vec![0i64; 65];
    assert!(
        matches!(call(&mut d, &too_many), Err(InferenceError::InvalidInput(m)) if m.contains("at most 64")),
        "an oversized plan value is refused before any build"
    );
    assert_eq!(call(&mut d, &[2]).unwrap().outputs[0].data.as_f32().unwrap(), over_columns.as_slice());
}
