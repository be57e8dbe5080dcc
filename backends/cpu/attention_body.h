/*
 * attention_body.h — the vector kernels of the CPU attention, written once
 * against the SIMD vocabulary (simd_f: SIMD_LANES f32 lanes) and included by
 * one short file per ISA, which first includes its vocabulary header
 * (x86/x86_simd_avx2.h, x86/x86_simd_avx512.h, arm/neon_simd.h) and
 * defines its register tiles:
 *   ATTN_ISA             name suffix and table: cpu_attn_kernels_<ATTN_ISA>
 *   ATTN_GEMM_KEYS       keys x ATTN_GEMM_ROW_VECS vectors of q^T rows per
 *   ATTN_GEMM_ROW_VECS     score-GEMM register tile (prefill)
 *   ATTN_PV_ROWS         rows x ATTN_PV_VECS vectors of output dims per
 *   ATTN_PV_VECS           p.V register tile (prefill)
 *   ATTN_FUSED_PV_WIDTH(RP, FMT)  vectors of output dims per fused p.V pass
 *   ATTN_Q8_PAIR         1: the fused path widens a Q8_0 block's scale once
 *                          for two chunks (wants the registers for it)
 * The driver (cpu_attention.c) plans tiles and calls these through the
 * table; cpu_attention.h states each kernel's contract.
 * A new ISA: its vocabulary header (the simd_f_* functions the attention
 * part of x86/x86_simd_avx2.h lists), an instantiation file like
 * x86/attention_avx2.c, the table's name in cpu_attention.h, the backend's
 * entry calling cpu_attention_run (x86/x86_attention.c), and one #ifdef
 * block in tests/ukernel/test_ukernel_attention.c.
 *
 * What the kernels compute:
 *   - K/V tile conversion to f32 (F32 copy, F16 and BF16 widening, Q8_0
 *     sign-extend and scale), head dims padded with zeros to the vector
 *     width; a row's tail is read with a partial load (nothing past its
 *     last element);
 *   - scores, stored transposed (keys x rows), two ways: decode-size tiles
 *     take dot products of 4 query rows x (lanes / 4) keys and reduce the
 *     lanes accumulators with one transposing add tree; bigger tiles
 *     (prefill, MLA's 128 heads) run a register-blocked GEMM of broadcast K
 *     elements times q^T vectors;
 *   - the online-softmax update, a vector of rows at a time with no
 *     horizontal reduction (2^x by a degree-6 polynomial, flushed to 0 below
 *     2^-64; the soft-cap's tanh from it, or from its odd series near 0);
 *   - p.V as a register-blocked GEMM that rescales O on load;
 *   - the fused small-tile path (decode): K and V widened in registers and
 *     used at once by every row, scores in lane layout (cpu_attention.h).
 * The q.k and p.V loops of the tile path read only scratch tiles.
 * Accuracy: f32 throughout, well inside MOAK_BOUND_ATTENTION_* (the
 * reference is double); Q8_0 rows are dequantized exactly as moak.h says.
 */
#ifndef SIMD_LANES
#error "include a SIMD vocabulary header before attention_body.h"
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu_attention.h"

#define ATTN_KEYS CPU_ATTN_KEYS_PER_TILE
#define ATTN_INLINE static inline __attribute__((always_inline))
#define ATTN_CAT2(a, b) a##_##b
#define ATTN_CAT(a, b) ATTN_CAT2(a, b)
/* a kernel's name: what it computes and the ISA (attn_qk_gemm_avx512) */
#define ATTN_NAME(name) ATTN_CAT(name, ATTN_ISA)
/* vectors per Q8_0 block of 32 values */
#define ATTN_Q8_CHUNKS (32 / SIMD_LANES)

/* ---- exp2 and the soft-cap ------------------------------------------------------------ */

/* 2^x for x <= 0 (and a little above), rel. error ~2e-7.  2^x = 2^n 2^f,
 * n = round(x), |f| <= 1/2, 2^f by its degree-6 Taylor polynomial
 * (truncation < 1.3e-7).  Below 2^-64 the result is exactly 0 (-inf gives
 * 0): a softmax weight that small is nothing next to the row's largest,
 * which is 1, and letting it underflow would cost a microcode assist per
 * denormal result. */
ATTN_INLINE simd_f attn_exp2(simd_f x)
{
    const simd_f in = x;
    x = simd_f_max(x, simd_f_set1(-64.0f));
    x = simd_f_min(x, simd_f_set1(127.0f));
    const simd_f n = simd_f_round(x);
    const simd_f f = simd_f_sub(x, n);
    simd_f p = simd_f_set1(1.5403530393381606e-4f);
    p = simd_f_fma(p, f, simd_f_set1(1.3333558146428443e-3f));
    p = simd_f_fma(p, f, simd_f_set1(9.6181291076284772e-3f));
    p = simd_f_fma(p, f, simd_f_set1(5.5504108664821580e-2f));
    p = simd_f_fma(p, f, simd_f_set1(2.4022650695910071e-1f));
    p = simd_f_fma(p, f, simd_f_set1(6.9314718055994531e-1f));
    p = simd_f_fma(p, f, simd_f_set1(1.0f));
    return simd_f_keep_ge(simd_f_scale_exp2(p, n), in, -64.0f);
}

/* Below this |t| the soft-cap takes tanh(t) / t from its odd series: the
 * next term, 1382/155925 t^10, is < 1e-8 there, and above it
 * 1 - 2 / (e^2t + 1) loses at most 2 bits to cancellation. */
#define ATTN_TANH_SERIES_BELOW 0.25f

/* The soft-capped logit of scores s (cpu_attn_logits): cap_out tanh(t),
 * t = s cap_in, as sign(t) cap_out (1 - 2 / (2^{2|t| log2 e} + 1)) for
 * |t| >= 1/4, and as s small_mul tanh(t) / t below, so that a large cap
 * (tiny t) gives back the score itself, not 0 (issue 16). */
ATTN_INLINE simd_f attn_softcap(simd_f s, const cpu_attn_logits *lg)
{
    const simd_f t = simd_f_mul(s, simd_f_set1(lg->cap_in));
    const simd_f a = simd_f_abs(t);
    const simd_f e = attn_exp2(simd_f_min(simd_f_mul(a, simd_f_set1((float)(2.0 * 1.44269504088896340736))),
                                          simd_f_set1(100.0f)));
    const simd_f one = simd_f_set1(1.0f);
    const simd_f big = simd_f_sub(one, simd_f_div(simd_f_set1(2.0f), simd_f_add(e, one)));
    const simd_f far = simd_f_mul(simd_f_copysign(big, t), simd_f_set1(lg->cap_out));
    /* tanh(t) / t = 1 - t^2/3 + 2t^4/15 - 17t^6/315 + 62t^8/2835 */
    const simd_f t2 = simd_f_mul(t, t);
    simd_f q = simd_f_set1(62.0f / 2835.0f);
    q = simd_f_fma(q, t2, simd_f_set1(-17.0f / 315.0f));
    q = simd_f_fma(q, t2, simd_f_set1(2.0f / 15.0f));
    q = simd_f_fma(q, t2, simd_f_set1(-1.0f / 3.0f));
    q = simd_f_fma(q, t2, one);
    const simd_f near = simd_f_mul(simd_f_mul(s, simd_f_set1(lg->small_mul)), q);
    return simd_f_blend_lt(a, simd_f_set1(ATTN_TANH_SERIES_BELOW), near, far);
}

/* ---- K/V rows widened to f32 ---------------------------------------------------------- */

/* Vector c (SIMD_LANES elements) of a K/V row. */
ATTN_INLINE simd_f attn_kv_vector(const moak_format FMT, const unsigned char *row, int32_t c)
{
    switch (FMT) {
    case MOAK_FORMAT_F16: return simd_f_load_f16(row + 2 * SIMD_LANES * (size_t)c);
    case MOAK_FORMAT_BF16: return simd_f_load_bf16(row + 2 * SIMD_LANES * (size_t)c);
    case MOAK_FORMAT_Q8_0: {
        /* block c / ATTN_Q8_CHUNKS = { f16 d; int8 q[32] } */
        const unsigned char *block = row + 34 * (size_t)(c / ATTN_Q8_CHUNKS);
        uint16_t half;
        memcpy(&half, block, 2);
        const int8_t *q = (const int8_t *)(const void *)(block + 2) + SIMD_LANES * (c % ATTN_Q8_CHUNKS);
        return simd_f_mul(simd_f_load_i8(q), simd_f_set1_f16(half));
    }
    default: return simd_f_load_w(row + 4 * SIMD_LANES * (size_t)c);
    }
}

/* Vectors c and c + 1 (c even) of a row: a Q8_0 block's scale is widened
 * once for both. */
ATTN_INLINE void attn_kv_vector_pair(const moak_format FMT, const unsigned char *row, int32_t c,
                                     simd_f *a, simd_f *b)
{
    if (FMT == MOAK_FORMAT_Q8_0) {
        const unsigned char *block = row + 34 * (size_t)(c / ATTN_Q8_CHUNKS);
        uint16_t half;
        memcpy(&half, block, 2);
        const simd_f scale = simd_f_set1_f16(half);
        const int8_t *q = (const int8_t *)(const void *)(block + 2) + SIMD_LANES * (c % ATTN_Q8_CHUNKS);
        *a = simd_f_mul(simd_f_load_i8(q), scale);
        *b = simd_f_mul(simd_f_load_i8(q + SIMD_LANES), scale);
    } else {
        *a = attn_kv_vector(FMT, row, c);
        *b = attn_kv_vector(FMT, row, c + 1);
    }
}

/* ---- K/V tile conversion (the tile path) ---------------------------------------------- */

ATTN_INLINE void attn_load_rows(const moak_format FMT, const unsigned char *const *rows, int32_t n,
                                int32_t dim, int32_t dim_pad, float *dst)
{
    for (int32_t j = 0; j < n; j++) {
        const unsigned char *src = rows[j];
        float *out = dst + (size_t)j * (size_t)dim_pad;
        if (FMT == MOAK_FORMAT_Q8_0) {
            /* Q8_0 head dims are multiples of 32: whole blocks */
            for (int32_t c = 0; c < dim / SIMD_LANES; c += 2) {
                simd_f a, b;
                attn_kv_vector_pair(FMT, src, c, &a, &b);
                simd_f_store(out + (size_t)c * SIMD_LANES, a);
                simd_f_store(out + (size_t)(c + 1) * SIMD_LANES, b);
            }
            continue;
        }
        int32_t c = 0;
        for (; (c + 1) * SIMD_LANES <= dim; c++)
            simd_f_store(out + (size_t)c * SIMD_LANES, attn_kv_vector(FMT, src, c));
        if (c * SIMD_LANES < dim_pad) {
            const int left = dim - c * SIMD_LANES;
            simd_f tail;
            switch (FMT) {
            case MOAK_FORMAT_F16: tail = simd_f_load_f16_part(src + 2 * SIMD_LANES * (size_t)c, left); break;
            case MOAK_FORMAT_BF16: tail = simd_f_load_bf16_part(src + 2 * SIMD_LANES * (size_t)c, left); break;
            default:
                tail = simd_f_load_part((const float *)(const void *)src + SIMD_LANES * (size_t)c, left);
                break;
            }
            simd_f_store(out + (size_t)c * SIMD_LANES, tail);
        }
    }
}

static void ATTN_NAME(attn_load_rows)(moak_format format, const unsigned char *const *rows, int32_t n,
                                      int32_t dim, int32_t dim_pad, float *dst)
{
    switch (format) {
    case MOAK_FORMAT_F16: attn_load_rows(MOAK_FORMAT_F16, rows, n, dim, dim_pad, dst); break;
    case MOAK_FORMAT_BF16: attn_load_rows(MOAK_FORMAT_BF16, rows, n, dim, dim_pad, dst); break;
    case MOAK_FORMAT_Q8_0: attn_load_rows(MOAK_FORMAT_Q8_0, rows, n, dim, dim_pad, dst); break;
    default: attn_load_rows(MOAK_FORMAT_F32, rows, n, dim, dim_pad, dst); break;
    }
}

/* ---- scores (the tile path) ------------------------------------------------------------ */

/* Keys per dot-product block: 4 rows x this many keys fill one vector of
 * sums. */
#define ATTN_DOT_KEYS (SIMD_LANES / 4)

/* R (1..4) query rows x ATTN_DOT_KEYS keys by dot products; the lanes
 * accumulators (key-major) are reduced by one transposing add tree whose
 * result holds key j's 4 row scores in lanes [4j, 4j + 4), stored into the
 * transposed score block (rows past R are zeros). */
ATTN_INLINE void attn_qk_dot_block(const int R, const float *q, int32_t dk_pad, const float *k,
                                   int32_t rows_pad, float *s)
{
    simd_f acc[SIMD_LANES];
#pragma GCC unroll 16
    for (int i = 0; i < SIMD_LANES; i++)
        acc[i] = simd_f_zero();
    for (int32_t d = 0; d < dk_pad; d += SIMD_LANES) {
        simd_f kv[ATTN_DOT_KEYS];
#pragma GCC unroll 4
        for (int j = 0; j < ATTN_DOT_KEYS; j++)
            kv[j] = simd_f_load(k + (size_t)j * (size_t)dk_pad + d);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const simd_f qv = simd_f_load(q + (size_t)r * (size_t)dk_pad + d);
#pragma GCC unroll 4
            for (int j = 0; j < ATTN_DOT_KEYS; j++)
                acc[4 * j + r] = simd_f_fma(qv, kv[j], acc[4 * j + r]);
        }
    }
    const simd_f w = simd_f_hsum_lanes(acc);
#pragma GCC unroll 4
    for (int j = 0; j < ATTN_DOT_KEYS; j++)
        simd_f_store4(s + (size_t)j * (size_t)rows_pad, w, j);
}

static void ATTN_NAME(attn_qk_dot)(const float *q, int32_t rows, int32_t rows_pad, int32_t dk_pad,
                                   const float *k, int32_t n, float *s)
{
    /* a block past n reads stale K rows of the tile; those scores are never used */
    for (int32_t r = 0; r < rows; r += 4) {
        const float *qr = q + (size_t)r * (size_t)dk_pad;
        for (int32_t j = 0; j < n; j += ATTN_DOT_KEYS) {
            const float *kj = k + (size_t)j * (size_t)dk_pad;
            float *sj = s + (size_t)j * (size_t)rows_pad + r;
            switch (rows - r) {
            case 1: attn_qk_dot_block(1, qr, dk_pad, kj, rows_pad, sj); break;
            case 2: attn_qk_dot_block(2, qr, dk_pad, kj, rows_pad, sj); break;
            case 3: attn_qk_dot_block(3, qr, dk_pad, kj, rows_pad, sj); break;
            default: attn_qk_dot_block(4, qr, dk_pad, kj, rows_pad, sj); break;
            }
        }
    }
}

/* J keys x RV vectors of q^T rows: per head dim, RV q^T vectors times J
 * broadcast K elements (J x RV accumulators). */
ATTN_INLINE void attn_qk_gemm_block(const int J, const int RV, const float *qt, int32_t rows_pad,
                                    int32_t dk_pad, const float *k, float *s)
{
    simd_f acc[ATTN_GEMM_KEYS][ATTN_GEMM_ROW_VECS];
#pragma GCC unroll 8
    for (int j = 0; j < J; j++)
#pragma GCC unroll 4
        for (int v = 0; v < RV; v++)
            acc[j][v] = simd_f_zero();
#pragma GCC unroll 2
    for (int32_t d = 0; d < dk_pad; d++) {
        simd_f qv[ATTN_GEMM_ROW_VECS];
#pragma GCC unroll 4
        for (int v = 0; v < RV; v++)
            qv[v] = simd_f_load(qt + (size_t)d * (size_t)rows_pad + SIMD_LANES * v);
#pragma GCC unroll 8
        for (int j = 0; j < J; j++) {
            const simd_f b = simd_f_set1(k[(size_t)j * (size_t)dk_pad + d]);
#pragma GCC unroll 4
            for (int v = 0; v < RV; v++)
                acc[j][v] = simd_f_fma(b, qv[v], acc[j][v]);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < J; j++)
#pragma GCC unroll 4
        for (int v = 0; v < RV; v++)
            simd_f_store(s + (size_t)j * (size_t)rows_pad + SIMD_LANES * v, acc[j][v]);
}

/* The row-vector count of a GEMM block, as a constant. */
#define ATTN_GEMM_ROWS_CASE(J)                                                                   \
    switch (rv) {                                                                                \
    case 1: attn_qk_gemm_block(J, 1, qt + r, rows_pad, dk_pad, kj, sj + r); break;              \
    case 2: attn_qk_gemm_block(J, ATTN_GEMM_ROW_VECS < 2 ? 1 : 2, qt + r, rows_pad, dk_pad, kj, sj + r); break; \
    case 3: attn_qk_gemm_block(J, ATTN_GEMM_ROW_VECS < 3 ? 1 : 3, qt + r, rows_pad, dk_pad, kj, sj + r); break; \
    default: attn_qk_gemm_block(J, ATTN_GEMM_ROW_VECS, qt + r, rows_pad, dk_pad, kj, sj + r); break; \
    }

static void ATTN_NAME(attn_qk_gemm)(const float *qt, int32_t rows_pad, int32_t dk_pad, const float *k,
                                    int32_t n, float *s)
{
    const int32_t row_step = SIMD_LANES * ATTN_GEMM_ROW_VECS;
    for (int32_t j = 0; j < n; j += ATTN_GEMM_KEYS) {
        const float *kj = k + (size_t)j * (size_t)dk_pad;
        float *sj = s + (size_t)j * (size_t)rows_pad;
        const int32_t keys = n - j < ATTN_GEMM_KEYS ? n - j : ATTN_GEMM_KEYS;
        for (int32_t r = 0; r < rows_pad; r += row_step) {
            const int32_t left = (rows_pad - r) / SIMD_LANES;
            const int32_t rv = left < ATTN_GEMM_ROW_VECS ? left : ATTN_GEMM_ROW_VECS;
            switch (keys) {
            case 1: ATTN_GEMM_ROWS_CASE(1) break;
            case 2: ATTN_GEMM_ROWS_CASE(ATTN_GEMM_KEYS < 2 ? 1 : 2) break;
            case 3: ATTN_GEMM_ROWS_CASE(ATTN_GEMM_KEYS < 3 ? 1 : 3) break;
            case 4: ATTN_GEMM_ROWS_CASE(ATTN_GEMM_KEYS < 4 ? 1 : 4) break;
            case 5: ATTN_GEMM_ROWS_CASE(ATTN_GEMM_KEYS < 5 ? 1 : 5) break;
            case 6: ATTN_GEMM_ROWS_CASE(ATTN_GEMM_KEYS < 6 ? 1 : 6) break;
            case 7: ATTN_GEMM_ROWS_CASE(ATTN_GEMM_KEYS < 7 ? 1 : 7) break;
            default: ATTN_GEMM_ROWS_CASE(ATTN_GEMM_KEYS) break;
            }
        }
    }
}

#undef ATTN_GEMM_ROWS_CASE

/* ---- online softmax, a vector of rows at a time (the tile path) -------------------------- */

static void ATTN_NAME(attn_softmax)(float *s, int32_t rows_pad, int32_t n, const int32_t *lo,
                                    const int32_t *hi, const cpu_attn_logits *lg, float *m, float *l,
                                    float *corr)
{
    const simd_f minus_inf = simd_f_set1(-INFINITY);
    const simd_f exp_mul = simd_f_set1(lg->exp_mul);
    for (int32_t r = 0; r < rows_pad; r += SIMD_LANES) {
        const simd_i vlo = simd_i_load(lo + r), vhi = simd_i_load(hi + r);
        /* pass 1: cap, mask, max */
        simd_f tile_max = minus_inf;
        for (int32_t j = 0; j < n; j++) {
            float *sj = s + (size_t)j * (size_t)rows_pad + r;
            simd_f x = simd_f_load(sj);
            if (lg->cap_in != 0.0f)
                x = attn_softcap(x, lg);
            x = simd_f_keep_in_range(x, vlo, vhi, simd_i_set1(j), minus_inf);
            simd_f_store(sj, x);
            tile_max = simd_f_max(tile_max, x);
        }
        const simd_f m_old = simd_f_load(m + r);
        const simd_f m_new = simd_f_max(m_old, tile_max);
        /* rows that have seen nothing yet subtract 0, so -inf - -inf never occurs */
        const simd_f m_sub = simd_f_neg_inf_to_zero(m_new);
        /* pass 2: p = 2^((x - m) exp_mul) and its sum */
        simd_f sum = simd_f_zero();
        for (int32_t j = 0; j < n; j++) {
            float *sj = s + (size_t)j * (size_t)rows_pad + r;
            const simd_f p = attn_exp2(simd_f_mul(simd_f_sub(simd_f_load(sj), m_sub), exp_mul));
            simd_f_store(sj, p);
            sum = simd_f_add(sum, p);
        }
        const simd_f c = attn_exp2(simd_f_mul(simd_f_sub(m_old, m_sub), exp_mul));
        simd_f_store(corr + r, c);
        simd_f_store(l + r, simd_f_fma(simd_f_load(l + r), c, sum));
        simd_f_store(m + r, m_new);
    }
}

/* ---- p.V (the tile path) ------------------------------------------------------------------ */

/* R rows x W vectors of output dims over n keys. */
ATTN_INLINE void attn_pv_block(const int R, const int W, const float *p, int32_t rows_pad, int32_t n,
                               const float *v, int32_t dv_pad, const float *corr, float *o)
{
    simd_f acc[ATTN_PV_ROWS][ATTN_PV_VECS];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        const simd_f c = simd_f_set1(corr[r]);
#pragma GCC unroll 4
        for (int w = 0; w < W; w++)
            acc[r][w] = simd_f_mul(simd_f_load(o + (size_t)r * (size_t)dv_pad + SIMD_LANES * w), c);
    }
    /* unrolled twice: the loop overhead otherwise costs ~5% of the FMA rate */
#pragma GCC unroll 2
    for (int32_t j = 0; j < n; j++) {
        simd_f vv[ATTN_PV_VECS];
#pragma GCC unroll 4
        for (int w = 0; w < W; w++)
            vv[w] = simd_f_load(v + (size_t)j * (size_t)dv_pad + SIMD_LANES * w);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const simd_f b = simd_f_set1(p[(size_t)j * (size_t)rows_pad + r]);
#pragma GCC unroll 4
            for (int w = 0; w < W; w++)
                acc[r][w] = simd_f_fma(b, vv[w], acc[r][w]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int w = 0; w < W; w++)
            simd_f_store(o + (size_t)r * (size_t)dv_pad + SIMD_LANES * w, acc[r][w]);
}

/* The width of a p.V block, as a constant. */
#define ATTN_PV_ROWS_CASE(R)                                                                     \
    switch (width) {                                                                             \
    case 1: attn_pv_block(R, 1, pr, rows_pad, n, vd, dv_pad, cr, od); break;                     \
    case 2: attn_pv_block(R, ATTN_PV_VECS < 2 ? 1 : 2, pr, rows_pad, n, vd, dv_pad, cr, od); break; \
    case 3: attn_pv_block(R, ATTN_PV_VECS < 3 ? 1 : 3, pr, rows_pad, n, vd, dv_pad, cr, od); break; \
    default: attn_pv_block(R, ATTN_PV_VECS, pr, rows_pad, n, vd, dv_pad, cr, od); break;         \
    }

/* Output dims outer, rows inner: a slice of the V tile stays in L1 while
 * every row block reads it. */
static void ATTN_NAME(attn_pv)(const float *p, int32_t rows, int32_t rows_pad, int32_t n, const float *v,
                               int32_t dv_pad, const float *corr, float *o)
{
    const int32_t dim_step = SIMD_LANES * ATTN_PV_VECS;
    for (int32_t d = 0; d < dv_pad; d += dim_step) {
        const int32_t left = (dv_pad - d) / SIMD_LANES;
        const int32_t width = left < ATTN_PV_VECS ? left : ATTN_PV_VECS;
        const float *vd = v + d;
        for (int32_t r = 0; r < rows; r += ATTN_PV_ROWS) {
            const float *pr = p + r;
            const float *cr = corr + r;
            float *od = o + (size_t)r * (size_t)dv_pad + d;
            switch (rows - r) {
            case 1: ATTN_PV_ROWS_CASE(1) break;
            case 2: ATTN_PV_ROWS_CASE(ATTN_PV_ROWS < 2 ? 1 : 2) break;
            case 3: ATTN_PV_ROWS_CASE(ATTN_PV_ROWS < 3 ? 1 : 3) break;
            case 4: ATTN_PV_ROWS_CASE(ATTN_PV_ROWS < 4 ? 1 : 4) break;
            case 5: ATTN_PV_ROWS_CASE(ATTN_PV_ROWS < 5 ? 1 : 5) break;
            default: ATTN_PV_ROWS_CASE(ATTN_PV_ROWS) break;
            }
        }
    }
}

#undef ATTN_PV_ROWS_CASE

/* ---- the fused small-tile path (decode) ------------------------------------------------ */

/* Combine the lanes of each row (lanes i, i ^ rp, i ^ 2rp, ...): max or sum. */
ATTN_INLINE simd_f attn_fold_rows(const int RP, simd_f v, bool max)
{
#pragma GCC unroll 4
    for (int dist = SIMD_LANES / 2; dist >= RP; dist /= 2) {
        const simd_f w = simd_f_swap_lanes(v, dist);
        v = max ? simd_f_max(v, w) : simd_f_add(v, w);
    }
    return v;
}

/* acc[kk * RP + r] += q row r's vector c times key kk's vector kv[kk]. */
ATTN_INLINE void attn_fused_fma(const int RP, const cpu_attn_fused *f, int32_t c, const simd_f *kv,
                                simd_f *acc)
{
    const int KPV = SIMD_LANES / RP;
#pragma GCC unroll 16
    for (int r = 0; r < RP; r++) {
        simd_f qv = simd_f_load(f->q + ((size_t)c * RP + (size_t)r) * SIMD_LANES);
        SIMD_F_IN_REGISTER(qv);
#pragma GCC unroll 16
        for (int kk = 0; kk < KPV; kk++)
            acc[kk * RP + r] = simd_f_fma(qv, kv[kk], acc[kk * RP + r]);
    }
}

/* Scores of the block's n keys: vector g holds keys g*KPV .. g*KPV+KPV-1.
 * A group's keys past n repeat key n-1 (nothing is read past the block;
 * those lanes are masked). */
ATTN_INLINE void attn_fused_scores(const int RP, const moak_format FMT, cpu_attn_fused *f,
                                   const unsigned char *k, size_t k_stride, const unsigned char *v,
                                   size_t v_stride, int32_t n)
{
    const int KPV = SIMD_LANES / RP;
    const int32_t chunks = f->dk / SIMD_LANES;
    const int32_t groups = (n + KPV - 1) / KPV;
    const bool pairs = ATTN_Q8_PAIR && FMT == MOAK_FORMAT_Q8_0;
    const cpu_attn_prefetch pf = cpu_attn_prefetch_plan(f, k, v, v_stride, n, groups);
    for (int32_t g = 0; g < groups; g++) {
        cpu_attn_prefetch_group(&pf, g);
        const unsigned char *kr[SIMD_LANES];
#pragma GCC unroll 16
        for (int kk = 0; kk < KPV; kk++) {
            const int32_t j = g * KPV + kk < n ? g * KPV + kk : n - 1;
            kr[kk] = k + (size_t)j * k_stride;
        }
        simd_f acc[SIMD_LANES];
#pragma GCC unroll 16
        for (int i = 0; i < SIMD_LANES; i++)
            acc[i] = simd_f_zero();
        /* Q8_0 with ATTN_Q8_PAIR: two vectors (one scale) per step; Q8_0
         * head dims are multiples of 32, so chunks is even */
        for (int32_t c = 0; c < chunks && pairs; c += 2) {
            simd_f kv[SIMD_LANES], kw[SIMD_LANES];
#pragma GCC unroll 16
            for (int kk = 0; kk < KPV; kk++)
                attn_kv_vector_pair(FMT, kr[kk], c, &kv[kk], &kw[kk]);
            attn_fused_fma(RP, f, c, kv, acc);
            attn_fused_fma(RP, f, c + 1, kw, acc);
        }
#pragma GCC unroll 2
        for (int32_t c = 0; c < chunks && !pairs; c++) {
            simd_f kv[SIMD_LANES];
#pragma GCC unroll 16
            for (int kk = 0; kk < KPV; kk++)
                kv[kk] = attn_kv_vector(FMT, kr[kk], c);
            attn_fused_fma(RP, f, c, kv, acc);
        }
        simd_f_store(f->s + SIMD_LANES * (size_t)g, simd_f_hsum_lanes(acc));
    }
}

/* Online-softmax update of the block in lane layout: caps, masks, the new
 * max, p = 2^((x - m) exp_mul) in place, l, corr. */
ATTN_INLINE void attn_fused_softmax(const int RP, cpu_attn_fused *f, int32_t n, bool all_visible)
{
    const int KPV = SIMD_LANES / RP;
    const int32_t groups = (n + KPV - 1) / KPV;
    const simd_f minus_inf = simd_f_set1(-INFINITY);
    const simd_f exp_mul = simd_f_set1(f->logits.exp_mul);
    const bool capped = f->logits.cap_in != 0.0f;
    const bool mask = !all_visible || n % KPV != 0;
    /* lane i (row r = i % RP, key offset kk = i / RP) sees the group's
     * first key g*KPV iff lo[r] - kk <= g*KPV < min(hi[r], n) - kk */
    simd_i vlo = simd_i_set1(0), vhi = simd_i_set1(0);
    if (mask) {
        int32_t lo[SIMD_LANES], hi[SIMD_LANES];
        for (int i = 0; i < SIMD_LANES; i++) {
            const int32_t r = i % RP, kk = i / RP;
            lo[i] = f->lo[r] - kk;
            hi[i] = (f->hi[r] < n ? f->hi[r] : n) - kk;
        }
        vlo = simd_i_load(lo);
        vhi = simd_i_load(hi);
    }
    simd_f block_max = minus_inf;
    for (int32_t g = 0; g < groups; g++) {
        simd_f x = simd_f_load(f->s + SIMD_LANES * (size_t)g);
        if (capped)
            x = attn_softcap(x, &f->logits);
        if (mask)
            x = simd_f_keep_in_range(x, vlo, vhi, simd_i_set1(g * KPV), minus_inf);
        if (mask || capped)
            simd_f_store(f->s + SIMD_LANES * (size_t)g, x);
        block_max = simd_f_max(block_max, x);
    }
    const simd_f m_old = simd_f_load(f->m);
    const simd_f m_new = simd_f_max(m_old, attn_fold_rows(RP, block_max, true));
    /* rows that have seen nothing yet subtract 0, so -inf - -inf never occurs */
    const simd_f m_sub = simd_f_neg_inf_to_zero(m_new);
    simd_f sum = simd_f_zero();
    for (int32_t g = 0; g < groups; g++) {
        const simd_f x = simd_f_load(f->s + SIMD_LANES * (size_t)g);
        const simd_f p = attn_exp2(simd_f_mul(simd_f_sub(x, m_sub), exp_mul));
        simd_f_store(f->s + SIMD_LANES * (size_t)g, p);
        sum = simd_f_add(sum, p);
    }
    const simd_f c = attn_exp2(simd_f_mul(simd_f_sub(m_old, m_sub), exp_mul));
    simd_f_store(f->corr, c);
    simd_f_store(f->l, simd_f_fma(simd_f_load(f->l), c, attn_fold_rows(RP, sum, false)));
    simd_f_store(f->m, m_new);
}

/* O[r][vectors c0 .. c0+W) = O * corr[r] + sum_j p[r][j] v[j]: RP rows x W
 * vectors, each V vector widened once for all rows. */
ATTN_INLINE void attn_fused_pv(const int RP, const int W, const moak_format FMT, cpu_attn_fused *f,
                               const unsigned char *v, size_t v_stride, int32_t n, int32_t c0)
{
    const int KPV = SIMD_LANES / RP;
    const bool pairs = ATTN_Q8_PAIR && FMT == MOAK_FORMAT_Q8_0 && c0 % 2 == 0;
    simd_f acc[SIMD_LANES][8];
#pragma GCC unroll 16
    for (int r = 0; r < RP; r++) {
        const simd_f c = simd_f_set1(f->corr[r]);
#pragma GCC unroll 8
        for (int w = 0; w < W; w++)
            acc[r][w] = simd_f_mul(simd_f_load(f->o + (size_t)r * (size_t)f->dv_pad + SIMD_LANES * (size_t)(c0 + w)), c);
    }
    /* a group of KPV keys per step, so that every p is at a fixed offset;
     * keys past n in the last group have p = 0 and repeat row n - 1 */
    for (int32_t j0 = 0; j0 < n; j0 += KPV) {
        const float *p = f->s + (size_t)j0 * RP;
#pragma GCC unroll 16
        for (int kk = 0; kk < KPV; kk++) {
            const int32_t j = j0 + kk < n ? j0 + kk : n - 1;
            const unsigned char *row = v + (size_t)j * v_stride;
            simd_f vv[8];
#pragma GCC unroll 8
            for (int w = 0; w < W; w += 2) {
                if (w + 1 < W && pairs)
                    attn_kv_vector_pair(FMT, row, c0 + w, &vv[w], &vv[w + 1]);
                else {
                    vv[w] = attn_kv_vector(FMT, row, c0 + w);
                    if (w + 1 < W)
                        vv[w + 1] = attn_kv_vector(FMT, row, c0 + w + 1);
                }
            }
#pragma GCC unroll 16
            for (int r = 0; r < RP; r++) {
                const simd_f b = simd_f_set1(p[kk * RP + r]);
#pragma GCC unroll 8
                for (int w = 0; w < W; w++)
                    acc[r][w] = simd_f_fma(b, vv[w], acc[r][w]);
            }
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < RP; r++)
#pragma GCC unroll 8
        for (int w = 0; w < W; w++)
            simd_f_store(f->o + (size_t)r * (size_t)f->dv_pad + SIMD_LANES * (size_t)(c0 + w), acc[r][w]);
}

ATTN_INLINE void attn_fused_block(const int RP, const moak_format FMT, cpu_attn_fused *f,
                                  const unsigned char *k, size_t k_stride, const unsigned char *v,
                                  size_t v_stride, int32_t n, bool all_visible)
{
    const int WIDTH = ATTN_FUSED_PV_WIDTH(RP, FMT);
    attn_fused_scores(RP, FMT, f, k, k_stride, v, v_stride, n);
    attn_fused_softmax(RP, f, n, all_visible);
    const int32_t chunks = f->dv / SIMD_LANES;
    int32_t c0 = 0;
    for (; c0 + WIDTH <= chunks; c0 += WIDTH)
        attn_fused_pv(RP, WIDTH, FMT, f, v, v_stride, n, c0);
    for (; c0 < chunks; c0++)
        attn_fused_pv(RP, 1, FMT, f, v, v_stride, n, c0);
}

/* One fused kernel per (KV format, padded rows), named so:
 * attn_fused_decode_<format>_r<rows>_<isa>. */
#define ATTN_FUSED_KERNEL(FMT_NAME, FMT, RP)                                                     \
    static void ATTN_NAME(attn_fused_decode_##FMT_NAME##_r##RP)(                                 \
        cpu_attn_fused * f, const unsigned char *k, size_t ks, const unsigned char *v,          \
        size_t vs, int32_t n, bool all)                                                          \
    {                                                                                            \
        attn_fused_block(RP < SIMD_LANES ? RP : SIMD_LANES, FMT, f, k, ks, v, vs, n, all);       \
    }
#define ATTN_FUSED_KERNELS(RP)                                                                   \
    ATTN_FUSED_KERNEL(f32, MOAK_FORMAT_F32, RP)                                                  \
    ATTN_FUSED_KERNEL(f16, MOAK_FORMAT_F16, RP)                                                  \
    ATTN_FUSED_KERNEL(bf16, MOAK_FORMAT_BF16, RP)                                                \
    ATTN_FUSED_KERNEL(q8_0, MOAK_FORMAT_Q8_0, RP)
ATTN_FUSED_KERNELS(1)
ATTN_FUSED_KERNELS(2)
ATTN_FUSED_KERNELS(4)
#if SIMD_LANES >= 8
ATTN_FUSED_KERNELS(8)
#endif
#if SIMD_LANES >= 16
ATTN_FUSED_KERNELS(16)
#endif
#undef ATTN_FUSED_KERNELS
#undef ATTN_FUSED_KERNEL

#define ATTN_FUSED_FORMATS(RP)                                                                   \
    switch (f->format) {                                                                         \
    case MOAK_FORMAT_F16: ATTN_NAME(attn_fused_decode_f16_r##RP)(f, k, ks, v, vs, n, all); return; \
    case MOAK_FORMAT_BF16: ATTN_NAME(attn_fused_decode_bf16_r##RP)(f, k, ks, v, vs, n, all); return; \
    case MOAK_FORMAT_Q8_0: ATTN_NAME(attn_fused_decode_q8_0_r##RP)(f, k, ks, v, vs, n, all); return; \
    default: ATTN_NAME(attn_fused_decode_f32_r##RP)(f, k, ks, v, vs, n, all); return;            \
    }

static void ATTN_NAME(attn_fused_decode)(cpu_attn_fused *f, const unsigned char *k, size_t ks,
                                         const unsigned char *v, size_t vs, int32_t n, bool all)
{
    switch (f->rp) {
    case 1: ATTN_FUSED_FORMATS(1)
    case 2: ATTN_FUSED_FORMATS(2)
#if SIMD_LANES >= 8
    case 4: ATTN_FUSED_FORMATS(4)
#if SIMD_LANES >= 16
    case 8: ATTN_FUSED_FORMATS(8)
    default: ATTN_FUSED_FORMATS(16)
#else
    default: ATTN_FUSED_FORMATS(8)
#endif
#else
    default: ATTN_FUSED_FORMATS(4)
#endif
    }
}

#undef ATTN_FUSED_FORMATS

const cpu_attn_kernels ATTN_CAT(cpu_attn_kernels, ATTN_ISA) = {
    .isa = ATTN_ISA_NAME,
    .lanes = SIMD_LANES,
    .gemm_min_rows = 16,
    .load_rows = ATTN_NAME(attn_load_rows),
    .qk_dot = ATTN_NAME(attn_qk_dot),
    .qk_gemm = ATTN_NAME(attn_qk_gemm),
    .softmax = ATTN_NAME(attn_softmax),
    .pv = ATTN_NAME(attn_pv),
    .fused_max_rows = SIMD_LANES,
    .fused_block = ATTN_NAME(attn_fused_decode),
};
