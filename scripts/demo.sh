#!/usr/bin/env bash
# The main job on the local replica: builds the canister (IC-valid, size-checked), installs it
# and runs it, printing what tract selected and what each call cost.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-canisters.sh
source scripts/lib/workspace-build.sh
build_workspace_programs "${pocket_ic_features[@]}"
"$(workspace_program examples/demo)"
