/* moak_moe_ffn on the x86 backends.
 *
 * The core hands the (token, slot) pairs grouped by expert.  Three steps:
 *   A  gate and up: one task per (active expert, inter panel); the tile
 *      kernel runs the gate panel and the up panel together over the same
 *      activation loads (two panels, one pass), adds the biases, applies the
 *      GLU and writes h[pair][panel rows] in f32;
 *      then h is quantized to int8 per block of 32 (integer formats);
 *   B  down: one task per hidden panel, walking the active experts in
 *      ascending id and their pairs in the core's order, adding
 *      weight * (down_e . h + bias) into y.
 * Every y element belongs to one task and receives its terms in a fixed
 * order (ascending expert), so y is bitwise reproducible for any thread
 * count.  Experts with no pair are never read.  A single decode token with 8
 * experts gives step A 8 x inter/R tasks and step B hidden/R tasks, enough
 * to keep every core streaming. */
#include "config.h"

#include <string.h>

#include "x86_backend.h"
#include "x86_kernels.h"

typedef struct moe_job {
    const moak_x86_kernels *kernels;
    const moak_moe_args *a;
    const moak_x86_weight *gate, *up, *down;
    moak_x86_act act_x;          /* rows: tokens */
    moak_x86_act act_h;          /* rows: pairs (token * top_k + slot) */
    float *h;                    /* [pairs][inter] */
} moe_job;

static void gate_up_task(void *arg, int64_t task, int32_t thread)
{
    (void)thread;
    const moe_job *j = arg;
    const moak_moe_args *a = j->a;
    const moak_x86_weight *wg = j->gate;
    const int R = wg->panel_rows;
    int64_t e = a->active_experts[task / wg->n_panels];
    int64_t p = task % wg->n_panels;
    int64_t row0 = p * R;
    int nr = a->inter - row0 < R ? (int)(a->inter - row0) : R;
    const uint8_t *panels[2] = {moak_x86_panel(wg, e, p), moak_x86_panel(j->up, e, p)};
    const float *bias_g = a->gate->bias ? a->gate->bias + e * a->inter + row0 : NULL;
    const float *bias_u = a->up->bias ? a->up->bias + e * a->inter + row0 : NULL;
    const int tile = j->kernels->max_tokens[1];
    float out[2 * MOAK_X86_MAX_TILE_TOKENS * 32];
    float g[32], u[32];
    int64_t rows[MOAK_X86_MAX_TILE_TOKENS];
    for (int64_t i0 = a->offsets[e]; i0 < a->offsets[e + 1]; i0 += tile) {
        int nt = a->offsets[e + 1] - i0 < tile ? (int)(a->offsets[e + 1] - i0) : tile;
        for (int t = 0; t < nt; t++)
            rows[t] = a->pairs[i0 + t] / a->top_k;
        j->kernels->tile[wg->format](wg, panels, 2, &j->act_x, rows, nt, out);
        for (int t = 0; t < nt; t++) {
            const float *og = out + (size_t)t * R, *ou = out + (size_t)(nt + t) * R;
            for (int r = 0; r < nr; r++) {
                g[r] = og[r] + (bias_g ? bias_g[r] : 0.0f);
                u[r] = ou[r] + (bias_u ? bias_u[r] : 0.0f);
            }
            float *h = j->h + (size_t)a->pairs[i0 + t] * (size_t)a->inter + (size_t)row0;
            j->kernels->glu(a->activation, a->swiglu_alpha, a->swiglu_limit, g, u, nr, h);
        }
    }
}

static void down_task(void *arg, int64_t task, int32_t thread)
{
    (void)thread;
    const moe_job *j = arg;
    const moak_moe_args *a = j->a;
    const moak_x86_weight *wd = j->down;
    const int R = wd->panel_rows;
    int64_t row0 = task * R;
    int nr = a->hidden - row0 < R ? (int)(a->hidden - row0) : R;
    for (int64_t t = 0; t < a->n_tokens; t++)
        memset(a->y + t * a->hidden + row0, 0, (size_t)nr * sizeof(float));
    const int tile = j->kernels->max_tokens[0];
    float out[MOAK_X86_MAX_TILE_TOKENS * 32];
    int64_t rows[MOAK_X86_MAX_TILE_TOKENS];
    for (int32_t ae = 0; ae < a->n_active_experts; ae++) {
        int64_t e = a->active_experts[ae];
        const uint8_t *panel = moak_x86_panel(wd, e, task);
        const float *bias = a->down->bias ? a->down->bias + e * a->hidden + row0 : NULL;
        for (int64_t i0 = a->offsets[e]; i0 < a->offsets[e + 1]; i0 += tile) {
            int nt = a->offsets[e + 1] - i0 < tile ? (int)(a->offsets[e + 1] - i0) : tile;
            for (int t = 0; t < nt; t++)
                rows[t] = a->pairs[i0 + t];
            j->kernels->tile[wd->format](wd, &panel, 1, &j->act_h, rows, nt, out);
            for (int t = 0; t < nt; t++) {
                int32_t pair = a->pairs[i0 + t];
                float wt = a->weights[pair];
                float *y = a->y + (int64_t)(pair / a->top_k) * a->hidden + row0;
                const float *o = out + (size_t)t * R;
                if (bias)
                    for (int r = 0; r < nr; r++)
                        y[r] += wt * (o[r] + bias[r]);
                else
                    for (int r = 0; r < nr; r++)
                        y[r] += wt * o[r];
            }
        }
    }
}

moak_status moak_x86_moe_ffn(void *state, const moak_moe_args *a)
{
    moak_x86_state *st = state;
    moe_job job;
    memset(&job, 0, sizeof(job));
    job.kernels = st->kernels;
    job.a = a;
    job.gate = a->gate->packed;
    job.up = a->up->packed;
    job.down = a->down->packed;
    if (a->n_tokens == 0)
        return MOAK_OK;
    const bool is_float = moak_x86_format_is_float(job.gate->format);
    int64_t n_pairs = a->n_tokens * a->top_k;
    job.h = moak_x86_op_buffer(st, 1, (size_t)n_pairs * (size_t)a->inter * sizeof(float));
    if (!job.h)
        return st->env.error(st->env.log_ctx, MOAK_ERR_OUT_OF_MEMORY,
                             "x86 moe: out of memory for %lld x %lld hidden values",
                             (long long)n_pairs, (long long)a->inter);
    moak_status s;
    if (is_float) {
        job.act_x.f = a->x;
        job.act_x.f_stride = a->hidden;
    } else {
        s = moak_x86_quantize_activations(st, 0, a->x, a->hidden, a->hidden, a->n_tokens,
                                          job.gate, &job.act_x);
        if (s != MOAK_OK)
            return s;
    }
    st->env.parallel_for(st->env.pool, (int64_t)a->n_active_experts * job.gate->n_panels,
                         gate_up_task, &job);
    if (is_float) {
        job.act_h.f = job.h;
        job.act_h.f_stride = a->inter;
    } else {
        s = moak_x86_quantize_activations(st, 2, job.h, a->inter, a->inter, n_pairs, job.down,
                                          &job.act_h);
        if (s != MOAK_OK)
            return s;
    }
    st->env.parallel_for(st->env.pool, job.down->n_panels, down_task, &job);
    return MOAK_OK;
}
