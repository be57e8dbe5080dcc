/* moak_matmul: validation and dispatch.  Also the helpers every op shares. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "internal.h"

moak_status moak_op_finish(moak_context *ctx, int32_t slot, moak_status st)
{
    const moak_backend_ops *ops = ctx->slots[slot].ops;
    if (st == MOAK_OK)
        ctx->last_backend = ops->name;
    else if (!ctx->last_error[0])
        moak_error(ctx, st, "backend %s failed: %s", ops->name, moak_status_str(st));
    return st;
}

bool moak_ranges_overlap(const void *a, size_t a_bytes, const void *b, size_t b_bytes)
{
    uintptr_t a0 = (uintptr_t)a, b0 = (uintptr_t)b;
    return a0 < b0 + b_bytes && b0 < a0 + a_bytes;
}

moak_status moak_check_weight(moak_context *ctx, const moak_weight *w, const char *name)
{
    if (!w)
        return moak_error(ctx, MOAK_ERR_NULL_ARGUMENT, "%s: must not be NULL", name);
    if (w->ctx != ctx)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "%s: was created on another context", name);
    return MOAK_OK;
}

static moak_status matmul_locked(moak_context *ctx, const moak_weight *w, const float *x, int64_t m, float *y)
{
    moak_status st = moak_check_weight(ctx, w, "w");
    if (st != MOAK_OK)
        return st;
    MOAK_CHECK_NULL(ctx, x, "x");
    MOAK_CHECK_NULL(ctx, y, "y");
    if (m < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "m: %lld must be >= 1", (long long)m);
    if (w->view.n_experts != 1)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH,
                          "w: holds %lld experts; moak_matmul takes a weight of one expert (use moak_moe_ffn)",
                          (long long)w->view.n_experts);
    size_t x_bytes, y_bytes;
    int64_t xd[2] = {m, w->view.cols}, yd[2] = {m, w->view.rows};
    if (!moak_count_bytes(sizeof(float), 2, xd, &x_bytes) || !moak_count_bytes(sizeof(float), 2, yd, &y_bytes))
        return moak_error(ctx, MOAK_ERR_SIZE_OVERFLOW, "m: %lld rows of x or y overflow size_t", (long long)m);
    if (moak_ranges_overlap(x, x_bytes, y, y_bytes))
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "y: overlaps x (matmul is not in place)");

    moak_op_shape shape;
    memset(&shape, 0, sizeof(shape));
    shape.op = MOAK_OP_MATMUL;
    shape.format = w->view.format;
    shape.m = m;
    shape.n = w->view.rows;
    shape.k = w->view.cols;
    shape.n_experts = 1;
    shape.features = w->view.bias ? MOAK_FEATURE_BIAS : 0;
    int32_t slot;
    st = moak_dispatch(ctx, &shape, false, w->slot, &slot);
    if (st != MOAK_OK)
        return st;
    moak_matmul_args args = {&w->view, 0, x, m, y};
    const moak_backend_slot *s = &ctx->slots[slot];
    return moak_op_finish(ctx, slot, s->ops->matmul(s->state, &args));
}

MOAK_API moak_status moak_matmul(moak_context *ctx, const moak_weight *w, const float *x, int64_t m, float *y)
{
    if (!ctx)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "ctx: must not be NULL");
    moak_context_lock(ctx);
    moak_status st = matmul_locked(ctx, w, x, m, y);
    moak_context_unlock(ctx);
    return st;
}
