/* Choosing a backend for each op instance.
 *
 * The first backend in the context's preference order whose supports()
 * accepts the instance runs it.  The answer is cached per shape class (the
 * full op_shape with the token count reduced to 1 / small / large), because
 * supports() may be called on every token of a decode loop.  With verbose
 * on, every fresh choice is logged with each refusal's reason. */
#include "config.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const char *const op_names[MOAK_OP_COUNT] = {
    "matmul", "moe_ffn", "moe_route", "attention", "rmsnorm", "rope", "indexer", "gated_delta",
};

moak_status moak_parse_backend_list(moak_context *ctx, const char *list, int32_t *indices, int32_t *count)
{
    char name[32];
    int32_t n = 0;
    bool closed = false; /* a trailing '!' means: do not append ref */
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t len = 0;
        while (p[len] && p[len] != ',' && p[len] != ' ' && p[len] != '!')
            len++;
        if (len == 0 && *p == '!') {
            closed = true;
            p++;
            continue;
        }
        if (len >= sizeof(name))
            return moak_error(ctx, MOAK_ERR_UNKNOWN_BACKEND, "'%.*s...' is not a backend name", 16, p);
        memcpy(name, p, len);
        name[len] = '\0';
        for (size_t i = 0; i < len; i++)
            name[i] = (char)tolower((unsigned char)name[i]);
        int32_t index = moak_registry_find(name);
        if (index < 0)
            return moak_error(ctx, MOAK_ERR_UNKNOWN_BACKEND,
                              "'%s' is not a backend (known: avx512, avx2, neon, onednn, opencl, ref)", name);
        bool duplicate = false;
        for (int32_t i = 0; i < n; i++)
            duplicate |= indices[i] == index;
        if (duplicate)
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "'%s' is listed twice", name);
        if (n == MOAK_MAX_BACKENDS)
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "more than %d backends listed", MOAK_MAX_BACKENDS);
        indices[n++] = index;
        p += len;
    }
    if (n == 0)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "the list names no backend");
    int32_t ref = moak_registry_find("ref");
    bool has_ref = false;
    for (int32_t i = 0; i < n; i++)
        has_ref |= indices[i] == ref;
    if (!has_ref && !closed && n < MOAK_MAX_BACKENDS)
        indices[n++] = ref;
    *count = n;
    return MOAK_OK;
}

int32_t moak_slot_of(const moak_context *ctx, const moak_backend_ops *ops)
{
    for (int32_t i = 0; i < ctx->n_slots; i++)
        if (ctx->slots[i].ops == ops)
            return i;
    return -1;
}

/* m = 0 (any), 1 (decode), <= 16 (small batch), larger (prefill). */
static int64_t token_class(int64_t m)
{
    if (m <= 1)
        return m;
    return m <= 16 ? 16 : 17;
}

static void describe(const moak_op_shape *s, char *buf, size_t len)
{
    switch (s->op) {
    case MOAK_OP_MATMUL:
        snprintf(buf, len, "matmul %s m=%lld n=%lld k=%lld experts=%lld%s", moak_format_name(s->format),
                 (long long)s->m, (long long)s->n, (long long)s->k, (long long)s->n_experts,
                 (s->features & MOAK_FEATURE_BIAS) ? " bias" : "");
        break;
    case MOAK_OP_MOE_FFN:
        snprintf(buf, len, "moe_ffn %s tokens=%lld inter=%lld hidden=%lld experts=%lld top_k=%d act=%d",
                 moak_format_name(s->format), (long long)s->m, (long long)s->n, (long long)s->k,
                 (long long)s->n_experts, (int)s->top_k, (int)s->variant);
        break;
    case MOAK_OP_ATTENTION:
        snprintf(buf, len, "attention kv=%s tokens=%lld heads=%d/%d dk=%d dv=%d features=0x%x",
                 moak_format_name(s->format), (long long)s->m, (int)s->n_heads, (int)s->n_kv_heads,
                 (int)s->head_dim_k, (int)s->head_dim_v, s->features);
        break;
    case MOAK_OP_GATED_DELTA:
        snprintf(buf, len, "gated_delta tokens=%lld heads=%d/%d dk=%d dv=%d conv=%lld gate=%s", (long long)s->m,
                 (int)s->n_kv_heads, (int)s->n_heads, (int)s->head_dim_k, (int)s->head_dim_v, (long long)s->n,
                 s->variant == MOAK_GATE_PER_KEY ? "per-key" : "per-head");
        break;
    default:
        snprintf(buf, len, "%s rows=%lld n=%lld variant=%d experts=%lld top_k=%d", op_names[s->op],
                 (long long)s->m, (long long)s->n, (int)s->variant, (long long)s->n_experts, (int)s->top_k);
        break;
    }
}

moak_status moak_dispatch(moak_context *ctx, const moak_op_shape *shape, bool host_only, int32_t only_slot,
                          int32_t *slot_out)
{
    moak_op_shape key;
    /* Copy the named fields only: tail padding must be zero for memcmp. */
    memset(&key, 0, sizeof(key));
    memcpy(&key, shape, offsetof(moak_op_shape, features) + sizeof(shape->features));
    key.m = token_class(shape->m);
    /* The cache holds free choices only; a forced slot is asked each time
     * (it is the owner of a weight or cache, and its answer is cheap). */
    unsigned hash = 2166136261u;
    if (only_slot < 0) {
        const unsigned char *b = (const unsigned char *)&key;
        for (size_t i = 0; i < sizeof(key); i++)
            hash = (hash ^ b[i]) * 16777619u;
        hash ^= host_only ? 0x9e37u : 0u;
        moak_dispatch_cache_entry *e = &ctx->cache[hash % MOAK_DISPATCH_CACHE_SIZE];
        if (e->used && e->host_only == host_only && memcmp(&e->key, &key, sizeof(key)) == 0) {
            *slot_out = e->slot;
            return MOAK_OK;
        }
    }

    char what[200];
    describe(shape, what, sizeof(what));
    char refusals[MOAK_ERROR_MESSAGE_MAX - 200];
    size_t used = 0;
    refusals[0] = '\0';
    int32_t chosen = -1;
    for (int32_t i = 0; i < ctx->n_slots && chosen < 0; i++) {
        const moak_backend_slot *s = &ctx->slots[i];
        char why[160] = "";
        bool ok;
        if (only_slot >= 0 && i != only_slot)
            continue;
        if (host_only && !s->ops->host_memory) {
            snprintf(why, sizeof(why), "keeps its data on a device, the operand is in host memory");
            ok = false;
        } else {
            ok = s->ops->supports && s->ops->supports(s->state, shape, why, sizeof(why));
            if (!ok && !why[0])
                snprintf(why, sizeof(why), "declined without a reason");
        }
        if (ok) {
            chosen = i;
            break;
        }
        if (ctx->verbose)
            moak_log(ctx, MOAK_LOG_INFO, "%s: %s refused: %s", what, s->ops->name, why);
        if (used < sizeof(refusals))
            used += (size_t)snprintf(refusals + used, sizeof(refusals) - used, "%s%s: %s", used ? "; " : "",
                                     s->ops->name, why);
    }
    if (chosen < 0)
        return moak_error(ctx, MOAK_ERR_UNSUPPORTED, "no backend runs %s (%s)", what, refusals);
    if (ctx->verbose)
        moak_log(ctx, MOAK_LOG_INFO, "%s: chose %s", what, ctx->slots[chosen].ops->name);
    if (only_slot < 0) {
        moak_dispatch_cache_entry *e = &ctx->cache[hash % MOAK_DISPATCH_CACHE_SIZE];
        e->used = true;
        e->host_only = host_only;
        e->key = key;
        e->slot = chosen;
    }
    *slot_out = chosen;
    return MOAK_OK;
}

const char *moak_op_name(moak_op op) { return op < MOAK_OP_COUNT ? op_names[op] : "unknown"; }
