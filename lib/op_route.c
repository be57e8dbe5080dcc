/* moak_moe_route: validation and dispatch. */
#include "config.h"

#include <string.h>

#include "internal.h"

static moak_status check_router(moak_context *ctx, const moak_router_desc *r, moak_route_args *a)
{
    moak_status st = moak_check_struct_size(ctx, r->struct_size, sizeof(moak_router_desc), "router");
    if (st != MOAK_OK)
        return st;
    if ((unsigned)r->method > MOAK_ROUTE_SQRT_SOFTPLUS_TOPK)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "router->method: %d is not a moak_route_method",
                          (int)r->method);
    if (r->n_experts < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "router->n_experts: %d must be >= 1", (int)r->n_experts);
    if (r->top_k < 1 || r->top_k > r->n_experts)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "router->top_k: %d must be in 1..%d (n_experts)",
                          (int)r->top_k, (int)r->n_experts);
    if (r->renormalize != 0 && r->renormalize != 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "router->renormalize: %d must be 0 or 1",
                          (int)r->renormalize);
    float scale = r->scaling_factor == 0.0f ? 1.0f : r->scaling_factor;
    if (!moak_finite(scale) || scale <= 0.0f)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "router->scaling_factor: %g must be finite and > 0",
                          r->scaling_factor);
    const bool biased = moak_route_method_biased(r->method);
    if (r->bias && !biased)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "router->bias: a selection bias is only defined for MOAK_ROUTE_SIGMOID_TOPK and "
                          "MOAK_ROUTE_SQRT_SOFTPLUS_TOPK");
    int32_t groups = r->n_groups <= 1 ? 1 : r->n_groups;
    if (r->n_groups < 0)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "router->n_groups: %d is negative", (int)r->n_groups);
    if (groups > 1 && !biased)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "router->n_groups: group-limited selection is only defined for MOAK_ROUTE_SIGMOID_TOPK "
                          "and MOAK_ROUTE_SQRT_SOFTPLUS_TOPK");
    if (groups > 1) {
        if (r->n_experts % groups)
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "router->n_groups: %d does not divide n_experts %d",
                              (int)groups, (int)r->n_experts);
        if (r->topk_groups < 1 || r->topk_groups > groups)
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "router->topk_groups: %d must be in 1..%d (n_groups)",
                              (int)r->topk_groups, (int)groups);
        if (r->top_k > r->topk_groups * (r->n_experts / groups))
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                              "router->top_k: %d exceeds the %d experts of the %d kept groups", (int)r->top_k,
                              (int)(r->topk_groups * (r->n_experts / groups)), (int)r->topk_groups);
    }
    if (r->bias)
        for (int32_t e = 0; e < r->n_experts; e++)
            if (!moak_finite(r->bias[e]))
                return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "router->bias[%d]: %g is not finite", (int)e,
                                  r->bias[e]);
    a->method = r->method;
    a->n_experts = r->n_experts;
    a->top_k = r->top_k;
    a->renormalize = r->renormalize == 1;
    a->scaling_factor = scale;
    a->bias = r->bias;
    a->n_groups = groups;
    a->topk_groups = groups > 1 ? r->topk_groups : 1;
    return MOAK_OK;
}

static moak_status route_locked(moak_context *ctx, const moak_router_desc *router, const float *logits,
                                int64_t n_tokens, int32_t *ids, float *weights)
{
    MOAK_CHECK_NULL(ctx, router, "router");
    moak_route_args a;
    memset(&a, 0, sizeof(a));
    moak_status st = check_router(ctx, router, &a);
    if (st != MOAK_OK)
        return st;
    MOAK_CHECK_NULL(ctx, logits, "logits");
    MOAK_CHECK_NULL(ctx, ids, "ids");
    MOAK_CHECK_NULL(ctx, weights, "weights");
    if (n_tokens < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "n_tokens: %lld must be >= 1", (long long)n_tokens);
    size_t logit_bytes, out_count;
    int64_t ld[2] = {n_tokens, a.n_experts}, od[2] = {n_tokens, a.top_k};
    if (!moak_count_bytes(sizeof(float), 2, ld, &logit_bytes) || !moak_count_bytes(sizeof(float), 2, od, &out_count))
        return moak_error(ctx, MOAK_ERR_SIZE_OVERFLOW, "n_tokens: %lld rows overflow size_t", (long long)n_tokens);
    if (moak_ranges_overlap(ids, out_count, weights, out_count) ||
        moak_ranges_overlap(ids, out_count, logits, logit_bytes) ||
        moak_ranges_overlap(weights, out_count, logits, logit_bytes))
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "ids/weights: overlap each other or logits");
    a.logits = logits;
    a.n_tokens = n_tokens;
    a.ids = ids;
    a.weights = weights;

    moak_op_shape shape;
    memset(&shape, 0, sizeof(shape));
    shape.op = MOAK_OP_MOE_ROUTE;
    shape.format = MOAK_FORMAT_F32;
    shape.m = n_tokens;
    shape.n_experts = a.n_experts;
    shape.top_k = a.top_k;
    shape.variant = a.method;
    shape.features = (a.n_groups > 1 ? MOAK_FEATURE_ROUTE_GROUPS : 0) | (a.bias ? MOAK_FEATURE_ROUTE_BIAS : 0);
    int32_t slot;
    if ((st = moak_dispatch(ctx, &shape, false, -1, &slot)) != MOAK_OK)
        return st;
    const moak_backend_slot *s = &ctx->slots[slot];
    return moak_op_finish(ctx, slot, s->ops->moe_route(s->state, &a));
}

MOAK_API moak_status moak_moe_route(moak_context *ctx, const moak_router_desc *router, const float *logits,
                                    int64_t n_tokens, int32_t *ids, float *weights)
{
    if (!ctx)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "ctx: must not be NULL");
    moak_context_lock(ctx);
    moak_status st = route_locked(ctx, router, logits, n_tokens, ids, weights);
    moak_context_unlock(ctx);
    return st;
}
