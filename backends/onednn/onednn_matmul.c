/*
 * One matmul through a cached oneDNN primitive (onednn_gemm), and the
 * moak_matmul op on top of it.
 *
 * Activations are prepared in C first (onednn_rows.c): f32 rows are used in
 * place, bf16 rows are rounded, s8 rows quantized in two levels.  Batches
 * longer than onednn_max_chunk rows run in chunks of that many rows.
 * Before the first chunk writes anything, every primitive the call needs is
 * looked up (created on a miss), so a failure to create one leaves y
 * untouched; oneDNN checks its arguments before it computes, so an execute
 * that fails has not written its destination either.
 */
#include <string.h>

#include "onednn_internal.h"

/* A memory object over `data` with dims rows x cols of type dt. */
static moak_status wrap(const onednn_state *st, int64_t rows, int64_t cols, dnnl_data_type_t dt, void *data,
                        dnnl_memory_t *mem, const char *what)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {rows, cols};
    dnnl_status_t s = dnnl_memory_desc_init_by_tag(&md, 2, dims, dt, dnnl_ab);
    if (s == dnnl_success)
        s = dnnl_memory_create(mem, &md, st->engine, data);
    if (s != dnnl_success) {
        *mem = NULL;
        return onednn_dnnl_failed(st, s, what);
    }
    return MOAK_OK;
}

moak_status onednn_gemm(const onednn_state *st, onednn_worker *wk, const onednn_matmul_entry *e,
                        const onednn_weight *w, int64_t expert, const float *bias, const void *src,
                        const float *src_scales, int64_t m, float *out, int threads)
{
    const onednn_kind kind = w->kind;
    const int64_t n = w->n, k = w->k;
    /* Rows the primitive runs: its class, or exactly the data's when it
     * takes any count. */
    const int64_t rows = e->m == DNNL_RUNTIME_DIM_VAL ? onednn_act_rows(kind, m) : e->m;
    moak_status status = MOAK_OK;

    void *dst = out;
    if (kind == ONEDNN_KIND_S8 || rows != m) {
        size_t bytes;
        if (!onednn_mul_size3((size_t)rows, (size_t)n, sizeof(float), &bytes))
            return onednn_error(st, MOAK_ERR_SIZE_OVERFLOW, "%lld x %lld outputs overflow size_t",
                                (long long)rows, (long long)n);
        if (!(dst = onednn_buffer(st, wk, ONEDNN_BUF_DST, bytes)))
            return MOAK_ERR_OUT_OF_MEMORY;
    }

    void *scratch = NULL;
    if (e->scratchpad_bytes && !(scratch = onednn_buffer(st, wk, ONEDNN_BUF_SCRATCHPAD, e->scratchpad_bytes)))
        return MOAK_ERR_OUT_OF_MEMORY;

    dnnl_memory_t src_mem = NULL, dst_mem = NULL, bias_mem = NULL, scratch_mem = NULL;
    status = wrap(st, rows, k, onednn_kind_dnnl_type(kind), (void *)src, &src_mem, "dnnl_memory_create (source)");
    if (status == MOAK_OK)
        status = wrap(st, rows, n, kind == ONEDNN_KIND_S8 ? dnnl_s32 : dnnl_f32, dst, &dst_mem,
                      "dnnl_memory_create (destination)");
    if (status == MOAK_OK && e->bias)
        status = wrap(st, 1, n, dnnl_f32, (void *)bias, &bias_mem, "dnnl_memory_create (bias)");
    if (status == MOAK_OK && scratch)
        ONEDNN_TRY(st, status, done, dnnl_memory_create(&scratch_mem, &e->scratchpad, st->engine, scratch),
                   "dnnl_memory_create (scratchpad)");
    if (status != MOAK_OK)
        goto done;
    dnnl_exec_arg_t args[5] = {
        {DNNL_ARG_SRC, src_mem},
        {DNNL_ARG_WEIGHTS, w->experts[expert]},
        {DNNL_ARG_DST, dst_mem},
    };
    int n_args = 3;
    if (bias_mem)
        args[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, bias_mem};
    if (scratch_mem)
        args[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, scratch_mem};
    ONEDNN_TRY(st, status, done, dnnl_primitive_execute(e->primitive, wk->stream, n_args, args),
               "dnnl_primitive_execute (matmul)");
    ONEDNN_TRY(st, status, done, dnnl_stream_wait(wk->stream), "dnnl_stream_wait (matmul)");

    if (kind == ONEDNN_KIND_S8)
        onednn_s8_epilogue(st->rows, threads, dst, m, n, src_scales, w->row_scales + expert * n, bias, out);
    else if (dst != out)
        memcpy(out, dst, (size_t)m * (size_t)n * sizeof(float));
done:
    if (src_mem)
        dnnl_memory_destroy(src_mem);
    if (dst_mem)
        dnnl_memory_destroy(dst_mem);
    if (bias_mem)
        dnnl_memory_destroy(bias_mem);
    if (scratch_mem)
        dnnl_memory_destroy(scratch_mem);
    return status;
}

static moak_status matmul_locked(onednn_state *st, const moak_matmul_args *args)
{
    const onednn_weight *w = args->w->packed;
    const float *bias = args->w->bias ? args->w->bias + (int64_t)args->expert * w->n : NULL;
    const int64_t m = args->m, k = w->k, n = w->n;
    const int threads = st->n_threads;
    onednn_worker *wk = &st->workers[0];
    if (m == 0)
        return MOAK_OK;
    onednn_matmul_entry *full = NULL, *tail = NULL;
    if (w->kind == ONEDNN_KIND_F32) {
        /* f32 runs every m on one runtime-rows primitive, straight from x. */
        moak_status status = onednn_entry_for(st, w, m, bias != NULL, threads, &full);
        if (status != MOAK_OK)
            return status;
        return onednn_gemm(st, wk, full, w, args->expert, bias, args->x, NULL, m, args->y, threads);
    }

    const int64_t chunk = onednn_max_chunk(w->kind);
    const int64_t chunk_rows = m < chunk ? m : chunk;
    moak_status status = onednn_entry_for(st, w, chunk_rows, bias != NULL, threads, &full);
    if (status == MOAK_OK && m > chunk && m % chunk)
        status = onednn_entry_for(st, w, m % chunk, bias != NULL, threads, &tail);
    if (status != MOAK_OK)
        return status;
    const int64_t padded = onednn_padded_rows(w->kind, chunk_rows);
    size_t src_bytes;
    if (!onednn_mul_size3((size_t)padded, (size_t)k, onednn_kind_elem_bytes(w->kind), &src_bytes))
        return onednn_error(st, MOAK_ERR_SIZE_OVERFLOW, "%lld x %lld activations overflow size_t",
                            (long long)padded, (long long)k);
    void *src = onednn_buffer(st, wk, ONEDNN_BUF_SRC, src_bytes);
    float *scales = onednn_buffer(st, wk, ONEDNN_BUF_SRC_SCALES, (size_t)padded * sizeof(float));
    if (!src || !scales)
        return MOAK_ERR_OUT_OF_MEMORY;
    for (int64_t r0 = 0; r0 < m; r0 += chunk_rows) {
        const int64_t rows = m - r0 < chunk_rows ? m - r0 : chunk_rows;
        onednn_rows_in in = {args->x + r0 * k, NULL, rows, k};
        onednn_prepare_rows(st->rows, threads, w->kind, &in, onednn_padded_rows(w->kind, rows), src, scales);
        status = onednn_gemm(st, wk, rows == chunk_rows ? full : tail, w, args->expert, bias, src, scales, rows,
                             args->y + r0 * n, threads);
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
