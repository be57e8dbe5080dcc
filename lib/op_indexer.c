/* moak_indexer: validation and dispatch (the op is described in moak.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"

static moak_status check_desc(moak_context *ctx, const moak_indexer_desc *d, const moak_kv_cache *kv,
                              moak_indexer_args *a)
{
    moak_status st = moak_check_struct_size(ctx, d->struct_size, sizeof(moak_indexer_desc), "desc");
    if (st != MOAK_OK)
        return st;
    const moak_kv_layout *l = &kv->layout;
    if (!l->k_only)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "index_kv: must be a MOAK_KV_K_ONLY cache (the index keys, without V)");
    if (l->n_kv_heads != 1)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH,
                          "index_kv: has %d KV heads, the indexer reads one index key per token (n_kv_heads 1)",
                          (int)l->n_kv_heads);
    if (d->n_heads < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->n_heads: %d must be >= 1", (int)d->n_heads);
    if (d->head_dim != l->head_dim_k)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH, "desc->head_dim: %d, but the index cache's head_dim_k is %d",
                          (int)d->head_dim, (int)l->head_dim_k);
    if (d->top_k < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->top_k: %d must be >= 1", (int)d->top_k);
    a->n_heads = d->n_heads;
    a->head_dim = d->head_dim;
    a->top_k = d->top_k;
    return MOAK_OK;
}

static moak_status indexer_locked(moak_context *ctx, const moak_indexer_desc *desc, const moak_kv_cache *kv,
                                  const int32_t *seq_ids, const int32_t *q_lens, int32_t n_seqs, const float *q,
                                  const float *w, int32_t *positions, float *scores)
{
    MOAK_CHECK_NULL(ctx, desc, "desc");
    MOAK_CHECK_NULL(ctx, kv, "index_kv");
    if (kv->ctx != ctx)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "index_kv: was created on another context");
    moak_indexer_args a;
    memset(&a, 0, sizeof(a));
    moak_status st = check_desc(ctx, desc, kv, &a);
    if (st != MOAK_OK)
        return st;
    MOAK_CHECK_NULL(ctx, seq_ids, "seq_ids");
    MOAK_CHECK_NULL(ctx, q_lens, "q_lens");
    MOAK_CHECK_NULL(ctx, q, "q");
    MOAK_CHECK_NULL(ctx, w, "w");
    MOAK_CHECK_NULL(ctx, positions, "positions");
    if (n_seqs < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "n_seqs: %d must be >= 1", (int)n_seqs);
    int64_t total = 0;
    if ((st = moak_check_query_seqs(ctx, kv, seq_ids, q_lens, n_seqs, &total)) != MOAK_OK)
        return st;
    size_t q_bytes, w_bytes, pos_bytes, score_bytes;
    int64_t qd[3] = {total, a.n_heads, a.head_dim}, wd[2] = {total, a.n_heads}, pd[2] = {total, a.top_k};
    if (!moak_count_bytes(sizeof(float), 3, qd, &q_bytes) || !moak_count_bytes(sizeof(float), 2, wd, &w_bytes) ||
        !moak_count_bytes(sizeof(int32_t), 2, pd, &pos_bytes) ||
        !moak_count_bytes(sizeof(float), 2, pd, &score_bytes))
        return moak_error(ctx, MOAK_ERR_SIZE_OVERFLOW, "q_lens: %lld query tokens overflow size_t", (long long)total);
    if (moak_ranges_overlap(positions, pos_bytes, q, q_bytes) || moak_ranges_overlap(positions, pos_bytes, w, w_bytes))
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "positions: overlaps q or w");
    if (scores && (moak_ranges_overlap(scores, score_bytes, q, q_bytes) ||
                   moak_ranges_overlap(scores, score_bytes, w, w_bytes) ||
                   moak_ranges_overlap(scores, score_bytes, positions, pos_bytes)))
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "scores: overlaps q, w or positions");
    if (total == 0)
        return MOAK_OK;

    moak_op_shape shape;
    memset(&shape, 0, sizeof(shape));
    shape.op = MOAK_OP_INDEXER;
    shape.format = kv->layout.format;
    shape.m = total;
    shape.n_heads = a.n_heads;
    shape.n_kv_heads = 1;
    shape.head_dim_k = a.head_dim;
    shape.top_k = a.top_k;
    int32_t slot;
    if ((st = moak_dispatch(ctx, &shape, kv->host_layout, kv->host_layout ? -1 : kv->slot, &slot)) != MOAK_OK)
        return st;
    const moak_backend_slot *s = &ctx->slots[slot];
    if (!s->ops->indexer)
        return moak_error(ctx, MOAK_ERR_UNSUPPORTED, "backend %s accepted the indexer but has no indexer op",
                          s->ops->name);

    int64_t *offsets = malloc(((size_t)n_seqs + 1) * sizeof(int64_t));
    if (!offsets)
        return moak_error(ctx, MOAK_ERR_OUT_OF_MEMORY, "n_seqs: out of memory");
    offsets[0] = 0;
    for (int32_t i = 0; i < n_seqs; i++)
        offsets[i + 1] = offsets[i] + q_lens[i];
    a.kv = &kv->view;
    a.n_seqs = n_seqs;
    a.seq_ids = seq_ids;
    a.q_lens = q_lens;
    a.q_offsets = offsets;
    a.q = q;
    a.w = w;
    a.positions = positions;
    a.scores = scores;
    st = moak_op_finish(ctx, slot, s->ops->indexer(s->state, &a));
    free(offsets);
    return st;
}

MOAK_API moak_status moak_indexer(moak_context *ctx, const moak_indexer_desc *desc, const moak_kv_cache *index_kv,
                                  const int32_t *seq_ids, const int32_t *q_lens, int32_t n_seqs, const float *q,
                                  const float *w, int32_t *positions, float *scores)
{
    if (!ctx)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "ctx: must not be NULL");
    moak_context_lock(ctx);
    moak_status st = indexer_locked(ctx, desc, index_kv, seq_ids, q_lens, n_seqs, q, w, positions, scores);
    moak_context_unlock(ctx);
    return st;
}
