/*
 * The oneDNN backend's row kernels, written once in portable C with
 * `omp simd` loops and compiled per ISA by the file that includes this one
 * after defining ONEDNN_ROW_KERNELS_TABLE (the table's name) and
 * ONEDNN_ROW_KERNELS_NAME (its printable name).  Everything here is a
 * static function of that file.
 *
 * exp and erf are short polynomials that vectorize (libm calls would not);
 * their files are compiled with -fno-trapping-math, without which GCC keeps
 * the clamps of exp as branches (a comparison may raise an FP exception)
 * and does not vectorize the GLU loops.  No result depends on that flag.
 * Within one table every result is a function of its inputs only; the
 * AVX-512 table may differ from the generic one in the last bits (FMA).
 */
#include <math.h>
#include <string.h>

#include "onednn_row_kernels.h"

/* Round to nearest, ties to even, for |v| < 2^22: adding and removing
 * 1.5 * 2^23 leaves the integer part in the mantissa (moak is never built
 * with -ffast-math, which could fold it). */
static inline float rk_round_even(float v)
{
    const float magic = 12582912.0f;
    return (v + magic) - magic;
}

static inline uint16_t rk_bf16_round(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u); /* NaN stays a (quiet) NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Symmetric s8 quantization of v[0..k) into q: returns the scale
 * (amax / 127; 0 for an all-zero row). */
static float rk_quantize_s8(const float *v, int64_t k, int8_t *q)
{
    float amax = 0.0f;
#pragma omp simd reduction(max : amax)
    for (int64_t i = 0; i < k; i++) {
        float a = fabsf(v[i]);
        amax = a > amax ? a : amax;
    }
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
#pragma omp simd
    for (int64_t i = 0; i < k; i++) {
        float r = rk_round_even(v[i] * inv);
        r = r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
        q[i] = (int8_t)r;
    }
    return amax / 127.0f;
}

static void rk_quantize_two_level(const float *x, int64_t k, int8_t *hi, int8_t *lo, float *s_hi, float *s_lo)
{
    const float scale = rk_quantize_s8(x, k, hi);
    /* The residual is recomputed in each pass (same operations, same
     * values) instead of stored: no scratch row, whatever k. */
    float amax = 0.0f;
#pragma omp simd reduction(max : amax)
    for (int64_t i = 0; i < k; i++) {
        float a = fabsf(x[i] - (float)hi[i] * scale);
        amax = a > amax ? a : amax;
    }
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
#pragma omp simd
    for (int64_t i = 0; i < k; i++) {
        float r = rk_round_even((x[i] - (float)hi[i] * scale) * inv);
        r = r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
        lo[i] = (int8_t)r;
    }
    *s_hi = scale;
    *s_lo = amax / 127.0f;
}

static void rk_to_bf16(const float *x, int64_t k, uint16_t *d)
{
#pragma omp simd
    for (int64_t i = 0; i < k; i++)
        d[i] = rk_bf16_round(x[i]);
}

static void rk_s8_epilogue(const int32_t *hi, const int32_t *lo, float s_hi, float s_lo, const float *w_scales,
                           const float *bias, int64_t n, float *out)
{
    if (bias) {
#pragma omp simd
        for (int64_t j = 0; j < n; j++)
            out[j] = ((float)hi[j] * s_hi + (float)lo[j] * s_lo) * w_scales[j] + bias[j];
    } else {
#pragma omp simd
        for (int64_t j = 0; j < n; j++)
            out[j] = ((float)hi[j] * s_hi + (float)lo[j] * s_lo) * w_scales[j];
    }
}

/* e^x with a relative error below 2e-7 over the float range: x = n ln2 + r,
 * |r| <= ln2/2, e^r by its degree-6 Taylor polynomial, 2^n through the
 * exponent bits (n in [-126, 127]).  Saturates at e^-87.3 and e^88.3. */
static inline float rk_exp(float x)
{
    const float log2e = 1.44269504089f;
    const float ln2_hi = 0.693145751953125f; /* ln 2 split so that n * ln2_hi is exact */
    const float ln2_lo = 1.42860682030941723e-6f;
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    float n = rk_round_even(x * log2e);
    float r = (x - n * ln2_hi) - n * ln2_lo;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof(two_n));
    return p * two_n;
}

/* erf(x), absolute error below 2e-7 (Abramowitz & Stegun 7.1.26). */
static inline float rk_erf(float x)
{
    float a = fabsf(x);
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    float y = 1.0f - p * t * rk_exp(-a * a);
    return x < 0.0f ? -y : y;
}

static void rk_glu(moak_activation act, float alpha, float limit, const float *gate, const float *up,
                   int64_t count, float *h)
{
    switch (act) {
    case MOAK_ACT_SILU_GLU:
#pragma omp simd
        for (int64_t i = 0; i < count; i++) {
            float g = gate[i];
            h[i] = g / (1.0f + rk_exp(-g)) * up[i];
        }
        break;
    case MOAK_ACT_GELU_GLU:
#pragma omp simd
        for (int64_t i = 0; i < count; i++) {
            float g = gate[i];
            h[i] = 0.5f * g * (1.0f + rk_erf(g * 0.70710678118654752f)) * up[i];
        }
        break;
    case MOAK_ACT_SWIGLU_OAI:
#pragma omp simd
        for (int64_t i = 0; i < count; i++) {
            float g = gate[i];
            float u = up[i];
            g = g > limit ? limit : g;
            u = u > limit ? limit : u;
            u = u < -limit ? -limit : u;
            h[i] = (u + 1.0f) * g / (1.0f + rk_exp(-alpha * g));
        }
        break;
    }
}

static void rk_weighted_add(float w, const float *d, int64_t n, int first, float *y)
{
    if (first) {
#pragma omp simd
        for (int64_t j = 0; j < n; j++)
            y[j] = w * d[j];
    } else {
#pragma omp simd
        for (int64_t j = 0; j < n; j++)
            y[j] += w * d[j];
    }
}

const onednn_row_kernels ONEDNN_ROW_KERNELS_TABLE = {
    ONEDNN_ROW_KERNELS_NAME, rk_quantize_two_level, rk_to_bf16, rk_s8_epilogue, rk_glu, rk_weighted_add,
};
