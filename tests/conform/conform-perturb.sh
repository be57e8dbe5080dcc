#!/bin/sh
# The tool must fail a wrong result: with --perturb every output is pushed to
# ten times its bound before the comparison, so every compared case must fail
# and the exit status must be 1.  (The reference runs against itself here, so
# the check costs seconds.)
. "${srcdir:-.}/tests/tool-run.sh"
only_top_level
tool=./tests/conform/moak-conform
out=$(run_tool "$tool" --quick --backend ref --op matmul,moe,route,attention,rmsnorm,rope \
    --format q4_0,f16,f32 --random 1 --perturb 2>&1)
rc=$?
echo "$out"
if [ "$rc" -ne 1 ]; then
    echo "conform-perturb: moak-conform exited $rc on corrupted outputs, expected 1"
    exit 1
fi
last=$(echo "$out" | tail -n 1)
case "$last" in
    "moak-conform: 0 passed, "*) ;;
    *) echo "conform-perturb: a corrupted output passed: '$last'"; exit 1 ;;
esac
# And nothing can have been compared without failing: every row is FAIL or
# declined/skipped, and there are some failures.
case "$last" in
    *", 0 failed"*) echo "conform-perturb: no case was compared"; exit 1 ;;
esac
echo "conform-perturb: every corrupted output failed, as it must"
