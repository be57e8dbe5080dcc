/*
 * The onednn backend's table: availability, lifetime and the supports()
 * question.
 *
 * oneDNN 2.6 (Debian's libdnnl) runs moak's matmul and MoE FFN for the
 * formats it computes natively (F32, BF16, I8_ROW; see onednn_weights.c)
 * and, with MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION, for every other weight
 * format expanded to f32 at creation.  It has no fused attention, and
 * routing, RMSNorm and RoPE are elementwise work that the hand-written
 * backends do better: those are declined so the dispatcher falls through.
 * The KV cache, should another backend use it, is the core's host layout.
 */
#include <stdio.h>
#include <stdlib.h>

#include "onednn_internal.h"

static bool onednn_available(const moak_hw_info *hw, char *why, size_t why_len)
{
    (void)hw;
    /* The library is linked in; it is usable when it offers a CPU engine. */
    if (dnnl_engine_get_count(dnnl_cpu) < 1) {
        snprintf(why, why_len, "oneDNN reports no CPU engine");
        return false;
    }
    return true;
}

static void onednn_fini(void *state);

static moak_status onednn_init(const moak_backend_env *env, void **out)
{
    onednn_state *st = calloc(1, sizeof(*st));
    if (!st)
        return env->error ? env->error(env->log_ctx, MOAK_ERR_OUT_OF_MEMORY, "onednn: out of memory")
                          : MOAK_ERR_OUT_OF_MEMORY;
    st->env = *env;
    st->n_threads = env->n_threads > 0 ? env->n_threads : 1;
    st->rows = onednn_row_kernels_for(env->hw);
    moak_status status = MOAK_OK;
    onednn_apply_isa_cap(st);
    ONEDNN_TRY(st, status, fail, dnnl_engine_create(&st->engine, dnnl_cpu, 0), "dnnl_engine_create (cpu)");
    /* One stream per thread: the MoE FFN runs primitives from every thread
     * of its parallel region at once. */
    st->workers = calloc((size_t)st->n_threads, sizeof(onednn_worker));
    if (!st->workers) {
        status = onednn_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of memory for %d workers", st->n_threads);
        goto fail;
    }
    for (int t = 0; t < st->n_threads; t++)
        ONEDNN_TRY(st, status, fail,
                   dnnl_stream_create(&st->workers[t].stream, st->engine, dnnl_stream_default_flags),
                   "dnnl_stream_create");
    onednn_threads_warm_team(st);
    for (int kind = ONEDNN_KIND_F32; kind <= ONEDNN_KIND_S8; kind++)
        st->kind_native[kind] = onednn_probe_kind(st, (onednn_kind)kind, st->kind_lack[kind],
                                                  sizeof(st->kind_lack[kind]));
    if (!st->kind_native[ONEDNN_KIND_F32]) {
        status = onednn_error(st, MOAK_ERR_BACKEND, "%s", st->kind_lack[ONEDNN_KIND_F32]);
        goto fail;
    }
    const dnnl_version_t *v = dnnl_version();
    if (v)
        onednn_log(st, MOAK_LOG_INFO, "oneDNN %d.%d.%d, %d OpenMP threads, %s row kernels", v->major, v->minor,
                   v->patch, (int)env->n_threads, st->rows->name);
    *out = st;
    return MOAK_OK;
fail:
    onednn_fini(st);
    return status;
}

static void onednn_fini(void *state)
{
    onednn_state *st = state;
    if (!st)
        return;
    if (st->env.log && (st->cache_hits || st->cache_misses))
        onednn_log(st, MOAK_LOG_DEBUG, "primitive cache: %llu hits, %llu misses",
                   (unsigned long long)st->cache_hits, (unsigned long long)st->cache_misses);
    onednn_cache_clear(st);
    if (st->workers)
        for (int t = 0; t < st->n_threads; t++) {
            onednn_buffers_free(&st->workers[t]);
            if (st->workers[t].stream)
                dnnl_stream_destroy(st->workers[t].stream);
        }
    free(st->workers);
    if (st->engine)
        dnnl_engine_destroy(st->engine);
    free(st);
}

static bool say_no(char *why, size_t why_len, const char *reason)
{
    if (why && why_len)
        snprintf(why, why_len, "%s", reason);
    return false;
}

static bool onednn_supports(void *state, const moak_op_shape *shape, char *why, size_t why_len)
{
    const onednn_state *st = state;
    switch (shape->op) {
    case MOAK_OP_MATMUL:
    case MOAK_OP_MOE_FFN: {
        onednn_kind kind;
        onednn_route route;
        if (shape->op == MOAK_OP_MOE_FFN && (shape->features & MOAK_FEATURE_GATE_UP_FUSED))
            return say_no(why, why_len, "the onednn backend has no fused gate/up weights yet");
        if (onednn_format_route(st, shape->format, shape->k > 0 ? shape->k : 1, &kind, &route, why, why_len))
            return true;
        /* The reason is written; expansion makes every format computable. */
        return (st->env.context_flags & MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION) != 0;
    }
    case MOAK_OP_ATTENTION:
        return say_no(why, why_len, "oneDNN 2.6 has no fused attention");
    case MOAK_OP_INDEXER:
        return say_no(why, why_len, "oneDNN 2.6 has no top-k selection for the sparse-attention indexer");
    case MOAK_OP_MOE_ROUTE:
        return say_no(why, why_len, "the onednn backend does not route (left to the hand-written backends)");
    case MOAK_OP_RMSNORM:
    case MOAK_OP_ROPE:
        return say_no(why, why_len, "the onednn backend does not run rmsnorm/rope (left to the hand-written backends)");
    case MOAK_OP_GATED_DELTA:
        return say_no(why, why_len,
                      "oneDNN 2.6 has no gated delta-rule (linear attention) primitive; left to the hand-written backends");
    default:
        return say_no(why, why_len, "unknown op");
    }
}

const moak_backend_ops moak_backend_onednn = {
    .abi_version = MOAK_BACKEND_ABI_VERSION,
    .name = "onednn",
    .description = "oneDNN matmul primitives: f32, bf16 and int8 (I8_ROW) matmul and MoE FFN",
    .host_memory = true,
    .available = onednn_available,
    .init = onednn_init,
    .fini = onednn_fini,
    .supports = onednn_supports,
    .weight_pack = onednn_weight_pack,
    .weight_free = onednn_weight_free,
    .kv_create = NULL,
    .kv_free = NULL,
    .kv_write = NULL,
    .matmul = onednn_matmul,
    .moe_ffn = onednn_moe_ffn,
    .moe_route = NULL,
    .attention = NULL,
    .rmsnorm = NULL,
    .rope = NULL,
};
