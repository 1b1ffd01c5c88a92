//! Parsing operators tract lacks that compute on whole tensors in one op of ours:
//! `NegativeLogLikelihoodLoss` and `SoftmaxCrossEntropyLoss` ([`crate::ops::loss`]), and
//! `CumProd` ([`crate::ops::cumulative`]).

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use crate::ops::cumulative::CumProd;
use crate::ops::loss::{Loss, Reduction};

pub fn register(register: &mut OnnxOpRegister) {
    register.insert("NegativeLogLikelihoodLoss", |ctx, node| parse(ctx, node, false));
    register.insert("SoftmaxCrossEntropyLoss", |ctx, node| parse(ctx, node, true));
    register.insert("CumProd", |_, node| {
        let flag = |name| Ok::<_, TractError>(node.get_attr_opt::<i64>(name)?.unwrap_or(0) != 0);
        let op = CumProd { exclusive: flag("exclusive")?, reverse: flag("reverse")? };
        Ok((expand(CumProdExpansion(op)), vec![]))
    });
}

/// The inference-model side of a [`CumProd`]: same type and shape as its input.
#[derive(Clone, Debug)]
struct CumProdExpansion(CumProd);

impl Expansion for CumProdExpansion {
    fn name(&self) -> StaticName {
        "CumProd".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.0.clone(), inputs)
    }
}

fn parse(_ctx: &ParsingContext, node: &NodeProto, softmax: bool) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let outputs = node.output.iter().filter(|o| !o.is_empty()).count().max(1);
    ensure!(softmax || outputs == 1, "NegativeLogLikelihoodLoss has one output");
    let loss = Loss {
        softmax,
        reduction: Reduction::parse(node.get_attr_opt::<&str>("reduction")?)?,
        ignore_index: node.get_attr_opt::<i64>("ignore_index")?,
        outputs: outputs.min(2),
    };
    Ok((expand(LossExpansion(loss)), vec![]))
}

/// The inference-model side of a [`Loss`]: its typing rules, and its wiring as the one op.
#[derive(Clone, Debug)]
struct LossExpansion(Loss);

impl Expansion for LossExpansion {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.0.outputs)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        if inputs.len() != 2 && inputs.len() != 3 {
            bail!("{} takes an input, a target and an optional weight", self.0.name());
        }
        check_output_arity(outputs, self.0.outputs)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        match self.0.reduction {
            Reduction::None => s.equals(&outputs[0].shape, &inputs[1].shape)?,
            _ => s.equals(&outputs[0].rank, 0)?,
        }
        if self.0.outputs > 1 {
            s.equals(&outputs[1].datum_type, &inputs[0].datum_type)?;
            s.equals(&outputs[1].shape, &inputs[0].shape)?;
        }
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.0.clone(), inputs)
    }
}
