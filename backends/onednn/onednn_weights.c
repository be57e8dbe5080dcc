/*
 * Weights for oneDNN: which formats it computes, and packing — one reorder
 * per expert, at creation, into the layout oneDNN chose (format `any`).
 *
 * Formats oneDNN 2.6 computes natively on CPU:
 *   F32     f32 weights, f32 activations
 *   BF16    bf16 weights, activations rounded to bf16
 *   I8_ROW  s8 weights and per-row f32 scales (applied after the s32 sums),
 *           activations quantized to s8 per row
 * Formats it cannot compute exactly: F16 (no f16 matmul on CPU in 2.6),
 * Q8_0 and Q4_0 (per-block scales: 2.6 scales only whole output columns),
 * I4_G32 and I4_G128 (no int4 weights, no per-group scales).  supports()
 * declines them, unless the context sets MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION:
 * then the weights are dequantized at creation with the core's own
 * moak_dequantize_row (the exact values the reference computes with) and
 * kept as f32.  That is the only exact target: bf16's 8-bit mantissa cannot
 * hold an f16 scale times a 4- or 8-bit integer.  Memory grows by
 * 4 * k / row_bytes(format, k), for k a multiple of the block:
 *   F16 2x, Q8_0 3.76x (34 -> 128 bytes per 32 values),
 *   Q4_0 7.11x (18 -> 128), I4_G32 6.4x (20 -> 128), I4_G128 7.53x (68 -> 512),
 *   and the release formats (counting the scales each row uses):
 *   FP8_E4M3_B128 3.88x, MXFP4/MXFP4_ST 7.53x, I4_G32_CT 7.11x, NVFP4 7.1x.
 * The growth is logged (MOAK_VERBOSE) when the weight is created.
 * F32, BF16 and I8_ROW take the same route where this CPU (or MOAK_ISA_MAX)
 * leaves oneDNN without a real implementation of their kind (bf16 matmul
 * needs AVX-512; int8 is exact only with VNNI): BF16 grows 2x, I8_ROW
 * 4k/(4+k) (about 4x).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onednn_internal.h"

double onednn_expansion_growth(moak_format format, int64_t k)
{
    size_t row = moak_format_local_row_bytes(format, k);
    return row ? (double)k * 4.0 / (double)row : 0.0;
}

bool onednn_format_route(const onednn_state *st, moak_format format, int64_t k, onednn_kind *kind,
                         onednn_route *route, char *why, size_t why_len)
{
    const char *lack = NULL;
    switch (format) {
    case MOAK_FORMAT_F32:
    case MOAK_FORMAT_BF16:
    case MOAK_FORMAT_I8_ROW: {
        onednn_kind native = format == MOAK_FORMAT_F32    ? ONEDNN_KIND_F32
                             : format == MOAK_FORMAT_BF16 ? ONEDNN_KIND_BF16
                                                          : ONEDNN_KIND_S8;
        if (st->kind_native[native]) {
            *kind = native;
            *route = ONEDNN_ROUTE_NATIVE;
            return true;
        }
        /* e.g. bf16 below AVX-512, or an ISA cap: f32 (the core's
         * dequantization) is still exact. */
        lack = st->kind_lack[native];
        break;
    }
    case MOAK_FORMAT_F16:
        lack = "oneDNN 2.6 has no f16 matmul on CPU";
        break;
    case MOAK_FORMAT_Q8_0:
    case MOAK_FORMAT_Q4_0:
        lack = "oneDNN 2.6 has no per-block (32) weight scales";
        break;
    case MOAK_FORMAT_I4_G32:
    case MOAK_FORMAT_I4_G128:
        lack = "oneDNN 2.6 has no int4 weights or per-group scales";
        break;
    case MOAK_FORMAT_FP8_E4M3_B128:
        lack = "oneDNN 2.6 has no fp8 weights or 128x128 block scales";
        break;
    case MOAK_FORMAT_MXFP4:
    case MOAK_FORMAT_MXFP4_ST:
    case MOAK_FORMAT_NVFP4:
        lack = "oneDNN 2.6 has no fp4 (e2m1) weights or per-block scales";
        break;
    case MOAK_FORMAT_I4_G32_CT:
        lack = "oneDNN 2.6 has no int4 weights or per-group scales";
        break;
    default:
        lack = "unknown format";
        break;
    }
    *kind = ONEDNN_KIND_F32;
    *route = ONEDNN_ROUTE_EXPAND_F32;
    const char *name = moak_format_name(format);
    if (why && why_len)
        snprintf(why, why_len,
                 "%s weights need MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION (%s; expanding to f32 "
                 "grows them %.2fx)",
                 name ? name : "?", lack, onednn_expansion_growth(format, k));
    return false;
}

void onednn_weight_free(void *state, void *packed)
{
    (void)state;
    onednn_weight *w = packed;
    if (!w)
        return;
    if (w->experts)
        for (int64_t e = 0; e < w->n_experts; e++)
            if (w->experts[e])
                dnnl_memory_destroy(w->experts[e]);
    free(w->experts);
    free(w->row_scales);
    free(w);
}

/* Dequantize rows [0, n) of one expert into f32 [n][k] (the core's routine,
 * so the values are bit-identical to what the reference computes with). */
static void expand_expert(const onednn_state *st, moak_format format, const unsigned char *rows,
                          size_t row_bytes, int64_t n, int64_t k, float *dst)
{
    const int threads = st->n_threads;
#pragma omp parallel for schedule(static) num_threads(threads) if (n * k >= 65536)
    for (int64_t r = 0; r < n; r++)
        moak_dequantize_row(format, rows + (size_t)r * row_bytes, k, dst + r * k);
}

static moak_status pack_locked(onednn_state *st, const moak_weight_desc *desc, onednn_weight **out)
{
    onednn_kind kind;
    onednn_route route;
    char why[256];
    const int64_t n = desc->rows, k = desc->cols;
    if (!onednn_format_route(st, desc->format, k, &kind, &route, why, sizeof(why)) &&
        !(st->env.context_flags & MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION))
        return onednn_error(st, MOAK_ERR_UNSUPPORTED, "%s", why);

    moak_status status = MOAK_OK;
    const size_t row_bytes = moak_format_local_row_bytes(desc->format, k); /* row-local form */
    dnnl_primitive_desc_t reorder_pd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t src_mem = NULL;
    void *staging = NULL;

    onednn_weight *w = calloc(1, sizeof(*w));
    if (!w)
        return onednn_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of memory for a weight");
    w->kind = kind;
    w->source_format = desc->format;
    w->n_experts = desc->n_experts;
    w->n = n;
    w->k = k;
    w->experts = calloc((size_t)desc->n_experts, sizeof(dnnl_memory_t));
    if (!w->experts) {
        status = onednn_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of memory for %lld experts",
                              (long long)desc->n_experts);
        goto fail;
    }
    if (kind == ONEDNN_KIND_S8) {
        size_t count;
        if (!onednn_mul_size3((size_t)desc->n_experts, (size_t)n, sizeof(float), &count) ||
            !(w->row_scales = malloc(count))) {
            status = onednn_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of memory for the row scales");
            goto fail;
        }
    }
    status = onednn_pick_weight_layout(st, kind, k, n, &w->layout);
    if (status != MOAK_OK)
        goto fail;

    /* The source as oneDNN sees it: {k, n} with n the outer dimension, dense
     * (oneDNN 2.6 has no reorder from a strided s8 source into its blocked
     * int8 layouts, so I8_ROW's q bytes are first copied out of their rows). */
    dnnl_memory_desc_t src_md;
    dnnl_dims_t dims = {k, n};
    ONEDNN_TRY(st, status, fail,
               dnnl_memory_desc_init_by_tag(&src_md, 2, dims, onednn_kind_dnnl_type(kind), dnnl_ba),
               "dnnl_memory_desc_init_by_tag (weight source)");
    ONEDNN_TRY(st, status, fail,
               dnnl_reorder_primitive_desc_create(&reorder_pd, &src_md, st->engine, &w->layout, st->engine, NULL),
               "dnnl_reorder_primitive_desc_create (weights)");
    ONEDNN_TRY(st, status, fail, dnnl_primitive_create(&reorder, reorder_pd), "dnnl_primitive_create (reorder)");
    ONEDNN_TRY(st, status, fail, dnnl_memory_create(&src_mem, &src_md, st->engine, DNNL_MEMORY_NONE),
               "dnnl_memory_create (weight source)");
    if (route == ONEDNN_ROUTE_EXPAND_F32 || kind == ONEDNN_KIND_S8) {
        /* One expert's dense source: f32 values, or I8_ROW's s8 bytes. */
        size_t bytes;
        if (!onednn_mul_size3((size_t)n, (size_t)k, onednn_kind_elem_bytes(kind), &bytes) ||
            !(staging = malloc(bytes))) {
            status = onednn_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of memory staging %s weights",
                                  moak_format_name(desc->format));
            goto fail;
        }
    }

    const unsigned char *data = desc->data;
    const size_t expert_bytes = row_bytes * (size_t)n;
    for (int64_t e = 0; e < desc->n_experts; e++) {
        const unsigned char *rows = data + (size_t)e * expert_bytes;
        void *src;
        if (route == ONEDNN_ROUTE_EXPAND_F32) {
            expand_expert(st, desc->format, rows, row_bytes, n, k, staging);
            src = staging;
        } else if (kind == ONEDNN_KIND_S8) {
            int8_t *q = staging;
            for (int64_t r = 0; r < n; r++) {
                const unsigned char *row = rows + (size_t)r * row_bytes;
                memcpy(&w->row_scales[e * n + r], row, sizeof(float));
                memcpy(q + r * k, row + sizeof(float), (size_t)k);
            }
            src = staging;
        } else {
            src = (void *)rows;
        }
        ONEDNN_TRY(st, status, fail, dnnl_memory_set_data_handle(src_mem, src),
                   "dnnl_memory_set_data_handle (weight source)");
        ONEDNN_TRY(st, status, fail, dnnl_memory_create(&w->experts[e], &w->layout, st->engine, DNNL_MEMORY_ALLOCATE),
                   "dnnl_memory_create (packed weights)");
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src_mem}, {DNNL_ARG_TO, w->experts[e]}};
        ONEDNN_TRY(st, status, fail, dnnl_primitive_execute(reorder, st->workers[0].stream, 2, args),
                   "dnnl_primitive_execute (weight reorder)");
        ONEDNN_TRY(st, status, fail, dnnl_stream_wait(st->workers[0].stream), "dnnl_stream_wait (weight reorder)");
    }

    if (route == ONEDNN_ROUTE_EXPAND_F32) {
        double growth = onednn_expansion_growth(desc->format, k);
        double before = (double)expert_bytes * (double)desc->n_experts;
        onednn_log(st, MOAK_LOG_INFO,
                   "%s weights (%lld experts x %lld x %lld) expanded to f32 for oneDNN: memory grows "
                   "%.2fx (%.1f MiB -> %.1f MiB)",
                   moak_format_name(desc->format), (long long)desc->n_experts, (long long)n, (long long)k,
                   growth, before / 1048576.0, before * growth / 1048576.0);
    }
    free(staging);
    dnnl_memory_destroy(src_mem);
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(reorder_pd);
    *out = w;
    return MOAK_OK;

fail:
    free(staging);
    if (src_mem)
        dnnl_memory_destroy(src_mem);
    if (reorder)
        dnnl_primitive_destroy(reorder);
    if (reorder_pd)
        dnnl_primitive_desc_destroy(reorder_pd);
    onednn_weight_free(st, w);
    return status;
}

moak_status onednn_weight_pack(void *state, const moak_weight_desc *desc, void **packed)
{
    onednn_state *st = state;
    onednn_weight *w = NULL;
    onednn_threads_enter(st);
    moak_status status = pack_locked(st, desc, &w);
    onednn_threads_leave(st);
    if (status == MOAK_OK)
        *packed = w;
    return status;
}
