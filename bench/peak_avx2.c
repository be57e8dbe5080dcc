/*
 * AVX2 + FMA measuring loops of moak-bench's roofline (built with
 * @AVX2_CFLAGS@, run only when the probe reports AVX2 and FMA).
 *   read: 256-byte blocks as eight 32-byte loads folded by XOR;
 *   fp32: 12 independent 8-wide FMA chains (2 FMA ports x 4-5 cycles latency);
 *   int8 without VNNI: vpmaddubsw + vpmaddwd + vpaddd, 32 u8 x s8 products
 *   per three instructions, in 12 independent chains.
 */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "peak_avx2.c must be compiled with AVX2 and FMA flags (AVX2_CFLAGS)"
#endif
#include <immintrin.h>

#include "roofline.h"

uint64_t bench_read_avx2(const void *buf, size_t bytes)
{
    const __m256i *p = buf;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < bytes / 32; i += 8) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256(p + i));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256(p + i + 1));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256(p + i + 2));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256(p + i + 3));
        a0 = _mm256_xor_si256(a0, _mm256_load_si256(p + i + 4));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256(p + i + 5));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256(p + i + 6));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256(p + i + 7));
    }
    __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    return (uint64_t)_mm256_extract_epi64(a, 0) ^ (uint64_t)_mm256_extract_epi64(a, 3);
}

/* Named accumulators: arrays indexed in a loop would stay in memory at -O2. */
#define REPEAT12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

float bench_fma_avx2(int64_t iters, double *ops)
{
    const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
#define DECLARE(j) __m256 a##j = _mm256_set1_ps(1.0f + 0.1f * (j));
#define STEP(j) a##j = _mm256_fmadd_ps(a##j, m, c);
#define SUM(j) s = _mm256_add_ps(s, a##j);
    REPEAT12(DECLARE)
    for (int64_t i = 0; i < iters; i++) {
        REPEAT12(STEP)
    }
    __m256 s = _mm256_setzero_ps();
    REPEAT12(SUM)
#undef DECLARE
#undef STEP
#undef SUM
    *ops = (double)iters * 12.0 * 8.0 * 2.0;
    return _mm256_cvtss_f32(s);
}

int32_t bench_int8_avx2(int64_t iters, double *ops)
{
    const __m256i x = _mm256_set1_epi8(5), w = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    /* Each chain feeds its accumulator's bytes back in as the u8 operand, so
     * the products cannot be hoisted out of the loop. */
#define DECLARE(j) __m256i a##j = _mm256_add_epi8(x, _mm256_set1_epi32(j));
#define STEP(j) a##j = _mm256_add_epi32(a##j, _mm256_madd_epi16(_mm256_maddubs_epi16(a##j, w), ones));
#define SUM(j) s = _mm256_xor_si256(s, a##j);
    REPEAT12(DECLARE)
    for (int64_t i = 0; i < iters; i++) {
        REPEAT12(STEP)
    }
    __m256i s = _mm256_setzero_si256();
    REPEAT12(SUM)
#undef DECLARE
#undef STEP
#undef SUM
    *ops = (double)iters * 12.0 * 32.0 * 2.0;
    return _mm256_extract_epi32(s, 0);
}
