/*
 * AVX-VNNI measuring loop of moak-bench's roofline (built with @AVX2_CFLAGS@
 * @AVXVNNI_CFLAGS@, run only when the probe reports AVX-VNNI): 12 independent
 * vpdpbusd ymm chains, 32 u8 x s8 multiply-accumulates each.
 */
#if !defined(__AVX2__) || !defined(__AVXVNNI__)
#error "peak_avxvnni.c must be compiled with AVX2 and AVX-VNNI flags"
#endif
#include <immintrin.h>

#include "roofline.h"

#define REPEAT12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

int32_t bench_int8_avxvnni(int64_t iters, double *ops)
{
    const __m256i x = _mm256_set1_epi8(5), w = _mm256_set1_epi8(3);
    /* Named accumulators, so that they live in registers. */
#define DECLARE(j) __m256i a##j = _mm256_set1_epi32(j);
#define STEP(j) a##j = _mm256_dpbusd_avx_epi32(a##j, x, w);
#define SUM(j) s = _mm256_xor_si256(s, a##j);
    REPEAT12(DECLARE)
    for (int64_t i = 0; i < iters; i++) {
        REPEAT12(STEP)
    }
    __m256i s = _mm256_setzero_si256();
    REPEAT12(SUM)
    *ops = (double)iters * 12.0 * 32.0 * 2.0;
    return _mm256_extract_epi32(s, 0);
}
