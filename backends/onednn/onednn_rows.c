/*
 * The row work the oneDNN backend does in C around its matmul primitives:
 * preparing activations (copy, bf16 rounding, two-level s8 quantization),
 * the s8 epilogue, the GLUs of the MoE FFN and the weighted sum back per
 * token (in slot order).
 *
 * Why the s8 epilogue is here and not in oneDNN: oneDNN 2.6 takes per-column
 * output scales (the weight rows) as an attribute, but a primitive created
 * with runtime scale values falls back from brgemm to gemm:jit, baking the
 * values in would make one primitive per weight (per expert), and a per-row
 * scale (the activation rows) as a binary post-op of shape [m][1] falls back
 * to the reference implementation (ref_int8, about 10^4 times slower).  So
 * the primitive writes the exact s32 sums and this file scales them.
 *
 * Every loop runs on oneDNN's OpenMP team (static schedules; each element's
 * value does not depend on which thread computed it), so results are the
 * same for every thread count; inside the MoE's own parallel region the
 * callers pass threads = 1.  The files of this backend are compiled for
 * baseline x86-64: exp and erf are evaluated by short polynomials that the
 * compiler vectorizes, not by libm calls (with -fno-trapping-math, see
 * local.mk: GCC will not if-convert the clamps of exp while a comparison
 * may raise an FP exception; no result changes).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "onednn_internal.h"

/* Below this many elements a loop stays on the calling thread: waking the
 * team costs more than the work. */
#define ONEDNN_PARALLEL_MIN_ELEMS 32768

/* ---- activation preparation ----------------------------------------------------- */

/* Round to nearest, ties to even, for |v| < 2^22: adding and removing
 * 1.5 * 2^23 leaves the integer part in the mantissa. */
static inline float round_even(float v)
{
    const float magic = 12582912.0f; /* kept: moak is never built with -ffast-math */
    return (v + magic) - magic;
}

static inline uint16_t bf16_round(float f)
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
static float quantize_s8(const float *v, int64_t k, int8_t *q)
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
        float r = round_even(v[i] * inv);
        r = r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
        q[i] = (int8_t)r;
    }
    return amax / 127.0f;
}

/* Two-level s8: x ~= s_hi * q_hi + s_lo * q_lo, q_lo quantizing the
 * residual x - s_hi * q_hi (|residual| <= s_hi / 2).  The error of one
 * element is at most s_lo / 2 <= amax / 64516, against amax / 254 for one
 * level: the two levels run as 2m rows of the same matmul, so the weights
 * are read once, and for decode (memory-bound) the extra rows are free.
 * One level lost to per-block (32) activation scales, which oneDNN 2.6
 * cannot apply: on the GLU output of MoE (heavy-tailed) it exceeded
 * MOAK_BOUND_MOE_INT for about one random seed in twelve. */
static void quantize_s8_two_level(const float *x, int64_t k, int8_t *hi, int8_t *lo, float *s_hi,
                                  float *s_lo)
{
    const float scale = quantize_s8(x, k, hi);
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
        float r = round_even((x[i] - (float)hi[i] * scale) * inv);
        r = r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
        lo[i] = (int8_t)r;
    }
    *s_hi = scale;
    *s_lo = amax / 127.0f;
}

static void bf16_row(const float *x, int64_t k, uint16_t *d)
{
#pragma omp simd
    for (int64_t i = 0; i < k; i++)
        d[i] = bf16_round(x[i]);
}

void onednn_prepare_rows(int threads, onednn_kind kind, const onednn_rows_in *in, int64_t padded_rows,
                         void *dst, float *scales)
{
    const int64_t k = in->k;
    const size_t row_bytes = (size_t)k * onednn_kind_elem_bytes(kind);
    const int64_t rows = in->rows;
#pragma omp parallel for schedule(static) num_threads(threads) if (rows * k >= ONEDNN_PARALLEL_MIN_ELEMS)
    for (int64_t r = 0; r < rows; r++) {
        const float *x = in->base + (in->index ? in->index[r] : r) * k;
        char *d = (char *)dst + (size_t)r * row_bytes;
        if (kind == ONEDNN_KIND_F32) {
            memcpy(d, x, row_bytes);
        } else if (kind == ONEDNN_KIND_BF16) {
            bf16_row(x, k, (uint16_t *)d);
        } else {
            int8_t *hi = (int8_t *)d, *lo = (int8_t *)dst + (size_t)(rows + r) * row_bytes;
            float s_hi, s_lo;
            quantize_s8_two_level(x, k, hi, lo, &s_hi, &s_lo);
            scales[r] = s_hi;
            scales[rows + r] = s_lo;
        }
    }
    const int64_t used = onednn_act_rows(kind, rows);
    if (padded_rows > used) {
        memset((char *)dst + (size_t)used * row_bytes, 0, (size_t)(padded_rows - used) * row_bytes);
        if (scales)
            for (int64_t r = used; r < padded_rows; r++)
                scales[r] = 0.0f;
    }
}

/* ---- s8 epilogue ---------------------------------------------------------------------- */

void onednn_s8_epilogue(int threads, const int32_t *acc, int64_t rows, int64_t n, const float *act_scales,
                        const float *w_scales, const float *bias, float *out)
{
#pragma omp parallel for schedule(static) num_threads(threads) if (rows * n >= ONEDNN_PARALLEL_MIN_ELEMS)
    for (int64_t r = 0; r < rows; r++) {
        const int32_t *hi = acc + r * n, *lo = acc + (rows + r) * n;
        float *o = out + r * n;
        const float s_hi = act_scales[r], s_lo = act_scales[rows + r];
        if (bias) {
#pragma omp simd
            for (int64_t j = 0; j < n; j++)
                o[j] = ((float)hi[j] * s_hi + (float)lo[j] * s_lo) * w_scales[j] + bias[j];
        } else {
#pragma omp simd
            for (int64_t j = 0; j < n; j++)
                o[j] = ((float)hi[j] * s_hi + (float)lo[j] * s_lo) * w_scales[j];
        }
    }
}

/* ---- GLUs ------------------------------------------------------------------------------------ */

/* e^x with a relative error below 2e-7 over the float range: x = n ln2 + r,
 * |r| <= ln2/2, e^r by its degree-6 Taylor polynomial, 2^n through the
 * exponent bits (n in [-126, 127]).  Saturates at e^-87.3 and e^88.3. */
static inline float exp_poly(float x)
{
    const float log2e = 1.44269504089f;
    const float ln2_hi = 0.693145751953125f;  /* ln 2 split so that n * ln2_hi is exact */
    const float ln2_lo = 1.42860682030941723e-6f;
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    float n = round_even(x * log2e);
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
static inline float erf_poly(float x)
{
    float a = fabsf(x);
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    float y = 1.0f - p * t * exp_poly(-a * a);
    return x < 0.0f ? -y : y;
}

void onednn_glu(int threads, const moak_moe_args *args, const float *gate, const float *up, int64_t rows,
                int64_t n, float *h)
{
    const int64_t total = rows * n;
    const float alpha = args->swiglu_alpha;
    const float limit = args->swiglu_limit;
    const moak_activation act = args->activation;
    /* Blocks of 4096 elements: the unit of the static schedule. */
    const int64_t block = 4096;
    const int64_t n_blocks = (total + block - 1) / block;
#pragma omp parallel for schedule(static) num_threads(threads) if (total >= ONEDNN_PARALLEL_MIN_ELEMS)
    for (int64_t b = 0; b < n_blocks; b++) {
        const int64_t lo = b * block;
        const int64_t hi = lo + block < total ? lo + block : total;
        switch (act) {
        case MOAK_ACT_SILU_GLU:
#pragma omp simd
            for (int64_t i = lo; i < hi; i++) {
                float g = gate[i];
                h[i] = g / (1.0f + exp_poly(-g)) * up[i];
            }
            break;
        case MOAK_ACT_GELU_GLU:
#pragma omp simd
            for (int64_t i = lo; i < hi; i++) {
                float g = gate[i];
                h[i] = 0.5f * g * (1.0f + erf_poly(g * 0.70710678118654752f)) * up[i];
            }
            break;
        case MOAK_ACT_SWIGLU_OAI:
#pragma omp simd
            for (int64_t i = lo; i < hi; i++) {
                float g = gate[i];
                float u = up[i];
                g = g > limit ? limit : g;
                u = u > limit ? limit : u;
                u = u < -limit ? -limit : u;
                h[i] = (u + 1.0f) * g / (1.0f + exp_poly(-alpha * g));
            }
            break;
        }
    }
}

/* ---- weighted sum back per token --------------------------------------------------------- */

void onednn_combine(int threads, const float *pair_out, const int32_t *pos, const float *weights,
                    int64_t n_tokens, int32_t top_k, int64_t n, float *y)
{
    /* Each token sums its slots in slot order: the same additions in the
     * same order whatever the thread count. */
#pragma omp parallel for schedule(static) num_threads(threads) if (n_tokens * top_k * n >= ONEDNN_PARALLEL_MIN_ELEMS)
    for (int64_t t = 0; t < n_tokens; t++) {
        float *yt = y + t * n;
        for (int32_t s = 0; s < top_k; s++) {
            const float w = weights[t * top_k + s];
            const float *d = pair_out + (int64_t)pos[t * top_k + s] * n;
            if (s == 0) {
#pragma omp simd
                for (int64_t j = 0; j < n; j++)
                    yt[j] = w * d[j];
            } else {
#pragma omp simd
                for (int64_t j = 0; j < n; j++)
                    yt[j] += w * d[j];
            }
        }
    }
}
