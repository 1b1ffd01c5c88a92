# Shared by the scripts that run the workspace's own programs (the demo, the benchmarks, the
# replica's HTTP front). They build every bin and example of the workspace at once, as the test
# build does: the same packages, so the same features (`cargo run -p one-package` resolves
# features for that package alone and recompiles much of the dependency graph: in a cold CI run
# that cost 7 minutes for the benchmarks and 3 for the clients). After `cargo nextest run
# --workspace` this builds nothing.
#   build_workspace_programs [cargo args…]    e.g. "${features[@]}"
#   workspace_program examples/bench          its path
build_workspace_programs() {
  cargo build --quiet --workspace --bins --examples "$@"
}
workspace_program() {
  local target=${CARGO_TARGET_DIR:-target}
  case $target in /*) ;; *) target=$PWD/$target ;; esac
  echo "$target/debug/$1"
}

# PocketIC instead of the local replica when POCKET_IC_BIN is set (README, "Tests"): the harness's
# PocketIC backend is a feature the default build leaves out.
pocket_ic_features=()
if [ -n "${POCKET_IC_BIN:-}" ]; then
  pocket_ic_features=(--features canister-harness/pocket-ic)
fi
