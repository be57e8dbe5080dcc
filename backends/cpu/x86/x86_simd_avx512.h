/* The vector vocabulary the x86 kernel bodies are written in, mapped to
 * AVX-512 (F/BW/VL + VNNI): 16 int32/f32 lanes, vpdpbusd for u8 x s8 dots.
 * Included only by files compiled with the AVX-512 flags. */
#ifndef MOAK_X86_SIMD_AVX512_H
#define MOAK_X86_SIMD_AVX512_H

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) || \
    !defined(__AVX512VNNI__) || !defined(__F16C__) || !defined(__FMA__)
#  error "x86_simd_avx512.h needs the AVX-512 F/BW/VL/VNNI + FMA + F16C flags (@AVX512_CFLAGS@)"
#endif

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define SIMD_LANES 16
#define SIMD_MAX_TOKENS_1 6   /* 2 vectors x 6 tokens x (int + float acc) = 24 zmm */
#define SIMD_MAX_TOKENS_2 3   /* 4 vectors x 3 tokens x 2 = 24 zmm */
#define SIMD_DOT8_OFFSET 128  /* vpdpbusd takes the +128 weights as unsigned */
/* Prefill panel kernel (gemm_panel_body.h): tokens per register tile with one
 * and with two panels (2 x 6 and 4 x 3 int32 + f32 sums: 24 zmm). */
#define GEMM_PANEL_TOKENS_1 6
#define GEMM_PANEL_TOKENS_2 3

typedef __m512i simd_i;
typedef __m512 simd_f;

static inline simd_i simd_i_zero(void) { return _mm512_setzero_si512(); }
static inline simd_i simd_i_load(const void *p) { return _mm512_loadu_si512(p); }
static inline void simd_i_store(void *p, simd_i v) { _mm512_storeu_si512(p, v); }
static inline simd_i simd_i_low_nibbles(simd_i v) { return _mm512_and_si512(v, _mm512_set1_epi8(0x0F)); }
static inline simd_i simd_i_high_nibbles(simd_i v)
{
    return _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F));
}
static inline simd_i simd_i_bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}
static inline simd_i simd_i_sub_scalar(simd_i a, int32_t b) { return _mm512_sub_epi32(a, _mm512_set1_epi32(b)); }
static inline simd_i simd_i_add(simd_i a, simd_i b) { return _mm512_add_epi32(a, b); }
/* acc += sum of 4 products of unsigned nibbles (0..15) and signed bytes. */
static inline simd_i simd_dot4(simd_i acc, simd_i w, simd_i x) { return _mm512_dpbusd_epi32(acc, w, x); }
/* acc += sum of 4 products of (q + 128) and signed bytes (SIMD_DOT8_OFFSET). */
static inline simd_i simd_dot8(simd_i acc, simd_i w, simd_i x) { return _mm512_dpbusd_epi32(acc, w, x); }

static inline simd_f simd_f_zero(void) { return _mm512_setzero_ps(); }
static inline simd_f simd_f_set1(float v) { return _mm512_set1_ps(v); }
static inline simd_f simd_f_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void simd_f_store(float *p, simd_f v) { _mm512_storeu_ps(p, v); }
static inline simd_f simd_f_load_w(const void *p) { return _mm512_loadu_ps(p); }
static inline simd_f simd_f_load_f16(const void *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
static inline simd_f simd_f_load_bf16(const void *p)
{
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
static inline simd_f simd_f_from_i(simd_i v) { return _mm512_cvtepi32_ps(v); }
static inline simd_f simd_f_fma(simd_f a, simd_f b, simd_f c) { return _mm512_fmadd_ps(a, b, c); }
static inline simd_f simd_f_mul(simd_f a, simd_f b) { return _mm512_mul_ps(a, b); }
static inline simd_f simd_f_add(simd_f a, simd_f b) { return _mm512_add_ps(a, b); }

static inline simd_f simd_f_sub(simd_f a, simd_f b) { return _mm512_sub_ps(a, b); }
static inline simd_f simd_f_div(simd_f a, simd_f b) { return _mm512_div_ps(a, b); }
static inline simd_f simd_f_min(simd_f a, simd_f b) { return _mm512_min_ps(a, b); }
static inline simd_f simd_f_max(simd_f a, simd_f b) { return _mm512_max_ps(a, b); }
static inline simd_f simd_f_round(simd_f a)
{
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* 2^n for integral n in [-126, 127]. */
static inline simd_f simd_f_exp2_int(simd_f n)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}
static inline simd_f simd_f_abs(simd_f a) { return _mm512_abs_ps(a); }
/* |mag| with the sign of sign. */
static inline simd_f simd_f_copysign(simd_f mag, simd_f sign)
{
    __m512i m = _mm512_set1_epi32((int)0x80000000u);
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_andnot_si512(m, _mm512_castps_si512(mag)),
                                               _mm512_and_si512(m, _mm512_castps_si512(sign))));
}

/* ---- what the attention body (backends/cpu/attention_body.h) needs ---- */

/* Four lanes [4 part, 4 part + 4) of v stored at p. */
static inline void simd_f_store4(float *p, simd_f v, int part)
{
    switch (part) {
    case 0: _mm_storeu_ps(p, _mm512_castps512_ps128(v)); break;
    case 1: _mm_storeu_ps(p, _mm512_extractf32x4_ps(v, 1)); break;
    case 2: _mm_storeu_ps(p, _mm512_extractf32x4_ps(v, 2)); break;
    default: _mm_storeu_ps(p, _mm512_extractf32x4_ps(v, 3)); break;
    }
}
/* The first n (< 16) elements, zeros after; nothing past them is read. */
static inline __mmask16 simd_lanes_avx512(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }
static inline simd_f simd_f_load_part(const float *p, int n) { return _mm512_maskz_loadu_ps(simd_lanes_avx512(n), p); }
static inline simd_f simd_f_load_f16_part(const void *p, int n)
{
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(simd_lanes_avx512(n), p));
}
static inline simd_f simd_f_load_bf16_part(const void *p, int n)
{
    __m256i h = _mm256_maskz_loadu_epi16(simd_lanes_avx512(n), p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
/* 16 signed bytes widened to f32. */
static inline simd_f simd_f_load_i8(const int8_t *p)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)));
}
/* The binary16 value h in every lane. */
static inline simd_f simd_f_set1_f16(uint16_t h) { return _mm512_set1_ps(_cvtsh_ss(h)); }
/* p * 2^n for integral n in [-64, 127] (vscalefps: one instruction). */
static inline simd_f simd_f_scale_exp2(simd_f p, simd_f n) { return _mm512_scalef_ps(p, n); }
/* v where x >= bound, else 0. */
static inline simd_f simd_f_keep_ge(simd_f v, simd_f x, float bound)
{
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(bound), _CMP_GE_OQ), v);
}
/* if_less where a < b, else otherwise. */
static inline simd_f simd_f_blend_lt(simd_f a, simd_f b, simd_f if_less, simd_f otherwise)
{
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), otherwise, if_less);
}
/* 0 where v is -inf, else v. */
static inline simd_f simd_f_neg_inf_to_zero(simd_f v)
{
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ), v,
                                _mm512_setzero_ps());
}
static inline simd_i simd_i_set1(int32_t v) { return _mm512_set1_epi32(v); }
/* x where lo <= j < hi (int32 lanes), else fill. */
static inline simd_f simd_f_keep_in_range(simd_f x, simd_i lo, simd_i hi, simd_i j, simd_f fill)
{
    return _mm512_mask_blend_ps(_mm512_cmple_epi32_mask(lo, j) & _mm512_cmplt_epi32_mask(j, hi), fill, x);
}
/* Lane i: the sum of a[i]'s 16 lanes (a transposing add tree, 45 shuffles
 * and adds for 16 sums). */
static inline simd_f simd_f_hsum_lanes(const simd_f *a)
{
    __m512 t[8], u[4];
    for (int i = 0; i < 8; i++) /* 128-bit lane c: (a0, a1, a0, a1) partials */
        t[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                             _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 4; i++) /* lane c: a[4i..4i+3] summed over lane c */
        u[i] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * i], t[2 * i + 1], 0x44),
                             _mm512_shuffle_ps(t[2 * i], t[2 * i + 1], 0xEE));
    const __m512 v01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x44),
                                     _mm512_shuffle_f32x4(u[0], u[1], 0xEE));
    const __m512 v23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x44),
                                     _mm512_shuffle_f32x4(u[2], u[3], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_f32x4(v01, v23, 0x88), _mm512_shuffle_f32x4(v01, v23, 0xDD));
}
/* Lane i gets lane i ^ dist (dist a power of two below 16). */
static inline simd_f simd_f_swap_lanes(simd_f v, int dist)
{
    switch (dist) {
    case 8: return _mm512_shuffle_f32x4(v, v, 0x4E);
    case 4: return _mm512_shuffle_f32x4(v, v, 0xB1);
    case 2: return _mm512_permute_ps(v, 0x4E);
    default: return _mm512_permute_ps(v, 0xB1);
    }
}
/* Keep a value in a register: folded into each FMA that uses it, a load
 * would be repeated per use and loads, not FMAs, would set the pace. */
#define SIMD_F_IN_REGISTER(v) __asm__("" : "+v"(v))

#endif
