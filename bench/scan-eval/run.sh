#!/usr/bin/env bash
# Accuracy evaluation of `remit scan` against Microsoft Presidio (regex and
# checksum recognizers, blank spaCy pipeline: no model download).
# Usage: bench/scan-eval/run.sh [--docs N] [--seed S]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q -r "$here/requirements.txt"
fi
if [ -z "${REMIT_BIN:-}" ]; then
  (cd "$root" && cargo build -q --release -p remit)
  REMIT_BIN="${CARGO_TARGET_DIR:-$root/target}/release/remit"
fi
export REMIT_BIN
exec "$here/.venv/bin/python" "$here/eval.py" "$@"
