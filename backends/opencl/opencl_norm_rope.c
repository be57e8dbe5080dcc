/*
 * RMSNorm and RoPE on the device (norm_rope.cl).  RoPE's cos/sin come from
 * the host, computed in double: a float angle at position 10^5 is already
 * off by ~10^-2 rad, far beyond the op's 1e-5 bound, and OpenCL 1.2 does
 * not promise doubles on the device.
 */
#include "opencl_internal.h"

#include <math.h>
#include <stdlib.h>

moak_status ocl_rmsnorm(void *state, const moak_rmsnorm_args *args)
{
    ocl_state *st = state;
    if (args->n_rows == 0)
        return MOAK_OK;
    moak_status status = ocl_program_ensure(st);
    if (status != MOAK_OK)
        return status;
    const size_t lws = st->lws_rows;
    const size_t bytes = (size_t)args->n_rows * (size_t)args->dim * sizeof(float);
    ocl_call call;
    ocl_call_begin(&call, st);
    cl_mem x, gamma = st->dummy, y;
    status = ocl_input(&call, OCL_SCRATCH_IN0, args->x, bytes, &x);
    if (status == MOAK_OK && args->gamma)
        status = ocl_input(&call, OCL_SCRATCH_IN1, args->gamma, (size_t)args->dim * sizeof(float),
                           &gamma);
    if (status == MOAK_OK)
        status = ocl_scratch(st, OCL_SCRATCH_OUT0, bytes, &y);
    if (status == MOAK_OK) {
        ocl_args a;
        ocl_args_begin(&a, st->k.rmsnorm, "rmsnorm");
        ocl_arg_mem(&a, x);
        ocl_arg_mem(&a, gamma);
        ocl_arg_int(&a, args->gamma != NULL);
        ocl_arg_mem(&a, y);
        ocl_arg_int(&a, (int32_t)args->dim);
        ocl_arg_float(&a, args->eps);
        ocl_arg_local(&a, lws * sizeof(float));
        status = ocl_run2d(st, &a, lws, (size_t)args->n_rows, lws);
    }
    if (status == MOAK_OK) {
        void *dst = args->y; /* may equal x: x was read by the device already */
        status = ocl_read_outputs(&call, 1, &y, &dst, &bytes);
    }
    return ocl_call_end(&call, status);
}

/* cos/sin of every (token, pair) in double, as the reference does, from
 * the core's scaled frequencies, times the attention factor. */
static float *rope_table(const moak_rope_args *args)
{
    const size_t half = (size_t)args->rotary_dim / 2;
    float *cs = malloc((size_t)args->n_tokens * (half ? half : 1) * 2 * sizeof(float));
    if (!cs)
        return NULL;
    for (int64_t t = 0; t < args->n_tokens; t++) {
        const double pos = (double)args->positions[t] * (double)args->position_scale;
        float *row = cs + (size_t)t * half * 2;
        for (size_t i = 0; i < half; i++) {
            const double angle = pos * args->inv_freq[i];
            row[2 * i] = (float)(cos(angle) * args->attention_factor);
            row[2 * i + 1] = (float)(sin(angle) * args->attention_factor);
        }
    }
    return cs;
}

moak_status ocl_rope(void *state, const moak_rope_args *args)
{
    ocl_state *st = state;
    if (args->n_tokens == 0 || args->n_heads == 0)
        return MOAK_OK;
    moak_status status = ocl_program_ensure(st);
    if (status != MOAK_OK)
        return status;
    float *table = rope_table(args);
    if (!table)
        return ocl_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of host memory for the RoPE angles");
    const size_t rows = (size_t)args->n_tokens * (size_t)args->n_heads;
    const size_t bytes = rows * (size_t)args->head_dim * sizeof(float);
    const size_t half = (size_t)args->rotary_dim / 2;
    ocl_call call;
    ocl_call_begin(&call, st);
    cl_mem x, cs, y;
    status = ocl_input(&call, OCL_SCRATCH_IN0, args->x, bytes, &x);
    if (status == MOAK_OK)
        status = ocl_input(&call, OCL_SCRATCH_IN1, table,
                           (size_t)args->n_tokens * half * 2 * sizeof(float), &cs);
    if (status == MOAK_OK)
        status = ocl_scratch(st, OCL_SCRATCH_OUT0, bytes, &y);
    if (status == MOAK_OK) {
        ocl_args a;
        ocl_args_begin(&a, st->k.rope, "rope");
        ocl_arg_mem(&a, x);
        ocl_arg_mem(&a, cs);
        ocl_arg_mem(&a, y);
        ocl_arg_int(&a, args->n_heads);
        ocl_arg_int(&a, args->head_dim);
        ocl_arg_int(&a, args->rotary_dim);
        ocl_arg_int(&a, args->layout == MOAK_ROPE_GPTJ ? 1 : 0);
        status = ocl_run2d(st, &a, ocl_round_up((size_t)args->head_dim, st->lws_flat), rows,
                           st->lws_flat);
    }
    if (status == MOAK_OK) {
        void *dst = args->y;
        status = ocl_read_outputs(&call, 1, &y, &dst, &bytes);
    }
    status = ocl_call_end(&call, status);
    free(table);
    return status;
}
