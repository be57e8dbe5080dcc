/*
 * neon_simd.h — small Advanced SIMD helpers shared by the neon kernel files
 * (included only by files compiled with NEON, dotprod or i8mm flags).
 */
#ifndef MOAK_NEON_SIMD_H
#define MOAK_NEON_SIMD_H

#include <arm_neon.h>
#include <stdint.h>

#if !defined(__ARM_NEON)
#error "neon_simd.h needs Advanced SIMD (NEON_CFLAGS)"
#endif

#define NEON_INLINE static inline __attribute__((always_inline))

/* Four binary16 values at p (any alignment) as f32. */
NEON_INLINE float32x4_t neon_load_f16x4(const void *p)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)p)));
}

/* 2^x for x in f32, about 1 ulp for x in [-126, 127]; 0 for x < -126.5,
 * 2^127 times the fraction's value above 127 (never Inf), NaN stays NaN.
 * x = n + f with n = round(x), |f| <= 1/2; 2^f by its degree-7 Taylor
 * polynomial in f ln 2 (truncation below 6e-9), 2^n built in the exponent
 * field (n = -127 gives the bit pattern of +0). */
NEON_INLINE float32x4_t neon_exp2(float32x4_t x)
{
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-127.0f)), vdupq_n_f32(127.0f));
    const float32x4_t n = vrndnq_f32(x);
    const float32x4_t f = vsubq_f32(x, n);
    float32x4_t p = vdupq_n_f32(1.5252733804059840e-5f);           /* ln2^7 / 7! */
    p = vfmaq_f32(vdupq_n_f32(1.5403530393381609e-4f), p, f);      /* ln2^6 / 6! */
    p = vfmaq_f32(vdupq_n_f32(1.3333558146428443e-3f), p, f);      /* ln2^5 / 5! */
    p = vfmaq_f32(vdupq_n_f32(9.6181291076284772e-3f), p, f);      /* ln2^4 / 4! */
    p = vfmaq_f32(vdupq_n_f32(5.5504108664821580e-2f), p, f);      /* ln2^3 / 3! */
    p = vfmaq_f32(vdupq_n_f32(2.4022650695910071e-1f), p, f);      /* ln2^2 / 2! */
    p = vfmaq_f32(vdupq_n_f32(6.9314718055994531e-1f), p, f);      /* ln2 */
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, f);
    const int32x4_t bits = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(bits));
}

/* e^x = 2^(x log2 e); the rounding of the product costs |x| * 2^-24
 * relative, e.g. 1e-6 at |x| = 20. */
NEON_INLINE float32x4_t neon_exp(float32x4_t x)
{
    return neon_exp2(vmulq_n_f32(x, 1.4426950408889634f));
}

/* 1 / (1 + e^-x), by an IEEE division (no reciprocal estimate). */
NEON_INLINE float32x4_t neon_sigmoid(float32x4_t x)
{
    const float32x4_t one = vdupq_n_f32(1.0f);
    return vdivq_f32(one, vaddq_f32(one, neon_exp(vnegq_f32(x))));
}

#endif
