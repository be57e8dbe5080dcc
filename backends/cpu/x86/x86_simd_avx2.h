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

#endif
