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
