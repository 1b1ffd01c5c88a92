//! Operators we add to tract's typed models: `Op` + `EvalOp` + `TypedOp` implementations that
//! the passes ([`crate::passes`]) wire in place of tract's nodes. Their loops are in
//! [`crate::kernels`].
//!
//! - [`batched_matmul`]: [`batched_matmul::BatchedMatMul`], an f32 matrix product of two computed
//!   operands per batch index (a transformer's attention) with the f32 convolution's kernel.
//! - [`byte_table`]: [`byte_table::ByteTable`], tract's `LookupTable` of int8 values.
//! - [`float_conv`]: [`float_conv::FloatConv`], a 2-D f32 convolution with our kernel (f32
//!   models, and the f32 convolutions of any other).
//! - [`integer_conv`]: [`integer_conv::IntegerConv`], a 2-D convolution computed on the int8
//!   values (static and dynamic int8 models).
//! - [`integer_depthwise`]: [`integer_depthwise::IntegerDepthwise`], a static or dynamic int8
//!   model's 2-D depthwise convolution, computed on the int8 values.
//! - [`layout`]: [`layout::ZeroPointShift`], before a dynamic int8 model's grouped
//!   convolutions run in f32.
//! - [`qdq`]: [`qdq::Qdq`], quantize, dequantize or both fused, or a QDQ model's residual add
//!   (its dequantizes, the f32 add and the quantize) in one pass.
//! - [`dynamic_quantize`]: [`dynamic_quantize::SimdDynamicQuantize`], `DynamicQuantizeLinear`.
//! - [`depthwise`]: [`depthwise::Depthwise`], a 2-D f32 depthwise convolution with our kernel,
//!   its activation fused.
//! - [`max_pool`]: [`max_pool::PlanarMaxPool`], tract's 2-D f32 max pool over planar images.
//! - [`lookup`]: [`lookup::Lookup`], an int8 tensor through a 256-entry table (a run of
//!   elementwise nodes after a quantize → dequantize, computed once).
//! - [`strided_copy`]: [`strided_copy::StridedCopy`], tract's f32 `Downsample` copied row by row.
//! - [`pool_sum`]: [`pool_sum::PoolSum`], tract's f32 sum over an image's pixels (a global
//!   average pool's).
//! - [`channel_scale`]: [`channel_scale::ChannelScale`], tract's f32 product by one value per
//!   channel (a squeeze-and-excitation block's scale, a global average pool's division).
//! - [`gelu`]: [`gelu::Gelu`], tract's f32 `GeluExact` in one pass.
//! - [`softmax`]: [`softmax::RowSoftmax`], tract's f32 `Softmax` over whole vectors of the last axis;
//!   [`softmax::ColumnSoftmax`], the same down the columns (attention's scores keys by queries).
//! - [`ml`]: [`ml::MlOp`], the ONNX-ML operators of tabular models (tree ensembles, SVM, scaler…).
//! - [`cumulative`]: [`cumulative::CumProd`], the running product along an axis.
//! - [`loss`]: [`loss::Loss`], `NegativeLogLikelihoodLoss` and `SoftmaxCrossEntropyLoss`.
//!
//! The QOperator contrib operators are not here: they are tract-onnx expansions into tract's own
//! operators, registered with the parser ([`crate::onnx::qoperator`]).

pub mod batched_matmul;
pub mod byte_table;
pub mod channel_scale;
pub mod cumulative;
pub mod depthwise;
pub mod dynamic_quantize;
pub mod float_conv;
pub mod gelu;
pub mod integer_conv;
pub mod integer_depthwise;
pub mod layout;
pub mod lookup;
pub mod loss;
pub mod max_pool;
pub mod ml;
pub mod pool_sum;
pub mod qdq;
pub mod softmax;
pub mod strided_copy;
