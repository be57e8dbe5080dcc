# bench/: moak-bench (roofline, workloads, JSON, compare gate, chart), the
# Google Benchmark micro-benches, and the pieces both tools share.

if HAVE_JANSSON
# Shared by moak-bench and moak-conform: data files, RNG, clock, machine JSON.
noinst_LTLIBRARIES += bench/libmoaktools.la
bench_libmoaktools_la_SOURCES = bench/tool_support.c bench/tool_support.h
bench_libmoaktools_la_CPPFLAGS = $(AM_CPPFLAGS) $(JANSSON_CFLAGS) \
	-DMOAK_TOOLS_SRCDIR='"$(abs_top_srcdir)"' -DMOAK_TOOLS_DATADIR='"$(pkgdatadir)"'
bench_libmoaktools_la_CFLAGS = $(AM_CFLAGS) -Wno-missing-field-initializers
endif
