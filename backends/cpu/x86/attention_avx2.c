/*
 * attention_avx2.c — attention over the paged host KV cache, AVX2 + FMA + F16C.
 *
 * The driver (tiles of query rows x X86_ATTN_KEYS_PER_TILE keys, online
 * softmax, decode split over key chunks merged with log-sum-exp) is
 * x86_attention_common.h; this file supplies its vector kernels on ymm
 * registers (16 of them, so the register tiles are half the AVX-512 ones):
 *   - K/V tile conversion to f32 (F32 copy, F16 vcvtph2ps, BF16 shift,
 *     Q8_0 sign-extend and scale), head dims padded with zeros to 8; a tail
 *     of fewer than 8 elements goes through a small stack copy, so nothing
 *     is read past a row's last element;
 *   - scores, two ways: decode-size tiles (< 16 rows) take dot products of
 *     4 query rows x 2 keys reduced with horizontal adds; bigger tiles run a
 *     6-key x 16-row register-blocked GEMM of broadcast K elements times
 *     q^T vectors, writing the scores transposed (keys x rows);
 *   - the online-softmax update, 8 rows at a time (2^x by a degree-6
 *     polynomial and exponent arithmetic, flushed to 0 below 2^-64);
 *   - p.V as a 6-row x 16-dim register-blocked GEMM that rescales O on load.
 * Accuracy: f32 throughout, well inside MOAK_BOUND_ATTENTION_*.
 */
#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "attention_avx2.c must be compiled with the AVX2 flags (AVX2_CFLAGS)"
#endif

#include <immintrin.h>

#include "x86_attention_common.h"

#define KEYS X86_ATTN_KEYS_PER_TILE
#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* ---- exp2 and the soft-cap ------------------------------------------------------------ */

/* 2^x, rel. error ~2e-7; exactly 0 below 2^-64 (see attention_avx512.c):
 * 2^n is built in the exponent field, which -64 <= n <= 127 keeps normal. */
ALWAYS_INLINE __m256 exp2_avx2(__m256 x)
{
    const __m256 kept = _mm256_cmp_ps(x, _mm256_set1_ps(-64.0f), _CMP_GE_OQ);
    x = _mm256_max_ps(x, _mm256_set1_ps(-64.0f));
    x = _mm256_min_ps(x, _mm256_set1_ps(127.0f));
    const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 f = _mm256_sub_ps(x, n);
    __m256 p = _mm256_set1_ps(1.5403530393381606e-4f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3333558146428443e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.6181291076284772e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5504108664821580e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022650695910071e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9314718055994531e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(bits)), kept);
}

/* cap * tanh(x / cap), as sign(x) cap (1 - 2 / (2^{2|x|/cap log2 e} + 1)). */
ALWAYS_INLINE __m256 softcap_avx2(__m256 x, float cap)
{
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    const __m256 sign = _mm256_and_ps(x, sign_bit);
    const __m256 a = _mm256_andnot_ps(
        sign_bit, _mm256_mul_ps(x, _mm256_set1_ps((float)(2.0 * X86_ATTN_LOG2E) / cap)));
    const __m256 e = exp2_avx2(_mm256_min_ps(a, _mm256_set1_ps(100.0f)));
    const __m256 t = _mm256_sub_ps(_mm256_set1_ps(1.0f),
                                   _mm256_div_ps(_mm256_set1_ps(2.0f),
                                                 _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
    return _mm256_mul_ps(_mm256_or_ps(t, sign), _mm256_set1_ps(cap));
}

/* ---- K/V tile conversion ------------------------------------------------------------ */

/* The last `left` (< 8) 16-bit elements at src, zero-extended to 8. */
ALWAYS_INLINE __m128i load_tail16_avx2(const unsigned char *src, int32_t left)
{
    uint16_t buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(buf, src, (size_t)left * 2);
    return _mm_loadu_si128((const __m128i *)(const void *)buf);
}

static void load_rows_f32_avx2(const unsigned char *const *rows, int32_t n, int32_t dim,
                               int32_t dim_pad, float *dst)
{
    for (int32_t j = 0; j < n; j++) {
        const float *src = (const float *)(const void *)rows[j];
        float *out = dst + (size_t)j * (size_t)dim_pad;
        int32_t d = 0;
        for (; d + 8 <= dim; d += 8)
            _mm256_store_ps(out + d, _mm256_loadu_ps(src + d));
        if (d < dim_pad) {
            const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(dim - d), lane);
            _mm256_store_ps(out + d, _mm256_maskload_ps(src + d, mask));
        }
    }
}

static void load_rows_f16_avx2(const unsigned char *const *rows, int32_t n, int32_t dim,
                               int32_t dim_pad, float *dst)
{
    for (int32_t j = 0; j < n; j++) {
        const unsigned char *src = rows[j];
        float *out = dst + (size_t)j * (size_t)dim_pad;
        int32_t d = 0;
        for (; d + 8 <= dim; d += 8)
            _mm256_store_ps(out + d, _mm256_cvtph_ps(_mm_loadu_si128(
                                         (const __m128i *)(const void *)(src + 2 * (size_t)d))));
        if (d < dim_pad)
            _mm256_store_ps(out + d,
                            _mm256_cvtph_ps(load_tail16_avx2(src + 2 * (size_t)d, dim - d)));
    }
}

ALWAYS_INLINE __m256 bf16_to_f32_avx2(__m128i h)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static void load_rows_bf16_avx2(const unsigned char *const *rows, int32_t n, int32_t dim,
                                int32_t dim_pad, float *dst)
{
    for (int32_t j = 0; j < n; j++) {
        const unsigned char *src = rows[j];
        float *out = dst + (size_t)j * (size_t)dim_pad;
        int32_t d = 0;
        for (; d + 8 <= dim; d += 8)
            _mm256_store_ps(out + d, bf16_to_f32_avx2(_mm_loadu_si128(
                                         (const __m128i *)(const void *)(src + 2 * (size_t)d))));
        if (d < dim_pad)
            _mm256_store_ps(out + d,
                            bf16_to_f32_avx2(load_tail16_avx2(src + 2 * (size_t)d, dim - d)));
    }
}

/* Q8_0 head dims are multiples of 32: whole blocks { f16 d; int8 q[32]; }. */
static void load_rows_q8_0_avx2(const unsigned char *const *rows, int32_t n, int32_t dim,
                                int32_t dim_pad, float *dst)
{
    (void)dim_pad;
    for (int32_t j = 0; j < n; j++) {
        const unsigned char *block = rows[j];
        float *out = dst + (size_t)j * (size_t)dim_pad;
        for (int32_t d = 0; d < dim; d += 32, block += 34) {
            uint16_t half;
            memcpy(&half, block, 2);
            const __m256 scale = _mm256_set1_ps(_cvtsh_ss(half));
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                const __m128i q = _mm_loadl_epi64((const __m128i *)(const void *)(block + 2 + 8 * i));
                _mm256_store_ps(out + d + 8 * i,
                                _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), scale));
            }
        }
    }
}

static void load_rows_avx2(moak_format format, const unsigned char *const *rows, int32_t n,
                           int32_t dim, int32_t dim_pad, float *dst)
{
    switch (format) {
    case MOAK_FORMAT_F16: load_rows_f16_avx2(rows, n, dim, dim_pad, dst); break;
    case MOAK_FORMAT_BF16: load_rows_bf16_avx2(rows, n, dim, dim_pad, dst); break;
    case MOAK_FORMAT_Q8_0: load_rows_q8_0_avx2(rows, n, dim, dim_pad, dst); break;
    default: load_rows_f32_avx2(rows, n, dim, dim_pad, dst); break;
    }
}

/* ---- scores ------------------------------------------------------------------------------ */

/* R (1..4) query rows x 2 keys by dot products; per key, three horizontal
 * adds and one cross-half add leave the 4 rows' scores in one xmm, stored
 * into the transposed score block (rows past R are zeros). */
ALWAYS_INLINE void qk_dot_block_avx2(const int R, const float *q, int32_t dk_pad, const float *k,
                                     int32_t rows_pad, float *s)
{
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
        acc[r][0] = _mm256_setzero_ps();
        acc[r][1] = _mm256_setzero_ps();
    }
    for (int32_t d = 0; d < dk_pad; d += 8) {
        const __m256 k0 = _mm256_load_ps(k + d);
        const __m256 k1 = _mm256_load_ps(k + (size_t)dk_pad + d);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m256 qv = _mm256_load_ps(q + (size_t)r * (size_t)dk_pad + d);
            acc[r][0] = _mm256_fmadd_ps(qv, k0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(qv, k1, acc[r][1]);
        }
    }
#pragma GCC unroll 2
    for (int j = 0; j < 2; j++) {
        const __m256 t01 = _mm256_hadd_ps(acc[0][j], acc[1][j]);
        const __m256 t23 = _mm256_hadd_ps(acc[2][j], acc[3][j]);
        const __m256 u = _mm256_hadd_ps(t01, t23); /* rows 0..3, per 128-bit half */
        _mm_store_ps(s + (size_t)j * (size_t)rows_pad,
                     _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1)));
    }
}

static void qk_dot_avx2(const float *q, int32_t rows, int32_t rows_pad, int32_t dk_pad,
                        const float *k, int32_t n, float *s)
{
    /* a block past n reads a stale K row; that score is never used */
    for (int32_t r = 0; r < rows; r += 4) {
        const float *qr = q + (size_t)r * (size_t)dk_pad;
        for (int32_t j = 0; j < n; j += 2) {
            const float *kj = k + (size_t)j * (size_t)dk_pad;
            float *sj = s + (size_t)j * (size_t)rows_pad + r;
            switch (rows - r) {
            case 1: qk_dot_block_avx2(1, qr, dk_pad, kj, rows_pad, sj); break;
            case 2: qk_dot_block_avx2(2, qr, dk_pad, kj, rows_pad, sj); break;
            case 3: qk_dot_block_avx2(3, qr, dk_pad, kj, rows_pad, sj); break;
            default: qk_dot_block_avx2(4, qr, dk_pad, kj, rows_pad, sj); break;
            }
        }
    }
}

/* J (1..6) keys x 16 query rows: per head dim, two q^T vectors times J
 * broadcast K elements (12 accumulators + 2 + 1 registers). */
ALWAYS_INLINE void qk_gemm_block_avx2(const int J, const float *qt, int32_t rows_pad,
                                      int32_t dk_pad, const float *k, float *s)
{
    __m256 acc[6][2];
#pragma GCC unroll 6
    for (int j = 0; j < J; j++) {
        acc[j][0] = _mm256_setzero_ps();
        acc[j][1] = _mm256_setzero_ps();
    }
#pragma GCC unroll 2
    for (int32_t d = 0; d < dk_pad; d++) {
        const __m256 q0 = _mm256_load_ps(qt + (size_t)d * (size_t)rows_pad);
        const __m256 q1 = _mm256_load_ps(qt + (size_t)d * (size_t)rows_pad + 8);
#pragma GCC unroll 6
        for (int j = 0; j < J; j++) {
            const __m256 b = _mm256_broadcast_ss(k + (size_t)j * (size_t)dk_pad + d);
            acc[j][0] = _mm256_fmadd_ps(b, q0, acc[j][0]);
            acc[j][1] = _mm256_fmadd_ps(b, q1, acc[j][1]);
        }
    }
#pragma GCC unroll 6
    for (int j = 0; j < J; j++) {
        _mm256_store_ps(s + (size_t)j * (size_t)rows_pad, acc[j][0]);
        _mm256_store_ps(s + (size_t)j * (size_t)rows_pad + 8, acc[j][1]);
    }
}

static void qk_gemm_avx2(const float *qt, int32_t rows_pad, int32_t dk_pad, const float *k,
                         int32_t n, float *s)
{
    for (int32_t j = 0; j < n; j += 6) {
        const float *kj = k + (size_t)j * (size_t)dk_pad;
        float *sj = s + (size_t)j * (size_t)rows_pad;
        for (int32_t r = 0; r < rows_pad; r += 16) {
            switch (n - j) {
            case 1: qk_gemm_block_avx2(1, qt + r, rows_pad, dk_pad, kj, sj + r); break;
            case 2: qk_gemm_block_avx2(2, qt + r, rows_pad, dk_pad, kj, sj + r); break;
            case 3: qk_gemm_block_avx2(3, qt + r, rows_pad, dk_pad, kj, sj + r); break;
            case 4: qk_gemm_block_avx2(4, qt + r, rows_pad, dk_pad, kj, sj + r); break;
            case 5: qk_gemm_block_avx2(5, qt + r, rows_pad, dk_pad, kj, sj + r); break;
            default: qk_gemm_block_avx2(6, qt + r, rows_pad, dk_pad, kj, sj + r); break;
            }
        }
    }
}

/* ---- online softmax, 8 rows at a time ------------------------------------------------------ */

static void softmax_avx2(float *s, int32_t rows_pad, int32_t n, const int32_t *lo,
                         const int32_t *hi, float softcap2, float *m, float *l, float *corr)
{
    const __m256 minus_inf = _mm256_set1_ps(-INFINITY);
    for (int32_t r = 0; r < rows_pad; r += 8) {
        const __m256i vlo = _mm256_loadu_si256((const __m256i *)(const void *)(lo + r));
        const __m256i vhi = _mm256_loadu_si256((const __m256i *)(const void *)(hi + r));
        /* pass 1: cap, mask, max */
        __m256 tile_max = minus_inf;
        for (int32_t j = 0; j < n; j++) {
            float *sj = s + (size_t)j * (size_t)rows_pad + r;
            __m256 x = _mm256_load_ps(sj);
            if (softcap2 != 0.0f)
                x = softcap_avx2(x, softcap2);
            const __m256i vj = _mm256_set1_epi32(j);
            /* visible: lo <= j < hi */
            const __m256i visible = _mm256_andnot_si256(_mm256_cmpgt_epi32(vlo, vj),
                                                        _mm256_cmpgt_epi32(vhi, vj));
            x = _mm256_blendv_ps(minus_inf, x, _mm256_castsi256_ps(visible));
            _mm256_store_ps(sj, x);
            tile_max = _mm256_max_ps(tile_max, x);
        }
        const __m256 m_old = _mm256_load_ps(m + r);
        const __m256 m_new = _mm256_max_ps(m_old, tile_max);
        /* rows that have seen nothing yet subtract 0, so -inf - -inf never occurs */
        const __m256 m_sub = _mm256_andnot_ps(_mm256_cmp_ps(m_new, minus_inf, _CMP_EQ_OQ), m_new);
        /* pass 2: p = 2^(s - m) and its sum */
        __m256 sum = _mm256_setzero_ps();
        for (int32_t j = 0; j < n; j++) {
            float *sj = s + (size_t)j * (size_t)rows_pad + r;
            const __m256 p = exp2_avx2(_mm256_sub_ps(_mm256_load_ps(sj), m_sub));
            _mm256_store_ps(sj, p);
            sum = _mm256_add_ps(sum, p);
        }
        const __m256 c = exp2_avx2(_mm256_sub_ps(m_old, m_sub));
        _mm256_store_ps(corr + r, c);
        _mm256_store_ps(l + r, _mm256_fmadd_ps(_mm256_load_ps(l + r), c, sum));
        _mm256_store_ps(m + r, m_new);
    }
}

/* ---- p.V ------------------------------------------------------------------------------------ */

/* R (1..6) rows x W (1..2) vectors of 8 output dims over n keys. */
ALWAYS_INLINE void pv_block_avx2(const int R, const int W, const float *p, int32_t rows_pad,
                                 int32_t n, const float *v, int32_t dv_pad, const float *corr,
                                 float *o)
{
    __m256 acc[6][2];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        const __m256 c = _mm256_set1_ps(corr[r]);
#pragma GCC unroll 2
        for (int w = 0; w < W; w++)
            acc[r][w] = _mm256_mul_ps(_mm256_load_ps(o + (size_t)r * (size_t)dv_pad + 8 * w), c);
    }
    /* unrolled twice: the loop overhead otherwise costs ~5% of the FMA rate */
#pragma GCC unroll 2
    for (int32_t j = 0; j < n; j++) {
        __m256 vv[2];
#pragma GCC unroll 2
        for (int w = 0; w < W; w++)
            vv[w] = _mm256_load_ps(v + (size_t)j * (size_t)dv_pad + 8 * w);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            const __m256 b = _mm256_broadcast_ss(p + (size_t)j * (size_t)rows_pad + r);
#pragma GCC unroll 2
            for (int w = 0; w < W; w++)
                acc[r][w] = _mm256_fmadd_ps(b, vv[w], acc[r][w]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int w = 0; w < W; w++)
            _mm256_store_ps(o + (size_t)r * (size_t)dv_pad + 8 * w, acc[r][w]);
}

#define PV_ROWS_CASE(R)                                                                 \
    if (width == 1)                                                                     \
        pv_block_avx2(R, 1, pr, rows_pad, n, vd, dv_pad, cr, od);                       \
    else                                                                                \
        pv_block_avx2(R, 2, pr, rows_pad, n, vd, dv_pad, cr, od);

/* Output dims outer, rows inner: a 16-dim slice of the V tile stays in L1
 * while every row block reads it. */
static void pv_avx2(const float *p, int32_t rows, int32_t rows_pad, int32_t n, const float *v,
                    int32_t dv_pad, const float *corr, float *o)
{
    for (int32_t d = 0; d < dv_pad; d += 16) {
        const int32_t width = dv_pad - d >= 16 ? 2 : 1;
        const float *vd = v + d;
        for (int32_t r = 0; r < rows; r += 6) {
            const float *pr = p + r;
            const float *cr = corr + r;
            float *od = o + (size_t)r * (size_t)dv_pad + d;
            switch (rows - r) {
            case 1: PV_ROWS_CASE(1) break;
            case 2: PV_ROWS_CASE(2) break;
            case 3: PV_ROWS_CASE(3) break;
            case 4: PV_ROWS_CASE(4) break;
            case 5: PV_ROWS_CASE(5) break;
            default: PV_ROWS_CASE(6) break;
            }
        }
    }
}

#undef PV_ROWS_CASE

/* ---- the fused small-tile path (decode) ------------------------------------------------ */

/* As in attention_avx512.c, on 8-lane vectors: rows padded to rp <= 8, a
 * score vector holds 8 / rp keys x rp rows. */

/* Chunk c (8 elements) of a K/V row, widened to f32 in registers. */
ALWAYS_INLINE __m256 kv_chunk_avx2(const moak_format FMT, const unsigned char *row, int32_t c)
{
    switch (FMT) {
    case MOAK_FORMAT_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(row + 16 * (size_t)c)));
    case MOAK_FORMAT_BF16:
        return bf16_to_f32_avx2(_mm_loadu_si128((const __m128i *)(const void *)(row + 16 * (size_t)c)));
    case MOAK_FORMAT_Q8_0: {
        /* block c / 4 = { f16 d; int8 q[32] }, quarter c % 4 of its values */
        const unsigned char *block = row + 34 * (size_t)(c >> 2);
        uint16_t half;
        memcpy(&half, block, 2);
        const __m256 scale = _mm256_set1_ps(_cvtsh_ss(half));
        const __m128i q = _mm_loadl_epi64((const __m128i *)(const void *)(block + 2 + 8 * (c & 3)));
        return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), scale);
    }
    default:
        return _mm256_loadu_ps((const float *)(const void *)row + 8 * (size_t)c);
    }
}

/* Lane i of the result is the sum of a[i]'s 8 lanes (21 shuffles and adds). */
ALWAYS_INLINE __m256 hsum8_avx2(const __m256 *a)
{
    __m256 t[4], u[2];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) /* 128-bit lane c: (a0, a1, a0, a1) partials */
        t[i] = _mm256_add_ps(_mm256_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                             _mm256_unpackhi_ps(a[2 * i], a[2 * i + 1]));
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) /* lane c: a[4i..4i+3] summed over lane c */
        u[i] = _mm256_add_ps(_mm256_shuffle_ps(t[2 * i], t[2 * i + 1], 0x44),
                             _mm256_shuffle_ps(t[2 * i], t[2 * i + 1], 0xEE));
    return _mm256_add_ps(_mm256_permute2f128_ps(u[0], u[1], 0x20), _mm256_permute2f128_ps(u[0], u[1], 0x31));
}

/* Combine the lanes of each row (lanes i, i ^ rp, ...): max or sum. */
ALWAYS_INLINE __m256 fold_rows_avx2(const int RP, __m256 v, bool max)
{
    __m256 w;
    if (RP <= 4) {
        w = _mm256_permute2f128_ps(v, v, 0x01);
        v = max ? _mm256_max_ps(v, w) : _mm256_add_ps(v, w);
    }
    if (RP <= 2) {
        w = _mm256_permute_ps(v, 0x4E);
        v = max ? _mm256_max_ps(v, w) : _mm256_add_ps(v, w);
    }
    if (RP <= 1) {
        w = _mm256_permute_ps(v, 0xB1);
        v = max ? _mm256_max_ps(v, w) : _mm256_add_ps(v, w);
    }
    return v;
}

ALWAYS_INLINE void fused_scores_avx2(const int RP, const moak_format FMT, x86_attn_fused *f,
                                     const unsigned char *k, size_t k_stride,
                                     const unsigned char *v, size_t v_stride, int32_t n)
{
    const int KPV = 8 / RP;
    const int32_t chunks = f->dk / 8;
    const int32_t groups = (n + KPV - 1) / KPV;
    const x86_attn_prefetch pf = x86_attn_prefetch_plan(f, k, v, v_stride, n, groups);
    for (int32_t g = 0; g < groups; g++) {
        x86_attn_prefetch_group(&pf, g);
        const unsigned char *kr[8];
#pragma GCC unroll 8
        for (int kk = 0; kk < KPV; kk++) {
            const int32_t j = g * KPV + kk < n ? g * KPV + kk : n - 1;
            kr[kk] = k + (size_t)j * k_stride;
        }
        __m256 acc[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            acc[i] = _mm256_setzero_ps();
        for (int32_t c = 0; c < chunks; c++) {
            __m256 kv[8];
#pragma GCC unroll 8
            for (int kk = 0; kk < KPV; kk++)
                kv[kk] = kv_chunk_avx2(FMT, kr[kk], c);
#pragma GCC unroll 8
            for (int r = 0; r < RP; r++) {
                const __m256 qv = _mm256_load_ps(f->q + ((size_t)c * RP + (size_t)r) * 8);
#pragma GCC unroll 8
                for (int kk = 0; kk < KPV; kk++)
                    acc[kk * RP + r] = _mm256_fmadd_ps(qv, kv[kk], acc[kk * RP + r]);
            }
        }
        _mm256_store_ps(f->s + 8 * (size_t)g, hsum8_avx2(acc));
    }
}

ALWAYS_INLINE void fused_softmax_avx2(const int RP, x86_attn_fused *f, int32_t n, bool all_visible)
{
    const int KPV = 8 / RP;
    const int32_t groups = (n + KPV - 1) / KPV;
    const __m256 minus_inf = _mm256_set1_ps(-INFINITY);
    const bool mask = !all_visible || n % KPV != 0;
    /* lane i (row r = i % RP, key offset kk = i / RP) sees the group's
     * first key g*KPV iff lo[r] - kk <= g*KPV < min(hi[r], n) - kk */
    __m256i vlo = _mm256_setzero_si256(), vhi = _mm256_setzero_si256();
    if (mask) {
        int32_t lo[8], hi[8];
        for (int i = 0; i < 8; i++) {
            const int32_t r = i % RP, kk = i / RP;
            lo[i] = f->lo[r] - kk;
            hi[i] = (f->hi[r] < n ? f->hi[r] : n) - kk;
        }
        vlo = _mm256_loadu_si256((const __m256i *)(const void *)lo);
        vhi = _mm256_loadu_si256((const __m256i *)(const void *)hi);
    }
    __m256 block_max = minus_inf;
    for (int32_t g = 0; g < groups; g++) {
        __m256 x = _mm256_load_ps(f->s + 8 * (size_t)g);
        if (f->softcap2 != 0.0f)
            x = softcap_avx2(x, f->softcap2);
        if (mask) {
            const __m256i vg = _mm256_set1_epi32(g * KPV);
            const __m256i visible = _mm256_andnot_si256(_mm256_cmpgt_epi32(vlo, vg), _mm256_cmpgt_epi32(vhi, vg));
            x = _mm256_blendv_ps(minus_inf, x, _mm256_castsi256_ps(visible));
        }
        if (mask || f->softcap2 != 0.0f)
            _mm256_store_ps(f->s + 8 * (size_t)g, x);
        block_max = _mm256_max_ps(block_max, x);
    }
    const __m256 m_old = _mm256_load_ps(f->m);
    const __m256 m_new = _mm256_max_ps(m_old, fold_rows_avx2(RP, block_max, true));
    /* rows that have seen nothing yet subtract 0, so -inf - -inf never occurs */
    const __m256 m_sub = _mm256_blendv_ps(m_new, _mm256_setzero_ps(), _mm256_cmp_ps(m_new, minus_inf, _CMP_EQ_OQ));
    __m256 sum = _mm256_setzero_ps();
    for (int32_t g = 0; g < groups; g++) {
        const __m256 p = exp2_avx2(_mm256_sub_ps(_mm256_load_ps(f->s + 8 * (size_t)g), m_sub));
        _mm256_store_ps(f->s + 8 * (size_t)g, p);
        sum = _mm256_add_ps(sum, p);
    }
    const __m256 c = exp2_avx2(_mm256_sub_ps(m_old, m_sub));
    _mm256_store_ps(f->corr, c);
    _mm256_store_ps(f->l, _mm256_fmadd_ps(_mm256_load_ps(f->l), c, fold_rows_avx2(RP, sum, false)));
    _mm256_store_ps(f->m, m_new);
}

ALWAYS_INLINE void fused_pv_avx2(const int RP, const int W, const moak_format FMT, x86_attn_fused *f,
                                 const unsigned char *v, size_t v_stride, int32_t n, int32_t c0)
{
    const int KPV = 8 / RP;
    __m256 acc[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < RP; r++) {
        const __m256 c = _mm256_set1_ps(f->corr[r]);
#pragma GCC unroll 4
        for (int w = 0; w < W; w++)
            acc[r][w] = _mm256_mul_ps(_mm256_load_ps(f->o + (size_t)r * (size_t)f->dv_pad + 8 * (size_t)(c0 + w)), c);
    }
    /* keys past n in the last group have p = 0 and repeat row n - 1 */
    for (int32_t j0 = 0; j0 < n; j0 += KPV) {
        const float *p = f->s + (size_t)j0 * RP;
#pragma GCC unroll 8
        for (int kk = 0; kk < KPV; kk++) {
            const int32_t j = j0 + kk < n ? j0 + kk : n - 1;
            const unsigned char *row = v + (size_t)j * v_stride;
            __m256 vv[4];
#pragma GCC unroll 4
            for (int w = 0; w < W; w++)
                vv[w] = kv_chunk_avx2(FMT, row, c0 + w);
#pragma GCC unroll 8
            for (int r = 0; r < RP; r++) {
                const __m256 b = _mm256_broadcast_ss(p + kk * RP + r);
#pragma GCC unroll 4
                for (int w = 0; w < W; w++)
                    acc[r][w] = _mm256_fmadd_ps(b, vv[w], acc[r][w]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < RP; r++)
#pragma GCC unroll 4
        for (int w = 0; w < W; w++)
            _mm256_store_ps(f->o + (size_t)r * (size_t)f->dv_pad + 8 * (size_t)(c0 + w), acc[r][w]);
}

/* Vectors of output dims per p.V pass: 8 accumulators (16 ymm registers). */
#define FUSED_PV_WIDTH_AVX2(RP) ((RP) >= 8 ? 1 : (RP) == 4 ? 2 : 4)

ALWAYS_INLINE void fused_block_avx2(const int RP, const moak_format FMT, x86_attn_fused *f,
                                    const unsigned char *k, size_t k_stride, const unsigned char *v,
                                    size_t v_stride, int32_t n, bool all_visible)
{
    const int WIDTH = FUSED_PV_WIDTH_AVX2(RP);
    fused_scores_avx2(RP, FMT, f, k, k_stride, v, v_stride, n);
    fused_softmax_avx2(RP, f, n, all_visible);
    const int32_t chunks = f->dv / 8;
    int32_t c0 = 0;
    for (; c0 + WIDTH <= chunks; c0 += WIDTH)
        fused_pv_avx2(RP, WIDTH, FMT, f, v, v_stride, n, c0);
    for (; c0 < chunks; c0++)
        fused_pv_avx2(RP, 1, FMT, f, v, v_stride, n, c0);
}

#define FUSED_FORMATS(RP)                                                                          \
    static void fused_##RP##_avx2(x86_attn_fused *f, const unsigned char *k, size_t ks,           \
                                  const unsigned char *v, size_t vs, int32_t n, bool all)          \
    {                                                                                              \
        switch (f->format) {                                                                       \
        case MOAK_FORMAT_F16: fused_block_avx2(RP, MOAK_FORMAT_F16, f, k, ks, v, vs, n, all); break; \
        case MOAK_FORMAT_BF16: fused_block_avx2(RP, MOAK_FORMAT_BF16, f, k, ks, v, vs, n, all); break; \
        case MOAK_FORMAT_Q8_0: fused_block_avx2(RP, MOAK_FORMAT_Q8_0, f, k, ks, v, vs, n, all); break; \
        default: fused_block_avx2(RP, MOAK_FORMAT_F32, f, k, ks, v, vs, n, all); break;            \
        }                                                                                          \
    }
FUSED_FORMATS(1)
FUSED_FORMATS(2)
FUSED_FORMATS(4)
FUSED_FORMATS(8)
#undef FUSED_FORMATS

static void fused_block_dispatch_avx2(x86_attn_fused *f, const unsigned char *k, size_t k_stride,
                                      const unsigned char *v, size_t v_stride, int32_t n,
                                      bool all_visible)
{
    switch (f->rp) {
    case 1: fused_1_avx2(f, k, k_stride, v, v_stride, n, all_visible); break;
    case 2: fused_2_avx2(f, k, k_stride, v, v_stride, n, all_visible); break;
    case 4: fused_4_avx2(f, k, k_stride, v, v_stride, n, all_visible); break;
    default: fused_8_avx2(f, k, k_stride, v, v_stride, n, all_visible); break;
    }
}

static const x86_attn_kernels attention_kernels_avx2 = {
    .pad_floats = 8,
    .gemm_min_rows = 16,
    .load_rows = load_rows_avx2,
    .qk_dot = qk_dot_avx2,
    .qk_gemm = qk_gemm_avx2,
    .softmax = softmax_avx2,
    .pv = pv_avx2,
    .fused_max_rows = 8,
    .fused_block = fused_block_dispatch_avx2,
};

moak_status moak_x86_avx2_attention(void *state, const moak_attention_args *args)
{
    return x86_attention_run(state, args, &attention_kernels_avx2);
}
