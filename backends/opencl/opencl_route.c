/* MoE routing on the device: moe_route (route.cl), one work-item per token. */
#include "opencl_internal.h"

moak_status ocl_moe_route(void *state, const moak_route_args *args)
{
    ocl_state *st = state;
    if (args->n_tokens == 0)
        return MOAK_OK;
    moak_status status = ocl_program_ensure(st);
    if (status != MOAK_OK)
        return status;

    const size_t n_tokens = (size_t)args->n_tokens;
    const size_t n_experts = (size_t)args->n_experts;
    const size_t groups = args->n_groups > 1 ? (size_t)args->n_groups : 1;
    const size_t out_bytes[2] = {n_tokens * (size_t)args->top_k * sizeof(cl_int),
                                 n_tokens * (size_t)args->top_k * sizeof(float)};
    ocl_call call;
    ocl_call_begin(&call, st);
    cl_mem logits, bias = st->dummy, scratch, marks, outs[2];
    status = ocl_input(&call, OCL_SCRATCH_IN0, args->logits, n_tokens * n_experts * sizeof(float),
                       &logits);
    if (status == MOAK_OK && args->bias)
        status = ocl_input(&call, OCL_SCRATCH_IN1, args->bias, n_experts * sizeof(float), &bias);
    if (status == MOAK_OK)
        status = ocl_scratch(st, OCL_SCRATCH_TMP0,
                             n_tokens * (2 * n_experts + groups) * sizeof(float), &scratch);
    if (status == MOAK_OK)
        status = ocl_scratch(st, OCL_SCRATCH_TMP1, n_tokens * (n_experts + groups), &marks);
    if (status == MOAK_OK)
        status = ocl_scratch(st, OCL_SCRATCH_OUT0, out_bytes[0], &outs[0]);
    if (status == MOAK_OK)
        status = ocl_scratch(st, OCL_SCRATCH_OUT1, out_bytes[1], &outs[1]);
    if (status == MOAK_OK) {
        ocl_args a;
        ocl_args_begin(&a, st->k.moe_route, "moe_route");
        ocl_arg_mem(&a, logits);
        ocl_arg_mem(&a, bias);
        ocl_arg_int(&a, args->bias != NULL);
        ocl_arg_mem(&a, scratch);
        ocl_arg_mem(&a, marks);
        ocl_arg_mem(&a, outs[0]);
        ocl_arg_mem(&a, outs[1]);
        ocl_arg_int(&a, (int32_t)args->n_tokens);
        ocl_arg_int(&a, args->n_experts);
        ocl_arg_int(&a, args->top_k);
        ocl_arg_int(&a, (int32_t)args->method);
        ocl_arg_int(&a, args->renormalize ? 1 : 0);
        ocl_arg_float(&a, args->scaling_factor);
        ocl_arg_int(&a, args->n_groups);
        ocl_arg_int(&a, args->topk_groups);
        status = ocl_run2d(st, &a, ocl_round_up(n_tokens, st->lws_flat), 1, st->lws_flat);
    }
    if (status == MOAK_OK) {
        void *const dsts[2] = {args->ids, args->weights};
        status = ocl_read_outputs(&call, 2, outs, dsts, out_bytes);
    }
    return ocl_call_end(&call, status);
}
