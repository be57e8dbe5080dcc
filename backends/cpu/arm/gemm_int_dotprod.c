/*
 * Integer matmul tiles with sdot (armv8.2-a+dotprod), k_group 4.
 *
 * Register tile: the panel's 8 rows (two quads) x up to 4 tokens.  Per block
 * of 32 k, chunk c (4 k) of a quad is one 16-byte vector [row][4 k]; one
 * `sdot v.4s, w.16b, x.4b[lane]` adds the chunk's dot products of the four
 * rows with the token's 4 k held in lane c % 4 of its activation vector
 * (x0 holds k 0..15, x1 k 16..31).  The block's int32 sums are scaled into
 * f32 accumulators (neon_int_scales.h).  Registers: 8 int32 + 8 f32
 * accumulators + 8 activation vectors + the weight vectors in flight (with
 * 1 or 2 tokens, two int32 sets so that decode has 4 sdot chains, not 2).
 * Reads exactly the panel and the tokens' rows; writes out[nt][8].
 */
#if !defined(__ARM_FEATURE_DOTPROD)
#error "gemm_int_dotprod.c needs the dotprod flags (DOTPROD_CFLAGS)"
#endif

#include "config.h"

#include <stdbool.h>

#include "neon_int_scales.h"
#include "neon_kernels.h"
#include "neon_simd.h"

/* Chunk c of both quads against lane `lane` of each token's x vector, into
 * accumulator set `set`. */
#define DOT_CHUNK(set, w0, w1, x, lane)                                                    \
    do {                                                                                   \
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++)                               \
        {                                                                                  \
            acc[set][0][t] = vdotq_laneq_s32(acc[set][0][t], (w0), x[t], lane);            \
            acc[set][1][t] = vdotq_laneq_s32(acc[set][1][t], (w1), x[t], lane);            \
        }                                                                                  \
    } while (0)

/* 8-bit chunk c: vectors (c, quad 0) and (c, quad 1). */
#define CHUNK8(c, x, lane) \
    DOT_CHUNK(SETS == 2 ? (c) & 1 : 0, vld1q_s8(qb + (2 * (c)) * 16), vld1q_s8(qb + (2 * (c) + 1) * 16), x, lane)

/* 4-bit stored vector c: chunk c in the low nibbles, chunk c + 4 in the high. */
#define CHUNK4(c)                                                                          \
    do {                                                                                   \
        const int8x16_t v0 = vld1q_s8(qb + (2 * (c)) * 16);                                \
        const int8x16_t v1 = vld1q_s8(qb + (2 * (c) + 1) * 16);                            \
        DOT_CHUNK(0, vshlq_n_s8(v0, 4), vshlq_n_s8(v1, 4), x0, c);                         \
        DOT_CHUNK(SETS - 1, vandq_s8(v0, high_mask), vandq_s8(v1, high_mask), x1, c);      \
    } while (0)

NEON_INLINE void tile_body(const neon_weight *w, const uint8_t *panel, const neon_act *act,
                           const int64_t *rows, float *out, const moak_format F, const int NT)
{
    /* Few tokens leave sdot latency-bound on two chains; a second set of
     * int32 accumulators (odd chunks) doubles the chains.  Integer sums are
     * exact, so the split does not change any result. */
    const int SETS = NT <= 2 ? 2 : 1;
    const bool four_bit = neon_is_four_bit(F);
    const size_t block_bytes = four_bit ? NEON_PANEL_ROWS * 16 : NEON_PANEL_ROWS * 32;
    const uint8_t *scales = panel + w->quant_bytes;
    const int8x16_t high_mask = vdupq_n_s8((int8_t)0xF0);
    const int8_t *xq[NEON_MAX_TILE_TOKENS];
    const float *xd[NEON_MAX_TILE_TOKENS], *xds[NEON_MAX_TILE_TOKENS];
    for (int t = 0; t < NT; t++) {
        xq[t] = act->q + rows[t] * act->k_padded;
        xd[t] = act->d + rows[t] * act->n_blocks;
        xds[t] = act->ds + rows[t] * act->n_blocks;
    }
    float32x4_t accf[2][NEON_MAX_TILE_TOKENS];
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++)
    {
        accf[0][t] = vdupq_n_f32(0.0f);
        accf[1][t] = vdupq_n_f32(0.0f);
    }

    for (int64_t b = 0; b < w->n_blocks; b++) {
        const int8_t *qb = (const int8_t *)panel + (size_t)b * block_bytes;
        int8x16_t x0[NEON_MAX_TILE_TOKENS], x1[NEON_MAX_TILE_TOKENS];
        int32x4_t acc[2][2][NEON_MAX_TILE_TOKENS];
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++)
        {
            x0[t] = vld1q_s8(xq[t] + b * NEON_QBLOCK);
            x1[t] = vld1q_s8(xq[t] + b * NEON_QBLOCK + 16);
            acc[0][0][t] = acc[0][1][t] = acc[1][0][t] = acc[1][1][t] = vdupq_n_s32(0);
        }
        if (!four_bit) {
            CHUNK8(0, x0, 0);
            CHUNK8(1, x0, 1);
            CHUNK8(2, x0, 2);
            CHUNK8(3, x0, 3);
            CHUNK8(4, x1, 0);
            CHUNK8(5, x1, 1);
            CHUNK8(6, x1, 2);
            CHUNK8(7, x1, 3);
        } else {
            CHUNK4(0);
            CHUNK4(1);
            CHUNK4(2);
            CHUNK4(3);
        }
        _Pragma("GCC unroll 2") for (int quad = 0; quad < 2; quad++)
        {
            float32x4_t ws, wm = vdupq_n_f32(0.0f);
            neon_block_scales(F, scales, b, quad, &ws, &wm);
            _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++)
            {
                const int32x4_t dot = SETS == 2 ? vaddq_s32(acc[0][quad][t], acc[1][quad][t]) : acc[0][quad][t];
                const float32x4_t sum = vcvtq_f32_s32(dot);
                accf[quad][t] = vfmaq_f32(accf[quad][t], sum, vmulq_n_f32(ws, xd[t][b]));
                if (neon_has_min(F))
                    accf[quad][t] = vfmaq_n_f32(accf[quad][t], wm, xds[t][b]);
            }
        }
    }

    _Pragma("GCC unroll 2") for (int quad = 0; quad < 2; quad++)
    {
        const float32x4_t rs = F == MOAK_FORMAT_I8_ROW ? neon_row_scales(scales, quad) : vdupq_n_f32(1.0f);
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++)
            vst1q_f32(out + t * NEON_PANEL_ROWS + 4 * quad,
                      F == MOAK_FORMAT_I8_ROW ? vmulq_f32(accf[quad][t], rs) : accf[quad][t]);
    }
}

#define DEFINE_TILE(name, format)                                                              \
    void neon_dotprod_tile_##name(const neon_weight *w, const uint8_t *panel, const neon_act *act, \
                                  const int64_t *rows, int nt, float *out)                     \
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

DEFINE_TILE(q8_0, MOAK_FORMAT_Q8_0)
DEFINE_TILE(q4_0, MOAK_FORMAT_Q4_0)
DEFINE_TILE(i8_row, MOAK_FORMAT_I8_ROW)
DEFINE_TILE(i4_g32, MOAK_FORMAT_I4_G32)
DEFINE_TILE(i4_g128, MOAK_FORMAT_I4_G128)
