/* The float-format tile kernel (F32, F16, BF16 weights, f32 activations),
 * written in the x86_simd_*.h vocabulary and instantiated per format and ISA
 * by the gemm_<format>_<isa>.c files.
 *
 * The including file defines GEMM_FLOAT_LOAD (simd_f_load / simd_f_load_f16 /
 * simd_f_load_bf16), GEMM_FLOAT_BYTES (4 or 2) and GEMM_TILE_FN.
 *
 * Weights are packed [K][R] so that, per k, one (converted) load per vector
 * of rows feeds NT fused multiply-adds against the broadcast x[t][k].  The
 * weights are widened to f32 in registers and accumulated in f32: the only
 * rounding beyond the reference's is the f32 sum over K.  With one token,
 * even and odd k go to two accumulators (two FMA chains) and the weights a
 * few hundred bytes ahead are prefetched.  Writes out[panel][t][R]. */
#define GEMM_R (2 * SIMD_LANES)
#define GEMM_K_BYTES (GEMM_R * GEMM_FLOAT_BYTES)
#define GEMM_MAXT SIMD_MAX_TOKENS_1
#define GEMM_PREFETCH_K 16

static inline __attribute__((always_inline)) void
gemm_float_tile_body(const moak_x86_weight *w, const uint8_t *const *panels, const int64_t k0,
                     const int64_t k1, const moak_x86_act *act, const int64_t *rows, float *out,
                     const int S, const int NT)
{
    (void)w;
    /* Weights from row k0 of the panel; the activation rows start there. */
    const int64_t K = k1 - k0;
    const uint8_t *wp[2];
    for (int s = 0; s < S; s++)
        wp[s] = panels[s] + (size_t)k0 * GEMM_K_BYTES;
    const bool split = NT == 1;
    const float *x[GEMM_MAXT];
    for (int t = 0; t < NT; t++)
        x[t] = act->f + rows[t] * act->f_stride;
    simd_f acc[2][2][GEMM_MAXT], acc2[2][2][GEMM_MAXT];
#pragma GCC unroll 2
    for (int s = 0; s < S; s++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++)
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) {
                acc[s][v][t] = simd_f_zero();
                acc2[s][v][t] = simd_f_zero();
            }
    int64_t k = 0;
    if (split) {
        for (; k + 1 < K; k += 2) {
            const simd_f x0 = simd_f_set1(x[0][k]), x1 = simd_f_set1(x[0][k + 1]);
#pragma GCC unroll 2
            for (int s = 0; s < S; s++) {
                const uint8_t *p = wp[s] + (size_t)k * GEMM_K_BYTES;
#pragma GCC unroll 4
                for (int l = 0; l < 2 * GEMM_K_BYTES; l += 64)
                    _mm_prefetch((const char *)p + GEMM_PREFETCH_K * GEMM_K_BYTES + l, _MM_HINT_T0);
#pragma GCC unroll 2
                for (int v = 0; v < 2; v++) {
                    acc[s][v][0] = simd_f_fma(GEMM_FLOAT_LOAD(p + v * SIMD_LANES * GEMM_FLOAT_BYTES), x0, acc[s][v][0]);
                    acc2[s][v][0] = simd_f_fma(GEMM_FLOAT_LOAD(p + GEMM_K_BYTES + v * SIMD_LANES * GEMM_FLOAT_BYTES), x1,
                                               acc2[s][v][0]);
                }
            }
        }
    }
    for (; k < K; k++) {
        simd_f xv[GEMM_MAXT];
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++)
            xv[t] = simd_f_set1(x[t][k]);
#pragma GCC unroll 2
        for (int s = 0; s < S; s++)
#pragma GCC unroll 2
            for (int v = 0; v < 2; v++) {
                simd_f wv = GEMM_FLOAT_LOAD(wp[s] + (size_t)k * GEMM_K_BYTES + v * SIMD_LANES * GEMM_FLOAT_BYTES);
#pragma GCC unroll 8
                for (int t = 0; t < NT; t++)
                    acc[s][v][t] = simd_f_fma(wv, xv[t], acc[s][v][t]);
            }
    }
#pragma GCC unroll 2
    for (int s = 0; s < S; s++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++)
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++)
                simd_f_store(out + ((size_t)(s * NT + t) * GEMM_R + (size_t)v * SIMD_LANES),
                             split ? simd_f_add(acc[s][v][t], acc2[s][v][t]) : acc[s][v][t]);
}

#define GEMM_TILE_BODY gemm_float_tile_body
#include "gemm_tile_entry.h"
