/*
 * AVX-512 measuring loops of moak-bench's roofline (built with
 * @AVX512_CFLAGS@, run only when the probe reports AVX-512 F/BW/VL and VNNI).
 *   read: 256-byte blocks as four 64-byte loads folded by XOR;
 *   fp32: 16 independent 16-wide FMA chains;
 *   int8: 16 independent vpdpbusd zmm chains, 64 u8 x s8 products each.
 */
#if !defined(__AVX512F__) || !defined(__AVX512VNNI__) || !defined(__FMA__)
#error "peak_avx512.c must be compiled with AVX-512 F and VNNI flags (AVX512_CFLAGS)"
#endif
#include <immintrin.h>

#include "roofline.h"

uint64_t bench_read_avx512(const void *buf, size_t bytes)
{
    const __m512i *p = buf;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < bytes / 64; i += 4) {
        a0 = _mm512_xor_si512(a0, _mm512_load_si512(p + i));
        a1 = _mm512_xor_si512(a1, _mm512_load_si512(p + i + 1));
        a2 = _mm512_xor_si512(a2, _mm512_load_si512(p + i + 2));
        a3 = _mm512_xor_si512(a3, _mm512_load_si512(p + i + 3));
    }
    __m512i a = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    return (uint64_t)_mm512_reduce_or_epi64(a);
}

/* Sixteen named accumulators: arrays indexed in a loop would be kept in
 * memory at -O2, and the loop would measure loads and stores instead. */
#define REPEAT16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

float bench_fma_avx512(int64_t iters, double *ops)
{
    const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
#define DECLARE(j) __m512 a##j = _mm512_set1_ps(1.0f + 0.1f * (j));
#define STEP(j) a##j = _mm512_fmadd_ps(a##j, m, c);
#define SUM(j) s = _mm512_add_ps(s, a##j);
    REPEAT16(DECLARE)
    for (int64_t i = 0; i < iters; i++) {
        REPEAT16(STEP)
    }
    __m512 s = _mm512_setzero_ps();
    REPEAT16(SUM)
#undef DECLARE
#undef STEP
#undef SUM
    *ops = (double)iters * 16.0 * 16.0 * 2.0;
    return _mm512_reduce_add_ps(s);
}

int32_t bench_int8_avx512vnni(int64_t iters, double *ops)
{
    const __m512i x = _mm512_set1_epi8(5), w = _mm512_set1_epi8(3);
#define DECLARE(j) __m512i a##j = _mm512_set1_epi32(j);
#define STEP(j) a##j = _mm512_dpbusd_epi32(a##j, x, w);
#define SUM(j) s = _mm512_xor_si512(s, a##j);
    REPEAT16(DECLARE)
    for (int64_t i = 0; i < iters; i++) {
        REPEAT16(STEP)
    }
    __m512i s = _mm512_setzero_si512();
    REPEAT16(SUM)
#undef DECLARE
#undef STEP
#undef SUM
    *ops = (double)iters * 16.0 * 64.0 * 2.0;
    return _mm512_reduce_add_epi32(s);
}
