#!/usr/bin/env bash
# check_no_skips.sh JUNIT_XML: fails (exit 1) when ctest's JUnit report (ctest --output-junit)
# lists a test that did not run (GTEST_SKIP, a skip return code, a disabled test), naming each
# with ctest's reason and the test's own skip message. scripts/test runs it where every tier must
# run: as root or with CI=true, the real components are there, so a skip is a hole in the run.
# One exception, for what no package can install: the real-kernel end to end tests (E2E.*,
# tests/e2e/) skip when the machine cannot boot their guest (offline with no kernel cached …)
# and say so in a line "E2E-SKIP: the machine cannot boot the guest: <why>"; such a skip is
# listed, not failed. Any other test printing that line, or an E2E test skipping without it,
# still fails the run.
set -euo pipefail
junit=${1:?usage: check_no_skips.sh JUNIT_XML}
if [ ! -s "$junit" ]; then
  echo "error: no ctest JUnit report at $junit: cannot tell whether every test ran" >&2
  exit 1
fi
# Each test is a <testcase name="..."> element; one that did not run holds <skipped message=...>,
# and its output has gtest's "FILE:LINE: Skipped" line followed by the test's own message.
e2e_prefix='E2E-SKIP: the machine cannot boot the guest: '
report=$(awk -v e2e="$e2e_prefix" '
  /<testcase / { name = $0; sub(/.*<testcase name="/, "", name); sub(/".*/, "", name)
                 why = ""; said = ""; skip = 0; machine = ""; next }
  /<skipped / { why = $0; sub(/.*message="/, "", why); sub(/".*/, "", why); skip = 1; next }
  skip && after && said == "" { said = $0 }
  index($0, e2e) { line = $0; sub(/.*E2E-SKIP: /, "", line); machine = line }
  { after = ($0 ~ /: Skipped$/) }
  /<\/testcase>/ {
    if (!skip) next
    if (name ~ /^E2E\./ && machine != "") printf "cannot %s: %s\n", name, machine
    else printf "skipped   %s (%s)%s\n", name, why, (said != "" ? ": " said : "")
  }
' "$junit")
cannot=$(printf '%s\n' "$report" | sed -n 's/^cannot //p')
skipped=$(printf '%s\n' "$report" | sed -n 's/^skipped //p')
if [ -n "$cannot" ]; then
  echo "note: end to end test(s) skipped because this machine cannot run them:"
  printf '  %s\n' "$cannot"
fi
if [ -n "$skipped" ]; then
  count=$(printf '%s\n' "$skipped" | wc -l)
  echo "error: $count test(s) did not run where every tier must run (root or CI=true):" >&2
  printf '%s\n' "$skipped" >&2
  echo "Install what they need or fix why they skip; a skipped test proves nothing." >&2
  exit 1
fi
