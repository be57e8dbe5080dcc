/*
 * The MoE gated activations of moak.h, h = act(g, u), four at a time:
 *   SILU_GLU     g * sigmoid(g) * u
 *   SWIGLU_OAI   g' = min(g, limit), u' = clamp(u, -limit, limit),
 *                (u' + 1) * g' * sigmoid(alpha * g')
 *   GELU_GLU     0.5 g (1 + erf(g / sqrt 2)) * u, with libm's erff per
 *                element (exact form; a handful of values per output row)
 * sigmoid uses neon_exp (about 1e-6 relative at |g| = 20), far inside the
 * MoE bounds.
 */
#if !defined(__ARM_NEON)
#error "moe_glu_neon.c needs Advanced SIMD (NEON_CFLAGS)"
#endif

#include "config.h"

#include <math.h>

#include "neon_kernels.h"
#include "neon_simd.h"

static float32x4_t glu4(moak_activation act, float alpha, float limit, float32x4_t g, float32x4_t u)
{
    switch (act) {
    case MOAK_ACT_SWIGLU_OAI: {
        g = vminq_f32(g, vdupq_n_f32(limit));
        u = vmaxq_f32(vminq_f32(u, vdupq_n_f32(limit)), vdupq_n_f32(-limit));
        const float32x4_t s = neon_sigmoid(vmulq_n_f32(g, alpha));
        return vmulq_f32(vmulq_f32(vaddq_f32(u, vdupq_n_f32(1.0f)), g), s);
    }
    case MOAK_ACT_GELU_GLU: {
        float gv[4], e[4];
        vst1q_f32(gv, g);
        for (int i = 0; i < 4; i++)
            e[i] = erff(gv[i] * 0.70710678118654752f);
        const float32x4_t half_g = vmulq_n_f32(g, 0.5f);
        return vmulq_f32(vmulq_f32(half_g, vaddq_f32(vld1q_f32(e), vdupq_n_f32(1.0f))), u);
    }
    default: /* MOAK_ACT_SILU_GLU */
        return vmulq_f32(vmulq_f32(g, neon_sigmoid(g)), u);
    }
}

void neon_glu(moak_activation act, float alpha, float limit, const float *g, const float *u,
              int64_t n, float *h)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(h + i, glu4(act, alpha, limit, vld1q_f32(g + i), vld1q_f32(u + i)));
    if (i < n) {
        float gt[4] = {0}, ut[4] = {0}, ht[4];
        for (int64_t j = i; j < n; j++) {
            gt[j - i] = g[j];
            ut[j - i] = u[j];
        }
        vst1q_f32(ht, glu4(act, alpha, limit, vld1q_f32(gt), vld1q_f32(ut)));
        for (int64_t j = i; j < n; j++)
            h[j] = ht[j - i];
    }
}
