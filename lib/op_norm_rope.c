/* moak_rmsnorm and moak_rope: validation and dispatch. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* In place (y == x) is fine; any other overlap is an error. */
static moak_status check_in_place(moak_context *ctx, const float *x, float *y, size_t bytes)
{
    if ((const void *)x != (const void *)y && moak_ranges_overlap(x, bytes, y, bytes))
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "y: overlaps x without being equal to it");
    return MOAK_OK;
}

static moak_status run_simple(moak_context *ctx, const moak_op_shape *shape, const void *args)
{
    int32_t slot;
    moak_status st = moak_dispatch(ctx, shape, false, -1, &slot);
    if (st != MOAK_OK)
        return st;
    const moak_backend_slot *s = &ctx->slots[slot];
    if (shape->op == MOAK_OP_RMSNORM)
        st = s->ops->rmsnorm(s->state, args);
    else
        st = s->ops->rope(s->state, args);
    return moak_op_finish(ctx, slot, st);
}

static moak_status rmsnorm_locked(moak_context *ctx, const float *x, const float *gamma, int64_t n_rows, int64_t dim,
                                  float eps, float *y)
{
    MOAK_CHECK_NULL(ctx, x, "x");
    MOAK_CHECK_NULL(ctx, y, "y");
    if (n_rows < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "n_rows: %lld must be >= 1", (long long)n_rows);
    if (dim < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "dim: %lld must be >= 1", (long long)dim);
    if (!moak_finite(eps) || eps < 0.0f)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "eps: %g must be finite and >= 0", eps);
    size_t bytes;
    int64_t d[2] = {n_rows, dim};
    if (!moak_count_bytes(sizeof(float), 2, d, &bytes))
        return moak_error(ctx, MOAK_ERR_SIZE_OVERFLOW, "n_rows x dim: %lld x %lld floats overflow size_t",
                          (long long)n_rows, (long long)dim);
    moak_status st = check_in_place(ctx, x, y, bytes);
    if (st != MOAK_OK)
        return st;
    if (gamma && gamma != x && moak_ranges_overlap(gamma, (size_t)dim * sizeof(float), y, bytes))
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "gamma: overlaps y");
    moak_rmsnorm_args a = {x, gamma, n_rows, dim, eps, y};
    moak_op_shape shape;
    memset(&shape, 0, sizeof(shape));
    shape.op = MOAK_OP_RMSNORM;
    shape.m = n_rows;
    shape.n = dim;
    return run_simple(ctx, &shape, &a);
}

MOAK_API moak_status moak_rmsnorm(moak_context *ctx, const float *x, const float *gamma, int64_t n_rows, int64_t dim,
                                  float eps, float *y)
{
    if (!ctx)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "ctx: must not be NULL");
    moak_context_lock(ctx);
    moak_status st = rmsnorm_locked(ctx, x, gamma, n_rows, dim, eps, y);
    moak_context_unlock(ctx);
    return st;
}

static moak_status rope_locked(moak_context *ctx, const moak_rope_desc *desc, const float *x, int64_t n_tokens,
                               int32_t n_heads, const int32_t *positions, float *y)
{
    MOAK_CHECK_NULL(ctx, desc, "desc");
    moak_rope_desc whole; /* the caller's struct_size worth, the rest 0 */
    moak_status st = moak_rope_read_desc(ctx, desc, &whole);
    if (st != MOAK_OK)
        return st;
    desc = &whole;
    if ((unsigned)desc->layout > MOAK_ROPE_GPTJ)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->layout: %d is not a moak_rope_layout",
                          (int)desc->layout);
    if (desc->head_dim < 2)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->head_dim: %d must be >= 2", (int)desc->head_dim);
    int32_t rot = desc->rotary_dim == 0 ? desc->head_dim : desc->rotary_dim;
    if (rot < 2 || rot > desc->head_dim || rot % 2)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "desc->rotary_dim: %d must be even and in 2..head_dim (%d), or 0 for head_dim",
                          (int)desc->rotary_dim, (int)desc->head_dim);
    float base = desc->theta_base == 0.0f ? 10000.0f : desc->theta_base;
    float pscale = desc->position_scale == 0.0f ? 1.0f : desc->position_scale;
    if (!moak_finite(base) || base <= 1.0f)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->theta_base: %g must be finite and > 1",
                          desc->theta_base);
    if (!moak_finite(pscale) || pscale <= 0.0f)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->position_scale: %g must be finite and > 0",
                          desc->position_scale);
    MOAK_CHECK_NULL(ctx, x, "x");
    MOAK_CHECK_NULL(ctx, positions, "positions");
    MOAK_CHECK_NULL(ctx, y, "y");
    if (n_tokens < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "n_tokens: %lld must be >= 1", (long long)n_tokens);
    if (n_heads < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "n_heads: %d must be >= 1", (int)n_heads);
    size_t bytes;
    int64_t d[3] = {n_tokens, n_heads, desc->head_dim};
    if (!moak_count_bytes(sizeof(float), 3, d, &bytes))
        return moak_error(ctx, MOAK_ERR_SIZE_OVERFLOW, "n_tokens x n_heads x head_dim overflow size_t");
    if ((st = check_in_place(ctx, x, y, bytes)) != MOAK_OK)
        return st;
    for (int64_t t = 0; t < n_tokens; t++)
        if (positions[t] < 0)
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "positions[%lld]: %d is negative", (long long)t,
                              (int)positions[t]);
    double attention_factor;
    double *inv_freq = moak_rope_freqs(desc, rot, base, &attention_factor);
    if (!inv_freq)
        return moak_error(ctx, MOAK_ERR_OUT_OF_MEMORY, "desc->rotary_dim: out of memory for %d frequencies",
                          (int)(rot / 2));
    moak_rope_args a = {desc->layout, desc->head_dim, rot, base, pscale, x, n_tokens, n_heads, positions, y,
                        inv_freq, attention_factor};
    moak_op_shape shape;
    memset(&shape, 0, sizeof(shape));
    shape.op = MOAK_OP_ROPE;
    shape.m = n_tokens;
    shape.n = desc->head_dim;
    shape.n_heads = n_heads;
    shape.variant = desc->layout;
    st = run_simple(ctx, &shape, &a);
    free(inv_freq);
    return st;
}

MOAK_API moak_status moak_rope(moak_context *ctx, const moak_rope_desc *desc, const float *x, int64_t n_tokens,
                               int32_t n_heads, const int32_t *positions, float *y)
{
    if (!ctx)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "ctx: must not be NULL");
    moak_context_lock(ctx);
    moak_status st = rope_locked(ctx, desc, x, n_tokens, n_heads, positions, y);
    moak_context_unlock(ctx);
    return st;
}
