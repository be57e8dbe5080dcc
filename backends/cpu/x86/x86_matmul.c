/* moak_matmul on the x86 backends: quantize the activations once, then run
 * the level's kernels over output panels on all threads.
 *
 * Three shapes of work:
 *   decode (m <= the level's 2-panel tile height): each task takes two
 *     neighbouring panels and all m tokens through the tile kernel, so every
 *     weight byte is streamed from memory exactly once and two independent
 *     panels keep the loads in flight;
 *   prefill, integer formats: each task takes one panel and a block of
 *     tokens sized from the L2 through the panel kernel (K in L1-sized
 *     chunks, unpacked once per chunk, every register tile of tokens passing
 *     over it); tasks run token block by token block, so the block's
 *     quantized activations stay in L2 while the panels go by;
 *   prefill, float formats: each task takes one panel and walks all tokens
 *     in register tiles of max_tokens[0] of the tile kernel.
 * Each output element is written by exactly one task, so results do not
 * depend on the thread count or on which thread ran which task. */
#include "config.h"

#include <string.h>

#include "x86_backend.h"
#include "x86_kernels.h"

/* Tokens per prefill task: the quantized activation rows of that many tokens
 * (k_padded bytes plus d, s and ds per 32-block) fill about a third of the
 * L2 hwloc reports, so they stay there while the weight panels stream past;
 * a multiple of `tile`, 128 where the L2 is unknown. */
static int64_t prefill_token_block(const moak_x86_state *st, int64_t k_padded, int64_t tile)
{
    const uint64_t l2 = st->env.hw ? st->env.hw->cache_bytes[1] : 0;
    const int64_t row_bytes = k_padded + k_padded / 32 * 12; /* quants, then d, s and ds per block */
    int64_t tokens = l2 ? (int64_t)(l2 / 3) / (row_bytes > 0 ? row_bytes : 1) : 128;
    if (tokens > 512)
        tokens = 512;
    tokens = tokens / tile * tile;
    return tokens < tile ? tile : tokens;
}

typedef struct quantize_job {
    const moak_x86_kernels *kernels;
    const float *x;
    int64_t x_stride, cols, n_rows, rows_per_task;
    int8_t *q;
    float *d;
    int32_t *s;
    float *ds;
    int64_t k_padded, n_blocks;
    int32_t offset;
} quantize_job;

static void quantize_task(void *arg, int64_t task, int32_t thread)
{
    (void)thread;
    const quantize_job *j = arg;
    int64_t r0 = task * j->rows_per_task;
    int64_t n = j->n_rows - r0 < j->rows_per_task ? j->n_rows - r0 : j->rows_per_task;
    j->kernels->quantize(j->x + r0 * j->x_stride, j->x_stride, j->cols, n, j->k_padded, j->offset,
                         j->q + r0 * j->k_padded, j->d + r0 * j->n_blocks, j->s + r0 * j->n_blocks,
                         j->ds + r0 * j->n_blocks);
}

/* Bytes of a quantized activation buffer for n_rows rows. */
static size_t act_bytes(int64_t n_rows, int64_t k_padded)
{
    int64_t nb = k_padded / MOAK_X86_QBLOCK;
    size_t q = ((size_t)n_rows * (size_t)k_padded + 63) & ~(size_t)63;
    return q + 3 * (((size_t)n_rows * (size_t)nb * 4 + 63) & ~(size_t)63);
}

int32_t moak_x86_act_offset(const moak_x86_kernels *kernels, moak_format format)
{
    if (format == MOAK_FORMAT_Q8_0 || format == MOAK_FORMAT_I8_ROW)
        return kernels->dot8_offset;
    return format == MOAK_FORMAT_Q4_0 ? 8 : 0;
}

moak_status moak_x86_quantize_activations(moak_x86_state *st, int index, const float *x,
                                          int64_t x_stride, int64_t cols, int64_t n_rows,
                                          const moak_x86_weight *w, moak_x86_act *act)
{
    const int64_t k_padded = w->k_padded;
    const int32_t offset = moak_x86_act_offset(st->kernels, w->format);
    uint8_t *buf = moak_x86_op_buffer(st, index, act_bytes(n_rows, k_padded));
    if (!buf)
        return st->env.error(st->env.log_ctx, MOAK_ERR_OUT_OF_MEMORY,
                             "x86: out of memory for %lld quantized activation rows",
                             (long long)n_rows);
    int64_t nb = k_padded / MOAK_X86_QBLOCK;
    size_t q_bytes = ((size_t)n_rows * (size_t)k_padded + 63) & ~(size_t)63;
    size_t ds_bytes = ((size_t)n_rows * (size_t)nb * 4 + 63) & ~(size_t)63;
    quantize_job job = {st->kernels, x, x_stride, cols, n_rows, 0,
                        (int8_t *)buf, (float *)(buf + q_bytes), (int32_t *)(buf + q_bytes + ds_bytes),
                        (float *)(buf + q_bytes + 2 * ds_bytes), k_padded, nb, offset};
    /* About 64 KB of floats per task; one task (inline) for decode. */
    int64_t per = 16384 / (cols > 0 ? cols : 1);
    job.rows_per_task = per < 1 ? 1 : per;
    int64_t n_tasks = (n_rows + job.rows_per_task - 1) / job.rows_per_task;
    if (n_tasks <= 1)
        quantize_task(&job, 0, 0);
    else
        st->env.parallel_for(st->env.pool, n_tasks, quantize_task, &job);
    memset(act, 0, sizeof(*act));
    act->q = job.q;
    act->d = job.d;
    act->s = job.s;
    act->ds = job.ds;
    act->k_padded = k_padded;
    act->n_blocks = nb;
    return MOAK_OK;
}

typedef struct matmul_job {
    const moak_x86_kernels *kernels;
    const moak_x86_weight *w;
    int64_t expert;
    moak_x86_act act;
    int64_t m;
    int panels_per_task;
    int tile_tokens;
    int64_t k_end;               /* all of K: n_blocks, or cols for float formats */
    const float *bias;           /* this expert's [rows], or NULL */
    float *y;
} matmul_job;

static void matmul_task(void *arg, int64_t task, int32_t thread)
{
    (void)thread;
    const matmul_job *j = arg;
    const moak_x86_weight *w = j->w;
    const int R = w->panel_rows;
    int64_t p0 = task * j->panels_per_task;
    int n_p = w->n_panels - p0 < j->panels_per_task ? (int)(w->n_panels - p0) : j->panels_per_task;
    const uint8_t *panels[2] = {moak_x86_panel(w, j->expert, p0),
                                n_p > 1 ? moak_x86_panel(w, j->expert, p0 + 1) : NULL};
    float out[2 * MOAK_X86_MAX_TILE_TOKENS * 32];
    int64_t rows[MOAK_X86_MAX_TILE_TOKENS];
    for (int64_t t0 = 0; t0 < j->m; t0 += j->tile_tokens) {
        int nt = j->m - t0 < j->tile_tokens ? (int)(j->m - t0) : j->tile_tokens;
        for (int t = 0; t < nt; t++)
            rows[t] = t0 + t;
        j->kernels->tile[w->format](w, panels, n_p, 0, j->k_end, &j->act, rows, nt, out);
        for (int p = 0; p < n_p; p++) {
            int64_t row0 = (p0 + p) * R;
            int nr = w->rows - row0 < R ? (int)(w->rows - row0) : R;
            for (int t = 0; t < nt; t++) {
                const float *o = out + (size_t)(p * nt + t) * (size_t)R;
                float *yr = j->y + (t0 + t) * w->rows + row0;
                if (j->bias)
                    for (int r = 0; r < nr; r++)
                        yr[r] = o[r] + j->bias[row0 + r];
                else
                    memcpy(yr, o, (size_t)nr * sizeof(float));
            }
        }
    }
}

typedef struct prefill_job {
    moak_x86_panel_fn panel;
    const moak_x86_weight *w;
    int64_t expert;
    moak_x86_act act;
    int64_t m;
    int64_t token_block;         /* tokens per task, a multiple of the register tile */
    const float *bias;
    float *y;
    uint8_t *slabs;              /* [thread]: scratch, then out [token_block][R] for a partial panel */
    size_t slab_bytes;
    int64_t *rows;               /* 0 .. m - 1 */
    int32_t n_threads;
} prefill_job;

static void prefill_task(void *arg, int64_t task, int32_t thread)
{
    const prefill_job *j = arg;
    const moak_x86_weight *w = j->w;
    const int R = w->panel_rows;
    const int64_t p = task % w->n_panels, t0 = task / w->n_panels * j->token_block;
    const int64_t nt = j->m - t0 < j->token_block ? j->m - t0 : j->token_block;
    const int64_t row0 = p * R;
    const int nr = w->rows - row0 < R ? (int)(w->rows - row0) : R;
    uint8_t *slab = j->slabs + (size_t)thread * j->slab_bytes;
    const uint8_t *panel = moak_x86_panel(w, j->expert, p);
    /* Tasks are handed out in order, so this thread's next panel is most
     * likely n_threads further on: its first chunk is fetched meanwhile. */
    const uint8_t *next[1] = {p + j->n_threads < w->n_panels ? moak_x86_panel(w, j->expert, p + j->n_threads)
                                                              : NULL};
    const float *bias[1] = {j->bias ? j->bias + row0 : NULL};
    if (nr == R) {
        /* Straight into y: its R columns of these tokens are this task's. */
        float *out[1] = {j->y + t0 * w->rows + row0};
        j->panel(w, &panel, next, 1, &j->act, j->rows + t0, nt, bias[0] ? bias : NULL, out, w->rows, slab);
        return;
    }
    /* The partial last panel: through scratch, then its nr real rows.  Its
     * bias has only nr values, so it is added here. */
    float *tmp[1] = {(float *)(slab + MOAK_X86_PANEL_SCRATCH_BYTES)};
    j->panel(w, &panel, next, 1, &j->act, j->rows + t0, nt, NULL, tmp, R, slab);
    for (int64_t i = 0; i < nt; i++) {
        const float *o = tmp[0] + i * R;
        float *yr = j->y + (t0 + i) * w->rows + row0;
        for (int r = 0; r < nr; r++)
            yr[r] = o[r] + (bias[0] ? bias[0][r] : 0.0f);
    }
}

static moak_status run_prefill(moak_x86_state *st, const moak_matmul_args *args,
                               const moak_x86_weight *w, const moak_x86_act *act, const float *bias)
{
    prefill_job job;
    memset(&job, 0, sizeof(job));
    job.panel = st->kernels->panel[w->format];
    job.w = w;
    job.expert = args->expert;
    job.act = *act;
    job.m = args->m;
    job.bias = bias;
    job.y = args->y;
    /* Equal blocks of about the L2's token block, whole tiles each (the
     * last may be short). */
    const int64_t tile = st->kernels->max_tokens[0];
    const int64_t target = prefill_token_block(st, w->k_padded, tile);
    int64_t n_blocks = (args->m + target / 2) / target; /* the nearest count */
    if (n_blocks < 1)
        n_blocks = 1;
    int64_t per = (args->m + n_blocks - 1) / n_blocks;
    job.token_block = (per + tile - 1) / tile * tile;
    n_blocks = (args->m + job.token_block - 1) / job.token_block;
    int32_t threads = st->env.n_threads > 0 ? st->env.n_threads : 1;
    job.n_threads = threads;
    job.slab_bytes = MOAK_X86_PANEL_SCRATCH_BYTES +
                     (((size_t)job.token_block * (size_t)w->panel_rows * sizeof(float) + 63) & ~(size_t)63);
    uint8_t *buf = moak_x86_op_buffer(st, 1, job.slab_bytes * (size_t)threads +
                                                 (size_t)args->m * sizeof(int64_t));
    if (!buf)
        return st->env.error(st->env.log_ctx, MOAK_ERR_OUT_OF_MEMORY,
                             "x86 matmul: out of memory for %d threads' prefill scratch", (int)threads);
    job.slabs = buf;
    job.rows = (int64_t *)(buf + job.slab_bytes * (size_t)threads);
    for (int64_t i = 0; i < args->m; i++)
        job.rows[i] = i;
    st->env.parallel_for(st->env.pool, n_blocks * w->n_panels, prefill_task, &job);
    return MOAK_OK;
}

moak_status moak_x86_matmul(void *state, const moak_matmul_args *args)
{
    moak_x86_state *st = state;
    const moak_x86_weight *w = args->w->packed;
    matmul_job job;
    memset(&job, 0, sizeof(job));
    job.kernels = st->kernels;
    job.w = w;
    job.expert = args->expert;
    job.m = args->m;
    job.y = args->y;
    job.bias = args->w->bias ? args->w->bias + (size_t)args->expert * (size_t)w->rows : NULL;
    job.k_end = moak_x86_format_is_float(w->format) ? w->cols : w->n_blocks;
    if (args->m == 0)
        return MOAK_OK;
    if (moak_x86_format_is_float(w->format)) {
        job.act.f = args->x;
        job.act.f_stride = w->cols;
    } else {
        moak_status s = moak_x86_quantize_activations(st, 0, args->x, w->cols, w->cols, args->m, w,
                                                      &job.act);
        if (s != MOAK_OK)
            return s;
    }
    if (args->m >= st->kernels->panel_min_tokens && st->kernels->panel[w->format])
        return run_prefill(st, args, w, &job.act, job.bias);
    if (args->m <= st->kernels->max_tokens[1] && w->n_panels > 1) {
        job.panels_per_task = 2;
        job.tile_tokens = st->kernels->max_tokens[1];
    } else {
        job.panels_per_task = 1;
        job.tile_tokens = st->kernels->max_tokens[0];
    }
    int64_t n_tasks = (w->n_panels + job.panels_per_task - 1) / job.panels_per_task;
    st->env.parallel_for(st->env.pool, n_tasks, matmul_task, &job);
    return MOAK_OK;
}
