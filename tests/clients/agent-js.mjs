// Exercises the local replica's HTTP interface with the stock @dfinity/agent (3.4.3).
//
// Usage: node agent-js.mjs <replica_url> <inference_canister_id> <controller_ed25519.pem>
//
// The controller's Ed25519 key (PKCS#8, as `openssl genpkey -algorithm ed25519` writes it) signs a
// query and a certified update; a fresh key's update is refused by the canister's
// inspect_message before it executes. Query signature verification stays on (the agent
// default), so the replica has to sign query responses with a node key that its certified
// /subnet tree lists. Prints one JSON line on success, exits 1 with the error on stderr otherwise.

import { Actor, HttpAgent } from '@dfinity/agent';
import { IDL } from '@dfinity/candid';
import { Ed25519KeyIdentity } from '@dfinity/identity';
import { readFileSync } from 'node:fs';

// A PKCS#8 v1 Ed25519 key ends with its 32-byte seed.
function identityFromPem(path) {
  const base64 = readFileSync(path, 'utf8').replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const der = Buffer.from(base64, 'base64');
  return Ed25519KeyIdentity.fromSecretKey(new Uint8Array(der.subarray(der.length - 32)));
}

// A hand-written slice of inference/inference.did. Decoding into a record with
// fewer fields is allowed, so PlatformInfo leaves out `sigmoid_f32_kernel`.
const idlFactory = ({ IDL }) => {
  const PlatformInfo = IDL.Record({
    isa: IDL.Text,
    wasm_simd_active: IDL.Bool,
    mmm_kernels: IDL.Vec(IDL.Text),
    routines_registered: IDL.Nat64,
  });
  // type NotAuthorized = record { needs : Role; caller : principal };
  const NotAuthorized = IDL.Record({ caller: IDL.Principal });
  // type SelfTestError = variant { Failed : text; NotAuthorized : NotAuthorized };
  const SelfTestError = IDL.Variant({ Failed: IDL.Text, NotAuthorized });
  // type Result_14 = variant { Ok : SelfTestReport; Err : SelfTestError };
  const Result14 = IDL.Variant({ Ok: IDL.Reserved, Err: SelfTestError });
  return IDL.Service({
    platform_report: IDL.Func([], [PlatformInfo], ['query']),
    self_test: IDL.Func([], [Result14], []),
  });
};

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

async function main() {
  const [host, canisterId, pem] = process.argv.slice(2);
  if (!host || !canisterId || !pem) {
    fail('usage: node agent-js.mjs <replica_url> <inference_canister_id> <controller_ed25519.pem>');
  }

  const controller = identityFromPem(pem);
  const agent = await HttpAgent.create({ host, identity: controller, shouldFetchRootKey: true });
  const inference = Actor.createActor(idlFactory, { agent, canisterId });

  const platform = await inference.platform_report();
  const query = {
    isa: platform.isa,
    wasm_simd_active: platform.wasm_simd_active,
    mmm_kernels: platform.mmm_kernels,
    routines_registered: platform.routines_registered.toString(),
  };

  // The controller's self-test: a certified update that runs every kernel check.
  const own = await inference.self_test();
  if (!('Ok' in own)) {
    fail(`self_test as the controller: expected Ok, got ${JSON.stringify(own)}`);
  }

  // Anyone else is refused before anything executes (inspect_message), as an error the agent raises.
  const stranger = Ed25519KeyIdentity.generate();
  const strangerAgent = await HttpAgent.create({ host, identity: stranger, shouldFetchRootKey: true });
  let refused = null;
  try {
    await Actor.createActor(idlFactory, { agent: strangerAgent, canisterId }).self_test();
  } catch (err) {
    refused = err?.message ?? String(err);
  }
  if (refused === null) {
    fail('self_test by a stranger was not refused');
  }
  const code = /"reject_code":\s*(\d)/.exec(refused)?.[1] ?? /Reject code: (\d)/.exec(refused)?.[1];
  const errorCode = /"error_code":\s*"(IC\d+)"/.exec(refused)?.[1];
  // Refused by the ingress filter: answered without a certificate.
  const certified = !refused.includes('non_replicated_rejection');

  const caller = controller.getPrincipal().toText();
  process.stdout.write(`${JSON.stringify({ caller, query, update: 'Ok', stranger: { reject_code: code, error_code: errorCode, certified } })}\n`);
}

main().then(
  () => process.exit(0),
  (err) => fail(err?.stack ?? String(err)),
);
