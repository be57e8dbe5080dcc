# backends/cpu/arm: the neon backend (aarch64 only).
#
# The table, supports(), weight packing and the matmul/MoE drivers go into
# libmoak with the library's own flags.  Kernels are compiled in one
# convenience library per ISA level, each with exactly its flags, and every
# kernel file #errors without its feature macro:
#   libneon_base.la     armv8-a Advanced SIMD (@NEON_CFLAGS@): every op; the
#                       integer tiles with smull/sadalp for cores without dotprod
#   libneon_dotprod.la  + dotprod (@DOTPROD_CFLAGS@): integer tiles with sdot
#   libneon_i8mm.la     + i8mm (@I8MM_CFLAGS@): integer tiles with smmla
# init picks the level from the probe's (MOAK_ISA_MAX-capped) ISA bits, so
# one library runs on a Cortex-A53 and uses smmla on a Neoverse V1.
if BUILD_NEON
libmoak_la_SOURCES += \
	backends/cpu/arm/neon_backend.h \
	backends/cpu/arm/neon_kernels.h \
	backends/cpu/arm/neon_backend.c \
	backends/cpu/arm/neon_kernel_tables.c \
	backends/cpu/arm/neon_pack.c \
	backends/cpu/arm/neon_matmul.c \
	backends/cpu/arm/neon_moe.c \
	backends/cpu/gated_delta_cpu.h \
	backends/cpu/gated_delta_cpu.c \
	backends/cpu/arm/neon_attention.c \
	backends/cpu/cpu_attention.h \
	backends/cpu/cpu_attention.c

neon_kernel_headers = \
	backends/cpu/arm/neon_backend.h \
	backends/cpu/arm/neon_kernels.h \
	backends/cpu/arm/neon_simd.h \
	backends/cpu/arm/neon_int_scales.h

noinst_LTLIBRARIES += libneon_base.la
libneon_base_la_CFLAGS = $(AM_CFLAGS) $(NEON_CFLAGS)
libneon_base_la_SOURCES = $(neon_kernel_headers) \
	backends/cpu/cpu_attention.h backends/cpu/attention_body.h \
	backends/cpu/arm/gemm_int_neon.c \
	backends/cpu/arm/gemm_float_neon.c \
	backends/cpu/arm/quantize_neon.c \
	backends/cpu/arm/moe_glu_neon.c \
	backends/cpu/arm/attention_neon.c \
	backends/cpu/arm/norm_rope_neon.c \
	backends/cpu/arm/route_neon.c \
	backends/cpu/gated_delta_body.h \
	backends/cpu/arm/gated_delta_neon.c
libmoak_la_LIBADD += libneon_base.la

noinst_LTLIBRARIES += libneon_dotprod.la
libneon_dotprod_la_CFLAGS = $(AM_CFLAGS) $(DOTPROD_CFLAGS)
libneon_dotprod_la_SOURCES = $(neon_kernel_headers) \
	backends/cpu/arm/gemm_int_dotprod.c
libmoak_la_LIBADD += libneon_dotprod.la

noinst_LTLIBRARIES += libneon_i8mm.la
libneon_i8mm_la_CFLAGS = $(AM_CFLAGS) $(I8MM_CFLAGS)
libneon_i8mm_la_SOURCES = $(neon_kernel_headers) \
	backends/cpu/arm/gemm_int_i8mm.c
libmoak_la_LIBADD += libneon_i8mm.la

# The neon attention's split-key decode (long caches), which the shared
# attention test's short caches do not reach; public API only.
check_PROGRAMS += tests/test_neon_attention
TESTS += tests/test_neon_attention$(EXEEXT)
tests_test_neon_attention_SOURCES = tests/test_neon_attention.c
tests_test_neon_attention_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_neon_attention_LDADD = $(TEST_LIBS)
tests_test_neon_attention_LDFLAGS = $(TEST_LINK_FLAGS)
endif
