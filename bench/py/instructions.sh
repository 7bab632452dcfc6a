#!/usr/bin/env bash
# Instructions per operation (valgrind --tool=callgrind), the same on a
# loaded machine as on a quiet one: each side of each operation runs N and
# 2N times in a fresh interpreter; the difference over N is the cost of one
# call without the interpreter's start-up and the fixture.
#   bench/py/instructions.sh [N]     (python from PATH: the bench venv)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-200}
count() {
  local out; out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" python bench/py/bench.py --only "$1" --count "$2" >/dev/null 2>&1
  grep -m1 '^summary:' "$out" | awk '{print $2}'
  rm -f "$out"
}
printf '%-8s %14s %14s %8s\n' op remit_Ir pyjwt_Ir ratio
for op in sign verify proof; do
  declare -A per
  for side in remit pyjwt; do
    a=$(count "$side:$op" "$n"); b=$(count "$side:$op" $((2 * n)))
    per[$side]=$(( (b - a) / n ))
  done
  printf '%-8s %14d %14d %7.2fx\n' "$op" "${per[remit]}" "${per[pyjwt]}" \
    "$(echo "${per[pyjwt]} / ${per[remit]}" | bc -l)"
done
