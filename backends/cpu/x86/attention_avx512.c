/*
 * attention_avx512.c — attention over the paged host KV cache, AVX-512.
 *
 * The driver (tiles of query rows x 64 keys, online softmax, decode split
 * over key chunks merged with log-sum-exp) is x86_attention_common.h; this
 * file supplies its vector kernels on zmm registers:
 *   - K/V tile conversion to f32 (F32 copy, F16 vcvtph2ps, BF16 shift,
 *     Q8_0 sign-extend and scale), head dims padded with zeros to 16 by
 *     masked loads (nothing is read past a row's last element);
 *   - scores, stored transposed (keys x rows), two ways: decode-size tiles
 *     (< 16 rows) take dot products of 4 query rows x 4 keys and reduce the
 *     16 accumulators with one transposing add tree; bigger tiles (prefill,
 *     MLA's 128 heads) run an 8-key x 48-row register-blocked GEMM of
 *     broadcast K elements times q^T vectors (24 accumulators);
 *   - the online-softmax update, 16 rows per vector with no horizontal
 *     reduction (2^x by a degree-6 polynomial and vscalefps, flushed to 0
 *     below 2^-64; tanh for the soft-cap from it);
 *   - p.V as a 6-row x 64-dim register-blocked GEMM that rescales O on load.
 * The q.k and p.V loops read only scratch tiles and may compute on stale K
 * rows past the tile's n keys (never used).  Accuracy: f32 throughout, well
 * inside MOAK_BOUND_ATTENTION_* (the reference is double); Q8_0 rows are
 * dequantized exactly as moak.h defines.
 */
#ifndef __AVX512F__
#error "attention_avx512.c must be compiled with the AVX-512 flags (AVX512_CFLAGS)"
#endif

#include <immintrin.h>

#include "x86_attention_common.h"

#define KEYS X86_ATTN_KEYS_PER_TILE
#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* ---- exp2 and the soft-cap ------------------------------------------------------------ */

/* 2^x for x <= 0 (and a little above), rel. error ~2e-7.  2^x = 2^n 2^f,
 * n = round(x), |f| <= 1/2, 2^f by its degree-6 Taylor polynomial
 * (truncation < 1.3e-7).  Below 2^-64 the result is exactly 0 (-inf gives
 * 0): a softmax weight that small is nothing next to the row's largest,
 * which is 1, and letting it underflow would cost a microcode assist per
 * denormal result. */
ALWAYS_INLINE __m512 exp2_avx512(__m512 x)
{
    const __mmask16 kept = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-64.0f), _CMP_GE_OQ);
    x = _mm512_max_ps(x, _mm512_set1_ps(-64.0f));
    x = _mm512_min_ps(x, _mm512_set1_ps(127.0f));
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.5403530393381606e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284772e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(kept, p, n);
}

/* cap * tanh(x / cap), as sign(x) cap (1 - 2 / (2^{2|x|/cap log2 e} + 1)).
 * Near 0 the absolute error is ~1 ulp of cap, far below the bound. */
ALWAYS_INLINE __m512 softcap_avx512(__m512 x, float cap)
{
    const __m512 sign = _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u)));
    const __m512 a = _mm512_abs_ps(_mm512_mul_ps(x, _mm512_set1_ps((float)(2.0 * X86_ATTN_LOG2E) / cap)));
    const __m512 e = exp2_avx512(_mm512_min_ps(a, _mm512_set1_ps(100.0f)));
    const __m512 t = _mm512_sub_ps(_mm512_set1_ps(1.0f),
                                   _mm512_div_ps(_mm512_set1_ps(2.0f),
                                                 _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
    return _mm512_mul_ps(_mm512_or_ps(t, sign), _mm512_set1_ps(cap));
}

/* ---- K/V tile conversion ------------------------------------------------------------ */

/* Mask of the first `left` lanes (all 16 when left >= 16). */
ALWAYS_INLINE __mmask16 lanes_avx512(int32_t left)
{
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

static void load_rows_f32_avx512(const unsigned char *const *rows, int32_t n, int32_t dim,
                                 int32_t dim_pad, float *dst)
{
    for (int32_t j = 0; j < n; j++) {
        const float *src = (const float *)(const void *)rows[j];
        float *out = dst + (size_t)j * (size_t)dim_pad;
        int32_t d = 0;
        for (; d + 16 <= dim; d += 16)
            _mm512_store_ps(out + d, _mm512_loadu_ps(src + d));
        if (d < dim_pad)
            _mm512_store_ps(out + d, _mm512_maskz_loadu_ps(lanes_avx512(dim - d), src + d));
    }
}

static void load_rows_f16_avx512(const unsigned char *const *rows, int32_t n, int32_t dim,
                                 int32_t dim_pad, float *dst)
{
    for (int32_t j = 0; j < n; j++) {
        const unsigned char *src = rows[j];
        float *out = dst + (size_t)j * (size_t)dim_pad;
        int32_t d = 0;
        for (; d + 16 <= dim; d += 16)
            _mm512_store_ps(out + d, _mm512_cvtph_ps(_mm256_loadu_si256(
                                         (const __m256i *)(const void *)(src + 2 * (size_t)d))));
        if (d < dim_pad)
            _mm512_store_ps(out + d, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(
                                         lanes_avx512(dim - d), src + 2 * (size_t)d)));
    }
}

/* bf16 is the top half of an f32: widen and shift. */
ALWAYS_INLINE __m512 bf16_to_f32_avx512(__m256i h)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static void load_rows_bf16_avx512(const unsigned char *const *rows, int32_t n, int32_t dim,
                                  int32_t dim_pad, float *dst)
{
    for (int32_t j = 0; j < n; j++) {
        const unsigned char *src = rows[j];
        float *out = dst + (size_t)j * (size_t)dim_pad;
        int32_t d = 0;
        for (; d + 16 <= dim; d += 16)
            _mm512_store_ps(out + d, bf16_to_f32_avx512(_mm256_loadu_si256(
                                         (const __m256i *)(const void *)(src + 2 * (size_t)d))));
        if (d < dim_pad)
            _mm512_store_ps(out + d, bf16_to_f32_avx512(_mm256_maskz_loadu_epi16(
                                         lanes_avx512(dim - d), src + 2 * (size_t)d)));
    }
}

/* Q8_0 head dims are multiples of 32: whole blocks { f16 d; int8 q[32]; }. */
static void load_rows_q8_0_avx512(const unsigned char *const *rows, int32_t n, int32_t dim,
                                  int32_t dim_pad, float *dst)
{
    for (int32_t j = 0; j < n; j++) {
        const unsigned char *block = rows[j];
        float *out = dst + (size_t)j * (size_t)dim_pad;
        for (int32_t d = 0; d < dim; d += 32, block += 34) {
            uint16_t half;
            memcpy(&half, block, 2);
            const __m512 scale = _mm512_set1_ps(_cvtsh_ss(half));
            const __m128i q0 = _mm_loadu_si128((const __m128i *)(const void *)(block + 2));
            const __m128i q1 = _mm_loadu_si128((const __m128i *)(const void *)(block + 18));
            _mm512_store_ps(out + d, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), scale));
            _mm512_store_ps(out + d + 16,
                            _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), scale));
        }
    }
}

static void load_rows_avx512(moak_format format, const unsigned char *const *rows, int32_t n,
                             int32_t dim, int32_t dim_pad, float *dst)
{
    switch (format) {
    case MOAK_FORMAT_F16: load_rows_f16_avx512(rows, n, dim, dim_pad, dst); break;
    case MOAK_FORMAT_BF16: load_rows_bf16_avx512(rows, n, dim, dim_pad, dst); break;
    case MOAK_FORMAT_Q8_0: load_rows_q8_0_avx512(rows, n, dim, dim_pad, dst); break;
    default: load_rows_f32_avx512(rows, n, dim, dim_pad, dst); break;
    }
}

/* ---- scores ------------------------------------------------------------------------------ */

/* R (1..4) query rows x 4 keys by dot products; the 16 accumulators are
 * reduced by one add tree whose result holds key k's R scores in 128-bit
 * lane k, stored into the transposed score block (rows past R are zeros). */
ALWAYS_INLINE void qk_dot_block_avx512(const int R, const float *q, int32_t dk_pad,
                                       const float *k, int32_t rows_pad, float *s)
{
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            acc[r][j] = _mm512_setzero_ps();
    for (int32_t d = 0; d < dk_pad; d += 16) {
        __m512 kv[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            kv[j] = _mm512_load_ps(k + (size_t)j * (size_t)dk_pad + d);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m512 qv = _mm512_load_ps(q + (size_t)r * (size_t)dk_pad + d);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
                acc[r][j] = _mm512_fmadd_ps(qv, kv[j], acc[r][j]);
        }
    }
    __m512 u[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        /* t01 lanes: (row0, row1, row0, row1) partials, t23 likewise */
        const __m512 t01 = _mm512_add_ps(_mm512_unpacklo_ps(acc[0][j], acc[1][j]),
                                         _mm512_unpackhi_ps(acc[0][j], acc[1][j]));
        const __m512 t23 = _mm512_add_ps(_mm512_unpacklo_ps(acc[2][j], acc[3][j]),
                                         _mm512_unpackhi_ps(acc[2][j], acc[3][j]));
        /* per 128-bit lane: rows 0..3 of key j, partial over the lane */
        u[j] = _mm512_add_ps(_mm512_shuffle_ps(t01, t23, 0x44), _mm512_shuffle_ps(t01, t23, 0xEE));
    }
    const __m512 v01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x44),
                                     _mm512_shuffle_f32x4(u[0], u[1], 0xEE));
    const __m512 v23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x44),
                                     _mm512_shuffle_f32x4(u[2], u[3], 0xEE));
    const __m512 w = _mm512_add_ps(_mm512_shuffle_f32x4(v01, v23, 0x88),
                                   _mm512_shuffle_f32x4(v01, v23, 0xDD));
    _mm_store_ps(s, _mm512_castps512_ps128(w));
    _mm_store_ps(s + rows_pad, _mm512_extractf32x4_ps(w, 1));
    _mm_store_ps(s + 2 * (size_t)rows_pad, _mm512_extractf32x4_ps(w, 2));
    _mm_store_ps(s + 3 * (size_t)rows_pad, _mm512_extractf32x4_ps(w, 3));
}

static void qk_dot_avx512(const float *q, int32_t rows, int32_t rows_pad, int32_t dk_pad,
                          const float *k, int32_t n, float *s)
{
    /* a block past n reads stale K rows; those scores are never used */
    for (int32_t r = 0; r < rows; r += 4) {
        const float *qr = q + (size_t)r * (size_t)dk_pad;
        for (int32_t j = 0; j < n; j += 4) {
            const float *kj = k + (size_t)j * (size_t)dk_pad;
            float *sj = s + (size_t)j * (size_t)rows_pad + r;
            switch (rows - r) {
            case 1: qk_dot_block_avx512(1, qr, dk_pad, kj, rows_pad, sj); break;
            case 2: qk_dot_block_avx512(2, qr, dk_pad, kj, rows_pad, sj); break;
            case 3: qk_dot_block_avx512(3, qr, dk_pad, kj, rows_pad, sj); break;
            default: qk_dot_block_avx512(4, qr, dk_pad, kj, rows_pad, sj); break;
            }
        }
    }
}

/* 8 keys x RV (1..3) vectors of 16 query rows: per head dim, RV q^T vectors
 * times 8 broadcast K elements (24 accumulators). */
ALWAYS_INLINE void qk_gemm_block_avx512(const int RV, const float *qt, int32_t rows_pad,
                                        int32_t dk_pad, const float *k, float *s)
{
    __m512 acc[8][3];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++)
#pragma GCC unroll 3
        for (int v = 0; v < RV; v++)
            acc[j][v] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int32_t d = 0; d < dk_pad; d++) {
        __m512 qv[3];
#pragma GCC unroll 3
        for (int v = 0; v < RV; v++)
            qv[v] = _mm512_load_ps(qt + (size_t)d * (size_t)rows_pad + 16 * v);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            const __m512 b = _mm512_set1_ps(k[(size_t)j * (size_t)dk_pad + d]);
#pragma GCC unroll 3
            for (int v = 0; v < RV; v++)
                acc[j][v] = _mm512_fmadd_ps(b, qv[v], acc[j][v]);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++)
#pragma GCC unroll 3
        for (int v = 0; v < RV; v++)
            _mm512_store_ps(s + (size_t)j * (size_t)rows_pad + 16 * v, acc[j][v]);
}

static void qk_gemm_avx512(const float *qt, int32_t rows_pad, int32_t dk_pad, const float *k,
                           int32_t n, float *s)
{
    for (int32_t j = 0; j < n; j += 8) {
        const float *kj = k + (size_t)j * (size_t)dk_pad;
        float *sj = s + (size_t)j * (size_t)rows_pad;
        for (int32_t r = 0; r < rows_pad; r += 48) {
            switch ((rows_pad - r) / 16) {
            case 1: qk_gemm_block_avx512(1, qt + r, rows_pad, dk_pad, kj, sj + r); break;
            case 2: qk_gemm_block_avx512(2, qt + r, rows_pad, dk_pad, kj, sj + r); break;
            default: qk_gemm_block_avx512(3, qt + r, rows_pad, dk_pad, kj, sj + r); break;
            }
        }
    }
}

/* ---- online softmax, 16 rows at a time ------------------------------------------------------ */

static void softmax_avx512(float *s, int32_t rows_pad, int32_t n, const int32_t *lo,
                           const int32_t *hi, float softcap2, float *m, float *l, float *corr)
{
    const __m512 minus_inf = _mm512_set1_ps(-INFINITY);
    for (int32_t r = 0; r < rows_pad; r += 16) {
        const __m512i vlo = _mm512_loadu_si512(lo + r), vhi = _mm512_loadu_si512(hi + r);
        /* pass 1: cap, mask, max */
        __m512 tile_max = minus_inf;
        for (int32_t j = 0; j < n; j++) {
            float *sj = s + (size_t)j * (size_t)rows_pad + r;
            __m512 x = _mm512_load_ps(sj);
            if (softcap2 != 0.0f)
                x = softcap_avx512(x, softcap2);
            const __m512i vj = _mm512_set1_epi32(j);
            const __mmask16 visible = _mm512_cmple_epi32_mask(vlo, vj) & _mm512_cmplt_epi32_mask(vj, vhi);
            x = _mm512_mask_blend_ps(visible, minus_inf, x);
            _mm512_store_ps(sj, x);
            tile_max = _mm512_max_ps(tile_max, x);
        }
        const __m512 m_old = _mm512_load_ps(m + r);
        const __m512 m_new = _mm512_max_ps(m_old, tile_max);
        /* rows that have seen nothing yet subtract 0, so -inf - -inf never occurs */
        const __m512 m_sub = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(m_new, minus_inf, _CMP_EQ_OQ),
                                                  m_new, _mm512_setzero_ps());
        /* pass 2: p = 2^(s - m) and its sum */
        __m512 sum = _mm512_setzero_ps();
        for (int32_t j = 0; j < n; j++) {
            float *sj = s + (size_t)j * (size_t)rows_pad + r;
            const __m512 p = exp2_avx512(_mm512_sub_ps(_mm512_load_ps(sj), m_sub));
            _mm512_store_ps(sj, p);
            sum = _mm512_add_ps(sum, p);
        }
        const __m512 c = exp2_avx512(_mm512_sub_ps(m_old, m_sub));
        _mm512_store_ps(corr + r, c);
        _mm512_store_ps(l + r, _mm512_fmadd_ps(_mm512_load_ps(l + r), c, sum));
        _mm512_store_ps(m + r, m_new);
    }
}

/* ---- p.V ------------------------------------------------------------------------------------ */

/* R (1..6) rows x W (1..4) vectors of 16 output dims over n keys. */
ALWAYS_INLINE void pv_block_avx512(const int R, const int W, const float *p, int32_t rows_pad,
                                   int32_t n, const float *v, int32_t dv_pad, const float *corr,
                                   float *o)
{
    __m512 acc[6][4];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        const __m512 c = _mm512_set1_ps(corr[r]);
#pragma GCC unroll 4
        for (int w = 0; w < W; w++)
            acc[r][w] = _mm512_mul_ps(_mm512_load_ps(o + (size_t)r * (size_t)dv_pad + 16 * w), c);
    }
    /* unrolled twice: the loop overhead otherwise costs ~5% of the FMA rate */
#pragma GCC unroll 2
    for (int32_t j = 0; j < n; j++) {
        __m512 vv[4];
#pragma GCC unroll 4
        for (int w = 0; w < W; w++)
            vv[w] = _mm512_load_ps(v + (size_t)j * (size_t)dv_pad + 16 * w);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            const __m512 b = _mm512_set1_ps(p[(size_t)j * (size_t)rows_pad + r]);
#pragma GCC unroll 4
            for (int w = 0; w < W; w++)
                acc[r][w] = _mm512_fmadd_ps(b, vv[w], acc[r][w]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int w = 0; w < W; w++)
            _mm512_store_ps(o + (size_t)r * (size_t)dv_pad + 16 * w, acc[r][w]);
}

#define PV_ROWS_CASE(R)                                                                 \
    switch (width) {                                                                    \
    case 1: pv_block_avx512(R, 1, pr, rows_pad, n, vd, dv_pad, cr, od); break;          \
    case 2: pv_block_avx512(R, 2, pr, rows_pad, n, vd, dv_pad, cr, od); break;          \
    case 3: pv_block_avx512(R, 3, pr, rows_pad, n, vd, dv_pad, cr, od); break;          \
    default: pv_block_avx512(R, 4, pr, rows_pad, n, vd, dv_pad, cr, od); break;         \
    }

/* Output dims outer, rows inner: a 64-dim slice of the V tile stays in L1
 * while every row block reads it. */
static void pv_avx512(const float *p, int32_t rows, int32_t rows_pad, int32_t n, const float *v,
                      int32_t dv_pad, const float *corr, float *o)
{
    for (int32_t d = 0; d < dv_pad; d += 64) {
        const int32_t width = (dv_pad - d) / 16 < 4 ? (dv_pad - d) / 16 : 4;
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

/* Chunk c (16 elements) of a K/V row, widened to f32 in registers. */
ALWAYS_INLINE __m512 kv_chunk_avx512(const moak_format FMT, const unsigned char *row, int32_t c)
{
    switch (FMT) {
    case MOAK_FORMAT_F16:
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(row + 32 * (size_t)c)));
    case MOAK_FORMAT_BF16:
        return bf16_to_f32_avx512(_mm256_loadu_si256((const __m256i *)(const void *)(row + 32 * (size_t)c)));
    case MOAK_FORMAT_Q8_0: {
        /* block c / 2 = { f16 d; int8 q[32] }, half c % 2 of its values */
        const unsigned char *block = row + 34 * (size_t)(c >> 1);
        int16_t half;
        memcpy(&half, block, 2);
        const __m512 scale = _mm512_cvtph_ps(_mm256_set1_epi16(half));
        const __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(block + 2 + 16 * (c & 1)));
        return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), scale);
    }
    default:
        return _mm512_loadu_ps((const float *)(const void *)row + 16 * (size_t)c);
    }
}

/* Chunks c and c + 1 (c even) of a row: a Q8_0 block's scale is widened
 * once for its two chunks. */
ALWAYS_INLINE void kv_pair_avx512(const moak_format FMT, const unsigned char *row, int32_t c, __m512 *a,
                                  __m512 *b)
{
    if (FMT == MOAK_FORMAT_Q8_0) {
        const unsigned char *block = row + 34 * (size_t)(c >> 1);
        int16_t half;
        memcpy(&half, block, 2);
        const __m512 scale = _mm512_cvtph_ps(_mm256_set1_epi16(half));
        const __m128i q0 = _mm_loadu_si128((const __m128i *)(const void *)(block + 2));
        const __m128i q1 = _mm_loadu_si128((const __m128i *)(const void *)(block + 18));
        *a = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), scale);
        *b = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), scale);
    } else {
        *a = kv_chunk_avx512(FMT, row, c);
        *b = kv_chunk_avx512(FMT, row, c + 1);
    }
}

/* Lane i of the result is the sum of a[i]'s 16 lanes (a transposing add
 * tree: 45 shuffles and adds for 16 sums). */
ALWAYS_INLINE __m512 hsum16_avx512(const __m512 *a)
{
    __m512 t[8], u[4];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) /* 128-bit lane c: (a0, a1, a0, a1) partials */
        t[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                             _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) /* lane c: a[4i..4i+3] summed over lane c */
        u[i] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * i], t[2 * i + 1], 0x44),
                             _mm512_shuffle_ps(t[2 * i], t[2 * i + 1], 0xEE));
    const __m512 v01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x44),
                                     _mm512_shuffle_f32x4(u[0], u[1], 0xEE));
    const __m512 v23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x44),
                                     _mm512_shuffle_f32x4(u[2], u[3], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_f32x4(v01, v23, 0x88), _mm512_shuffle_f32x4(v01, v23, 0xDD));
}

/* Combine the lanes of each row (lanes i, i ^ rp, i ^ 2rp, ...): max or sum. */
ALWAYS_INLINE __m512 fold_rows_avx512(const int RP, __m512 v, bool max)
{
    __m512 w;
    if (RP <= 8) {
        w = _mm512_shuffle_f32x4(v, v, 0x4E);
        v = max ? _mm512_max_ps(v, w) : _mm512_add_ps(v, w);
    }
    if (RP <= 4) {
        w = _mm512_shuffle_f32x4(v, v, 0xB1);
        v = max ? _mm512_max_ps(v, w) : _mm512_add_ps(v, w);
    }
    if (RP <= 2) {
        w = _mm512_permute_ps(v, 0x4E);
        v = max ? _mm512_max_ps(v, w) : _mm512_add_ps(v, w);
    }
    if (RP <= 1) {
        w = _mm512_permute_ps(v, 0xB1);
        v = max ? _mm512_max_ps(v, w) : _mm512_add_ps(v, w);
    }
    return v;
}

/* Scores of the block's n keys: vector g holds keys g*KPV .. g*KPV+KPV-1.
 * A group's keys past n repeat key n-1 (nothing is read past the block;
 * those lanes are masked). */
ALWAYS_INLINE void fused_scores_avx512(const int RP, const moak_format FMT, x86_attn_fused *f,
                                       const unsigned char *k, size_t k_stride,
                                       const unsigned char *v, size_t v_stride, int32_t n)
{
    const int KPV = 16 / RP;
    const int32_t chunks = f->dk / 16;
    const int32_t groups = (n + KPV - 1) / KPV;
    const x86_attn_prefetch pf = x86_attn_prefetch_plan(f, k, v, v_stride, n, groups);
    for (int32_t g = 0; g < groups; g++) {
        x86_attn_prefetch_group(&pf, g);
        const unsigned char *kr[16];
#pragma GCC unroll 16
        for (int kk = 0; kk < KPV; kk++) {
            const int32_t j = g * KPV + kk < n ? g * KPV + kk : n - 1;
            kr[kk] = k + (size_t)j * k_stride;
        }
        __m512 acc[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            acc[i] = _mm512_setzero_ps();
        /* Q8_0: two chunks (a block) per step */
        for (int32_t c = 0; c < chunks && FMT == MOAK_FORMAT_Q8_0; c += 2) {
            const bool pair = c + 1 < chunks;
            __m512 kv[16], kw[16];
#pragma GCC unroll 16
            for (int kk = 0; kk < KPV; kk++) {
                if (pair)
                    kv_pair_avx512(FMT, kr[kk], c, &kv[kk], &kw[kk]);
                else
                    kv[kk] = kw[kk] = kv_chunk_avx512(FMT, kr[kk], c);
            }
#pragma GCC unroll 16
            for (int r = 0; r < RP; r++) {
                __m512 qv = _mm512_load_ps(f->q + ((size_t)c * RP + (size_t)r) * 16);
                /* one load per q vector: folded into each FMA it would be
                 * loaded KPV times, and loads (not FMAs) would set the pace */
                __asm__("" : "+v"(qv));
#pragma GCC unroll 16
                for (int kk = 0; kk < KPV; kk++)
                    acc[kk * RP + r] = _mm512_fmadd_ps(qv, kv[kk], acc[kk * RP + r]);
            }
            if (!pair)
                break;
#pragma GCC unroll 16
            for (int r = 0; r < RP; r++) {
                __m512 qv = _mm512_load_ps(f->q + ((size_t)(c + 1) * RP + (size_t)r) * 16);
                __asm__("" : "+v"(qv));
#pragma GCC unroll 16
                for (int kk = 0; kk < KPV; kk++)
                    acc[kk * RP + r] = _mm512_fmadd_ps(qv, kw[kk], acc[kk * RP + r]);
            }
        }
#pragma GCC unroll 2
        for (int32_t c = 0; c < chunks && FMT != MOAK_FORMAT_Q8_0; c++) {
            __m512 kv[16];
#pragma GCC unroll 16
            for (int kk = 0; kk < KPV; kk++)
                kv[kk] = kv_chunk_avx512(FMT, kr[kk], c);
#pragma GCC unroll 16
            for (int r = 0; r < RP; r++) {
                __m512 qv = _mm512_load_ps(f->q + ((size_t)c * RP + (size_t)r) * 16);
                __asm__("" : "+v"(qv));
#pragma GCC unroll 16
                for (int kk = 0; kk < KPV; kk++)
                    acc[kk * RP + r] = _mm512_fmadd_ps(qv, kv[kk], acc[kk * RP + r]);
            }
        }
        _mm512_store_ps(f->s + 16 * (size_t)g, hsum16_avx512(acc));
    }
}

/* Online-softmax update of the block in lane layout: caps, masks, the new
 * max, p = 2^(s - m) in place, l, corr. */
ALWAYS_INLINE void fused_softmax_avx512(const int RP, x86_attn_fused *f, int32_t n, bool all_visible)
{
    const int KPV = 16 / RP;
    const int32_t groups = (n + KPV - 1) / KPV;
    const __m512 minus_inf = _mm512_set1_ps(-INFINITY);
    const bool mask = !all_visible || n % KPV != 0;
    /* lane i (row r = i % RP, key offset kk = i / RP) sees the group's
     * first key g*KPV iff lo[r] - kk <= g*KPV < min(hi[r], n) - kk */
    __m512i vlo = _mm512_setzero_si512(), vhi = _mm512_setzero_si512();
    if (mask) {
        int32_t lo[16], hi[16];
        for (int i = 0; i < 16; i++) {
            const int32_t r = i % RP, kk = i / RP;
            lo[i] = f->lo[r] - kk;
            hi[i] = (f->hi[r] < n ? f->hi[r] : n) - kk;
        }
        vlo = _mm512_loadu_si512(lo);
        vhi = _mm512_loadu_si512(hi);
    }
    __m512 block_max = minus_inf;
    for (int32_t g = 0; g < groups; g++) {
        __m512 x = _mm512_load_ps(f->s + 16 * (size_t)g);
        if (f->softcap2 != 0.0f)
            x = softcap_avx512(x, f->softcap2);
        if (mask) {
            const __m512i vg = _mm512_set1_epi32(g * KPV);
            const __mmask16 visible = _mm512_cmple_epi32_mask(vlo, vg) & _mm512_cmplt_epi32_mask(vg, vhi);
            x = _mm512_mask_blend_ps(visible, minus_inf, x);
        }
        if (mask || f->softcap2 != 0.0f)
            _mm512_store_ps(f->s + 16 * (size_t)g, x);
        block_max = _mm512_max_ps(block_max, x);
    }
    const __m512 m_old = _mm512_load_ps(f->m);
    const __m512 m_new = _mm512_max_ps(m_old, fold_rows_avx512(RP, block_max, true));
    /* rows that have seen nothing yet subtract 0, so -inf - -inf never occurs */
    const __m512 m_sub = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(m_new, minus_inf, _CMP_EQ_OQ),
                                              m_new, _mm512_setzero_ps());
    __m512 sum = _mm512_setzero_ps();
    for (int32_t g = 0; g < groups; g++) {
        const __m512 p = exp2_avx512(_mm512_sub_ps(_mm512_load_ps(f->s + 16 * (size_t)g), m_sub));
        _mm512_store_ps(f->s + 16 * (size_t)g, p);
        sum = _mm512_add_ps(sum, p);
    }
    const __m512 c = exp2_avx512(_mm512_sub_ps(m_old, m_sub));
    _mm512_store_ps(f->corr, c);
    _mm512_store_ps(f->l, _mm512_fmadd_ps(_mm512_load_ps(f->l), c, fold_rows_avx512(RP, sum, false)));
    _mm512_store_ps(f->m, m_new);
}

/* O[r][chunks c0 .. c0+W) = O * corr[r] + sum_j p[r][j] v[j]: RP rows x W
 * vectors, each V chunk widened once for all rows. */
ALWAYS_INLINE void fused_pv_avx512(const int RP, const int W, const moak_format FMT, x86_attn_fused *f,
                                   const unsigned char *v, size_t v_stride, int32_t n, int32_t c0)
{
    const int KPV = 16 / RP;
    __m512 acc[16][8];
#pragma GCC unroll 16
    for (int r = 0; r < RP; r++) {
        const __m512 c = _mm512_set1_ps(f->corr[r]);
#pragma GCC unroll 8
        for (int w = 0; w < W; w++)
            acc[r][w] = _mm512_mul_ps(_mm512_load_ps(f->o + (size_t)r * (size_t)f->dv_pad + 16 * (size_t)(c0 + w)), c);
    }
    /* a group of KPV keys per step, so that every p is at a fixed offset;
     * keys past n in the last group have p = 0 and repeat row n - 1 */
    for (int32_t j0 = 0; j0 < n; j0 += KPV) {
        const float *p = f->s + (size_t)j0 * RP;
#pragma GCC unroll 16
        for (int kk = 0; kk < KPV; kk++) {
            const int32_t j = j0 + kk < n ? j0 + kk : n - 1;
            const unsigned char *row = v + (size_t)j * v_stride;
            __m512 vv[8];
            /* W even: c0 is even, the pairs are Q8_0 blocks */
#pragma GCC unroll 8
            for (int w = 0; w < W; w += 2) {
                if (w + 1 < W && FMT == MOAK_FORMAT_Q8_0)
                    kv_pair_avx512(FMT, row, c0 + w, &vv[w], &vv[w + 1]);
                else {
                    vv[w] = kv_chunk_avx512(FMT, row, c0 + w);
                    if (w + 1 < W)
                        vv[w + 1] = kv_chunk_avx512(FMT, row, c0 + w + 1);
                }
            }
#pragma GCC unroll 16
            for (int r = 0; r < RP; r++) {
                const __m512 b = _mm512_set1_ps(p[kk * RP + r]);
#pragma GCC unroll 8
                for (int w = 0; w < W; w++)
                    acc[r][w] = _mm512_fmadd_ps(b, vv[w], acc[r][w]);
            }
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < RP; r++)
#pragma GCC unroll 8
        for (int w = 0; w < W; w++)
            _mm512_store_ps(f->o + (size_t)r * (size_t)f->dv_pad + 16 * (size_t)(c0 + w), acc[r][w]);
}

/* Vectors of output dims per p.V pass: about 16 accumulators. */
#define FUSED_PV_WIDTH(RP, FMT)                                                            \
    ((RP) >= 16 ? 1 : (RP) == 8 ? ((FMT) == MOAK_FORMAT_Q8_0 ? 2 : 3) : 16 / (RP) > 8 ? 8 : 16 / (RP))

ALWAYS_INLINE void fused_block_avx512(const int RP, const moak_format FMT, x86_attn_fused *f,
                                      const unsigned char *k, size_t k_stride, const unsigned char *v,
                                      size_t v_stride, int32_t n, bool all_visible)
{
    const int WIDTH = FUSED_PV_WIDTH(RP, FMT);
    fused_scores_avx512(RP, FMT, f, k, k_stride, v, v_stride, n);
    fused_softmax_avx512(RP, f, n, all_visible);
    const int32_t chunks = f->dv / 16;
    int32_t c0 = 0;
    for (; c0 + WIDTH <= chunks; c0 += WIDTH)
        fused_pv_avx512(RP, WIDTH, FMT, f, v, v_stride, n, c0);
    for (; c0 < chunks; c0++)
        fused_pv_avx512(RP, 1, FMT, f, v, v_stride, n, c0);
}

#define FUSED_FORMATS(RP)                                                                          \
    static void fused_##RP##_avx512(x86_attn_fused *f, const unsigned char *k, size_t ks,         \
                                    const unsigned char *v, size_t vs, int32_t n, bool all)        \
    {                                                                                              \
        switch (f->format) {                                                                       \
        case MOAK_FORMAT_F16: fused_block_avx512(RP, MOAK_FORMAT_F16, f, k, ks, v, vs, n, all); break; \
        case MOAK_FORMAT_BF16: fused_block_avx512(RP, MOAK_FORMAT_BF16, f, k, ks, v, vs, n, all); break; \
        case MOAK_FORMAT_Q8_0: fused_block_avx512(RP, MOAK_FORMAT_Q8_0, f, k, ks, v, vs, n, all); break; \
        default: fused_block_avx512(RP, MOAK_FORMAT_F32, f, k, ks, v, vs, n, all); break;          \
        }                                                                                          \
    }
FUSED_FORMATS(1)
FUSED_FORMATS(2)
FUSED_FORMATS(4)
FUSED_FORMATS(8)
FUSED_FORMATS(16)
#undef FUSED_FORMATS

static void fused_block_dispatch_avx512(x86_attn_fused *f, const unsigned char *k, size_t k_stride,
                                        const unsigned char *v, size_t v_stride, int32_t n,
                                        bool all_visible)
{
    switch (f->rp) {
    case 1: fused_1_avx512(f, k, k_stride, v, v_stride, n, all_visible); break;
    case 2: fused_2_avx512(f, k, k_stride, v, v_stride, n, all_visible); break;
    case 4: fused_4_avx512(f, k, k_stride, v, v_stride, n, all_visible); break;
    case 8: fused_8_avx512(f, k, k_stride, v, v_stride, n, all_visible); break;
    default: fused_16_avx512(f, k, k_stride, v, v_stride, n, all_visible); break;
    }
}

static const x86_attn_kernels attention_kernels_avx512 = {
    .pad_floats = 16,
    .gemm_min_rows = 16,
    .load_rows = load_rows_avx512,
    .qk_dot = qk_dot_avx512,
    .qk_gemm = qk_gemm_avx512,
    .softmax = softmax_avx512,
    .pv = pv_avx512,
    .fused_max_rows = 16,
    .fused_block = fused_block_dispatch_avx512,
};

moak_status moak_x86_avx512_attention(void *state, const moak_attention_args *args)
{
    return x86_attention_run(state, args, &attention_kernels_avx512);
}
