/*
 * moak_moe_ffn on the neon backend, on the core's grouping of (token, slot)
 * pairs by expert (moak_moe_args.offsets / pairs / active_experts).
 *
 *   1  gate and up: one task per (active expert, inter panel).  The tile
 *      runs the expert's gate panel and up panel over the same activation
 *      rows (the tokens of its pairs), adds the biases, applies the GLU and
 *      writes h[pair][the panel's rows] in f32.  Integer formats then
 *      quantize h to int8 per block of 32.
 *   2  down: one task per hidden panel.  It walks the active experts in
 *      ascending id, computes d[pair][8 rows] = down_e . h[pair] + bias for
 *      each of the expert's pairs into its thread's scratch, and then writes
 *      y[t][8 rows] = sum over slots k = 0 .. top_k-1 of weights[t][k] *
 *      d[t * top_k + k], in slot order.
 * Every y element is written once, by one task, with a fixed summation
 * order, so y is bitwise reproducible for any thread count.  Experts no
 * token chose are never read.  A single decode token with 8 experts gives
 * step 1 8 x inter/8 tasks and step 2 hidden/8 tasks: every core streams
 * weights.
 */
#include "config.h"

#include <string.h>

#include "neon_backend.h"
#include "neon_kernels.h"

typedef struct moe_job {
    const moak_moe_args *a;
    neon_tile_fn tile_gate_up, tile_down;
    const neon_weight *gate, *up, *down;
    int tile_tokens;
    neon_act act_x;              /* rows: tokens */
    neon_act act_h;              /* rows: pairs (token * top_k + slot) */
    float *h;                    /* [pairs][inter] */
    const neon_state *st;
} moe_job;

static void gate_up_task(void *arg, int64_t task, int32_t thread)
{
    (void)thread;
    const moe_job *j = arg;
    const moak_moe_args *a = j->a;
    const int64_t e = a->active_experts[task / j->gate->n_panels];
    const int64_t p = task % j->gate->n_panels;
    const int64_t row0 = p * NEON_PANEL_ROWS;
    const int nr = a->inter - row0 < NEON_PANEL_ROWS ? (int)(a->inter - row0) : NEON_PANEL_ROWS;
    const uint8_t *gate_panel = neon_panel(j->gate, e, p);
    const uint8_t *up_panel = neon_panel(j->up, e, p);
    const float *bias_g = a->gate->bias ? a->gate->bias + e * a->inter + row0 : NULL;
    const float *bias_u = a->up->bias ? a->up->bias + e * a->inter + row0 : NULL;
    float og[NEON_MAX_TILE_TOKENS * NEON_PANEL_ROWS], ou[NEON_MAX_TILE_TOKENS * NEON_PANEL_ROWS];
    int64_t rows[NEON_MAX_TILE_TOKENS];

    for (int64_t i0 = a->offsets[e]; i0 < a->offsets[e + 1]; i0 += j->tile_tokens) {
        const int nt = a->offsets[e + 1] - i0 < j->tile_tokens ? (int)(a->offsets[e + 1] - i0) : j->tile_tokens;
        for (int t = 0; t < nt; t++)
            rows[t] = a->pairs[i0 + t] / a->top_k;
        j->tile_gate_up(j->gate, gate_panel, &j->act_x, rows, nt, og);
        j->tile_gate_up(j->up, up_panel, &j->act_x, rows, nt, ou);
        for (int t = 0; t < nt; t++) {
            float *g = og + (size_t)t * NEON_PANEL_ROWS, *u = ou + (size_t)t * NEON_PANEL_ROWS;
            for (int r = 0; r < nr; r++) {
                if (bias_g)
                    g[r] += bias_g[r];
                if (bias_u)
                    u[r] += bias_u[r];
            }
            float *h = j->h + (size_t)a->pairs[i0 + t] * (size_t)a->inter + (size_t)row0;
            neon_glu(a->activation, a->swiglu_alpha, a->swiglu_limit, g, u, nr, h);
        }
    }
}

static void down_task(void *arg, int64_t task, int32_t thread)
{
    const moe_job *j = arg;
    const moak_moe_args *a = j->a;
    const int64_t row0 = task * NEON_PANEL_ROWS;
    const int nr = a->hidden - row0 < NEON_PANEL_ROWS ? (int)(a->hidden - row0) : NEON_PANEL_ROWS;
    float *d = neon_scratch(j->st, thread); /* [pairs][8] */
    float out[NEON_MAX_TILE_TOKENS * NEON_PANEL_ROWS];
    int64_t rows[NEON_MAX_TILE_TOKENS];

    for (int32_t ae = 0; ae < a->n_active_experts; ae++) {
        const int64_t e = a->active_experts[ae];
        const uint8_t *panel = neon_panel(j->down, e, task);
        const float *bias = a->down->bias ? a->down->bias + e * a->hidden + row0 : NULL;
        for (int64_t i0 = a->offsets[e]; i0 < a->offsets[e + 1]; i0 += j->tile_tokens) {
            const int nt = a->offsets[e + 1] - i0 < j->tile_tokens ? (int)(a->offsets[e + 1] - i0) : j->tile_tokens;
            for (int t = 0; t < nt; t++)
                rows[t] = a->pairs[i0 + t];
            j->tile_down(j->down, panel, &j->act_h, rows, nt, out);
            for (int t = 0; t < nt; t++) {
                float *dp = d + (size_t)rows[t] * NEON_PANEL_ROWS;
                const float *o = out + (size_t)t * NEON_PANEL_ROWS;
                for (int r = 0; r < NEON_PANEL_ROWS; r++)
                    dp[r] = o[r] + (bias && r < nr ? bias[r] : 0.0f);
            }
        }
    }

    /* Every pair belongs to exactly one active expert, so d is complete. */
    for (int64_t t = 0; t < a->n_tokens; t++) {
        float acc[NEON_PANEL_ROWS] = {0};
        for (int32_t k = 0; k < a->top_k; k++) {
            const size_t pair = (size_t)t * (size_t)a->top_k + (size_t)k;
            const float wt = a->weights[pair];
            const float *dp = d + pair * NEON_PANEL_ROWS;
            for (int r = 0; r < NEON_PANEL_ROWS; r++)
                acc[r] += wt * dp[r];
        }
        memcpy(a->y + (size_t)t * (size_t)a->hidden + (size_t)row0, acc, (size_t)nr * sizeof(float));
    }
}

moak_status neon_moe_ffn(void *state, const moak_moe_args *a)
{
    neon_state *st = state;
    if (a->n_tokens == 0)
        return MOAK_OK;

    moe_job job;
    memset(&job, 0, sizeof(job));
    job.a = a;
    job.st = st;
    job.gate = a->gate->packed;
    job.up = a->up->packed;
    job.down = a->down->packed;
    job.tile_gate_up = st->kernels->tile[job.gate->format];
    job.tile_down = st->kernels->tile[job.down->format];
    const bool is_float = neon_format_is_float(job.gate->format);
    job.tile_tokens = is_float ? NEON_FLOAT_TILE_TOKENS : st->kernels->max_tokens;

    /* The core bounded n_tokens * top_k and each dimension; these products
     * are the ones no single argument check covers. */
    const size_t n_pairs = (size_t)a->n_tokens * (size_t)a->top_k;
    if (n_pairs > SIZE_MAX / sizeof(float) / (size_t)a->inter ||
        n_pairs > SIZE_MAX / sizeof(float) / NEON_PANEL_ROWS)
        return neon_error(st, MOAK_ERR_SIZE_OVERFLOW, "MoE of %zu pairs does not fit in memory", n_pairs);
    moak_status s = neon_reserve_scratch(st, n_pairs * NEON_PANEL_ROWS * sizeof(float),
                                         "the MoE down projection's partial rows");
    if (s != MOAK_OK)
        return s;
    job.h = neon_buffer(st, NEON_BUFFER_HIDDEN, n_pairs * (size_t)a->inter * sizeof(float),
                        "the MoE hidden rows");
    if (!job.h)
        return MOAK_ERR_OUT_OF_MEMORY;

    if (is_float) {
        job.act_x.f = a->x;
        job.act_x.f_stride = a->hidden;
    } else {
        s = neon_quantize_activations(st, NEON_BUFFER_ACT_X, a->x, a->hidden, a->hidden, a->n_tokens,
                                      job.gate, &job.act_x);
        if (s != MOAK_OK)
            return s;
    }
    neon_parallel_for(st, (int64_t)a->n_active_experts * job.gate->n_panels, gate_up_task, &job);

    if (is_float) {
        job.act_h.f = job.h;
        job.act_h.f_stride = a->inter;
    } else {
        s = neon_quantize_activations(st, NEON_BUFFER_ACT_H, job.h, a->inter, a->inter, (int64_t)n_pairs,
                                      job.down, &job.act_h);
        if (s != MOAK_OK)
            return s;
    }
    neon_parallel_for(st, job.down->n_panels, down_task, &job);
    return MOAK_OK;
}
