# Shared by the scripts that run pinned Python: `pinned_venv VENV PINS` makes VENV (once) and
# installs PINS into it, quietly.
pinned_venv() {
  local venv=$1 pins=$2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$pins"
}
