# The OpenCL backend (backends/opencl, issue 5).
#
# The kernels' OpenCL C sources are embedded in the library by embed_cl.sh,
# a shell + od rule that runs on the build machine without compiling
# anything for it, so cross builds need nothing extra.
OPENCL_CL_FILES = \
	backends/opencl/common.cl \
	backends/opencl/matmul_q.cl \
	backends/opencl/moe.cl \
	lib/route_select.h \
	backends/opencl/route.cl \
	backends/opencl/attention.cl \
	backends/opencl/indexer.cl \
	backends/opencl/norm_rope.cl
EXTRA_DIST += $(OPENCL_CL_FILES) backends/opencl/embed_cl.sh

if BUILD_OPENCL
noinst_LTLIBRARIES += backends/opencl/libmoak_opencl.la
backends_opencl_libmoak_opencl_la_SOURCES = \
	backends/opencl/opencl_internal.h \
	backends/opencl/opencl_backend.c \
	backends/opencl/opencl_device.c \
	backends/opencl/opencl_errors.c \
	backends/opencl/opencl_program.c \
	backends/opencl/opencl_program_cache.c \
	backends/opencl/opencl_buffers.c \
	backends/opencl/opencl_weights.c \
	backends/opencl/opencl_kv.c \
	backends/opencl/opencl_matmul.c \
	backends/opencl/opencl_moe.c \
	backends/opencl/opencl_route.c \
	backends/opencl/opencl_attention.c \
	backends/opencl/opencl_indexer.c \
	backends/opencl/opencl_norm_rope.c
nodist_backends_opencl_libmoak_opencl_la_SOURCES = backends/opencl/opencl_kernel_sources.c
backends_opencl_libmoak_opencl_la_CPPFLAGS = $(AM_CPPFLAGS) \
	-I$(top_srcdir)/backends/opencl -DCL_TARGET_OPENCL_VERSION=120
libmoak_la_LIBADD += backends/opencl/libmoak_opencl.la $(OPENCL_LIBS)
BUILT_SOURCES += backends/opencl/opencl_kernel_sources.c
CLEANFILES += backends/opencl/opencl_kernel_sources.c

backends/opencl/opencl_kernel_sources.c: $(OPENCL_CL_FILES) $(top_srcdir)/backends/opencl/embed_cl.sh
	$(AM_V_GEN)$(MKDIR_P) backends/opencl && \
	$(SHELL) $(top_srcdir)/backends/opencl/embed_cl.sh $(top_srcdir) $(OPENCL_CL_FILES) > $@.tmp && \
	mv $@.tmp $@
endif

# Tests of what only OpenCL has (device choice, program cache, build
# errors); the ops themselves are checked by the general suite.
EXTRA_DIST += tests/test_opencl_common.h
if BUILD_OPENCL
check_PROGRAMS += tests/test_opencl_device tests/test_opencl_cache
TESTS += tests/test_opencl_device$(EXEEXT) tests/test_opencl_cache$(EXEEXT)
tests_test_opencl_device_SOURCES = tests/test_opencl_device.c tests/test_opencl_common.h
tests_test_opencl_device_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_opencl_device_LDADD = $(TEST_LIBS) $(OPENCL_LIBS)
tests_test_opencl_device_LDFLAGS = $(TEST_LINK_FLAGS)
tests_test_opencl_cache_SOURCES = tests/test_opencl_cache.c tests/test_opencl_common.h
tests_test_opencl_cache_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_opencl_cache_LDADD = $(TEST_LIBS)
tests_test_opencl_cache_LDFLAGS = $(TEST_LINK_FLAGS)
endif
