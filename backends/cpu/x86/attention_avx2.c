/*
 * attention_avx2.c — the CPU attention's kernels (backends/cpu/attention_body.h)
 * on AVX2 + FMA + F16C ymm registers: 16 of them, 8 f32 lanes, so the
 * register tiles are about half the AVX-512 ones.
 *   score GEMM   6 keys x 2 vectors of 8 q^T rows (12 accumulators)
 *   p.V          6 rows x 2 vectors of 8 dims (12 accumulators)
 *   fused p.V    8 accumulators; no Q8_0 pairs (no registers to spare)
 */
#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "attention_avx2.c must be compiled with the AVX2 flags (AVX2_CFLAGS)"
#endif

#include "x86_simd_avx2.h"

#define ATTN_ISA avx2
#define ATTN_ISA_NAME "avx2"
#define ATTN_GEMM_KEYS 6
#define ATTN_GEMM_ROW_VECS 2
#define ATTN_PV_ROWS 6
#define ATTN_PV_VECS 2
#define ATTN_Q8_PAIR 0
#define ATTN_FUSED_PV_WIDTH(RP, FMT) ((RP) >= 8 ? 1 : (RP) == 4 ? 2 : 4)

#include "../attention_body.h"
