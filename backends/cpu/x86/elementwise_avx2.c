/*
 * elementwise_avx2.c — MoE routing, RMSNorm and RoPE on ymm registers
 * (AVX2 + FMA).
 *
 * The drivers are x86_elementwise_common.h; this file supplies:
 *   - routing scores in double, 4 experts a vector: softmax (e^x by
 *     Cody-Waite reduction, a degree-12 polynomial and 2^n built in two
 *     exponent-field factors so denormal results stay right), sigmoid, plus
 *     the selection bias; the top-k is k passes of a vector arg-max (first
 *     index of the maximum, NaN keys skipped);
 *   - RMSNorm: sum of squares widened to double, the scaling in f32;
 *   - RoPE: sin/cos of the token's angles in double, 4 at a time (exact
 *     reduction by pi/2 below 1.5e6, Taylor polynomials to degree 15/16),
 *     then the rotation in f32, 8 lanes a step.
 * Tails use masked loads/stores or scalar code: nothing past a row is read
 * or written.
 */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "elementwise_avx2.c must be compiled with the AVX2 flags (AVX2_CFLAGS)"
#endif

#include <immintrin.h>

#include "x86_elementwise_common.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Lane mask (all bits set) of the first `left` of 8 float lanes. */
ALWAYS_INLINE __m256i lanes8_avx2(int64_t left)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(left >= 8 ? 8 : (int)left), lane);
}

/* ---- e^x in double ------------------------------------------------------------------- */

/* 2^n for integral n in [-2044, 2046] as the product of two normal powers. */
ALWAYS_INLINE __m256d pow2_pd_avx2(__m256d n, __m256d p)
{
    const __m128i ni = _mm256_cvtpd_epi32(n);
    const __m128i n1 = _mm_srai_epi32(ni, 1);
    const __m128i n2 = _mm_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi64x(1023);
    const __m256d f1 = _mm256_castsi256_pd(
        _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(n1), bias), 52));
    const __m256d f2 = _mm256_castsi256_pd(
        _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(n2), bias), 52));
    return _mm256_mul_pd(_mm256_mul_pd(p, f1), f2);
}

/* e^x = 2^n e^r, n = round(x / ln 2), r = x - n ln 2 in two parts, e^r by
 * Taylor to degree 12 (truncation < 2e-16).  inf above 709.8, 0 below -746. */
ALWAYS_INLINE __m256d exp_pd_avx2(__m256d x)
{
    const __m256d big = _mm256_cmp_pd(x, _mm256_set1_pd(709.78), _CMP_GT_OQ);
    x = _mm256_max_pd(x, _mm256_set1_pd(-746.0));
    x = _mm256_min_pd(x, _mm256_set1_pd(709.78));
    const __m256d n = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(1.4426950408889634)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93147180369123816490e-01), x);
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.90821492927058770002e-10), r);
    static const double inv_factorial[13] = {
        1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
        1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600};
    __m256d p = _mm256_set1_pd(inv_factorial[12]);
#pragma GCC unroll 12
    for (int i = 11; i >= 0; i--)
        p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(inv_factorial[i]));
    return _mm256_blendv_pd(pow2_pd_avx2(n, p), _mm256_set1_pd(INFINITY), big);
}

/* ---- routing -------------------------------------------------------------------------- */

static bool route_scores_avx2(moak_route_method method, const float *logits, const float *bias,
                              int32_t n, double *score, double *select)
{
    /* a NaN or infinite logit: the reference's scalar path (NaN propagation) */
    for (int32_t e = 0; e < n; e++)
        if (!isfinite(logits[e]))
            return true;
    const int32_t n4 = n & ~3;
    const __m256d one = _mm256_set1_pd(1.0);
    bool nan_seen = false;
    switch (method) {
    case MOAK_ROUTE_SOFTMAX_TOPK: {
        float mxf = -INFINITY;
        for (int32_t e = 0; e < n; e++)
            mxf = logits[e] > mxf ? logits[e] : mxf;
        const double mx = (double)mxf;
        const __m256d max = _mm256_set1_pd(mx);
        __m256d sum4 = _mm256_setzero_pd();
        for (int32_t e = 0; e < n4; e += 4) {
            const __m256d x = _mm256_cvtps_pd(_mm_loadu_ps(logits + e));
            const __m256d p = exp_pd_avx2(_mm256_sub_pd(x, max));
            _mm256_storeu_pd(score + e, p);
            sum4 = _mm256_add_pd(sum4, p);
        }
        double lanes[4];
        _mm256_storeu_pd(lanes, sum4);
        double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        for (int32_t e = n4; e < n; e++) {
            score[e] = exp((double)logits[e] - mx);
            sum += score[e];
        }
        const __m256d total = _mm256_set1_pd(sum);
        for (int32_t e = 0; e < n4; e += 4) {
            const __m256d p = _mm256_div_pd(_mm256_loadu_pd(score + e), total);
            _mm256_storeu_pd(score + e, p);
            _mm256_storeu_pd(select + e, p);
        }
        for (int32_t e = n4; e < n; e++)
            select[e] = score[e] /= sum;
        break;
    }
    case MOAK_ROUTE_TOPK_SOFTMAX:
        for (int32_t e = 0; e < n; e++)
            score[e] = select[e] = logits[e];
        break;
    case MOAK_ROUTE_SIGMOID_TOPK:
        for (int32_t e = 0; e < n4; e += 4) {
            const __m256d x = _mm256_cvtps_pd(_mm_loadu_ps(logits + e));
            const __m256d s = _mm256_div_pd(
                one, _mm256_add_pd(one, exp_pd_avx2(_mm256_sub_pd(_mm256_setzero_pd(), x))));
            const __m256d b = bias ? _mm256_cvtps_pd(_mm_loadu_ps(bias + e)) : _mm256_setzero_pd();
            const __m256d sel = _mm256_add_pd(s, b);
            _mm256_storeu_pd(score + e, s);
            _mm256_storeu_pd(select + e, sel);
            nan_seen |= _mm256_movemask_pd(_mm256_cmp_pd(sel, sel, _CMP_UNORD_Q)) != 0;
        }
        for (int32_t e = n4; e < n; e++) {
            score[e] = 1.0 / (1.0 + exp(-(double)logits[e]));
            select[e] = score[e] + (bias ? (double)bias[e] : 0.0);
            nan_seen |= isnan(select[e]);
        }
        break;
    case MOAK_ROUTE_SQRT_SOFTPLUS_TOPK: /* the driver takes the core's scores */
        break;
    }
    return nan_seen;
}

static int32_t arg_max_avx2(const double *key, int32_t n)
{
    const int32_t n4 = n & ~3;
    /* vmaxpd returns its second operand when the first is NaN: NaN keys drop out */
    __m256d best4 = _mm256_set1_pd(-INFINITY);
    for (int32_t e = 0; e < n4; e += 4)
        best4 = _mm256_max_pd(_mm256_loadu_pd(key + e), best4);
    double lanes[4];
    _mm256_storeu_pd(lanes, best4);
    double best = -INFINITY;
    for (int i = 0; i < 4; i++)
        best = lanes[i] > best ? lanes[i] : best;
    for (int32_t e = n4; e < n; e++)
        best = key[e] > best ? key[e] : best;
    const __m256d max = _mm256_set1_pd(best);
    for (int32_t e = 0; e < n4; e += 4) {
        const int hit = _mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(key + e), max, _CMP_EQ_OQ));
        if (hit)
            return e + __builtin_ctz((unsigned)hit);
    }
    for (int32_t e = n4; e < n; e++)
        if (key[e] == best)
            return e;
    return -1;
}

/* ---- RMSNorm -------------------------------------------------------------------------- */

/* Four double accumulators (two steps of 8 floats in flight) keep the FMA
 * latency off the critical path. */
static double sum_squares_avx2(const float *x, int64_t n)
{
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    __m256d acc2 = _mm256_setzero_pd(), acc3 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256d a = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
        const __m256d b = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
        const __m256d c = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 8));
        const __m256d d = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 12));
        acc0 = _mm256_fmadd_pd(a, a, acc0);
        acc1 = _mm256_fmadd_pd(b, b, acc1);
        acc2 = _mm256_fmadd_pd(c, c, acc2);
        acc3 = _mm256_fmadd_pd(d, d, acc3);
    }
    for (; i + 4 <= n; i += 4) {
        const __m256d a = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
        acc0 = _mm256_fmadd_pd(a, a, acc0);
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(_mm256_add_pd(acc0, acc1), _mm256_add_pd(acc2, acc3)));
    double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (; i < n; i++)
        sum += (double)x[i] * (double)x[i];
    return sum;
}

/* y = x * inv_rms * gamma in f32 (a few ulp from the reference's double
 * product, far inside MOAK_BOUND_RMSNORM), 8 lanes a step. */
static void scale_row_avx2(const float *x, const float *gamma, int64_t n, double inv_rms, float *y)
{
    const __m256 inv = _mm256_set1_ps((float)inv_rms);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i m = lanes8_avx2(n - i);
        __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x + i, m), inv);
        if (gamma)
            v = _mm256_mul_ps(v, _mm256_maskload_ps(gamma + i, m));
        _mm256_maskstore_ps(y + i, m, v);
    }
}

/* ---- RoPE ------------------------------------------------------------------------------- */

/* sin and cos of 4 angles (|x| < 2^20 pi/2). */
ALWAYS_INLINE void sincos_pd_avx2(__m256d x, __m256d *sin_out, __m256d *cos_out)
{
    const __m256d k = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(0.63661977236758134308)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(k, _mm256_set1_pd(X86_PIO2_1), x);
    r = _mm256_fnmadd_pd(k, _mm256_set1_pd(X86_PIO2_2), r);
    r = _mm256_fnmadd_pd(k, _mm256_set1_pd(X86_PIO2_3), r);
    const __m256d z = _mm256_mul_pd(r, r);
    __m256d s = _mm256_set1_pd(-1.0 / 1307674368000.0);
    s = _mm256_fmadd_pd(s, z, _mm256_set1_pd(1.0 / 6227020800.0));
    s = _mm256_fmadd_pd(s, z, _mm256_set1_pd(-1.0 / 39916800.0));
    s = _mm256_fmadd_pd(s, z, _mm256_set1_pd(1.0 / 362880.0));
    s = _mm256_fmadd_pd(s, z, _mm256_set1_pd(-1.0 / 5040.0));
    s = _mm256_fmadd_pd(s, z, _mm256_set1_pd(1.0 / 120.0));
    s = _mm256_fmadd_pd(s, z, _mm256_set1_pd(-1.0 / 6.0));
    s = _mm256_fmadd_pd(_mm256_mul_pd(s, z), r, r);
    __m256d c = _mm256_set1_pd(1.0 / 20922789888000.0);
    c = _mm256_fmadd_pd(c, z, _mm256_set1_pd(-1.0 / 87178291200.0));
    c = _mm256_fmadd_pd(c, z, _mm256_set1_pd(1.0 / 479001600.0));
    c = _mm256_fmadd_pd(c, z, _mm256_set1_pd(-1.0 / 3628800.0));
    c = _mm256_fmadd_pd(c, z, _mm256_set1_pd(1.0 / 40320.0));
    c = _mm256_fmadd_pd(c, z, _mm256_set1_pd(-1.0 / 720.0));
    c = _mm256_fmadd_pd(c, z, _mm256_set1_pd(1.0 / 24.0));
    c = _mm256_fmadd_pd(c, z, _mm256_set1_pd(-0.5));
    c = _mm256_fmadd_pd(c, z, _mm256_set1_pd(1.0));
    /* quadrant q = k mod 4: odd q swaps sin and cos; sin < 0 for q = 2, 3;
     * cos < 0 for q = 1, 2 (masks widened to 64-bit lanes) */
    const __m256i q = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k));
    const __m256i one = _mm256_set1_epi64x(1), two = _mm256_set1_epi64x(2);
    const __m256d odd = _mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(q, one), one));
    const __m256d sin_neg = _mm256_castsi256_pd(
        _mm256_slli_epi64(_mm256_and_si256(q, two), 62)); /* sign bit */
    const __m256d cos_neg = _mm256_castsi256_pd(
        _mm256_slli_epi64(_mm256_and_si256(_mm256_add_epi64(q, one), two), 62));
    const __m256d sv = _mm256_blendv_pd(s, c, odd);
    const __m256d cv = _mm256_blendv_pd(c, s, odd);
    *sin_out = _mm256_xor_pd(sv, sin_neg);
    *cos_out = _mm256_xor_pd(cv, cos_neg);
}

static void rope_angles_avx2(double pos, const double *inv_freq, int32_t half, float *cos_out,
                             float *sin_out)
{
    const __m256d p = _mm256_set1_pd(pos);
    const __m256d abs_mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFll));
    int32_t i = 0;
    for (; i + 4 <= half; i += 4) {
        const __m256d angle = _mm256_mul_pd(p, _mm256_loadu_pd(inv_freq + i));
        const __m256d too_big = _mm256_cmp_pd(_mm256_and_pd(angle, abs_mask),
                                              _mm256_set1_pd(X86_ROPE_VECTOR_ANGLE_MAX), _CMP_NLT_UQ);
        if (_mm256_movemask_pd(too_big) == 0) {
            __m256d s, c;
            sincos_pd_avx2(angle, &s, &c);
            _mm_storeu_ps(cos_out + i, _mm256_cvtpd_ps(c));
            _mm_storeu_ps(sin_out + i, _mm256_cvtpd_ps(s));
            continue;
        }
        for (int32_t j = i; j < i + 4; j++) {
            const double a = pos * inv_freq[j];
            cos_out[j] = (float)cos(a);
            sin_out[j] = (float)sin(a);
        }
    }
    for (; i < half; i++) {
        const double a = pos * inv_freq[i];
        cos_out[i] = (float)cos(a);
        sin_out[i] = (float)sin(a);
    }
}

static void rope_rotate_avx2(moak_rope_layout layout, const float *x, const float *cos_t,
                             const float *sin_t, int32_t half, float *y)
{
    if (layout == MOAK_ROPE_NEOX) {
        for (int32_t i = 0; i < half; i += 8) {
            const __m256i m = lanes8_avx2(half - i);
            const __m256 x0 = _mm256_maskload_ps(x + i, m);
            const __m256 x1 = _mm256_maskload_ps(x + half + i, m);
            /* cos_t/sin_t are padded to 16 floats: whole loads are in bounds */
            const __m256 c = _mm256_loadu_ps(cos_t + i);
            const __m256 s = _mm256_loadu_ps(sin_t + i);
            const __m256 y0 = _mm256_fmsub_ps(x0, c, _mm256_mul_ps(x1, s));
            const __m256 y1 = _mm256_fmadd_ps(x0, s, _mm256_mul_ps(x1, c));
            _mm256_maskstore_ps(y + i, m, y0);
            _mm256_maskstore_ps(y + half + i, m, y1);
        }
        return;
    }
    /* GPT-J: lanes (2i, 2i+1) hold a pair; duplicate cos/sin per pair and
     * y = x cos -+ swap(x) sin with alternating signs (vfmaddsubps) */
    const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    for (int32_t d = 0; d < 2 * half; d += 8) {
        const __m256i m = lanes8_avx2(2 * half - d);
        const __m256 v = _mm256_maskload_ps(x + d, m);
        const __m256 c = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(cos_t + d / 2)), dup);
        const __m256 s = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(sin_t + d / 2)), dup);
        const __m256 swapped = _mm256_permute_ps(v, 0xB1);
        _mm256_maskstore_ps(y + d, m, _mm256_fmaddsub_ps(v, c, _mm256_mul_ps(swapped, s)));
    }
}

static const x86_elementwise_kernels elementwise_kernels_avx2 = {
    .name = "avx2",
    .route_scores = route_scores_avx2,
    .arg_max = arg_max_avx2,
    .sum_squares = sum_squares_avx2,
    .scale_row = scale_row_avx2,
    .rope_angles = rope_angles_avx2,
    .rope_rotate = rope_rotate_avx2,
};

moak_status moak_x86_avx2_moe_route(void *state, const moak_route_args *args)
{
    return x86_route_run(state, args, &elementwise_kernels_avx2);
}

moak_status moak_x86_avx2_rmsnorm(void *state, const moak_rmsnorm_args *args)
{
    return x86_rmsnorm_run(state, args, &elementwise_kernels_avx2);
}

moak_status moak_x86_avx2_rope(void *state, const moak_rope_args *args)
{
    return x86_rope_run(state, args, &elementwise_kernels_avx2);
}
