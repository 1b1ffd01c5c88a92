# Shared by the scripts: install what a fresh machine lacks, quietly and only once.
ensure_wasm_target() {
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    echo "installing the wasm32-unknown-unknown target" >&2
    rustup target add wasm32-unknown-unknown >&2
  fi
}
ensure_rust_components() {
  local installed
  installed=$(rustup component list --installed 2>/dev/null || true)
  for component in rustfmt clippy; do
    if ! grep -q "^$component" <<<"$installed"; then
      echo "installing the $component component" >&2
      rustup component add "$component" >&2
    fi
  done
}
ensure_wasm_opt() {
  if ! command -v wasm-opt >/dev/null; then
    echo "installing binaryen (wasm-opt) from Debian" >&2
    apt_install binaryen
  fi
}
ensure_nextest() {
  if ! command -v cargo-nextest >/dev/null; then
    echo "installing cargo-nextest" >&2
    cargo install --locked cargo-nextest >&2
  fi
}
apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
