# The onednn backend (backends/onednn, issue 4): oneDNN 2.6 matmul
# primitives for matmul and the MoE FFN.
#
# Debian's libdnnl has no pkg-config file (configure finds dnnl.h and
# -ldnnl, see ONEDNN_LIBS) and is built for the OpenMP runtime (libgomp).
# The backend's own row loops run on that same OpenMP team, so its files
# are compiled with -fopenmp and libmoak links libgomp explicitly: the
# runtime must be the one libdnnl uses, never a second one.
#
# The C row kernels (quantization, epilogue, GLU, weighted sums) are one
# body compiled twice: with the library's flags and, where configure has
# the AVX-512 flags, in libmoak_onednn_avx512.la with them; init picks by
# the probed ISA.  -fno-trapping-math lets GCC vectorize the clamps of the
# GLUs' exp (it changes no result: moak never reads FP exception flags).
ONEDNN_SOURCES = \
	backends/onednn/onednn_internal.h \
	backends/onednn/onednn_row_kernels.h \
	backends/onednn/onednn_row_kernels_body.h \
	backends/onednn/onednn_backend.c \
	backends/onednn/onednn_runtime.c \
	backends/onednn/onednn_primitive_cache.c \
	backends/onednn/onednn_weights.c \
	backends/onednn/onednn_rows.c \
	backends/onednn/onednn_row_kernels_generic.c \
	backends/onednn/onednn_matmul.c \
	backends/onednn/onednn_moe.c
ONEDNN_AVX512_SOURCES = backends/onednn/onednn_row_kernels_avx512.c
ONEDNN_FLAGS = -fopenmp -fno-trapping-math

if BUILD_ONEDNN
noinst_LTLIBRARIES += backends/onednn/libmoak_onednn.la
backends_onednn_libmoak_onednn_la_SOURCES = $(ONEDNN_SOURCES)
backends_onednn_libmoak_onednn_la_CFLAGS = $(AM_CFLAGS) $(ONEDNN_FLAGS)
libmoak_la_LIBADD += backends/onednn/libmoak_onednn.la $(ONEDNN_LIBS) -lgomp
if BUILD_AVX512
noinst_LTLIBRARIES += backends/onednn/libmoak_onednn_avx512.la
backends_onednn_libmoak_onednn_avx512_la_SOURCES = $(ONEDNN_AVX512_SOURCES)
backends_onednn_libmoak_onednn_avx512_la_CFLAGS = $(AM_CFLAGS) $(ONEDNN_FLAGS) $(AVX512_CFLAGS)
libmoak_la_LIBADD += backends/onednn/libmoak_onednn_avx512.la
else
EXTRA_DIST += $(ONEDNN_AVX512_SOURCES)
endif
else
EXTRA_DIST += $(ONEDNN_SOURCES) $(ONEDNN_AVX512_SOURCES)
endif

# What only the oneDNN backend has (its supports answers, weight expansion,
# primitive reuse across batch sizes); the ops themselves are checked by
# the general suite on every backend.
EXTRA_DIST += tests/test_onednn_common.h
if BUILD_ONEDNN
check_PROGRAMS += tests/test_onednn_supports tests/test_onednn_reuse
TESTS += tests/test_onednn_supports$(EXEEXT) tests/test_onednn_reuse$(EXEEXT)
tests_test_onednn_supports_SOURCES = tests/test_onednn_supports.c tests/test_onednn_common.h
tests_test_onednn_supports_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_onednn_supports_LDADD = $(TEST_LIBS)
tests_test_onednn_supports_LDFLAGS = $(TEST_LINK_FLAGS)
tests_test_onednn_reuse_SOURCES = tests/test_onednn_reuse.c tests/test_onednn_common.h
tests_test_onednn_reuse_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_onednn_reuse_LDADD = $(TEST_LIBS)
tests_test_onednn_reuse_LDFLAGS = $(TEST_LINK_FLAGS)
endif
