//! The ONNX backend node tests through the engine's loader (#14): every test the `onnx`
//! package's generators write (`scripts/onnx-node-tests.sh`, pinned in
//! `tools/prepare/requirements-conformance.txt`) is loaded with `model::load` at its inputs'
//! shapes, run, and compared with the generator's outputs at the test's own tolerance.
//!
//! `golden/onnx_node_passing.txt` lists the tests that pass; a listed test that fails fails this
//! test. Run with `UPDATE_GOLDEN=1` to write the new list after raising the count (it is
//! published in the README). `ONNX_CONFORMANCE_TRACT=1` runs plain tract-onnx instead, for the
//! comparison the README gives (and writes nothing).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use inference_engine::model;
use inference_engine::types::{DType, TensorSpec, WeightFormat};
use prost::Message;
use tract_onnx::pb::TensorProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

/// Where `scripts/onnx-node-tests.sh` writes the tests: `$CARGO_TARGET_DIR/onnx-node-tests`
/// (or the workspace's `target/`), unless `ONNX_NODE_TESTS` names another directory.
fn tests_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("ONNX_NODE_TESTS") {
        return dir.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("onnx-node-tests")
}

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/onnx_node_passing.txt")
}

fn tensor(path: &Path) -> TractResult<Tensor> {
    let proto = TensorProto::decode(&*std::fs::read(path)?)?;
    tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::FopenDataResolver, &proto, None)
}

fn dtype(dt: DatumType) -> Option<DType> {
    DType::ALL.into_iter().find(|&d| model::datum(d) == Some(dt))
}

/// Equal within the test's tolerance: `|a − b| ≤ atol + rtol·|b|` for floats (NaN matching NaN),
/// exactly for the rest; same shapes.
fn close(got: &Tensor, expected: &Tensor, rtol: f64, atol: f64) -> TractResult<()> {
    // Sizes tract computes symbolically (`Shape`, `Size`) leave as i64, as the canister's
    // replies carry them.
    let got = &if got.datum_type() == TDim::datum_type() { got.cast_to::<i64>()?.into_owned() } else { got.clone() };
    ensure!(got.shape() == expected.shape(), "shape {:?}, expected {:?}", got.shape(), expected.shape());
    if expected.datum_type().is_float() {
        let (g, e) = (got.cast_to::<f64>()?, expected.cast_to::<f64>()?);
        let (g, e) =
            (g.try_as_plain_ram()?.as_slice::<f64>()?.to_vec(), e.try_as_plain_ram()?.as_slice::<f64>()?.to_vec());
        for (i, (a, b)) in g.iter().zip(&e).enumerate() {
            let equal = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= atol + rtol * b.abs();
            ensure!(equal, "element {i}: {a}, expected {b}");
        }
        return Ok(());
    }
    ensure!(got.datum_type() == expected.datum_type(), "{:?}, expected {:?}", got.datum_type(), expected.datum_type());
    ensure!(got == expected, "values differ");
    Ok(())
}

/// One test: Ok when every data set's outputs match.
fn run(dir: &Path, plain_tract: bool) -> TractResult<()> {
    ensure!(!dir.join("not_tensors").exists(), "inputs or outputs that are not tensors");
    let bytes = std::fs::read(dir.join("model.onnx"))?;
    let tolerance = std::fs::read_to_string(dir.join("tolerance"))?;
    let mut tolerance = tolerance.split_whitespace().map(|v| v.parse::<f64>());
    let (rtol, atol) = (tolerance.next().context("rtol")??, tolerance.next().context("atol")??);
    let mut sets: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("test_data_set_")))
        .collect();
    sets.sort();
    for set in sets {
        let files = |kind: &str| -> TractResult<Vec<Tensor>> {
            let mut out = vec![];
            while set.join(format!("{kind}_{}.pb", out.len())).exists() {
                out.push(tensor(&set.join(format!("{kind}_{}.pb", out.len())))?);
            }
            Ok(out)
        };
        let (inputs, expected) = (files("input")?, files("output")?);
        let outputs = if plain_tract {
            let mut m = tract_onnx::onnx().model_for_read(&mut &*bytes)?;
            for (ix, t) in inputs.iter().enumerate() {
                m.set_input_fact(ix, InferenceFact::dt_shape(t.datum_type(), t.shape()))?;
            }
            let plan = m.into_optimized()?.into_runnable()?;
            plan.run(inputs.into_iter().map(|t| t.into_tvalue()).collect())?
        } else {
            let info = model::inspect(&bytes).map_err(|e| format_err!(e))?;
            ensure!(info.unsupported.is_empty(), "unsupported operators {:?}", info.unsupported);
            ensure!(info.inputs.len() == inputs.len(), "{} inputs declared, {} given", info.inputs.len(), inputs.len());
            let specs = info
                .inputs
                .iter()
                .zip(&inputs)
                .map(|(spec, t)| {
                    let d = dtype(t.datum_type()).with_context(|| format!("input type {:?}", t.datum_type()))?;
                    Ok(TensorSpec::new(&spec.name, t.shape().iter().map(|&d| d as i64).collect(), d))
                })
                .collect::<TractResult<Vec<_>>>()?;
            // Inputs whose values tract needs (axes, target shapes, scales…) build the plan for
            // this data set's values, as the canister builds one per value a call brings.
            let values: Vec<(usize, Arc<Tensor>)> =
                info.plan_value_inputs.iter().map(|&ix| (ix, Arc::new(inputs[ix].clone()))).collect();
            let loaded = model::load_with_values(&bytes, &specs, &values, WeightFormat::F32)?;
            let rest = inputs
                .into_iter()
                .enumerate()
                .filter(|(ix, _)| !info.plan_value_inputs.contains(ix))
                .map(|(_, t)| t.into_tvalue())
                .collect();
            inference_engine::executor::run_to_end(&loaded.plan, rest)?
        };
        ensure!(outputs.len() == expected.len(), "{} outputs, expected {}", outputs.len(), expected.len());
        for (ix, (got, want)) in outputs.iter().zip(&expected).enumerate() {
            close(got, want, rtol, atol).with_context(|| format!("output {ix}"))?;
        }
    }
    Ok(())
}

#[test]
fn onnx_node_tests_that_passed_still_pass() {
    let dir = tests_dir();
    assert!(dir.is_dir(), "{} is missing: run scripts/onnx-node-tests.sh first (scripts/test.sh does)", dir.display());
    let plain_tract = std::env::var("ONNX_CONFORMANCE_TRACT").is_ok();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // tract panics on some malformed or unsupported graphs: a panic is that test's failure.
    if std::env::var("CONFORMANCE_PANICS").is_err() {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let mut passing = BTreeSet::new();
    let mut failures = Vec::new();
    for name in &names {
        let path = dir.join(name);
        match std::panic::catch_unwind(|| run(&path, plain_tract)) {
            Ok(Ok(())) => {
                passing.insert(name.clone());
            }
            Ok(Err(e)) => failures.push(format!("{name}: {}", format!("{e:#}").lines().next().unwrap_or(""))),
            Err(_) => failures.push(format!("{name}: panicked")),
        }
    }
    let _ = std::panic::take_hook();
    let report = dir.join(if plain_tract { "failures_tract.txt" } else { "failures.txt" });
    std::fs::write(&report, failures.join("\n") + "\n").unwrap();
    eprintln!(
        "{} of {} ONNX node tests pass ({}); failures with reasons in {}",
        passing.len(),
        names.len(),
        if plain_tract { "plain tract-onnx" } else { "the engine's loader" },
        report.display()
    );
    if plain_tract {
        return;
    }
    let listed: BTreeSet<String> = std::fs::read_to_string(golden())
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect();
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::write(golden(), passing.iter().cloned().collect::<Vec<_>>().join("\n") + "\n").unwrap();
        return;
    }
    let lost: Vec<&String> = listed.difference(&passing).collect();
    assert!(lost.is_empty(), "node tests that passed now fail: {lost:?} (reasons in {})", report.display());
    let gained = passing.difference(&listed).count();
    if gained > 0 {
        eprintln!("{gained} more tests pass than listed: commit the list with UPDATE_GOLDEN=1");
    }
}
