/*
 * The MoE expert FFN on oneDNN primitives.
 *
 * The core has grouped the (token, slot) pairs by expert (moak_moe_args:
 * offsets, pairs, active_experts).  The work is cut into items, each an
 * active expert's run of at most onednn_max_chunk consecutive pairs, and
 * each item is done start to end by one thread:
 *   1. gather the item's token rows and prepare them once (f32 copy, bf16
 *      rounding or two-level s8 quantization);
 *   2. gate and up projections: the same prepared rows, one primitive each;
 *   3. the GLU in C (SiLU, exact GELU, gpt-oss's clamped SwiGLU);
 *   4. prepare the GLU rows, down projection into the item's rows of a
 *      per-pair output buffer (n_tokens * top_k rows of hidden floats).
 * Then every token sums its slots' outputs, weighted, in slot order, and
 * only that final step writes y (a failure before it leaves y untouched).
 *
 * Threads.  With at least as many items as threads (decode: top_k experts
 * of one row each; prefill over many experts), all items run in one
 * OpenMP parallel region, dynamically scheduled, each thread with its own
 * stream, buffers and oneDNN scratchpad (oneDNN's library-managed one is
 * shared: two threads running primitives at once corrupted each other's
 * results) and with primitives created for one thread: one
 * fork/join per call instead of about ten per expert.  That matters most
 * where the cores are shared: a fork/join then waits for a scheduling
 * slice (moe-prefill on the loaded 2-core build machine went from 6.9 s to
 * the figure in bench/NOTES.md).  With fewer items than threads (a few
 * experts, long runs), items run one after another and each primitive
 * uses every thread.  An item's result does not depend on the thread that
 * ran it or on the order, and the sum per token is in slot order, so the
 * output is bitwise reproducible for a given thread count.
 * Experts no token chose are never read.
 */
#include <omp.h>
#include <string.h>

#include "onednn_internal.h"

typedef struct moe_item {
    int32_t expert;
    int32_t table;                /* index into the primitives table */
    int64_t first;                /* first position in the grouped pairs */
    int64_t rows;
} moe_item;

/* The primitives of one rows class: gate, up, down. */
typedef struct moe_primitives {
    int64_t class_rows;
    onednn_matmul_entry *gate, *up, *down;
} moe_primitives;

/* Classes of at most onednn_max_chunk rows (16) plus "any" (f32). */
#define MOE_MAX_CLASSES 24

typedef struct moe_plan {
    const moak_moe_args *a;
    const onednn_weight *gate, *up, *down;
    onednn_kind kind;
    int64_t max_chunk;
    moe_item *items;
    int64_t n_items;
    moe_primitives table[MOE_MAX_CLASSES];
    int n_table;
    size_t scratchpad_bytes;      /* the largest scratchpad of the table's primitives */
    float *pair_out;              /* [n_tokens * top_k][hidden], by position */
    int threads;                  /* OpenMP threads of each item's loops and primitives */
} moe_plan;

static const float *expert_bias(const moak_packed_weight *pw, int32_t expert)
{
    return pw->bias ? pw->bias + (int64_t)expert * pw->rows : NULL;
}

/* The table index of the class of `rows`, looking its primitives up on
 * first use (here, before any thread runs: the cache is not thread-safe). */
static moak_status plan_class(onednn_state *st, moe_plan *p, int64_t rows, int32_t *index)
{
    const int64_t key = onednn_class_rows(p->kind, onednn_act_rows(p->kind, rows));
    for (int i = 0; i < p->n_table; i++)
        if (p->table[i].class_rows == key) {
            *index = i;
            return MOAK_OK;
        }
    if (p->n_table == MOE_MAX_CLASSES)
        return onednn_error(st, MOAK_ERR_BACKEND, "more rows classes than the MoE plan holds");
    moe_primitives *t = &p->table[p->n_table];
    t->class_rows = key;
    moak_status status = onednn_entry_for(st, p->gate, rows, p->a->gate->bias != NULL, p->threads, &t->gate);
    if (status == MOAK_OK)
        status = onednn_entry_for(st, p->up, rows, p->a->up->bias != NULL, p->threads, &t->up);
    if (status == MOAK_OK)
        status = onednn_entry_for(st, p->down, rows, p->a->down->bias != NULL, p->threads, &t->down);
    if (status != MOAK_OK)
        return status;
    const onednn_matmul_entry *used[3] = {t->gate, t->up, t->down};
    for (int i = 0; i < 3; i++)
        if (used[i]->scratchpad_bytes > p->scratchpad_bytes)
            p->scratchpad_bytes = used[i]->scratchpad_bytes;
    *index = p->n_table++;
    return MOAK_OK;
}

/* The buffers one worker needs for items of up to max_chunk rows, made
 * before the parallel region so that workers do not allocate. */
static moak_status worker_buffers(const onednn_state *st, onednn_worker *wk, const moe_plan *p)
{
    const moak_moe_args *a = p->a;
    const int64_t padded = onednn_padded_rows(p->kind, p->max_chunk);
    const int64_t widest = a->hidden > a->inter ? a->hidden : a->inter;
    size_t src_bytes, inter_bytes, dst_bytes;
    if (!onednn_mul_size3((size_t)padded, (size_t)widest, onednn_kind_elem_bytes(p->kind), &src_bytes) ||
        !onednn_mul_size3((size_t)p->max_chunk, (size_t)a->inter, sizeof(float), &inter_bytes) ||
        !onednn_mul_size3((size_t)padded, (size_t)widest, sizeof(float), &dst_bytes))
        return onednn_error(st, MOAK_ERR_SIZE_OVERFLOW, "MoE work buffers overflow size_t");
    if (!onednn_buffer(st, wk, ONEDNN_BUF_SRC, src_bytes) ||
        !onednn_buffer(st, wk, ONEDNN_BUF_SRC_SCALES, (size_t)padded * sizeof(float)) ||
        !onednn_buffer(st, wk, ONEDNN_BUF_GATE, inter_bytes) || !onednn_buffer(st, wk, ONEDNN_BUF_UP, inter_bytes) ||
        !onednn_buffer(st, wk, ONEDNN_BUF_HIDDEN, inter_bytes) || !onednn_buffer(st, wk, ONEDNN_BUF_DST, dst_bytes) ||
        !onednn_buffer(st, wk, ONEDNN_BUF_INDEX, (size_t)p->max_chunk * sizeof(int32_t)) ||
        (p->scratchpad_bytes && !onednn_buffer(st, wk, ONEDNN_BUF_SCRATCHPAD, p->scratchpad_bytes)))
        return MOAK_ERR_OUT_OF_MEMORY;
    return MOAK_OK;
}

/* Steps 1-4 of the file comment for one item, on one worker. */
static moak_status run_item(const onednn_state *st, onednn_worker *wk, const moe_plan *p, const moe_item *it)
{
    const moak_moe_args *a = p->a;
    const moe_primitives *prims = &p->table[it->table];
    const int64_t rows = it->rows, hidden = a->hidden, inter = a->inter;
    const int64_t padded = onednn_padded_rows(p->kind, rows);
    void *src = wk->buffers[ONEDNN_BUF_SRC];
    float *scales = wk->buffers[ONEDNN_BUF_SRC_SCALES];
    float *gate = wk->buffers[ONEDNN_BUF_GATE], *up = wk->buffers[ONEDNN_BUF_UP];
    float *h = wk->buffers[ONEDNN_BUF_HIDDEN];
    int32_t *tokens = wk->buffers[ONEDNN_BUF_INDEX];

    for (int64_t r = 0; r < rows; r++)
        tokens[r] = a->pairs[it->first + r] / a->top_k;
    onednn_rows_in in = {a->x, tokens, rows, hidden};
    onednn_prepare_rows(st->rows, p->threads, p->kind, &in, padded, src, scales);
    moak_status status = onednn_gemm(st, wk, prims->gate, p->gate, it->expert, expert_bias(a->gate, it->expert),
                                     src, scales, rows, gate, p->threads);
    if (status == MOAK_OK)
        status = onednn_gemm(st, wk, prims->up, p->up, it->expert, expert_bias(a->up, it->expert), src, scales,
                             rows, up, p->threads);
    if (status != MOAK_OK)
        return status;
    onednn_glu(st->rows, p->threads, a, gate, up, rows, inter, h);

    const void *down_src = h;
    if (p->kind != ONEDNN_KIND_F32) {
        onednn_rows_in hin = {h, NULL, rows, inter};
        onednn_prepare_rows(st->rows, p->threads, p->kind, &hin, padded, src, scales);
        down_src = src;
    }
    return onednn_gemm(st, wk, prims->down, p->down, it->expert, expert_bias(a->down, it->expert), down_src,
                       scales, rows, p->pair_out + it->first * hidden, p->threads);
}

static moak_status run_items_parallel(onednn_state *st, const moe_plan *p, int team)
{
    moak_status first_error = MOAK_OK;
    int failed = 0;
#pragma omp parallel num_threads(team)
    {
        onednn_worker *wk = &st->workers[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < p->n_items; i++) {
            int stop;
#pragma omp atomic read
            stop = failed;
            if (stop)
                continue;
            moak_status status = run_item(st, wk, p, &p->items[i]);
            if (status != MOAK_OK) {
#pragma omp critical(onednn_moe_failure)
                {
                    if (first_error == MOAK_OK)
                        first_error = status;
                }
#pragma omp atomic write
                failed = 1;
            }
        }
    }
    return first_error;
}

static moak_status moe_locked(onednn_state *st, const moak_moe_args *a)
{
    moe_plan p;
    memset(&p, 0, sizeof(p));
    p.a = a;
    p.gate = a->gate->packed;
    p.up = a->up->packed;
    p.down = a->down->packed;
    p.kind = p.gate->kind;
    if (p.up->kind != p.kind || p.down->kind != p.kind)
        return onednn_error(st, MOAK_ERR_SHAPE_MISMATCH,
                            "gate, up and down weights were packed for different compute types (%s, %s, %s)",
                            onednn_kind_name(p.kind), onednn_kind_name(p.up->kind), onednn_kind_name(p.down->kind));
    const int64_t n_pairs = a->n_tokens * a->top_k;
    if (n_pairs == 0)
        return MOAK_OK;
    onednn_worker *main_wk = &st->workers[0];

    /* Items: each active expert's pairs in runs of at most max_chunk. */
    int64_t largest = 0, n_items = 0;
    const int64_t chunk = onednn_max_chunk(p.kind);
    for (int32_t i = 0; i < a->n_active_experts; i++) {
        int32_t e = a->active_experts[i];
        int64_t count = a->offsets[e + 1] - a->offsets[e];
        largest = count > largest ? count : largest;
        n_items += (count + chunk - 1) / chunk;
    }
    p.max_chunk = largest < chunk ? largest : chunk;
    const bool parallel = st->n_threads > 1 && n_items >= st->n_threads;
    p.threads = parallel ? 1 : st->n_threads;

    size_t out_bytes;
    if (!onednn_mul_size3((size_t)n_pairs, (size_t)a->hidden, sizeof(float), &out_bytes))
        return onednn_error(st, MOAK_ERR_SIZE_OVERFLOW, "%lld pairs x %lld outputs overflow size_t",
                            (long long)n_pairs, (long long)a->hidden);
    p.pair_out = onednn_buffer(st, main_wk, ONEDNN_BUF_PAIR_OUT, out_bytes);
    int32_t *pos = onednn_buffer(st, main_wk, ONEDNN_BUF_PAIR_POS, (size_t)n_pairs * sizeof(int32_t));
    p.items = onednn_buffer(st, main_wk, ONEDNN_BUF_ITEMS, (size_t)n_items * sizeof(moe_item));
    if (!p.pair_out || !pos || !p.items)
        return MOAK_ERR_OUT_OF_MEMORY;
    for (int32_t i = 0; i < a->n_active_experts; i++) {
        const int32_t e = a->active_experts[i];
        const int64_t first = a->offsets[e], count = a->offsets[e + 1] - first;
        for (int64_t r0 = 0; r0 < count; r0 += p.max_chunk) {
            moe_item *it = &p.items[p.n_items++];
            it->expert = e;
            it->first = first + r0;
            it->rows = count - r0 < p.max_chunk ? count - r0 : p.max_chunk;
            moak_status status = plan_class(st, &p, it->rows, &it->table);
            if (status != MOAK_OK)
                return status;
        }
    }
    for (int64_t i = 0; i < n_pairs; i++)
        pos[a->pairs[i]] = (int32_t)i;

    const int team = parallel ? (n_items < st->n_threads ? (int)n_items : st->n_threads) : 1;
    for (int t = 0; t < team; t++) {
        moak_status status = worker_buffers(st, &st->workers[t], &p);
        if (status != MOAK_OK)
            return status;
    }
    moak_status status = MOAK_OK;
    if (parallel) {
        status = run_items_parallel(st, &p, team);
    } else {
        for (int64_t i = 0; i < p.n_items && status == MOAK_OK; i++)
            status = run_item(st, main_wk, &p, &p.items[i]);
    }
    if (status != MOAK_OK)
        return status;
    onednn_combine(st->rows, st->n_threads, p.pair_out, pos, a->weights, a->n_tokens, a->top_k, a->hidden, a->y);
    return MOAK_OK;
}

moak_status onednn_moe_ffn(void *state, const moak_moe_args *args)
{
    onednn_state *st = state;
    onednn_threads_enter(st);
    moak_status status = moe_locked(st, args);
    onednn_threads_leave(st);
    return status;
}
