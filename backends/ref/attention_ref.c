/*
 * Reference attention over the standard host KV layout (moak_backend.h).
 *
 * For sequence i (seq = seq_ids[i], L = its cached length, n = q_lens[i]),
 * query row r (token q_offsets[i] + r) sits at position p = L - n + r.
 * Query head h reads KV head h / (n_heads / n_kv_heads).  Key j is visible
 * iff (!causal || j <= p) && (window == 0 || p - j < window).  Then, in
 * double:
 *     s_j = scale * q . k_j                 (soft-capped: s = cap * tanh(s / cap))
 *     m   = max(max_j s_j, sink[h])         (the sink only when sinks are given)
 *     out = sum_j exp(s_j - m) v_j / (sum_j exp(s_j - m) + exp(sink[h] - m))
 * A query that sees no key gets zeros (with a sink the softmax puts all its
 * mass on the sink, whose value is zero; without one there is nothing to
 * average, and zeros are the defined result).
 *
 * Sparse attention (sparse_positions): the keys are those listed in the
 * query's row of sparse_positions, in list order, that the same mask admits
 * (-1 slots skipped); a position listed twice is two terms of the sums.
 *
 * K and V rows are dequantized to float32 with moak_dequantize_row.  With
 * shared_v the V of a token is the first head_dim_v elements of its K row.
 * One task computes one (query token, query head) output row.
 */
#include "ref_internal.h"

#include <math.h>
#include <stdlib.h>

typedef struct attention_job {
    const moak_attention_args *args;
    int32_t heads_per_kv_head;
    int64_t max_keys;            /* the longest cached sequence that has queries, or sparse_k */
    /* per thread: scores [max_keys] then acc [head_dim_v] as doubles, and
     * one K row then one V row as floats */
    double *scratch_d;
    size_t doubles_per_thread;
    float *scratch_f;
    size_t floats_per_thread;
} attention_job;

/* The bytes of key j's K row of KV head kv_head in sequence seq. */
static const unsigned char *kv_k_row(const moak_kv_view *kv, int32_t seq, int64_t j,
                                     int32_t kv_head)
{
    const moak_kv_layout *lay = kv->layout;
    const int64_t page = kv->page_tables[seq][j / lay->page_tokens];
    const int64_t slot = j % lay->page_tokens;
    return (const unsigned char *)kv->storage + (size_t)page * lay->page_bytes +
           ((size_t)kv_head * (size_t)lay->page_tokens + (size_t)slot) * lay->row_bytes_k;
}

/* Key j's V, as head_dim_v floats in dst. */
static void kv_load_v(const moak_kv_view *kv, int32_t seq, int64_t j, int32_t kv_head,
                      float *dst)
{
    const moak_kv_layout *lay = kv->layout;
    if (lay->shared_v) {
        /* Every KV format's first head_dim_v elements are a prefix of the row
         * (Q8_0 needs head dims that are multiples of its block of 32). */
        moak_dequantize_row(lay->format, kv_k_row(kv, seq, j, kv_head), lay->head_dim_v, dst);
        return;
    }
    const int64_t page = kv->page_tables[seq][j / lay->page_tokens];
    const int64_t slot = j % lay->page_tokens;
    const unsigned char *row = (const unsigned char *)kv->storage +
                               (size_t)page * lay->page_bytes + lay->v_block_offset +
                               ((size_t)kv_head * (size_t)lay->page_tokens + (size_t)slot) *
                                   lay->row_bytes_v;
    moak_dequantize_row(lay->format, row, lay->head_dim_v, dst);
}

/* A sparse list entry's key, or -1 when it is unused (-1) or outside the
 * mask's [first, last]. */
static int64_t key_of_entry(int32_t listed, int64_t first, int64_t last)
{
    return listed >= first && listed <= last ? listed : -1;
}

static void attention_task(void *arg, int64_t task, int32_t thread)
{
    const attention_job *job = arg;
    const moak_attention_args *args = job->args;
    const moak_kv_view *kv = args->kv;
    const int64_t token = task / args->n_heads;
    const int32_t head = (int32_t)(task % args->n_heads);
    const int32_t kv_head = head / job->heads_per_kv_head;
    const int32_t dk = args->head_dim_k, dv = args->head_dim_v;

    const int32_t i = ref_sequence_of_token(args->q_offsets, args->n_seqs, token);
    const int32_t seq = args->seq_ids[i];
    const int64_t len = kv->seq_lens[seq];
    const int64_t pos = len - args->q_lens[i] + (token - args->q_offsets[i]);

    /* visible keys: j in [first, last] */
    int64_t first = 0, last = len - 1;
    if (args->causal && last > pos)
        last = pos;
    if (args->sliding_window > 0 && pos - args->sliding_window + 1 > first)
        first = pos - args->sliding_window + 1;

    /* The keys visited, as n_keys entries: key e is first + e (dense) or the
     * list's e-th entry, -1 when the mask hides it (sparse). */
    const int32_t *list = NULL;
    int64_t n_keys = last - first + 1;
    if (args->sparse_positions) {
        list = args->sparse_positions + (size_t)token * (size_t)args->sparse_k;
        n_keys = args->sparse_k;
    }

    double *scores = job->scratch_d + (size_t)thread * job->doubles_per_thread;
    double *acc = scores + job->max_keys;
    float *k_row = job->scratch_f + (size_t)thread * job->floats_per_thread;
    float *v_row = k_row + dk;
    const float *q_row = args->q + ((size_t)token * (size_t)args->n_heads + (size_t)head) * (size_t)dk;
    float *out = args->out + ((size_t)token * (size_t)args->n_heads + (size_t)head) * (size_t)dv;

    const bool has_sink = args->sinks != NULL;

    /* pass 1: logits and their maximum */
    double max = has_sink ? (double)args->sinks[head] : -INFINITY;
    int64_t visible = 0;
    for (int64_t e = 0; e < n_keys; e++) {
        const int64_t j = list ? key_of_entry(list[e], first, last) : first + e;
        if (j < 0)
            continue;
        visible++;
        moak_dequantize_row(kv->layout->format, kv_k_row(kv, seq, j, kv_head), dk, k_row);
        double s = (double)args->scale * ref_dot(q_row, k_row, dk);
        if (args->softcap != 0.0f)
            s = (double)args->softcap * tanh(s / (double)args->softcap);
        scores[e] = s;
        if (s > max)
            max = s;
    }
    if (visible == 0 && !has_sink) {
        for (int32_t d = 0; d < dv; d++)
            out[d] = 0.0f;
        return;
    }

    /* pass 2: softmax weights and the weighted sum of V */
    double denom = has_sink ? exp((double)args->sinks[head] - max) : 0.0;
    for (int32_t d = 0; d < dv; d++)
        acc[d] = 0.0;
    for (int64_t e = 0; e < n_keys; e++) {
        const int64_t j = list ? key_of_entry(list[e], first, last) : first + e;
        if (j < 0)
            continue;
        const double weight = exp(scores[e] - max);
        denom += weight;
        kv_load_v(kv, seq, j, kv_head, v_row);
        for (int32_t d = 0; d < dv; d++)
            acc[d] += weight * (double)v_row[d];
    }
    for (int32_t d = 0; d < dv; d++)
        out[d] = (float)(acc[d] / denom);
}

moak_status ref_attention(void *state, const moak_attention_args *args)
{
    const ref_state *st = state;
    const moak_kv_view *kv = args->kv;
    if (!kv->host_layout)
        return ref_error(st, MOAK_ERR_UNSUPPORTED,
                         "attention needs a KV cache in the standard host layout");

    const int64_t n_tokens = args->q_offsets[args->n_seqs];
    if (n_tokens == 0)
        return MOAK_OK;

    int64_t max_len = 0;
    for (int32_t i = 0; i < args->n_seqs; i++)
        if (args->q_lens[i] > 0 && kv->seq_lens[args->seq_ids[i]] > max_len)
            max_len = kv->seq_lens[args->seq_ids[i]];

    attention_job job;
    job.args = args;
    job.heads_per_kv_head = args->n_heads / args->n_kv_heads;
    job.max_keys = args->sparse_positions ? args->sparse_k : max_len;
    job.doubles_per_thread = (size_t)job.max_keys + (size_t)args->head_dim_v;
    job.floats_per_thread = (size_t)args->head_dim_k + (size_t)args->head_dim_v;
    job.scratch_d = ref_alloc_per_thread(st, job.doubles_per_thread, sizeof(double));
    job.scratch_f = ref_alloc_per_thread(st, job.floats_per_thread, sizeof(float));
    moak_status status = MOAK_OK;
    if (!job.scratch_d || !job.scratch_f)
        status = ref_out_of_memory(st, "attention scores");
    else
        ref_parallel_for(st, n_tokens * args->n_heads, attention_task, &job);
    free(job.scratch_d);
    free(job.scratch_f);
    return status;
}
