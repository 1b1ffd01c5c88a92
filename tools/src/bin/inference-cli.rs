//! `inference-cli`: the maintainers' tool for the inference canister.
//!
//! Uploads models in chunks (parallel, retried with backoff, resumable: run the same upload
//! again after an interruption and only the missing chunks are sent), then manages versions and
//! roles. Uploads are identified by the file's sha256: only an unfinished upload of the very same
//! file is resumed, a version of the same name that already holds the file is reported instead
//! of uploaded again (`--force` uploads anyway), and a version is activated only after its
//! recorded sha256 is checked against the file. Identity from a PEM file (dfx identities work).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use candid::Principal;
use clap::{Parser, Subcommand};
use ic_agent::identity::{AnonymousIdentity, BasicIdentity, Secp256k1Identity};
use ic_agent::{Agent, Identity};
use indicatif::{ProgressBar, ProgressStyle};
use inference_api::{ChunkRange, ModelInfo, Pooling, TensorSpec, TextTask, Truncation, UploadRequest};
use inference_client::{pool, CallError, InferenceClient};
use inference_tools::agent::AgentTransport;
use inference_tools::capacity;
use inference_tools::upload::{activate_verified, text_bundle, upload, Progress, UploadOptions, DEFAULT_CHUNK_BYTES};
use sha2::{Digest, Sha256};

#[derive(Parser)]
#[command(
    name = "inference-cli",
    version,
    about = "Put ONNX models into the on-subnet inference canister and manage them."
)]
struct Cli {
    /// `local` (http://127.0.0.1:4943), `ic` (https://icp-api.io), or a replica URL.
    #[arg(long, global = true, default_value = "local", env = "INFERENCE_NETWORK")]
    network: String,
    /// The inference canister's id.
    #[arg(long, global = true, env = "INFERENCE_CANISTER")]
    canister: Option<Principal>,
    /// PEM file of the identity to sign with (a dfx identity's identity.pem); default: dfx's
    /// `default` identity.
    #[arg(long, global = true, env = "INFERENCE_IDENTITY")]
    identity: Option<PathBuf>,
    /// Sign as the anonymous principal (it can read, not change anything).
    #[arg(long, global = true)]
    anonymous: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Upload an ONNX file as a new version of a model.
    ///
    /// Safe to run again after any interruption: an unfinished upload of the very same file (same
    /// name, size, chunk size and sha256) is resumed, sending only the chunks the canister misses;
    /// if a version of this name already holds a file with this sha256 (e.g. the previous run's
    /// finish went through but its reply was lost), that version is reported and nothing is
    /// uploaded (`--force` records it again as a new version). The recorded version's sha256 is
    /// checked against the file before it is printed or activated.
    Upload(UploadArgs),
    /// Make a version the one that serves.
    Activate {
        name: String,
        version: u32,
        /// Activate only if the version's recorded sha256 is this file's.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Go back to the version active before the current one.
    Rollback { name: String },
    /// Delete a version that is not active.
    Delete { name: String, version: u32 },
    /// List every model version.
    List,
    /// Show one version (the active one by default).
    Info {
        name: String,
        #[arg(long)]
        version: Option<u32>,
    },
    /// Unfinished uploads and what they still miss.
    Uploads,
    /// Abandon an unfinished upload, freeing its chunks.
    Abort { upload_id: u64 },
    /// Read an ONNX file locally: inputs, outputs, operators, parameters, MACs, what tract
    /// cannot run.
    Inspect {
        file: PathBuf,
        /// Input shape to count MACs at, e.g. `1,3,224,224`.
        #[arg(long, value_delimiter = ',')]
        input_shape: Vec<i64>,
    },
    /// Let a principal upload and manage models (controllers only).
    GrantMaintainer { principal: Principal },
    /// Withdraw the maintainer role (controllers only).
    RevokeMaintainer { principal: Principal },
    /// Let a principal (an agency canister) run inference (controllers only).
    AllowCaller { principal: Principal },
    /// Withdraw inference access (controllers only).
    DisallowCaller { principal: Principal },
    /// Let a text front canister tokenize for allowed callers and run their texts (controllers
    /// only).
    AllowFront { principal: Principal },
    /// Withdraw the text front role (controllers only).
    DisallowFront { principal: Principal },
    /// Who holds which role.
    Roles,
    /// Let a principal read the audit log (controllers only).
    GrantAuditor { principal: Principal },
    /// Withdraw the auditor role (controllers only).
    RevokeAuditor { principal: Principal },
    /// Export the audit log as JSON lines (auditors and controllers): one entry a line, oldest
    /// first, with its hash and the previous entry's. With `--verify`, the whole kept log is read
    /// and its chain recomputed up to the head the subnet certifies, then filtered here.
    Audit(AuditArgs),
    /// Verify an exported file on its own: every line's hash recomputed from its fields, and
    /// every line chained to the one before (an export made with filters has gaps, and fails).
    AuditVerify { file: PathBuf },
    /// How long audit entries are kept (controllers only); older ones are dropped whole.
    AuditRetention {
        /// Keep at most this many of the newest entries.
        #[arg(long)]
        max_entries: Option<u64>,
        /// Keep no entry older than this many days.
        #[arg(long)]
        max_age_days: Option<u64>,
    },
    /// Every model's active version and sha256 (or one model's), checked against the subnet's
    /// certificate and root key: what a reader outside the subnet can trust (anyone).
    Certified { name: Option<String> },
    /// Pools of inference canisters serving the same models: `--canister` is the first member,
    /// which holds the upload; the others copy from it canister to canister (each must be one of
    /// its maintainers: `grant-maintainer <member>` on the first).
    Pool {
        #[command(subcommand)]
        command: PoolCommand,
    },
    /// What one inference canister, and pools of several, serve per second on an application
    /// subnet, and the cycles per classification and per day: one inference of a zero input of
    /// the model's declared shape, measured on the canister with `profile` (maintainers),
    /// scheduled as the subnet would (ic-cost-model's subnet model).
    Capacity {
        name: String,
        #[arg(long)]
        version: Option<u32>,
        /// Pool sizes to plan for (canisters on one subnet).
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
        pool: Vec<usize>,
        /// The value of every symbolic dimension in the measured input.
        #[arg(long, default_value_t = 1)]
        symbolic: u64,
        /// The subnet's nodes (its fees scale with them): 13, or 34 for a large subnet.
        #[arg(long, default_value_t = 13)]
        subnet_nodes: u32,
    },
}

#[derive(clap::Args)]
struct UploadArgs {
    file: PathBuf,
    /// The model's name (letters, digits, '-', '_', '.').
    #[arg(long)]
    name: String,
    /// Class labels, in output order: repeat, or give a file with one per line.
    #[arg(long = "label")]
    labels: Vec<String>,
    #[arg(long)]
    labels_file: Option<PathBuf>,
    /// Declare the first input's shape, e.g. `1,3,224,224` to fix a symbolic batch, or
    /// `-1,3,48,-1` to keep batch and width symbolic (the default: the model's own shape).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    input_shape: Vec<i64>,
    /// Bound the first input's dimensions, e.g. `256,3,48,1280` (fixed ones at their value).
    #[arg(long, value_delimiter = ',')]
    max_shape: Vec<u64>,
    #[arg(long, default_value = "")]
    description: String,
    #[arg(long, default_value_t = DEFAULT_CHUNK_BYTES)]
    chunk_bytes: u32,
    /// Chunks in flight at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Make the version the active one once uploaded and its sha256 checked against the file
    /// (also when the file was already recorded and nothing was uploaded).
    #[arg(long)]
    activate: bool,
    /// Upload even if a version of this name already holds a file with this sha256 (to record
    /// it again, e.g. with other labels).
    #[arg(long)]
    force: bool,
    /// A text model: its tokenizer (a Hugging Face tokenizer.json), uploaded with the model as
    /// one file, verified, versioned and activated together.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// A text model's longest text in tokens, special tokens included.
    #[arg(long, default_value_t = 512, requires = "tokenizer")]
    max_tokens: u32,
    /// Keep a longer text's first `--max-tokens` tokens instead of refusing it.
    #[arg(long, requires = "tokenizer")]
    truncate: bool,
    /// What a text model's output is.
    #[arg(long, value_enum, default_value = "classify-logits", requires = "tokenizer")]
    task: TextTaskArg,
}

/// `--task`: how the canister reads a text model's output.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum TextTaskArg {
    /// Scores per text from logits (softmax applied).
    ClassifyLogits,
    /// Scores per text that are already probabilities.
    ClassifyProbabilities,
    /// A unit vector per text: the mean over its tokens (sentence-transformers).
    EmbedMean,
    /// A unit vector per text: its first token's ([CLS]).
    EmbedCls,
    /// The model's own vector per text, unit length.
    EmbedPooled,
}

impl From<TextTaskArg> for TextTask {
    fn from(t: TextTaskArg) -> TextTask {
        let embed = |pooling| TextTask::Embed { pooling, normalize: true };
        match t {
            TextTaskArg::ClassifyLogits => TextTask::Classify { softmax: true },
            TextTaskArg::ClassifyProbabilities => TextTask::Classify { softmax: false },
            TextTaskArg::EmbedMean => embed(Pooling::Mean),
            TextTaskArg::EmbedCls => embed(Pooling::Cls),
            TextTaskArg::EmbedPooled => embed(Pooling::Pooled),
        }
    }
}

#[derive(clap::Args)]
struct AuditArgs {
    /// Entries at or after this time: nanoseconds since the epoch, or an age such as `30m`,
    /// `24h`, `7d`.
    #[arg(long)]
    since: Option<String>,
    /// Entries at or before this time (as `--since`).
    #[arg(long)]
    until: Option<String>,
    /// Entries of inferences run for this principal, or changes made by it.
    #[arg(long)]
    caller: Option<Principal>,
    /// Entries about this model.
    #[arg(long)]
    model: Option<String>,
    /// Recompute the chain of the whole kept log and check it ends in the certified head.
    #[arg(long)]
    verify: bool,
    /// Write the JSON lines here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `--since`/`--until`: nanoseconds since the epoch, or an age (`30m`, `24h`, `7d`) before now.
fn parse_time(text: &str) -> Result<u64> {
    if let Ok(ns) = text.parse::<u64>() {
        return Ok(ns);
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(anyhow!("{text}: not nanoseconds since the epoch, nor an age like 30m, 24h or 7d")),
    };
    let age = number.parse::<u64>().map_err(|_| anyhow!("{text}: not an age like 30m, 24h or 7d"))? * seconds;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    Ok(now.saturating_sub(Duration::from_secs(age)).as_nanos() as u64)
}

async fn audit_command(c: &InferenceClient<AgentTransport>, args: &AuditArgs) -> Result<()> {
    let filter = inference_api::AuditQuery {
        caller: args.caller,
        model: args.model.clone(),
        since_ns: args.since.as_deref().map(parse_time).transpose()?,
        until_ns: args.until.as_deref().map(parse_time).transpose()?,
        ..Default::default()
    };
    let root_key = c.transport().agent.read_root_key();
    let check = args.verify.then_some((c.transport().canister, root_key.as_slice()));
    let export = inference_tools::audit::export(c, &filter, check).await?;
    let lines = inference_tools::audit::to_json_lines(&export.records);
    match &args.out {
        Some(path) => std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?,
        None => print!("{lines}"),
    }
    if let Some(v) = export.verified {
        eprintln!(
            "verified: {} kept entries chain to the certified head (entry {}, sha256 {}, certified at {} ns); {} exported",
            v.entries,
            v.next_index.saturating_sub(1),
            hex(&v.head_sha256),
            v.certified_at_ns,
            export.records.len()
        );
    }
    Ok(())
}

async fn certified_command(c: &InferenceClient<AgentTransport>, name: Option<&str>) -> Result<()> {
    use inference_client::certified::{verify_model, verify_models};
    let (root_key, canister) = (c.transport().agent.read_root_key(), c.transport().canister);
    let (models, at) = match name {
        Some(name) => {
            let reply = c.certified_model(name).await?;
            let at = verify_model(&reply, name, canister, &root_key)?;
            (reply.model.into_iter().collect(), at)
        }
        None => {
            let reply = c.certified_models().await?;
            let at = verify_models(&reply, canister, &root_key)?;
            (reply.models, at)
        }
    };
    for m in &models {
        println!("{:<24} v{:<4} sha256 {}", m.name, m.version, hex(&m.sha256));
    }
    if let (Some(name), true) = (name, models.is_empty()) {
        println!("no model named {name} is active");
    }
    eprintln!("certified by the subnet at {at} ns");
    Ok(())
}

#[derive(Subcommand)]
enum PoolCommand {
    /// Makes `--canister` and `--members` one pool: every member keeps the membership, may copy
    /// versions from the others, and catches up with them by itself (admins of every member).
    /// Waits until each has caught up.
    Create {
        #[arg(long, value_delimiter = ',', required = true)]
        members: Vec<Principal>,
    },
    /// Adds a member to `--canister`'s pool: every member learns the new membership, and the new
    /// one copies, checks and activates what the pool serves by itself. Waits until it has.
    Add { member: Principal },
    /// Removes a member: the others forget it and it forgets them (it keeps its versions).
    Remove { member: Principal },
    /// Each member of `--canister`'s pool, what serves `name` on it (version, sha256, active),
    /// and how its last catch-up went.
    Status { name: Option<String> },
    /// Uploads a file to `--canister` (as `upload` does), copies it to every other member, and with
    /// `--activate` switches the pool to it (as `pool activate`).
    Upload(UploadArgs),
    /// Copies `--canister`'s version of a model to every other member (each checks the whole
    /// sha256 against the first's record); with `--activate`, then switches the pool to it.
    Copy {
        name: String,
        #[arg(long)]
        version: u32,
        #[arg(long)]
        activate: bool,
    },
    /// Switches the pool to the file of `--canister`'s version, in two phases: every member
    /// builds its plan and keeps its active version serving, then every member activates. A
    /// router pinned to the old file keeps finding it; disable it when none is.
    Activate {
        name: String,
        #[arg(long)]
        version: u32,
    },
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn started(&self, total: u64, already: u64) {
        self.0.set_length(total);
        self.0.set_position(already);
        if already > 0 {
            self.0.println(format!("resuming: {already} of {total} bytes already in the canister"));
        }
    }
    fn chunk_done(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn retrying(&self, index: u32, attempt: u32, error: &str) {
        self.0.println(format!("chunk {index}: attempt {attempt} failed ({error}); retrying"));
    }
    fn finish_unanswered(&self, attempt: u32, error: &str) {
        self.0.println(format!("finish: attempt {attempt} got no answer ({error}); looking the upload up"));
    }
    fn already_recorded(&self, info: &ModelInfo) {
        self.0.println(format!(
            "{} v{} already holds this file (same sha256): nothing uploaded (--force to record it again)",
            info.name, info.version
        ));
    }
}

fn identity(cli: &Cli) -> Result<Box<dyn Identity>> {
    if cli.anonymous {
        return Ok(Box::new(AnonymousIdentity));
    }
    let path = match &cli.identity {
        Some(p) => p.clone(),
        None => dirs_home().join(".config/dfx/identity/default/identity.pem"),
    };
    let pem = std::fs::read(&path).with_context(|| format!("reading identity {}", path.display()))?;
    if let Ok(id) = Secp256k1Identity::from_pem(&pem[..]) {
        return Ok(Box::new(id));
    }
    BasicIdentity::from_pem(&pem[..])
        .map(|id| Box::new(id) as Box<dyn Identity>)
        .map_err(|e| anyhow!("{}: not a secp256k1 or ed25519 PEM key: {e}", path.display()))
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default()
}

async fn client(cli: &Cli) -> Result<InferenceClient<AgentTransport>> {
    let canister = cli.canister.ok_or_else(|| anyhow!("which canister? pass --canister or set INFERENCE_CANISTER"))?;
    client_for(cli, canister).await
}

/// A client of `canister` on the CLI's network, as its identity.
async fn client_for(cli: &Cli, canister: Principal) -> Result<InferenceClient<AgentTransport>> {
    let url = match cli.network.as_str() {
        "local" => "http://127.0.0.1:4943".to_string(),
        "ic" => "https://icp-api.io".to_string(),
        url => url.to_string(),
    };
    let agent = Agent::builder()
        .with_url(url)
        .with_boxed_identity(identity(cli)?)
        .with_ingress_expiry(Duration::from_secs(240))
        .build()?;
    if cli.network != "ic" {
        agent.fetch_root_key().await.context("fetching the local replica's root key")?;
    }
    Ok(InferenceClient::new(AgentTransport { agent, canister }))
}

/// The call's reply, or why there was none; then the canister's answer, or its refusal.
fn answer<T, E: std::fmt::Display>(reply: Result<Result<T, E>, CallError>) -> Result<T> {
    reply?.map_err(|e| anyhow!("the canister refused: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn print_info(i: &ModelInfo) {
    let sha = hex(&i.sha256);
    println!(
        "{} v{}  {:?} weights, {} bytes, {} parameters, sha256 {sha}",
        i.name, i.version, i.weight_format, i.size, i.parameters
    );
    let plan_values = i.plan_value_inputs.clone().unwrap_or_default();
    for (ix, t) in i.inputs.iter().enumerate() {
        // A plan-value input's values build the plan: each new value costs a plan build.
        let builds = if plan_values.contains(&(ix as u32)) { "  (plan value)" } else { "" };
        println!("  input  {} {:?} {:?}{builds}", t.name, t.shape, t.dtype);
    }
    for t in &i.outputs {
        println!("  output {} {:?} {:?}", t.name, t.shape, t.dtype);
    }
    if !i.labels.is_empty() {
        println!("  labels {}", i.labels.join(", "));
    }
    println!("  uploaded by {} at {} ns", i.uploaded_by, i.uploaded_at_ns);
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Command::Inspect { file, input_shape } = &cli.command {
        let bytes = std::fs::read(file)?;
        println!("{}", inference_engine_inspect(&bytes)?);
        if !input_shape.is_empty() {
            let i = inference_engine::model::inspect(&bytes).map_err(|e| anyhow!(e))?;
            let spec = TensorSpec {
                name: i.inputs[0].name.clone(),
                shape: input_shape.clone(),
                dtype: i.inputs[0].dtype,
                max_shape: None,
            };
            let macs = inference_engine::model::macs(&bytes, &[spec]).map_err(|e| anyhow!("{e:#}"))?;
            println!("MACs per inference at {input_shape:?}: {macs}");
        }
        return Ok(());
    }
    if let Command::AuditVerify { file } = &cli.command {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let v = inference_tools::audit::verify_json_lines(&text).map_err(|e| anyhow!("{}: {e}", file.display()))?;
        println!(
            "{}: entries {}..={} verify; the last one's sha256 is {}",
            file.display(),
            v.first_index,
            v.last_index,
            hex(&v.last_sha256)
        );
        return Ok(());
    }
    let c = client(&cli).await?;
    match &cli.command {
        Command::Upload(args) => {
            upload_file(&c, args, args.activate).await?;
        }
        Command::Activate { name, version, file } => {
            match file {
                Some(f) => {
                    let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
                    activate_verified(&c, name, *version, &Sha256::digest(&bytes)).await.map_err(|e| anyhow!("{e}"))?;
                }
                None => answer(c.activate(name, *version).await)?,
            }
            println!("{name} v{version} is active");
        }
        Command::Rollback { name } => {
            println!("{name} v{} is active again", answer(c.rollback(name).await)?);
        }
        Command::Delete { name, version } => {
            answer(c.delete_version(name, *version).await)?;
            println!("deleted {name} v{version}");
        }
        Command::List => {
            for i in &answer(c.all_models().await)? {
                let active = answer(c.active_version(&i.name).await)?;
                let mark = if active == Some(i.version) { "*" } else { " " };
                println!(
                    "{mark} {:<24} v{:<4} {:?} {:>12} bytes  {}",
                    i.name, i.version, i.weight_format, i.size, i.description
                );
            }
        }
        Command::Info { name, version } => {
            print_info(&answer(c.model_info(name, *version).await)?);
        }
        Command::Uploads => {
            for u in answer(c.uploads().await)? {
                let missing: Vec<String> =
                    answer(c.upload_status(u.upload_id).await)?.missing.iter().map(ChunkRange::to_string).collect();
                println!(
                    "#{} {} {}/{} bytes, missing chunks [{}]",
                    u.upload_id,
                    u.name,
                    u.received_bytes,
                    u.size,
                    missing.join(", ")
                );
            }
        }
        Command::Abort { upload_id } => {
            answer(c.upload_abort(*upload_id).await)?;
        }
        Command::GrantMaintainer { principal } => {
            answer(c.grant_maintainer(*principal).await)?;
            println!("{principal} is a maintainer");
        }
        Command::RevokeMaintainer { principal } => {
            answer(c.revoke_maintainer(*principal).await)?;
            println!("{principal} is no longer a maintainer");
        }
        Command::AllowCaller { principal } => {
            answer(c.allow_caller(*principal).await)?;
            println!("{principal} may run inference");
        }
        Command::DisallowCaller { principal } => {
            answer(c.disallow_caller(*principal).await)?;
            println!("{principal} may no longer run inference");
        }
        Command::AllowFront { principal } => {
            answer(c.allow_front(*principal).await)?;
            println!("{principal} may tokenize and run texts for allowed callers");
        }
        Command::DisallowFront { principal } => {
            answer(c.disallow_front(*principal).await)?;
            println!("{principal} is no longer a text front");
        }
        Command::Roles => {
            let roles = answer(c.roles().await)?;
            let texts = |ps: &[Principal]| ps.iter().map(Principal::to_text).collect::<Vec<_>>().join(", ");
            println!("maintainers: {}", texts(&roles.maintainers));
            println!("allowed callers: {}", texts(&roles.callers));
            println!("pool peers: {}", texts(&roles.peers));
            println!("text fronts: {}", texts(&roles.fronts));
            println!("auditors: {}", texts(&roles.auditors));
        }
        Command::GrantAuditor { principal } => {
            answer(c.grant_auditor(*principal).await)?;
            println!("{principal} may read the audit log");
        }
        Command::RevokeAuditor { principal } => {
            answer(c.revoke_auditor(*principal).await)?;
            println!("{principal} may no longer read the audit log");
        }
        Command::Audit(args) => audit_command(&c, args).await?,
        Command::AuditVerify { .. } => unreachable!("answered before connecting"),
        Command::AuditRetention { max_entries, max_age_days } => {
            let max_age_ns = max_age_days.map(|d| d.saturating_mul(86_400 * 1_000_000_000));
            let retention = inference_api::AuditRetention { max_entries: *max_entries, max_age_ns };
            answer(c.set_audit_retention(&retention).await)?;
            println!("audit entries kept: {retention:?}");
        }
        Command::Certified { name } => certified_command(&c, name.as_deref()).await?,
        Command::Pool { command } => pool_command(&cli, &c, command).await?,
        Command::Capacity { name, version, pool, symbolic, subnet_nodes } => {
            let info = answer(c.model_info(name, *version).await)?;
            let inputs = capacity::zero_inputs(&info.inputs, *symbolic);
            // `profile` (maintainers) runs it as `infer` would, counting every message.
            let measured_run = answer(c.profile(name, Some(info.version), &inputs).await)?;
            // What `infer` would carry: this argument, and a reply of the declared outputs.
            let outputs = capacity::zero_inputs(&info.outputs, *symbolic);
            let reply = inference_api::Inference {
                outputs: outputs
                    .into_iter()
                    .zip(&info.outputs)
                    .map(|(t, spec)| inference_api::OutputTensor {
                        name: spec.name.clone(),
                        shape: t.shape,
                        data: t.data,
                    })
                    .collect(),
                model: measured_run.model.clone(),
                instructions: measured_run.instructions,
                messages: measured_run.messages,
                // Its size: a receipt's three hashes.
                receipt: Some(inference_api::Receipt {
                    index: u64::MAX,
                    entry_sha256: vec![0; 32],
                    input_sha256: vec![0; 32],
                    output_sha256: vec![0; 32],
                }),
            };
            let measured = capacity::Measured {
                instructions: measured_run.instructions,
                messages: measured_run.messages,
                request_bytes: (candid::encode_args((name, Some(info.version), &inputs))?.len() + "infer".len()) as u64,
                reply_bytes: candid::encode_one(Ok::<_, inference_api::InferenceError>(reply))?.len() as u64,
            };
            let shapes: Vec<&Vec<u64>> = inputs.iter().map(|i| &i.shape).collect();
            println!(
                "{} v{}: {} instructions in {} message(s) per inference (measured on the canister, zero input {shapes:?})",
                info.name, info.version, measured.instructions, measured.messages
            );
            let plan = capacity::plan(measured, pool, *subnet_nodes);
            println!(
                "cycles per inference on a {}-node subnet: {} to execute, + {} when an agency canister calls it \
                 ({} B request, {} B reply)",
                plan.subnet_nodes,
                plan.execution_cycles,
                plan.inter_canister_cycles,
                measured.request_bytes,
                measured.reply_bytes
            );
            println!(
                "{:>9} {:>15} {:>14} {:>14} {:>22}",
                "canisters", "inferences/s", "p50 (rounds)", "p99 (rounds)", "cycles/day at that rate"
            );
            for p in &plan.pools {
                println!(
                    "{:>9} {:>15.2} {:>14} {:>14} {:>22}",
                    p.canisters, p.per_second, p.latency_p50_rounds, p.latency_p99_rounds, p.cycles_per_day
                );
            }
            println!(
                "(one round a second; a backlog of {} calls per canister; an application subnet has 4 execution \
                 threads, so pools beyond 4 canisters on one subnet add nothing: spread them over subnets)",
                capacity::BACKLOG_PER_CANISTER
            );
        }
        Command::Inspect { .. } => unreachable!(),
    }
    Ok(())
}

/// A client of each member of `--canister`'s pool (as it keeps the membership), the first one
/// first.
async fn pool_members(cli: &Cli, first: &InferenceClient<AgentTransport>) -> Result<Vec<pool::Member<AgentTransport>>> {
    let first_id = cli.canister.expect("a client was made for it");
    let view = answer(first.pool().await)?;
    let mut members = vec![pool::Member::new(first_id, client_for(cli, first_id).await?.into_transport())];
    for &m in view.members.iter().filter(|&&m| m != first_id) {
        members.push(pool::Member::new(m, client_for(cli, m).await?.into_transport()));
    }
    Ok(members)
}

/// Waits until `member` has no catch-up running, then prints how its last one went. A member
/// whose catch-up could not reach a peer (one that did not know it yet, when a pool is made)
/// catches up once more, now that every member knows every other.
async fn await_catch_up(member: &pool::Member<AgentTransport>) -> Result<()> {
    let started = std::time::Instant::now();
    let view = loop {
        let view = answer(member.client.pool().await)?;
        if !view.catching_up {
            break view;
        }
        if started.elapsed() > Duration::from_secs(3600) {
            return Err(anyhow!("{} has been catching up for an hour; see `pool status`", member.canister));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let report = match view.last_catch_up {
        Some(report) if report.failed.is_empty() => report,
        _ => answer(member.client.catch_up().await)?,
    };
    let refs = |refs: &[inference_api::ModelRef]| -> String {
        let named: Vec<String> =
            refs.iter().map(|r| format!("{} v{} ({})", r.name, r.version, &hex(&r.sha256)[..12])).collect();
        named.join(", ")
    };
    println!(
        "{}: caught up (copied [{}], enabled [{}], activated [{}])",
        member.canister,
        refs(&report.copied),
        refs(&report.enabled),
        refs(&report.activated)
    );
    for failure in &report.failed {
        println!("{}: could not use {}: {}", member.canister, failure.peer, failure.message);
    }
    Ok(())
}

/// Copies `--canister`'s `name` v`version` to every other member; each checks its sha256.
async fn copy_to_pool(members: &[pool::Member<AgentTransport>], name: &str, version: u32) -> Result<ModelInfo> {
    let first = &members[0];
    let source = answer(first.client.model_info(name, Some(version)).await)?;
    for m in &members[1..] {
        let copy = answer(m.client.replicate(first.canister, name, version).await)?;
        if copy.sha256 != source.sha256 {
            return Err(anyhow!("{} recorded another file than {}'s {name} v{version}", m.canister, first.canister));
        }
        println!("{}: {name} v{} copied (sha256 {})", m.canister, copy.version, hex(&copy.sha256));
    }
    Ok(source)
}

/// Switches the pool to `source`'s file (see `inference_client::pool::activate`).
async fn activate_pool(members: &[pool::Member<AgentTransport>], source: &ModelInfo) -> Result<()> {
    let versions = pool::activate(members, &source.name, &source.sha256).await?;
    for (m, v) in members.iter().zip(versions) {
        println!("{}: {} v{v} active", m.canister, source.name);
    }
    Ok(())
}

async fn pool_command(cli: &Cli, c: &InferenceClient<AgentTransport>, command: &PoolCommand) -> Result<()> {
    let first = cli.canister.expect("a client was made for it");
    match command {
        PoolCommand::Create { members } => {
            let mut ids = vec![first];
            ids.extend(members.iter().copied().filter(|&m| m != first));
            let mut clients = Vec::new();
            for &id in &ids {
                clients.push(pool::Member::new(id, client_for(cli, id).await?.into_transport()));
            }
            pool::set_members(&clients, &ids).await?;
            println!(
                "a pool of {} members: {}",
                ids.len(),
                ids.iter().map(|m| m.to_text()).collect::<Vec<_>>().join(", ")
            );
            for m in &clients {
                await_catch_up(m).await?;
            }
        }
        PoolCommand::Add { member } => {
            let mut members = pool_members(cli, c).await?;
            if members.iter().any(|m| m.canister == *member) {
                return Err(anyhow!("{member} is already a member"));
            }
            members.push(pool::Member::new(*member, client_for(cli, *member).await?.into_transport()));
            let ids: Vec<Principal> = members.iter().map(|m| m.canister).collect();
            // The newcomer last: it catches up with members that already know it.
            pool::set_members(&members, &ids).await?;
            await_catch_up(members.last().expect("just pushed")).await?;
        }
        PoolCommand::Remove { member } => {
            let members = pool_members(cli, c).await?;
            let (gone, staying): (Vec<_>, Vec<_>) = members.into_iter().partition(|m| m.canister == *member);
            let Some(gone) = gone.into_iter().next() else {
                return Err(anyhow!("{member} is not a member of {first}'s pool"));
            };
            let ids: Vec<Principal> = staying.iter().map(|m| m.canister).collect();
            pool::set_members(&staying, &ids).await?;
            pool::set_members(std::slice::from_ref(&gone), &[]).await?;
            println!("{member} left the pool; {} members remain", ids.len());
        }
        PoolCommand::Status { name } => {
            for m in pool_members(cli, c).await? {
                let view = answer(m.client.pool().await)?;
                let state = if view.catching_up { "catching up" } else { "idle" };
                println!("{} ({state})", m.canister);
                if let Some(name) = name {
                    match m.client.serving_versions(name).await? {
                        Ok(serving) => {
                            for v in serving {
                                let active = if v.active { "active" } else { "enabled" };
                                println!("  {name} v{} {active} sha256 {}", v.version, hex(&v.sha256));
                            }
                        }
                        Err(refused) => println!("  {name}: {refused}"),
                    }
                }
                if let Some(last) = view.last_catch_up {
                    println!(
                        "  last catch-up: {} copied, {} enabled, {} activated, {} failed",
                        last.copied.len(),
                        last.enabled.len(),
                        last.activated.len(),
                        last.failed.len()
                    );
                }
            }
        }
        PoolCommand::Upload(args) => {
            let members = pool_members(cli, c).await?;
            let info = upload_file(c, args, false).await?;
            let source = copy_to_pool(&members, &info.name, info.version).await?;
            if args.activate {
                activate_pool(&members, &source).await?;
            }
        }
        PoolCommand::Copy { name, version, activate } => {
            let members = pool_members(cli, c).await?;
            let source = copy_to_pool(&members, name, *version).await?;
            if *activate {
                activate_pool(&members, &source).await?;
            }
        }
        PoolCommand::Activate { name, version } => {
            let members = pool_members(cli, c).await?;
            let source = answer(c.model_info(name, Some(*version)).await)?;
            activate_pool(&members, &source).await?;
        }
    }
    Ok(())
}

/// `upload`: the file as a new version of `args.name`, checked against its sha256; activated
/// when `activate`.
async fn upload_file(c: &InferenceClient<AgentTransport>, args: &UploadArgs, activate: bool) -> Result<ModelInfo> {
    let UploadArgs {
        file,
        name,
        labels,
        labels_file,
        input_shape,
        max_shape,
        description,
        chunk_bytes,
        parallel,
        force,
        tokenizer,
        max_tokens,
        truncate,
        task,
        ..
    } = args;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let (bytes, text) = match tokenizer {
        None => (bytes, None),
        Some(path) => {
            let tokenizer = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let truncation = if *truncate { Truncation::KeepStart } else { Truncation::Refuse };
            let (bundle, spec) = text_bundle(&bytes, &tokenizer, *max_tokens, truncation, (*task).into());
            // The canister checks the same at the upload's finish; checked here first, nothing
            // is sent for a bundle it would refuse. The text front loads the tokenizer itself:
            // one that does not load is refused here, where the maintainer sees why.
            let inputs = inference_engine::model::inspect(&bytes).map_err(|e| anyhow!(e))?.inputs;
            inference_engine::text::check_bundle(&spec, &inputs, &tokenizer).map_err(|e| anyhow!(e))?;
            inference_tokenizer::TextTokenizer::new(&tokenizer, &spec).map_err(|e| anyhow!(e))?;
            (bundle, Some(spec))
        }
    };
    let mut labels = labels.clone();
    if let Some(f) = labels_file {
        labels.extend(std::fs::read_to_string(f)?.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from));
    }
    let inputs = if input_shape.is_empty() && max_shape.is_empty() {
        None
    } else {
        let model_bytes = &bytes[..bytes.len() - text.as_ref().map_or(0, |t| t.tokenizer_bytes as usize)];
        let summary = inference_engine::model::inspect(model_bytes).map_err(|e| anyhow!(e))?;
        let mut inputs = summary.inputs.clone();
        let first = inputs.first_mut().ok_or_else(|| anyhow!("the model declares no input"))?;
        if !input_shape.is_empty() {
            first.shape = input_shape.clone();
        }
        first.max_shape = (!max_shape.is_empty()).then(|| max_shape.clone());
        Some(inputs)
    };
    let request = UploadRequest {
        name: name.clone(),
        size: 0,
        sha256: vec![],
        chunk_size: 0,
        description: description.clone(),
        labels,
        inputs,
        text,
    };
    let bar = ProgressBar::new(bytes.len() as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}").unwrap());
    let options =
        UploadOptions { chunk_bytes: *chunk_bytes, parallelism: *parallel, force: *force, ..Default::default() };
    // Checked against the file's sha256 before it comes back: a mismatch is an error.
    let info = upload(c, &bytes, request, &options, &Bar(bar.clone())).await.map_err(|e| anyhow!("{e}"))?;
    bar.finish();
    print_info(&info);
    if activate {
        let sha256 = Sha256::digest(&bytes);
        activate_verified(c, &info.name, info.version, &sha256).await.map_err(|e| anyhow!("{e}"))?;
        println!("activated {} v{}", info.name, info.version);
    }
    Ok(info)
}

fn inference_engine_inspect(bytes: &[u8]) -> Result<String> {
    let i = inference_engine::model::inspect(bytes).map_err(|e| anyhow!(e))?;
    let mut out = format!(
        "inputs:  {:?}\noutputs: {:?}\noperators: {}\nweights: {:?}, {} parameters\n",
        i.inputs,
        i.outputs,
        i.operators.join(", "),
        i.weight_format,
        i.parameters
    );
    if !i.plan_value_inputs.is_empty() {
        let names: Vec<&str> = i.plan_value_inputs.iter().map(|&ix| i.inputs[ix].name.as_str()).collect();
        out.push_str(&format!("plan values (a plan per value calls bring): {}\n", names.join(", ")));
    }
    if i.unsupported.is_empty() {
        out.push_str("tract runs every operator");
    } else {
        out.push_str(&format!("NOT SUPPORTED by tract: {}", i.unsupported.join(", ")));
    }
    Ok(out)
}
