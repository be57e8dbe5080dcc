/*
 * Matmul primitives, created once per (kind, rows class, k, n, bias) and
 * kept in a small least-recently-used cache of the backend state.
 *
 * Creating a oneDNN primitive (descriptor, implementation search, JIT code
 * generation) costs 0.1-0.6 ms on the shapes of bench/workloads; a cache
 * hit costs a scan of this table.  The thread count is part of the key:
 * oneDNN divides the work for the threads in force when a primitive is
 * created, and the MoE FFN runs primitives made for one thread inside its
 * own parallel region.
 *
 * Rows classes.  oneDNN 2.6 can leave M to run time (DNNL_RUNTIME_DIM_VAL),
 * but then it only offers its older gemm:jit implementation for int8 and
 * bf16, never the brgemm kernels (AVX-512 VNNI, AMX).  Measured on a
 * Sapphire Rapids guest (2 threads, k 2048, n 768, weights in cache),
 * runtime M against a primitive made for the exact M:
 *     s8:   m=1 55 us vs 6.8 us,  m=64 139 us vs 29 us,  m=512 746 us vs 209 us
 *     bf16: m=1 27 us vs 20 us,   m=64 201 us vs 58 us,  m=512 812 us vs 584 us
 *     f32:  equal within noise (gemm:jit vs brg:avx512_core, 95 us at m=1)
 * So f32 uses one runtime-M primitive per shape, and s8/bf16 use fixed-M
 * primitives per rows class: m itself up to 4 (decode batches, where every
 * wasted row would cost), then 8, multiples of 16 up to 64 and multiples
 * of 64 up to ONEDNN_MAX_CLASS_ROWS; the caller pads the prepared
 * activations with zero rows up to the class (AMX tiles are 16 rows, so
 * the padding is nearly free there) and splits longer batches into chunks.
 * At most 16 classes exist per shape.  (s8 counts primitive rows: two per
 * activation row, see onednn_rows.c.)
 *
 * Weight layout.  The layout is chosen once per (kind, k, n) with format
 * `any` on a 64-row probe (runtime rows for f32) and every class primitive
 * is created for exactly that layout, so one packed copy of the weights
 * serves every m.
 */
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <dnnl_debug.h>

#include "onednn_internal.h"

size_t onednn_kind_elem_bytes(onednn_kind kind)
{
    switch (kind) {
    case ONEDNN_KIND_F32: return 4;
    case ONEDNN_KIND_BF16: return 2;
    case ONEDNN_KIND_S8: return 1;
    }
    return 4;
}

dnnl_data_type_t onednn_kind_dnnl_type(onednn_kind kind)
{
    switch (kind) {
    case ONEDNN_KIND_F32: return dnnl_f32;
    case ONEDNN_KIND_BF16: return dnnl_bf16;
    case ONEDNN_KIND_S8: return dnnl_s8;
    }
    return dnnl_f32;
}

const char *onednn_kind_name(onednn_kind kind)
{
    switch (kind) {
    case ONEDNN_KIND_F32: return "f32";
    case ONEDNN_KIND_BF16: return "bf16";
    case ONEDNN_KIND_S8: return "s8";
    }
    return "?";
}

int64_t onednn_act_rows(onednn_kind kind, int64_t m) { return kind == ONEDNN_KIND_S8 ? 2 * m : m; }

int64_t onednn_max_chunk(onednn_kind kind)
{
    return kind == ONEDNN_KIND_S8 ? ONEDNN_MAX_CLASS_ROWS / 2 : ONEDNN_MAX_CLASS_ROWS;
}

int64_t onednn_class_rows(onednn_kind kind, int64_t m)
{
    if (kind == ONEDNN_KIND_F32)
        return DNNL_RUNTIME_DIM_VAL;
    if (m <= 4)
        return m < 1 ? 1 : m;
    if (m <= 8)
        return 8;
    if (m <= 64)
        return (m + 15) / 16 * 16;
    if (m <= ONEDNN_MAX_CLASS_ROWS)
        return (m + 63) / 64 * 64;
    return ONEDNN_MAX_CLASS_ROWS;
}

int64_t onednn_padded_rows(onednn_kind kind, int64_t m)
{
    int64_t act = onednn_act_rows(kind, m);
    int64_t rows = onednn_class_rows(kind, act);
    return rows == DNNL_RUNTIME_DIM_VAL ? act : rows;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

/* The primitive descriptor of y[m][n] = x[m][k] * W, W given as weights_md
 * (NULL: format `any`).  S8 writes s32 (scales are applied in C), the
 * others f32. */
static moak_status create_matmul_pd(onednn_state *st, onednn_kind kind, int64_t m, int64_t k,
                                    int64_t n, const dnnl_memory_desc_t *weights_md, bool bias,
                                    dnnl_primitive_desc_t *pd)
{
    moak_status status = MOAK_OK;
    dnnl_memory_desc_t src_md, dst_md, any_md, bias_md;
    dnnl_dims_t src_dims = {m, k}, dst_dims = {m, n}, w_dims = {k, n}, bias_dims = {1, n};
    dnnl_data_type_t dt = onednn_kind_dnnl_type(kind);
    dnnl_data_type_t dst_dt = kind == ONEDNN_KIND_S8 ? dnnl_s32 : dnnl_f32;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;

    ONEDNN_TRY(st, status, done, dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, dt, dnnl_ab),
               "dnnl_memory_desc_init_by_tag (matmul source)");
    ONEDNN_TRY(st, status, done, dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, dst_dt, dnnl_ab),
               "dnnl_memory_desc_init_by_tag (matmul destination)");
    if (!weights_md) {
        ONEDNN_TRY(st, status, done,
                   dnnl_memory_desc_init_by_tag(&any_md, 2, w_dims, dt, dnnl_format_tag_any),
                   "dnnl_memory_desc_init_by_tag (weights, any)");
        weights_md = &any_md;
    }
    if (bias)
        ONEDNN_TRY(st, status, done,
                   dnnl_memory_desc_init_by_tag(&bias_md, 2, bias_dims, dnnl_f32, dnnl_ab),
                   "dnnl_memory_desc_init_by_tag (bias)");
    ONEDNN_TRY(st, status, done,
               dnnl_matmul_desc_init(&desc, &src_md, weights_md, bias ? &bias_md : NULL, &dst_md),
               "dnnl_matmul_desc_init");
    /* Scratchpads are the caller's (one per worker): primitives then run
     * from several threads at once without sharing oneDNN's own. */
    ONEDNN_TRY(st, status, done, dnnl_primitive_attr_create(&attr), "dnnl_primitive_attr_create");
    ONEDNN_TRY(st, status, done, dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user),
               "dnnl_primitive_attr_set_scratchpad_mode");
    ONEDNN_TRY(st, status, done, dnnl_primitive_desc_create(pd, &desc, attr, st->engine, NULL),
               "dnnl_primitive_desc_create (matmul)");
done:
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return status;
}

moak_status onednn_pick_weight_layout(onednn_state *st, onednn_kind kind, int64_t k, int64_t n,
                                      dnnl_memory_desc_t *layout)
{
    int64_t probe_rows = kind == ONEDNN_KIND_F32 ? DNNL_RUNTIME_DIM_VAL : 64;
    dnnl_primitive_desc_t pd = NULL;
    moak_status status = create_matmul_pd(st, kind, probe_rows, k, n, NULL, false, &pd);
    if (status != MOAK_OK)
        return status;
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (!md) {
        status = onednn_error(st, MOAK_ERR_BACKEND, "the matmul primitive descriptor has no weights");
    } else {
        *layout = *md;
    }
    dnnl_primitive_desc_destroy(pd);
    return status;
}

bool onednn_probe_kind(onednn_state *st, onednn_kind kind, char *lack, size_t lack_len)
{
    dnnl_primitive_desc_t pd = NULL;
    const int64_t rows = kind == ONEDNN_KIND_F32 ? DNNL_RUNTIME_DIM_VAL : 64;
    dnnl_memory_desc_t src_md, dst_md, w_md;
    dnnl_dims_t src_dims = {rows, 64}, w_dims = {64, 64}, dst_dims = {rows, 64};
    dnnl_data_type_t dt = onednn_kind_dnnl_type(kind);
    dnnl_matmul_desc_t desc;
    dnnl_status_t s = dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, dt, dnnl_ab);
    if (s == dnnl_success)
        s = dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, kind == ONEDNN_KIND_S8 ? dnnl_s32 : dnnl_f32,
                                         dnnl_ab);
    if (s == dnnl_success)
        s = dnnl_memory_desc_init_by_tag(&w_md, 2, w_dims, dt, dnnl_format_tag_any);
    if (s == dnnl_success)
        s = dnnl_matmul_desc_init(&desc, &src_md, &w_md, NULL, &dst_md);
    if (s == dnnl_success)
        s = dnnl_primitive_desc_create(&pd, &desc, NULL, st->engine, NULL);
    if (s != dnnl_success) {
        snprintf(lack, lack_len, "oneDNN has no %s matmul on this CPU (dnnl_%s)", onednn_kind_name(kind),
                 dnnl_status2str(s));
        return false;
    }
    const char *impl = NULL;
    bool real = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
                strncmp(impl, "ref", 3) != 0;
    /* Without VNNI, oneDNN's int8 kernels multiply with vpmaddubsw, whose
     * 16-bit pair sums saturate for full-range s8 weights (oneDNN's own
     * guidance is 7-bit weights there): measured errors of 30-60% at
     * MOAK_ISA_MAX=scalar.  I8_ROW weights use the full range. */
    unsigned effective = (unsigned)dnnl_get_effective_cpu_isa();
    bool vnni = (effective & (unsigned)dnnl_cpu_isa_avx512_core_vnni) == (unsigned)dnnl_cpu_isa_avx512_core_vnni ||
                (effective & (unsigned)dnnl_cpu_isa_avx2_vnni) == (unsigned)dnnl_cpu_isa_avx2_vnni;
    if (!real)
        snprintf(lack, lack_len, "oneDNN has only its reference %s matmul on this CPU (%s)",
                 onednn_kind_name(kind), impl ? impl : "?");
    else if (kind == ONEDNN_KIND_S8 && !vnni) {
        real = false;
        snprintf(lack, lack_len, "oneDNN's int8 matmul saturates without VNNI (%s)",
                 dnnl_cpu_isa2str((dnnl_cpu_isa_t)effective));
    } else {
        onednn_log(st, MOAK_LOG_DEBUG, "%s matmul: %s", onednn_kind_name(kind), impl);
    }
    dnnl_primitive_desc_destroy(pd);
    return real;
}

static void entry_release(onednn_matmul_entry *e)
{
    if (e->primitive)
        dnnl_primitive_destroy(e->primitive);
    memset(e, 0, sizeof(*e));
}

void onednn_cache_clear(onednn_state *st)
{
    for (int i = 0; i < ONEDNN_CACHE_ENTRIES; i++)
        if (st->cache[i].used)
            entry_release(&st->cache[i]);
}

static bool entry_matches(const onednn_matmul_entry *e, onednn_kind kind, int64_t m, int64_t k, int64_t n,
                          bool bias, int threads, const dnnl_memory_desc_t *weights_md)
{
    return e->used && e->kind == kind && e->m == m && e->k == k && e->n == n && e->bias == bias &&
           e->threads == threads && dnnl_memory_desc_equal(&e->weights_md, weights_md);
}

/* Fill e with a new primitive, created for `threads` OpenMP threads (oneDNN
 * splits the work for the thread count in force at creation). */
static moak_status entry_create(onednn_state *st, onednn_matmul_entry *e, onednn_kind kind, int64_t m,
                                int64_t k, int64_t n, bool bias, int threads,
                                const dnnl_memory_desc_t *weights_md)
{
    double t0 = now_ms();
    int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    dnnl_primitive_desc_t pd = NULL;
    moak_status status = create_matmul_pd(st, kind, m, k, n, weights_md, bias, &pd);
    memset(e, 0, sizeof(*e));
    if (status == MOAK_OK) {
        dnnl_status_t s = dnnl_primitive_create(&e->primitive, pd);
        if (s != dnnl_success) {
            e->primitive = NULL;
            status = onednn_dnnl_failed(st, s, "dnnl_primitive_create (matmul)");
        }
    }
    omp_set_num_threads(before);
    if (status != MOAK_OK) {
        if (pd)
            dnnl_primitive_desc_destroy(pd);
        return status;
    }
    if (st->env.log) {
        const char *impl = NULL;
        if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success)
            impl = NULL;
        char rows[32];
        if (m == DNNL_RUNTIME_DIM_VAL)
            snprintf(rows, sizeof(rows), "any");
        else
            snprintf(rows, sizeof(rows), "%lld", (long long)m);
        onednn_log(st, MOAK_LOG_DEBUG, "new %s matmul primitive m=%s k=%lld n=%lld%s, %d thread%s: %s (%.2f ms)",
                   onednn_kind_name(kind), rows, (long long)k, (long long)n, bias ? " +bias" : "", threads,
                   threads == 1 ? "" : "s", impl ? impl : "?", now_ms() - t0);
    }
    const dnnl_memory_desc_t *scratch = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    e->scratchpad = scratch ? *scratch : (dnnl_memory_desc_t){0};
    e->scratchpad_bytes = scratch ? dnnl_memory_desc_get_size(scratch) : 0;
    dnnl_primitive_desc_destroy(pd);
    e->used = true;
    e->kind = kind;
    e->m = m;
    e->k = k;
    e->n = n;
    e->bias = bias;
    e->threads = threads;
    e->weights_md = *weights_md;
    return MOAK_OK;
}

moak_status onednn_matmul_lookup(onednn_state *st, onednn_kind kind, int64_t class_rows,
                                 const dnnl_memory_desc_t *weights_md, int64_t k, int64_t n, bool bias,
                                 int threads, onednn_matmul_entry **out)
{
    onednn_matmul_entry *victim = NULL;
    for (int i = 0; i < ONEDNN_CACHE_ENTRIES; i++) {
        onednn_matmul_entry *e = &st->cache[i];
        if (entry_matches(e, kind, class_rows, k, n, bias, threads, weights_md)) {
            e->last_use = ++st->cache_clock;
            st->cache_hits++;
            *out = e;
            return MOAK_OK;
        }
        if (!victim || (victim->used && (!e->used || e->last_use < victim->last_use)))
            victim = e;
    }
    st->cache_misses++;
    if (victim->used)
        entry_release(victim);
    moak_status status = entry_create(st, victim, kind, class_rows, k, n, bias, threads, weights_md);
    if (status != MOAK_OK)
        return status;
    victim->last_use = ++st->cache_clock;
    *out = victim;
    return MOAK_OK;
}

moak_status onednn_entry_for(onednn_state *st, const onednn_weight *w, int64_t m, bool bias, int threads,
                             onednn_matmul_entry **entry)
{
    /* s8 takes its bias in the C epilogue, with the scales. */
    const bool fused_bias = bias && w->kind != ONEDNN_KIND_S8;
    const int64_t rows = onednn_class_rows(w->kind, onednn_act_rows(w->kind, m));
    return onednn_matmul_lookup(st, w->kind, rows, &w->layout, w->k, w->n, fused_bias, threads, entry);
}
