/*
 * elementwise_avx512.c — MoE routing, RMSNorm and RoPE on zmm registers.
 *
 * The drivers are x86_elementwise_common.h; this file supplies:
 *   - routing scores in double, 8 experts a vector: softmax (e^x by
 *     Cody-Waite reduction, a degree-12 polynomial and vscalefpd, ~2 ulp),
 *     sigmoid, plus the selection bias; the top-k is k passes of a vector
 *     arg-max (first index of the maximum, NaN keys skipped);
 *   - RMSNorm: sum of squares widened to double (16 floats a step), the
 *     scaling in f32;
 *   - RoPE: sin/cos of the token's angles in double, 8 at a time (exact
 *     reduction by pi/2 for angles below 1.5e6, Taylor polynomials to
 *     degree 15/16, error < 1e-16), then the rotation in f32, 16 lanes a
 *     step (GPT-J pairs with vfmaddsubps on lane-duplicated cos/sin).
 * Tails use masked loads and stores: nothing past a row is read or written.
 */
#ifndef __AVX512F__
#error "elementwise_avx512.c must be compiled with the AVX-512 flags (AVX512_CFLAGS)"
#endif

#include <immintrin.h>

#include "x86_elementwise_common.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE __mmask8 lanes8_avx512(int64_t left)
{
    return left >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << left) - 1u);
}

ALWAYS_INLINE __mmask16 lanes16_avx512(int64_t left)
{
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* ---- e^x in double ------------------------------------------------------------------- */

/* e^x = 2^n e^r, n = round(x / ln 2), r = x - n ln 2 in two parts (the
 * first exact for |n| < 2^11), e^r by Taylor to degree 12 (|r| <= 0.347:
 * truncation < 2e-16).  Overflows to inf above 709.8, 0 below -745. */
ALWAYS_INLINE __m512d exp_pd_avx512(__m512d x)
{
    x = _mm512_max_pd(x, _mm512_set1_pd(-746.0));
    x = _mm512_min_pd(x, _mm512_set1_pd(710.0));
    const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(6.93147180369123816490e-01), x);
    r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.90821492927058770002e-10), r);
    static const double inv_factorial[13] = {
        1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
        1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600};
    __m512d p = _mm512_set1_pd(inv_factorial[12]);
#pragma GCC unroll 12
    for (int i = 11; i >= 0; i--)
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(inv_factorial[i]));
    return _mm512_scalef_pd(p, n);
}

/* ---- routing -------------------------------------------------------------------------- */

/* True when a logit is NaN or infinite (the caller then takes the
 * reference's scalar path, whose NaN propagation these vectors skip). */
ALWAYS_INLINE bool any_not_finite_avx512(const float *x, int32_t n)
{
    __mmask16 bad = 0;
    for (int32_t e = 0; e < n; e += 16) {
        const __mmask16 m = lanes16_avx512(n - e);
        const __m512 v = _mm512_abs_ps(_mm512_maskz_loadu_ps(m, x + e));
        bad |= _mm512_mask_cmp_ps_mask(m, v, _mm512_set1_ps(INFINITY), _CMP_NLT_UQ);
    }
    return bad != 0;
}

static bool route_scores_avx512(moak_route_method method, const float *logits, const float *bias,
                                int32_t n, double *score, double *select)
{
    if (any_not_finite_avx512(logits, n))
        return true;
    const __m512d one = _mm512_set1_pd(1.0);
    __mmask8 nan_seen = 0;
    switch (method) {
    case MOAK_ROUTE_SOFTMAX_TOPK: {
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (int32_t e = 0; e < n; e += 16)
            mx = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), lanes16_avx512(n - e),
                                                    logits + e),
                               mx);
        const __m512d max = _mm512_set1_pd((double)_mm512_reduce_max_ps(mx));
        __m512d sum = _mm512_setzero_pd();
        for (int32_t e = 0; e < n; e += 8) {
            const __mmask8 m = lanes8_avx512(n - e);
            const __m512d x = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, logits + e));
            const __m512d p = _mm512_maskz_mov_pd(m, exp_pd_avx512(_mm512_sub_pd(x, max)));
            _mm512_mask_storeu_pd(score + e, m, p);
            sum = _mm512_add_pd(sum, p);
        }
        const __m512d total = _mm512_set1_pd(_mm512_reduce_add_pd(sum));
        for (int32_t e = 0; e < n; e += 8) {
            const __mmask8 m = lanes8_avx512(n - e);
            const __m512d p = _mm512_div_pd(_mm512_maskz_loadu_pd(m, score + e), total);
            _mm512_mask_storeu_pd(score + e, m, p);
            _mm512_mask_storeu_pd(select + e, m, p);
        }
        break;
    }
    case MOAK_ROUTE_TOPK_SOFTMAX:
        for (int32_t e = 0; e < n; e += 8) {
            const __mmask8 m = lanes8_avx512(n - e);
            const __m512d x = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, logits + e));
            _mm512_mask_storeu_pd(score + e, m, x);
            _mm512_mask_storeu_pd(select + e, m, x);
        }
        break;
    case MOAK_ROUTE_SIGMOID_TOPK:
        for (int32_t e = 0; e < n; e += 8) {
            const __mmask8 m = lanes8_avx512(n - e);
            const __m512d x = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, logits + e));
            const __m512d s = _mm512_div_pd(
                one, _mm512_add_pd(one, exp_pd_avx512(_mm512_sub_pd(_mm512_setzero_pd(), x))));
            const __m512d b = bias ? _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, bias + e))
                                   : _mm512_setzero_pd();
            const __m512d sel = _mm512_add_pd(s, b);
            _mm512_mask_storeu_pd(score + e, m, s);
            _mm512_mask_storeu_pd(select + e, m, sel);
            nan_seen |= _mm512_mask_cmp_pd_mask(m, sel, sel, _CMP_UNORD_Q); /* a NaN bias */
        }
        break;
    case MOAK_ROUTE_SQRT_SOFTPLUS_TOPK: /* the driver takes the core's scores */
        break;
    }
    return nan_seen != 0;
}

static int32_t arg_max_avx512(const double *key, int32_t n)
{
    /* vmaxpd returns its second operand when the first is NaN: NaN keys drop out */
    __m512d best = _mm512_set1_pd(-INFINITY);
    for (int32_t e = 0; e < n; e += 8)
        best = _mm512_max_pd(_mm512_mask_loadu_pd(_mm512_set1_pd(NAN), lanes8_avx512(n - e), key + e),
                             best);
    const __m512d max = _mm512_set1_pd(_mm512_reduce_max_pd(best));
    for (int32_t e = 0; e < n; e += 8) {
        const __mmask8 hit = _mm512_mask_cmp_pd_mask(lanes8_avx512(n - e),
                                                     _mm512_maskz_loadu_pd(lanes8_avx512(n - e), key + e),
                                                     max, _CMP_EQ_OQ);
        if (hit)
            return e + __builtin_ctz(hit);
    }
    return -1;
}

/* ---- RMSNorm -------------------------------------------------------------------------- */

ALWAYS_INLINE void square_add_avx512(__m512 v, __m512d *acc_lo, __m512d *acc_hi)
{
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    *acc_lo = _mm512_fmadd_pd(lo, lo, *acc_lo);
    *acc_hi = _mm512_fmadd_pd(hi, hi, *acc_hi);
}

/* Four double accumulators (32 floats a step) keep the FMA latency off the
 * critical path. */
static double sum_squares_avx512(const float *x, int64_t n)
{
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    __m512d a2 = _mm512_setzero_pd(), a3 = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        square_add_avx512(_mm512_loadu_ps(x + i), &a0, &a1);
        square_add_avx512(_mm512_loadu_ps(x + i + 16), &a2, &a3);
    }
    for (; i < n; i += 16)
        square_add_avx512(_mm512_maskz_loadu_ps(lanes16_avx512(n - i), x + i), &a0, &a1);
    return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
}

/* y = x * inv_rms * gamma in f32 (a few ulp from the reference's double
 * product, far inside MOAK_BOUND_RMSNORM), 16 lanes a step. */
static void scale_row_avx512(const float *x, const float *gamma, int64_t n, double inv_rms,
                             float *y)
{
    const __m512 inv = _mm512_set1_ps((float)inv_rms);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = lanes16_avx512(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv);
        if (gamma)
            v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, gamma + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

/* ---- RoPE ------------------------------------------------------------------------------- */

/* sin and cos of 8 angles (|x| < 2^20 pi/2). */
ALWAYS_INLINE void sincos_pd_avx512(__m512d x, __m512d *sin_out, __m512d *cos_out)
{
    const __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(0.63661977236758134308)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(X86_PIO2_1), x);
    r = _mm512_fnmadd_pd(k, _mm512_set1_pd(X86_PIO2_2), r);
    r = _mm512_fnmadd_pd(k, _mm512_set1_pd(X86_PIO2_3), r);
    const __m512d z = _mm512_mul_pd(r, r);
    /* sin r = r (1 - z/3! + z^2/5! - ... - z^7/15!) */
    __m512d s = _mm512_set1_pd(-1.0 / 1307674368000.0);
    s = _mm512_fmadd_pd(s, z, _mm512_set1_pd(1.0 / 6227020800.0));
    s = _mm512_fmadd_pd(s, z, _mm512_set1_pd(-1.0 / 39916800.0));
    s = _mm512_fmadd_pd(s, z, _mm512_set1_pd(1.0 / 362880.0));
    s = _mm512_fmadd_pd(s, z, _mm512_set1_pd(-1.0 / 5040.0));
    s = _mm512_fmadd_pd(s, z, _mm512_set1_pd(1.0 / 120.0));
    s = _mm512_fmadd_pd(s, z, _mm512_set1_pd(-1.0 / 6.0));
    s = _mm512_fmadd_pd(_mm512_mul_pd(s, z), r, r);
    /* cos r = 1 - z/2! + z^2/4! - ... + z^8/16! */
    __m512d c = _mm512_set1_pd(1.0 / 20922789888000.0);
    c = _mm512_fmadd_pd(c, z, _mm512_set1_pd(-1.0 / 87178291200.0));
    c = _mm512_fmadd_pd(c, z, _mm512_set1_pd(1.0 / 479001600.0));
    c = _mm512_fmadd_pd(c, z, _mm512_set1_pd(-1.0 / 3628800.0));
    c = _mm512_fmadd_pd(c, z, _mm512_set1_pd(1.0 / 40320.0));
    c = _mm512_fmadd_pd(c, z, _mm512_set1_pd(-1.0 / 720.0));
    c = _mm512_fmadd_pd(c, z, _mm512_set1_pd(1.0 / 24.0));
    c = _mm512_fmadd_pd(c, z, _mm512_set1_pd(-0.5));
    c = _mm512_fmadd_pd(c, z, _mm512_set1_pd(1.0));
    /* quadrant q = k mod 4: odd q swaps sin and cos; sin < 0 for q = 2, 3;
     * cos < 0 for q = 1, 2 */
    const __m256i q = _mm512_cvtpd_epi32(k);
    const __mmask8 odd = _mm256_test_epi32_mask(q, _mm256_set1_epi32(1));
    const __mmask8 sin_neg = _mm256_test_epi32_mask(q, _mm256_set1_epi32(2));
    const __mmask8 cos_neg = _mm256_test_epi32_mask(_mm256_add_epi32(q, _mm256_set1_epi32(1)),
                                                    _mm256_set1_epi32(2));
    __m512d sv = _mm512_mask_blend_pd(odd, s, c);
    __m512d cv = _mm512_mask_blend_pd(odd, c, s);
    sv = _mm512_mask_sub_pd(sv, sin_neg, _mm512_setzero_pd(), sv);
    cv = _mm512_mask_sub_pd(cv, cos_neg, _mm512_setzero_pd(), cv);
    *sin_out = sv;
    *cos_out = cv;
}

static void rope_angles_avx512(double pos, const double *inv_freq, int32_t half, float *cos_out,
                               float *sin_out)
{
    const __m512d p = _mm512_set1_pd(pos);
    for (int32_t i = 0; i < half; i += 8) {
        const __mmask8 m = lanes8_avx512(half - i);
        const __m512d angle = _mm512_mul_pd(p, _mm512_maskz_loadu_pd(m, inv_freq + i));
        const double biggest = _mm512_reduce_max_pd(_mm512_abs_pd(angle));
        if (biggest < X86_ROPE_VECTOR_ANGLE_MAX) {
            __m512d s, c;
            sincos_pd_avx512(angle, &s, &c);
            _mm256_mask_storeu_ps(cos_out + i, m, _mm512_cvtpd_ps(c));
            _mm256_mask_storeu_ps(sin_out + i, m, _mm512_cvtpd_ps(s));
        } else {
            for (int32_t j = i; j < half && j < i + 8; j++) {
                const double a = pos * inv_freq[j];
                cos_out[j] = (float)cos(a);
                sin_out[j] = (float)sin(a);
            }
        }
    }
}

static void rope_rotate_avx512(moak_rope_layout layout, const float *x, const float *cos_t,
                               const float *sin_t, int32_t half, float *y)
{
    if (layout == MOAK_ROPE_NEOX) {
        for (int32_t i = 0; i < half; i += 16) {
            const __mmask16 m = lanes16_avx512(half - i);
            const __m512 x0 = _mm512_maskz_loadu_ps(m, x + i);
            const __m512 x1 = _mm512_maskz_loadu_ps(m, x + half + i);
            const __m512 c = _mm512_maskz_loadu_ps(m, cos_t + i);
            const __m512 s = _mm512_maskz_loadu_ps(m, sin_t + i);
            /* both halves are read before either is stored (y may be x) */
            const __m512 y0 = _mm512_fmsub_ps(x0, c, _mm512_mul_ps(x1, s));
            const __m512 y1 = _mm512_fmadd_ps(x0, s, _mm512_mul_ps(x1, c));
            _mm512_mask_storeu_ps(y + i, m, y0);
            _mm512_mask_storeu_ps(y + half + i, m, y1);
        }
        return;
    }
    /* GPT-J: lanes (2i, 2i+1) hold a pair; duplicate cos/sin per pair and
     * y = x cos -+ swap(x) sin, the sign alternating (vfmaddsubps) */
    const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    for (int32_t d = 0; d < 2 * half; d += 16) {
        const __mmask16 m = lanes16_avx512(2 * half - d);
        const __mmask8 mh = lanes8_avx512((2 * half - d + 1) / 2);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + d);
        const __m512 c = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(
                                                        _mm256_maskz_loadu_ps(mh, cos_t + d / 2)));
        const __m512 s = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(
                                                        _mm256_maskz_loadu_ps(mh, sin_t + d / 2)));
        const __m512 swapped = _mm512_permute_ps(v, 0xB1);
        _mm512_mask_storeu_ps(y + d, m, _mm512_fmaddsub_ps(v, c, _mm512_mul_ps(swapped, s)));
    }
}

static const x86_elementwise_kernels elementwise_kernels_avx512 = {
    .name = "avx512",
    .route_scores = route_scores_avx512,
    .arg_max = arg_max_avx512,
    .sum_squares = sum_squares_avx512,
    .scale_row = scale_row_avx512,
    .rope_angles = rope_angles_avx512,
    .rope_rotate = rope_rotate_avx512,
};

moak_status moak_x86_avx512_moe_route(void *state, const moak_route_args *args)
{
    return x86_route_run(state, args, &elementwise_kernels_avx512);
}

moak_status moak_x86_avx512_rmsnorm(void *state, const moak_rmsnorm_args *args)
{
    return x86_rmsnorm_run(state, args, &elementwise_kernels_avx512);
}

moak_status moak_x86_avx512_rope(void *state, const moak_rope_args *args)
{
    return x86_rope_run(state, args, &elementwise_kernels_avx512);
}
