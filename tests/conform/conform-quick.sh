#!/bin/sh
# make check: moak-conform --quick on every backend this machine can run.
# The reports land next to the tool in the build tree (JSON and JUnit XML).
# Weight expansion is allowed so that oneDNN runs every format too.
# MOAK_CONFORM_FLAGS adds options (e.g. --seed N to replay a failure).
. "${srcdir:-.}/tests/tool-run.sh"
only_top_level
tool=./tests/conform/moak-conform
run_tool "$tool" --quick --backend all --allow-weight-expansion \
    --json tests/conform/conform-quick.json --junit tests/conform/conform-quick.xml \
    $MOAK_CONFORM_FLAGS
