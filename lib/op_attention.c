/* moak_attention: validation and dispatch. */
#include "config.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The first version of moak_attention_desc ended with sinks; a caller built
 * against it passes that size and gets dense attention. */
#define ATTENTION_DESC_V1_SIZE (offsetof(moak_attention_desc, sinks) + sizeof(const float *))
#define ATTENTION_DESC_HAS(d, field) \
    ((d)->struct_size >= offsetof(moak_attention_desc, field) + sizeof((d)->field))

static moak_status check_desc(moak_context *ctx, const moak_attention_desc *d, const moak_kv_cache *kv,
                              moak_attention_args *a)
{
    moak_status st = moak_check_struct_size(ctx, d->struct_size, ATTENTION_DESC_V1_SIZE, "desc");
    if (st != MOAK_OK)
        return st;
    const moak_kv_layout *l = &kv->layout;
    if (l->k_only)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "kv: a MOAK_KV_K_ONLY cache holds no V, attention needs one (K-only caches are for "
                          "moak_indexer)");
    if (d->n_heads < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->n_heads: %d must be >= 1", (int)d->n_heads);
    if (d->n_heads % l->n_kv_heads)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH,
                          "desc->n_heads: %d is not a multiple of the cache's %d KV heads", (int)d->n_heads,
                          (int)l->n_kv_heads);
    if (d->head_dim_k != l->head_dim_k)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH, "desc->head_dim_k: %d, but the cache's is %d",
                          (int)d->head_dim_k, (int)l->head_dim_k);
    if (d->head_dim_v != l->head_dim_v)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH, "desc->head_dim_v: %d, but the cache's is %d",
                          (int)d->head_dim_v, (int)l->head_dim_v);
    /* With a shared V (absorbed MLA) the key is the latent plus the rope part
     * (576 dims in DeepSeek), while the model scales by its q/k head before
     * absorption (1/sqrt(192) times YaRN's mscale squared): 1/sqrt(head_dim_k)
     * is never right there, so no default is offered. */
    if (d->scale == 0.0f && l->shared_v)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "desc->scale: must be given (> 0) with a MOAK_KV_SHARED_V cache: the default "
                          "1/sqrt(head_dim_k) = 1/sqrt(%d) is not an absorbed-MLA model's scale",
                          (int)l->head_dim_k);
    float scale = d->scale == 0.0f ? (float)(1.0 / sqrt((double)d->head_dim_k)) : d->scale;
    if (!moak_finite(scale) || scale <= 0.0f)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->scale: %g must be finite and > 0", d->scale);
    if (d->causal != 0 && d->causal != 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->causal: %d must be 0 or 1", (int)d->causal);
    if (d->sliding_window < 0)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->sliding_window: %d is negative (0 = none)",
                          (int)d->sliding_window);
    /* The window bounds p - j from above only: without the causal mask a
     * query would see every later token, which no windowed model does. */
    if (d->sliding_window > 0 && !d->causal)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "desc->sliding_window: %d needs desc->causal = 1 (a window without the causal mask "
                          "would let a query see later tokens)", (int)d->sliding_window);
    if (!moak_finite(d->softcap) || d->softcap < 0.0f)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->softcap: %g must be finite and >= 0 (0 = none)",
                          d->softcap);
    if (d->sinks)
        for (int32_t h = 0; h < d->n_heads; h++)
            if (!moak_finite(d->sinks[h]))
                return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->sinks[%d]: %g is not finite", (int)h,
                                  d->sinks[h]);
    a->n_heads = d->n_heads;
    a->n_kv_heads = l->n_kv_heads;
    a->head_dim_k = l->head_dim_k;
    a->head_dim_v = l->head_dim_v;
    a->scale = scale;
    a->causal = d->causal == 1;
    a->sliding_window = d->sliding_window;
    a->softcap = d->softcap;
    a->sinks = d->sinks;
    if (ATTENTION_DESC_HAS(d, sparse_k) && d->sparse_positions) {
        if (d->sparse_k < 1)
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                              "desc->sparse_k: %d must be >= 1 with desc->sparse_positions", (int)d->sparse_k);
        a->sparse_positions = d->sparse_positions;
        a->sparse_k = d->sparse_k;
    }
    return MOAK_OK;
}

/* Every listed position is -1 (unused) or one of its sequence's cached
 * tokens; one pass over sum(q_lens) * sparse_k values. */
static moak_status check_sparse_positions(moak_context *ctx, const moak_kv_cache *kv, const moak_attention_args *a,
                                          const int32_t *q_lens)
{
    const int32_t k = a->sparse_k;
    int64_t token = 0;
    for (int32_t i = 0; i < a->n_seqs; i++) {
        const int64_t len = kv->seq_lens[a->seq_ids[i]];
        for (int32_t r = 0; r < q_lens[i]; r++, token++) {
            const int32_t *list = a->sparse_positions + (size_t)token * (size_t)k;
            for (int32_t c = 0; c < k; c++)
                if (list[c] < -1 || list[c] >= len)
                    return moak_error(ctx, MOAK_ERR_OUT_OF_RANGE,
                                      "desc->sparse_positions[%lld][%d]: %d is outside sequence %d's cached tokens "
                                      "0..%lld (-1 marks an unused slot)",
                                      (long long)token, (int)c, (int)list[c], (int)a->seq_ids[i],
                                      (long long)len - 1);
        }
    }
    return MOAK_OK;
}

/* Sequence ids in range and distinct, q_len in 0..cached length; returns the
 * query token count through *total.  (Shared with moak_indexer.) */
moak_status moak_check_query_seqs(moak_context *ctx, const moak_kv_cache *kv, const int32_t *seq_ids,
                              const int32_t *q_lens, int32_t n_seqs, int64_t *total)
{
    unsigned char *seen = calloc((size_t)kv->max_seqs, 1);
    if (!seen)
        return moak_error(ctx, MOAK_ERR_OUT_OF_MEMORY, "seq_ids: out of memory");
    moak_status st = MOAK_OK;
    int64_t sum = 0;
    for (int32_t i = 0; i < n_seqs && st == MOAK_OK; i++) {
        int32_t s = seq_ids[i];
        if (s < 0 || s >= kv->max_seqs)
            st = moak_error(ctx, MOAK_ERR_OUT_OF_RANGE, "seq_ids[%d]: %d is outside 0..%d (the cache's max_seqs - 1)",
                            (int)i, (int)s, (int)kv->max_seqs - 1);
        else if (seen[s])
            st = moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "seq_ids[%d]: sequence %d is listed twice", (int)i, (int)s);
        else if (q_lens[i] < 0)
            st = moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "q_lens[%d]: %d is negative", (int)i, (int)q_lens[i]);
        else if (q_lens[i] > kv->seq_lens[s])
            st = moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH,
                            "q_lens[%d]: %d queries, but sequence %d holds only %lld cached tokens (append the "
                            "new tokens' K/V first)", (int)i, (int)q_lens[i], (int)s, (long long)kv->seq_lens[s]);
        else {
            seen[s] = 1;
            sum += q_lens[i];
        }
    }
    free(seen);
    *total = sum;
    return st;
}

static moak_status attention_locked(moak_context *ctx, const moak_attention_desc *desc, const moak_kv_cache *kv,
                                    const int32_t *seq_ids, const int32_t *q_lens, int32_t n_seqs, const float *q,
                                    float *out)
{
    MOAK_CHECK_NULL(ctx, desc, "desc");
    MOAK_CHECK_NULL(ctx, kv, "kv");
    if (kv->ctx != ctx)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "kv: was created on another context");
    moak_attention_args a;
    memset(&a, 0, sizeof(a));
    moak_status st = check_desc(ctx, desc, kv, &a);
    if (st != MOAK_OK)
        return st;
    MOAK_CHECK_NULL(ctx, seq_ids, "seq_ids");
    MOAK_CHECK_NULL(ctx, q_lens, "q_lens");
    MOAK_CHECK_NULL(ctx, q, "q");
    MOAK_CHECK_NULL(ctx, out, "out");
    if (n_seqs < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "n_seqs: %d must be >= 1", (int)n_seqs);
    int64_t total = 0;
    if ((st = moak_check_query_seqs(ctx, kv, seq_ids, q_lens, n_seqs, &total)) != MOAK_OK)
        return st;
    size_t q_bytes, out_bytes;
    int64_t qd[3] = {total, a.n_heads, a.head_dim_k}, od[3] = {total, a.n_heads, a.head_dim_v};
    if (!moak_count_bytes(sizeof(float), 3, qd, &q_bytes) || !moak_count_bytes(sizeof(float), 3, od, &out_bytes))
        return moak_error(ctx, MOAK_ERR_SIZE_OVERFLOW, "q_lens: %lld query tokens overflow size_t", (long long)total);
    if (moak_ranges_overlap(q, q_bytes, out, out_bytes))
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "out: overlaps q");
    if (a.sparse_positions) {
        size_t list_bytes;
        int64_t ld[2] = {total, a.sparse_k};
        if (!moak_count_bytes(sizeof(int32_t), 2, ld, &list_bytes))
            return moak_error(ctx, MOAK_ERR_SIZE_OVERFLOW, "desc->sparse_k: %lld query tokens x %d positions overflow "
                              "size_t", (long long)total, (int)a.sparse_k);
        if (moak_ranges_overlap(a.sparse_positions, list_bytes, out, out_bytes))
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "out: overlaps desc->sparse_positions");
        a.n_seqs = n_seqs;
        a.seq_ids = seq_ids;
        if ((st = check_sparse_positions(ctx, kv, &a, q_lens)) != MOAK_OK)
            return st;
    }
    if (total == 0)
        return MOAK_OK; /* every sequence asked for no query: nothing to write */

    moak_op_shape shape;
    memset(&shape, 0, sizeof(shape));
    shape.op = MOAK_OP_ATTENTION;
    shape.format = kv->layout.format;
    shape.m = total;
    shape.n_heads = a.n_heads;
    shape.n_kv_heads = a.n_kv_heads;
    shape.head_dim_k = a.head_dim_k;
    shape.head_dim_v = a.head_dim_v;
    shape.features = (a.sinks ? MOAK_FEATURE_SINKS : 0) | (a.softcap > 0.0f ? MOAK_FEATURE_SOFTCAP : 0) |
                     (a.sliding_window ? MOAK_FEATURE_WINDOW : 0) |
                     (kv->layout.shared_v ? MOAK_FEATURE_SHARED_V : 0) | (a.causal ? 0 : MOAK_FEATURE_NONCAUSAL) |
                     (a.sparse_positions ? MOAK_FEATURE_SPARSE : 0);
    shape.top_k = a.sparse_k;
    int32_t slot;
    /* Host pages can be read by any host backend; a device cache only by its owner. */
    if ((st = moak_dispatch(ctx, &shape, kv->host_layout, kv->host_layout ? -1 : kv->slot, &slot)) != MOAK_OK)
        return st;

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
    a.out = out;
    const moak_backend_slot *s = &ctx->slots[slot];
    st = moak_op_finish(ctx, slot, s->ops->attention(s->state, &a));
    free(offsets);
    return st;
}

MOAK_API moak_status moak_attention(moak_context *ctx, const moak_attention_desc *desc, const moak_kv_cache *kv,
                                    const int32_t *seq_ids, const int32_t *q_lens, int32_t n_seqs, const float *q,
                                    float *out)
{
    if (!ctx)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "ctx: must not be NULL");
    moak_context_lock(ctx);
    moak_status st = attention_locked(ctx, desc, kv, seq_ids, q_lens, n_seqs, q, out);
    moak_context_unlock(ctx);
    return st;
}
