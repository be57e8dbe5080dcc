/*
 * The portable measuring loops of moak-bench's roofline: plain C, no vector
 * flags, used where no ISA-specific file applies (and on non-x86 hosts until
 * a NEON file joins them).  Each loop keeps several independent chains in
 * flight so that it measures throughput, not latency.
 */
#include "roofline.h"

uint64_t bench_read_scalar(const void *buf, size_t bytes)
{
    const uint64_t *p = buf;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i < bytes / 8; i += 4) {
        a0 ^= p[i];
        a1 ^= p[i + 1];
        a2 ^= p[i + 2];
        a3 ^= p[i + 3];
    }
    return a0 ^ a1 ^ a2 ^ a3;
}

#define REPEAT8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

float bench_fma_scalar(int64_t iters, double *ops)
{
    /* a = a * m + c keeps every chain bounded (m just under 1); named
     * variables so that the chains live in registers. */
    const float m = 0.9999999f, c = 1e-7f;
#define DECLARE(j) float a##j = 1.0f + 0.1f * (j);
#define STEP(j) a##j = a##j * m + c;
    REPEAT8(DECLARE)
    for (int64_t i = 0; i < iters; i++) {
        REPEAT8(STEP)
    }
#undef DECLARE
#undef STEP
    *ops = (double)iters * 8.0 * 2.0;
    return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

int32_t bench_int8_scalar(int64_t iters, double *ops)
{
    /* volatile inputs: the compiler must not fold the products into a constant. */
    volatile int32_t xv = 5, wv = 3;
    int32_t x = xv, w = wv;
#define DECLARE(j) int32_t a##j = j;
#define STEP(j) a##j += x * w; x ^= a##j & 1;
    REPEAT8(DECLARE)
    for (int64_t i = 0; i < iters; i++) {
        REPEAT8(STEP)
    }
#undef DECLARE
#undef STEP
    *ops = (double)iters * 8.0 * 2.0;
    return a0 ^ a1 ^ a2 ^ a3 ^ a4 ^ a5 ^ a6 ^ a7;
}
