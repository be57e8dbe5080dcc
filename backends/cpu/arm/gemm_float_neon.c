/*
 * F32, F16 and BF16 matmul tiles (every level): weights widened to f32 in
 * registers and multiplied by broadcast activations with FMA.
 *
 * Panel layout [K][8 rows]: one k's 8 weights are two f32x4 vectors (f16:
 * `fcvtl`/`fcvtl2` of one 16-byte load; bf16: `shll`/`shll2` by 16).
 * Register tile: 8 rows x up to 4 tokens, four k per step with
 * `fmla v.4s, w.4s, x.s[lane]` from one 16-byte load of each token's x.
 * Two accumulator sets (k mod 4 in {0,1} and {2,3}) halve the FMA
 * dependency chains of a decode token; they are added at the end, so a
 * token's result is the same in any tile.  Accuracy: f32 products and sums,
 * about sqrt(K) * 2^-24 relative.
 */
#if !defined(__ARM_NEON)
#error "gemm_float_neon.c needs Advanced SIMD (NEON_CFLAGS)"
#endif

#include "config.h"

#include "neon_kernels.h"
#include "neon_simd.h"

/* The 8 weights of row k as two f32x4 (rows 0-3, 4-7). */
NEON_INLINE void load_k(const uint8_t *panel, int64_t k, moak_format F, float32x4_t *lo, float32x4_t *hi)
{
    if (F == MOAK_FORMAT_F32) {
        const float *p = (const float *)(const void *)panel + k * NEON_PANEL_ROWS;
        *lo = vld1q_f32(p);
        *hi = vld1q_f32(p + 4);
    } else {
        const uint16x8_t h = vld1q_u16((const uint16_t *)(const void *)panel + k * NEON_PANEL_ROWS);
        if (F == MOAK_FORMAT_F16) {
            *lo = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h)));
            *hi = vcvt_high_f32_f16(vreinterpretq_f16_u16(h));
        } else {
            *lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
            *hi = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
        }
    }
}

#define FMA_LANE(set, k, lane)                                                             \
    do {                                                                                   \
        float32x4_t wlo, whi;                                                              \
        load_k(panel, (k), F, &wlo, &whi);                                                 \
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++)                               \
        {                                                                                  \
            acc[set][0][t] = vfmaq_laneq_f32(acc[set][0][t], wlo, xv[t], lane);            \
            acc[set][1][t] = vfmaq_laneq_f32(acc[set][1][t], whi, xv[t], lane);            \
        }                                                                                  \
    } while (0)

NEON_INLINE void tile_body(const neon_weight *w, const uint8_t *panel, const neon_act *act,
                           const int64_t *rows, float *out, const moak_format F, const int NT)
{
    const int64_t K = w->cols;
    const float *x[NEON_FLOAT_TILE_TOKENS];
    for (int t = 0; t < NT; t++)
        x[t] = act->f + rows[t] * act->f_stride;
    float32x4_t acc[2][2][NEON_FLOAT_TILE_TOKENS];
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++)
        acc[0][0][t] = acc[0][1][t] = acc[1][0][t] = acc[1][1][t] = vdupq_n_f32(0.0f);

    int64_t k = 0;
    for (; k + 4 <= K; k += 4) {
        float32x4_t xv[NEON_FLOAT_TILE_TOKENS];
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++)
            xv[t] = vld1q_f32(x[t] + k);
        FMA_LANE(0, k, 0);
        FMA_LANE(0, k + 1, 1);
        FMA_LANE(1, k + 2, 2);
        FMA_LANE(1, k + 3, 3);
    }
    for (; k < K; k++) {
        float32x4_t wlo, whi;
        load_k(panel, k, F, &wlo, &whi);
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++)
        {
            acc[0][0][t] = vfmaq_n_f32(acc[0][0][t], wlo, x[t][k]);
            acc[0][1][t] = vfmaq_n_f32(acc[0][1][t], whi, x[t][k]);
        }
    }
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++)
    {
        vst1q_f32(out + t * NEON_PANEL_ROWS, vaddq_f32(acc[0][0][t], acc[1][0][t]));
        vst1q_f32(out + t * NEON_PANEL_ROWS + 4, vaddq_f32(acc[0][1][t], acc[1][1][t]));
    }
}

#define DEFINE_TILE(name, format)                                                              \
    void neon_tile_##name(const neon_weight *w, const uint8_t *panel, const neon_act *act,      \
                          const int64_t *rows, int nt, float *out)                             \
    {                                                                                          \
        switch (nt) {                                                                          \
        case 1:                                                                                \
            tile_body(w, panel, act, rows, out, format, 1);                                    \
            break;                                                                             \
        case 2:                                                                                \
            tile_body(w, panel, act, rows, out, format, 2);                                    \
            break;                                                                             \
        case 3:                                                                                \
            tile_body(w, panel, act, rows, out, format, 3);                                    \
            break;                                                                             \
        default:                                                                               \
            tile_body(w, panel, act, rows, out, format, 4);                                    \
            break;                                                                             \
        }                                                                                      \
    }

DEFINE_TILE(f32, MOAK_FORMAT_F32)
DEFINE_TILE(f16, MOAK_FORMAT_F16)
DEFINE_TILE(bf16, MOAK_FORMAT_BF16)
