/* The integer-format tile kernel, written once in the x86_simd_*.h vocabulary
 * and instantiated per format and ISA by the gemm_<format>_<isa>.c files.
 *
 * The including file defines:
 *   GEMM_BITS      8 (Q8_0, I8_ROW) or 4 (Q4_0, I4_G*)
 *   GEMM_OFFSET    the unsigned bias of the stored quants (128 for 8-bit when
 *                  SIMD_DOT8_OFFSET says so, 8 for Q4_0, 0 for I4_G*)
 *   GEMM_SCALES    GEMM_SCALES_BLOCK (f16 per 32-block), GEMM_SCALES_GROUP
 *                  (f16 scale + min per group), GEMM_SCALES_ROW (f32 per row)
 *   GEMM_GROUP_BLOCKS  32-blocks per group (GEMM_SCALES_GROUP only)
 *   GEMM_TILE_FN   the function name
 *
 * Tile: 2 vectors of rows (one panel of R = 2 * SIMD_LANES rows) per panel,
 * 1 or 2 panels, NT tokens, the 32-blocks [kb0, kb1) of K.  Per 32-block, per 4 k: one weight
 * load per vector feeds NT dot products against a 4-byte activation
 * broadcast; the int32 block sums (started from -offset * sum(x_q), which
 * removes the stored offset) are then taken to f32 with the block's weight
 * scale times the activation scale.  With one token, the even and odd quads go
 * to two accumulators so the dot-product chain is half as long (decode is
 * latency- then bandwidth-bound), and the weights of a few blocks ahead are
 * prefetched (never past kb1).  Reads only the range's quants and scales;
 * writes out[panel][t][R]. */
#define GEMM_SCALES_BLOCK 1
#define GEMM_SCALES_GROUP 2
#define GEMM_SCALES_ROW 3

#define GEMM_R (2 * SIMD_LANES)
#define GEMM_BLOCK_BYTES (GEMM_R * GEMM_BITS * 4)
#define GEMM_PREFETCH_BLOCKS 4
/* Accumulator arrays are sized for the largest tile so that, once the token
 * loops are unrolled, every element has a constant index and lives in a register. */
#define GEMM_MAXT SIMD_MAX_TOKENS_1

static inline __attribute__((always_inline)) void
gemm_tile_body(const moak_x86_weight *w, const uint8_t *const *panels, const int64_t kb0,
               const int64_t kb1, const moak_x86_act *act, const int64_t *rows, float *out,
               const int S, const int NT)
{
    /* Two accumulator chains per output vector for a lone token, except where
     * 16 registers cannot hold them (avx2 with two panels: four chains already). */
    const bool split = NT == 1 && (SIMD_LANES == 16 || S == 1);
    const int8_t *xq[GEMM_MAXT];
    const float *xd[GEMM_MAXT];
    const int32_t *xs[GEMM_MAXT];
    const float *xds[GEMM_MAXT] __attribute__((unused));
    /* Activation rows start at weight block kb0: index them with b - kb0. */
    for (int t = 0; t < NT; t++) {
        xq[t] = act->q + rows[t] * act->k_padded;
        xd[t] = act->d + rows[t] * act->n_blocks;
        xs[t] = act->s + rows[t] * act->n_blocks;
        xds[t] = act->ds + rows[t] * act->n_blocks;
    }
    const uint8_t *scales[2];
    for (int s = 0; s < S; s++)
        scales[s] = panels[s] + w->quant_bytes;

    simd_f facc[2][2][GEMM_MAXT];
#pragma GCC unroll 2
    for (int s = 0; s < S; s++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++)
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++)
                facc[s][v][t] = simd_f_zero();

    for (int64_t b = kb0; b < kb1; b++) {
        simd_i iacc[2][2][GEMM_MAXT], iacc2[2][2][GEMM_MAXT];
#pragma GCC unroll 2
        for (int s = 0; s < S; s++)
#pragma GCC unroll 2
            for (int v = 0; v < 2; v++)
#pragma GCC unroll 8
                for (int t = 0; t < NT; t++) {
                    /* Start from -offset * sum(x_q): a broadcast load. */
                    iacc[s][v][t] = GEMM_OFFSET != 0 ? simd_i_bcast4((const int8_t *)&xs[t][b - kb0]) : simd_i_zero();
                    if (split)
                        iacc2[s][v][t] = simd_i_zero();
                }
        if (split && b + GEMM_PREFETCH_BLOCKS < kb1) {
#pragma GCC unroll 2
            for (int s = 0; s < S; s++) {
                const char *pf = (const char *)panels[s] + (b + GEMM_PREFETCH_BLOCKS) * GEMM_BLOCK_BYTES;
#pragma GCC unroll 16
                for (int l = 0; l < GEMM_BLOCK_BYTES; l += 64)
                    _mm_prefetch(pf + l, _MM_HINT_T0);
            }
        }
        const int8_t *xb[GEMM_MAXT];
        for (int t = 0; t < NT; t++)
            xb[t] = xq[t] + (b - kb0) * 32;
#if GEMM_BITS == 8
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            simd_i x[GEMM_MAXT];
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++)
                x[t] = simd_i_bcast4(xb[t] + 4 * c);
#pragma GCC unroll 2
            for (int s = 0; s < S; s++)
#pragma GCC unroll 2
                for (int v = 0; v < 2; v++) {
                    simd_i wv = simd_i_load(panels[s] + b * GEMM_BLOCK_BYTES + (c * GEMM_R + v * SIMD_LANES) * 4);
#pragma GCC unroll 8
                    for (int t = 0; t < NT; t++) {
                        if (split && (c & 1))
                            iacc2[s][v][t] = simd_dot8(iacc2[s][v][t], wv, x[t]);
                        else
                            iacc[s][v][t] = simd_dot8(iacc[s][v][t], wv, x[t]);
                    }
                }
        }
#else
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            simd_i xl[GEMM_MAXT], xh[GEMM_MAXT];
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) {
                xl[t] = simd_i_bcast4(xb[t] + 4 * c);
                xh[t] = simd_i_bcast4(xb[t] + 4 * (c + 4));
            }
#pragma GCC unroll 2
            for (int s = 0; s < S; s++)
#pragma GCC unroll 2
                for (int v = 0; v < 2; v++) {
                    simd_i raw = simd_i_load(panels[s] + b * GEMM_BLOCK_BYTES + (c * GEMM_R + v * SIMD_LANES) * 4);
                    simd_i lo = simd_i_low_nibbles(raw), hi = simd_i_high_nibbles(raw);
#pragma GCC unroll 8
                    for (int t = 0; t < NT; t++) {
                        iacc[s][v][t] = simd_dot4(iacc[s][v][t], lo, xl[t]);
                        if (split)
                            iacc2[s][v][t] = simd_dot4(iacc2[s][v][t], hi, xh[t]);
                        else
                            iacc[s][v][t] = simd_dot4(iacc[s][v][t], hi, xh[t]);
                    }
                }
        }
#endif
        /* Block sums -> f32 with the scales. */
        simd_f wscale[2][2] __attribute__((unused));
#if GEMM_SCALES == GEMM_SCALES_GROUP
        simd_f wmin[2][2];
#endif
#pragma GCC unroll 2
        for (int s = 0; s < S; s++)
#pragma GCC unroll 2
            for (int v = 0; v < 2; v++) {
#if GEMM_SCALES == GEMM_SCALES_BLOCK
                wscale[s][v] = simd_f_load_f16(scales[s] + ((size_t)b * GEMM_R + v * SIMD_LANES) * 2);
#elif GEMM_SCALES == GEMM_SCALES_GROUP
                size_t g = (size_t)(b / GEMM_GROUP_BLOCKS);
                wscale[s][v] = simd_f_load_f16(scales[s] + ((g * 2) * GEMM_R + v * SIMD_LANES) * 2);
                wmin[s][v] = simd_f_load_f16(scales[s] + ((g * 2 + 1) * GEMM_R + v * SIMD_LANES) * 2);
#else
                wscale[s][v] = simd_f_set1(1.0f);
#endif
            }
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) {
            const simd_f vdx = simd_f_set1(xd[t][b - kb0]);
#if GEMM_SCALES == GEMM_SCALES_GROUP
            const simd_f vsum = simd_f_set1(xds[t][b - kb0]);
#endif
#pragma GCC unroll 2
            for (int s = 0; s < S; s++)
#pragma GCC unroll 2
                for (int v = 0; v < 2; v++) {
                    simd_i sum = iacc[s][v][t];
                    if (split)
                        sum = simd_i_add(sum, iacc2[s][v][t]);
#if GEMM_SCALES == GEMM_SCALES_ROW
                    facc[s][v][t] = simd_f_fma(simd_f_from_i(sum), vdx, facc[s][v][t]);
#else
                    facc[s][v][t] = simd_f_fma(simd_f_from_i(sum), simd_f_mul(wscale[s][v], vdx), facc[s][v][t]);
#endif
#if GEMM_SCALES == GEMM_SCALES_GROUP
                    facc[s][v][t] = simd_f_fma(wmin[s][v], vsum, facc[s][v][t]);
#endif
                }
        }
    }
#pragma GCC unroll 2
    for (int s = 0; s < S; s++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++) {
#if GEMM_SCALES == GEMM_SCALES_ROW
            const simd_f row_scale = simd_f_load((const float *)scales[s] + v * SIMD_LANES);
#endif
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) {
                simd_f r = facc[s][v][t];
#if GEMM_SCALES == GEMM_SCALES_ROW
                r = simd_f_mul(r, row_scale);
#endif
                simd_f_store(out + ((size_t)(s * NT + t) * GEMM_R + (size_t)v * SIMD_LANES), r);
            }
        }
}

#define GEMM_TILE_BODY gemm_tile_body
#include "gemm_tile_entry.h"
