/* moak_moe_ffn on the x86 backends.
 *
 * The core hands the (token, slot) pairs grouped by expert.  Two schedules,
 * chosen by how many pairs each active expert has:
 *
 * streamed (decode and small batches: a few pairs per expert, the weight
 *   bytes are the cost).  One parallel region.  A task is (active expert e,
 *   chunk c of the inter dimension): it runs e's gate and up panels of the
 *   chunk over e's pairs (two streams, one pass), applies the GLU, quantizes
 *   its slice of h, and multiplies it by the matching K-columns of every
 *   down panel (split-K), writing a partial down output per pair.  Tasks
 *   depend on nothing but x, so no barrier separates gate/up from down, and
 *   each task streams its expert's weights front to back (a chunk of one
 *   expert is contiguous in gate and up, and, with one chunk per expert,
 *   in down too).  The calling thread then adds the partials: per pair, in
 *   ascending chunk, plus the bias, times the routing weight, into y in
 *   ascending expert order.
 *
 * batched (prefill: many pairs per expert, the arithmetic is the cost).
 *   A  gate and up: one task per active expert and run of inter panels;
 *      the panel kernel (integer formats; the tile kernel, both panels in
 *      one pass, for floats) runs the gate panel then the up panel over the
 *      expert's pairs, the biases and the GLU follow, into h[grouped
 *      pair][panel rows] in f32; then h is quantized (integer formats);
 *   B  down: one task per hidden panel, walking the active experts in
 *      ascending id and their pairs in the core's order, adding
 *      weight * (down_e . h + bias) into y.
 *
 * In both, every output element is computed by one task or by the caller in
 * a fixed order, and the chunking depends only on the shapes and the thread
 * count, so y is bitwise reproducible for a given thread count.  Experts
 * with no pair are never read. */
#include "config.h"

#include <string.h>

#include "x86_backend.h"
#include "x86_kernels.h"

/* The streamed schedule runs when the active experts have at most this many
 * pairs each on average (beyond it the weights are re-read from cache and
 * the arithmetic, not the stream, sets the time). */
#define STREAM_MAX_PAIRS_PER_EXPERT 4
/* ... and when its partial down outputs fit in this many bytes. */
#define STREAM_MAX_PARTIAL_BYTES ((size_t)16 << 20)
/* Aim for this many streamed tasks per thread (dynamic hand-out evens out a
 * thread that was descheduled), with chunks of at least this many inter
 * columns (shorter down pieces would stop the stream every few hundred bytes). */
#define STREAM_TASKS_PER_THREAD 4
#define STREAM_MIN_CHUNK_COLS 128
/* Pairs per panel-kernel call in the batched schedule (bounds its scratch). */
#define BATCH_PAIRS 128

typedef struct moe_job {
    const moak_x86_kernels *kernels;
    const moak_moe_args *a;
    const moak_x86_weight *gate, *up, *down;
    bool is_float;
    int64_t gate_k_end;          /* all of the gate/up K: n_blocks or cols */
    moak_x86_act act_x;          /* rows: tokens */
    /* batched */
    moak_x86_act act_h;          /* rows: pairs in the core's grouped order */
    float *h;                    /* [grouped pair][inter] */
    moak_x86_panel_fn panel_gate, panel_down; /* NULL: tile kernels */
    int64_t panels_per_task;     /* gate/up panels of one expert per task */
    int64_t down_panels_per_task; /* hidden panels per down task */
    uint8_t *batch_slabs;        /* [thread]: panel scratch, rows, two outputs */
    size_t batch_slab_bytes;
    /* streamed */
    int64_t chunks;              /* inter chunks per expert */
    int64_t unit, n_units;       /* chunk boundaries fall on multiples of unit */
    int64_t chunk_cols_max;      /* widest chunk, in inter columns */
    int64_t chunk_blocks_max;    /* its 32-blocks, K padding of the last chunk included */
    int64_t pairs_max;           /* most pairs of one active expert */
    int32_t down_offset;         /* quantization offset the down format needs */
    uint8_t *slabs;              /* [thread] scratch of slab_bytes */
    size_t slab_bytes;
    float *partial;              /* [chunk][grouped pair][hidden] */
} moe_job;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Gate and up panel p of expert e over the grouped pairs [i0, i0 + nt):
 * GLU(gate + bias, up + bias) into h + t * h_stride, nr values each. */
static void gate_up_tile(const moe_job *j, int64_t e, int64_t p, int64_t i0, int nt, float *h,
                         int64_t h_stride)
{
    const moak_moe_args *a = j->a;
    const moak_x86_weight *wg = j->gate;
    const int R = wg->panel_rows;
    const int64_t row0 = p * R;
    const int nr = (int)min64(R, a->inter - row0);
    const uint8_t *panels[2] = {moak_x86_panel(wg, e, p), moak_x86_panel(j->up, e, p)};
    const float *bias_g = a->gate->bias ? a->gate->bias + e * a->inter + row0 : NULL;
    const float *bias_u = a->up->bias ? a->up->bias + e * a->inter + row0 : NULL;
    float out[2 * MOAK_X86_MAX_TILE_TOKENS * 32];
    float g[32], u[32];
    int64_t rows[MOAK_X86_MAX_TILE_TOKENS] = {0};
    for (int t = 0; t < nt; t++)
        rows[t] = a->pairs[i0 + t] / a->top_k;
    j->kernels->tile[wg->format](wg, panels, 2, 0, j->gate_k_end, &j->act_x, rows, nt, out);
    for (int t = 0; t < nt; t++) {
        const float *og = out + (size_t)t * R, *ou = out + (size_t)(nt + t) * R;
        for (int r = 0; r < nr; r++) {
            g[r] = og[r] + (bias_g ? bias_g[r] : 0.0f);
            u[r] = ou[r] + (bias_u ? bias_u[r] : 0.0f);
        }
        j->kernels->glu(a->activation, a->swiglu_alpha, a->swiglu_limit, g, u, nr,
                        h + (size_t)t * (size_t)h_stride);
    }
}

/* ---- batched ---------------------------------------------------------------- */

/* A batched task's scratch: the panel kernel's, then BATCH_PAIRS rows and
 * two [BATCH_PAIRS][R] outputs. */
static size_t batch_slab_bytes(int R)
{
    return MOAK_X86_PANEL_SCRATCH_BYTES + round64(BATCH_PAIRS * sizeof(int64_t)) +
           2 * round64((size_t)BATCH_PAIRS * (size_t)R * sizeof(float));
}

/* GLU(gate + bias, up + bias) of nt rows of g and u (stride R) into
 * h[i][row0 ..] for the grouped pairs i in [i0, i0 + nt). */
static void glu_rows(const moe_job *j, int64_t e, int64_t row0, int nr, int64_t i0, int64_t nt,
                     const float *g, const float *u, int R)
{
    const moak_moe_args *a = j->a;
    const float *bias_g = a->gate->bias ? a->gate->bias + e * a->inter + row0 : NULL;
    const float *bias_u = a->up->bias ? a->up->bias + e * a->inter + row0 : NULL;
    float gb[32], ub[32];
    for (int64_t t = 0; t < nt; t++) {
        const float *gt = g + t * R, *ut = u + t * R;
        if (bias_g || bias_u) {
            for (int r = 0; r < nr; r++) {
                gb[r] = gt[r] + (bias_g ? bias_g[r] : 0.0f);
                ub[r] = ut[r] + (bias_u ? bias_u[r] : 0.0f);
            }
            gt = gb;
            ut = ub;
        }
        j->kernels->glu(a->activation, a->swiglu_alpha, a->swiglu_limit, gt, ut, nr,
                        j->h + (size_t)(i0 + t) * (size_t)a->inter + (size_t)row0);
    }
}

/* One batched gate/up task: panels [p0, p1) of one expert (the panel
 * kernel), or one panel (tile kernels, float formats). */
static void gate_up_task(void *arg, int64_t task, int32_t thread)
{
    const moe_job *j = arg;
    const moak_moe_args *a = j->a;
    const int64_t n_groups = (j->gate->n_panels + j->panels_per_task - 1) / j->panels_per_task;
    const int64_t e = a->active_experts[task / n_groups];
    const int64_t p0 = task % n_groups * j->panels_per_task;
    const int64_t p1 = min64(p0 + j->panels_per_task, j->gate->n_panels);
    const int R = j->gate->panel_rows;
    if (!j->panel_gate || a->offsets[e + 1] - a->offsets[e] < j->kernels->panel_min_tokens) {
        const int tile = j->kernels->max_tokens[1];
        float hbuf[MOAK_X86_MAX_TILE_TOKENS * 32];
        for (int64_t p = p0; p < p1; p++) {
            const int nr = (int)min64(R, a->inter - p * R);
            for (int64_t i0 = a->offsets[e]; i0 < a->offsets[e + 1]; i0 += tile) {
                int nt = (int)min64(tile, a->offsets[e + 1] - i0);
                gate_up_tile(j, e, p, i0, nt, hbuf, R);
                for (int t = 0; t < nt; t++)
                    memcpy(j->h + (size_t)(i0 + t) * (size_t)a->inter + (size_t)(p * R),
                           hbuf + (size_t)t * R, (size_t)nr * sizeof(float));
            }
        }
        return;
    }
    uint8_t *slab = j->batch_slabs + (size_t)thread * j->batch_slab_bytes;
    int64_t *rows = (int64_t *)(slab + MOAK_X86_PANEL_SCRATCH_BYTES);
    float *g = (float *)((uint8_t *)rows + round64(BATCH_PAIRS * sizeof(int64_t)));
    float *u = g + round64((size_t)BATCH_PAIRS * (size_t)R * sizeof(float)) / sizeof(float);
    float *out[2] = {g, u};
    for (int64_t p = p0; p < p1; p++) {
        const int64_t row0 = p * R;
        const int nr = (int)min64(R, a->inter - row0);
        /* Gate, then up, one panel per call: the one-panel register tile
         * (2 x 6) beats the two-panel one (4 x 3) on the int8 ports.  Each
         * call prefetches the next panel of the task. */
        const uint8_t *gate = moak_x86_panel(j->gate, e, p), *up = moak_x86_panel(j->up, e, p);
        const uint8_t *after_gate[1] = {up};
        const uint8_t *after_up[1] = {p + 1 < p1 ? moak_x86_panel(j->gate, e, p + 1) : NULL};
        for (int64_t i0 = a->offsets[e]; i0 < a->offsets[e + 1]; i0 += BATCH_PAIRS) {
            int64_t nt = min64(BATCH_PAIRS, a->offsets[e + 1] - i0);
            for (int64_t t = 0; t < nt; t++)
                rows[t] = a->pairs[i0 + t] / a->top_k;
            bool last_block = i0 + nt >= a->offsets[e + 1];
            j->panel_gate(j->gate, &gate, last_block ? after_gate : NULL, 1, &j->act_x, rows, nt, NULL,
                          &out[0], R, slab);
            j->panel_gate(j->up, &up, last_block ? after_up : NULL, 1, &j->act_x, rows, nt, NULL,
                          &out[1], R, slab);
            glu_rows(j, e, row0, nr, i0, nt, g, u, R);
        }
    }
}

/* y[token][row0 ..] += weight * (o + bias) for the grouped pairs [i0, i0 + nt). */
static void add_down_rows(const moe_job *j, const float *bias, int64_t row0, int nr, int64_t i0,
                          int64_t nt, const float *o, int R)
{
    const moak_moe_args *a = j->a;
    for (int64_t t = 0; t < nt; t++) {
        int32_t pair = a->pairs[i0 + t];
        float wt = a->weights[pair];
        float *y = a->y + (int64_t)(pair / a->top_k) * a->hidden + row0;
        const float *ot = o + t * R;
        if (bias)
            for (int r = 0; r < nr; r++)
                y[r] += wt * (ot[r] + bias[r]);
        else
            for (int r = 0; r < nr; r++)
                y[r] += wt * ot[r];
    }
}

/* One batched down task: hidden panels [q0, q1), every active expert in
 * ascending id (each y element gets its terms in that order), the panels of
 * one expert in turn so its rows of h stay in L1 while they pass. */
static void down_task(void *arg, int64_t task, int32_t thread)
{
    const moe_job *j = arg;
    const moak_moe_args *a = j->a;
    const moak_x86_weight *wd = j->down;
    const int R = wd->panel_rows;
    const int64_t q0 = task * j->down_panels_per_task;
    const int64_t q1 = min64(q0 + j->down_panels_per_task, wd->n_panels);
    const int64_t col0 = q0 * R, cols = min64(q1 * R, a->hidden) - col0;
    const int64_t k_end = j->is_float ? wd->cols : wd->n_blocks;
    for (int64_t t = 0; t < a->n_tokens; t++)
        memset(a->y + t * a->hidden + col0, 0, (size_t)cols * sizeof(float));
    const int tile = j->kernels->max_tokens[0];
    float tile_out[MOAK_X86_MAX_TILE_TOKENS * 32];
    int64_t tile_rows[MOAK_X86_MAX_TILE_TOKENS];
    uint8_t *slab = j->panel_down ? j->batch_slabs + (size_t)thread * j->batch_slab_bytes : NULL;
    int64_t *rows = slab ? (int64_t *)(slab + MOAK_X86_PANEL_SCRATCH_BYTES) : NULL;
    float *o = slab ? (float *)((uint8_t *)rows + round64(BATCH_PAIRS * sizeof(int64_t))) : NULL;
    /* Experts with few pairs go through the tile kernel (see panel_min_tokens). */
    for (int32_t ae = 0; ae < a->n_active_experts; ae++) {
        const int64_t e = a->active_experts[ae];
        for (int64_t q = q0; q < q1; q++) {
            const int64_t row0 = q * R;
            const int nr = (int)min64(R, a->hidden - row0);
            const uint8_t *panel = moak_x86_panel(wd, e, q);
            const float *bias = a->down->bias ? a->down->bias + e * a->hidden + row0 : NULL;
            if (j->panel_down && a->offsets[e + 1] - a->offsets[e] >= j->kernels->panel_min_tokens) {
                /* The next panel (this expert's, or the next expert's
                 * first) is fetched while this one computes. */
                const uint8_t *next[1] = {q + 1 < q1 ? moak_x86_panel(wd, e, q + 1)
                                          : ae + 1 < a->n_active_experts
                                              ? moak_x86_panel(wd, a->active_experts[ae + 1], q0)
                                              : NULL};
                for (int64_t i0 = a->offsets[e]; i0 < a->offsets[e + 1]; i0 += BATCH_PAIRS) {
                    int64_t nt = min64(BATCH_PAIRS, a->offsets[e + 1] - i0);
                    for (int64_t t = 0; t < nt; t++)
                        rows[t] = i0 + t;
                    float *out[1] = {o};
                    bool last_block = i0 + nt >= a->offsets[e + 1];
                    j->panel_down(wd, &panel, last_block ? next : NULL, 1, &j->act_h, rows, nt, NULL,
                                  out, R, slab);
                    add_down_rows(j, bias, row0, nr, i0, nt, o, R);
                }
                continue;
            }
            for (int64_t i0 = a->offsets[e]; i0 < a->offsets[e + 1]; i0 += tile) {
                int nt = (int)min64(tile, a->offsets[e + 1] - i0);
                for (int t = 0; t < nt; t++)
                    tile_rows[t] = i0 + t;
                j->kernels->tile[wd->format](wd, &panel, 1, 0, k_end, &j->act_h, tile_rows, nt, tile_out);
                add_down_rows(j, bias, row0, nr, i0, nt, tile_out, R);
            }
        }
    }
}

static moak_status run_batched(moak_x86_state *st, moe_job *job)
{
    const moak_moe_args *a = job->a;
    const int64_t n_pairs = a->n_tokens * a->top_k;
    job->panel_gate = st->kernels->panel[job->gate->format];
    job->panel_down = st->kernels->panel[job->down->format];
    if (job->panel_gate || job->panel_down) {
        int32_t n_thr = st->env.n_threads > 0 ? st->env.n_threads : 1;
        job->batch_slab_bytes = batch_slab_bytes(job->gate->panel_rows);
        job->batch_slabs = moak_x86_op_buffer(st, 3, job->batch_slab_bytes * (size_t)n_thr);
        if (!job->batch_slabs)
            return st->env.error(st->env.log_ctx, MOAK_ERR_OUT_OF_MEMORY,
                                 "x86 moe: out of memory for %d threads' scratch", (int)n_thr);
    }
    job->h = moak_x86_op_buffer(st, 1, (size_t)n_pairs * (size_t)a->inter * sizeof(float));
    if (!job->h)
        return st->env.error(st->env.log_ctx, MOAK_ERR_OUT_OF_MEMORY,
                             "x86 moe: out of memory for %lld x %lld hidden values",
                             (long long)n_pairs, (long long)a->inter);
    /* Gate/up tasks stream several panels of one expert (each panel's
     * successor prefetched), as long as there are some 8 tasks per thread. */
    int32_t threads = st->env.n_threads > 0 ? st->env.n_threads : 1;
    const int64_t np = job->gate->n_panels;
    job->panels_per_task = 1;
    if (job->panel_gate) {
        int64_t per = np * (int64_t)a->n_active_experts / (8 * (int64_t)threads);
        job->panels_per_task = per < 1 ? 1 : per > np ? np : per;
    }
    int64_t groups = (np + job->panels_per_task - 1) / job->panels_per_task;
    st->env.parallel_for(st->env.pool, (int64_t)a->n_active_experts * groups, gate_up_task, job);
    if (job->is_float) {
        job->act_h.f = job->h;
        job->act_h.f_stride = a->inter;
    } else {
        moak_status s = moak_x86_quantize_activations(st, 2, job->h, a->inter, a->inter, n_pairs,
                                                      job->down, &job->act_h);
        if (s != MOAK_OK)
            return s;
    }
    /* Down tasks take several hidden panels (h is then read once per task,
     * not once per panel), some 4 tasks per thread. */
    const int64_t nd = job->down->n_panels;
    int64_t per = nd / (4 * (int64_t)threads);
    job->down_panels_per_task = per < 1 ? 1 : per;
    st->env.parallel_for(st->env.pool, (nd + job->down_panels_per_task - 1) / job->down_panels_per_task,
                         down_task, job);
    return MOAK_OK;
}

/* ---- streamed --------------------------------------------------------------- */

/* Scratch of one streamed task: h [pairs_max][chunk_cols_max] f32, then the
 * quantized h (q [pairs_max][chunk_blocks_max * 32], d, s, ds
 * [pairs_max][chunk_blocks_max]). */
static size_t slab_bytes(const moe_job *j)
{
    size_t p = (size_t)j->pairs_max, nb = (size_t)j->chunk_blocks_max;
    return round64(p * (size_t)j->chunk_cols_max * sizeof(float)) + round64(p * nb * 32) +
           3 * round64(p * nb * 4);
}

static void stream_task(void *arg, int64_t task, int32_t thread)
{
    const moe_job *j = arg;
    const moak_moe_args *a = j->a;
    const moak_x86_weight *wd = j->down;
    const int64_t e = a->active_experts[task / j->chunks], c = task % j->chunks;
    const int64_t i_begin = a->offsets[e], n_e = a->offsets[e + 1] - i_begin;
    const int64_t n_pairs = a->n_tokens * a->top_k;
    const int64_t col0 = c * j->n_units / j->chunks * j->unit;
    const int64_t col1 = min64((c + 1) * j->n_units / j->chunks * j->unit, a->inter);
    const int64_t h_stride = j->chunk_cols_max;
    uint8_t *slab = j->slabs + (size_t)thread * j->slab_bytes;
    float *h = (float *)slab;

    /* Gate and up: the chunk's panels, every pair of e. */
    const int R = j->gate->panel_rows;
    const int tile_gu = j->kernels->max_tokens[1];
    for (int64_t p = col0 / R; p * R < col1; p++)
        for (int64_t i0 = 0; i0 < n_e; i0 += tile_gu)
            gate_up_tile(j, e, p, i_begin + i0, (int)min64(tile_gu, n_e - i0),
                         h + i0 * h_stride + (p * R - col0), h_stride);

    /* h's chunk as the down projection's activations, over K = [col0, col1). */
    moak_x86_act act;
    memset(&act, 0, sizeof(act));
    int64_t k0, k1;
    if (j->is_float) {
        act.f = h;
        act.f_stride = h_stride;
        k0 = col0;
        k1 = col1;
    } else {
        k0 = col0 / MOAK_X86_QBLOCK;
        k1 = c == j->chunks - 1 ? wd->n_blocks : col1 / MOAK_X86_QBLOCK;
        const size_t p = (size_t)j->pairs_max, nb = (size_t)j->chunk_blocks_max;
        uint8_t *qbuf = slab + round64(p * (size_t)h_stride * sizeof(float));
        act.q = (const int8_t *)qbuf;
        act.d = (const float *)(qbuf + round64(p * nb * 32));
        act.s = (const int32_t *)(qbuf + round64(p * nb * 32) + round64(p * nb * 4));
        act.ds = (const float *)(qbuf + round64(p * nb * 32) + 2 * round64(p * nb * 4));
        act.k_padded = (k1 - k0) * MOAK_X86_QBLOCK;
        act.n_blocks = k1 - k0;
        j->kernels->quantize(h, h_stride, col1 - col0, n_e, act.k_padded, j->down_offset,
                             (int8_t *)act.q, (float *)act.d, (int32_t *)act.s, (float *)act.ds);
    }

    /* Down: the same K columns of every panel, one partial output per pair. */
    const int RD = wd->panel_rows;
    const int tile_d = j->kernels->max_tokens[0];
    /* Bytes from a panel's start to the chunk's first quants. */
    const size_t piece_offset = (size_t)k0 * (wd->quant_bytes / (size_t)(j->is_float ? wd->cols : wd->n_blocks));
    float out[MOAK_X86_MAX_TILE_TOKENS * 32];
    int64_t rows[MOAK_X86_MAX_TILE_TOKENS];
    for (int64_t q = 0; q < wd->n_panels; q++) {
        const uint8_t *panel = moak_x86_panel(wd, e, q);
        /* The next piece starts a new run of addresses when the expert is
         * split in chunks: ask for its first lines now. */
        if (j->chunks > 1 && q + 1 < wd->n_panels) {
            const char *next = (const char *)panel + wd->panel_bytes + piece_offset;
            for (int l = 0; l < 4; l++)
                __builtin_prefetch(next + 64 * l, 0, 3);
        }
        const int64_t row0 = q * RD;
        const int nr = (int)min64(RD, a->hidden - row0);
        for (int64_t i0 = 0; i0 < n_e; i0 += tile_d) {
            int nt = (int)min64(tile_d, n_e - i0);
            for (int t = 0; t < nt; t++)
                rows[t] = i0 + t;
            j->kernels->tile[wd->format](wd, &panel, 1, k0, k1, &act, rows, nt, out);
            for (int t = 0; t < nt; t++)
                memcpy(j->partial + ((size_t)(c * n_pairs + i_begin + i0 + t) * (size_t)a->hidden +
                                     (size_t)row0),
                       out + (size_t)t * RD, (size_t)nr * sizeof(float));
        }
    }
}

/* y = sum over active experts (ascending) and their pairs of
 * weight * (sum over chunks of the partials + bias). */
static void stream_reduce(const moe_job *j)
{
    const moak_moe_args *a = j->a;
    const int64_t H = a->hidden, n_pairs = a->n_tokens * a->top_k;
    memset(a->y, 0, (size_t)(a->n_tokens * H) * sizeof(float));
    for (int32_t ae = 0; ae < a->n_active_experts; ae++) {
        const int64_t e = a->active_experts[ae];
        const float *bias = a->down->bias ? a->down->bias + e * H : NULL;
        for (int64_t i = a->offsets[e]; i < a->offsets[e + 1]; i++) {
            const int32_t pair = a->pairs[i];
            const float wt = a->weights[pair];
            float *y = a->y + (int64_t)(pair / a->top_k) * H;
            const float *p0 = j->partial + (size_t)i * (size_t)H;
            if (j->chunks == 1 && !bias) {
                for (int64_t o = 0; o < H; o++)
                    y[o] += wt * p0[o];
                continue;
            }
            for (int64_t o = 0; o < H; o++) {
                float v = p0[o];
                for (int64_t c = 1; c < j->chunks; c++)
                    v += j->partial[(size_t)(c * n_pairs + i) * (size_t)H + (size_t)o];
                if (bias)
                    v += bias[o];
                y[o] += wt * v;
            }
        }
    }
}

/* Fills the streamed plan; false when the batched schedule fits better. */
static bool plan_stream(const moak_x86_state *st, moe_job *j)
{
    const moak_moe_args *a = j->a;
    const int64_t n_pairs = a->n_tokens * a->top_k;
    if (a->n_active_experts <= 0 || n_pairs > STREAM_MAX_PAIRS_PER_EXPERT * (int64_t)a->n_active_experts)
        return false;
    j->pairs_max = 0;
    for (int32_t ae = 0; ae < a->n_active_experts; ae++) {
        int64_t e = a->active_experts[ae];
        if (a->offsets[e + 1] - a->offsets[e] > j->pairs_max)
            j->pairs_max = a->offsets[e + 1] - a->offsets[e];
    }
    /* Chunk boundaries: whole gate/up panels and whole down blocks (the
     * 128-column group of I4_G128). */
    const int64_t R = j->gate->panel_rows;
    int64_t block = j->is_float ? 1 : j->down->format == MOAK_FORMAT_I4_G128 ? 128 : MOAK_X86_QBLOCK;
    j->unit = R > block ? R : block;
    j->n_units = (a->inter + j->unit - 1) / j->unit;
    int64_t threads = st->env.n_threads > 0 ? st->env.n_threads : 1;
    int64_t want = (STREAM_TASKS_PER_THREAD * threads + a->n_active_experts - 1) / a->n_active_experts;
    int64_t most = j->n_units * j->unit / STREAM_MIN_CHUNK_COLS;
    if (want > most)
        want = most;
    j->chunks = want < 1 ? 1 : want;
    if ((size_t)(j->chunks * n_pairs) * (size_t)a->hidden * sizeof(float) > STREAM_MAX_PARTIAL_BYTES) {
        j->chunks = 1;
        if ((size_t)n_pairs * (size_t)a->hidden * sizeof(float) > STREAM_MAX_PARTIAL_BYTES)
            return false;
    }
    j->chunk_cols_max = (j->n_units + j->chunks - 1) / j->chunks * j->unit;
    /* The last chunk's K padding (to the down format's block) included. */
    j->chunk_blocks_max = j->is_float ? 0 : (j->chunk_cols_max + 127) / MOAK_X86_QBLOCK;
    j->down_offset = moak_x86_act_offset(st->kernels, j->down->format);
    return true;
}

static moak_status run_streamed(moak_x86_state *st, moe_job *job)
{
    const moak_moe_args *a = job->a;
    const int64_t n_pairs = a->n_tokens * a->top_k;
    int32_t threads = st->env.n_threads > 0 ? st->env.n_threads : 1;
    job->slab_bytes = slab_bytes(job);
    job->slabs = moak_x86_op_buffer(st, 2, job->slab_bytes * (size_t)threads);
    job->partial = moak_x86_op_buffer(st, 1, (size_t)(job->chunks * n_pairs) * (size_t)a->hidden *
                                                 sizeof(float));
    if (!job->slabs || !job->partial)
        return st->env.error(st->env.log_ctx, MOAK_ERR_OUT_OF_MEMORY,
                             "x86 moe: out of memory for the partial outputs of %lld pairs",
                             (long long)n_pairs);
    st->env.parallel_for(st->env.pool, (int64_t)a->n_active_experts * job->chunks, stream_task, job);
    stream_reduce(job);
    return MOAK_OK;
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
    job.is_float = moak_x86_format_is_float(job.gate->format);
    job.gate_k_end = job.is_float ? job.gate->cols : job.gate->n_blocks;
    if (job.is_float) {
        job.act_x.f = a->x;
        job.act_x.f_stride = a->hidden;
    } else {
        moak_status s = moak_x86_quantize_activations(st, 0, a->x, a->hidden, a->hidden,
                                                      a->n_tokens, job.gate, &job.act_x);
        if (s != MOAK_OK)
            return s;
    }
    if (plan_stream(st, &job))
        return run_streamed(st, &job);
    return run_batched(st, &job);
}
