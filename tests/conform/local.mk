# moak-conform, the conformance tool a chip vendor runs to prove a port
# (tests/conform/).  It reads its cases with jansson and writes JSON, so it
# is built only when configure found jansson.  Its cases file is installed.
conformdatadir = $(pkgdatadir)
dist_conformdata_DATA = tests/conform/cases.json

if HAVE_JANSSON
bin_PROGRAMS += tests/conform/moak-conform
tests_conform_moak_conform_SOURCES = \
	tests/conform/moak-conform.c \
	tests/conform/conform_cases.c tests/conform/conform_cases.h \
	tests/conform/conform_run.c tests/conform/conform_run.h \
	tests/conform/conform_verdict.c tests/conform/conform_verdict.h \
	tests/conform/conform_report.c tests/conform/conform_report.h
tests_conform_moak_conform_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/bench $(JANSSON_CFLAGS)
# The MOAK_*_INIT macros of moak.h leave fields to their zero default.
tests_conform_moak_conform_CFLAGS = $(AM_CFLAGS) -Wno-missing-field-initializers
tests_conform_moak_conform_LDADD = bench/libmoaktools.la libmoak.la $(JANSSON_LIBS) -lm

# The verdict logic alone, fed wrong outputs on purpose.
check_PROGRAMS += tests/conform/test_conform_verdict
tests_conform_test_conform_verdict_SOURCES = tests/conform/test_conform_verdict.c \
	tests/conform/conform_verdict.c tests/conform/conform_verdict.h
tests_conform_test_conform_verdict_LDADD = -lm

dist_check_SCRIPTS += tests/conform/conform-quick.sh tests/conform/conform-perturb.sh
TESTS += tests/conform/test_conform_verdict tests/conform/conform-perturb.sh tests/conform/conform-quick.sh
CLEANFILES += tests/conform/conform-quick.json tests/conform/conform-quick.xml
endif
