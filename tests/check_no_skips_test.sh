#!/usr/bin/env bash
# check_no_skips.sh against real ctest JUnit reports: one where two tests skipped (run as a user),
# one where everything ran. Fails when the checker lets a skip through or names it wrongly.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fail=0

out=$("$here/check_no_skips.sh" "$here/fixtures/junit/skipped.xml" 2>&1)
rc=$?
[ "$rc" -eq 1 ] || { echo "skipped.xml: exit $rc, want 1"; fail=1; }
for want in "error: 2 test(s) did not run" \
  "PluginHost.RefusesAFileNotOwnedByRootWhenRoot (SKIP_REGULAR_EXPRESSION_MATCHED): needs root to chown" \
  "DaemonNotify.SpeaksTheSystemdProtocol (SKIP_REGULAR_EXPRESSION_MATCHED): needs root to create"; do
  [[ "$out" == *"$want"* ]] || { echo "skipped.xml: output lacks \"$want\":"; echo "$out"; fail=1; }
done
[[ "$out" != *LoadsAWellBehavedPlugin* ]] || { echo "skipped.xml: names a test that ran"; fail=1; }

out=$("$here/check_no_skips.sh" "$here/fixtures/junit/clean.xml" 2>&1)
rc=$?
[ "$rc" -eq 0 ] || { echo "clean.xml: exit $rc, want 0: $out"; fail=1; }

# The end to end test skipped because the machine cannot boot its guest, and said why: listed,
# not failed.
out=$("$here/check_no_skips.sh" "$here/fixtures/junit/e2e-cannot.xml" 2>&1)
rc=$?
[ "$rc" -eq 0 ] || { echo "e2e-cannot.xml: exit $rc, want 0: $out"; fail=1; }
want="E2E.VfioGuest: the machine cannot boot the guest: cannot fetch linux-image-6.1.0-57-amd64"
[[ "$out" == *"$want"* ]] || { echo "e2e-cannot.xml: output lacks \"$want\": $out"; fail=1; }

# An E2E test that skipped without saying the machine cannot, and another test that says so:
# both still fail the run; the honest E2E skip beside them is only listed.
out=$("$here/check_no_skips.sh" "$here/fixtures/junit/e2e-mixed.xml" 2>&1)
rc=$?
[ "$rc" -eq 1 ] || { echo "e2e-mixed.xml: exit $rc, want 1"; fail=1; }
for want in "error: 2 test(s) did not run" "E2E.SilentSkip (SKIP_RETURN_CODE=77)" \
  "Unit.ClaimsTheMachineCannot (SKIP_RETURN_CODE=77)"; do
  [[ "$out" == *"$want"* ]] || { echo "e2e-mixed.xml: output lacks \"$want\":"; echo "$out"; fail=1; }
done
[[ "$out" != *"  E2E.VfioGuest ("* ]] || { echo "e2e-mixed.xml: fails the honest E2E skip"; fail=1; }

out=$("$here/check_no_skips.sh" "$here/fixtures/junit/absent.xml" 2>&1)
rc=$?
[ "$rc" -eq 1 ] || { echo "absent report: exit $rc, want 1"; fail=1; }
[[ "$out" == *"no ctest JUnit report"* ]] || { echo "absent report: $out"; fail=1; }

exit $fail
