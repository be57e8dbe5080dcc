/*
 * AVX-512 BF16 measuring loop of moak-bench's roofline, its "fp16" peak
 * (built with @AVX512_CFLAGS@ @AVX512BF16_CFLAGS@, run only when the probe
 * reports AVX512_BF16): 16 independent vdpbf16ps chains, each instruction 32
 * bf16 products summed in pairs into 16 fp32 lanes.
 */
#if !defined(__AVX512F__) || !defined(__AVX512BF16__)
#error "peak_avx512bf16.c must be compiled with AVX-512 F and BF16 flags"
#endif
#include <immintrin.h>

#include "roofline.h"

#define REPEAT16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

float bench_bf16_avx512(int64_t iters, double *ops)
{
    const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
    const __m512bh w = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(-1e-3f));
    /* Named accumulators, so that they live in registers. */
#define DECLARE(j) __m512 a##j = _mm512_set1_ps((float)(j));
#define STEP(j) a##j = _mm512_dpbf16_ps(a##j, x, w);
#define SUM(j) s = _mm512_add_ps(s, a##j);
    REPEAT16(DECLARE)
    for (int64_t i = 0; i < iters; i++) {
        REPEAT16(STEP)
    }
    __m512 s = _mm512_setzero_ps();
    REPEAT16(SUM)
    *ops = (double)iters * 16.0 * 32.0 * 2.0;
    return _mm512_reduce_add_ps(s);
}
