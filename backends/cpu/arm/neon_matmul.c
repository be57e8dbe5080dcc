/*
 * moak_matmul on the neon backend: quantize the activations once (integer
 * formats), then run the level's tile over output panels on all threads.
 *
 *   decode (m <= tokens per tile): each task takes a run of neighbouring
 *     panels and all m tokens, so every weight byte is streamed from memory
 *     exactly once, in address order, by one thread;
 *   prefill: each task takes one panel (8 rows x K, a few KB to a few
 *     hundred KB) and walks all tokens in register tiles, so the panel stays
 *     in L1/L2 while the activations stream past it.
 * Each output element is written by exactly one task, and a token's result
 * does not depend on which tokens share its tile, so y is bitwise the same
 * for any thread count.
 */
#include "config.h"

#include <string.h>

#include "neon_backend.h"
#include "neon_kernels.h"

typedef struct quantize_job {
    const float *x;
    int64_t x_stride, cols, n_rows, rows_per_task, k_padded, n_blocks;
    int8_t *q;
    float *d, *ds;
} quantize_job;

static void quantize_task(void *arg, int64_t task, int32_t thread)
{
    (void)thread;
    const quantize_job *j = arg;
    const int64_t r0 = task * j->rows_per_task;
    const int64_t n = j->n_rows - r0 < j->rows_per_task ? j->n_rows - r0 : j->rows_per_task;
    neon_quantize_rows(j->x + r0 * j->x_stride, j->x_stride, j->cols, n, j->k_padded,
                       j->q + r0 * j->k_padded, j->d + r0 * j->n_blocks, j->ds + r0 * j->n_blocks);
}

static size_t round64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

moak_status neon_quantize_activations(neon_state *st, int index, const float *x,
                                      int64_t x_stride, int64_t cols, int64_t n_rows,
                                      const neon_weight *w, neon_act *act)
{
    const int64_t nb = w->k_padded / NEON_QBLOCK;
    /* The core bounded x's floats; the int8 copy is a quarter of them. */
    const size_t q_bytes = round64((size_t)n_rows * (size_t)w->k_padded);
    const size_t s_bytes = round64((size_t)n_rows * (size_t)nb * sizeof(float));
    uint8_t *buf = neon_buffer(st, index, q_bytes + 2 * s_bytes, "quantized activations");
    if (!buf)
        return MOAK_ERR_OUT_OF_MEMORY;
    quantize_job job = {x, x_stride, cols, n_rows, 0, w->k_padded, nb,
                        (int8_t *)buf, (float *)(buf + q_bytes), (float *)(buf + q_bytes + s_bytes)};
    /* About 64 KB of floats per task; a decode row is quantized inline. */
    const int64_t per = 16384 / (cols > 0 ? cols : 1);
    job.rows_per_task = per < 1 ? 1 : per;
    neon_parallel_for(st, (n_rows + job.rows_per_task - 1) / job.rows_per_task, quantize_task, &job);
    memset(act, 0, sizeof(*act));
    act->q = job.q;
    act->d = job.d;
    act->ds = job.ds;
    act->k_padded = w->k_padded;
    act->n_blocks = nb;
    return MOAK_OK;
}

typedef struct matmul_job {
    neon_tile_fn tile;
    const neon_weight *w;
    int64_t expert;
    neon_act act;
    int64_t m;
    int64_t panels_per_task;
    int tile_tokens;
    const float *bias;           /* this expert's [rows], or NULL */
    float *y;
} matmul_job;

static void matmul_task(void *arg, int64_t task, int32_t thread)
{
    (void)thread;
    const matmul_job *j = arg;
    const neon_weight *w = j->w;
    float out[NEON_MAX_TILE_TOKENS * NEON_PANEL_ROWS];
    int64_t rows[NEON_MAX_TILE_TOKENS];
    const int64_t p_end = (task + 1) * j->panels_per_task < w->n_panels ? (task + 1) * j->panels_per_task
                                                                       : w->n_panels;
    for (int64_t p = task * j->panels_per_task; p < p_end; p++) {
        const uint8_t *panel = neon_panel(w, j->expert, p);
        const int64_t row0 = p * NEON_PANEL_ROWS;
        const int nr = w->rows - row0 < NEON_PANEL_ROWS ? (int)(w->rows - row0) : NEON_PANEL_ROWS;
        for (int64_t t0 = 0; t0 < j->m; t0 += j->tile_tokens) {
            const int nt = j->m - t0 < j->tile_tokens ? (int)(j->m - t0) : j->tile_tokens;
            for (int t = 0; t < nt; t++)
                rows[t] = t0 + t;
            j->tile(w, panel, &j->act, rows, nt, out);
            for (int t = 0; t < nt; t++) {
                const float *o = out + (size_t)t * NEON_PANEL_ROWS;
                float *yr = j->y + (size_t)(t0 + t) * (size_t)w->rows + (size_t)row0;
                if (j->bias)
                    for (int r = 0; r < nr; r++)
                        yr[r] = o[r] + j->bias[row0 + r];
                else
                    memcpy(yr, o, (size_t)nr * sizeof(float));
            }
        }
    }
}

moak_status neon_matmul(void *state, const moak_matmul_args *args)
{
    neon_state *st = state;
    const neon_weight *w = args->w->packed;
    if (args->m == 0)
        return MOAK_OK;

    matmul_job job;
    memset(&job, 0, sizeof(job));
    job.tile = st->kernels->tile[w->format];
    job.w = w;
    job.expert = args->expert;
    job.m = args->m;
    job.y = args->y;
    job.bias = args->w->bias ? args->w->bias + (size_t)args->expert * (size_t)w->rows : NULL;
    if (neon_format_is_float(w->format)) {
        job.act.f = args->x;
        job.act.f_stride = w->cols;
        job.tile_tokens = NEON_FLOAT_TILE_TOKENS;
    } else {
        moak_status s = neon_quantize_activations(st, NEON_BUFFER_ACT_X, args->x, w->cols, w->cols,
                                                  args->m, w, &job.act);
        if (s != MOAK_OK)
            return s;
        job.tile_tokens = st->kernels->max_tokens;
    }

    if (args->m <= job.tile_tokens) {
        /* Decode: about four runs of panels per thread, for balance. */
        const int64_t target = 4 * (int64_t)st->n_threads;
        job.panels_per_task = w->n_panels / target > 1 ? w->n_panels / target : 1;
    } else {
        job.panels_per_task = 1;
    }
    neon_parallel_for(st, (w->n_panels + job.panels_per_task - 1) / job.panels_per_task, matmul_task, &job);
    return MOAK_OK;
}
