#!/usr/bin/env bash
# Real IC clients against the local replica's HTTP front (scripts/replica.sh):
#   1. icp-cli (npm @icp-sdk/icp-cli-linux-x64) deploys the three canisters from icp.yaml to it
#      as a connected network: CMC and cycles-ledger creation, the chunk store for the 8 MB
#      inference module, install_code for the text front and the agency with their init
#      arguments naming the inference canister;
#   2. icp-cli reads each deployed module's candid:service metadata back from the state tree;
#   3. a @dfinity/agent script (agent-js.mjs) calls a query and an update as the controller, and
#      sees a stranger's update refused before it executes; signatures verified throughout.
# (ic-agent, which inference-cli is built on, is tested in Rust: tests/replica/tests/replica/http_front.rs
# and tools/tests/cli_over_http.rs.) Needs the canister modules (scripts/build-canisters.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
port=4943

for tool in node npm openssl; do
  command -v $tool >/dev/null || { echo "tests/clients/run.sh needs $tool (Debian: apt-get install nodejs npm openssl)" >&2; exit 1; }
done
(cd tests/clients && npm ci --no-audit --no-fund --loglevel=error)
export IC_WASM=$root/tests/clients/node_modules/@icp-sdk/ic-wasm-linux-x64/bin/ic-wasm
icp=$root/tests/clients/node_modules/@icp-sdk/icp-cli-linux-x64/bin/icp
source "$root/scripts/lib/workspace-build.sh"
build_workspace_programs
replica_http=$(workspace_program ic-replica-http)

work=$(mktemp -d)
# icp-cli keeps identities and settings under ICP_HOME; no telemetry leaves the machine.
export ICP_HOME=$work/icp-home ICP_TELEMETRY_DISABLED=1
"$replica_http" --port $port >"$work/replica.out" 2>"$work/replica.err" &
replica=$!
trap 'kill $replica 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 200); do
  [ -s "$work/replica.out" ] && break
  kill -0 $replica 2>/dev/null || { cat "$work/replica.err" >&2; echo "the replica did not start (is port $port taken? scripts/replica.sh uses it too)" >&2; exit 1; }
  sleep 0.1
done
url=$(head -1 "$work/replica.out")
echo "replica at $url"

fail() { echo "tests/clients/run.sh: $*" >&2; exit 1; }

# A fresh replica knows none of the ids a previous run recorded.
rm -f .icp/data/mappings/replica.ids.json
# One ed25519 key deploys (icp-cli) and calls (agent-js): the canisters' controller.
openssl genpkey -algorithm ed25519 -out "$work/deployer.pem"
"$icp" identity import deployer --storage plaintext --from-pem "$work/deployer.pem" >/dev/null
deployer=$("$icp" identity principal --identity deployer)

"$icp" deploy inference -e replica -y --identity deployer
inference=$("$icp" canister status inference -e replica -i)
"$icp" deploy text -e replica -y --identity deployer --args "(record { inference_canister = principal \"$inference\" })"
"$icp" deploy agency -e replica -y --identity deployer \
  --args "(record { inference_canister = principal \"$inference\"; model = \"orientation\"; max_decisions = null }, null)"
agency=$("$icp" canister status agency -e replica -i)
echo "deployed inference $inference and agency $agency as $deployer"

# The agency and the text front got their init arguments: their settings name the inference
# canister.
for name in agency text; do
  settings=$("$icp" canister call $name settings '()' -e replica --identity deployer)
  echo "$settings" | grep -q "$inference" || fail "$name settings do not name $inference: $settings"
done

# Every module carries candid:service, as dfx's do, served from the state tree.
for name in inference text agency; do
  metadata=$("$icp" canister metadata $name candid:service -e replica --identity deployer)
  echo "$metadata" | grep -q '^service' || fail "$name has no candid:service metadata: $metadata"
done

out=$(node tests/clients/agent-js.mjs "$url" "$inference" "$work/deployer.pem") || fail "agent-js: $out"
echo "agent-js: $out"
echo "$out" | grep -q "\"caller\":\"$deployer\"" || fail "agent-js did not sign as the deployer $deployer: $out"
echo "$out" | grep -q '"stranger":{"reject_code":"4","error_code":"IC0406","certified":false}' ||
  fail "agent-js did not see a stranger's update refused by inspect_message, uncertified (IC0406): $out"
echo "tests/clients/run.sh: icp-cli and @dfinity/agent passed against $url"
