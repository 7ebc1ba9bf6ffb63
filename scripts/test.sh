#!/usr/bin/env bash
# The test suite: installs the manifest checkers into .venv (once), runs every Rust
# test, including the ones that validate rendered manifests with them, then the
# end-to-end suite against a real control plane (e2e/run.sh; SECURETUNNEL_E2E=0 skips
# it, saying so, outside CI).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

venv="$root/.venv"
stamp="$venv/.requirements"
if ! cmp -s scripts/requirements.txt "$stamp" 2>/dev/null; then
  echo "installing manifest checkers into .venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt
  cp scripts/requirements.txt "$stamp"
fi

export SECURETUNNEL_VENV="$venv"
# Explicit targets: doc-tests (there are none) would end the run on "0 passed".
cargo test --locked --lib --bins --tests "$@"

bash "$root/e2e/run.sh"
