# moak's make check suite: every op of every available backend against a
# double-precision oracle written in the tests, and every public function fed
# bad input.  Public API only (moak.h).  Each test runs once per ISA level of
# this machine through tests/run-levels.sh (see that script).
#
# Other test fragments included after this one (tests/formats.mk,
# tests/conform/local.mk) use the same LOG_COMPILER, and append to
# AM_TESTS_ENVIRONMENT with += if they need more.

LOG_COMPILER = $(SHELL) $(top_srcdir)/tests/run-levels.sh
# Caches of compiled kernels (PoCL's, moak's own) stay inside the build tree.
AM_TESTS_ENVIRONMENT = \
	MOAK_TEST_CACHE='$(abs_top_builddir)/test-cache'; \
	mkdir -p "$$MOAK_TEST_CACHE/pocl" "$$MOAK_TEST_CACHE/moak"; \
	POCL_CACHE_DIR="$$MOAK_TEST_CACHE/pocl"; MOAK_CACHE_DIR="$$MOAK_TEST_CACHE/moak"; \
	MOAK_TEST_LEVELS_PROG='$(abs_top_builddir)/tests/list_isa_levels$(EXEEXT)'; \
	MOAK_TEST_EMULATOR='$(MOAK_TEST_EMULATOR)'; \
	export POCL_CACHE_DIR MOAK_CACHE_DIR MOAK_TEST_LEVELS_PROG MOAK_TEST_EMULATOR;
EXTRA_DIST += tests/run-levels.sh

# Helpers shared by the tests (RNG, oracle formats, reporting, bad-input driver).
check_LTLIBRARIES += tests/libmoaktest.la
tests_libmoaktest_la_SOURCES = \
	tests/testutil.h tests/testutil.c tests/testutil_formats.c
tests_libmoaktest_la_CFLAGS = $(AM_CFLAGS) $(MOAK_TEST_CFLAGS)

# The INIT macros of moak.h set struct_size only, by design.
MOAK_TEST_CFLAGS = -Wno-missing-field-initializers
MOAK_TEST_LDADD = tests/libmoaktest.la libmoak.la -lm
# -no-install: the test is the binary itself, not a libtool wrapper script,
# so MOAK_TEST_EMULATOR can run it.
MOAK_TEST_LDFLAGS = -no-install

check_PROGRAMS += tests/list_isa_levels
tests_list_isa_levels_SOURCES = tests/list_isa_levels.c
tests_list_isa_levels_CFLAGS = $(AM_CFLAGS) $(MOAK_TEST_CFLAGS)
tests_list_isa_levels_LDADD = libmoak.la
tests_list_isa_levels_LDFLAGS = $(MOAK_TEST_LDFLAGS)

check_PROGRAMS += tests/test_matmul
TESTS += tests/test_matmul$(EXEEXT)
tests_test_matmul_SOURCES = tests/test_matmul.c
tests_test_matmul_CFLAGS = $(AM_CFLAGS) $(MOAK_TEST_CFLAGS)
tests_test_matmul_LDADD = $(MOAK_TEST_LDADD)
tests_test_matmul_LDFLAGS = $(MOAK_TEST_LDFLAGS)
check_PROGRAMS += tests/test_moe
TESTS += tests/test_moe$(EXEEXT)
tests_test_moe_SOURCES = tests/test_moe.c
tests_test_moe_CFLAGS = $(AM_CFLAGS) $(MOAK_TEST_CFLAGS)
tests_test_moe_LDADD = $(MOAK_TEST_LDADD)
tests_test_moe_LDFLAGS = $(MOAK_TEST_LDFLAGS)
check_PROGRAMS += tests/test_route
TESTS += tests/test_route$(EXEEXT)
tests_test_route_SOURCES = tests/test_route.c
tests_test_route_CFLAGS = $(AM_CFLAGS) $(MOAK_TEST_CFLAGS)
tests_test_route_LDADD = $(MOAK_TEST_LDADD)
tests_test_route_LDFLAGS = $(MOAK_TEST_LDFLAGS)
