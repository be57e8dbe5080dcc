#!/bin/bash
# run-conform.sh — moak's conformance tool against a GPU's OpenCL driver.
#
# README
# ------
# What it proves: that the OpenCL backend (backends/opencl/) builds its
# kernels with a vendor's compiler and gives results within moak.h's bounds
# on real GPU hardware, where work-items of a work-group really run
# concurrently (PoCL on a CPU runs them as a serial loop and can hide
# local-memory races).
#
# How to run it on a GPU machine that has the vendor's driver but nothing of
# moak's (no hwloc, jansson or ICD loader; no compiler needed):
#
#   1. here (a Debian 12 x86-64 build machine with moak's build deps):
#        echo /.gpu/ >> .git/info/exclude         # once: keep it out of git
#        tools/gpu-check/prepare.sh /work/build-gpu .gpu/bin
#      (a second binary set, e.g. .gpu/fix built from a patched tree, can
#      be compared in the same run)
#   2. copy the source tree with .gpu/ to the GPU machine (the binaries read
#      tests/conform/cases.json and bench/workloads.json from it), then in
#      its root:
#        OUT=/tmp/gpu-out tools/gpu-check/run-conform.sh [SET[:GROUPS] ...]
#      SET is a folder prepare.sh filled (default .gpu/bin); GROUPS limits
#      its full-set steps to some of attention,route,matmul,moe,bench
#      (default all), e.g. .gpu/head:attention .gpu/fix
#   3. read $OUT/summary.txt; $OUT/log.txt has everything the run printed,
#      $OUT/results.tgz every JSON / JUnit / text report.
#
# Steps (each one's failure is printed and the rest still run): the
# machine (glibc, nvidia-smi), the OpenCL driver (libnvidia-opencl.so is
# looked for and named by absolute path in an ICD file of a temporary folder
# that OCL_ICD_VENDORS points to; without it the system's ICDs), then per
# binary set: moak-info (text and JSON), moak-conform --quick on every op,
# the full set op group by op group with an extra batch of random attention
# shapes (the kernel with a multi-chunk local-memory hand-over), and a short
# moak-bench of the default workloads on the OpenCL backend.  The glibc the
# binaries were built against is in BUILT_WITH beside them: a target glibc
# older than that can refuse to load them (the log then says "GLIBC_2.xx not
# found").
#
# Environment: OUT (results folder, default /tmp/gpu-check-out), SEED (the
# data seed, default 20251128, fixed so two binary sets see the same data),
# STEP_TIMEOUT (seconds per full-set step, default 150), DEADLINE (seconds
# for the whole script: steps are cut short to end by then, leaving time to
# pack the results; set it below any outer time limit), BENCH_TIMEOUT
# (default 90), SKIP_BENCH=1.  Exit status: 0 when every step exited 0,
# else 1 (the summary gives each step's status).

set -u
out=${OUT:-/tmp/gpu-check-out}
seed=${SEED:-20251128}
step_timeout=${STEP_TIMEOUT:-150}
deadline=$((SECONDS + ${DEADLINE:-100000} - 10)) # leave time to pack the results
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2
if [ $# -eq 0 ]; then
    set -- .gpu/bin
fi

mkdir -p "$out"
# everything printed also goes to $OUT/log.txt (the script reruns itself under tee)
if [ -z "${GPU_CHECK_LOGGED:-}" ]; then
    GPU_CHECK_LOGGED=1 "$0" "$@" 2>&1 | tee "$out/log.txt"
    exit "${PIPESTATUS[0]}"
fi
work=$(mktemp -d /tmp/gpu-check.XXXXXX)
results=$work/results
mkdir -p "$results"
summary=$out/summary.txt
: > "$summary"
set -x

note() { echo "$*" | tee -a "$summary"; }
any_failed=0

# step NAME LIMIT STDOUT STDERR CMD...: run CMD under a time limit with its
# output in files (STDERR "=" joins STDOUT); the status goes to the summary
# and never stops the script.
step() {
    local name=$1 limit=$2 o=$3 e=$4
    shift 4
    local t0=$SECONDS rc left=$((deadline - SECONDS))
    if [ $left -lt 20 ]; then
        any_failed=1
        note "step $name: skipped (${left} s left of DEADLINE)"
        return 0
    fi
    [ "$limit" -le "$left" ] || limit=$left
    if [ "$e" = "=" ]; then
        timeout "$limit" "$@" > "$o" 2>&1
    else
        timeout "$limit" "$@" > "$o" 2> "$e"
    fi
    rc=$?
    [ $rc -eq 0 ] || any_failed=1
    note "step $name: exit $rc after $((SECONDS - t0)) s$([ $rc -eq 124 ] && echo ' (timed out)')"
    return 0
}

# --- the machine ---------------------------------------------------------
note "host: $(uname -srm)"
note "glibc: $(ldd --version 2>&1 | head -n 1)"
for set_arg in "$@"; do
    set_dir=${set_arg%%:*}
    [ -f "$set_dir/BUILT_WITH" ] && note "binaries $set_dir built with: $(head -n 1 "$set_dir/BUILT_WITH")"
done
nvidia-smi || note "nvidia-smi failed"
note "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1)"

# --- the OpenCL driver -----------------------------------------------------
ls -l /etc/OpenCL/vendors/ 2>&1
cat /etc/OpenCL/vendors/*.icd 2>&1
# the driver library: the usual folders, then the linker cache, then anywhere
nv_lib=
for d in /usr/local/nvidia /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib; do
    nv_lib=$(find "$d" -name 'libnvidia-opencl.so*' 2>/dev/null | sort | head -n 1)
    [ -n "$nv_lib" ] && break
done
[ -n "$nv_lib" ] || nv_lib=$(ldconfig -p | awk '/libnvidia-opencl\.so/ { print $NF; exit }')
[ -n "$nv_lib" ] || nv_lib=$(timeout 60 find / \( -path /proc -o -path /sys \) -prune -o \
    -name 'libnvidia-opencl.so*' -print 2>/dev/null | sort | head -n 1)
note "nvidia opencl library: ${nv_lib:-none found}"
# An ICD file of our own with the absolute path: works whether or not the
# image has one and whether or not the library is on the linker's path.
if [ -n "$nv_lib" ]; then
    mkdir -p "$work/icd"
    echo "$nv_lib" > "$work/icd/nvidia.icd"
    export OCL_ICD_VENDORS=$work/icd
    note "ICD: OCL_ICD_VENDORS=$work/icd, nvidia.icd -> $nv_lib"
fi
command -v clinfo >/dev/null && clinfo -l

# --- per binary set ---------------------------------------------------------
for set_arg in "$@"; do
    set_dir=${set_arg%%:*}
    groups=all
    [ "$set_arg" = "$set_dir" ] || groups=${set_arg#*:}
    tag=$(basename "$set_dir")
    bin=$root/$set_dir
    r=$results/$tag
    mkdir -p "$r"
    export LD_LIBRARY_PATH=$bin/lib
    export MOAK_CACHE_DIR=$work/cache-$tag
    cat "$bin/BUILT_WITH"
    ldd "$bin/moak-conform"

    step "$tag moak-info" 60 "$r/moak-info.txt" "$r/moak-info.err" "$bin/moak-info"
    cat "$r/moak-info.txt"
    step "$tag moak-info --json" 60 "$r/moak-info.json" "$r/moak-info-json.err" "$bin/moak-info" --json
    cat "$r/moak-info.err" "$r/moak-info-json.err"

    # quick: every op
    step "$tag conform quick" 120 "$r/quick.txt" "$r/quick.err" \
        "$bin/moak-conform" --backend opencl --quick --seed "$seed" \
        --json "$r/quick.json" --junit "$r/quick.xml"
    tail -n 4 "$r/quick.txt"
    grep -E ' (fail|FAIL|error|declined)' "$r/quick.txt" | head -n 40
    head -n 40 "$r/quick.err"
    note "$tag quick: $(tail -n 1 "$r/quick.txt")"

    # full set, op group by op group, so a slow group cannot hide the others
    for ops in attention route,rmsnorm,rope matmul moe; do
        case ",$groups," in *",all,"* | *",${ops%%,*},"*) ;; *) continue ;; esac
        extra=()
        [ "$ops" = attention ] && extra=(--random 24)
        f=$r/full-${ops//,/-}
        step "$tag conform $ops" "$step_timeout" "$f.txt" = "$bin/moak-conform" --backend opencl \
            --op "$ops" --seed "$seed" ${extra[@]+"${extra[@]}"} --json "$f.json" --junit "$f.xml"
        grep -E ' (fail|FAIL|error|declined)' "$f.txt" | head -n 40
        note "$tag full $ops: $(tail -n 1 "$f.txt")"
    done

    if [ "${SKIP_BENCH:-0}" != 1 ] && case ",$groups," in *,all,* | *,bench,*) true ;; *) false ;; esac; then
        step "$tag moak-bench" "${BENCH_TIMEOUT:-90}" "$r/bench.txt" = "$bin/moak-bench" \
            --backend opencl --repeat 5 --budget 4 --no-roofline --json "$r/bench.json"
        cat "$r/bench.txt"
    fi
done

set +x
tar -C "$work" -czf "$out/results.tgz" results
note "results: $out/results.tgz"
cat "$summary"
exit $any_failed
