#!/usr/bin/env bash
# The main job on the local replica: builds the canister (IC-valid, size-checked), installs it
# and runs it, printing what tract selected and what each call cost.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-canisters.sh
# PocketIC instead of the local replica when POCKET_IC_BIN is set (the harness's feature).
features=()
if [ -n "${POCKET_IC_BIN:-}" ]; then
  features=(--features canister-harness/pocket-ic)
fi
source scripts/lib/workspace-build.sh
build_workspace_programs "${features[@]}"
"$(workspace_program examples/demo)"
