/*
 * One matmul through a cached oneDNN primitive (onednn_gemm), and the
 * moak_matmul op on top of it.
 *
 * Activations are prepared in C first (onednn_rows.c): f32 rows are used in
 * place, bf16 rows are rounded, s8 rows quantized with one scale per row.
 * Batches longer than onednn_max_chunk rows run in chunks of that many rows.
 * Before the first chunk writes anything, every primitive the call needs is
 * looked up (created on a miss), so a failure to create one leaves y
 * untouched; oneDNN checks its arguments before it computes, so an execute
 * that fails has not written its destination either.
 */
#include <string.h>

#include "onednn_internal.h"

moak_status onednn_gemm(onednn_state *st, const onednn_weight *w, int64_t expert,
                        const float *bias, const void *src, const float *src_scales, int64_t m,
                        float *out)
{
    const onednn_kind kind = w->kind;
    const int64_t n = w->n, k = w->k;
    const int64_t act_rows = onednn_act_rows(kind, m);
    const int64_t rows = onednn_class_rows(kind, act_rows);
    /* s8 takes its bias in the C epilogue, with the scales. */
    const bool fused_bias = bias && kind != ONEDNN_KIND_S8;
    onednn_matmul_entry *e;
    moak_status status = onednn_matmul_lookup(st, kind, rows, &w->layout, k, n, fused_bias, &e);
    if (status != MOAK_OK)
        return status;

    void *dst = out;
    if (kind == ONEDNN_KIND_S8 || (rows != DNNL_RUNTIME_DIM_VAL && rows != m)) {
        size_t bytes;
        if (!onednn_mul_size3((size_t)rows, (size_t)n, sizeof(float), &bytes))
            return onednn_error(st, MOAK_ERR_SIZE_OVERFLOW, "%lld x %lld outputs overflow size_t",
                                (long long)rows, (long long)n);
        if (!(dst = onednn_buffer(st, ONEDNN_BUF_DST, bytes)))
            return MOAK_ERR_OUT_OF_MEMORY;
    }

    dnnl_memory_t src_mem = e->src, dst_mem = e->dst;
    bool own_memory = false;
    if (rows == DNNL_RUNTIME_DIM_VAL) {
        /* One primitive for every m: memory objects carry this call's m. */
        dnnl_memory_desc_t src_md, dst_md;
        dnnl_dims_t src_dims = {act_rows, k}, dst_dims = {act_rows, n};
        src_mem = dst_mem = NULL;
        own_memory = true;
        ONEDNN_TRY(st, status, done,
                   dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, onednn_kind_dnnl_type(kind), dnnl_ab),
                   "dnnl_memory_desc_init_by_tag (source)");
        ONEDNN_TRY(st, status, done, dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, dnnl_f32, dnnl_ab),
                   "dnnl_memory_desc_init_by_tag (destination)");
        ONEDNN_TRY(st, status, done, dnnl_memory_create(&src_mem, &src_md, st->engine, (void *)src),
                   "dnnl_memory_create (source)");
        ONEDNN_TRY(st, status, done, dnnl_memory_create(&dst_mem, &dst_md, st->engine, dst),
                   "dnnl_memory_create (destination)");
    } else {
        ONEDNN_TRY(st, status, done, dnnl_memory_set_data_handle(src_mem, (void *)src),
                   "dnnl_memory_set_data_handle (source)");
        ONEDNN_TRY(st, status, done, dnnl_memory_set_data_handle(dst_mem, dst),
                   "dnnl_memory_set_data_handle (destination)");
    }
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, src_mem},
        {DNNL_ARG_WEIGHTS, w->experts[expert]},
        {DNNL_ARG_DST, dst_mem},
        {DNNL_ARG_BIAS, e->bias_mem},
    };
    if (fused_bias)
        ONEDNN_TRY(st, status, done, dnnl_memory_set_data_handle(e->bias_mem, (void *)bias),
                   "dnnl_memory_set_data_handle (bias)");
    ONEDNN_TRY(st, status, done, dnnl_primitive_execute(e->primitive, st->stream, fused_bias ? 4 : 3, args),
               "dnnl_primitive_execute (matmul)");
    ONEDNN_TRY(st, status, done, dnnl_stream_wait(st->stream), "dnnl_stream_wait (matmul)");

    if (kind == ONEDNN_KIND_S8)
        onednn_s8_epilogue(st, dst, m, n, src_scales, w->row_scales + expert * n, bias, out);
    else if (dst != out)
        memcpy(out, dst, (size_t)m * (size_t)n * sizeof(float));
done:
    if (own_memory) {
        if (src_mem)
            dnnl_memory_destroy(src_mem);
        if (dst_mem)
            dnnl_memory_destroy(dst_mem);
    }
    return status;
}

moak_status onednn_prefetch_primitives(onednn_state *st, const onednn_weight *w, bool bias, int64_t m)
{
    const bool fused_bias = bias && w->kind != ONEDNN_KIND_S8;
    const int64_t chunk = onednn_max_chunk(w->kind);
    int64_t sizes[2] = {m >= chunk ? chunk : 0, m % chunk};
    for (int i = 0; i < 2; i++) {
        if (sizes[i] == 0)
            continue;
        onednn_matmul_entry *e;
        int64_t rows = onednn_class_rows(w->kind, onednn_act_rows(w->kind, sizes[i]));
        moak_status status = onednn_matmul_lookup(st, w->kind, rows,
                                                  &w->layout, w->k, w->n, fused_bias, &e);
        if (status != MOAK_OK)
            return status;
    }
    return MOAK_OK;
}

static moak_status matmul_locked(onednn_state *st, const moak_matmul_args *args)
{
    const onednn_weight *w = args->w->packed;
    const float *bias = args->w->bias ? args->w->bias + (int64_t)args->expert * w->n : NULL;
    const int64_t m = args->m, k = w->k, n = w->n;
    if (m == 0)
        return MOAK_OK;
    if (w->kind == ONEDNN_KIND_F32)
        /* f32 runs every m on one runtime-rows primitive, straight from x. */
        return onednn_gemm(st, w, args->expert, bias, args->x, NULL, m, args->y);

    moak_status status = onednn_prefetch_primitives(st, w, bias != NULL, m);
    if (status != MOAK_OK)
        return status;
    const int64_t chunk_rows = m < onednn_max_chunk(w->kind) ? m : onednn_max_chunk(w->kind);
    const int64_t padded = onednn_padded_rows(w->kind, chunk_rows);
    size_t src_bytes;
    if (!onednn_mul_size3((size_t)padded, (size_t)k, onednn_kind_elem_bytes(w->kind), &src_bytes))
        return onednn_error(st, MOAK_ERR_SIZE_OVERFLOW, "%lld x %lld activations overflow size_t",
                            (long long)padded, (long long)k);
    void *src = onednn_buffer(st, ONEDNN_BUF_SRC, src_bytes);
    float *scales = onednn_buffer(st, ONEDNN_BUF_SRC_SCALES, (size_t)padded * sizeof(float));
    if (!src || !scales)
        return MOAK_ERR_OUT_OF_MEMORY;
    for (int64_t r0 = 0; r0 < m; r0 += chunk_rows) {
        const int64_t rows = m - r0 < chunk_rows ? m - r0 : chunk_rows;
        onednn_rows_in in = {args->x + r0 * k, NULL, rows, k};
        onednn_prepare_rows(st, w->kind, &in, onednn_padded_rows(w->kind, rows), src, scales);
        status = onednn_gemm(st, w, args->expert, bias, src, scales, rows, args->y + r0 * n);
        if (status != MOAK_OK)
            return status;
    }
    return MOAK_OK;
}

moak_status onednn_matmul(void *state, const moak_matmul_args *args)
{
    onednn_state *st = state;
    onednn_threads_enter(st);
    moak_status status = matmul_locked(st, args);
    onednn_threads_leave(st);
    return status;
}
