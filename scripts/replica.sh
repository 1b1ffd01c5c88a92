#!/usr/bin/env bash
# Runs the local replica as a server speaking the IC's HTTP interface on 127.0.0.1 (port 4943,
# as local networks use, unless `--port N`; 0 picks a free one), until interrupted. Its first line
# of output is the URL, its second the root key in hex. Clients fetch the root key from
# /api/v2/status as for any local network: `inference-cli --network local`, `icp deploy -e replica`
# (icp.yaml), `HttpAgent.create({ host, shouldFetchRootKey: true })`. State lives as long as it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/workspace-build.sh
build_workspace_programs
exec "$(workspace_program ic-replica-http)" "$@"
