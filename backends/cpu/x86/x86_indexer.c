/*
 * x86_indexer.c — moak_indexer on the avx2 and avx512 backends: the
 * ISA-neutral driver (no ISA flags; the kernels are indexer_<isa>.c).
 *
 * Per query token: its heads transposed into qt[dim][heads, zero-padded to
 * whole vectors] and w zero-padded alike (once per call, an op buffer).
 * Then one parallel pass scores every causal position, in tasks of
 * KEYS_PER_TASK keys of one query: F32 pages are read in place, other
 * formats converted a register block of keys at a time into the thread's
 * scratch (kept in L1).  Then one parallel pass over the queries selects
 * each one's top k with the core's moak_select_top_k (ties to the lower
 * position), from the f32 scores widened to double.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "x86_backend.h"
#include "x86_indexer.h"
#include "x86_kernels.h"

/* Keys per task: enough to amortize a task's start, few enough that a
 * decode query's 32K keys still spread over every thread. */
#define KEYS_PER_TASK 512

typedef struct indexer_job {
    const moak_indexer_args *a;
    moak_x86_state *st;
    moak_x86_indexer_keys_fn keys_fn;
    moak_x86_indexer_row_fn row_fn;
    int32_t keys_per_call;
    int32_t lanes;
    int32_t head_vectors;
    const float *qt;             /* [total][dim][head_vectors * lanes] */
    const float *wp;             /* [total][head_vectors * lanes] */
    float *scores;               /* [total][stride] */
    size_t stride;
    int64_t *pos;                /* [total]: each query's position */
    int64_t *seq_of;             /* [total]: each query's sequence index */
    int64_t *task_first;         /* [total + 1]: first task of each query */
} indexer_job;

static const unsigned char *key_row(const moak_kv_view *kv, int32_t seq, int64_t j)
{
    const moak_kv_layout *l = kv->layout;
    return (const unsigned char *)kv->storage + (size_t)kv->page_tables[seq][j / l->page_tokens] * l->page_bytes +
           (size_t)(j % l->page_tokens) * l->row_bytes_k;
}

static void score_task(void *arg, int64_t task, int32_t thread)
{
    const indexer_job *job = arg;
    const moak_indexer_args *a = job->a;
    const moak_kv_layout *l = a->kv->layout;
    /* the query whose tasks hold this one */
    int64_t lo = 0, hi = a->q_offsets[a->n_seqs] - 1;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo + 1) / 2;
        if (job->task_first[mid] <= task)
            lo = mid;
        else
            hi = mid - 1;
    }
    const int64_t t = lo;
    const int32_t seq = a->seq_ids[job->seq_of[t]];
    const int64_t j0 = (task - job->task_first[t]) * KEYS_PER_TASK;
    const int64_t j1 = j0 + KEYS_PER_TASK < job->pos[t] + 1 ? j0 + KEYS_PER_TASK : job->pos[t] + 1;
    const size_t hp = (size_t)job->head_vectors * (size_t)job->lanes;
    const float *qt = job->qt + (size_t)t * (size_t)a->head_dim * hp;
    const float *wp = job->wp + (size_t)t * hp;
    float *out = job->scores + (size_t)t * job->stride;
    const int32_t kb = job->keys_per_call;
    float *rows = l->format == MOAK_FORMAT_F32
                      ? NULL
                      : moak_x86_scratch(job->st, thread, (size_t)kb * (size_t)a->head_dim * sizeof(float));
    const float *keys[MOAK_X86_INDEXER_KEYS_MAX];
    float score[MOAK_X86_INDEXER_KEYS_MAX];
    for (int64_t j = j0; j < j1; j += kb) {
        const int32_t n = j1 - j < kb ? (int32_t)(j1 - j) : kb;
        for (int32_t b = 0; b < kb; b++) {
            /* a short block repeats its last key; its extra scores are dropped */
            const int64_t key = j + (b < n ? b : n - 1);
            if (!rows) {
                keys[b] = (const float *)(const void *)key_row(a->kv, seq, key);
            } else if (b < n) {
                job->row_fn(l->format, key_row(a->kv, seq, key), a->head_dim, rows + (size_t)b * a->head_dim);
                keys[b] = rows + (size_t)b * a->head_dim;
            } else {
                keys[b] = keys[n - 1];
            }
        }
        job->keys_fn(qt, wp, job->head_vectors, a->head_dim, keys, score);
        memcpy(out + j, score, (size_t)n * sizeof(float));
    }
}

static void select_task(void *arg, int64_t t, int32_t thread)
{
    const indexer_job *job = arg;
    const moak_indexer_args *a = job->a;
    const int64_t n = job->pos[t] + 1;
    double *score = moak_x86_scratch(job->st, thread, (size_t)n * sizeof(double) +
                                                          moak_select_top_k_scratch(n, a->top_k));
    void *select = score + n;
    const float *in = job->scores + (size_t)t * job->stride;
    for (int64_t j = 0; j < n; j++)
        score[j] = (double)in[j];
    moak_select_top_k(score, n, a->top_k, select, a->positions + (size_t)t * (size_t)a->top_k,
                      a->scores ? a->scores + (size_t)t * (size_t)a->top_k : NULL);
}

static moak_status run(moak_x86_state *st, const moak_indexer_args *a, moak_x86_indexer_keys_fn keys_fn,
                       moak_x86_indexer_row_fn row_fn, int32_t keys_per_call, int32_t lanes)
{
    if (!a->kv->host_layout)
        return st->env.error(st->env.log_ctx, MOAK_ERR_UNSUPPORTED,
                             "x86: the indexer needs a K-only cache in the standard host layout");
    const int64_t total = a->q_offsets[a->n_seqs];
    if (total == 0)
        return MOAK_OK;
    indexer_job job;
    memset(&job, 0, sizeof(job));
    job.a = a;
    job.st = st;
    job.keys_fn = keys_fn;
    job.row_fn = row_fn;
    job.keys_per_call = keys_per_call;
    job.lanes = lanes;
    job.head_vectors = (a->n_heads + lanes - 1) / lanes;
    const size_t hp = (size_t)job.head_vectors * (size_t)lanes;
    int64_t max_len = 1;
    for (int32_t i = 0; i < a->n_seqs; i++)
        if (a->q_lens[i] > 0 && a->kv->seq_lens[a->seq_ids[i]] > max_len)
            max_len = a->kv->seq_lens[a->seq_ids[i]];
    job.stride = (size_t)max_len;
    float *qt = moak_x86_op_buffer(st, 0, (size_t)total * (size_t)a->head_dim * hp * sizeof(float));
    float *wp = moak_x86_op_buffer(st, 1, (size_t)total * hp * sizeof(float));
    job.scores = moak_x86_op_buffer(st, 2, (size_t)total * job.stride * sizeof(float));
    int64_t *ints = moak_x86_op_buffer(st, 3, ((size_t)total * 3 + 1) * sizeof(int64_t));
    if (!qt || !wp || !job.scores || !ints)
        return st->env.error(st->env.log_ctx, MOAK_ERR_OUT_OF_MEMORY, "x86: out of memory for the indexer's scores");
    job.pos = ints;
    job.seq_of = ints + total;
    job.task_first = ints + 2 * total;
    int64_t tasks = 0;
    for (int32_t i = 0; i < a->n_seqs; i++) {
        const int64_t len = a->kv->seq_lens[a->seq_ids[i]];
        for (int64_t t = a->q_offsets[i]; t < a->q_offsets[i + 1]; t++) {
            job.pos[t] = len - a->q_lens[i] + (t - a->q_offsets[i]);
            job.seq_of[t] = i;
            job.task_first[t] = tasks;
            tasks += (job.pos[t] + KEYS_PER_TASK) / KEYS_PER_TASK;
        }
    }
    job.task_first[total] = tasks;
    for (int64_t t = 0; t < total; t++) {
        const float *q = a->q + (size_t)t * (size_t)a->n_heads * (size_t)a->head_dim;
        float *dst = qt + (size_t)t * (size_t)a->head_dim * hp;
        for (int32_t d = 0; d < a->head_dim; d++)
            for (size_t h = 0; h < hp; h++)
                dst[(size_t)d * hp + h] = h < (size_t)a->n_heads ? q[h * (size_t)a->head_dim + (size_t)d] : 0.0f;
        for (size_t h = 0; h < hp; h++)
            wp[(size_t)t * hp + h] = h < (size_t)a->n_heads ? a->w[(size_t)t * (size_t)a->n_heads + h] : 0.0f;
    }
    job.qt = qt;
    job.wp = wp;
    /* Every thread's scratch grown now, for both passes: a task never fails. */
    size_t scratch = (size_t)keys_per_call * (size_t)a->head_dim * sizeof(float);
    const size_t select = (size_t)max_len * sizeof(double) + moak_select_top_k_scratch(max_len, a->top_k);
    scratch = scratch > select ? scratch : select;
    for (int32_t th = 0; th < (st->env.n_threads > 0 ? st->env.n_threads : 1); th++)
        if (!moak_x86_scratch(st, th, scratch))
            return st->env.error(st->env.log_ctx, MOAK_ERR_OUT_OF_MEMORY, "x86: out of memory for the indexer's scratch");
    st->env.parallel_for(st->env.pool, tasks, score_task, &job);
    st->env.parallel_for(st->env.pool, total, select_task, &job);
    return MOAK_OK;
}

/* Each entry exists only when its ISA's kernels are built (configure). */
#ifdef MOAK_BUILD_AVX2
moak_status moak_x86_avx2_indexer(void *state, const moak_indexer_args *args)
{
    return run(state, args, moak_x86_avx2_indexer_keys, moak_x86_avx2_indexer_row, MOAK_X86_INDEXER_KEYS_AVX2, 8);
}
#endif

#ifdef MOAK_BUILD_AVX512
moak_status moak_x86_avx512_indexer(void *state, const moak_indexer_args *args)
{
    return run(state, args, moak_x86_avx512_indexer_keys, moak_x86_avx512_indexer_row,
               MOAK_X86_INDEXER_KEYS_AVX512, 16);
}
#endif
