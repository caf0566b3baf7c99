#!/usr/bin/env bash
# The one test command: installs the real servers and clients the end-to-end tests drive, builds,
# runs every tap test, and ends with "N passed, N failed, N skipped" counted over assertions
# (tap's leaf test points; a test file that dies before or without any counts as one failure).
# Exits non-zero when anything failed, when tap itself failed, or when no test ran.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# CI semantics everywhere: a missing server or client fails the run, it is never skipped.
export CI=true

bash scripts/install-deps.sh
bash scripts/bench-deps.sh --peers-only  # haproxy, socat, mod_proxy: the bench's smoke run (test/bench-smoke.test.ts) needs them all
npm ci --no-audit --no-fund
npm run build
# The tests and benchmarks type-check too (tap runs them transpile-only); one style and the
# type-checked rules everywhere (eslint.config.js).
npm run typecheck
npm run lint

tap_out=$(mktemp)
trap 'rm -f "$tap_out"' EXIT

set +e
npx --no-install tap --reporter=tap | tee "$tap_out"
tap_status=${PIPESTATUS[0]}
set -e

# tap-parser (installed with tap) flattens nested subtests into one line per assertion. It exits
# non-zero when the TAP it read has failures; the counts below say that already.
counts=$({ npx --no-install tap-parser --flat --tap <"$tap_out" || true; } | awk '
  /^(not )?ok / {
    if ($0 ~ /# (SKIP|TODO)/) skipped++
    else if ($0 ~ /^ok /) passed++
    else failed++
  }
  END { printf "%d %d %d\n", passed, failed, skipped }')
read -r passed failed skipped <<<"$counts"

echo
echo "$passed passed, $failed failed, $skipped skipped"

if [ "$failed" -gt 0 ]; then exit 1; fi
if [ "$tap_status" -ne 0 ]; then
  echo "test.sh: tap exited $tap_status without a failed assertion (see its output above)" >&2
  exit "$tap_status"
fi
if [ "$passed" -eq 0 ]; then
  echo "test.sh: no test ran" >&2
  exit 1
fi
