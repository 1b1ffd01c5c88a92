#!/usr/bin/env bash
# Benchmarks on the local replica (or PocketIC with POCKET_IC_BIN): prints a table and writes
# target/bench/results.yml and the per-operator profile target/bench/profile.md; then the
# throughput of one and two subnets (subnet model over the replica's per-message instructions),
# target/bench/throughput.yml.
#   scripts/bench.sh            run and show the differences from benchmarks/results.yml
#   scripts/bench.sh --check    fail when the numbers differ from benchmarks/results.yml or profile.md (CI)
#   scripts/bench.sh --persist  make these numbers the committed baseline
#   BENCH_NODES=<model> scripts/bench.sh   also print that model's profile node by node (NODE lines)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-canisters.sh >&2
source scripts/lib/workspace-build.sh
build_workspace_programs "${pocket_ic_features[@]}"
"$(workspace_program examples/bench)"
"$(workspace_program examples/throughput)"
baseline=benchmarks/results.yml
case "${1:-}" in
  --persist)
    mkdir -p benchmarks && cp target/bench/results.yml "$baseline" && cp target/bench/profile.md benchmarks/profile.md
    cp target/bench/throughput.yml benchmarks/throughput.yml
    echo "baseline updated: $baseline, benchmarks/profile.md, benchmarks/throughput.yml" ;;
  --check)
    if ! diff -u "$baseline" target/bench/results.yml || ! diff -u benchmarks/profile.md target/bench/profile.md ||
      ! diff -u benchmarks/throughput.yml target/bench/throughput.yml; then
      echo "benchmark results differ from $baseline: review, then commit them with scripts/bench.sh --persist" >&2
      exit 1
    fi
    echo "benchmarks: results equal the committed baseline" ;;
  *)
    [ -f "$baseline" ] && diff -u "$baseline" target/bench/results.yml || true ;;
esac
