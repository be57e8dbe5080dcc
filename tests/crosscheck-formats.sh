#!/bin/sh
# make check: the release formats' bytes against gguf and ml_dtypes
# (tests/crosscheck_formats.py through ctypes on this build's libmoak).
# Skips (77) with a message where python3, numpy, ml_dtypes or gguf is
# missing, and in cross builds (the host's Python cannot load the library).
. "${srcdir:-.}/tests/tool-run.sh"
only_top_level
if [ -n "${MOAK_TEST_EMULATOR:-}" ]; then
    echo "SKIP: crosscheck_formats loads libmoak into the host's python; not under $MOAK_TEST_EMULATOR"
    exit 77
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "SKIP: crosscheck_formats needs python3"
    exit 77
fi
lib=./.libs/libmoak.so
[ -f "$lib" ] || { echo "SKIP: $lib not built (shared library disabled?)"; exit 77; }
exec python3 "${srcdir:-.}/tests/crosscheck_formats.py" "$lib"
