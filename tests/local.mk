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
EXTRA_DIST += tests/run-levels.sh tests/tool-run.sh
# The kernel caches are directories: make clean removes them (distcheck
# requires an empty build tree after distclean).  A prerequisite-only rule,
# so another fragment may hang its own cleaning on clean-local too.
clean-local: clean-moak-test-cache
clean-moak-test-cache:
	-rm -rf test-cache
.PHONY: clean-moak-test-cache

# Helpers shared by the tests (RNG, oracle formats, reporting, bad-input driver).
check_LTLIBRARIES += tests/libmoaktest.la
tests_libmoaktest_la_SOURCES = \
	tests/testutil.h tests/testutil.c tests/testutil_formats.c \
	tests/bad_input.h tests/bad_input.c
tests_libmoaktest_la_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)

# The INIT macros of moak.h set struct_size only, by design.
TEST_WARN_FLAGS = -Wno-missing-field-initializers
TEST_LIBS = tests/libmoaktest.la libmoak.la -lm
# -no-install: the test is the binary itself, not a libtool wrapper script,
# so MOAK_TEST_EMULATOR can run it.
TEST_LINK_FLAGS = -no-install

check_PROGRAMS += tests/list_isa_levels
tests_list_isa_levels_SOURCES = tests/list_isa_levels.c
tests_list_isa_levels_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_list_isa_levels_LDADD = libmoak.la
tests_list_isa_levels_LDFLAGS = $(TEST_LINK_FLAGS)

check_PROGRAMS += tests/test_matmul
TESTS += tests/test_matmul$(EXEEXT)
tests_test_matmul_SOURCES = tests/test_matmul.c
tests_test_matmul_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_matmul_LDADD = $(TEST_LIBS)
tests_test_matmul_LDFLAGS = $(TEST_LINK_FLAGS)
check_PROGRAMS += tests/test_release_formats
TESTS += tests/test_release_formats$(EXEEXT)
tests_test_release_formats_SOURCES = tests/test_release_formats.c
tests_test_release_formats_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_release_formats_LDADD = $(TEST_LIBS)
tests_test_release_formats_LDFLAGS = $(TEST_LINK_FLAGS)
check_PROGRAMS += tests/test_moe
TESTS += tests/test_moe$(EXEEXT)
tests_test_moe_SOURCES = tests/test_moe.c
tests_test_moe_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_moe_LDADD = $(TEST_LIBS)
tests_test_moe_LDFLAGS = $(TEST_LINK_FLAGS)
check_PROGRAMS += tests/test_route
TESTS += tests/test_route$(EXEEXT)
tests_test_route_SOURCES = tests/test_route.c
tests_test_route_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_route_LDADD = $(TEST_LIBS)
tests_test_route_LDFLAGS = $(TEST_LINK_FLAGS)
check_PROGRAMS += tests/test_attention
TESTS += tests/test_attention$(EXEEXT)
tests_test_attention_SOURCES = tests/test_attention.c
tests_test_attention_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_attention_LDADD = $(TEST_LIBS)
tests_test_attention_LDFLAGS = $(TEST_LINK_FLAGS)
check_PROGRAMS += tests/test_gated_delta
TESTS += tests/test_gated_delta$(EXEEXT)
tests_test_gated_delta_SOURCES = tests/test_gated_delta.c
tests_test_gated_delta_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_gated_delta_LDADD = $(TEST_LIBS)
tests_test_gated_delta_LDFLAGS = $(TEST_LINK_FLAGS)
check_PROGRAMS += tests/test_bad_input_gated_delta
TESTS += tests/test_bad_input_gated_delta$(EXEEXT)
tests_test_bad_input_gated_delta_SOURCES = tests/test_bad_input_gated_delta.c
tests_test_bad_input_gated_delta_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_bad_input_gated_delta_LDADD = $(TEST_LIBS)
tests_test_bad_input_gated_delta_LDFLAGS = $(TEST_LINK_FLAGS)
check_PROGRAMS += tests/test_kv_cache
TESTS += tests/test_kv_cache$(EXEEXT)
tests_test_kv_cache_SOURCES = tests/test_kv_cache.c
tests_test_kv_cache_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_kv_cache_LDADD = $(TEST_LIBS)
tests_test_kv_cache_LDFLAGS = $(TEST_LINK_FLAGS)
check_PROGRAMS += tests/test_norm_rope
TESTS += tests/test_norm_rope$(EXEEXT)
tests_test_norm_rope_SOURCES = tests/test_norm_rope.c
tests_test_norm_rope_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_norm_rope_LDADD = $(TEST_LIBS)
tests_test_norm_rope_LDFLAGS = $(TEST_LINK_FLAGS)
check_PROGRAMS += tests/test_context
TESTS += tests/test_context$(EXEEXT)
tests_test_context_SOURCES = tests/test_context.c
tests_test_context_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_context_LDADD = $(TEST_LIBS)
tests_test_context_LDFLAGS = $(TEST_LINK_FLAGS)
check_PROGRAMS += tests/test_bad_input_context
TESTS += tests/test_bad_input_context$(EXEEXT)
tests_test_bad_input_context_SOURCES = tests/test_bad_input_context.c
tests_test_bad_input_context_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_bad_input_context_LDADD = $(TEST_LIBS)
tests_test_bad_input_context_LDFLAGS = $(TEST_LINK_FLAGS)
check_PROGRAMS += tests/test_bad_input_weight
TESTS += tests/test_bad_input_weight$(EXEEXT)
tests_test_bad_input_weight_SOURCES = tests/test_bad_input_weight.c
tests_test_bad_input_weight_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_bad_input_weight_LDADD = $(TEST_LIBS)
tests_test_bad_input_weight_LDFLAGS = $(TEST_LINK_FLAGS)
check_PROGRAMS += tests/test_bad_input_moe
TESTS += tests/test_bad_input_moe$(EXEEXT)
tests_test_bad_input_moe_SOURCES = tests/test_bad_input_moe.c
tests_test_bad_input_moe_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_bad_input_moe_LDADD = $(TEST_LIBS)
tests_test_bad_input_moe_LDFLAGS = $(TEST_LINK_FLAGS)
check_PROGRAMS += tests/test_bad_input_kv
TESTS += tests/test_bad_input_kv$(EXEEXT)
tests_test_bad_input_kv_SOURCES = tests/test_bad_input_kv.c
tests_test_bad_input_kv_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_bad_input_kv_LDADD = $(TEST_LIBS)
tests_test_bad_input_kv_LDFLAGS = $(TEST_LINK_FLAGS)
check_PROGRAMS += tests/test_bad_input_norm_rope
TESTS += tests/test_bad_input_norm_rope$(EXEEXT)
tests_test_bad_input_norm_rope_SOURCES = tests/test_bad_input_norm_rope.c
tests_test_bad_input_norm_rope_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_bad_input_norm_rope_LDADD = $(TEST_LIBS)
tests_test_bad_input_norm_rope_LDFLAGS = $(TEST_LINK_FLAGS)

# moak_backend_devices (the device listing of device backends): bad inputs and valid calls.
check_PROGRAMS += tests/test_backend_devices
TESTS += tests/test_backend_devices$(EXEEXT)
tests_test_backend_devices_SOURCES = tests/test_backend_devices.c
tests_test_backend_devices_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_backend_devices_LDADD = libmoak.la
tests_test_backend_devices_LDFLAGS = $(TEST_LINK_FLAGS)

# ---- thread pool (appended by the threadpool work; see tests/test_threadpool.c) ----
# The pool is internal, so the test compiles lib/threadpool.c into itself and
# links neither libmoak nor the test helpers (a static libmoak would clash
# with the test's stub of the hwloc topology).
check_PROGRAMS += tests/test_threadpool
TESTS += tests/test_threadpool$(EXEEXT)
tests_test_threadpool_SOURCES = tests/test_threadpool.c lib/threadpool.c
tests_test_threadpool_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/lib $(HWLOC_CFLAGS)
tests_test_threadpool_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_threadpool_LDADD = $(HWLOC_LIBS) $(PTHREAD_LIBS) -lm
tests_test_threadpool_LDFLAGS = $(TEST_LINK_FLAGS)

check_PROGRAMS += tests/test_sparse_attention
TESTS += tests/test_sparse_attention$(EXEEXT)
tests_test_sparse_attention_SOURCES = tests/test_sparse_attention.c
tests_test_sparse_attention_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_sparse_attention_LDADD = $(TEST_LIBS)
tests_test_sparse_attention_LDFLAGS = $(TEST_LINK_FLAGS)

check_PROGRAMS += tests/test_indexer
TESTS += tests/test_indexer$(EXEEXT)
tests_test_indexer_SOURCES = tests/test_indexer.c
tests_test_indexer_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_indexer_LDADD = $(TEST_LIBS)
tests_test_indexer_LDFLAGS = $(TEST_LINK_FLAGS)

check_PROGRAMS += tests/test_bad_input_sparse
TESTS += tests/test_bad_input_sparse$(EXEEXT)
tests_test_bad_input_sparse_SOURCES = tests/test_bad_input_sparse.c
tests_test_bad_input_sparse_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_bad_input_sparse_LDADD = $(TEST_LIBS)
tests_test_bad_input_sparse_LDFLAGS = $(TEST_LINK_FLAGS)

# ---- KV cache limits (issue 16: fail fast, bookkeeping proportional to use) ----
check_PROGRAMS += tests/test_kv_cache_limits
TESTS += tests/test_kv_cache_limits$(EXEEXT)
tests_test_kv_cache_limits_SOURCES = tests/test_kv_cache_limits.c
tests_test_kv_cache_limits_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_kv_cache_limits_LDADD = $(TEST_LIBS)
tests_test_kv_cache_limits_LDFLAGS = $(TEST_LINK_FLAGS)

# ---- soak (issue 16): a serving loop for --minutes, built by make, not run by make check ----
noinst_PROGRAMS += tests/soak/moak-soak
tests_soak_moak_soak_SOURCES = tests/soak/moak-soak.c
tests_soak_moak_soak_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS) $(PTHREAD_CFLAGS)
tests_soak_moak_soak_LDADD = libmoak.la $(PTHREAD_LIBS) -lm

# ---- the thread-safety contract of moak.h (issue 16); .ci/run also runs it under TSan ----
check_PROGRAMS += tests/test_concurrency
TESTS += tests/test_concurrency$(EXEEXT)
tests_test_concurrency_SOURCES = tests/test_concurrency.c
# -fno-tree-vectorize: gcc 12 for aarch64 (Debian 12) dies with an internal
# compiler error in vect_transform_reduction on this file; the test measures
# nothing, so its loops lose nothing by staying scalar.
tests_test_concurrency_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS) $(PTHREAD_CFLAGS) -fno-tree-vectorize
tests_test_concurrency_LDADD = $(TEST_LIBS) $(PTHREAD_LIBS)
tests_test_concurrency_LDFLAGS = $(TEST_LINK_FLAGS)


# Microkernel tests (tests/ukernel/): each kernel table entry called
# directly against a double oracle.  They link the ISA convenience
# libraries (the tables are internal symbols) and libmoak only to ask the
# probe which ISA levels run here (so run-levels.sh covers every level).
UKERNEL_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS) -I$(top_srcdir)/backends/cpu
UKERNEL_LIBS = tests/libmoaktest.la libmoak.la -lm
check_PROGRAMS += tests/ukernel/test_ukernel_attention
TESTS += tests/ukernel/test_ukernel_attention$(EXEEXT)
tests_ukernel_test_ukernel_attention_SOURCES = tests/ukernel/test_ukernel_attention.c
tests_ukernel_test_ukernel_attention_CFLAGS = $(UKERNEL_CFLAGS)
tests_ukernel_test_ukernel_attention_LDADD = $(UKERNEL_LIBS)
tests_ukernel_test_ukernel_attention_LDFLAGS = $(TEST_LINK_FLAGS)
if BUILD_AVX2
tests_ukernel_test_ukernel_attention_CFLAGS += -DMOAK_UKERNEL_AVX2
tests_ukernel_test_ukernel_attention_LDADD += libx86_avx2.la
endif
if BUILD_AVX512
tests_ukernel_test_ukernel_attention_CFLAGS += -DMOAK_UKERNEL_AVX512
tests_ukernel_test_ukernel_attention_LDADD += libx86_avx512.la
endif
if BUILD_NEON
tests_ukernel_test_ukernel_attention_CFLAGS += -DMOAK_UKERNEL_NEON
tests_ukernel_test_ukernel_attention_LDADD += libneon_base.la
endif

# Byte compatibility of the release formats with gguf / ml_dtypes (skips
# with a message where the Python packages are missing).
dist_check_SCRIPTS += tests/crosscheck-formats.sh
EXTRA_DIST += tests/crosscheck_formats.py
TESTS += tests/crosscheck-formats.sh
