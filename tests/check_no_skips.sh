#!/usr/bin/env bash
# check_no_skips.sh JUNIT_XML: fails (exit 1) when ctest's JUnit report (ctest --output-junit)
# lists a test that did not run (GTEST_SKIP, a skip return code, a disabled test), naming each
# with ctest's reason and the test's own skip message. scripts/test runs it where every tier must
# run: as root or with CI=true, the real components are there, so a skip is a hole in the run.
set -euo pipefail
junit=${1:?usage: check_no_skips.sh JUNIT_XML}
if [ ! -s "$junit" ]; then
  echo "error: no ctest JUnit report at $junit: cannot tell whether every test ran" >&2
  exit 1
fi
# Each test is a <testcase name="..."> element; one that did not run holds <skipped message=...>,
# and its output has gtest's "FILE:LINE: Skipped" line followed by the test's own message.
skipped=$(awk '
  /<testcase / { name = $0; sub(/.*<testcase name="/, "", name); sub(/".*/, "", name)
                 why = ""; said = ""; skip = 0; next }
  /<skipped / { why = $0; sub(/.*message="/, "", why); sub(/".*/, "", why); skip = 1; next }
  skip && after && said == "" { said = $0 }
  { after = ($0 ~ /: Skipped$/) }
  /<\/testcase>/ { if (skip) printf "  %s (%s)%s\n", name, why, (said != "" ? ": " said : "") }
' "$junit")
if [ -n "$skipped" ]; then
  count=$(printf '%s\n' "$skipped" | wc -l)
  echo "error: $count test(s) did not run where every tier must run (root or CI=true):" >&2
  printf '%s\n' "$skipped" >&2
  echo "Install what they need or fix why they skip; a skipped test proves nothing." >&2
  exit 1
fi
