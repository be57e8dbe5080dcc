#!/bin/sh
# prepare.sh — build moak's tools for a GPU machine that has an OpenCL
# driver but none of moak's other runtime libraries, and gather them in one
# folder that can travel with the source tree.
#
#   tools/gpu-check/prepare.sh [BUILD_DIR] [DEST]
#
# BUILD_DIR (default /work/build-gpu) is configured out of tree with a static
# libmoak (--disable-shared: the binaries then need no libmoak.so), oneDNN
# off (its library is large and not under test here) and OpenCL required.
# DEST (default .gpu/bin under the source root; keep that folder ignored by
# git, e.g. "/.gpu/" in .git/info/exclude) receives the stripped moak-info,
# moak-conform and moak-bench plus every shared library they load that is
# not part of glibc (ldd decides), so the target needs only glibc and the
# vendor's OpenCL driver.  The ICD loader copied is this machine's
# libOpenCL.so.1 (ocl-icd); run-conform.sh points it at the driver.
set -eu

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-/work/build-gpu}
dest=${2:-$src/.gpu/bin}

mkdir -p "$build"
if [ ! -f "$build/Makefile" ]; then
    (cd "$build" && "$src/configure" -q --disable-shared --enable-onednn=no --enable-opencl=yes)
fi
make -C "$build" -j2 bench/moak-info tests/conform/moak-conform bench/moak-bench

mkdir -p "$dest/lib"
for prog in bench/moak-info tests/conform/moak-conform bench/moak-bench; do
    # with --disable-shared libtool links the real binary, not a wrapper script
    cp "$build/$prog" "$dest/"
    strip "$dest/$(basename "$prog")"
done

# Every library ldd resolves, minus glibc's own (the target has glibc).
glibc='^(libc|libm|libdl|libpthread|librt|ld-linux-x86-64|linux-vdso)\.so'
for prog in "$dest"/moak-*; do
    ldd "$prog" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }'
done | sort -u | while read -r name path; do
    if echo "$name" | grep -Eq "$glibc"; then
        continue
    fi
    cp -L "$path" "$dest/lib/$name"
    strip --strip-unneeded "$dest/lib/$name" 2>/dev/null || true
done

ldd --version | head -n 1 > "$dest/BUILT_WITH"
git -C "$src" rev-parse HEAD >> "$dest/BUILT_WITH" 2>/dev/null || true
git -C "$src" status --short backends/opencl >> "$dest/BUILT_WITH" 2>/dev/null || true
ls -l "$dest" "$dest/lib"
du -sh "$dest"
