/*
 * The fused MoE expert FFN on the device (kernels in moe.cl):
 *
 *   1. moe_gate_up: h[p] = act(gate_e(x[token p]), up_e(x[token p])) for
 *      every pair p in the core's grouped order, tile by tile;
 *   2. moe_down: yp[p] = down_e(h[p]) (+ bias);
 *   3. moe_combine: y[t] = sum over slots of weight * yp[position of the pair].
 *
 * The host turns the core's grouping (offsets, pairs) into the tile list
 * (only active experts appear: the others are never read), the token of
 * each position and the position of each (token, slot).
 */
#include "opencl_internal.h"

#include <stdlib.h>

/* Host-side index arrays of one call. */
typedef struct moe_plan {
    cl_int *tiles;               /* [n_tiles][4]: expert, first position, count, 0 */
    int32_t n_tiles;
    cl_int *pair_token;          /* [n_pairs] */
    cl_int *pair_pos;            /* [n_pairs], indexed by token * top_k + slot */
} moe_plan;

static bool make_plan(const moak_moe_args *a, moe_plan *plan)
{
    const size_t n_pairs = (size_t)a->n_tokens * (size_t)a->top_k;
    size_t n_tiles = 0;
    for (int32_t i = 0; i < a->n_active_experts; i++) {
        const int32_t e = a->active_experts[i];
        const int64_t count = a->offsets[e + 1] - a->offsets[e];
        n_tiles += (size_t)((count + OCL_TILE_TOKENS - 1) / OCL_TILE_TOKENS);
    }
    plan->tiles = malloc((n_tiles ? n_tiles : 1) * 4 * sizeof(cl_int));
    plan->pair_token = malloc(n_pairs * sizeof(cl_int));
    plan->pair_pos = malloc(n_pairs * sizeof(cl_int));
    if (!plan->tiles || !plan->pair_token || !plan->pair_pos)
        return false;
    size_t t = 0;
    for (int32_t i = 0; i < a->n_active_experts; i++) {
        const int32_t e = a->active_experts[i];
        for (int64_t p = a->offsets[e]; p < a->offsets[e + 1]; p += OCL_TILE_TOKENS) {
            const int64_t left = a->offsets[e + 1] - p;
            plan->tiles[4 * t + 0] = e;
            plan->tiles[4 * t + 1] = (cl_int)p;
            plan->tiles[4 * t + 2] = (cl_int)(left < OCL_TILE_TOKENS ? left : OCL_TILE_TOKENS);
            plan->tiles[4 * t + 3] = 0;
            t++;
        }
    }
    plan->n_tiles = (int32_t)n_tiles;
    for (size_t p = 0; p < n_pairs; p++) {
        plan->pair_token[p] = a->pairs[p] / a->top_k;
        plan->pair_pos[a->pairs[p]] = (cl_int)p;
    }
    return true;
}

static void free_plan(moe_plan *plan)
{
    free(plan->tiles);
    free(plan->pair_token);
    free(plan->pair_pos);
}

static void weight_args(ocl_args *a, const ocl_state *st, const ocl_weight *w)
{
    ocl_arg_mem(a, w->quants);
    ocl_arg_mem(a, w->scales ? w->scales : st->dummy);
    ocl_arg_mem(a, w->bias ? w->bias : st->dummy);
    ocl_arg_int(a, w->bias != NULL);
}

static moak_status run_kernels(ocl_state *st, ocl_call *call, const moak_moe_args *a,
                               const moe_plan *plan, cl_mem *y)
{
    const ocl_weight *gate = a->gate->packed, *up = a->up->packed, *down = a->down->packed;
    const size_t n_pairs = (size_t)a->n_tokens * (size_t)a->top_k;
    const size_t lws = st->lws_rows;
    cl_mem x, tiles, pair_token, pair_pos, weights, h, yp;
    moak_status s = ocl_input(call, OCL_SCRATCH_IN0, a->x,
                              (size_t)a->n_tokens * (size_t)a->hidden * sizeof(float), &x);
    if (s == MOAK_OK)
        s = ocl_input(call, OCL_SCRATCH_IN1, plan->tiles,
                      (size_t)plan->n_tiles * 4 * sizeof(cl_int), &tiles);
    if (s == MOAK_OK)
        s = ocl_input(call, OCL_SCRATCH_IN2, plan->pair_token, n_pairs * sizeof(cl_int),
                      &pair_token);
    if (s == MOAK_OK)
        s = ocl_input(call, OCL_SCRATCH_IN3, plan->pair_pos, n_pairs * sizeof(cl_int), &pair_pos);
    if (s == MOAK_OK)
        s = ocl_input(call, OCL_SCRATCH_IN4, a->weights, n_pairs * sizeof(float), &weights);
    if (s == MOAK_OK)
        s = ocl_scratch(st, OCL_SCRATCH_TMP0, n_pairs * (size_t)a->inter * sizeof(float), &h);
    if (s == MOAK_OK)
        s = ocl_scratch(st, OCL_SCRATCH_TMP1, n_pairs * (size_t)a->hidden * sizeof(float), &yp);
    if (s == MOAK_OK)
        s = ocl_scratch(st, OCL_SCRATCH_OUT0,
                        (size_t)a->n_tokens * (size_t)a->hidden * sizeof(float), y);
    if (s != MOAK_OK)
        return s;

    ocl_args k;
    ocl_args_begin(&k, st->k.moe_gate_up[gate->format], "moe_gate_up");
    weight_args(&k, st, gate);
    weight_args(&k, st, up);
    ocl_arg_mem(&k, x);
    ocl_arg_mem(&k, tiles);
    ocl_arg_mem(&k, pair_token);
    ocl_arg_mem(&k, h);
    ocl_arg_int(&k, (int32_t)a->inter);
    ocl_arg_int(&k, (int32_t)a->hidden);
    ocl_arg_int(&k, gate->kp);
    ocl_arg_int(&k, (int32_t)a->activation);
    ocl_arg_float(&k, a->swiglu_alpha);
    ocl_arg_float(&k, a->swiglu_limit);
    ocl_arg_local(&k, OCL_TILE_TOKENS * lws * sizeof(float));
    s = ocl_run2d(st, &k, (size_t)a->inter * lws, (size_t)plan->n_tiles, lws);
    if (s != MOAK_OK)
        return s;

    ocl_args_begin(&k, st->k.moe_down[down->format], "moe_down");
    weight_args(&k, st, down);
    ocl_arg_mem(&k, h);
    ocl_arg_mem(&k, tiles);
    ocl_arg_mem(&k, yp);
    ocl_arg_int(&k, (int32_t)a->hidden);
    ocl_arg_int(&k, (int32_t)a->inter);
    ocl_arg_int(&k, down->kp);
    ocl_arg_local(&k, OCL_TILE_TOKENS * lws * sizeof(float));
    s = ocl_run2d(st, &k, (size_t)a->hidden * lws, (size_t)plan->n_tiles, lws);
    if (s != MOAK_OK)
        return s;

    ocl_args_begin(&k, st->k.moe_combine, "moe_combine");
    ocl_arg_mem(&k, yp);
    ocl_arg_mem(&k, pair_pos);
    ocl_arg_mem(&k, weights);
    ocl_arg_mem(&k, *y);
    ocl_arg_int(&k, (int32_t)a->hidden);
    ocl_arg_int(&k, a->top_k);
    return ocl_run2d(st, &k, ocl_round_up((size_t)a->hidden, st->lws_flat), (size_t)a->n_tokens,
                     st->lws_flat);
}

moak_status ocl_moe_ffn(void *state, const moak_moe_args *args)
{
    ocl_state *st = state;
    if (args->n_tokens == 0)
        return MOAK_OK;
    moak_status status = ocl_program_ensure(st);
    if (status != MOAK_OK)
        return status;
    moe_plan plan = {NULL, 0, NULL, NULL};
    if (!make_plan(args, &plan)) {
        free_plan(&plan);
        return ocl_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of host memory planning the MoE FFN");
    }
    ocl_call call;
    ocl_call_begin(&call, st);
    cl_mem y = NULL;
    status = run_kernels(st, &call, args, &plan, &y);
    if (status == MOAK_OK) {
        const size_t y_bytes = (size_t)args->n_tokens * (size_t)args->hidden * sizeof(float);
        void *dst = args->y;
        status = ocl_read_outputs(&call, 1, &y, &dst, &y_bytes);
    }
    /* the plan's arrays may be read by queued copies until the call ends */
    status = ocl_call_end(&call, status);
    free_plan(&plan);
    return status;
}
