/* moak_gated_delta_rule: validation and dispatch.  Everything a backend may
 * assume (moak_backend.h) is checked here, before any backend runs: the
 * op's shape against the state's, sequence ids, the gates (finite, <= 0:
 * a positive log-decay would grow the state without bound) and beta
 * (finite), sizes and overlaps. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static moak_status check_desc(moak_context *ctx, const moak_gated_delta_desc *d, const moak_linear_state *s,
                              moak_gated_delta_args *a)
{
    moak_status st = moak_check_struct_size(ctx, d->struct_size, sizeof(moak_gated_delta_desc), "desc");
    if (st != MOAK_OK)
        return st;
    if (d->n_qk_heads < 1 || d->n_v_heads < 1 || d->n_v_heads % d->n_qk_heads)
        return moak_error(ctx, d->n_qk_heads < 1 || d->n_v_heads < 1 ? MOAK_ERR_INVALID_ARGUMENT : MOAK_ERR_SHAPE_MISMATCH,
                          "desc->n_v_heads: %d must be a multiple of desc->n_qk_heads %d (both >= 1)",
                          (int)d->n_v_heads, (int)d->n_qk_heads);
    int32_t kernel = d->conv_kernel ? d->conv_kernel : 4;
    if (d->n_qk_heads != s->n_qk_heads || d->n_v_heads != s->n_v_heads || d->head_dim_k != s->head_dim_k ||
        d->head_dim_v != s->head_dim_v || kernel != s->conv_kernel)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH,
                          "state: holds %d q/k heads, %d v heads, d_k %d, d_v %d, conv kernel %d, but desc asks for "
                          "%d, %d, %d, %d, %d", (int)s->n_qk_heads, (int)s->n_v_heads, (int)s->head_dim_k,
                          (int)s->head_dim_v, (int)s->conv_kernel, (int)d->n_qk_heads, (int)d->n_v_heads,
                          (int)d->head_dim_k, (int)d->head_dim_v, (int)kernel);
    if (d->gate != MOAK_GATE_PER_HEAD && d->gate != MOAK_GATE_PER_KEY)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "desc->gate: %d is not MOAK_GATE_PER_HEAD (0) or MOAK_GATE_PER_KEY (1)", (int)d->gate);
    float scale = d->scale == 0.0f ? (float)(1.0 / sqrt((double)d->head_dim_k)) : d->scale;
    if (!moak_finite(scale) || scale <= 0.0f)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->scale: %g must be finite and > 0", d->scale);
    a->gate = d->gate;
    a->n_qk_heads = s->n_qk_heads;
    a->n_v_heads = s->n_v_heads;
    a->head_dim_k = s->head_dim_k;
    a->head_dim_v = s->head_dim_v;
    a->conv_kernel = s->conv_kernel;
    a->channels = s->channels;
    a->scale = scale;
    a->delta_states = s->delta;
    a->conv_states = s->conv;
    return MOAK_OK;
}

static moak_status check_seqs(moak_context *ctx, const moak_linear_state *s, const int32_t *seq_ids,
                              const int32_t *q_lens, int32_t n_seqs, int64_t *total)
{
    unsigned char *seen = calloc((size_t)s->max_seqs, 1);
    if (!seen)
        return moak_error(ctx, MOAK_ERR_OUT_OF_MEMORY, "seq_ids: out of memory");
    moak_status st = MOAK_OK;
    int64_t sum = 0;
    for (int32_t i = 0; i < n_seqs && st == MOAK_OK; i++) {
        int32_t id = seq_ids[i];
        if (id < 0 || id >= s->max_seqs)
            st = moak_error(ctx, MOAK_ERR_OUT_OF_RANGE, "seq_ids[%d]: %d is outside 0..%d (the state's max_seqs - 1)",
                            (int)i, (int)id, (int)s->max_seqs - 1);
        else if (seen[id])
            st = moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "seq_ids[%d]: sequence %d is listed twice", (int)i, (int)id);
        else if (q_lens[i] < 0)
            st = moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "q_lens[%d]: %d is negative", (int)i, (int)q_lens[i]);
        else {
            seen[id] = 1;
            sum += q_lens[i];
        }
    }
    free(seen);
    *total = sum;
    return st;
}

static moak_status check_gates(moak_context *ctx, const float *g, int64_t n_g, const float *beta, int64_t n_beta)
{
    for (int64_t i = 0; i < n_g; i++)
        if (!moak_finite(g[i]) || g[i] > 0.0f)
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                              "g[%lld]: %g must be finite and <= 0 (a log-decay; exp(g) scales the state)",
                              (long long)i, g[i]);
    for (int64_t i = 0; i < n_beta; i++)
        if (!moak_finite(beta[i]))
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "beta[%lld]: %g is not finite", (long long)i, beta[i]);
    return MOAK_OK;
}

static moak_status gated_delta_locked(moak_context *ctx, const moak_gated_delta_desc *desc, moak_linear_state *state,
                                      const int32_t *seq_ids, const int32_t *q_lens, int32_t n_seqs, const float *qkv,
                                      const float *conv_w, const float *g, const float *beta, float *out)
{
    MOAK_CHECK_NULL(ctx, desc, "desc");
    MOAK_CHECK_NULL(ctx, state, "state");
    if (state->ctx != ctx)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "state: was created on another context");
    moak_gated_delta_args a;
    memset(&a, 0, sizeof(a));
    moak_status st = check_desc(ctx, desc, state, &a);
    if (st != MOAK_OK)
        return st;
    MOAK_CHECK_NULL(ctx, seq_ids, "seq_ids");
    MOAK_CHECK_NULL(ctx, q_lens, "q_lens");
    MOAK_CHECK_NULL(ctx, qkv, "qkv");
    MOAK_CHECK_NULL(ctx, conv_w, "conv_w");
    MOAK_CHECK_NULL(ctx, g, "g");
    MOAK_CHECK_NULL(ctx, beta, "beta");
    MOAK_CHECK_NULL(ctx, out, "out");
    if (n_seqs < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "n_seqs: %d must be >= 1", (int)n_seqs);
    int64_t total = 0;
    if ((st = check_seqs(ctx, state, seq_ids, q_lens, n_seqs, &total)) != MOAK_OK)
        return st;
    int64_t g_per_token = (int64_t)a.n_v_heads * (a.gate == MOAK_GATE_PER_KEY ? a.head_dim_k : 1);
    size_t qkv_bytes, out_bytes, g_bytes, beta_bytes, w_bytes;
    int64_t qd[2] = {total, a.channels}, od[3] = {total, a.n_v_heads, a.head_dim_v}, gd[2] = {total, g_per_token},
            bd[2] = {total, a.n_v_heads}, wd[2] = {a.channels, a.conv_kernel};
    if (!moak_count_bytes(sizeof(float), 2, qd, &qkv_bytes) || !moak_count_bytes(sizeof(float), 3, od, &out_bytes) ||
        !moak_count_bytes(sizeof(float), 2, gd, &g_bytes) || !moak_count_bytes(sizeof(float), 2, bd, &beta_bytes) ||
        !moak_count_bytes(sizeof(float), 2, wd, &w_bytes))
        return moak_error(ctx, MOAK_ERR_SIZE_OVERFLOW, "q_lens: %lld tokens overflow size_t", (long long)total);
    if (moak_ranges_overlap(qkv, qkv_bytes, out, out_bytes))
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "out: overlaps qkv");
    if (moak_ranges_overlap(g, g_bytes, out, out_bytes))
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "out: overlaps g");
    if (moak_ranges_overlap(beta, beta_bytes, out, out_bytes))
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "out: overlaps beta");
    if (moak_ranges_overlap(conv_w, w_bytes, out, out_bytes))
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "out: overlaps conv_w");
    if ((st = check_gates(ctx, g, total * g_per_token, beta, total * a.n_v_heads)) != MOAK_OK)
        return st;
    if (total == 0)
        return MOAK_OK; /* no tokens: nothing to write, no state changes */

    moak_op_shape shape;
    memset(&shape, 0, sizeof(shape));
    shape.op = MOAK_OP_GATED_DELTA;
    shape.format = MOAK_FORMAT_F32;
    shape.m = total;
    shape.n = a.conv_kernel;
    shape.n_heads = a.n_v_heads;
    shape.n_kv_heads = a.n_qk_heads;
    shape.head_dim_k = a.head_dim_k;
    shape.head_dim_v = a.head_dim_v;
    shape.variant = (int32_t)a.gate;
    int32_t slot;
    if ((st = moak_dispatch(ctx, &shape, false, -1, &slot)) != MOAK_OK)
        return st;
    const moak_backend_slot *s = &ctx->slots[slot];
    if (!s->ops->gated_delta)
        return moak_error(ctx, MOAK_ERR_UNSUPPORTED, "backend %s accepted the gated delta rule but has no entry for it",
                          s->ops->name);

    int64_t *offsets = malloc(((size_t)n_seqs + 1) * sizeof(int64_t));
    if (!offsets)
        return moak_error(ctx, MOAK_ERR_OUT_OF_MEMORY, "n_seqs: out of memory");
    offsets[0] = 0;
    for (int32_t i = 0; i < n_seqs; i++)
        offsets[i + 1] = offsets[i] + q_lens[i];
    a.n_seqs = n_seqs;
    a.seq_ids = seq_ids;
    a.q_lens = q_lens;
    a.q_offsets = offsets;
    a.qkv = qkv;
    a.conv_w = conv_w;
    a.g = g;
    a.beta = beta;
    a.out = out;
    st = moak_op_finish(ctx, slot, s->ops->gated_delta(s->state, &a));
    free(offsets);
    return st;
}

MOAK_API moak_status moak_gated_delta_rule(moak_context *ctx, const moak_gated_delta_desc *desc,
                                           moak_linear_state *state, const int32_t *seq_ids, const int32_t *q_lens,
                                           int32_t n_seqs, const float *qkv, const float *conv_w, const float *g,
                                           const float *beta, float *out)
{
    if (!ctx)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "ctx: must not be NULL");
    moak_context_lock(ctx);
    moak_status st = gated_delta_locked(ctx, desc, state, seq_ids, q_lens, n_seqs, qkv, conv_w, g, beta, out);
    moak_context_unlock(ctx);
    return st;
}
