//! The loops our operators ([`crate::ops`]) run, one module per kernel family.
//!
//! Each family has one interface (a trait of associated functions) and implementations of it:
//! - `Scalar`: plain Rust, what a native build runs, and the tails of the simd128 loops;
//! - `Simd128`: wasm simd128 intrinsics, only in a `wasm32` build with the `simd128` feature
//!   (the canister's);
//! - `Best`: an alias for the one the operators call (`Simd128` where it exists, else `Scalar`);
//!
//! and a `reference` module: the plain, obviously correct computation the others must equal bit
//! for bit (tract's own scalar functions where tract has them, a direct convolution for the
//! integer convolution). Each family's `check` compares `Best` and `Scalar` with the reference on
//! edge cases; native unit tests run it, and [`check_all`] runs every family's in the canister's
//! self-test ([`crate::selftest::run`]), where `Best` is the simd128 code.
//!
//! - [`qdq`]: quantize, dequantize, and the two fused (f32 → u8/i8 → f32).
//! - [`dynamic_quantize`]: `DynamicQuantizeLinear`'s range fold and quantize.
//! - [`float_conv`]: the f32 convolution's multiply of packed filters by an im2col matrix.
//! - [`integer_conv`]: the integer convolution's widening and multiply over packed int8 values.
//! - [`max_pool`]: the f32 max pool's fold of an input row into an output row.
//! - [`byte_pool`]: the max pool of a u8 or i8 plane, separable (column maxima, then row maxima).
//! - [`byte_table`]: bytes read through a table of 256 (a QDQ model's requantizations).
//! - [`finite`]: the check that an f32 input holds no NaN or infinity.
//! - [`activation`]: the ReLU or HardSwish a convolution kernel applies to its outputs (or the
//!   integer convolution's operator, in place).
//! - [`gelu`]: GELU without approximation (a transformer's feed-forward activation), in place.
//! - [`softmax`]: softmax over rows a whole number of vectors long (attention's probabilities),
//!   or down columns (the same bits, of the transposed matrices).
//! - [`depthwise`]: the f32 depthwise convolution of one channel's plane, its activation fused
//!   (and a dynamic int8 one's dequantize).

pub mod activation;
pub mod byte_pool;
pub mod byte_table;
pub mod depthwise;
pub mod dynamic_quantize;
pub mod finite;
pub mod float_conv;
pub mod gelu;
pub mod integer_conv;
pub mod max_pool;
pub mod qdq;
pub mod softmax;

/// `x`, which LLVM cannot see through: a store and a load (a volatile read of a local), where
/// `black_box` of a tuple of pointers compiled to a call. The kernels make a loop's pointers
/// opaque once per turn so that LLVM's loop strength reduction cannot move them, which at the
/// canister's opt-level cost every load and store its constant offset (an `i32.add` each).
#[inline(always)]
pub(crate) fn opaque<T: Copy>(x: T) -> T {
    // SAFETY: reads a live local, aligned and initialised.
    unsafe { core::ptr::read_volatile(&x) }
}

/// The same bits, or both NaN: how the kernels' checks compare f32 results (wasm leaves a NaN's
/// payload to the engine).
pub(crate) fn same_bits_or_nan(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// A value the kernels convert from or to: u8 or i8.
pub trait Int8: Copy + 'static {
    /// Whether the bytes read as u8 (else as i8).
    const UNSIGNED: bool;
    fn to_i32(self) -> i32;
    /// From a value already clamped into this type's range.
    fn from_clamped(v: i32) -> Self;
    /// The values' bytes, for kernels that move bytes whatever they mean (one instance of
    /// their code rather than one per type: the canister's code section is near our budget).
    fn bytes(xs: &[Self]) -> &[u8];
}

impl Int8 for u8 {
    const UNSIGNED: bool = true;
    fn to_i32(self) -> i32 {
        self as i32
    }
    fn from_clamped(v: i32) -> Self {
        v as u8
    }
    fn bytes(xs: &[u8]) -> &[u8] {
        xs
    }
}

impl Int8 for i8 {
    const UNSIGNED: bool = false;
    fn to_i32(self) -> i32 {
        self as i32
    }
    fn from_clamped(v: i32) -> Self {
        v as i8
    }
    fn bytes(xs: &[i8]) -> &[u8] {
        // SAFETY: i8 and u8 have the same size and alignment and every bit pattern is valid for
        // both; the returned slice borrows `xs` for as long.
        unsafe { core::slice::from_raw_parts(xs.as_ptr() as *const u8, xs.len()) }
    }
}

/// Checks every kernel family against its reference (simd128 in the canister, scalar natively):
/// an error names the first difference.
pub fn check_all() -> Result<(), String> {
    qdq::check()?;
    integer_conv::check()?;
    integer_conv::three_planes::check()?;
    float_conv::check()?;
    max_pool::reference::check()?;
    byte_pool::reference::check()?;
    depthwise::reference::check()?;
    crate::ops::pool_sum::check()?;
    depthwise::integer::check()?;
    dynamic_quantize::check()?;
    finite::check()?;
    gelu::check()?;
    softmax::check()?;
    byte_table::check()?;
    activation::check()?;
    Ok(())
}
