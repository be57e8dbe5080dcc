/* The vector vocabulary of the x86 kernel bodies mapped to AVX2 + FMA + F16C:
 * 8 int32/f32 lanes.  With MOAK_X86_AVXVNNI defined (files compiled with
 * -mavxvnni) the int8 dots are AVX-VNNI vpdpbusd; without it they are
 * vpmaddubsw + vpmaddwd, and 8-bit weights are multiplied as signed bytes
 * (vpmaddubsw saturates int16 on 255 x 127 pairs, 127 x 127 pairs fit). */
#ifndef MOAK_X86_SIMD_AVX2_H
#define MOAK_X86_SIMD_AVX2_H

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#  error "x86_simd_avx2.h needs the AVX2 + FMA + F16C flags (@AVX2_CFLAGS@)"
#endif
#if defined(MOAK_X86_AVXVNNI) && !defined(__AVXVNNI__)
#  error "the AVX-VNNI variant needs -mavxvnni (@AVXVNNI_CFLAGS@)"
#endif

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define SIMD_LANES 8
#define SIMD_MAX_TOKENS_1 2   /* 2 vectors x 2 tokens x (int + float acc) = 8 ymm */
#define SIMD_MAX_TOKENS_2 1
/* Prefill panel kernel (gemm_panel_body.h): 2 x 2 int32 + f32 sums (8 ymm). */
#define GEMM_PANEL_TOKENS_1 2
#define GEMM_PANEL_TOKENS_2 1
#ifdef MOAK_X86_AVXVNNI
#  define SIMD_DOT8_OFFSET 128
#else
#  define SIMD_DOT8_OFFSET 0  /* signed product: no offset to remove */
#endif

typedef __m256i simd_i;
typedef __m256 simd_f;

static inline simd_i simd_i_zero(void) { return _mm256_setzero_si256(); }
static inline simd_i simd_i_load(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline void simd_i_store(void *p, simd_i v) { _mm256_storeu_si256((__m256i *)p, v); }
static inline simd_i simd_i_low_nibbles(simd_i v) { return _mm256_and_si256(v, _mm256_set1_epi8(0x0F)); }
static inline simd_i simd_i_high_nibbles(simd_i v)
{
    return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F));
}
static inline simd_i simd_i_bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}
static inline simd_i simd_i_sub_scalar(simd_i a, int32_t b) { return _mm256_sub_epi32(a, _mm256_set1_epi32(b)); }
static inline simd_i simd_i_add(simd_i a, simd_i b) { return _mm256_add_epi32(a, b); }
#ifdef MOAK_X86_AVXVNNI
static inline simd_i simd_dot4(simd_i acc, simd_i w, simd_i x) { return _mm256_dpbusd_avx_epi32(acc, w, x); }
static inline simd_i simd_dot8(simd_i acc, simd_i w, simd_i x) { return _mm256_dpbusd_avx_epi32(acc, w, x); }
#else
static inline simd_i simd_dot4(simd_i acc, simd_i w, simd_i x)
{
    simd_i pairs = _mm256_maddubs_epi16(w, x); /* 2 x 15 x 127 fits int16 */
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}
static inline simd_i simd_dot8(simd_i acc, simd_i w, simd_i x)
{
    simd_i ws = _mm256_xor_si256(w, _mm256_set1_epi8((char)0x80)); /* back to signed q */
    simd_i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(ws, ws), _mm256_sign_epi8(x, ws));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}
/* The prefill panel kernel prepares 8-bit weights as |q| and q once per
 * chunk (gemm_panel_body.h), leaving sign + vpmaddubsw + vpmaddwd + add per
 * dot instead of six operations.  |-128| is 128 as the unsigned operand. */
#define SIMD_DOT8_PREPARED 1
static inline simd_i simd_i_abs8(simd_i v) { return _mm256_abs_epi8(v); }
/* Packed 8-bit quants are stored + 128 (x86_kernels.h): back to signed. */
static inline simd_i simd_i_signed8(simd_i stored) { return _mm256_xor_si256(stored, _mm256_set1_epi8((char)0x80)); }
static inline simd_i simd_dot8_prepared(simd_i acc, simd_i w_abs, simd_i w, simd_i x)
{
    simd_i pairs = _mm256_maddubs_epi16(w_abs, _mm256_sign_epi8(x, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}
#endif

static inline simd_f simd_f_zero(void) { return _mm256_setzero_ps(); }
static inline simd_f simd_f_set1(float v) { return _mm256_set1_ps(v); }
static inline simd_f simd_f_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void simd_f_store(float *p, simd_f v) { _mm256_storeu_ps(p, v); }
static inline simd_f simd_f_load_w(const void *p) { return _mm256_loadu_ps((const float *)p); }
static inline simd_f simd_f_load_f16(const void *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
static inline simd_f simd_f_load_bf16(const void *p)
{
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
static inline simd_f simd_f_from_i(simd_i v) { return _mm256_cvtepi32_ps(v); }
static inline simd_f simd_f_fma(simd_f a, simd_f b, simd_f c) { return _mm256_fmadd_ps(a, b, c); }
static inline simd_f simd_f_mul(simd_f a, simd_f b) { return _mm256_mul_ps(a, b); }
static inline simd_f simd_f_add(simd_f a, simd_f b) { return _mm256_add_ps(a, b); }

static inline simd_f simd_f_sub(simd_f a, simd_f b) { return _mm256_sub_ps(a, b); }
static inline simd_f simd_f_div(simd_f a, simd_f b) { return _mm256_div_ps(a, b); }
static inline simd_f simd_f_min(simd_f a, simd_f b) { return _mm256_min_ps(a, b); }
static inline simd_f simd_f_max(simd_f a, simd_f b) { return _mm256_max_ps(a, b); }
static inline simd_f simd_f_round(simd_f a)
{
    return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* 2^n for integral n in [-126, 127]. */
static inline simd_f simd_f_exp2_int(simd_f n)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}
static inline simd_f simd_f_abs(simd_f a)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a);
}
/* |mag| with the sign of sign. */
static inline simd_f simd_f_copysign(simd_f mag, simd_f sign)
{
    __m256 m = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(m, mag), _mm256_and_ps(m, sign));
}

/* ---- what the attention body (backends/cpu/attention_body.h) needs ---- */

/* Four lanes [4 part, 4 part + 4) of v stored at p. */
static inline void simd_f_store4(float *p, simd_f v, int part)
{
    _mm_storeu_ps(p, part == 0 ? _mm256_castps256_ps128(v) : _mm256_extractf128_ps(v, 1));
}
/* The first n (< 8) elements, zeros after; nothing past them is read. */
static inline simd_f simd_f_load_part(const float *p, int n)
{
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_maskload_ps(p, mask);
}
static inline __m128i simd_load16_part_avx2(const void *p, int n)
{
    uint16_t buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(buf, p, (size_t)n * 2);
    return _mm_loadu_si128((const __m128i *)(const void *)buf);
}
static inline simd_f simd_f_load_f16_part(const void *p, int n)
{
    return _mm256_cvtph_ps(simd_load16_part_avx2(p, n));
}
static inline simd_f simd_f_load_bf16_part(const void *p, int n)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(simd_load16_part_avx2(p, n)), 16));
}
/* 8 signed bytes widened to f32. */
static inline simd_f simd_f_load_i8(const int8_t *p)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p)));
}
/* The binary16 value h in every lane. */
static inline simd_f simd_f_set1_f16(uint16_t h) { return _mm256_set1_ps(_cvtsh_ss(h)); }
/* p * 2^n for integral n in [-126, 127]. */
static inline simd_f simd_f_scale_exp2(simd_f p, simd_f n) { return _mm256_mul_ps(p, simd_f_exp2_int(n)); }
/* v where x >= bound, else 0. */
static inline simd_f simd_f_keep_ge(simd_f v, simd_f x, float bound)
{
    return _mm256_and_ps(v, _mm256_cmp_ps(x, _mm256_set1_ps(bound), _CMP_GE_OQ));
}
/* if_less where a < b, else otherwise. */
static inline simd_f simd_f_blend_lt(simd_f a, simd_f b, simd_f if_less, simd_f otherwise)
{
    return _mm256_blendv_ps(otherwise, if_less, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
}
/* 0 where v is -inf, else v. */
static inline simd_f simd_f_neg_inf_to_zero(simd_f v)
{
    return _mm256_blendv_ps(v, _mm256_setzero_ps(), _mm256_cmp_ps(v, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ));
}
static inline simd_i simd_i_set1(int32_t v) { return _mm256_set1_epi32(v); }
/* x where lo <= j < hi (int32 lanes), else fill. */
static inline simd_f simd_f_keep_in_range(simd_f x, simd_i lo, simd_i hi, simd_i j, simd_f fill)
{
    const __m256i visible = _mm256_andnot_si256(_mm256_cmpgt_epi32(lo, j), _mm256_cmpgt_epi32(hi, j));
    return _mm256_blendv_ps(fill, x, _mm256_castsi256_ps(visible));
}
/* Lane i: the sum of a[i]'s 8 lanes (21 shuffles and adds). */
static inline simd_f simd_f_hsum_lanes(const simd_f *a)
{
    __m256 t[4], u[2];
    for (int i = 0; i < 4; i++) /* 128-bit lane c: (a0, a1, a0, a1) partials */
        t[i] = _mm256_add_ps(_mm256_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                             _mm256_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 2; i++) /* lane c: a[4i..4i+3] summed over lane c */
        u[i] = _mm256_add_ps(_mm256_shuffle_ps(t[2 * i], t[2 * i + 1], 0x44),
                             _mm256_shuffle_ps(t[2 * i], t[2 * i + 1], 0xEE));
    return _mm256_add_ps(_mm256_permute2f128_ps(u[0], u[1], 0x20), _mm256_permute2f128_ps(u[0], u[1], 0x31));
}
/* Lane i gets lane i ^ dist (dist a power of two below 8). */
static inline simd_f simd_f_swap_lanes(simd_f v, int dist)
{
    switch (dist) {
    case 4: return _mm256_permute2f128_ps(v, v, 0x01);
    case 2: return _mm256_permute_ps(v, 0x4E);
    default: return _mm256_permute_ps(v, 0xB1);
    }
}
/* 16 ymm registers: pinning q vectors would spill the accumulators. */
#define SIMD_F_IN_REGISTER(v) ((void)0)

#endif
