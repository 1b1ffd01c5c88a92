//! What tract selects on the machine running this code.
//!
//! tract registers its kernels with `inventory` (static constructors). Inside a canister those
//! constructors must have run before any model is built, or tract silently falls back to
//! nothing. [`PlatformReport`] makes that observable from outside.

use tract_onnx::prelude::tract_linalg::{self, isa, routines, Func, MmmDispatch};
use tract_onnx::prelude::DatumType;

/// The instruction set tract detected and the kernels it will use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformReport {
    /// tract's name for the detected instruction set, e.g. `Wasm32Simd128`.
    pub isa: String,
    /// Every matrix-multiplication kernel this build can run here, sorted by name.
    pub mmm_kernels: Vec<String>,
    /// The element-wise kernel chosen for f32 sigmoid: an arch-specific one when SIMD is active.
    pub sigmoid_f32_kernel: Option<String>,
    /// Number of single-winner routines registered through static constructors.
    pub routines_registered: usize,
}

impl PlatformReport {
    /// Reads the registry as it stands now.
    pub fn current() -> PlatformReport {
        let native = isa::native();
        PlatformReport {
            isa: format!("{native:?}"),
            mmm_kernels: MmmDispatch::native().runnable().iter().map(|k| k.name().to_string()).collect(),
            sigmoid_f32_kernel: routines::best_for(Func::Sigmoid, DatumType::F32, &native)
                .map(|r| r.name().to_string()),
            routines_registered: routines::declared().count(),
        }
    }

    /// Whether the wasm simd128 kernels are among those selected.
    pub fn has_wasm_simd_kernels(&self) -> bool {
        self.mmm_kernels.iter().any(|k| k.starts_with("wasm_"))
    }
}

pub use inference_api::Kernels;

/// Chooses the kernels through tract's own `TRACT_CPU_ISA` knob (`-simd128,-wasm32` takes the wasm
/// kernels out of the pool). tract reads it once, at its first kernel selection, so this must
/// run before any model is built: in `init`/`post_upgrade`. Only wasm32 has the simd128
/// feature to remove; elsewhere `Generic` is refused.
pub fn select_kernels(kernels: Kernels) -> Result<(), String> {
    match kernels {
        Kernels::Best => Ok(()),
        Kernels::Generic if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) => {
            if tract_onnx::tract_core::knobs::set_str("TRACT_CPU_ISA", "-simd128,-wasm32") {
                Ok(())
            } else {
                Err("this tract has no TRACT_CPU_ISA knob".into())
            }
        }
        Kernels::Generic => Err("generic kernels are selectable in the wasm32+simd128 build only".into()),
    }
}

#[doc(hidden)]
pub fn _linalg_version_marker() -> &'static str {
    let _ = tract_linalg::BinOp::Add;
    env!("CARGO_PKG_VERSION")
}
