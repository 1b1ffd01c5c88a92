//! Reading ONNX models: what they contain (inspection at upload) and turning their bytes into an
//! optimised tract plan (at activation, or lazily after an upgrade).

use std::collections::BTreeSet;
use std::sync::Arc;

use tract_onnx::pb::{self, tensor_shape_proto::dimension, type_proto};
use tract_onnx::prelude::tract_data::internal::{bail, ensure};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::model::typed::TypedSimplePlan;

use crate::onnx::quantized_weights::QuantizedWeights;
use crate::passes::{self, Context, Stage};
use crate::types::{DType, TensorSpec, WeightFormat};

/// What an ONNX file declares and whether tract can run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Distinct operator types, `domain::Op` for non-default domains, sorted.
    pub operators: Vec<String>,
    /// Operators no parser we register knows.
    pub unsupported: Vec<String>,
    pub weight_format: WeightFormat,
    pub parameters: u64,
    /// `metadata_props` of the model (some carry class labels).
    pub metadata: Vec<(String, String)>,
    /// The class labels of its ONNX-ML classifier (`classlabels_*` of its first
    /// `TreeEnsembleClassifier`, `SVMClassifier` or `LinearClassifier`), in class order.
    pub class_labels: Vec<String>,
    /// The inputs (positions in `inputs`) whose values tract needs to build a plan: a
    /// reduction's axes, a target shape, resize scales, pads, quantization scales… (see
    /// [`crate::onnx::plan_values`]). Such a model builds with [`load_with_values`].
    pub plan_value_inputs: Vec<usize>,
}

/// The `classlabels_*` attribute of the graph's first ONNX-ML classifier.
fn class_labels(graph: &pb::GraphProto) -> Vec<String> {
    const CLASSIFIERS: [&str; 3] = ["TreeEnsembleClassifier", "SVMClassifier", "LinearClassifier"];
    let Some(node) = graph.node.iter().find(|n| CLASSIFIERS.contains(&n.op_type.as_str())) else { return vec![] };
    for attribute in &node.attribute {
        match attribute.name.as_str() {
            "classlabels_int64s" | "classlabels_ints" if !attribute.ints.is_empty() => {
                return attribute.ints.iter().map(i64::to_string).collect();
            }
            "classlabels_strings" if !attribute.strings.is_empty() => {
                return attribute.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect();
            }
            _ => {}
        }
    }
    vec![]
}

fn spec(v: &pb::ValueInfoProto) -> TensorSpec {
    let (shape, dtype) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => {
            let shape = t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(dimension::Value::DimValue(v)) if v > 0 => v,
                            _ => -1,
                        })
                        .collect()
                })
                .unwrap_or_default();
            (shape, DType::from_onnx(t.elem_type))
        }
        _ => (vec![], DType::Other),
    };
    TensorSpec::new(v.name.clone(), shape, dtype)
}

/// The parser with our own operators registered (see [`crate::onnx`]).
pub fn onnx() -> tract_onnx::Onnx {
    let mut parser = tract_onnx::onnx();
    crate::onnx::register(&mut parser.op_register);
    parser
}

/// Reads the model's declaration without building it.
pub fn inspect(bytes: &[u8]) -> Result<Inspection, String> {
    let parser = onnx();
    let proto = parser.proto_model_for_read(&mut &*bytes).map_err(|e| format!("not a readable ONNX model: {e}"))?;
    let graph = proto.graph.as_ref().ok_or("the ONNX model has no graph")?;
    let initializers: BTreeSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut operators = BTreeSet::new();
    let mut unsupported = BTreeSet::new();
    for node in &graph.node {
        let name = if node.domain.is_empty() || node.domain == "ai.onnx" {
            node.op_type.clone()
        } else {
            format!("{}::{}", node.domain, node.op_type)
        };
        let rewritten = crate::onnx::REWRITTEN_OPERATORS.contains(&node.op_type.as_str());
        if !parser.op_register.0.contains_key(&node.op_type) && !rewritten {
            unsupported.insert(name.clone());
        }
        operators.insert(name);
    }
    unsupported.extend(crate::onnx::reverse_rnn::unsupported(&proto));
    unsupported.extend(crate::onnx::ignored_attributes::unsupported(graph));
    let (mut by_type, mut parameters) = ([0u64; 3], 0u64);
    // Weights are initializers, or `Constant` nodes' values in some exporters' output.
    let constants = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Constant")
        .flat_map(|n| n.attribute.iter().filter_map(|a| a.t.as_ref()));
    for t in graph.initializer.iter().chain(constants) {
        let n = t.dims.iter().product::<i64>().max(1) as u64;
        parameters += n;
        match DType::from_onnx(t.data_type) {
            DType::F32 => by_type[0] += n,
            DType::F16 => by_type[1] += n,
            DType::I8 | DType::U8 => by_type[2] += n,
            _ => {}
        }
    }
    let weight_format = if by_type[2] * 2 >= parameters.max(1) {
        WeightFormat::Int8
    } else if by_type[1] > by_type[0] {
        WeightFormat::F16
    } else {
        WeightFormat::F32
    };
    Ok(Inspection {
        inputs: graph.input.iter().filter(|i| !initializers.contains(i.name.as_str())).map(spec).collect(),
        outputs: graph.output.iter().map(spec).collect(),
        operators: operators.into_iter().collect(),
        unsupported: unsupported.into_iter().collect(),
        weight_format,
        parameters,
        metadata: proto.metadata_props.iter().map(|p| (p.key.clone(), p.value.clone())).collect(),
        class_labels: class_labels(graph),
        plan_value_inputs: crate::onnx::plan_values::plan_value_inputs(graph),
    })
}

/// Checks, without optimising, that the model types with its declared inputs, symbolic
/// dimensions kept symbolic: what activating a version with symbolic inputs proves before any
/// call brings a concrete shape.
pub fn check_symbolic(bytes: &[u8], inputs: &[TensorSpec], weight_format: WeightFormat) -> TractResult<()> {
    let (model, _) = match typed(&onnx(), bytes, inputs, &[], Some(weight_format)) {
        Ok(m) => m,
        Err(first) => {
            let relaxed = onnx().with_ignore_value_info(true).with_ignore_output_shapes(true);
            typed(&relaxed, bytes, inputs, &[], Some(weight_format)).map_err(|_| first)?
        }
    };
    model.into_decluttered()?;
    Ok(())
}

/// Checks that the model parses into tract's graph (every operator known, its attributes
/// read): what activation proves of a model whose plans need its plan-value inputs' values.
pub fn check_parses(bytes: &[u8]) -> TractResult<()> {
    let parser = onnx();
    let mut proto = parser.proto_model_for_read(&mut &*bytes)?;
    crate::onnx::prepare(&mut proto);
    parser.model_for_proto_model(&proto)?;
    Ok(())
}

/// An optimised, runnable model with the input shapes it was built for.
#[derive(Clone, Debug)]
pub struct LoadedModel {
    pub plan: Arc<TypedSimplePlan>,
    pub inputs: Vec<TensorSpec>,
}

/// tract's element type for ours (`None` for [`DType::Other`], which no call can supply).
pub fn datum(dtype: DType) -> Option<DatumType> {
    Some(match dtype {
        DType::F32 => f32::datum_type(),
        DType::F16 => f16::datum_type(),
        DType::F64 => f64::datum_type(),
        DType::I8 => i8::datum_type(),
        DType::U8 => u8::datum_type(),
        DType::I16 => i16::datum_type(),
        DType::U16 => u16::datum_type(),
        DType::I32 => i32::datum_type(),
        DType::U32 => u32::datum_type(),
        DType::I64 => i64::datum_type(),
        DType::U64 => u64::datum_type(),
        DType::Bool => bool::datum_type(),
        DType::Text => String::datum_type(),
        DType::Other => return None,
    })
}

/// The input fact of a declaration: its element type, fixed dimensions as they are and each
/// symbolic one as a symbol of its own (`d{input}_{dim}`), so nothing is pinned.
fn input_fact(model: &InferenceModel, ix: usize, spec: &TensorSpec) -> TractResult<InferenceFact> {
    let Some(dt) = datum(spec.dtype) else {
        tract_onnx::prelude::tract_data::internal::bail!(
            "input \"{}\" has an element type the engine does not take",
            spec.name
        )
    };
    let dims: TVec<TDim> = spec
        .shape
        .iter()
        .enumerate()
        .map(|(d, &n)| if n < 0 { model.symbols.sym(&format!("d{ix}_{d}")).into() } else { (n as usize).into() })
        .collect();
    Ok(InferenceFact::dt_shape(dt, dims))
}

/// The typed model, with the [`Stage::Typed`] passes run, and the int8 weights of its
/// convolutions as the ONNX graph has them (tract folds them into f32 constants).
fn typed(
    parser: &tract_onnx::Onnx,
    bytes: &[u8],
    inputs: &[TensorSpec],
    values: &[(usize, Arc<Tensor>)],
    weight_format: Option<WeightFormat>,
) -> TractResult<(TypedModel, QuantizedWeights)> {
    let mut proto = parser.proto_model_for_read(&mut &*bytes)?;
    let weights = crate::onnx::prepare(&mut proto);
    let mut model = parser.model_for_proto_model(&proto)?;
    for (ix, input) in inputs.iter().enumerate() {
        let fact = input_fact(&model, ix, input)?;
        model.set_input_fact(ix, fact)?;
    }
    fold_inputs(&mut model, inputs, values)?;
    let mut model = model.into_typed()?;
    passes::run(Stage::Typed, &mut model, &Context { weights: &weights, weight_format })?;
    Ok((model, weights))
}

/// Makes each input of `values` a constant of the model with its value (checked against the
/// input's declared type and shape), and takes it out of the model's inputs.
fn fold_inputs(model: &mut InferenceModel, inputs: &[TensorSpec], values: &[(usize, Arc<Tensor>)]) -> TractResult<()> {
    let outlets = model.input_outlets()?.to_vec();
    let mut folded = Vec::with_capacity(values.len());
    for (ix, value) in values {
        let Some(&outlet) = outlets.get(*ix) else { bail!("the model has no input {ix}") };
        if let Some(spec) = inputs.get(*ix) {
            ensure!(
                datum(spec.dtype) == Some(value.datum_type())
                    && spec.shape.iter().map(|&d| d as usize).eq(value.shape().iter().copied()),
                "the value of input \"{}\" is a {:?} of shape {:?}, not what it was declared as",
                spec.name,
                value.datum_type(),
                value.shape()
            );
        }
        let node = model.node_mut(outlet.node);
        node.op = Box::new(tract_onnx::tract_hir::ops::konst::Const::new(value.clone())?);
        node.outputs[0].fact = InferenceFact::from(value.clone().into_tensor());
        folded.push(outlet);
    }
    model.inputs.retain(|o| !folded.contains(o));
    Ok(())
}

/// Multiply-accumulates one inference performs, from tract's cost model of the decluttered graph
/// (convolutions, matmuls, their integer forms) at the given input shapes (which should be fixed).
pub fn macs(bytes: &[u8], inputs: &[TensorSpec]) -> TractResult<u64> {
    let model = typed(&onnx(), bytes, inputs, &[], None)
        .or_else(|_| {
            typed(&onnx().with_ignore_value_info(true).with_ignore_output_shapes(true), bytes, inputs, &[], None)
        })?
        .0
        .into_decluttered()?;
    let mut total = 0u64;
    for node in model.nodes() {
        let facts = model.node_input_facts(node.id)?;
        for (cost, count) in node.op.cost(&facts)? {
            if let tract_onnx::tract_core::ops::Cost::FMA(_) = cost {
                total += count.to_i64()? as u64;
            }
        }
    }
    Ok(total)
}

/// Builds the optimised plan: read the ONNX graph and apply our rewrites of it
/// ([`crate::onnx::prepare`]), parse, pin the input shapes, type, then take the model through
/// tract's declutter and optimisation with our passes at each stage ([`crate::passes`]):
/// quantized Softmax guarded and f16 weights widened to f32 constants (typed); int8 and f32
/// convolutions onto our kernels (typed and decluttered, [`crate::passes::PIPELINE`]);
/// quantize/dequantize (static and dynamic) onto our simd128 loops (optimised). Models whose declared value-info or output shapes keep a symbolic batch are
/// retried with those declarations ignored.
///
/// `inputs` are normally fixed: the canister builds one plan per concrete input shape a call
/// brings (see [`TensorSpec::with_shape`]), because tract optimises a fixed graph into
/// kernels chosen for its sizes. A symbolic dimension left in `inputs` stays a symbol.
pub fn load(bytes: &[u8], inputs: &[TensorSpec], weight_format: WeightFormat) -> TractResult<LoadedModel> {
    load_with_values(bytes, inputs, &[], weight_format)
}

/// [`load`], with the inputs of `values` (positions in `inputs`, normally the model's
/// [`Inspection::plan_value_inputs`]) made constants of the plan: the plan for these values,
/// whose inputs are the others, in order ([`LoadedModel::inputs`]).
pub fn load_with_values(
    bytes: &[u8],
    inputs: &[TensorSpec],
    values: &[(usize, Arc<Tensor>)],
    weight_format: WeightFormat,
) -> TractResult<LoadedModel> {
    let (model, weights) = match typed(&onnx(), bytes, inputs, values, Some(weight_format)) {
        Ok(m) => m,
        Err(first) => {
            let relaxed = onnx().with_ignore_value_info(true).with_ignore_output_shapes(true);
            typed(&relaxed, bytes, inputs, values, Some(weight_format)).map_err(|_| first)?
        }
    };
    let context = Context { weights: &weights, weight_format: Some(weight_format) };
    let mut model = model.into_decluttered()?;
    passes::run(Stage::Decluttered, &mut model, &context)?;
    let mut model = model.into_optimized()?;
    passes::run(Stage::Optimized, &mut model, &context)?;
    let plan = TypedSimplePlan::new(model)?;
    let inputs = inputs
        .iter()
        .enumerate()
        .filter(|(ix, _)| !values.iter().any(|(v, _)| v == ix))
        .map(|(_, s)| s.clone())
        .collect();
    Ok(LoadedModel { plan, inputs })
}
