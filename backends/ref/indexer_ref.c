/*
 * Reference indexer (DeepSeek Sparse Attention's "lightning indexer") over
 * the standard host layout of a K-only cache (moak_backend.h).
 *
 * For query token t of sequence i, at position p = L - q_len + r, every
 * cached position j <= p is scored in double,
 *     score(t, j) = sum_h w[t][h] * max(0, q[t][h] . k[j]),
 * with k[j] dequantized to float32 by moak_dequantize_row, and the core's
 * moak_select_top_k keeps the top_k best (ties to the lower position, -1
 * past the candidates).  One task per query token.
 */
#include "ref_internal.h"

#include <stdlib.h>

typedef struct indexer_job {
    const moak_indexer_args *args;
    /* per thread: scores [max_len] as doubles; the selection's scratch
     * (select_bytes); one key row [head_dim] as floats */
    double *scores;
    size_t max_len;
    unsigned char *select;
    size_t select_bytes;
    float *key;
} indexer_job;

static void indexer_task(void *arg, int64_t token, int32_t thread)
{
    const indexer_job *job = arg;
    const moak_indexer_args *a = job->args;
    const moak_kv_layout *lay = a->kv->layout;
    const int32_t i = ref_sequence_of_token(a->q_offsets, a->n_seqs, token);
    const int32_t seq = a->seq_ids[i];
    const int64_t len = a->kv->seq_lens[seq];
    const int64_t pos = len - a->q_lens[i] + (token - a->q_offsets[i]);
    const int32_t dim = a->head_dim;

    double *score = job->scores + (size_t)thread * job->max_len;
    void *select = job->select + (size_t)thread * job->select_bytes;
    float *key = job->key + (size_t)thread * (size_t)dim;
    const float *q = a->q + (size_t)token * (size_t)a->n_heads * (size_t)dim;
    const float *w = a->w + (size_t)token * (size_t)a->n_heads;

    for (int64_t j = 0; j <= pos; j++) {
        const int64_t page = a->kv->page_tables[seq][j / lay->page_tokens];
        const unsigned char *row = (const unsigned char *)a->kv->storage + (size_t)page * lay->page_bytes +
                                   (size_t)(j % lay->page_tokens) * lay->row_bytes_k;
        moak_dequantize_row(lay->format, row, dim, key);
        double s = 0.0;
        for (int32_t h = 0; h < a->n_heads; h++) {
            const double d = ref_dot(q + (size_t)h * (size_t)dim, key, dim);
            if (d > 0.0)
                s += (double)w[h] * d;
        }
        score[j] = s;
    }
    moak_select_top_k(score, pos + 1, a->top_k, select, a->positions + (size_t)token * (size_t)a->top_k,
                      a->scores ? a->scores + (size_t)token * (size_t)a->top_k : NULL);
}

moak_status ref_indexer(void *state, const moak_indexer_args *args)
{
    const ref_state *st = state;
    if (!args->kv->host_layout)
        return ref_error(st, MOAK_ERR_UNSUPPORTED, "the indexer needs a K-only cache in the standard host layout");
    const int64_t n_tokens = args->q_offsets[args->n_seqs];
    int64_t max_len = 1;
    for (int32_t i = 0; i < args->n_seqs; i++)
        if (args->q_lens[i] > 0 && args->kv->seq_lens[args->seq_ids[i]] > max_len)
            max_len = args->kv->seq_lens[args->seq_ids[i]];
    indexer_job job;
    job.args = args;
    job.max_len = (size_t)max_len;
    job.scores = ref_alloc_per_thread(st, job.max_len, sizeof(double));
    job.select_bytes = (moak_select_top_k_scratch(max_len, args->top_k) + 63) & ~(size_t)63;
    job.select = ref_alloc_per_thread(st, job.select_bytes, 1);
    job.key = ref_alloc_per_thread(st, (size_t)args->head_dim, sizeof(float));
    moak_status status = MOAK_OK;
    if (!job.scores || !job.select || !job.key)
        status = ref_out_of_memory(st, "indexer scores");
    else
        ref_parallel_for(st, n_tokens, indexer_task, &job);
    free(job.scores);
    free(job.select);
    free(job.key);
    return status;
}
