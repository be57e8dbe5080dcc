/*
 * Activation quantization for the integer tiles: per block of 32 floats,
 * d = amax / 127 and q = round-to-nearest-even(x * 127 / amax), so |q| <= 127
 * (the tiles' int16 pairing relies on it); ds = d * sum(q) feeds I4's min
 * term.  An all-zero block gets d = 0 and q = 0.  Blocks past cols (up to
 * k_padded) are zeros.
 */
#if !defined(__ARM_NEON)
#error "quantize_neon.c needs Advanced SIMD (NEON_CFLAGS)"
#endif

#include "config.h"

#include <string.h>

#include "neon_kernels.h"
#include "neon_simd.h"

/* One block of 32 floats at x. */
static void quantize_block(const float *x, int8_t *q, float *d, float *ds)
{
    float32x4_t v[8];
    for (int i = 0; i < 8; i++)
        v[i] = vld1q_f32(x + 4 * i);
    float32x4_t amax = vabsq_f32(v[0]);
    for (int i = 1; i < 8; i++)
        amax = vmaxq_f32(amax, vabsq_f32(v[i]));
    const float m = vmaxvq_f32(amax);
    const float inv = m > 0.0f ? 127.0f / m : 0.0f;
    int16x8_t h[4];
    for (int i = 0; i < 4; i++) {
        const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(v[2 * i], inv));
        const int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(v[2 * i + 1], inv));
        h[i] = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
    }
    const int8x16_t q0 = vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1]));
    const int8x16_t q1 = vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3]));
    vst1q_s8(q, q0);
    vst1q_s8(q + 16, q1);
    const int sum = vaddlvq_s8(q0) + vaddlvq_s8(q1);
    *d = m / 127.0f;
    *ds = *d * (float)sum;
}

void neon_quantize_rows(const float *x, int64_t x_stride, int64_t cols, int64_t n_rows,
                        int64_t k_padded, int8_t *q, float *d, float *ds)
{
    const int64_t n_blocks = k_padded / NEON_QBLOCK;
    const int64_t full = cols / NEON_QBLOCK;
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * x_stride;
        int8_t *qr = q + r * k_padded;
        float *dr = d + r * n_blocks, *dsr = ds + r * n_blocks;
        int64_t b = 0;
        for (; b < full; b++)
            quantize_block(xr + b * NEON_QBLOCK, qr + b * NEON_QBLOCK, &dr[b], &dsr[b]);
        if (b * NEON_QBLOCK < cols) {
            float tail[NEON_QBLOCK] = {0};
            memcpy(tail, xr + b * NEON_QBLOCK, (size_t)(cols - b * NEON_QBLOCK) * sizeof(float));
            quantize_block(tail, qr + b * NEON_QBLOCK, &dr[b], &dsr[b]);
            b++;
        }
        if (b < n_blocks) {
            memset(qr + b * NEON_QBLOCK, 0, (size_t)((n_blocks - b) * NEON_QBLOCK));
            for (; b < n_blocks; b++)
                dr[b] = dsr[b] = 0.0f;
        }
    }
}
