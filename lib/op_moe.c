/* moak_moe_ffn: validation, grouping of tokens by expert, dispatch. */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The first version of moak_moe_desc ended before `gate_up`. */
#define MOE_DESC_V1_SIZE offsetof(moak_moe_desc, gate_up)

/* One weight holding gate and up (desc->gate_up fused): w_up NULL, w_gate
 * 2*inter rows, w_down hidden x inter. */
static moak_status check_fused_weights(moak_context *ctx, const moak_weight *g, const moak_weight *u,
                                       const moak_weight *d)
{
    moak_status st;
    if (u)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "w_up: must be NULL when desc->gate_up is fused (w_gate holds both)");
    if ((st = moak_check_weight(ctx, g, "w_gate")) != MOAK_OK || (st = moak_check_weight(ctx, d, "w_down")) != MOAK_OK)
        return st;
    const moak_packed_weight *gv = &g->view, *dv = &d->view;
    if (gv->rows % 2 != 0)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH,
                          "w_gate: %lld rows, but a fused gate/up weight has 2 x inter (an even number)",
                          (long long)gv->rows);
    if (dv->format != gv->format || dv->n_experts != gv->n_experts)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH, "w_down: %s with %lld experts, w_gate %s with %lld",
                          moak_format_name(dv->format), (long long)dv->n_experts, moak_format_name(gv->format),
                          (long long)gv->n_experts);
    if (dv->rows != gv->cols || dv->cols != gv->rows / 2)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH,
                          "w_down: %lld x %lld, but must be hidden x inter = %lld x %lld (w_gate fused: 2*inter rows)",
                          (long long)dv->rows, (long long)dv->cols, (long long)gv->cols, (long long)gv->rows / 2);
    if (d->slot != g->slot)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH, "w_down: packed by %s, w_gate by %s", moak_weight_backend(d),
                          moak_weight_backend(g));
    return MOAK_OK;
}

static moak_status check_moe_weights(moak_context *ctx, const moak_weight *g, const moak_weight *u,
                                     const moak_weight *d)
{
    moak_status st;
    if ((st = moak_check_weight(ctx, g, "w_gate")) != MOAK_OK || (st = moak_check_weight(ctx, u, "w_up")) != MOAK_OK ||
        (st = moak_check_weight(ctx, d, "w_down")) != MOAK_OK)
        return st;
    const moak_packed_weight *gv = &g->view, *uv = &u->view, *dv = &d->view;
    if (uv->format != gv->format || dv->format != gv->format)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH, "w_up/w_down: formats %s/%s differ from w_gate's %s",
                          moak_format_name(uv->format), moak_format_name(dv->format), moak_format_name(gv->format));
    if (uv->n_experts != gv->n_experts || dv->n_experts != gv->n_experts)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH, "w_up/w_down: %lld/%lld experts, w_gate has %lld",
                          (long long)uv->n_experts, (long long)dv->n_experts, (long long)gv->n_experts);
    if (uv->rows != gv->rows || uv->cols != gv->cols)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH, "w_up: %lld x %lld, but w_gate is %lld x %lld",
                          (long long)uv->rows, (long long)uv->cols, (long long)gv->rows, (long long)gv->cols);
    if (dv->rows != gv->cols || dv->cols != gv->rows)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH,
                          "w_down: %lld x %lld, but must be hidden x inter = %lld x %lld", (long long)dv->rows,
                          (long long)dv->cols, (long long)gv->cols, (long long)gv->rows);
    if (u->slot != g->slot || d->slot != g->slot)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH, "w_up/w_down: packed by %s/%s, w_gate by %s",
                          moak_weight_backend(u), moak_weight_backend(d), moak_weight_backend(g));
    return MOAK_OK;
}

/* Counting sort of the (token, slot) pairs by expert, in token order. */
typedef struct moe_grouping {
    int64_t *offsets;
    int32_t *pairs;
    int32_t *active;
    int32_t n_active;
} moe_grouping;

static bool group_by_expert(int64_t n_experts, int64_t n_pairs, const int32_t *ids, moe_grouping *g)
{
    g->offsets = calloc((size_t)n_experts + 1, sizeof(int64_t));
    g->pairs = malloc((size_t)n_pairs * sizeof(int32_t));
    g->active = malloc((size_t)n_experts * sizeof(int32_t));
    int64_t *fill = malloc((size_t)n_experts * sizeof(int64_t));
    if (!g->offsets || !g->pairs || !g->active || !fill) {
        free(fill);
        return false;
    }
    for (int64_t p = 0; p < n_pairs; p++)
        g->offsets[ids[p] + 1]++;
    g->n_active = 0;
    for (int64_t e = 0; e < n_experts; e++) {
        if (g->offsets[e + 1] > 0)
            g->active[g->n_active++] = (int32_t)e;
        g->offsets[e + 1] += g->offsets[e];
        fill[e] = g->offsets[e];
    }
    for (int64_t p = 0; p < n_pairs; p++)
        g->pairs[fill[ids[p]]++] = (int32_t)p;
    free(fill);
    return true;
}

static void free_grouping(moe_grouping *g)
{
    free(g->offsets);
    free(g->pairs);
    free(g->active);
}

static moak_status moe_locked(moak_context *ctx, const moak_moe_desc *desc, const moak_weight *wg,
                              const moak_weight *wu, const moak_weight *wd, const float *x, int64_t n_tokens,
                              int32_t top_k, const int32_t *ids, const float *weights, float *y)
{
    MOAK_CHECK_NULL(ctx, desc, "desc");
    moak_status st = moak_check_struct_size(ctx, desc->struct_size, MOE_DESC_V1_SIZE, "desc");
    if (st != MOAK_OK)
        return st;
    const moak_gate_up_layout gate_up =
        desc->struct_size >= offsetof(moak_moe_desc, gate_up) + sizeof(desc->gate_up) ? desc->gate_up
                                                                                        : MOAK_GATE_UP_SEPARATE;
    if ((unsigned)gate_up > MOAK_GATE_UP_INTERLEAVED)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->gate_up: %d is not a moak_gate_up_layout",
                          (int)gate_up);
    const bool fused = gate_up != MOAK_GATE_UP_SEPARATE;
    if ((unsigned)desc->activation > MOAK_ACT_SWIGLU_OAI)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->activation: %d is not a moak_activation",
                          (int)desc->activation);
    float alpha = desc->swiglu_alpha == 0.0f ? 1.702f : desc->swiglu_alpha;
    float limit = desc->swiglu_limit == 0.0f ? 7.0f : desc->swiglu_limit;
    if (!moak_finite(alpha) || alpha <= 0.0f)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->swiglu_alpha: %g must be finite and > 0", alpha);
    if (!moak_finite(limit) || limit <= 0.0f)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->swiglu_limit: %g must be finite and > 0", limit);
    if ((st = fused ? check_fused_weights(ctx, wg, wu, wd) : check_moe_weights(ctx, wg, wu, wd)) != MOAK_OK)
        return st;
    if (fused)
        wu = wg; /* the backend reads both projections from the one weight */
    MOAK_CHECK_NULL(ctx, x, "x");
    MOAK_CHECK_NULL(ctx, ids, "ids");
    MOAK_CHECK_NULL(ctx, weights, "weights");
    MOAK_CHECK_NULL(ctx, y, "y");
    if (n_tokens < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "n_tokens: %lld must be >= 1", (long long)n_tokens);
    int64_t n_experts = wg->view.n_experts, hidden = wg->view.cols, inter = wg->view.rows / (fused ? 2 : 1);
    if (top_k < 1 || top_k > n_experts)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "top_k: %d must be in 1..%lld (the weights' experts)",
                          (int)top_k, (long long)n_experts);
    size_t act_bytes, pair_count;
    int64_t ad[2] = {n_tokens, hidden}, pd[2] = {n_tokens, top_k};
    if (!moak_count_bytes(sizeof(float), 2, ad, &act_bytes) || !moak_count_bytes(1, 2, pd, &pair_count) ||
        pair_count > INT32_MAX)
        return moak_error(ctx, MOAK_ERR_SIZE_OVERFLOW, "n_tokens: %lld tokens overflow the buffers' sizes",
                          (long long)n_tokens);
    if (moak_ranges_overlap(x, act_bytes, y, act_bytes))
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "y: overlaps x (moe_ffn is not in place)");
    for (size_t p = 0; p < pair_count; p++)
        if (ids[p] < 0 || ids[p] >= n_experts)
            return moak_error(ctx, MOAK_ERR_OUT_OF_RANGE, "ids[%zu]: expert %d is outside 0..%lld", p, (int)ids[p],
                              (long long)n_experts - 1);
    for (size_t p = 0; p < pair_count; p++)
        if (!moak_finite(weights[p]))
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "weights[%zu]: %g is not finite", p, weights[p]);

    moak_op_shape shape;
    memset(&shape, 0, sizeof(shape));
    shape.op = MOAK_OP_MOE_FFN;
    shape.format = wg->view.format;
    shape.m = n_tokens;
    shape.n = inter;
    shape.k = hidden;
    shape.n_experts = n_experts;
    shape.top_k = top_k;
    shape.variant = desc->activation;
    shape.features = (wg->view.bias || wu->view.bias || wd->view.bias) ? MOAK_FEATURE_BIAS : 0;
    if (fused)
        shape.features |= MOAK_FEATURE_GATE_UP_FUSED;
    int32_t slot;
    if ((st = moak_dispatch(ctx, &shape, false, wg->slot, &slot)) != MOAK_OK)
        return st;

    moe_grouping g;
    memset(&g, 0, sizeof(g));
    if (!group_by_expert(n_experts, (int64_t)pair_count, ids, &g)) {
        free_grouping(&g);
        return moak_error(ctx, MOAK_ERR_OUT_OF_MEMORY, "n_tokens: out of memory grouping %zu pairs", pair_count);
    }
    moak_moe_args args = {
        .activation = desc->activation, .swiglu_alpha = alpha, .swiglu_limit = limit,
        .gate = &wg->view, .up = &wu->view, .down = &wd->view,
        .x = x, .n_tokens = n_tokens, .hidden = hidden, .inter = inter, .top_k = top_k,
        .ids = ids, .weights = weights, .offsets = g.offsets, .pairs = g.pairs,
        .n_active_experts = g.n_active, .active_experts = g.active, .y = y, .gate_up = gate_up,
    };
    const moak_backend_slot *s = &ctx->slots[slot];
    st = moak_op_finish(ctx, slot, s->ops->moe_ffn(s->state, &args));
    free_grouping(&g);
    return st;
}

MOAK_API moak_status moak_moe_ffn(moak_context *ctx, const moak_moe_desc *desc, const moak_weight *w_gate,
                                  const moak_weight *w_up, const moak_weight *w_down, const float *x,
                                  int64_t n_tokens, int32_t top_k, const int32_t *ids, const float *weights,
                                  float *y)
{
    if (!ctx)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "ctx: must not be NULL");
    moak_context_lock(ctx);
    moak_status st = moe_locked(ctx, desc, w_gate, w_up, w_down, x, n_tokens, top_k, ids, weights, y);
    moak_context_unlock(ctx);
    return st;
}
