/* test_matmul — moak_matmul on every weight format, every available backend,
 * against a double-precision oracle computed here from the weight bytes.
 *
 * Shapes come from models.json; rows (N) are scaled down so that the whole
 * file runs in well under a second per backend, K is kept real because it is
 * what exercises blocking (2880 is a multiple of 32 but not of 128). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ref holds f32 products with f64 accumulation; against the double oracle
 * its only error is the final rounding to f32 (~6e-8 of |y|) and f32
 * dequantization of I4 groups (scale * q + min, one rounding): 1e-5 leaves
 * two orders of margin and still catches any real slip (a wrong element, a
 * wrong scale, a lost bias are all >= 1e-2). */
#define REF_BOUND 1e-5

typedef struct matmul_case {
    const char *label;   /* model and projection the shape comes from */
    int64_t k, n;
    int64_t ms[3];       /* 0 ends the list */
    int bias;
    int full_int8;       /* int8 fields also take -128 (Q8_0 and I8_ROW only) */
} matmul_case;

static const matmul_case cases[] = {
    /* gpt-oss-20b/120b expert projection: hidden 2880 (= 90 blocks of 32,
     * 22.5 groups of 128), biased; 2880 output rows scaled to 48. */
    {"gpt-oss", 2880, 48, {1, 7, 64}, 1, 0},
    /* Qwen3-30B-A3B expert gate/up: hidden 2048 -> inter 768, rows scaled to 96. */
    {"qwen3-30b-a3b.gate", 2048, 96, {1, 7, 0}, 0, 0},
    /* Qwen3-30B-A3B expert down: inter 768 -> hidden 2048, rows scaled to 128. */
    {"qwen3-30b-a3b.down", 768, 128, {1, 7, 0}, 0, 0},
    /* Llama-3.1-8B q_proj: 4096 -> 4096, rows scaled to 96. */
    {"llama-3.1-8b.q", 4096, 96, {1, 7, 0}, 0, 0},
    /* Edge: K = 100 is not a multiple of any block (last block of 4). */
    {"edge.k100", 100, 37, {1, 7, 64}, 1, 0},
    /* Edge: K smaller than one block. */
    {"edge.k5", 5, 3, {2, 0, 0}, 1, 0},
    /* Every int8 value the layout allows, -128 included. */
    {"edge.int8-range", 256, 16, {7, 0, 0}, 0, 1},
};

static void oracle(const float *x, const double *w, const float *bias, int64_t m, int64_t n,
                   int64_t k, double *y)
{
    for (int64_t r = 0; r < m; r++)
        for (int64_t j = 0; j < n; j++) {
            double acc = bias ? (double)bias[j] : 0.0;
            const double *wj = w + j * k;
            const float *xr = x + r * k;
            for (int64_t i = 0; i < k; i++)
                acc += (double)xr[i] * wj[i];
            y[r * n + j] = acc;
        }
}

static void run_case(t_backend *bk, int n_bk, const matmul_case *c, moak_format f)
{
    if (c->full_int8 && f != MOAK_FORMAT_Q8_0 && f != MOAK_FORMAT_I8_ROW)
        return;
    size_t rb = t_row_bytes(f, c->k);
    uint8_t *wbytes = t_malloc(rb * (size_t)c->n);
    double *wdeq = t_alloc_f64((size_t)(c->n * c->k));
    for (int64_t j = 0; j < c->n; j++) {
        t_random_weight_row(f, c->k, 1.0 / sqrt((double)c->k), c->full_int8, wbytes + rb * j);
        t_dequant_row(f, wbytes + rb * j, c->k, wdeq + j * c->k);
    }
    float *bias = NULL;
    if (c->bias) {
        bias = t_alloc_f32((size_t)c->n);
        t_fill_normal(bias, (size_t)c->n, 0.5);
    }
    /* Inputs and expected outputs for every m first, so the random stream
     * (and a replay by seed) does not depend on which backends run. */
    int n_m = 0;
    float *xs[3];
    double *refs[3];
    for (int mi = 0; mi < 3 && c->ms[mi]; mi++, n_m++) {
        int64_t m = c->ms[mi];
        xs[mi] = t_alloc_f32((size_t)(m * c->k));
        refs[mi] = t_alloc_f64((size_t)(m * c->n));
        t_fill_normal(xs[mi], (size_t)(m * c->k), 1.0);
        oracle(xs[mi], wdeq, bias, m, c->n, c->k, refs[mi]);
    }
    int64_t m_max = 0;
    for (int mi = 0; mi < n_m; mi++)
        m_max = c->ms[mi] > m_max ? c->ms[mi] : m_max;
    float *x_copy = t_alloc_f32((size_t)(m_max * c->k));
    float *y = t_alloc_f32((size_t)(m_max * c->n));

    for (int b = 0; b < n_bk; b++) {
        moak_context *ctx = bk[b].ctx;
        moak_weight_desc desc = MOAK_WEIGHT_DESC_INIT;
        desc.format = f;
        desc.n_experts = 1;
        desc.rows = c->n;
        desc.cols = c->k;
        desc.data = wbytes;
        desc.data_size = rb * (size_t)c->n;
        desc.bias = bias;
        moak_weight *w = NULL;
        moak_status st = moak_weight_create(ctx, &desc, &w);
        if (st != MOAK_OK) {
            t_fail("%s matmul %s %s: moak_weight_create: %s (%s)", bk[b].name, t_format_name(f),
                   c->label, moak_status_str(st), moak_last_error(ctx));
            continue;
        }
        for (int mi = 0; mi < n_m; mi++) {
            int64_t m = c->ms[mi];
            char shape[96];
            snprintf(shape, sizeof(shape), "%s m%lld n%lld k%lld%s", c->label, (long long)m,
                     (long long)c->n, (long long)c->k, c->bias ? " bias" : "");
            memcpy(x_copy, xs[mi], sizeof(float) * (size_t)(m * c->k));
            t_poison_f32(y, (size_t)(m * c->n));
            st = moak_matmul(ctx, w, xs[mi], m, y);
            if (st != MOAK_OK) {
                t_fail("%s matmul %s %s: %s (%s)", bk[b].name, t_format_name(f), shape,
                       moak_status_str(st), moak_last_error(ctx));
                continue;
            }
            const char *ran = moak_last_backend(ctx);
            double err = t_max_row_error(y, refs[mi], m, c->n);
            t_report(bk[b].name, ran, "matmul", t_format_name(f), shape, err,
                     t_bound_for(ran, REF_BOUND, t_matmul_bound(f)));
            if (strcmp(ran, moak_weight_backend(w)) != 0)
                t_fail("%s matmul %s %s: ran on %s but the weight belongs to %s", bk[b].name,
                       t_format_name(f), shape, ran, moak_weight_backend(w));
            if (memcmp(xs[mi], x_copy, sizeof(float) * (size_t)(m * c->k)) != 0)
                t_fail("%s matmul %s %s: x was modified", bk[b].name, t_format_name(f), shape);
        }
        moak_weight_destroy(w);
    }
    for (int mi = 0; mi < n_m; mi++) {
        free(xs[mi]);
        free(refs[mi]);
    }
    free(wbytes);
    free(wdeq);
    free(bias);
    free(x_copy);
    free(y);
}

int main(void)
{
    t_init("test_matmul");
    t_backend bk[T_MAX_BACKENDS];
    int n_bk = t_open_backends(bk, T_MAX_BACKENDS, 0);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
        for (int f = 0; f < T_CLASSIC_FORMATS; f++)
            run_case(bk, n_bk, &cases[c], (moak_format)f);
    t_close_backends(bk, n_bk);
    return t_finish();
}
