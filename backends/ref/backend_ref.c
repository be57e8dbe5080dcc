/*
 * The reference backend's table: lifetime, the supports() question, weight
 * packing, and the helpers its op files share.
 *
 * ref runs every op on every format and feature, so supports() always says
 * yes: the core appends ref to every preference list as the fallback.  It
 * keeps weights in their canonical byte layout (moak.h) and uses the core's
 * standard host KV layout, so it needs no KV hooks of its own.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref_internal.h"

/* Weight rows start on a cache line, as the header promises other backends. */
#define REF_WEIGHT_ALIGN 64

void *ref_alloc_array(size_t count, size_t elem_size)
{
    if (elem_size != 0 && count > SIZE_MAX / elem_size)
        return NULL;
    size_t bytes = count * elem_size;
    return malloc(bytes ? bytes : 1);
}

void *ref_alloc_per_thread(const ref_state *st, size_t count, size_t elem_size)
{
    size_t threads = (size_t)st->n_threads;
    if (count > SIZE_MAX / threads)
        return NULL;
    return ref_alloc_array(count * threads, elem_size);
}

moak_status ref_error(const ref_state *st, moak_status status, const char *fmt, ...)
{
    if (!st->env.error)
        return status;
    char message[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    return st->env.error(st->env.log_ctx, status, "ref: %s", message);
}

moak_status ref_out_of_memory(const ref_state *st, const char *what)
{
    return ref_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of memory for %s", what);
}

void ref_parallel_for(const ref_state *st, int64_t n_tasks, moak_task_fn fn, void *arg)
{
    if (n_tasks <= 0)
        return;
    if (st->env.parallel_for) {
        st->env.parallel_for(st->env.pool, n_tasks, fn, arg);
        return;
    }
    /* No pool (a core that gives none): run the tasks here, in order. */
    for (int64_t task = 0; task < n_tasks; task++)
        fn(arg, task, 0);
}

double ref_dot(const float *a, const float *b, int64_t n)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += (double)a[i] * (double)b[i];
        s1 += (double)a[i + 1] * (double)b[i + 1];
        s2 += (double)a[i + 2] * (double)b[i + 2];
        s3 += (double)a[i + 3] * (double)b[i + 3];
    }
    /* The tail continues lanes 0, 1, 2 in index order. */
    if (i < n)
        s0 += (double)a[i] * (double)b[i];
    if (i + 1 < n)
        s1 += (double)a[i + 1] * (double)b[i + 1];
    if (i + 2 < n)
        s2 += (double)a[i + 2] * (double)b[i + 2];
    return (s0 + s1) + (s2 + s3);
}

/* ---- lifetime ---------------------------------------------------------------- */

static moak_status ref_init(const moak_backend_env *env, void **state)
{
    ref_state *st = calloc(1, sizeof(*st));
    if (!st) {
        if (env->error)
            return env->error(env->log_ctx, MOAK_ERR_OUT_OF_MEMORY,
                              "ref: out of memory for the backend state");
        return MOAK_ERR_OUT_OF_MEMORY;
    }
    /* Copy what the caller's version of the struct holds; fields it lacks stay 0. */
    size_t bytes = env->struct_size < sizeof(*env) ? env->struct_size : sizeof(*env);
    memcpy(&st->env, env, bytes);
    st->n_threads = st->env.n_threads > 0 ? st->env.n_threads : 1;
    *state = st;
    return MOAK_OK;
}

static void ref_fini(void *state)
{
    free(state);
}

static bool ref_supports(void *state, const moak_op_shape *shape, char *why,
                         size_t why_len)
{
    (void)state;
    (void)shape;
    (void)why;
    (void)why_len;
    return true; /* every op, format and feature: ref is everyone's fallback */
}

/* ---- weights ------------------------------------------------------------------- */

static moak_status ref_weight_pack(void *state, const moak_weight_desc *desc, void **packed)
{
    ref_state *st = state;
    size_t row_bytes = moak_format_local_row_bytes(desc->format, desc->cols);
    size_t n_rows = (size_t)desc->n_experts;
    size_t bytes = 0;
    bool fits = row_bytes != 0 && desc->n_experts > 0 && desc->rows > 0 &&
                (uint64_t)desc->rows <= SIZE_MAX / n_rows;
    if (fits) {
        n_rows *= (size_t)desc->rows;
        fits = n_rows <= (SIZE_MAX - REF_WEIGHT_ALIGN) / row_bytes;
    }
    if (!fits)
        return ref_error(st, MOAK_ERR_SIZE_OVERFLOW,
                         "weight of %lld x %lld x %lld does not fit in memory",
                         (long long)desc->n_experts, (long long)desc->rows,
                         (long long)desc->cols);
    bytes = n_rows * row_bytes;
    if (desc->data_size < bytes)
        return ref_error(st, MOAK_ERR_SHAPE_MISMATCH,
                         "weight data holds %zu bytes, its shape needs %zu",
                         desc->data_size, bytes);

    ref_weight *w = calloc(1, sizeof(*w));
    void *allocation = malloc(bytes + REF_WEIGHT_ALIGN);
    if (!w || !allocation) {
        free(w);
        free(allocation);
        return ref_out_of_memory(st, "a packed weight");
    }
    uintptr_t start = ((uintptr_t)allocation + REF_WEIGHT_ALIGN - 1) &
                      ~(uintptr_t)(REF_WEIGHT_ALIGN - 1);
    memcpy((void *)start, desc->data, bytes);

    w->format = desc->format;
    w->n_experts = desc->n_experts;
    w->rows = desc->rows;
    w->cols = desc->cols;
    w->row_bytes = row_bytes;
    w->data = (const unsigned char *)start;
    w->allocation = allocation;
    *packed = w;
    return MOAK_OK;
}

static void ref_weight_free(void *state, void *packed)
{
    (void)state;
    ref_weight *w = packed;
    if (!w)
        return;
    free(w->allocation);
    free(w);
}

const moak_backend_ops moak_backend_ref = {
    .abi_version = MOAK_BACKEND_ABI_VERSION,
    .name = "ref",
    .description = "portable scalar C, f32 storage with f64 accumulation: the ground truth",
    .host_memory = true,
    .available = NULL,
    .init = ref_init,
    .fini = ref_fini,
    .supports = ref_supports,
    .weight_pack = ref_weight_pack,
    .weight_free = ref_weight_free,
    .kv_create = NULL,
    .kv_free = NULL,
    .kv_write = NULL,
    .matmul = ref_matmul,
    .moe_ffn = ref_moe_ffn,
    .moe_route = ref_moe_route,
    .attention = ref_attention,
    .indexer = ref_indexer,
    .rmsnorm = ref_rmsnorm,
    .rope = ref_rope,
    .gated_delta = ref_gated_delta,
};
