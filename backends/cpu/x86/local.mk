# backends/cpu/x86: the avx2 and avx512 backends.
#
# Attention, routing, rmsnorm and rope (attention_*.c, elementwise_*.c,
# x86_supports_attention.c) are another engineer's files, listed here.
#
# ISA-neutral parts (tables, supports, packing, the matmul/MoE drivers) go
# straight into libmoak with no ISA flags, so the library loads and answers
# "not available" on an x86-64 without AVX2.  Every kernel file is compiled
# in a convenience library with exactly its ISA's flags and #errors without
# them:
#   libx86_avx2.la     AVX2 + FMA + F16C (int8 dots with vpmaddubsw)
#   libx86_avxvnni.la  the same + AVX-VNNI: only the int8 tile kernels
#   libx86_avx512.la   AVX-512 F/BW/VL/DQ + VNNI
x86_common_sources = \
	backends/cpu/x86/x86_backend.h \
	backends/cpu/x86/x86_kernels.h \
	backends/cpu/x86/x86_backend.c \
	backends/cpu/x86/x86_kernel_tables.c \
	backends/cpu/x86/x86_pack.c \
	backends/cpu/x86/x86_matmul.c \
	backends/cpu/x86/x86_moe.c \
	backends/cpu/x86/x86_supports_attention.c \
	backends/cpu/x86/x86_indexer.h \
	backends/cpu/x86/x86_indexer.c \
	backends/cpu/gated_delta_cpu.h \
	backends/cpu/gated_delta_cpu.c \
	backends/cpu/x86/x86_gated_delta.c \
	backends/cpu/x86/x86_attention.c \
	backends/cpu/cpu_attention.h \
	backends/cpu/cpu_attention.c

x86_body_headers = \
	backends/cpu/x86/gemm_tile_entry.h \
	backends/cpu/x86/gemm_int_body.h \
	backends/cpu/x86/gemm_panel_body.h \
	backends/cpu/x86/gemm_float_body.h \
	backends/cpu/x86/moe_glu_body.h

if BUILD_AVX2
libmoak_la_SOURCES += $(x86_common_sources)
else
if BUILD_AVX512
libmoak_la_SOURCES += $(x86_common_sources)
endif
endif

if BUILD_AVX2
noinst_LTLIBRARIES += libx86_avx2.la
libx86_avx2_la_CFLAGS = $(AM_CFLAGS) $(AVX2_CFLAGS)
libx86_avx2_la_SOURCES = \
	backends/cpu/x86/x86_simd_avx2.h $(x86_body_headers) \
	backends/cpu/x86/gemm_q4_0_avx2.c \
	backends/cpu/x86/gemm_q8_0_avx2.c \
	backends/cpu/x86/gemm_i8_row_avx2.c \
	backends/cpu/x86/gemm_i4_g32_avx2.c \
	backends/cpu/x86/gemm_i4_g128_avx2.c \
	backends/cpu/x86/gemm_f32_avx2.c \
	backends/cpu/x86/gemm_f16_avx2.c \
	backends/cpu/x86/gemm_bf16_avx2.c \
	backends/cpu/x86/quantize_act_avx2.c \
	backends/cpu/x86/moe_glu_avx2.c \
	backends/cpu/cpu_attention.h backends/cpu/attention_body.h \
	backends/cpu/x86/x86_elementwise_common.h \
	backends/cpu/x86/attention_avx2.c \
	backends/cpu/x86/elementwise_avx2.c \
	backends/cpu/x86/indexer_body.h \
	backends/cpu/x86/indexer_avx2.c \
	backends/cpu/gated_delta_body.h \
	backends/cpu/x86/gated_delta_avx2.c
libmoak_la_LIBADD += libx86_avx2.la

if HAVE_AVXVNNI_FLAGS
noinst_LTLIBRARIES += libx86_avxvnni.la
libx86_avxvnni_la_CFLAGS = $(AM_CFLAGS) $(AVX2_CFLAGS) $(AVXVNNI_CFLAGS)
libx86_avxvnni_la_SOURCES = \
	backends/cpu/x86/x86_simd_avx2.h backends/cpu/x86/gemm_int_body.h backends/cpu/x86/gemm_panel_body.h backends/cpu/x86/gemm_tile_entry.h \
	backends/cpu/x86/gemm_q4_0_avxvnni.c \
	backends/cpu/x86/gemm_q8_0_avxvnni.c \
	backends/cpu/x86/gemm_i8_row_avxvnni.c \
	backends/cpu/x86/gemm_i4_g32_avxvnni.c \
	backends/cpu/x86/gemm_i4_g128_avxvnni.c
libmoak_la_LIBADD += libx86_avxvnni.la
endif
endif

if BUILD_AVX512
noinst_LTLIBRARIES += libx86_avx512.la
libx86_avx512_la_CFLAGS = $(AM_CFLAGS) $(AVX512_CFLAGS)
libx86_avx512_la_SOURCES = \
	backends/cpu/x86/x86_simd_avx512.h $(x86_body_headers) \
	backends/cpu/x86/gemm_q4_0_avx512.c \
	backends/cpu/x86/gemm_q8_0_avx512.c \
	backends/cpu/x86/gemm_i8_row_avx512.c \
	backends/cpu/x86/gemm_i4_g32_avx512.c \
	backends/cpu/x86/gemm_i4_g128_avx512.c \
	backends/cpu/x86/gemm_f32_avx512.c \
	backends/cpu/x86/gemm_f16_avx512.c \
	backends/cpu/x86/gemm_bf16_avx512.c \
	backends/cpu/x86/quantize_act_avx512.c \
	backends/cpu/x86/moe_glu_avx512.c \
	backends/cpu/x86/attention_avx512.c \
	backends/cpu/x86/elementwise_avx512.c \
	backends/cpu/x86/indexer_body.h \
	backends/cpu/x86/indexer_avx512.c \
	backends/cpu/gated_delta_body.h \
	backends/cpu/x86/gated_delta_avx512.c
libmoak_la_LIBADD += libx86_avx512.la
endif

# Tile-edge tests of the x86 matmul/MoE kernels (public API only; the
# general suite in tests/ runs every op on every backend already).
check_PROGRAMS += tests/test_x86_tiles
TESTS += tests/test_x86_tiles$(EXEEXT)
tests_test_x86_tiles_SOURCES = tests/test_x86_tiles.c
tests_test_x86_tiles_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_x86_tiles_LDADD = $(TEST_LIBS)
tests_test_x86_tiles_LDFLAGS = $(TEST_LINK_FLAGS)

# The x86 attention helper's test (attention, rmsnorm, rope edges).
check_PROGRAMS += tests/test_x86_attention
TESTS += tests/test_x86_attention$(EXEEXT)
tests_test_x86_attention_SOURCES = tests/test_x86_attention.c
tests_test_x86_attention_CFLAGS = $(AM_CFLAGS) $(TEST_WARN_FLAGS)
tests_test_x86_attention_LDADD = $(TEST_LIBS)
tests_test_x86_attention_LDFLAGS = $(TEST_LINK_FLAGS)
