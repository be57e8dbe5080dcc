#!/bin/sh
# run-levels.sh — the LOG_COMPILER of moak's tests: runs one test program once
# per ISA level this machine can run (MOAK_ISA_MAX=scalar, avx2, avx512 on
# x86; scalar, neon, dotprod, i8mm on aarch64), each run labelled in the log.
#
#   run-levels.sh PROGRAM [ARGS...]
#
# Exit status: 99 if any run hit a hard error, 1 if any run failed, 77 if
# every run skipped, else 0.
#
# Environment:
#   MOAK_TEST_LEVELS       space-separated levels to run (overrides the probe)
#   MOAK_ISA_MAX           when already set, only that level runs
#   MOAK_TEST_LEVELS_PROG  program that prints the levels (tests/list_isa_levels)
#   MOAK_TEST_EMULATOR     command prefix for a cross build's binaries,
#                          e.g. "qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max";
#                          then MOAK_NUM_THREADS defaults to 1 (see below)

if [ $# -lt 1 ]; then
    echo "usage: $0 PROGRAM [ARGS...]" >&2
    exit 99
fi
prog=$1
name=$(basename "$prog")

# A shell script under test runs as it is; a binary runs through the emulator.
emulator=${MOAK_TEST_EMULATOR:-}
if [ "$(head -c 2 "$prog" 2>/dev/null)" = "#!" ]; then
    emulator=
fi

# Under an emulator the point is the ISA paths, and qemu-user 7.2 (Debian 12)
# on this CI's kernel hangs in pthread_create: one worker thread, unless the
# caller chose a count.
if [ -n "${MOAK_TEST_EMULATOR:-}" ] && [ -z "${MOAK_NUM_THREADS:-}" ]; then
    MOAK_NUM_THREADS=1
    export MOAK_NUM_THREADS
fi

levels=${MOAK_TEST_LEVELS:-}
if [ -z "$levels" ] && [ -n "${MOAK_ISA_MAX:-}" ]; then
    levels=$MOAK_ISA_MAX
fi
if [ -z "$levels" ] && [ -n "${MOAK_TEST_LEVELS_PROG:-}" ] && [ -x "$MOAK_TEST_LEVELS_PROG" ]; then
    levels=$(${MOAK_TEST_EMULATOR:-} "$MOAK_TEST_LEVELS_PROG") || levels=
fi
if [ -z "$levels" ]; then
    # No lister (e.g. a test run by hand): read the build machine's CPU flags.
    levels=scalar
    flags=$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null)
    case " $flags " in *" avx2 "*) levels="$levels avx2" ;; esac
    case " $flags " in *" avx512f "*) levels="$levels avx512" ;; esac
    case " $flags " in *" asimd "*) levels="$levels neon" ;; esac
    case " $flags " in *" asimddp "*) levels="$levels dotprod" ;; esac
    case " $flags " in *" i8mm "*) levels="$levels i8mm" ;; esac
    echo "run-levels: no level lister, levels from /proc/cpuinfo: $levels"
fi

levels=$(echo $levels) # one line
# The tests run the ref backend at the highest level only: it is plain C that
# does not look at the ISA, so running it again at each level adds time and
# no coverage (see t_open_backends).
MOAK_TEST_TOP_LEVEL=${levels##* }
export MOAK_TEST_TOP_LEVEL
passed=0 skipped=0 failed=0 hard=0
for level in $levels; do
    echo "=== $name: MOAK_ISA_MAX=$level ==="
    MOAK_ISA_MAX=$level
    export MOAK_ISA_MAX
    $emulator "$@"
    rc=$?
    case $rc in
        0) passed=$((passed + 1)); verdict=PASS ;;
        77) skipped=$((skipped + 1)); verdict=SKIP ;;
        99) hard=$((hard + 1)); verdict=ERROR ;;
        *) failed=$((failed + 1)); verdict=FAIL ;;
    esac
    echo "=== $name: MOAK_ISA_MAX=$level: $verdict (exit $rc) ==="
done

echo "=== $name: levels [$levels]: $passed passed, $failed failed, $skipped skipped, $hard hard errors ==="
if [ $hard -gt 0 ]; then exit 99; fi
if [ $failed -gt 0 ]; then exit 1; fi
if [ $passed -eq 0 ]; then exit 77; fi
exit 0
