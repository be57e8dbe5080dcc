# bench/: moak-bench (roofline, workloads, JSON, compare gate, chart), the
# Google Benchmark micro-benches, and the pieces moak-bench and moak-conform
# share.  Everything here reads or writes JSON with jansson, so it is built
# only when configure found it; the micro-benches also need Google Benchmark.
benchdatadir = $(pkgdatadir)
dist_benchdata_DATA = bench/workloads.json
EXTRA_DIST += bench/NOTES.md

if HAVE_JANSSON
# Shared by moak-bench and moak-conform: data files, RNG, clock, machine JSON.
noinst_LTLIBRARIES += bench/libmoaktools.la
bench_libmoaktools_la_SOURCES = bench/tool_support.c bench/tool_support.h
bench_libmoaktools_la_CPPFLAGS = $(AM_CPPFLAGS) $(JANSSON_CFLAGS) \
	-DMOAK_TOOLS_SRCDIR='"$(abs_top_srcdir)"' -DMOAK_TOOLS_DATADIR='"$(pkgdatadir)"'
# The MOAK_*_INIT macros of moak.h leave fields to their zero default.
bench_libmoaktools_la_CFLAGS = $(AM_CFLAGS) -Wno-missing-field-initializers

# The roofline's measuring loops: one file per ISA, each with its own flags,
# chosen at run time from moak_hw_probe's ISA bits (peak_scalar.c elsewhere).
bench_peak_libs =
if BUILD_AVX2
noinst_LTLIBRARIES += bench/libpeak_avx2.la
bench_libpeak_avx2_la_SOURCES = bench/peak_avx2.c
bench_libpeak_avx2_la_CFLAGS = $(AM_CFLAGS) $(AVX2_CFLAGS)
bench_peak_libs += bench/libpeak_avx2.la
if HAVE_AVXVNNI_FLAGS
noinst_LTLIBRARIES += bench/libpeak_avxvnni.la
bench_libpeak_avxvnni_la_SOURCES = bench/peak_avxvnni.c
bench_libpeak_avxvnni_la_CFLAGS = $(AM_CFLAGS) $(AVX2_CFLAGS) $(AVXVNNI_CFLAGS)
bench_peak_libs += bench/libpeak_avxvnni.la
endif
endif
if BUILD_AVX512
noinst_LTLIBRARIES += bench/libpeak_avx512.la
bench_libpeak_avx512_la_SOURCES = bench/peak_avx512.c
bench_libpeak_avx512_la_CFLAGS = $(AM_CFLAGS) $(AVX512_CFLAGS)
bench_peak_libs += bench/libpeak_avx512.la
if HAVE_AVX512BF16_FLAGS
noinst_LTLIBRARIES += bench/libpeak_avx512bf16.la
bench_libpeak_avx512bf16_la_SOURCES = bench/peak_avx512bf16.c
bench_libpeak_avx512bf16_la_CFLAGS = $(AM_CFLAGS) $(AVX512_CFLAGS) $(AVX512BF16_CFLAGS)
bench_peak_libs += bench/libpeak_avx512bf16.la
endif
endif

# The logic moak-bench's tests check without timing anything: counting,
# floors, JSON, compare.
noinst_LTLIBRARIES += bench/libbenchlogic.la
bench_libbenchlogic_la_SOURCES = \
	bench/workload.c bench/workload.h \
	bench/roofline.c bench/roofline.h bench/peak_scalar.c \
	bench/bench_json.c bench/bench_json.h \
	bench/bench_compare.c bench/bench_compare.h \
	bench/bench_svg.c bench/bench_svg.h \
	bench/bench_run.c bench/bench_run.h
bench_libbenchlogic_la_CPPFLAGS = $(AM_CPPFLAGS) $(JANSSON_CFLAGS)
bench_libbenchlogic_la_CFLAGS = $(AM_CFLAGS) -Wno-missing-field-initializers
bench_libbenchlogic_la_LIBADD = $(bench_peak_libs)

bench_tool_ldadd = bench/libbenchlogic.la bench/libmoaktools.la libmoak.la $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm

bin_PROGRAMS += bench/moak-bench
bench_moak_bench_SOURCES = bench/moak-bench.c
bench_moak_bench_CPPFLAGS = $(AM_CPPFLAGS) $(JANSSON_CFLAGS)
bench_moak_bench_CFLAGS = $(AM_CFLAGS) -Wno-missing-field-initializers
bench_moak_bench_LDADD = $(bench_tool_ldadd)

# make check: byte/op counting against hand-computed figures, floors,
# compare verdicts on synthetic JSON, the JSON schema's keys, and the CLI.
check_PROGRAMS += bench/test_bench_count bench/test_bench_compare bench/test_bench_json
bench_test_bench_count_SOURCES = bench/test_bench_count.c
bench_test_bench_count_CPPFLAGS = $(AM_CPPFLAGS) $(JANSSON_CFLAGS)
bench_test_bench_count_LDADD = $(bench_tool_ldadd)
# -no-install: the binary itself, so a cross build's MOAK_TEST_EMULATOR can run it
bench_test_bench_count_LDFLAGS = -no-install
bench_test_bench_compare_SOURCES = bench/test_bench_compare.c
bench_test_bench_compare_CPPFLAGS = $(AM_CPPFLAGS) $(JANSSON_CFLAGS)
bench_test_bench_compare_LDADD = $(bench_tool_ldadd)
# -no-install: the binary itself, so a cross build's MOAK_TEST_EMULATOR can run it
bench_test_bench_compare_LDFLAGS = -no-install
bench_test_bench_json_SOURCES = bench/test_bench_json.c
bench_test_bench_json_CPPFLAGS = $(AM_CPPFLAGS) $(JANSSON_CFLAGS)
bench_test_bench_json_CFLAGS = $(AM_CFLAGS) -Wno-missing-field-initializers
bench_test_bench_json_LDADD = $(bench_tool_ldadd)
# -no-install: the binary itself, so a cross build's MOAK_TEST_EMULATOR can run it
bench_test_bench_json_LDFLAGS = -no-install
dist_check_SCRIPTS += bench/bench-cli.sh
TESTS += bench/test_bench_count bench/test_bench_compare bench/test_bench_json bench/bench-cli.sh
CLEANFILES += bench/bench-cli.*.json bench/bench-cli.*.svg bench/bench-cli.log

if HAVE_GBENCH
# Google Benchmark micro-benches, one file per kernel family (C++ only here).
noinst_PROGRAMS += bench/moak-gbench
bench_moak_gbench_SOURCES = \
	bench/gbench_main.cc bench/gbench_common.h bench/gbench_common.cc \
	bench/gbench_quantize.cc bench/gbench_matmul.cc bench/gbench_moe.cc bench/gbench_attention.cc
bench_moak_gbench_CPPFLAGS = $(AM_CPPFLAGS) $(GBENCH_CFLAGS)
bench_moak_gbench_LDADD = libmoak.la $(GBENCH_LIBS) $(PTHREAD_LIBS)
endif
endif
