/*
 * The per-row kernels of the oneDNN backend's C work (what onednn_rows.c
 * runs on the OpenMP team), compiled twice from onednn_row_kernels_body.h:
 * for baseline x86-64 (onednn_row_kernels_generic.c, SSE2 vectors) and with
 * the AVX-512 flags (onednn_row_kernels_avx512.c).  init picks the table
 * the probed (and MOAK_ISA_MAX-capped) ISA allows.
 */
#ifndef MOAK_ONEDNN_ROW_KERNELS_H
#define MOAK_ONEDNN_ROW_KERNELS_H

#include <stdint.h>

#include "moak_backend.h"

typedef struct onednn_row_kernels {
    const char *name;
    /* x ~= s_hi * hi + s_lo * lo (see onednn_rows.c). */
    void (*quantize_two_level)(const float *x, int64_t k, int8_t *hi, int8_t *lo, float *s_hi, float *s_lo);
    /* Round to bf16, nearest even (NaN stays NaN). */
    void (*to_bf16)(const float *x, int64_t k, uint16_t *dst);
    /* out[j] = (hi[j] * s_hi + lo[j] * s_lo) * w_scales[j] (+ bias[j]). */
    void (*s8_epilogue)(const int32_t *hi, const int32_t *lo, float s_hi, float s_lo, const float *w_scales,
                        const float *bias, int64_t n, float *out);
    /* h[i] = act(gate[i], up[i]) for count elements. */
    void (*glu)(moak_activation act, float alpha, float limit, const float *gate, const float *up,
                int64_t count, float *h);
    /* y = w * d (first) or y += w * d. */
    void (*weighted_add)(float w, const float *d, int64_t n, int first, float *y);
} onednn_row_kernels;

extern const onednn_row_kernels onednn_row_kernels_generic;
extern const onednn_row_kernels onednn_row_kernels_avx512;

/* The best table for the probe's ISA bits. */
const onednn_row_kernels *onednn_row_kernels_for(const moak_hw_info *hw);

#endif
