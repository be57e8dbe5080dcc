/* The gated delta-rule state (moak_linear_state): per sequence, the f32
 * d_k x d_v matrix of every value head and the short convolution's last
 * inputs.  It lives in core-owned host memory whatever backend runs the op:
 * host backends update it in place; a device backend (opencl) copies the
 * sequences a call touches to the device and back, which costs one state
 * transfer each way per call but keeps clear/read trivial and lets any
 * backend continue a sequence another one started. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DEFAULT_CONV_KERNEL 4
#define MAX_CONV_KERNEL 16

static moak_status check_desc(moak_context *ctx, const moak_linear_state_desc *d)
{
    moak_status st = moak_check_struct_size(ctx, d->struct_size, sizeof(moak_linear_state_desc), "desc");
    if (st != MOAK_OK)
        return st;
    if (d->n_qk_heads < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->n_qk_heads: %d must be >= 1", (int)d->n_qk_heads);
    if (d->n_v_heads < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->n_v_heads: %d must be >= 1", (int)d->n_v_heads);
    if (d->n_v_heads % d->n_qk_heads)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH,
                          "desc->n_v_heads: %d is not a multiple of n_qk_heads %d (v head j reads q/k head "
                          "j / (n_v_heads / n_qk_heads))", (int)d->n_v_heads, (int)d->n_qk_heads);
    if (d->head_dim_k < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->head_dim_k: %d must be >= 1", (int)d->head_dim_k);
    if (d->head_dim_v < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->head_dim_v: %d must be >= 1", (int)d->head_dim_v);
    if (d->conv_kernel < 0 || d->conv_kernel > MAX_CONV_KERNEL)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->conv_kernel: %d must be in 0..%d (0 = %d)",
                          (int)d->conv_kernel, MAX_CONV_KERNEL, DEFAULT_CONV_KERNEL);
    if (d->max_seqs < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->max_seqs: %d must be >= 1", (int)d->max_seqs);
    return MOAK_OK;
}

static void free_state(moak_linear_state *s)
{
    moak_free(s->delta);
    moak_free(s->conv);
    free(s);
}

static moak_status create_locked(moak_context *ctx, const moak_linear_state_desc *d, moak_linear_state **out)
{
    MOAK_CHECK_NULL(ctx, d, "desc");
    MOAK_CHECK_NULL(ctx, out, "state");
    moak_status st = check_desc(ctx, d);
    if (st != MOAK_OK)
        return st;
    int32_t kernel = d->conv_kernel ? d->conv_kernel : DEFAULT_CONV_KERNEL;
    /* Sizes in int64 first: every factor is below 2^31, so these cannot overflow. */
    int64_t channels = 2 * (int64_t)d->n_qk_heads * d->head_dim_k + (int64_t)d->n_v_heads * d->head_dim_v;
    int64_t ddims[4] = {d->max_seqs, d->n_v_heads, d->head_dim_k, d->head_dim_v};
    int64_t cdims[3] = {d->max_seqs, kernel - 1, channels};
    size_t delta_bytes, conv_bytes;
    if (!moak_count_bytes(sizeof(float), 4, ddims, &delta_bytes) ||
        !moak_count_bytes(sizeof(float), 3, cdims, &conv_bytes))
        return moak_error(ctx, MOAK_ERR_SIZE_OVERFLOW,
                          "desc->max_seqs: %d sequences of %d heads x %d x %d floats overflow size_t",
                          (int)d->max_seqs, (int)d->n_v_heads, (int)d->head_dim_k, (int)d->head_dim_v);

    /* Some backend must run the op on this shape: say so now, not at the first token. */
    moak_op_shape shape;
    memset(&shape, 0, sizeof(shape));
    shape.op = MOAK_OP_GATED_DELTA;
    shape.format = MOAK_FORMAT_F32;
    shape.n = kernel;
    shape.n_heads = d->n_v_heads;
    shape.n_kv_heads = d->n_qk_heads;
    shape.head_dim_k = d->head_dim_k;
    shape.head_dim_v = d->head_dim_v;
    int32_t slot;
    if ((st = moak_dispatch(ctx, &shape, false, -1, &slot)) != MOAK_OK)
        return st;

    moak_linear_state *s = calloc(1, sizeof(*s));
    if (!s)
        return moak_error(ctx, MOAK_ERR_OUT_OF_MEMORY, "state: out of memory");
    s->ctx = ctx;
    s->n_qk_heads = d->n_qk_heads;
    s->n_v_heads = d->n_v_heads;
    s->head_dim_k = d->head_dim_k;
    s->head_dim_v = d->head_dim_v;
    s->conv_kernel = kernel;
    s->max_seqs = d->max_seqs;
    s->channels = channels;
    s->delta_floats = delta_bytes / sizeof(float) / (size_t)d->max_seqs;
    s->conv_floats = conv_bytes / sizeof(float) / (size_t)d->max_seqs;
    s->delta = moak_alloc(delta_bytes); /* zeroed: every sequence starts empty */
    if (conv_bytes)
        s->conv = moak_alloc(conv_bytes);
    if (!s->delta || (conv_bytes && !s->conv)) {
        free_state(s);
        return moak_error(ctx, MOAK_ERR_OUT_OF_MEMORY, "desc->max_seqs: out of memory for %d sequences' state (%zu bytes)",
                          (int)d->max_seqs, delta_bytes + conv_bytes);
    }
    *out = s;
    return MOAK_OK;
}

MOAK_API moak_status moak_linear_state_create(moak_context *ctx, const moak_linear_state_desc *desc,
                                              moak_linear_state **state)
{
    if (!ctx)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "ctx: must not be NULL");
    moak_context_lock(ctx);
    moak_status st = create_locked(ctx, desc, state);
    moak_context_unlock(ctx);
    return st;
}

MOAK_API void moak_linear_state_destroy(moak_linear_state *state)
{
    if (state)
        free_state(state);
}

static moak_status check_seq(moak_context *ctx, const moak_linear_state *s, int32_t seq_id)
{
    if (seq_id < 0 || seq_id >= s->max_seqs)
        return moak_error(ctx, MOAK_ERR_OUT_OF_RANGE, "seq_id: %d is outside 0..%d (max_seqs - 1)", (int)seq_id,
                          (int)s->max_seqs - 1);
    return MOAK_OK;
}

static moak_status clear_locked(moak_context *ctx, moak_linear_state *s, int32_t seq_id)
{
    MOAK_CHECK_NULL(ctx, s, "state");
    if (s->ctx != ctx)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "state: was created on another context");
    moak_status st = check_seq(ctx, s, seq_id);
    if (st != MOAK_OK)
        return st;
    memset(s->delta + (size_t)seq_id * s->delta_floats, 0, s->delta_floats * sizeof(float));
    if (s->conv)
        memset(s->conv + (size_t)seq_id * s->conv_floats, 0, s->conv_floats * sizeof(float));
    return MOAK_OK;
}

MOAK_API moak_status moak_linear_state_seq_clear(moak_context *ctx, moak_linear_state *state, int32_t seq_id)
{
    if (!ctx)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "ctx: must not be NULL");
    moak_context_lock(ctx);
    moak_status st = clear_locked(ctx, state, seq_id);
    moak_context_unlock(ctx);
    return st;
}

MOAK_API moak_status moak_linear_state_read(const moak_linear_state *state, int32_t seq_id, float *s, float *conv)
{
    if (!state)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "state: must not be NULL");
    if (!s)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "s: must not be NULL");
    if (seq_id < 0 || seq_id >= state->max_seqs)
        return moak_error(NULL, MOAK_ERR_OUT_OF_RANGE, "seq_id: %d is outside 0..%d (max_seqs - 1)", (int)seq_id,
                          (int)state->max_seqs - 1);
    /* Under the context's lock: an op of another thread may be updating it. */
    moak_context_lock(state->ctx);
    memcpy(s, state->delta + (size_t)seq_id * state->delta_floats, state->delta_floats * sizeof(float));
    if (conv && state->conv)
        memcpy(conv, state->conv + (size_t)seq_id * state->conv_floats, state->conv_floats * sizeof(float));
    moak_context_unlock(state->ctx);
    return MOAK_OK;
}
