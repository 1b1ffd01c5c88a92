//! The replica's HTTP front against ic-agent, the client the maintainers' CLI is built on:
//! installs through the management canister, signed and delegated calls, verified queries,
//! certified replies and rejects, read_state, and the requests the IC refuses.

use crate::common;

use std::time::Duration;

use candid::{Decode, Encode, Principal};
use ic_agent::agent::{RejectCode, RejectResponse};
use ic_agent::identity::{AnonymousIdentity, BasicIdentity, DelegatedIdentity, Secp256k1Identity};
use ic_agent::{Agent, AgentError, Identity};
use ic_management_canister_types::{CanisterIdRecord, CanisterInstallMode, InstallCodeArgs};
use ic_replica::http::HttpReplica;
use ic_transport_types::{Delegation, SignedDelegation};
use sha2::Digest;

const CANDID: &str = "service : { echo : (blob) -> (blob) }";

fn echo_module() -> Vec<u8> {
    common::module(&format!(
        r#"
        (func (export "canister_update echo")
          i32.const 0 i32.const 0 call $arg_size call $arg_copy
          i32.const 0 call $arg_size call $append call $msg_reply)
        (func (export "canister_query echo_query")
          i32.const 0 i32.const 0 call $arg_size call $arg_copy
          i32.const 0 call $arg_size call $append call $msg_reply)
        (func (export "canister_update fail") i32.const 0 i32.const 0 call $trap)
        (@custom "icp:public candid:service" "{CANDID}")
        (@custom "icp:private notes" "for controllers")"#
    ))
}

fn ed25519(seed: u8) -> BasicIdentity {
    BasicIdentity::from_raw_key(&[seed; 32])
}

async fn agent(url: &str, identity: impl Identity + 'static) -> Agent {
    let agent = Agent::builder().with_url(url).with_identity(identity).build().expect("an agent");
    agent.fetch_root_key().await.expect("the replica's status gives its root key");
    agent
}

/// Creates and installs the echo canister through the management canister, as `controller`.
async fn deploy(agent: &Agent) -> Principal {
    let any = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    let reply = agent
        .update(&Principal::management_canister(), "provisional_create_canister_with_cycles")
        .with_effective_canister_id(any)
        .with_arg(Encode!(&ic_management_canister_types::ProvisionalCreateCanisterWithCyclesArgs::default()).unwrap())
        .call_and_wait()
        .await
        .expect("created");
    let id = Decode!(&reply, CanisterIdRecord).unwrap().canister_id;
    let install = InstallCodeArgs {
        mode: CanisterInstallMode::Install,
        canister_id: id,
        wasm_module: echo_module(),
        arg: vec![],
        sender_canister_version: None,
    };
    agent
        .update(&Principal::management_canister(), "install_code")
        .with_effective_canister_id(id)
        .with_arg(Encode!(&install).unwrap())
        .call_and_wait()
        .await
        .expect("installed");
    id
}

/// A call to the management canister about canister `id`.
async fn management(agent: &Agent, method: &str, id: Principal, arg: Vec<u8>) -> Result<Vec<u8>, AgentError> {
    agent
        .update(&Principal::management_canister(), method)
        .with_effective_canister_id(id)
        .with_arg(arg)
        .call_and_wait()
        .await
}

fn reject_of(error: AgentError) -> RejectResponse {
    match error {
        AgentError::CertifiedReject { reject, .. } | AgentError::UncertifiedReject { reject, .. } => reject,
        other => panic!("expected a reject, got {other}"),
    }
}

fn http_status(error: AgentError) -> (u16, String) {
    match error {
        AgentError::HttpError(payload) => (payload.status, String::from_utf8_lossy(&payload.content).to_string()),
        other => panic!("expected an HTTP error, got {other}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn ic_agent_deploys_calls_and_reads_state_with_every_check_on() {
    let server = HttpReplica::start(0, |_| {}).unwrap();
    let owner = agent(server.url(), ed25519(1)).await;
    let id = deploy(&owner).await;

    // A query, its node signature verified (ic-agent's default), and a certified update.
    let reply = owner.query(&id, "echo_query").with_arg(b"hello".to_vec()).call().await.unwrap();
    assert_eq!(reply, b"hello");
    let reply = owner.update(&id, "echo").with_arg(b"certified".to_vec()).call_and_wait().await.unwrap();
    assert_eq!(reply, b"certified");
    // A query method called as an update runs replicated, as on the IC.
    let reply = owner.update(&id, "echo_query").with_arg(b"replicated".to_vec()).call_and_wait().await.unwrap();
    assert_eq!(reply, b"replicated");

    // Other users' keys: secp256k1, a delegation from an ed25519 key, and the anonymous principal.
    let secp = Secp256k1Identity::from_private_key(k256::SecretKey::from_slice(&[9; 32]).unwrap());
    let delegator = ed25519(2);
    let session = ed25519(3);
    let delegation =
        Delegation { pubkey: session.public_key().unwrap(), expiration: u64::MAX, targets: Some(vec![id]) };
    let signature = delegator.sign_delegation(&delegation).unwrap().signature.unwrap();
    let delegated = DelegatedIdentity::new(
        delegator.public_key().unwrap(),
        Box::new(session),
        vec![SignedDelegation { delegation, signature }],
    )
    .unwrap();
    for user in [
        agent(server.url(), secp).await,
        agent(server.url(), delegated).await,
        agent(server.url(), AnonymousIdentity).await,
    ] {
        assert_eq!(user.update(&id, "echo").with_arg(vec![7]).call_and_wait().await.unwrap(), [7]);
        assert_eq!(user.query(&id, "echo_query").with_arg(vec![8]).call().await.unwrap(), [8]);
    }

    // The state tree: module hash, controllers, public metadata for anyone, private for controllers.
    let wasm_hash: [u8; 32] = sha2::Sha256::digest(echo_module()).into();
    assert_eq!(owner.read_state_canister_module_hash(id).await.unwrap(), wasm_hash);
    assert_eq!(owner.read_state_canister_controllers(id).await.unwrap(), [owner.get_principal().unwrap()]);
    let stranger = agent(server.url(), ed25519(4)).await;
    assert_eq!(stranger.read_state_canister_metadata(id, "candid:service").await.unwrap(), CANDID.as_bytes());
    assert_eq!(owner.read_state_canister_metadata(id, "notes").await.unwrap(), b"for controllers");
    let (status, body) = http_status(stranger.read_state_canister_metadata(id, "notes").await.unwrap_err());
    assert_eq!(status, 403, "{body}");

    // The controller's canister_status, decoded as clients decode it.
    let reply = management(&owner, "canister_status", id, Encode!(&CanisterIdRecord { canister_id: id }).unwrap())
        .await
        .unwrap();
    let status = Decode!(&reply, ic_management_canister_types::CanisterStatusResult).unwrap();
    assert_eq!(status.module_hash, Some(wasm_hash.to_vec()));
    assert_eq!(status.settings.controllers, [owner.get_principal().unwrap()]);
    assert!(status.cycles > 0u64);
}

#[tokio::test(flavor = "current_thread")]
async fn rejects_carry_the_ic_codes_and_filtered_calls_cost_nothing() {
    let server = HttpReplica::start(0, |_| {}).unwrap();
    let owner = agent(server.url(), ed25519(1)).await;
    let id = deploy(&owner).await;

    // A trap is certified; the error code's first digit is the reject code, as on the IC.
    let trap = owner.update(&id, "fail").call_and_wait().await.unwrap_err();
    assert!(matches!(trap, AgentError::CertifiedReject { .. }), "{trap}");
    let trap = reject_of(trap);
    assert_eq!((trap.reject_code, trap.error_code.as_deref()), (RejectCode::CanisterError, Some("IC0503")));
    let missing = reject_of(owner.query(&id, "no_such_method").call().await.unwrap_err());
    assert_eq!((missing.reject_code, missing.error_code.as_deref()), (RejectCode::CanisterError, Some("IC0536")));
    // Refused before it runs (the update method is missing): not certified.
    let missing = owner.update(&id, "no_such_method").call_and_wait().await.unwrap_err();
    assert!(matches!(missing, AgentError::UncertifiedReject { .. }), "{missing}");

    // Only controllers may read a canister's status; a stranger's attempt costs the canister
    // nothing (the ingress filter refuses it before any fee).
    let balance = |server: &HttpReplica| server.with(move |front| front.replica.cycle_balance(id));
    let before = balance(&server);
    let stranger = agent(server.url(), ed25519(4)).await;
    let refused = management(&stranger, "canister_status", id, Encode!(&CanisterIdRecord { canister_id: id }).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(refused, AgentError::UncertifiedReject { .. }), "{refused}");
    let refused = reject_of(refused);
    assert_eq!((refused.reject_code, refused.error_code.as_deref()), (RejectCode::CanisterError, Some("IC0512")));
    // Neither does a method users may not call, nor settings that change nothing.
    for (method, arg) in [
        ("raw_rand", Encode!().unwrap()),
        (
            "update_settings",
            Encode!(&ic_management_canister_types::UpdateSettingsArgs {
                canister_id: id,
                settings: Default::default(),
                sender_canister_version: None,
            })
            .unwrap(),
        ),
    ] {
        let refused = management(&stranger, method, id, arg).await.unwrap_err();
        assert!(matches!(refused, AgentError::UncertifiedReject { .. }), "{method}: {refused}");
    }
    // The ledger and the storage of the seconds between the readings are the only difference.
    assert!(before - balance(&server) < 1_000_000, "a stranger cost the canister {} cycles", before - balance(&server));

    // A controller's message to the management canister is paid by the canister it names.
    let before = server.with(move |front| front.replica.cycle_balance(id));
    let signed = owner
        .update(&Principal::management_canister(), "canister_status")
        .with_effective_canister_id(id)
        .with_arg(Encode!(&CanisterIdRecord { canister_id: id }).unwrap())
        .sign()
        .unwrap();
    let bytes = signed.signed_update.len() as u64;
    let fee = server.with(move |front| front.replica.fees().ingress(bytes));
    owner.update_signed(id, signed.signed_update).await.unwrap();
    let after = server.with(move |front| front.replica.cycle_balance(id));
    assert!(fee > 1_200_000);
    // Storage for the time between the two readings may also have been charged.
    assert!(before - after >= fee && before - after < fee + 1_000_000, "paid {}, fee {fee}", before - after);
}

/// Signs as one key while claiming to be another.
struct Impostor {
    claimed: BasicIdentity,
    signer: BasicIdentity,
}

impl Identity for Impostor {
    fn sender(&self) -> Result<Principal, String> {
        self.claimed.sender()
    }
    fn public_key(&self) -> Option<Vec<u8>> {
        self.claimed.public_key()
    }
    fn sign(&self, content: &ic_transport_types::EnvelopeContent) -> Result<ic_agent::Signature, String> {
        let mut signature = self.signer.sign(content)?;
        signature.public_key = self.claimed.public_key();
        Ok(signature)
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_front_refuses_what_the_ic_refuses() {
    let server = HttpReplica::start(0, |_| {}).unwrap();
    let owner = agent(server.url(), ed25519(1)).await;
    let id = deploy(&owner).await;

    // A signature by another key than the sender's.
    let impostor = agent(server.url(), Impostor { claimed: ed25519(1), signer: ed25519(5) }).await;
    let (status, body) = http_status(impostor.update(&id, "echo").call_and_wait().await.unwrap_err());
    assert_eq!(status, 400);
    assert!(body.contains("Invalid signature"), "{body}");

    // An expiry beyond the IC's five minutes and drift, or already past.
    let late = owner.update(&id, "echo").expire_after(Duration::from_secs(10 * 60)).call_and_wait().await;
    let (status, body) = http_status(late.unwrap_err());
    assert_eq!(status, 400);
    assert!(body.starts_with("Invalid request expiry"), "{body}");
    let past = std::time::SystemTime::now() - Duration::from_secs(10);
    let (status, body) = http_status(owner.update(&id, "echo").expire_at(past).call_and_wait().await.unwrap_err());
    assert!(status == 400 && body.starts_with("Invalid request expiry"), "{status} {body}");

    // Delegations: expired, aimed at other canisters, or more than 20 of them.
    let delegated = |expiration: u64, targets: Option<Vec<Principal>>, links: u8| {
        let keys: Vec<BasicIdentity> = (0..=links).map(|i| ed25519(100 + i)).collect();
        let chain = keys
            .windows(2)
            .map(|pair| {
                let delegation =
                    Delegation { pubkey: pair[1].public_key().unwrap(), expiration, targets: targets.clone() };
                let signature = pair[0].sign_delegation(&delegation).unwrap().signature.unwrap();
                SignedDelegation { delegation, signature }
            })
            .collect();
        let last = keys.into_iter().next_back().unwrap();
        DelegatedIdentity::new_unchecked(ed25519(100).public_key().unwrap(), Box::new(last), chain)
    };
    let other = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 9, 1, 1]);
    for (what, identity) in [
        ("expired", delegated(1, None, 1)),
        ("another target", delegated(u64::MAX, Some(vec![other]), 1)),
        ("21 links", delegated(u64::MAX, None, 21)),
    ] {
        let user = agent(server.url(), identity).await;
        let (status, body) = http_status(user.update(&id, "echo").call_and_wait().await.unwrap_err());
        assert!(status == 400 && body.contains("delegation"), "{what}: {status} {body}");
    }
    // Targeted at the canister, a delegation does not reach the management canister.
    let user = agent(server.url(), delegated(u64::MAX, Some(vec![id]), 1)).await;
    assert_eq!(user.update(&id, "echo").with_arg(vec![2]).call_and_wait().await.unwrap(), [2]);
    let (status, _) = http_status(
        user.update(&Principal::management_canister(), "canister_status")
            .with_effective_canister_id(id)
            .with_arg(Encode!(&CanisterIdRecord { canister_id: id }).unwrap())
            .call_and_wait()
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 400);

    // A message over the IC's 2 MiB: 413, whatever it is for.
    let install = InstallCodeArgs {
        mode: CanisterInstallMode::Reinstall,
        canister_id: id,
        wasm_module: vec![0; 2 << 20],
        arg: vec![],
        sender_canister_version: None,
    };
    let too_large = management(&owner, "install_code", id, Encode!(&install).unwrap()).await;
    assert_eq!(http_status(too_large.unwrap_err()).0, 413);

    // read_state serves the IC's paths only.
    let (status, _) =
        http_status(owner.read_state_raw(vec![vec!["canister".into(), id.as_slice().into()]], id).await.unwrap_err());
    assert_eq!(status, 404);

    // Another sender's request status is not theirs to read.
    let signed = owner.update(&id, "echo").with_arg(vec![1]).sign().unwrap();
    let envelope_bytes = signed.signed_update.len() as u64;
    // What calls outside HTTP pay for (an estimated envelope) is within 5 % of a real one.
    let estimate = ic_replica::fees::ingress_message_bytes("echo", &[1]);
    assert!(estimate.abs_diff(envelope_bytes) * 20 <= envelope_bytes, "estimate {estimate}, real {envelope_bytes}");
    owner.update_signed(id, signed.signed_update).await.unwrap();
    // The canister paid the ingress fee on the signed envelope's bytes, as on the IC.
    let charged = server.with(|front| front.replica.message_log().last().unwrap().ingress_bytes);
    assert_eq!(charged, Some(envelope_bytes));
    let stranger = agent(server.url(), ed25519(4)).await;
    let (status, _) = http_status(stranger.request_status_raw(&signed.request_id, id).await.unwrap_err());
    assert_eq!(status, 403);
    let (status, _) = owner.request_status_raw(&signed.request_id, id).await.unwrap();
    assert!(matches!(status, ic_agent::agent::RequestStatusResponse::Replied(r) if r.arg == [1]));
}

/// Sends one raw HTTP/1.1 request and returns the status line and headers.
fn raw(url: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[tokio::test(flavor = "current_thread")]
async fn the_server_answers_browsers_and_survives_odd_requests() {
    let server = HttpReplica::start(0, |_| {}).unwrap();
    // A CORS preflight, as a browser agent sends before each call.
    let preflight = raw(server.url(), "OPTIONS /api/v3/canister/aaaaa-aa/call HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(
        preflight.starts_with("HTTP/1.1 204") && preflight.contains("Access-Control-Allow-Origin: *"),
        "{preflight}"
    );
    // A body that is not CBOR by its content type.
    let plain = raw(
        server.url(),
        "POST /api/v2/canister/aaaaa-aa/query HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assert!(plain.starts_with("HTTP/1.1 400") && plain.contains("Unexpected content-type"), "{plain}");
    // A creation with no controllers and environment variables (the IC allows both).
    let owner = agent(server.url(), ed25519(1)).await;
    let create = ic_management_canister_types::ProvisionalCreateCanisterWithCyclesArgs {
        settings: Some(ic_management_canister_types::CanisterSettings {
            controllers: Some(vec![]),
            environment_variables: Some(vec![ic_management_canister_types::EnvironmentVariable {
                name: "A".into(),
                value: "1".into(),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let reply = owner
        .update(&Principal::management_canister(), "provisional_create_canister_with_cycles")
        .with_effective_canister_id(Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 1, 1]))
        .with_arg(Encode!(&create).unwrap())
        .call_and_wait()
        .await
        .unwrap();
    let id = Decode!(&reply, CanisterIdRecord).unwrap().canister_id;
    assert!(server.with(move |front| front.replica.controllers(id).is_empty()));
    // The server still answers.
    owner.status().await.unwrap();
}
