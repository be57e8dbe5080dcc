# Sourced by the test scripts that run moak's tools (moak-conform, moak-bench).
#
# run_tool PATH ARGS...: run a tool of this build; in a cross build's make
# check (MOAK_TEST_EMULATOR set, e.g. "qemu-aarch64 -cpu max") the real
# binary behind libtool's wrapper runs through the emulator.
#
# only_top_level: the tools test every backend in one run, so running them
# again at each lower ISA cap adds time and no coverage: skip (exit 77)
# unless this is the highest level that run-levels.sh runs.
run_tool() {
    tool_path=$1
    shift
    if [ -n "${MOAK_TEST_EMULATOR:-}" ]; then
        tool_dir=$(dirname "$tool_path")
        tool_name=$(basename "$tool_path")
        [ -x "$tool_dir/.libs/$tool_name" ] && tool_path="$tool_dir/.libs/$tool_name"
        $MOAK_TEST_EMULATOR -E LD_LIBRARY_PATH="$PWD/.libs" "$tool_path" "$@"
    else
        "$tool_path" "$@"
    fi
}

only_top_level() {
    if [ -n "${MOAK_TEST_TOP_LEVEL:-}" ] && [ -n "${MOAK_ISA_MAX:-}" ] &&
       [ "$MOAK_ISA_MAX" != "$MOAK_TEST_TOP_LEVEL" ]; then
        echo "skipped at MOAK_ISA_MAX=$MOAK_ISA_MAX: runs at the top level ($MOAK_TEST_TOP_LEVEL) only"
        exit 77
    fi
}
