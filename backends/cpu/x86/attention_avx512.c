/*
 * attention_avx512.c — the CPU attention's kernels (backends/cpu/attention_body.h)
 * on AVX-512 zmm registers: 32 of them, 16 f32 lanes.
 *   score GEMM   8 keys x 3 vectors of 16 q^T rows (24 accumulators)
 *   p.V          6 rows x 4 vectors of 16 dims (24 accumulators)
 *   fused p.V    about 16 accumulators; a Q8_0 block's scale widened once
 *                for its two vectors
 */
#ifndef __AVX512F__
#error "attention_avx512.c must be compiled with the AVX-512 flags (AVX512_CFLAGS)"
#endif

#include "x86_simd_avx512.h"

#define ATTN_ISA avx512
#define ATTN_ISA_NAME "avx512"
#define ATTN_GEMM_KEYS 8
#define ATTN_GEMM_ROW_VECS 3
#define ATTN_PV_ROWS 6
#define ATTN_PV_VECS 4
#define ATTN_Q8_PAIR 1
#define ATTN_FUSED_PV_WIDTH(RP, FMT) \
    ((RP) >= 16 ? 1 : (RP) == 8 ? ((FMT) == MOAK_FORMAT_Q8_0 ? 2 : 3) : 16 / (RP) > 8 ? 8 : 16 / (RP))

#include "../attention_body.h"
