/*
 * neon_simd.h — small Advanced SIMD helpers shared by the neon kernel files
 * (included only by files compiled with NEON, dotprod or i8mm flags).
 */
#ifndef MOAK_NEON_SIMD_H
#define MOAK_NEON_SIMD_H

#include <arm_neon.h>
#include <math.h>
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

/* ---- the vector vocabulary of the CPU kernel bodies (backends/cpu/*_body.h),
 * mapped to Advanced SIMD: 4 f32/int32 lanes.  The x86 mappings are
 * x86/x86_simd_avx2.h and x86/x86_simd_avx512.h; a body uses nothing else. */

#define SIMD_LANES 4

typedef int32x4_t simd_i;
typedef float32x4_t simd_f;

NEON_INLINE simd_f simd_f_zero(void) { return vdupq_n_f32(0.0f); }
NEON_INLINE simd_f simd_f_set1(float v) { return vdupq_n_f32(v); }
NEON_INLINE simd_f simd_f_load(const float *p) { return vld1q_f32(p); }
NEON_INLINE void simd_f_store(float *p, simd_f v) { vst1q_f32(p, v); }
NEON_INLINE simd_f simd_f_load_w(const void *p) { return vld1q_f32((const float *)p); }
NEON_INLINE simd_f simd_f_load_f16(const void *p) { return neon_load_f16x4(p); }
NEON_INLINE simd_f simd_f_load_bf16(const void *p)
{
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)p), 16));
}
NEON_INLINE simd_f simd_f_fma(simd_f a, simd_f b, simd_f c) { return vfmaq_f32(c, a, b); }
NEON_INLINE simd_f simd_f_mul(simd_f a, simd_f b) { return vmulq_f32(a, b); }
NEON_INLINE simd_f simd_f_add(simd_f a, simd_f b) { return vaddq_f32(a, b); }
NEON_INLINE simd_f simd_f_sub(simd_f a, simd_f b) { return vsubq_f32(a, b); }
NEON_INLINE simd_f simd_f_div(simd_f a, simd_f b) { return vdivq_f32(a, b); }
NEON_INLINE simd_f simd_f_min(simd_f a, simd_f b) { return vminq_f32(a, b); }
NEON_INLINE simd_f simd_f_max(simd_f a, simd_f b) { return vmaxq_f32(a, b); }
NEON_INLINE simd_f simd_f_round(simd_f a) { return vrndnq_f32(a); }
/* 2^n for integral n in [-126, 127]. */
NEON_INLINE simd_f simd_f_exp2_int(simd_f n)
{
    return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23));
}
NEON_INLINE simd_f simd_f_abs(simd_f a) { return vabsq_f32(a); }
/* |mag| with the sign of sign. */
NEON_INLINE simd_f simd_f_copysign(simd_f mag, simd_f sign)
{
    return vbslq_f32(vdupq_n_u32(0x80000000u), sign, mag);
}
NEON_INLINE void simd_f_store4(float *p, simd_f v, int part)
{
    (void)part; /* one part of four lanes */
    vst1q_f32(p, v);
}
/* The first n (< 4) elements, zeros after; nothing past them is read. */
NEON_INLINE simd_f simd_f_load_part(const float *p, int n)
{
    float buf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int i = 0; i < n; i++)
        buf[i] = p[i];
    return vld1q_f32(buf);
}
NEON_INLINE simd_f simd_f_load_f16_part(const void *p, int n)
{
    uint16_t buf[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; i++)
        buf[i] = ((const uint16_t *)p)[i];
    return neon_load_f16x4(buf);
}
NEON_INLINE simd_f simd_f_load_bf16_part(const void *p, int n)
{
    uint16_t buf[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; i++)
        buf[i] = ((const uint16_t *)p)[i];
    return simd_f_load_bf16(buf);
}
/* 4 signed bytes widened to f32. */
NEON_INLINE simd_f simd_f_load_i8(const int8_t *p)
{
    const int8x8_t b = vreinterpret_s8_s32(vld1_dup_s32((const int32_t *)(const void *)p));
    return vcvtq_f32_s32(vmovl_s16(vget_low_s16(vmovl_s8(b))));
}
/* The binary16 value h in every lane. */
NEON_INLINE simd_f simd_f_set1_f16(uint16_t h)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h)));
}
/* p * 2^n for integral n in [-126, 127]. */
NEON_INLINE simd_f simd_f_scale_exp2(simd_f p, simd_f n) { return vmulq_f32(p, simd_f_exp2_int(n)); }
/* v where x >= bound, else 0. */
NEON_INLINE simd_f simd_f_keep_ge(simd_f v, simd_f x, float bound)
{
    return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), vcgeq_f32(x, vdupq_n_f32(bound))));
}
/* if_less where a < b, else otherwise. */
NEON_INLINE simd_f simd_f_blend_lt(simd_f a, simd_f b, simd_f if_less, simd_f otherwise)
{
    return vbslq_f32(vcltq_f32(a, b), if_less, otherwise);
}
/* 0 where v is -inf, else v. */
NEON_INLINE simd_f simd_f_neg_inf_to_zero(simd_f v)
{
    return vbslq_f32(vceqq_f32(v, vdupq_n_f32(-INFINITY)), vdupq_n_f32(0.0f), v);
}
NEON_INLINE simd_i simd_i_load(const void *p) { return vld1q_s32((const int32_t *)p); }
NEON_INLINE simd_i simd_i_set1(int32_t v) { return vdupq_n_s32(v); }
/* x where lo <= j < hi (int32 lanes), else fill. */
NEON_INLINE simd_f simd_f_keep_in_range(simd_f x, simd_i lo, simd_i hi, simd_i j, simd_f fill)
{
    return vbslq_f32(vandq_u32(vcleq_s32(lo, j), vcltq_s32(j, hi)), x, fill);
}
/* Lane i: the sum of a[i]'s 4 lanes. */
NEON_INLINE simd_f simd_f_hsum_lanes(const simd_f *a)
{
    return vpaddq_f32(vpaddq_f32(a[0], a[1]), vpaddq_f32(a[2], a[3]));
}
/* Lane i gets lane i ^ dist (dist 1 or 2). */
NEON_INLINE simd_f simd_f_swap_lanes(simd_f v, int dist)
{
    return dist == 2 ? vextq_f32(v, v, 2) : vrev64q_f32(v);
}
/* 32 registers: the compiler keeps q vectors in them unaided. */
#define SIMD_F_IN_REGISTER(v) ((void)0)

#endif
