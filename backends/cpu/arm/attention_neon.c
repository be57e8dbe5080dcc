/*
 * attention_neon.c — the CPU attention's kernels (backends/cpu/attention_body.h)
 * on Advanced SIMD q registers: 32 of them, 4 f32 lanes.
 *   score GEMM   6 keys x 4 vectors of 4 q^T rows (24 accumulators)
 *   p.V          6 rows x 4 vectors of 4 dims (24 accumulators)
 *   fused p.V    8 to 16 accumulators; a Q8_0 scale widened once per two
 *                vectors
 */
#if !defined(__ARM_NEON)
#error "attention_neon.c needs Advanced SIMD (NEON_CFLAGS)"
#endif

#include "neon_simd.h"

#define ATTN_ISA neon
#define ATTN_ISA_NAME "neon"
#define ATTN_GEMM_KEYS 6
#define ATTN_GEMM_ROW_VECS 4
#define ATTN_PV_ROWS 6
#define ATTN_PV_VECS 4
#define ATTN_Q8_PAIR 1
#define ATTN_FUSED_PV_WIDTH(RP, FMT) ((RP) >= 4 ? 4 : 8)

#include "../attention_body.h"
