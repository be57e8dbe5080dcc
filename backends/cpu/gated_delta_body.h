/*
 * gated_delta_body.h — the gated delta rule's vector kernels
 * (gated_delta_cpu.h), written once in the simd_f vocabulary of
 * x86/x86_simd_avx2.h, x86/x86_simd_avx512.h and the NEON mapping in
 * arm/gated_delta_neon.c.  The including file defines GDN_KERNELS_NAME (the
 * table's symbol) and GDN_ISA_NAME first.
 *
 * Layouts: every matrix row-major with a leading dimension; nothing past
 * n (columns) or m (rows) is read or written: column tails that are not a
 * whole vector run scalar.
 *
 * gemm: register tile of up to GDN_TILE_ROWS rows x 2 vectors of c; each
 * step broadcasts one a value per row and loads two vectors of b's row,
 * so b (the 128 x 128 state, or a chunk's 64 rows) streams through L1/L2
 * once per tile of rows.  Accuracy: f32 products and sums in k order.
 *
 * exp: 2^(x log2 e), x clamped to [-87.3, 88.7]; n = round(y), 2^f by a
 * degree-7 Taylor polynomial in f ln 2 (|f| <= 1/2, truncation < 1e-8
 * relative), 2^n built in the exponent (n = -127 gives +0: decays past
 * f32's range become exactly 0, as their true values are below 1e-38).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "gated_delta_cpu.h"

#define GDN_TILE_ROWS 6
#define GDN_INLINE static inline __attribute__((always_inline))

GDN_INLINE simd_f gdn_exp(simd_f x)
{
    simd_f y = simd_f_mul(x, simd_f_set1(1.4426950408889634f));
    y = simd_f_min(simd_f_max(y, simd_f_set1(-127.0f)), simd_f_set1(127.0f));
    const simd_f n = simd_f_round(y);
    const simd_f f = simd_f_sub(y, n);
    simd_f p = simd_f_set1(1.5252733804059840e-5f);
    p = simd_f_fma(p, f, simd_f_set1(1.5403530393381609e-4f));
    p = simd_f_fma(p, f, simd_f_set1(1.3333558146428443e-3f));
    p = simd_f_fma(p, f, simd_f_set1(9.6181291076284772e-3f));
    p = simd_f_fma(p, f, simd_f_set1(5.5504108664821580e-2f));
    p = simd_f_fma(p, f, simd_f_set1(2.4022650695910071e-1f));
    p = simd_f_fma(p, f, simd_f_set1(6.9314718055994531e-1f));
    p = simd_f_fma(p, f, simd_f_set1(1.0f));
    return simd_f_mul(p, simd_f_exp2_int(n));
}

/* rows x (2 vectors) of c at column j; rows is a constant after inlining. */
GDN_INLINE void gemm_tile2(int rows, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                           int64_t ldc, bool accumulate)
{
    simd_f acc0[GDN_TILE_ROWS], acc1[GDN_TILE_ROWS];
    for (int r = 0; r < rows; r++) {
        acc0[r] = accumulate ? simd_f_load(c + r * ldc) : simd_f_zero();
        acc1[r] = accumulate ? simd_f_load(c + r * ldc + SIMD_LANES) : simd_f_zero();
    }
    for (int64_t p = 0; p < k; p++) {
        const simd_f b0 = simd_f_load(b + p * ldb), b1 = simd_f_load(b + p * ldb + SIMD_LANES);
        for (int r = 0; r < rows; r++) {
            const simd_f x = simd_f_set1(a[r * lda + p]);
            acc0[r] = simd_f_fma(x, b0, acc0[r]);
            acc1[r] = simd_f_fma(x, b1, acc1[r]);
        }
    }
    for (int r = 0; r < rows; r++) {
        simd_f_store(c + r * ldc, acc0[r]);
        simd_f_store(c + r * ldc + SIMD_LANES, acc1[r]);
    }
}

GDN_INLINE void gemm_tile1(int rows, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                           int64_t ldc, bool accumulate)
{
    simd_f acc[GDN_TILE_ROWS];
    for (int r = 0; r < rows; r++)
        acc[r] = accumulate ? simd_f_load(c + r * ldc) : simd_f_zero();
    for (int64_t p = 0; p < k; p++) {
        const simd_f b0 = simd_f_load(b + p * ldb);
        for (int r = 0; r < rows; r++)
            acc[r] = simd_f_fma(simd_f_set1(a[r * lda + p]), b0, acc[r]);
    }
    for (int r = 0; r < rows; r++)
        simd_f_store(c + r * ldc, acc[r]);
}

/* Columns [j0, n) that are not a whole vector, scalar. */
static void gemm_tail_columns(int64_t m, int64_t j0, int64_t n, int64_t k, const float *a, int64_t lda,
                              const float *b, int64_t ldb, float *c, int64_t ldc, bool accumulate)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = j0; j < n; j++) {
            float s = accumulate ? c[i * ldc + j] : 0.0f;
            for (int64_t p = 0; p < k; p++)
                s = fmaf(a[i * lda + p], b[p * ldb + j], s);
            c[i * ldc + j] = s;
        }
}

#define GDN_ROWS_SWITCH(fn, rows, ...) \
    switch (rows) {                    \
    case 1: fn(1, __VA_ARGS__); break; \
    case 2: fn(2, __VA_ARGS__); break; \
    case 3: fn(3, __VA_ARGS__); break; \
    case 4: fn(4, __VA_ARGS__); break; \
    case 5: fn(5, __VA_ARGS__); break; \
    default: fn(6, __VA_ARGS__); break; \
    }

static void gdn_gemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                     float *c, int64_t ldc, bool accumulate)
{
    const int64_t n2 = n - n % (2 * SIMD_LANES), n1 = n - n % SIMD_LANES;
    for (int64_t i = 0; i < m; i += GDN_TILE_ROWS) {
        const int rows = (int)(m - i < GDN_TILE_ROWS ? m - i : GDN_TILE_ROWS);
        const float *ai = a + i * lda;
        float *ci = c + i * ldc;
        for (int64_t j = 0; j < n2; j += 2 * SIMD_LANES)
            GDN_ROWS_SWITCH(gemm_tile2, rows, k, ai, lda, b + j, ldb, ci + j, ldc, accumulate)
        if (n1 > n2)
            GDN_ROWS_SWITCH(gemm_tile1, rows, k, ai, lda, b + n2, ldb, ci + n2, ldc, accumulate)
    }
    if (n1 < n)
        gemm_tail_columns(m, n1, n, k, a, lda, b, ldb, c, ldc, accumulate);
}

static float silu_scalar(float x) { return x / (1.0f + expf(-x)); }

static void gdn_conv_silu(const float *const *rows, const float *w_t, int64_t ld_w, int32_t taps, int64_t c0,
                          int64_t c1, float *out)
{
    int64_t c = c0;
    for (; c + SIMD_LANES <= c1; c += SIMD_LANES) {
        simd_f acc = simd_f_zero();
        for (int32_t j = 0; j < taps; j++)
            acc = simd_f_fma(simd_f_load(w_t + j * ld_w + c), simd_f_load(rows[j] + c), acc);
        /* silu(x) = x / (1 + e^-x); e^-x overflows to +inf only past 88.7
         * (clamped): x / huge = -0, the true limit */
        const simd_f e = gdn_exp(simd_f_sub(simd_f_zero(), acc));
        simd_f_store(out + c, simd_f_div(acc, simd_f_add(simd_f_set1(1.0f), e)));
    }
    for (; c < c1; c++) {
        float acc = 0.0f;
        for (int32_t j = 0; j < taps; j++)
            acc = fmaf(w_t[j * ld_w + c], rows[j][c], acc);
        out[c] = silu_scalar(acc);
    }
}

static float gdn_sum_sq(const float *x, int64_t n)
{
    simd_f acc = simd_f_zero();
    int64_t i = 0;
    for (; i + SIMD_LANES <= n; i += SIMD_LANES) {
        const simd_f v = simd_f_load(x + i);
        acc = simd_f_fma(v, v, acc);
    }
    float lanes[SIMD_LANES], s = 0.0f;
    simd_f_store(lanes, acc);
    for (int l = 0; l < SIMD_LANES; l++)
        s += lanes[l];
    for (; i < n; i++)
        s = fmaf(x[i], x[i], s);
    return s;
}

static void gdn_l2_normalize(float *x, int64_t n, float eps, float extra)
{
    const float r = extra / sqrtf(gdn_sum_sq(x, n) + eps);
    const simd_f rv = simd_f_set1(r);
    int64_t i = 0;
    for (; i + SIMD_LANES <= n; i += SIMD_LANES)
        simd_f_store(x + i, simd_f_mul(simd_f_load(x + i), rv));
    for (; i < n; i++)
        x[i] *= r;
}

static void gdn_mul_exp_diff(float *dst, const float *x, const float *g_hi, const float *g_lo, int64_t n)
{
    int64_t i = 0;
    for (; i + SIMD_LANES <= n; i += SIMD_LANES) {
        simd_f d = simd_f_load(g_hi + i);
        if (g_lo)
            d = simd_f_sub(d, simd_f_load(g_lo + i));
        simd_f_store(dst + i, simd_f_mul(simd_f_load(x + i), gdn_exp(d)));
    }
    for (; i < n; i++)
        dst[i] = x[i] * expf(g_hi[i] - (g_lo ? g_lo[i] : 0.0f));
}

static float gdn_dot_exp_diff(const float *a, const float *b, const float *g_hi, const float *g_lo, int64_t n)
{
    simd_f acc = simd_f_zero();
    int64_t i = 0;
    for (; i + SIMD_LANES <= n; i += SIMD_LANES) {
        const simd_f e = gdn_exp(simd_f_sub(simd_f_load(g_hi + i), simd_f_load(g_lo + i)));
        acc = simd_f_fma(simd_f_mul(simd_f_load(a + i), simd_f_load(b + i)), e, acc);
    }
    float lanes[SIMD_LANES], s = 0.0f;
    simd_f_store(lanes, acc);
    for (int l = 0; l < SIMD_LANES; l++)
        s += lanes[l];
    for (; i < n; i++)
        s = fmaf(a[i] * b[i], expf(g_hi[i] - g_lo[i]), s);
    return s;
}

static void gdn_decay_rank1(float *s, int64_t dk, int64_t dv, const float *row_decay, const float *k, const float *u)
{
    for (int64_t r = 0; r < dk; r++) {
        float *row = s + r * dv;
        const simd_f a = simd_f_set1(row_decay[r]), kr = simd_f_set1(k[r]);
        int64_t c = 0;
        for (; c + SIMD_LANES <= dv; c += SIMD_LANES)
            simd_f_store(row + c, simd_f_fma(kr, simd_f_load(u + c), simd_f_mul(a, simd_f_load(row + c))));
        for (; c < dv; c++)
            row[c] = fmaf(k[r], u[c], row_decay[r] * row[c]);
    }
}

const moak_gdn_kernels GDN_KERNELS_NAME = {
    .name = GDN_ISA_NAME,
    .gemm = gdn_gemm,
    .conv_silu = gdn_conv_silu,
    .l2_normalize = gdn_l2_normalize,
    .mul_exp_diff = gdn_mul_exp_diff,
    .dot_exp_diff = gdn_dot_exp_diff,
    .decay_rank1 = gdn_decay_rank1,
};
