/*
 * gated_delta_cpu.h — the gated delta rule (moak.h) on the CPU backends,
 * written once: gated_delta_cpu.c is the ISA-neutral driver (task split,
 * scratch, the chunked WY algorithm's bookkeeping), gated_delta_body.h the
 * vector kernels in the simd_f vocabulary, compiled once per ISA
 * (x86/gated_delta_avx2.c, x86/gated_delta_avx512.c, arm/gated_delta_neon.c)
 * into a table of this type.
 */
#ifndef MOAK_CPU_GATED_DELTA_H
#define MOAK_CPU_GATED_DELTA_H

#include <stdbool.h>
#include <stdint.h>

#include "moak_backend.h"

typedef struct moak_gdn_kernels {
    const char *name;
    /* c[m][n] (+)= a[m][k] . b[k][n], row-major with leading dimensions;
     * accumulate false overwrites c. */
    void (*gemm)(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                 float *c, int64_t ldc, bool accumulate);
    /* out[c] = silu(sum_j w_t[j][c] * rows[j][c]) for c in [c0, c1):
     * the depthwise causal conv over `taps` input rows, oldest first;
     * w_t is the weight transposed, [taps][ld_w]. */
    void (*conv_silu)(const float *const *rows, const float *w_t, int64_t ld_w, int32_t taps, int64_t c0,
                      int64_t c1, float *out);
    /* x[i] *= 1 / sqrt(sum x^2 + eps) * extra, over n values. */
    void (*l2_normalize)(float *x, int64_t n, float eps, float extra);
    /* dst[i] = x[i] * exp(g_hi[i] - g_lo[i]) (g_lo NULL = 0). */
    void (*mul_exp_diff)(float *dst, const float *x, const float *g_hi, const float *g_lo, int64_t n);
    /* sum_i a[i] b[i] exp(g_hi[i] - g_lo[i]) (per-key gates' intra-chunk pairs). */
    float (*dot_exp_diff)(const float *a, const float *b, const float *g_hi, const float *g_lo, int64_t n);
    /* S[r][:] = row_decay[r] * S[r][:] + k[r] * u[:] for r < dk (S is dk x dv). */
    void (*decay_rank1)(float *s, int64_t dk, int64_t dv, const float *row_decay, const float *k, const float *u);
} moak_gdn_kernels;

/* The op with these kernels on env's pool; only fails (out of memory)
 * before it touches the output or the state. */
moak_status moak_cpu_gated_delta(const moak_gdn_kernels *kernels, const moak_backend_env *env,
                                 const moak_gated_delta_args *args);

#endif
