/*
 * test_onednn_common.h — what the oneDNN backend's own tests share: a log
 * sink that keeps every line, random weights with their double-precision
 * values, and the double oracles of matmul and the MoE FFN (written here
 * from moak.h, not from the library).
 */
#ifndef MOAK_TEST_ONEDNN_COMMON_H
#define MOAK_TEST_ONEDNN_COMMON_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moak.h"
#include "testutil.h"

/* ---- log capture ------------------------------------------------------------ */

typedef struct od_log {
    char text[65536];
    size_t used;
} od_log;

static inline void od_log_sink(void *user, moak_log_level level, const char *message)
{
    od_log *log = user;
    (void)level;
    int n = snprintf(log->text + log->used, sizeof(log->text) - log->used, "%s\n", message);
    if (n > 0 && log->used + (size_t)n < sizeof(log->text))
        log->used += (size_t)n;
}

static inline void od_log_clear(od_log *log)
{
    log->used = 0;
    log->text[0] = '\0';
}

/* How many lines of the log contain `needle`. */
static inline int od_log_count(const od_log *log, const char *needle)
{
    int count = 0;
    for (const char *p = log->text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        count++;
    return count;
}

/* A context on `backends` with `flags`, logging into `log` (verbose when
 * log is non-NULL); exits 99 when it cannot be made. */
static inline moak_context *od_context(const char *backends, uint32_t flags, od_log *log, int32_t threads)
{
    moak_context_options o = MOAK_CONTEXT_OPTIONS_INIT;
    o.backends = backends;
    o.flags = flags;
    o.num_threads = threads;
    if (log) {
        o.log_fn = od_log_sink;
        o.log_user = log;
        o.verbose = 1;
    }
    moak_context *ctx = NULL;
    moak_status st = moak_context_create(&o, &ctx);
    if (st != MOAK_OK)
        t_die("moak_context_create(%s): %s (%s)", backends, t_status_name(st), moak_last_error(NULL));
    return ctx;
}

/* oneDNN 2.6 computes bf16 matmul only from AVX-512 (F, BW, VL) up: below
 * that (or under MOAK_ISA_MAX) the backend declines BF16 like F16. */
static inline int od_bf16_native(void)
{
    moak_hw_info hw = MOAK_HW_INFO_INIT;
    if (moak_hw_probe(&hw) != MOAK_OK)
        return 0;
    const uint64_t need = MOAK_ISA_AVX512F | MOAK_ISA_AVX512BW | MOAK_ISA_AVX512VL;
    return (hw.isa & need) == need;
}

/* oneDNN's int8 matmul is exact only with VNNI (AVX512-VNNI or AVX-VNNI);
 * below that the backend declines I8_ROW like Q8_0. */
static inline int od_s8_native(void)
{
    moak_hw_info hw = MOAK_HW_INFO_INIT;
    if (moak_hw_probe(&hw) != MOAK_OK)
        return 0;
    const uint64_t avx512_vnni = MOAK_ISA_AVX512F | MOAK_ISA_AVX512BW | MOAK_ISA_AVX512VL | MOAK_ISA_AVX512VNNI;
    const uint64_t avx_vnni = MOAK_ISA_AVX2 | MOAK_ISA_AVX_VNNI;
    return (hw.isa & avx512_vnni) == avx512_vnni || (hw.isa & avx_vnni) == avx_vnni;
}

/* ---- weights and oracles ----------------------------------------------------- */

typedef struct od_weight {
    moak_format format;
    int64_t experts, rows, cols;
    uint8_t *bytes;
    size_t size;
    double *deq;                  /* [experts][rows][cols] */
    float *bias;                  /* [experts][rows] or NULL */
} od_weight;

static inline void od_weight_make(od_weight *w, moak_format f, int64_t experts, int64_t rows, int64_t cols,
                           int with_bias)
{
    w->format = f;
    w->experts = experts;
    w->rows = rows;
    w->cols = cols;
    size_t rb = t_row_bytes(f, cols);
    w->size = rb * (size_t)(experts * rows);
    w->bytes = t_malloc(w->size);
    w->deq = t_alloc_f64((size_t)(experts * rows * cols));
    for (int64_t r = 0; r < experts * rows; r++) {
        t_random_weight_row(f, cols, 1.0 / sqrt((double)cols), 0, w->bytes + rb * (size_t)r);
        t_dequant_row(f, w->bytes + rb * (size_t)r, cols, w->deq + r * cols);
    }
    w->bias = NULL;
    if (with_bias) {
        w->bias = t_alloc_f32((size_t)(experts * rows));
        t_fill_normal(w->bias, (size_t)(experts * rows), 0.5);
    }
}

static inline void od_weight_free(od_weight *w)
{
    free(w->bytes);
    free(w->deq);
    free(w->bias);
}

static inline moak_status od_weight_create(moak_context *ctx, const od_weight *w, moak_weight **out)
{
    moak_weight_desc d = MOAK_WEIGHT_DESC_INIT;
    d.format = w->format;
    d.n_experts = w->experts;
    d.rows = w->rows;
    d.cols = w->cols;
    d.data = w->bytes;
    d.data_size = w->size;
    d.bias = w->bias;
    *out = NULL;
    return moak_weight_create(ctx, &d, out);
}

/* y[m][rows] = x[m][cols] . W[expert]^T + bias, in double. */
static inline void od_matmul_oracle(const od_weight *w, int64_t expert, const float *x, int64_t m, double *y)
{
    const double *deq = w->deq + expert * w->rows * w->cols;
    for (int64_t r = 0; r < m; r++)
        for (int64_t j = 0; j < w->rows; j++) {
            double acc = w->bias ? (double)w->bias[expert * w->rows + j] : 0.0;
            for (int64_t i = 0; i < w->cols; i++)
                acc += (double)x[r * w->cols + i] * deq[j * w->cols + i];
            y[r * w->rows + j] = acc;
        }
}

/* The SiLU-GLU MoE FFN of moak.h in double. */
static inline void od_moe_oracle(const od_weight *gate, const od_weight *up, const od_weight *down,
                          const float *x, int64_t n_tokens, int32_t top_k, const int32_t *ids,
                          const float *weights, double *y)
{
    const int64_t hidden = gate->cols, inter = gate->rows;
    double *g = t_alloc_f64((size_t)inter), *u = t_alloc_f64((size_t)inter);
    double *h = t_alloc_f64((size_t)inter);
    double *d = t_alloc_f64((size_t)hidden);
    for (int64_t t = 0; t < n_tokens; t++) {
        for (int64_t c = 0; c < hidden; c++)
            y[t * hidden + c] = 0.0;
        for (int32_t s = 0; s < top_k; s++) {
            int32_t e = ids[t * top_k + s];
            od_matmul_oracle(gate, e, x + t * hidden, 1, g);
            od_matmul_oracle(up, e, x + t * hidden, 1, u);
            for (int64_t i = 0; i < inter; i++)
                h[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            const double *wd = down->deq + (int64_t)e * hidden * inter;
            for (int64_t c = 0; c < hidden; c++) {
                double acc = down->bias ? (double)down->bias[(int64_t)e * hidden + c] : 0.0;
                for (int64_t i = 0; i < inter; i++)
                    acc += h[i] * wd[c * inter + i];
                d[c] = acc;
            }
            for (int64_t c = 0; c < hidden; c++)
                y[t * hidden + c] += (double)weights[t * top_k + s] * d[c];
        }
    }
    free(g);
    free(u);
    free(h);
    free(d);
}

/* Distinct random experts per token and routing weights that sum to 1. */
static inline void od_random_routing(int64_t n_tokens, int32_t top_k, int32_t n_experts, int32_t *ids,
                              float *weights)
{
    int32_t *perm = t_malloc(sizeof(int32_t) * (size_t)n_experts);
    for (int64_t t = 0; t < n_tokens; t++) {
        for (int32_t e = 0; e < n_experts; e++)
            perm[e] = e;
        t_shuffle_i32(perm, n_experts);
        double sum = 0.0;
        for (int32_t s = 0; s < top_k; s++) {
            ids[t * top_k + s] = perm[s];
            weights[t * top_k + s] = (float)t_uniform(0.1, 1.0);
            sum += weights[t * top_k + s];
        }
        for (int32_t s = 0; s < top_k; s++)
            weights[t * top_k + s] = (float)(weights[t * top_k + s] / sum);
    }
    free(perm);
}

#endif
