/*
 * The "opencl" backend: every op on one OpenCL device, with weights and
 * the KV cache in device buffers (host_memory false).
 *
 * init picks the device (env->opencl_device, else the first GPU or
 * accelerator, else a CPU device), creates its context and queue, and
 * builds the kernels (from the disk cache when it can).  Building at init
 * rather than on the first op puts a compile error where the caller can
 * act on it (moak_context_create fails, naming it) and keeps supports()
 * a pure function of the shape, as the core's dispatch cache requires.
 * The core starts this backend only when a preference list names it.
 */
#include "opencl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool ocl_available(const moak_hw_info *hw, char *why, size_t why_len)
{
    (void)hw;
    if (ocl_device_count() > 0)
        return true;
    snprintf(why, why_len, "no OpenCL device (the ICD loader found no platform with a device)");
    return false;
}

static void ocl_fini(void *state)
{
    ocl_state *st = state;
    if (!st)
        return;
    ocl_program_release(st);
    for (int i = 0; i < OCL_SCRATCH_COUNT; i++)
        if (st->scratch[i])
            clReleaseMemObject(st->scratch[i]);
    if (st->dummy)
        clReleaseMemObject(st->dummy);
    if (st->queue)
        clReleaseCommandQueue(st->queue);
    if (st->context)
        clReleaseContext(st->context);
    free(st->host_staging);
    free(st);
}

static moak_status ocl_init(const moak_backend_env *env, void **state)
{
    ocl_state *st = calloc(1, sizeof(*st));
    if (!st)
        return env->error(env->log_ctx, MOAK_ERR_OUT_OF_MEMORY, "opencl: out of host memory");
    st->env = *env;
    char why[480];
    moak_status status = ocl_device_select(env->opencl_device, &st->dev, why, sizeof(why));
    if (status != MOAK_OK) {
        free(st);
        return env->error(env->log_ctx, status, "opencl: %s", why);
    }
    cl_int err;
    const cl_context_properties props[] = {CL_CONTEXT_PLATFORM,
                                           (cl_context_properties)st->dev.platform, 0};
    st->context = clCreateContext(props, 1, &st->dev.device, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        st->context = NULL;
        status = ocl_fail(st, err, "clCreateContext for '%s'", st->dev.name);
    }
    if (status == MOAK_OK) {
        st->queue = clCreateCommandQueue(st->context, st->dev.device, 0, &err);
        if (err != CL_SUCCESS) {
            st->queue = NULL;
            status = ocl_fail(st, err, "clCreateCommandQueue for '%s'", st->dev.name);
        }
    }
    if (status == MOAK_OK) {
        st->dummy = clCreateBuffer(st->context, CL_MEM_READ_WRITE, 16, NULL, &err);
        if (err != CL_SUCCESS) {
            st->dummy = NULL;
            status = ocl_fail(st, err, "clCreateBuffer(16 bytes)");
        }
    }
    if (status == MOAK_OK) {
        ocl_log(st, MOAK_LOG_INFO, "device %d:%d '%s' (%s, %s, driver %s%s), %s",
                st->dev.platform_index, st->dev.device_index, st->dev.name,
                ocl_device_type_name(st->dev.type), st->dev.version, st->dev.driver,
                st->dev.unified_memory ? ", host-unified memory" : "",
                env->opencl_device ? "chosen by the selector" : "the default choice");
        status = ocl_program_ensure(st);
    }
    if (status != MOAK_OK) {
        ocl_fini(st);
        return status;
    }
    *state = st;
    return MOAK_OK;
}

bool moak_opencl_is_accelerator(void *state)
{
    const ocl_state *st = state;
    return st && (st->dev.type & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR)) != 0;
}

/* Does a buffer of `bytes` fit one allocation?  Else say which. */
static bool fits(const ocl_state *st, double bytes, const char *what, char *why, size_t why_len)
{
    if (bytes <= (double)st->dev.max_alloc)
        return true;
    snprintf(why, why_len, "%s needs %.0f MiB in one buffer, the device allows %llu MiB", what,
             bytes / 1048576.0, (unsigned long long)(st->dev.max_alloc >> 20));
    return false;
}

static bool ocl_supports(void *state, const moak_op_shape *s, char *why, size_t why_len)
{
    const ocl_state *st = state;
    const double m = (double)s->m, f = sizeof(float);
    if (s->m > INT32_MAX || s->n > INT32_MAX || s->k > INT32_MAX) {
        snprintf(why, why_len, "a dimension is beyond 2^31");
        return false;
    }
    switch (s->op) {
    case MOAK_OP_MATMUL:
    case MOAK_OP_MOE_FFN: {
        size_t q_bytes, s_bytes;
        if (s->format >= MOAK_FORMAT_COUNT || s->format < 0) {
            snprintf(why, why_len, "unknown weight format");
            return false;
        }
        if (s->op == MOAK_OP_MOE_FFN && (s->features & MOAK_FEATURE_GATE_UP_FUSED)) {
            snprintf(why, why_len, "no fused gate/up weights yet");
            return false;
        }
        if (s->op == MOAK_OP_MATMUL) {
            if (!ocl_weight_bytes(s->format, s->n_experts > 0 ? s->n_experts : 1, s->n, s->k,
                                  &q_bytes, &s_bytes) ||
                !fits(st, (double)q_bytes, "the weight", why, why_len))
                return false;
            return fits(st, m * (double)s->k * f, "the activations", why, why_len) &&
                   fits(st, m * (double)s->n * f, "the output", why, why_len);
        }
        /* MoE: n = inter, k = hidden; gate/up are E x inter x hidden, down E x hidden x inter */
        if (!ocl_weight_bytes(s->format, s->n_experts, s->n, s->k, &q_bytes, &s_bytes) ||
            !fits(st, (double)q_bytes, "a gate/up weight", why, why_len) ||
            !ocl_weight_bytes(s->format, s->n_experts, s->k, s->n, &q_bytes, &s_bytes) ||
            !fits(st, (double)q_bytes, "the down weight", why, why_len))
            return false;
        const double pairs = m * (double)(s->top_k > 0 ? s->top_k : 1);
        return fits(st, pairs * (double)s->n * f, "the intermediate activations", why, why_len) &&
               fits(st, pairs * (double)s->k * f, "the per-expert outputs", why, why_len);
    }
    case MOAK_OP_MOE_ROUTE:
        return fits(st, m * (2.0 * (double)s->n_experts + 64.0) * f, "the routing scratch", why,
                    why_len);
    case MOAK_OP_ATTENTION: {
        if (s->format != MOAK_FORMAT_F32 && s->format != MOAK_FORMAT_F16 &&
            s->format != MOAK_FORMAT_BF16 && s->format != MOAK_FORMAT_Q8_0) {
            snprintf(why, why_len, "KV format %s is not F32, F16, BF16 or Q8_0",
                     moak_format_name(s->format) ? moak_format_name(s->format) : "?");
            return false;
        }
        /* the work-group size is known once the kernels exist; LWS_GPU (64) bounds it */
        const size_t local = ocl_attention_local_bytes(s->head_dim_k, s->head_dim_v, 64);
        if (local > st->dev.local_mem) {
            snprintf(why, why_len,
                     "head dims %d/%d need %zu bytes of local memory, the device has %llu",
                     (int)s->head_dim_k, (int)s->head_dim_v, local,
                     (unsigned long long)st->dev.local_mem);
            return false;
        }
        if ((s->features & MOAK_FEATURE_SPARSE) &&
            !fits(st, m * (double)s->top_k * (double)sizeof(cl_int), "the position lists", why, why_len))
            return false;
        return fits(st, m * (double)s->n_heads * (double)s->head_dim_k * f, "the queries", why,
                    why_len) &&
               fits(st, m * (double)s->n_heads * (double)s->head_dim_v * f, "the output", why,
                    why_len);
    }
    case MOAK_OP_INDEXER: {
        if (s->format != MOAK_FORMAT_F32 && s->format != MOAK_FORMAT_F16 &&
            s->format != MOAK_FORMAT_BF16 && s->format != MOAK_FORMAT_Q8_0) {
            snprintf(why, why_len, "KV format %s is not F32, F16, BF16 or Q8_0",
                     moak_format_name(s->format) ? moak_format_name(s->format) : "?");
            return false;
        }
        /* the scores buffer, [tokens][cached length], depends on lengths
         * not known here: a buffer beyond the device's limit fails in the op
         * as MOAK_ERR_BACKEND, with nothing written */
        return fits(st, m * (double)s->n_heads * (double)s->head_dim_k * f, "the queries", why,
                    why_len);
    }
    case MOAK_OP_RMSNORM:
        return fits(st, m * (double)s->n * f, "the rows", why, why_len);
    case MOAK_OP_ROPE:
        return fits(st, m * (double)s->n_heads * (double)s->n * f, "the rows", why, why_len);
    case MOAK_OP_GATED_DELTA:
        /* not written yet: the state is host memory, a host backend runs it */
        snprintf(why, why_len, "no gated delta-rule kernel yet (the host backends run it on the host state)");
        return false;
    default:
        snprintf(why, why_len, "unknown op");
        return false;
    }
}

const moak_backend_ops moak_backend_opencl = {
    .abi_version = MOAK_BACKEND_ABI_VERSION,
    .name = "opencl",
    .description = "OpenCL C 1.2 kernels on an OpenCL device (GPU, accelerator or CPU); "
                   "weights and KV cache in device buffers, programs cached on disk",
    .host_memory = false,
    .available = ocl_available,
    .init = ocl_init,
    .fini = ocl_fini,
    .supports = ocl_supports,
    .weight_pack = ocl_weight_pack,
    .weight_free = ocl_weight_free,
    .kv_create = ocl_kv_create,
    .kv_free = ocl_kv_free,
    .kv_write = ocl_kv_write,
    .matmul = ocl_matmul,
    .moe_ffn = ocl_moe_ffn,
    .moe_route = ocl_moe_route,
    .attention = ocl_attention,
    .indexer = ocl_indexer,
    .rmsnorm = ocl_rmsnorm,
    .rope = ocl_rope,
    .list_devices = moak_opencl_list_devices,
    .rank_before_ref = moak_opencl_selected_is_accelerator,
};
