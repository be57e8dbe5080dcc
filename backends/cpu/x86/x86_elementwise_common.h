/*
 * x86_elementwise_common.h — the ISA-neutral half of routing, RMSNorm and
 * RoPE for the avx2 and avx512 backends.
 *
 * elementwise_avx2.c and elementwise_avx512.c each fill a table of vector
 * kernels (x86_elementwise_kernels) and run the drivers below with it.  The
 * drivers split rows/tokens into tasks, reserve scratch before any task
 * runs (so nothing is written on failure), and keep the parts that are
 * scalar by nature (group choice, the k chosen weights) in one place.
 *
 * Numerics follow the reference backend (backends/ref) closely enough to
 * sit far inside the moak.h bounds:
 *   routing   scores and selection scores in double, as the reference, so
 *             the chosen ids only differ on double-rounding ties;
 *   RMSNorm   sum of squares in double, the scaling in f32 (a few ulp);
 *   RoPE      angles pos * scale * f_i in double (f_i from the core, after
 *             YaRN / Llama-3 scaling) and their sin/cos by a double-precision
 *             kernel (libm beyond its range), times the attention factor,
 *             cached per token for all heads; the rotation in f32.
 */
#ifndef MOAK_X86_ELEMENTWISE_COMMON_H
#define MOAK_X86_ELEMENTWISE_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "x86_backend.h"

/* Work per task: about this many floats of an op's rows. */
#define X86_ELEMENTWISE_TASK_FLOATS 32768
/* RoPE angles up to this magnitude take the vector sin/cos (its argument
 * reduction by pi/2 is exact for quotients below 2^20); larger ones libm. */
#define X86_ROPE_VECTOR_ANGLE_MAX 1.5e6

typedef struct x86_elementwise_kernels {
    const char *name;            /* "avx2" / "avx512": for messages */
    /* Routing, one token: score (what becomes the weight) and select (what
     * is ranked) for every expert, in double, as the reference computes
     * them.  Returns true when a logit is not finite or a selection score
     * is NaN: the caller then recomputes the token with the reference's
     * scalar rules, NaN propagation included. */
    bool (*route_scores)(moak_route_method method, const float *logits, const float *bias,
                         int32_t n_experts, double *score, double *select);
    /* Index of the largest key, the lowest index among equals; NaN keys are
     * skipped (they mark experts out of the running); -1 if all are NaN. */
    int32_t (*arg_max)(const double *key, int32_t n);
    /* RMSNorm, one row: sum of x^2 in double, then y = x * inv_rms * gamma (f32). */
    double (*sum_squares)(const float *x, int64_t n);
    void (*scale_row)(const float *x, const float *gamma, int64_t n, double inv_rms, float *y);
    /* RoPE: cos/sin of pos * inv_freq[i] for i < half (pos already scaled). */
    void (*rope_angles)(double pos, const double *inv_freq, int32_t half, float *cos_out,
                        float *sin_out);
    /* Rotate one head's first 2*half dims (NEOX: pairs (i, i + half); GPTJ:
     * (2i, 2i + 1)) with the token's cos/sin; y may equal x. */
    void (*rope_rotate)(moak_rope_layout layout, const float *x, const float *cos_t,
                        const float *sin_t, int32_t half, float *y);
} x86_elementwise_kernels;

static inline int64_t x86_tasks_for(int64_t items, int64_t floats_per_item, int64_t *per_task)
{
    int64_t per = floats_per_item > 0 ? X86_ELEMENTWISE_TASK_FLOATS / floats_per_item : 1;
    if (per < 1)
        per = 1;
    *per_task = per;
    return (items + per - 1) / per;
}

/* Run fn over n_tasks: inline on the caller when there is one task (the
 * pool's wake-up would cost more than the work). */
static inline void x86_run_tasks(moak_x86_state *st, int64_t n_tasks, moak_task_fn fn, void *arg)
{
    if (n_tasks == 1)
        fn(arg, 0, 0);
    else if (n_tasks > 1)
        st->env.parallel_for(st->env.pool, n_tasks, fn, arg);
}

static inline moak_status x86_reserve_all(moak_x86_state *st, size_t bytes, const char *what,
                                          const char *name)
{
    const int32_t n_threads = st->env.n_threads > 0 ? st->env.n_threads : 1;
    for (int32_t t = 0; t < n_threads; t++)
        if (!moak_x86_scratch(st, t, bytes))
            return st->env.error(st->env.log_ctx, MOAK_ERR_OUT_OF_MEMORY,
                                 "%s: out of memory for %s", name, what);
    return MOAK_OK;
}

/* ---- routing ------------------------------------------------------------------------ */

typedef struct x86_route_job {
    const moak_route_args *args;
    const x86_elementwise_kernels *kern;
    moak_x86_state *st;
    int64_t tokens_per_task;
} x86_route_job;

static void x86_route_task(void *arg, int64_t task, int32_t thread)
{
    const x86_route_job *job = arg;
    const moak_route_args *args = job->args;
    const x86_elementwise_kernels *kern = job->kern;
    const int32_t n_experts = args->n_experts, top_k = args->top_k;
    const int32_t n_groups = args->n_groups > 1 ? args->n_groups : 1;

    /* scratch: score, select, key [n_experts]; group_score [n_groups];
     * weight [top_k]; chosen [top_k]; marks [n_experts + n_groups] */
    double *score = job->st->scratch[thread];
    double *select = score + n_experts;
    double *key = select + n_experts;
    double *group_score = key + n_experts;
    double *weight = group_score + n_groups;
    int32_t *chosen = (int32_t *)(void *)(weight + top_k);
    unsigned char *expert_mark = (unsigned char *)(chosen + top_k + (top_k & 1));
    unsigned char *group_mark = expert_mark + n_experts;

    int64_t last = (task + 1) * job->tokens_per_task;
    if (last > args->n_tokens)
        last = args->n_tokens;
    for (int64_t t = task * job->tokens_per_task; t < last; t++) {
        const float *logits = args->logits + (size_t)t * (size_t)n_experts;
        bool has_nan;
        if (args->method == MOAK_ROUTE_SQRT_SOFTPLUS_TOPK) {
            /* no vector ln(1 + e^x) here: the core's scores (in double, as
             * the reference), then the vector arg-max on finite ones */
            moak_route_scores(args, logits, score, select);
            has_nan = false;
            for (int32_t e = 0; e < n_experts; e++)
                has_nan |= !isfinite(logits[e]) || isnan(select[e]);
        } else {
            has_nan = kern->route_scores(args->method, logits, args->bias, n_experts, score, select);
            /* A token with a NaN or infinite logit takes the core's scalar
             * steps (lib/route_select.c), the reference's own. */
            if (has_nan)
                moak_route_scores(args, logits, score, select);
        }
        moak_route_mark_candidates(args, select, group_score, group_mark, expert_mark);

        int32_t k = 0;
        if (!has_nan) {
            /* vector arg-max on a copy whose non-candidates are NaN */
            for (int32_t e = 0; e < n_experts; e++)
                key[e] = expert_mark[e] == MOAK_ROUTE_CANDIDATE ? select[e] : NAN;
            for (; k < top_k; k++) {
                const int32_t e = kern->arg_max(key, n_experts);
                if (e < 0)
                    break;
                chosen[k] = e;
                key[e] = NAN;
                expert_mark[e] = MOAK_ROUTE_CHOSEN;
            }
        }
        /* the rest (all of them for a NaN row; for the others only when the
         * kept groups hold fewer than top_k, which the core rejects) */
        moak_route_choose(args, select, expert_mark, chosen, k);

        for (int32_t i = 0; i < top_k; i++)
            weight[i] = score[chosen[i]];
        moak_route_store_row(args, t, chosen, weight);
    }
}

static inline moak_status x86_route_run(moak_x86_state *st, const moak_route_args *args,
                                        const x86_elementwise_kernels *kern)
{
    if (args->n_tokens == 0)
        return MOAK_OK;
    const size_t n_groups = args->n_groups > 1 ? (size_t)args->n_groups : 1;
    const size_t bytes = (3 * (size_t)args->n_experts + n_groups + (size_t)args->top_k) *
                             sizeof(double) +
                         ((size_t)args->top_k + 1) * sizeof(int32_t) + (size_t)args->n_experts +
                         n_groups + 64;
    moak_status status = x86_reserve_all(st, bytes, "routing scratch", kern->name);
    if (status != MOAK_OK)
        return status;
    x86_route_job job = {args, kern, st, 0};
    const int64_t n_tasks = x86_tasks_for(args->n_tokens, 4 * (int64_t)args->n_experts,
                                          &job.tokens_per_task);
    x86_run_tasks(st, n_tasks, x86_route_task, &job);
    return MOAK_OK;
}

/* ---- RMSNorm ------------------------------------------------------------------------- */

typedef struct x86_rmsnorm_job {
    const moak_rmsnorm_args *args;
    const x86_elementwise_kernels *kern;
    int64_t rows_per_task;
} x86_rmsnorm_job;

static void x86_rmsnorm_task(void *arg, int64_t task, int32_t thread)
{
    (void)thread;
    const x86_rmsnorm_job *job = arg;
    const moak_rmsnorm_args *args = job->args;
    int64_t last = (task + 1) * job->rows_per_task;
    if (last > args->n_rows)
        last = args->n_rows;
    for (int64_t r = task * job->rows_per_task; r < last; r++) {
        const float *x = args->x + (size_t)r * (size_t)args->dim;
        float *y = args->y + (size_t)r * (size_t)args->dim;
        const double ss = job->kern->sum_squares(x, args->dim);
        /* the whole row is read before the first store: y == x is fine */
        const double inv_rms = 1.0 / sqrt(ss / (double)args->dim + (double)args->eps);
        job->kern->scale_row(x, args->gamma, args->dim, inv_rms, y);
    }
}

static inline moak_status x86_rmsnorm_run(moak_x86_state *st, const moak_rmsnorm_args *args,
                                          const x86_elementwise_kernels *kern)
{
    x86_rmsnorm_job job = {args, kern, 0};
    const int64_t n_tasks = x86_tasks_for(args->n_rows, args->dim, &job.rows_per_task);
    x86_run_tasks(st, n_tasks, x86_rmsnorm_task, &job);
    return MOAK_OK;
}

/* ---- RoPE ------------------------------------------------------------------------------ */

typedef struct x86_rope_job {
    const moak_rope_args *args;
    const x86_elementwise_kernels *kern;
    moak_x86_state *st;
    int64_t tokens_per_task;
} x86_rope_job;

static void x86_rope_task(void *arg, int64_t task, int32_t thread)
{
    const x86_rope_job *job = arg;
    const moak_rope_args *args = job->args;
    const int32_t half = args->rotary_dim / 2;
    const int32_t head_dim = args->head_dim;
    /* this token's cos/sin, shared by all its heads */
    float *cos_t = job->st->scratch[thread];
    float *sin_t = cos_t + ((half + 15) & ~15);

    int64_t last = (task + 1) * job->tokens_per_task;
    if (last > args->n_tokens)
        last = args->n_tokens;
    for (int64_t t = task * job->tokens_per_task; t < last; t++) {
        const double pos = (double)args->positions[t] * (double)args->position_scale;
        job->kern->rope_angles(pos, args->inv_freq, half, cos_t, sin_t);
        if (args->attention_factor != 1.0) /* YaRN's mscale on cos and sin */
            for (int32_t i = 0; i < half; i++) {
                cos_t[i] = (float)((double)cos_t[i] * args->attention_factor);
                sin_t[i] = (float)((double)sin_t[i] * args->attention_factor);
            }
        for (int32_t h = 0; h < args->n_heads; h++) {
            const size_t row = ((size_t)t * (size_t)args->n_heads + (size_t)h) * (size_t)head_dim;
            job->kern->rope_rotate(args->layout, args->x + row, cos_t, sin_t, half, args->y + row);
            if (args->y != args->x && 2 * half < head_dim)
                memcpy(args->y + row + 2 * half, args->x + row + 2 * half,
                       (size_t)(head_dim - 2 * half) * sizeof(float));
        }
    }
}

static inline moak_status x86_rope_run(moak_x86_state *st, const moak_rope_args *args,
                                       const x86_elementwise_kernels *kern)
{
    if (args->n_tokens == 0)
        return MOAK_OK;
    const int32_t half = args->rotary_dim / 2;
    moak_status status =
        x86_reserve_all(st, 2 * (((size_t)half + 15) & ~(size_t)15) * sizeof(float) + 64,
                        "RoPE angles", kern->name);
    if (status == MOAK_OK) {
        x86_rope_job job = {args, kern, st, 0};
        const int64_t n_tasks = x86_tasks_for(
            args->n_tokens, (int64_t)args->n_heads * args->head_dim, &job.tokens_per_task);
        x86_run_tasks(st, n_tasks, x86_rope_task, &job);
    }
    return status;
}

/* ---- double-precision sin/cos for the RoPE angles -------------------------------------- */

/* pi/2 in three parts, the first two with 33 significant bits, so that
 * k * part is exact for k < 2^20 (fdlibm's split). */
#define X86_PIO2_1 1.57079632673412561417e+00
#define X86_PIO2_2 6.07710050650619224932e-11
#define X86_PIO2_3 2.02226624879595063154e-21

#endif /* MOAK_X86_ELEMENTWISE_COMMON_H */
