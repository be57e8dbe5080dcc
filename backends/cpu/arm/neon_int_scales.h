/*
 * neon_int_scales.h — how the integer tiles turn one block's int32 dot
 * products into f32, per weight format (layout in neon_kernels.h).  Shared
 * by the neon, dotprod and i8mm tile files; each instantiates its tile body
 * once per format, so the switches below fold away.
 *
 * For a block b, four rows of a panel and a token with activation scale dx
 * and dxs = dx * sum(x_q):
 *   acc += dot * (ws * dx) [+ wm * dxs]
 * where
 *   Q8_0      ws = d                       (no wm)
 *   Q4_0      ws = d / 16                  (the pre-shifted nibbles)
 *   I8_ROW    ws = 1, the row scale multiplies the total at the end
 *   I4_G*     ws = scale / 16, wm = min + 8 * scale
 */
#ifndef MOAK_NEON_INT_SCALES_H
#define MOAK_NEON_INT_SCALES_H

#include "neon_kernels.h"
#include "neon_simd.h"

NEON_INLINE bool neon_is_four_bit(moak_format f)
{
    return f == MOAK_FORMAT_Q4_0 || f == MOAK_FORMAT_I4_G32 || f == MOAK_FORMAT_I4_G128;
}

NEON_INLINE bool neon_has_min(moak_format f)
{
    return f == MOAK_FORMAT_I4_G32 || f == MOAK_FORMAT_I4_G128;
}

/* ws and wm of rows 4*quad .. 4*quad+3 of the panel for block b. */
NEON_INLINE void neon_block_scales(moak_format f, const uint8_t *scales, int64_t b, int quad,
                                   float32x4_t *ws, float32x4_t *wm)
{
    switch (f) {
    case MOAK_FORMAT_Q8_0:
        *ws = neon_load_f16x4(scales + ((size_t)b * NEON_PANEL_ROWS + 4 * (size_t)quad) * 2);
        break;
    case MOAK_FORMAT_Q4_0:
        *ws = vmulq_n_f32(neon_load_f16x4(scales + ((size_t)b * NEON_PANEL_ROWS + 4 * (size_t)quad) * 2),
                          1.0f / 16.0f);
        break;
    case MOAK_FORMAT_I4_G32:
    case MOAK_FORMAT_I4_G128: {
        const int64_t group = f == MOAK_FORMAT_I4_G128 ? b / 4 : b;
        const uint8_t *s = scales + (size_t)group * 2 * NEON_PANEL_ROWS * 2;
        const float32x4_t scale = neon_load_f16x4(s + 4 * (size_t)quad * 2);
        const float32x4_t min = neon_load_f16x4(s + (NEON_PANEL_ROWS + 4 * (size_t)quad) * 2);
        *ws = vmulq_n_f32(scale, 1.0f / 16.0f);
        *wm = vfmaq_n_f32(min, scale, 8.0f);
        break;
    }
    default: /* I8_ROW */
        *ws = vdupq_n_f32(1.0f);
        break;
    }
}

/* I8_ROW's row scales of rows 4*quad .. 4*quad+3. */
NEON_INLINE float32x4_t neon_row_scales(const uint8_t *scales, int quad)
{
    return vld1q_f32((const float *)(const void *)(scales + 16 * (size_t)quad));
}

#endif
