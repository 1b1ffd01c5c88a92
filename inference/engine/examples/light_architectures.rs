//! The `onnx` package's nine light architectures (resnet50, squeezenet, shufflenet, densenet121,
//! inception v1/v2, alexnet, vgg19, zfnet512) in f32 and in onnxruntime's three quantized forms
//! (dynamic, QDQ, QOperator), run natively through the engine's loader and compared with
//! onnxruntime's output on the same input: every output within the form's tolerance, the argmax
//! equal. `scripts/light-architectures.sh` writes the cases (`tools/prepare/light_quantized.py`)
//! and runs this; it exits non-zero on any mismatch.
//!
//! The light models' weights are constants (every class scores alike), so this proves that every
//! operator of every form loads and computes what onnxruntime computes, not accuracy.

use std::path::{Path, PathBuf};

use inference_engine::executor::run_to_end;
use inference_engine::model::{inspect, load};
use inference_engine::types::{DType, TensorSpec};
use model_testdata::npy_with_shape;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

/// Largest |Δ| accepted per form: f32 exact to rounding; the quantized forms within one step of
/// an 8-bit output (their Softmax outputs are quantized with scale 1/255).
fn tolerance(form: &str) -> f32 {
    if form == "fp32" {
        1e-4
    } else {
        1.0 / 255.0 + 1e-4
    }
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

fn run(dir: &Path, form: &str, json: &serde_json::Value) -> TractResult<(f32, bool)> {
    let entry = &json["forms"][form];
    let bytes = std::fs::read(dir.join(entry["model"].as_str().context("model")?))?;
    let (shape, input) = npy_with_shape(&dir.join("input.npy"));
    let (_, expected) = npy_with_shape(&dir.join(entry["output"].as_str().context("output")?));
    let info = inspect(&bytes).map_err(|e| format_err!(e))?;
    ensure!(info.unsupported.is_empty(), "unsupported operators {:?}", info.unsupported);
    let name = json["input"].as_str().context("input")?;
    let spec = TensorSpec::new(name, shape.iter().map(|&d| d as i64).collect(), DType::F32);
    let loaded = load(&bytes, &[spec], info.weight_format)?;
    let out = run_to_end(&loaded.plan, tvec!(Tensor::from_shape(&shape, &input)?.into()))?;
    let got = out[0].cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    ensure!(got.len() == expected.len(), "{} outputs, expected {}", got.len(), expected.len());
    let worst = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    Ok((worst, argmax(&got) == argmax(&expected)))
}

fn main() {
    let dir: PathBuf = std::env::args().nth(1).expect("usage: light_architectures CASES_DIR").into();
    let mut archs: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok().map(|e| e.path())).collect();
    archs.retain(|p| p.join("case.json").exists());
    archs.sort();
    let mut failed = 0;
    println!("| architecture | fp32 | dyn_u8 | qdq | qop |\n|---|---|---|---|---|");
    for arch in &archs {
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(arch.join("case.json")).unwrap()).unwrap();
        let mut row = format!("| {} |", arch.file_name().unwrap().to_string_lossy());
        for form in ["fp32", "dyn_u8", "qdq", "qop"] {
            let cell = match run(arch, form, &json) {
                Ok((worst, same_argmax)) if worst <= tolerance(form) && same_argmax => format!(" Δ {worst:.1e} |"),
                Ok((worst, same_argmax)) => {
                    failed += 1;
                    format!(" **Δ {worst:.1e}{}** |", if same_argmax { "" } else { ", argmax differs" })
                }
                Err(e) => {
                    failed += 1;
                    format!(" **fails: {}** |", format!("{e:#}").chars().take(80).collect::<String>())
                }
            };
            row += &cell;
        }
        println!("{row}");
    }
    if failed > 0 {
        eprintln!("{failed} architecture × form cases differ from onnxruntime");
        std::process::exit(1);
    }
}
