#!/bin/sh
# moak-bench's command line in make check: --list, the compare gate's exit
# status on synthetic files (a regression must fail it, equal runs must
# not), the compare chart, and one short real run whose JSON compares equal
# to itself.  Timing figures are never checked here.
. "${srcdir:-.}/tests/tool-run.sh"
only_top_level
bench=./bench/moak-bench
out=bench/bench-cli
fail() { echo "bench-cli: $*"; exit 1; }

run_tool "$bench" --list | grep -q '^matmul-decode ' || fail "--list does not show matmul-decode"

rep() { # name time-in-us rep-index
    printf '{"name":"%s","run_name":"%s","run_type":"iteration","repetition_index":%s,"iterations":10,"real_time":%s,"cpu_time":%s,"time_unit":"us"}' \
        "$1" "$1" "$3" "$2" "$2"
}
doc() { printf '{"context":{},"benchmarks":[%s]}\n' "$1"; }
doc "$(rep w 100 0),$(rep w 101 1),$(rep w 99 2)" > $out.base.json
doc "$(rep w 120 0),$(rep w 121 1),$(rep w 119 2)" > $out.slow.json
doc "$(rep w 101 0),$(rep w 100 1),$(rep w 100 2)" > $out.same.json

run_tool "$bench" compare $out.base.json $out.slow.json --svg $out.compare.svg > $out.log 2>&1
rc=$?
cat $out.log
[ $rc -eq 1 ] || fail "a 20% slowdown outside the noise exited $rc, expected 1"
grep -q REGRESSION $out.log || fail "the regression is not named"
grep -q '<svg' $out.compare.svg || fail "no SVG chart written"
run_tool "$bench" compare $out.base.json $out.same.json --threshold 5 || fail "equal runs flagged"
run_tool "$bench" compare $out.base.json $out.slow.json --threshold 30 || fail "30% threshold still flags 20%"
run_tool "$bench" compare $out.base.json /nonexistent.json 2>/dev/null
[ $? -eq 2 ] || fail "a missing file must exit 2"

# One real, short run (hot, no roofline: seconds, not minutes).
run_tool "$bench" --workload matmul-decode --format q8_0 --hot --repeat 2 --budget 2 --no-roofline \
    --json $out.run.json --svg $out.run.svg || fail "the run failed"
grep -q '"run_name": "matmul-decode/q8_0/auto/hot"' $out.run.json || fail "run JSON lacks its run"
grep -q '<svg' $out.run.svg || fail "no SVG chart of the run"
run_tool "$bench" compare $out.run.json $out.run.json || fail "a run compared with itself regressed"
echo "bench-cli: all checks passed"
