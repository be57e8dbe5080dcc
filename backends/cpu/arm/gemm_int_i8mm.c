/*
 * Integer matmul tiles with smmla (armv8.6-a+i8mm), k_group 8.
 *
 * Register tile: the panel's 8 rows (four row pairs) x up to 4 tokens (two
 * token pairs).  Per block of 32 k, chunk c (8 k) of a row pair is one
 * 16-byte vector [2 rows][8 k]; the tokens' rows are zipped into the same
 * shape ([2 tokens][8 k], one `zip1`/`zip2` of 64-bit lanes per two chunks),
 * and `smmla acc.4s, w.16b, x.16b` adds the 2x2 block
 *   [row0.tok0, row0.tok1, row1.tok0, row1.tok1]
 * of 8-deep int8 dot products.  Scales broadcast the same way: the row pair's
 * [s0, s0, s1, s1] times the token pair's [d0, d1, d0, d1].  Registers: 8
 * int32 + 8 f32 accumulators + 8 zipped activation vectors.
 * An odd token count repeats the last token in the spare half and drops its
 * results; a decode token (nt = 1) thus costs the same smmla count as sdot
 * would.  Each token's lanes depend only on that token, so results do not
 * depend on which tokens share the tile.
 */
#if !defined(__ARM_FEATURE_MATMUL_INT8)
#error "gemm_int_i8mm.c needs the i8mm flags (I8MM_CFLAGS)"
#endif

#include "config.h"

#include <stdbool.h>

#include "neon_int_scales.h"
#include "neon_kernels.h"
#include "neon_simd.h"

#define PAIRS_MAX 2
#define ROW_PAIRS (NEON_PANEL_ROWS / 2)

/* Chunk `chunk` (weights w of row pair `pair`) for every token pair. */
#define MMLA(pair, w, chunk)                                                        \
    do {                                                                            \
        _Pragma("GCC unroll 2") for (int p = 0; p < NP; p++)                        \
            acc[pair][p] = vmmlaq_s32(acc[pair][p], (w), x[chunk][p]);              \
    } while (0)

/* [a, a, b, b] from lanes (lane, lane + 1) of v: the row pair's scales. */
NEON_INLINE float32x4_t pair_lanes(float32x4_t v, int upper)
{
    return upper ? vzip2q_f32(v, v) : vzip1q_f32(v, v);
}

/* The row pairs' [s, s, s', s'] of one quad's 4-row scale vector. */
NEON_INLINE void pair_scales(moak_format f, const uint8_t *scales, int64_t b, float32x4_t ws[ROW_PAIRS],
                             float32x4_t wm[ROW_PAIRS])
{
    for (int quad = 0; quad < 2; quad++) {
        float32x4_t s, m = vdupq_n_f32(0.0f);
        neon_block_scales(f, scales, b, quad, &s, &m);
        ws[2 * quad] = pair_lanes(s, 0);
        ws[2 * quad + 1] = pair_lanes(s, 1);
        wm[2 * quad] = pair_lanes(m, 0);
        wm[2 * quad + 1] = pair_lanes(m, 1);
    }
}

/* [v[a], v[b], v[a], v[b]]. */
NEON_INLINE float32x4_t token_pair(const float *va, const float *vb)
{
    float32x2_t two = vld1_dup_f32(va);
    two = vld1_lane_f32(vb, two, 1);
    return vcombine_f32(two, two);
}

NEON_INLINE void tile_body(const neon_weight *w, const uint8_t *panel, const neon_act *act,
                           const int64_t *rows, int nt, float *out, const moak_format F, const int NP)
{
    const bool four_bit = neon_is_four_bit(F);
    const size_t block_bytes = four_bit ? NEON_PANEL_ROWS * 16 : NEON_PANEL_ROWS * 32;
    const uint8_t *scales = panel + w->quant_bytes;
    const int8x16_t high_mask = vdupq_n_s8((int8_t)0xF0);
    /* token rows of each pair; a missing second token repeats the first */
    const int8_t *qa[PAIRS_MAX], *qb_[PAIRS_MAX];
    const float *da[PAIRS_MAX], *db[PAIRS_MAX], *dsa[PAIRS_MAX], *dsb[PAIRS_MAX];
    for (int p = 0; p < NP; p++) {
        const int64_t ra = rows[2 * p], rb = 2 * p + 1 < nt ? rows[2 * p + 1] : ra;
        qa[p] = act->q + ra * act->k_padded;
        qb_[p] = act->q + rb * act->k_padded;
        da[p] = act->d + ra * act->n_blocks;
        db[p] = act->d + rb * act->n_blocks;
        dsa[p] = act->ds + ra * act->n_blocks;
        dsb[p] = act->ds + rb * act->n_blocks;
    }
    float32x4_t accf[ROW_PAIRS][PAIRS_MAX];
    _Pragma("GCC unroll 4") for (int g = 0; g < ROW_PAIRS; g++)
        _Pragma("GCC unroll 2") for (int p = 0; p < NP; p++)
            accf[g][p] = vdupq_n_f32(0.0f);

    for (int64_t b = 0; b < w->n_blocks; b++) {
        const int8_t *wq = (const int8_t *)panel + (size_t)b * block_bytes;
        int8x16_t x[4][PAIRS_MAX];
        int32x4_t acc[ROW_PAIRS][PAIRS_MAX];
        _Pragma("GCC unroll 2") for (int p = 0; p < NP; p++)
        {
            const int64x2_t a0 = vreinterpretq_s64_s8(vld1q_s8(qa[p] + b * NEON_QBLOCK));
            const int64x2_t a1 = vreinterpretq_s64_s8(vld1q_s8(qa[p] + b * NEON_QBLOCK + 16));
            const int64x2_t b0 = vreinterpretq_s64_s8(vld1q_s8(qb_[p] + b * NEON_QBLOCK));
            const int64x2_t b1 = vreinterpretq_s64_s8(vld1q_s8(qb_[p] + b * NEON_QBLOCK + 16));
            x[0][p] = vreinterpretq_s8_s64(vzip1q_s64(a0, b0));
            x[1][p] = vreinterpretq_s8_s64(vzip2q_s64(a0, b0));
            x[2][p] = vreinterpretq_s8_s64(vzip1q_s64(a1, b1));
            x[3][p] = vreinterpretq_s8_s64(vzip2q_s64(a1, b1));
            _Pragma("GCC unroll 4") for (int g = 0; g < ROW_PAIRS; g++)
                acc[g][p] = vdupq_n_s32(0);
        }
        if (!four_bit) {
            _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++)
                _Pragma("GCC unroll 4") for (int g = 0; g < ROW_PAIRS; g++)
                    MMLA(g, vld1q_s8(wq + (c * ROW_PAIRS + g) * 16), c);
        } else {
            /* stored vector c: chunk c in the low nibbles, chunk c + 2 in the high */
            _Pragma("GCC unroll 2") for (int c = 0; c < 2; c++)
                _Pragma("GCC unroll 4") for (int g = 0; g < ROW_PAIRS; g++)
                {
                    const int8x16_t v = vld1q_s8(wq + (c * ROW_PAIRS + g) * 16);
                    MMLA(g, vshlq_n_s8(v, 4), c);
                    MMLA(g, vandq_s8(v, high_mask), c + 2);
                }
        }
        float32x4_t ws[ROW_PAIRS], wm[ROW_PAIRS];
        pair_scales(F, scales, b, ws, wm);
        _Pragma("GCC unroll 2") for (int p = 0; p < NP; p++)
        {
            const float32x4_t dx = token_pair(da[p] + b, db[p] + b);
            const float32x4_t dxs = neon_has_min(F) ? token_pair(dsa[p] + b, dsb[p] + b) : dx;
            _Pragma("GCC unroll 4") for (int g = 0; g < ROW_PAIRS; g++)
            {
                accf[g][p] = vfmaq_f32(accf[g][p], vcvtq_f32_s32(acc[g][p]), vmulq_f32(ws[g], dx));
                if (neon_has_min(F))
                    accf[g][p] = vfmaq_f32(accf[g][p], wm[g], dxs);
            }
        }
    }

    if (F == MOAK_FORMAT_I8_ROW) {
        _Pragma("GCC unroll 2") for (int quad = 0; quad < 2; quad++)
        {
            const float32x4_t rs = neon_row_scales(scales, quad);
            _Pragma("GCC unroll 2") for (int p = 0; p < NP; p++)
            {
                accf[2 * quad][p] = vmulq_f32(accf[2 * quad][p], pair_lanes(rs, 0));
                accf[2 * quad + 1][p] = vmulq_f32(accf[2 * quad + 1][p], pair_lanes(rs, 1));
            }
        }
    }
    /* [r0t0, r0t1, r1t0, r1t1] and [r2t0, r2t1, r3t0, r3t1] -> rows 0..3 of t0, of t1 */
    _Pragma("GCC unroll 2") for (int p = 0; p < NP; p++)
        _Pragma("GCC unroll 2") for (int quad = 0; quad < 2; quad++)
        {
            const float32x4_t a = accf[2 * quad][p], c = accf[2 * quad + 1][p];
            vst1q_f32(out + (2 * p) * NEON_PANEL_ROWS + 4 * quad, vuzp1q_f32(a, c));
            if (2 * p + 1 < nt)
                vst1q_f32(out + (2 * p + 1) * NEON_PANEL_ROWS + 4 * quad, vuzp2q_f32(a, c));
        }
}

#define DEFINE_TILE(name, format)                                                            \
    void neon_i8mm_tile_##name(const neon_weight *w, const uint8_t *panel, const neon_act *act, \
                               const int64_t *rows, int nt, float *out)                       \
    {                                                                                         \
        if (nt <= 2)                                                                          \
            tile_body(w, panel, act, rows, nt, out, format, 1);                               \
        else                                                                                  \
            tile_body(w, panel, act, rows, nt, out, format, 2);                               \
    }

DEFINE_TILE(q8_0, MOAK_FORMAT_Q8_0)
DEFINE_TILE(q4_0, MOAK_FORMAT_Q4_0)
DEFINE_TILE(i8_row, MOAK_FORMAT_I8_ROW)
DEFINE_TILE(i4_g32, MOAK_FORMAT_I4_G32)
DEFINE_TILE(i4_g128, MOAK_FORMAT_I4_G128)
