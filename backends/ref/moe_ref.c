/*
 * Reference MoE expert FFN.  For every (token t, slot k) pair routed to
 * expert e = ids[t][k]:
 *     g = gate_e . x[t] + gate_bias_e      u = up_e . x[t] + up_bias_e
 *     h = act(g, u)                        d = down_e . h + down_bias_e
 *     y[t] = sum over k = 0 .. top_k-1 of weights[t][k] * d(t, k)
 *
 * Two parallel phases, each decoding every weight row it needs exactly once:
 *   1. gate/up: one task per (active expert, block of inter rows) computes h
 *      for all of that expert's pairs into h[pair][inter] (float32);
 *   2. down: one task per block of hidden rows walks every active expert,
 *      computes d for each pair into its thread's scratch (double), then sums
 *      each token's pairs in slot order and writes y[t][block].
 * Every y element is written once, by one task, with a fixed summation
 * order, so the result is bitwise the same for any thread count.  Experts no
 * token chose are never read (only args->active_experts are visited).
 */
#include "ref_internal.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define REF_MOE_ROWS_PER_TASK 8

/* h = act(g, u) exactly as moak.h's moak_activation comments define it. */
static double moe_activation(const moak_moe_args *args, double g, double u)
{
    switch (args->activation) {
    case MOAK_ACT_SILU_GLU:
        return g / (1.0 + exp(-g)) * u;
    case MOAK_ACT_GELU_GLU:
        return 0.5 * g * (1.0 + erf(g / sqrt(2.0))) * u;
    case MOAK_ACT_SWIGLU_OAI: {
        const double alpha = args->swiglu_alpha;
        const double limit = args->swiglu_limit;
        if (g > limit)
            g = limit;
        if (u > limit)
            u = limit;
        if (u < -limit)
            u = -limit;
        return (u + 1.0) * g * (1.0 / (1.0 + exp(-alpha * g)));
    }
    }
    return 0.0; /* unreachable: the core validated the activation */
}

typedef struct moe_job {
    const moak_moe_args *args;
    const ref_weight *gate, *up, *down;
    int64_t inter_blocks;        /* ceil(inter / ROWS_PER_TASK) */
    float *h;                    /* [n_tokens * top_k][inter] */
    float *scratch_rows;         /* [n_threads][ROWS_PER_TASK][max(2*hidden, inter)] */
    size_t scratch_rows_stride;
    double *scratch_d;           /* [n_threads][n_pairs][ROWS_PER_TASK] */
    size_t scratch_d_stride;
} moe_job;

/* Rows of gate row i and up row i in their weights (moak_moe_args.gate_up). */
static int64_t gate_row(const moak_moe_args *a, int64_t i)
{
    return a->gate_up == MOAK_GATE_UP_INTERLEAVED ? 2 * i : i;
}

static int64_t up_row(const moak_moe_args *a, int64_t i)
{
    switch (a->gate_up) {
    case MOAK_GATE_UP_CONCAT: return a->inter + i;
    case MOAK_GATE_UP_INTERLEAVED: return 2 * i + 1;
    default: return i;
    }
}

/* Phase 1: h[pair][first .. first+count) for the pairs of one expert. */
static void moe_gate_up_task(void *arg, int64_t task, int32_t thread)
{
    const moe_job *job = arg;
    const moak_moe_args *args = job->args;
    const int64_t hidden = args->hidden, inter = args->inter;
    const int32_t e = args->active_experts[task / job->inter_blocks];
    const int64_t first = (task % job->inter_blocks) * REF_MOE_ROWS_PER_TASK;
    int64_t count = inter - first;
    if (count > REF_MOE_ROWS_PER_TASK)
        count = REF_MOE_ROWS_PER_TASK;

    float *gate_rows = job->scratch_rows + (size_t)thread * job->scratch_rows_stride;
    float *up_rows = gate_rows + (size_t)REF_MOE_ROWS_PER_TASK * (size_t)hidden;
    for (int64_t r = 0; r < count; r++) {
        moak_dequantize_row(job->gate->format, ref_weight_row(job->gate, e, gate_row(args, first + r)),
                            hidden, gate_rows + (size_t)r * (size_t)hidden);
        moak_dequantize_row(job->up->format, ref_weight_row(job->up, e, up_row(args, first + r)),
                            hidden, up_rows + (size_t)r * (size_t)hidden);
    }
    /* a fused weight's bias has its 2*inter rows per expert */
    const float *gate_bias = args->gate->bias ? args->gate->bias + (size_t)e * (size_t)args->gate->rows : NULL;
    const float *up_bias = args->up->bias ? args->up->bias + (size_t)e * (size_t)args->up->rows : NULL;

    for (int64_t p = args->offsets[e]; p < args->offsets[e + 1]; p++) {
        const int32_t pair = args->pairs[p];
        const int64_t token = pair / args->top_k;
        const float *x_row = args->x + (size_t)token * (size_t)hidden;
        float *h_row = job->h + (size_t)pair * (size_t)inter;
        for (int64_t r = 0; r < count; r++) {
            double g = ref_dot(x_row, gate_rows + (size_t)r * (size_t)hidden, hidden);
            double u = ref_dot(x_row, up_rows + (size_t)r * (size_t)hidden, hidden);
            if (gate_bias)
                g += (double)gate_bias[gate_row(args, first + r)];
            if (up_bias)
                u += (double)up_bias[up_row(args, first + r)];
            h_row[first + r] = (float)moe_activation(args, g, u);
        }
    }
}

/* Phase 2: y[t][first .. first+count) for every token. */
static void moe_down_task(void *arg, int64_t task, int32_t thread)
{
    const moe_job *job = arg;
    const moak_moe_args *args = job->args;
    const int64_t hidden = args->hidden, inter = args->inter;
    const int64_t first = task * REF_MOE_ROWS_PER_TASK;
    int64_t count = hidden - first;
    if (count > REF_MOE_ROWS_PER_TASK)
        count = REF_MOE_ROWS_PER_TASK;

    float *down_rows = job->scratch_rows + (size_t)thread * job->scratch_rows_stride;
    /* d[pair][r]: expert output of one pair for hidden row first + r. */
    double *d = job->scratch_d + (size_t)thread * job->scratch_d_stride;

    for (int32_t a = 0; a < args->n_active_experts; a++) {
        const int32_t e = args->active_experts[a];
        for (int64_t r = 0; r < count; r++)
            moak_dequantize_row(job->down->format, ref_weight_row(job->down, e, first + r),
                                inter, down_rows + (size_t)r * (size_t)inter);
        const float *down_bias =
            args->down->bias ? args->down->bias + (size_t)e * (size_t)hidden : NULL;
        for (int64_t p = args->offsets[e]; p < args->offsets[e + 1]; p++) {
            const int32_t pair = args->pairs[p];
            const float *h_row = job->h + (size_t)pair * (size_t)inter;
            for (int64_t r = 0; r < count; r++) {
                double v = ref_dot(h_row, down_rows + (size_t)r * (size_t)inter, inter);
                if (down_bias)
                    v += (double)down_bias[first + r];
                d[(size_t)pair * REF_MOE_ROWS_PER_TASK + (size_t)r] = v;
            }
        }
    }

    /* Every pair belongs to exactly one active expert, so d is complete. */
    for (int64_t t = 0; t < args->n_tokens; t++) {
        float *y_row = args->y + (size_t)t * (size_t)hidden;
        for (int64_t r = 0; r < count; r++) {
            double acc = 0.0;
            for (int32_t k = 0; k < args->top_k; k++) {
                const size_t pair = (size_t)t * (size_t)args->top_k + (size_t)k;
                acc += (double)args->weights[pair] * d[pair * REF_MOE_ROWS_PER_TASK + (size_t)r];
            }
            y_row[first + r] = (float)acc;
        }
    }
}

moak_status ref_moe_ffn(void *state, const moak_moe_args *args)
{
    const ref_state *st = state;
    if (args->n_tokens == 0)
        return MOAK_OK;

    moe_job job;
    job.args = args;
    job.gate = args->gate->packed;
    job.up = args->up->packed;
    job.down = args->down->packed;
    job.inter_blocks = (args->inter + REF_MOE_ROWS_PER_TASK - 1) / REF_MOE_ROWS_PER_TASK;

    const size_t n_pairs = (size_t)args->n_tokens * (size_t)args->top_k;
    const size_t row_floats = (size_t)(2 * args->hidden > args->inter ? 2 * args->hidden
                                                                      : args->inter);
    job.scratch_rows_stride = (size_t)REF_MOE_ROWS_PER_TASK * row_floats;
    job.scratch_d_stride = n_pairs * REF_MOE_ROWS_PER_TASK;
    /* The core bounds every dimension; n_pairs * inter is the one product
     * that no single argument's size check covers. */
    const bool h_fits = n_pairs <= SIZE_MAX / (size_t)args->inter;
    job.h = h_fits ? ref_alloc_array(n_pairs * (size_t)args->inter, sizeof(float)) : NULL;
    job.scratch_rows = ref_alloc_per_thread(st, job.scratch_rows_stride, sizeof(float));
    job.scratch_d = ref_alloc_per_thread(st, job.scratch_d_stride, sizeof(double));
    moak_status status = MOAK_OK;
    if (!job.h || !job.scratch_rows || !job.scratch_d) {
        status = ref_out_of_memory(st, "the MoE FFN's intermediate activations");
    } else {
        ref_parallel_for(st, (int64_t)args->n_active_experts * job.inter_blocks,
                         moe_gate_up_task, &job);
        ref_parallel_for(st, (args->hidden + REF_MOE_ROWS_PER_TASK - 1) / REF_MOE_ROWS_PER_TASK,
                         moe_down_task, &job);
    }
    free(job.h);
    free(job.scratch_rows);
    free(job.scratch_d);
    return status;
}
