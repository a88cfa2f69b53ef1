#!/usr/bin/env bash
# README command 2: install what is missing, build, run every test
# (GoogleTest unit tests and the lit suites, through ctest).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LLM_BUILD_DIR:-$root/build}
bash "$root/scripts/deps.sh"
bash "$root/scripts/build.sh"

status=0
ctest --test-dir "$build" --output-on-failure ${LLM_CTEST_ARGS:-} | tee "$build/ctest.log" || status=$?

# lit's own summary (it runs as one ctest test).
log=$build/Testing/Temporary/LastTest.log
if [ -f "$log" ] && grep -q "Total Discovered Tests" "$log"; then
  echo "lit summary:"
  sed -n '/Total Discovered Tests/,/^$/p' "$log" | grep -E "^(Total Discovered|  Passed|  Failed|  Unsupported|  Expectedly|  Skipped)" || true
fi
exit $status
