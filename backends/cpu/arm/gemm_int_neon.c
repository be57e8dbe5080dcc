/*
 * Integer matmul tiles for cores without dotprod (armv8-a Advanced SIMD,
 * e.g. Cortex-A53/A72), k_group 4: the same panels as the dotprod tiles.
 *
 * sdot is emulated per pair of chunks: the token's 4 k of chunk c are
 * broadcast to every 32-bit lane, `smull`/`smull2` multiply the quad's low
 * and high halves (rows 0-1 and 2-3, 4 k each) into int16, `smlal`/`smlal2`
 * add chunk c + 1's products (two products of |x_q| <= 127 and |w| <= 128
 * fit int16), and `sadalp` widens pairs into int32 lanes
 * [row0 k01, row0 k23, row1 k01, row1 k23].  At the end of a block one
 * `addp` of the two halves gives the four rows' sums.  Register tile: 8 rows
 * x up to 2 tokens (two int32 accumulators per quad and token).
 */
#if !defined(__ARM_NEON)
#error "gemm_int_neon.c needs Advanced SIMD (NEON_CFLAGS)"
#endif

#include "config.h"

#include <stdbool.h>

#include "neon_int_scales.h"
#include "neon_kernels.h"
#include "neon_simd.h"

#define BASE_MAX_TOKENS 2

/* The 4 bytes of lane `lane` of x in every 32-bit lane. */
#define BROADCAST4(x, lane) vreinterpretq_s8_s32(vdupq_laneq_s32(vreinterpretq_s32_s8(x), lane))

/* Chunks a and b = a + 1 of one quad (vectors wa, wb) against lanes la, la+1 of x. */
#define PAIR_QUAD(quad, wa, wb, x, la)                                                     \
    do {                                                                                   \
        _Pragma("GCC unroll 2") for (int t = 0; t < NT; t++)                               \
        {                                                                                  \
            const int8x16_t xa = BROADCAST4(x[t], la), xb = BROADCAST4(x[t], (la) + 1);    \
            int16x8_t lo = vmull_s8(vget_low_s8(wa), vget_low_s8(xa));                     \
            lo = vmlal_s8(lo, vget_low_s8(wb), vget_low_s8(xb));                           \
            int16x8_t hi = vmull_high_s8((wa), xa);                                        \
            hi = vmlal_high_s8(hi, (wb), xb);                                              \
            acc_lo[quad][t] = vpadalq_s16(acc_lo[quad][t], lo);                            \
            acc_hi[quad][t] = vpadalq_s16(acc_hi[quad][t], hi);                            \
        }                                                                                  \
    } while (0)

/* 8-bit chunks c, c + 1 (c even) against lanes of x. */
#define CHUNKS8(c, x, lane)                                                                \
    do {                                                                                   \
        PAIR_QUAD(0, vld1q_s8(qb + (2 * (c)) * 16), vld1q_s8(qb + (2 * (c) + 2) * 16), x, lane);     \
        PAIR_QUAD(1, vld1q_s8(qb + (2 * (c) + 1) * 16), vld1q_s8(qb + (2 * (c) + 3) * 16), x, lane); \
    } while (0)

/* 4-bit stored vectors c, c + 1 (c even): chunks c, c+1 in the low nibbles
 * (x0 lanes c, c+1), chunks c+4, c+5 in the high nibbles (x1 lanes c, c+1). */
#define CHUNKS4(c)                                                                         \
    do {                                                                                   \
        const int8x16_t a0 = vld1q_s8(qb + (2 * (c)) * 16);                                \
        const int8x16_t a1 = vld1q_s8(qb + (2 * (c) + 1) * 16);                            \
        const int8x16_t b0 = vld1q_s8(qb + (2 * (c) + 2) * 16);                            \
        const int8x16_t b1 = vld1q_s8(qb + (2 * (c) + 3) * 16);                            \
        PAIR_QUAD(0, vshlq_n_s8(a0, 4), vshlq_n_s8(b0, 4), x0, c);                         \
        PAIR_QUAD(1, vshlq_n_s8(a1, 4), vshlq_n_s8(b1, 4), x0, c);                         \
        PAIR_QUAD(0, vandq_s8(a0, high_mask), vandq_s8(b0, high_mask), x1, c);             \
        PAIR_QUAD(1, vandq_s8(a1, high_mask), vandq_s8(b1, high_mask), x1, c);             \
    } while (0)

NEON_INLINE void tile_body(const neon_weight *w, const uint8_t *panel, const neon_act *act,
                           const int64_t *rows, float *out, const moak_format F, const int NT)
{
    const bool four_bit = neon_is_four_bit(F);
    const size_t block_bytes = four_bit ? NEON_PANEL_ROWS * 16 : NEON_PANEL_ROWS * 32;
    const uint8_t *scales = panel + w->quant_bytes;
    const int8x16_t high_mask = vdupq_n_s8((int8_t)0xF0);
    const int8_t *xq[BASE_MAX_TOKENS];
    const float *xd[BASE_MAX_TOKENS], *xds[BASE_MAX_TOKENS];
    for (int t = 0; t < NT; t++) {
        xq[t] = act->q + rows[t] * act->k_padded;
        xd[t] = act->d + rows[t] * act->n_blocks;
        xds[t] = act->ds + rows[t] * act->n_blocks;
    }
    float32x4_t accf[2][BASE_MAX_TOKENS];
    _Pragma("GCC unroll 2") for (int t = 0; t < NT; t++)
    {
        accf[0][t] = vdupq_n_f32(0.0f);
        accf[1][t] = vdupq_n_f32(0.0f);
    }

    for (int64_t b = 0; b < w->n_blocks; b++) {
        const int8_t *qb = (const int8_t *)panel + (size_t)b * block_bytes;
        int8x16_t x0[BASE_MAX_TOKENS], x1[BASE_MAX_TOKENS];
        int32x4_t acc_lo[2][BASE_MAX_TOKENS], acc_hi[2][BASE_MAX_TOKENS];
        _Pragma("GCC unroll 2") for (int t = 0; t < NT; t++)
        {
            x0[t] = vld1q_s8(xq[t] + b * NEON_QBLOCK);
            x1[t] = vld1q_s8(xq[t] + b * NEON_QBLOCK + 16);
            acc_lo[0][t] = acc_lo[1][t] = acc_hi[0][t] = acc_hi[1][t] = vdupq_n_s32(0);
        }
        if (!four_bit) {
            CHUNKS8(0, x0, 0);
            CHUNKS8(2, x0, 2);
            CHUNKS8(4, x1, 0);
            CHUNKS8(6, x1, 2);
        } else {
            CHUNKS4(0);
            CHUNKS4(2);
        }
        _Pragma("GCC unroll 2") for (int quad = 0; quad < 2; quad++)
        {
            float32x4_t ws, wm = vdupq_n_f32(0.0f);
            neon_block_scales(F, scales, b, quad, &ws, &wm);
            _Pragma("GCC unroll 2") for (int t = 0; t < NT; t++)
            {
                const float32x4_t sum = vcvtq_f32_s32(vpaddq_s32(acc_lo[quad][t], acc_hi[quad][t]));
                accf[quad][t] = vfmaq_f32(accf[quad][t], sum, vmulq_n_f32(ws, xd[t][b]));
                if (neon_has_min(F))
                    accf[quad][t] = vfmaq_n_f32(accf[quad][t], wm, xds[t][b]);
            }
        }
    }

    _Pragma("GCC unroll 2") for (int quad = 0; quad < 2; quad++)
    {
        const float32x4_t rs = F == MOAK_FORMAT_I8_ROW ? neon_row_scales(scales, quad) : vdupq_n_f32(1.0f);
        _Pragma("GCC unroll 2") for (int t = 0; t < NT; t++)
            vst1q_f32(out + t * NEON_PANEL_ROWS + 4 * quad,
                      F == MOAK_FORMAT_I8_ROW ? vmulq_f32(accf[quad][t], rs) : accf[quad][t]);
    }
}

#define DEFINE_TILE(name, format)                                                               \
    void neon_base_tile_##name(const neon_weight *w, const uint8_t *panel, const neon_act *act, \
                               const int64_t *rows, int nt, float *out)                         \
    {                                                                                           \
        if (nt == 1)                                                                            \
            tile_body(w, panel, act, rows, out, format, 1);                                     \
        else                                                                                    \
            tile_body(w, panel, act, rows, out, format, 2);                                     \
    }

DEFINE_TILE(q8_0, MOAK_FORMAT_Q8_0)
DEFINE_TILE(q4_0, MOAK_FORMAT_Q4_0)
DEFINE_TILE(i8_row, MOAK_FORMAT_I8_ROW)
DEFINE_TILE(i4_g32, MOAK_FORMAT_I4_G32)
DEFINE_TILE(i4_g128, MOAK_FORMAT_I4_G128)
