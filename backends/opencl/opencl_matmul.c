/*
 * moak_matmul on the device: one launch of matmul_<format> (matmul_q.cl),
 * one work-group per output row and tile of MOAK_TILE_TOKENS tokens.
 */
#include "opencl_internal.h"

moak_status ocl_matmul(void *state, const moak_matmul_args *args)
{
    ocl_state *st = state;
    const ocl_weight *w = args->w->packed;
    if (args->m == 0)
        return MOAK_OK;
    moak_status status = ocl_program_ensure(st);
    if (status != MOAK_OK)
        return status;

    const size_t lws = st->lws_rows;
    const size_t x_bytes = (size_t)args->m * (size_t)w->cols * sizeof(float);
    const size_t y_bytes = (size_t)args->m * (size_t)w->rows * sizeof(float);
    ocl_call call;
    ocl_call_begin(&call, st);
    cl_mem x = NULL, y = NULL;
    status = ocl_input(&call, OCL_SCRATCH_IN0, args->x, x_bytes, &x);
    if (status == MOAK_OK)
        status = ocl_scratch(st, OCL_SCRATCH_OUT0, y_bytes, &y);
    if (status == MOAK_OK) {
        ocl_args a;
        ocl_args_begin(&a, st->k.matmul[w->format], "matmul");
        ocl_arg_mem(&a, w->quants);
        ocl_arg_mem(&a, w->scales ? w->scales : st->dummy);
        ocl_arg_mem(&a, w->bias ? w->bias : st->dummy);
        ocl_arg_int(&a, w->bias != NULL);
        ocl_arg_mem(&a, x);
        ocl_arg_mem(&a, y);
        ocl_arg_int(&a, (int32_t)args->m);
        ocl_arg_int(&a, (int32_t)w->rows);
        ocl_arg_int(&a, (int32_t)w->cols);
        ocl_arg_int(&a, w->kp);
        ocl_arg_ulong(&a, (uint64_t)args->expert * (uint64_t)w->rows);
        ocl_arg_local(&a, OCL_TILE_TOKENS * lws * sizeof(float));
        status = ocl_run2d(st, &a, (size_t)w->rows * lws,
                           ocl_round_up((size_t)args->m, OCL_TILE_TOKENS) / OCL_TILE_TOKENS, lws);
    }
    if (status == MOAK_OK) {
        void *dst = args->y;
        status = ocl_read_outputs(&call, 1, &y, &dst, &y_bytes);
    }
    return ocl_call_end(&call, status);
}
