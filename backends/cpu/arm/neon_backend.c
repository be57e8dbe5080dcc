/*
 * The neon backend's table: availability from the probe's ISA bits, the
 * per-context state with its kernel level, the supports() question, and
 * scratch memory.
 *
 * Compiled with the library's ordinary flags (no dotprod or i8mm), so that a
 * core without those extensions only ever runs code it has.
 */
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200112L
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200112L
#endif
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neon_backend.h"
#include "neon_kernels.h"

static bool neon_available(const moak_hw_info *hw, char *why, size_t why_len)
{
    if (hw->isa & MOAK_ISA_NEON)
        return true;
    if (why && why_len)
        snprintf(why, why_len, "neon needs Advanced SIMD, which this CPU%s does not offer",
                 hw->isa_cap ? " (under MOAK_ISA_MAX)" : "");
    return false;
}

/* The best level the (capped) ISA bits allow.  i8mm cores all have
 * dotprod (both are in armv8.6-a), and the i8mm level uses sdot as well. */
static neon_level level_of(uint64_t isa)
{
    if ((isa & MOAK_ISA_I8MM) && (isa & MOAK_ISA_DOTPROD))
        return NEON_LEVEL_I8MM;
    if (isa & MOAK_ISA_DOTPROD)
        return NEON_LEVEL_DOTPROD;
    return NEON_LEVEL_BASE;
}

static moak_status neon_init(const moak_backend_env *env, void **state)
{
    neon_state *st = calloc(1, sizeof(*st));
    if (!st)
        return env->error(env->log_ctx, MOAK_ERR_OUT_OF_MEMORY, "neon: out of memory");
    size_t bytes = env->struct_size < sizeof(st->env) ? env->struct_size : sizeof(st->env);
    memcpy(&st->env, env, bytes);
    st->n_threads = env->n_threads > 0 ? env->n_threads : 1;
    st->level = level_of(env->hw->isa);
    switch (st->level) {
    case NEON_LEVEL_I8MM:
        st->kernels = &neon_kernels_i8mm;
        break;
    case NEON_LEVEL_DOTPROD:
        st->kernels = &neon_kernels_dotprod;
        break;
    default:
        st->kernels = &neon_kernels_base;
        break;
    }
    st->scratch = calloc((size_t)st->n_threads, sizeof(*st->scratch));
    st->scratch_bytes = calloc((size_t)st->n_threads, sizeof(*st->scratch_bytes));
    if (!st->scratch || !st->scratch_bytes) {
        free(st->scratch);
        free(st->scratch_bytes);
        free(st);
        return env->error(env->log_ctx, MOAK_ERR_OUT_OF_MEMORY, "neon: out of memory");
    }
    if (env->log)
        env->log(env->log_ctx, MOAK_LOG_DEBUG, "neon: %s kernels", st->kernels->name);
    *state = st;
    return MOAK_OK;
}

static void neon_fini(void *state)
{
    neon_state *st = state;
    if (!st)
        return;
    for (int32_t i = 0; i < st->n_threads; i++)
        free(st->scratch[i]);
    for (int i = 0; i < NEON_BUFFER_COUNT; i++)
        free(st->buffer[i]);
    free(st->scratch);
    free(st->scratch_bytes);
    free(st);
}

moak_status neon_error(const neon_state *st, moak_status status, const char *fmt, ...)
{
    if (!st->env.error)
        return status;
    char message[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    return st->env.error(st->env.log_ctx, status, "neon: %s", message);
}

/* Grow *buf to at least `bytes` (64-byte aligned).  Grows by half again so a
 * slowly growing shape does not reallocate on every call. */
static bool grow(void **buf, size_t *have, size_t bytes)
{
    if (*buf && bytes <= *have)
        return true;
    size_t want = bytes + bytes / 2;
    if (want < bytes)
        want = bytes;
    if (want > SIZE_MAX - 63)
        return false;
    want = (want + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, want ? want : 64) != 0)
        return false;
    free(*buf);
    *buf = p;
    *have = want;
    return true;
}

moak_status neon_reserve_scratch(neon_state *st, size_t bytes, const char *what)
{
    for (int32_t i = 0; i < st->n_threads; i++)
        if (!grow(&st->scratch[i], &st->scratch_bytes[i], bytes))
            return neon_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of memory for %s (%zu bytes per thread)",
                              what, bytes);
    return MOAK_OK;
}

void *neon_buffer(neon_state *st, int index, size_t bytes, const char *what)
{
    if (!grow(&st->buffer[index], &st->buffer_bytes[index], bytes)) {
        neon_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of memory for %s (%zu bytes)", what, bytes);
        return NULL;
    }
    return st->buffer[index];
}

void neon_parallel_for(const neon_state *st, int64_t n_tasks, moak_task_fn fn, void *arg)
{
    if (n_tasks <= 0)
        return;
    if (n_tasks == 1 || !st->env.parallel_for) {
        for (int64_t t = 0; t < n_tasks; t++)
            fn(arg, t, 0);
        return;
    }
    st->env.parallel_for(st->env.pool, n_tasks, fn, arg);
}

static bool decline(char *why, size_t why_len, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static bool decline(char *why, size_t why_len, const char *fmt, ...)
{
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return false;
}

static bool neon_supports(void *state, const moak_op_shape *shape, char *why, size_t why_len)
{
    const neon_state *st = state;
    switch (shape->op) {
    case MOAK_OP_MATMUL:
    case MOAK_OP_MOE_FFN:
        if ((int)shape->format < 0 || shape->format >= MOAK_FORMAT_COUNT ||
            !st->kernels->tile[shape->format])
            return decline(why, why_len, "neon: no %s matmul kernel",
                           moak_format_name(shape->format) ? moak_format_name(shape->format)
                                                           : "(unknown format)");
        if (shape->op == MOAK_OP_MOE_FFN &&
            (shape->variant < MOAK_ACT_SILU_GLU || shape->variant > MOAK_ACT_SWIGLU_OAI))
            return decline(why, why_len, "neon: unknown MoE activation %d", (int)shape->variant);
        if (shape->features & MOAK_FEATURE_GATE_UP_FUSED)
            return decline(why, why_len, "neon: no fused gate/up weights yet");
        return true;
    case MOAK_OP_ATTENTION:
        /* Sparse attention and the indexer wait for the one CPU attention
         * body (issue 11): until it has the position gather, ref runs them. */
        if (shape->features & MOAK_FEATURE_SPARSE)
            return decline(why, why_len, "neon: sparse attention (a position list) is not in the kernels yet");
        if (shape->format != MOAK_FORMAT_F32 && shape->format != MOAK_FORMAT_F16 &&
            shape->format != MOAK_FORMAT_BF16 && shape->format != MOAK_FORMAT_Q8_0)
            return decline(why, why_len, "neon: no attention over %s KV",
                           moak_format_name(shape->format) ? moak_format_name(shape->format)
                                                           : "(unknown format)");
        return true;
    case MOAK_OP_INDEXER:
        return decline(why, why_len, "neon: no indexer kernel yet (the sparse-attention indexer runs on ref)");
    case MOAK_OP_MOE_ROUTE:
        if (shape->variant < MOAK_ROUTE_SOFTMAX_TOPK || shape->variant > MOAK_ROUTE_SQRT_SOFTPLUS_TOPK)
            return decline(why, why_len, "neon: unknown routing method %d", (int)shape->variant);
        return true;
    case MOAK_OP_RMSNORM:
        return true;
    case MOAK_OP_GATED_DELTA:
        if (shape->variant != MOAK_GATE_PER_HEAD && shape->variant != MOAK_GATE_PER_KEY)
            return decline(why, why_len, "neon: unknown gate kind %d", (int)shape->variant);
        return true;
    case MOAK_OP_ROPE:
        if (shape->variant != MOAK_ROPE_NEOX && shape->variant != MOAK_ROPE_GPTJ)
            return decline(why, why_len, "neon: unknown RoPE layout %d", (int)shape->variant);
        return true;
    default:
        return decline(why, why_len, "neon: unknown op %d", (int)shape->op);
    }
}

const moak_backend_ops moak_backend_neon = {
    .abi_version = MOAK_BACKEND_ABI_VERSION,
    .name = "neon",
    .description = "hand-written Advanced SIMD kernels (sdot with dotprod, smmla with i8mm)",
    .host_memory = true,
    .available = neon_available,
    .init = neon_init,
    .fini = neon_fini,
    .supports = neon_supports,
    .weight_pack = neon_weight_pack,
    .weight_free = neon_weight_free,
    .kv_create = NULL,
    .kv_free = NULL,
    .kv_write = NULL,
    .matmul = neon_matmul,
    .moe_ffn = neon_moe_ffn,
    .moe_route = neon_moe_route,
    .attention = neon_attention,
    .rmsnorm = neon_rmsnorm,
    .rope = neon_rope,
    .gated_delta = neon_gated_delta,
};
