/*
 * The MoE expert FFN on oneDNN primitives.
 *
 * The core has grouped the (token, slot) pairs by expert (moak_moe_args:
 * offsets, pairs, active_experts).  For each active expert, in ascending
 * id order, and for each chunk of at most onednn_max_chunk of its pairs:
 *   1. gather the chunk's token rows and prepare them once (f32 copy, bf16
 *      rounding or s8 quantization per row);
 *   2. gate and up projections: the same prepared rows through the same
 *      cached primitive (gate and up have one shape), with each weight;
 *   3. the GLU in C (SiLU, exact GELU, gpt-oss's clamped SwiGLU);
 *   4. prepare the GLU rows, down projection;
 *   5. add routing weight x result into a per-token f32 accumulator.
 * Every token's accumulator receives its experts' contributions in
 * ascending expert id, whatever the thread count, so the sum is bitwise
 * reproducible (the order is deterministic without storing every pair's
 * result: top_k times less memory than a per-slot buffer).  y is written
 * only at the end, from the accumulator, so a failure leaves it untouched.
 * Experts no token chose are never read.
 */
#include <string.h>

#include "onednn_internal.h"

typedef struct moe_buffers {
    void *src;                    /* prepared rows, class rows x max(hidden, inter) */
    float *scales;                /* their s8 row scales */
    float *gate, *up, *hidden, *down;
    float *accum;                 /* [n_tokens][hidden] */
    int32_t *tokens;              /* token of each chunk row */
    float *weights;               /* routing weight of each chunk row */
} moe_buffers;

static moak_status get_buffers(onednn_state *st, const moak_moe_args *a, onednn_kind kind,
                               int64_t max_chunk, moe_buffers *b)
{
    const int64_t padded = onednn_padded_rows(kind, max_chunk);
    const int64_t widest = a->hidden > a->inter ? a->hidden : a->inter;
    size_t src_bytes, inter_bytes, down_bytes, accum_bytes;
    if (!onednn_mul_size3((size_t)padded, (size_t)widest, onednn_kind_elem_bytes(kind), &src_bytes) ||
        !onednn_mul_size3((size_t)max_chunk, (size_t)a->inter, sizeof(float), &inter_bytes) ||
        !onednn_mul_size3((size_t)max_chunk, (size_t)a->hidden, sizeof(float), &down_bytes) ||
        !onednn_mul_size3((size_t)a->n_tokens, (size_t)a->hidden, sizeof(float), &accum_bytes))
        return onednn_error(st, MOAK_ERR_SIZE_OVERFLOW, "MoE work buffers overflow size_t");
    b->src = onednn_buffer(st, ONEDNN_BUF_SRC, src_bytes);
    b->scales = onednn_buffer(st, ONEDNN_BUF_SRC_SCALES, (size_t)padded * sizeof(float));
    b->gate = onednn_buffer(st, ONEDNN_BUF_GATE, inter_bytes);
    b->up = onednn_buffer(st, ONEDNN_BUF_UP, inter_bytes);
    b->hidden = onednn_buffer(st, ONEDNN_BUF_HIDDEN, inter_bytes);
    b->down = onednn_buffer(st, ONEDNN_BUF_DOWN, down_bytes);
    b->accum = onednn_buffer(st, ONEDNN_BUF_ACCUM, accum_bytes);
    void *index = onednn_buffer(st, ONEDNN_BUF_INDEX, (size_t)max_chunk * (sizeof(int32_t) + sizeof(float)));
    if (!b->src || !b->scales || !b->gate || !b->up || !b->hidden || !b->down || !b->accum || !index)
        return MOAK_ERR_OUT_OF_MEMORY;
    b->tokens = index;
    b->weights = (float *)(b->tokens + max_chunk);
    memset(b->accum, 0, accum_bytes);
    return MOAK_OK;
}

/* One chunk of one expert's rows: steps 1-5 of the file comment. */
static moak_status run_chunk(onednn_state *st, const moak_moe_args *a, int32_t expert,
                             const int32_t *pairs, int64_t rows, moe_buffers *b)
{
    const onednn_weight *gate = a->gate->packed, *up = a->up->packed, *down = a->down->packed;
    const onednn_kind kind = gate->kind;
    const int64_t hidden = a->hidden, inter = a->inter;
    const int64_t padded = onednn_padded_rows(kind, rows);
    const float *gate_bias = a->gate->bias ? a->gate->bias + (int64_t)expert * inter : NULL;
    const float *up_bias = a->up->bias ? a->up->bias + (int64_t)expert * inter : NULL;
    const float *down_bias = a->down->bias ? a->down->bias + (int64_t)expert * hidden : NULL;

    for (int64_t r = 0; r < rows; r++) {
        b->tokens[r] = pairs[r] / a->top_k;
        b->weights[r] = a->weights[pairs[r]];
    }
    onednn_rows_in in = {a->x, b->tokens, rows, hidden};
    onednn_prepare_rows(st, kind, &in, padded, b->src, b->scales);
    moak_status status = onednn_gemm(st, gate, expert, gate_bias, b->src, b->scales, rows, b->gate);
    if (status == MOAK_OK)
        status = onednn_gemm(st, up, expert, up_bias, b->src, b->scales, rows, b->up);
    if (status != MOAK_OK)
        return status;
    onednn_glu(st, a, b->gate, b->up, rows, inter, b->hidden);

    const void *down_src = b->hidden;
    if (kind != ONEDNN_KIND_F32) {
        onednn_rows_in h = {b->hidden, NULL, rows, inter};
        onednn_prepare_rows(st, kind, &h, padded, b->src, b->scales);
        down_src = b->src;
    }
    status = onednn_gemm(st, down, expert, down_bias, down_src, b->scales, rows, b->down);
    if (status != MOAK_OK)
        return status;
    onednn_accumulate(st, b->down, rows, hidden, b->tokens, b->weights, b->accum);
    return MOAK_OK;
}

static moak_status moe_locked(onednn_state *st, const moak_moe_args *a)
{
    const onednn_weight *gate = a->gate->packed, *up = a->up->packed, *down = a->down->packed;
    if (gate->kind != up->kind || gate->kind != down->kind)
        return onednn_error(st, MOAK_ERR_SHAPE_MISMATCH,
                            "gate, up and down weights were packed for different compute types (%s, %s, %s)",
                            onednn_kind_name(gate->kind), onednn_kind_name(up->kind),
                            onednn_kind_name(down->kind));
    int64_t largest = 0;
    for (int32_t i = 0; i < a->n_active_experts; i++) {
        int32_t e = a->active_experts[i];
        int64_t count = a->offsets[e + 1] - a->offsets[e];
        largest = count > largest ? count : largest;
    }
    if (largest == 0) {
        memset(a->y, 0, (size_t)a->n_tokens * (size_t)a->hidden * sizeof(float));
        return MOAK_OK;
    }
    const int64_t chunk_limit = onednn_max_chunk(gate->kind);
    const int64_t max_chunk = largest < chunk_limit ? largest : chunk_limit;
    moe_buffers b = {0};
    moak_status status = get_buffers(st, a, gate->kind, max_chunk, &b);
    if (status != MOAK_OK)
        return status;

    for (int32_t i = 0; i < a->n_active_experts; i++) {
        const int32_t e = a->active_experts[i];
        const int64_t first = a->offsets[e], count = a->offsets[e + 1] - first;
        for (int64_t r0 = 0; r0 < count; r0 += max_chunk) {
            const int64_t rows = count - r0 < max_chunk ? count - r0 : max_chunk;
            status = run_chunk(st, a, e, a->pairs + first + r0, rows, &b);
            if (status != MOAK_OK)
                return status;
        }
    }
    memcpy(a->y, b.accum, (size_t)a->n_tokens * (size_t)a->hidden * sizeof(float));
    return MOAK_OK;
}

moak_status onednn_moe_ffn(void *state, const moak_moe_args *args)
{
    onednn_state *st = state;
    onednn_threads_enter(st);
    moak_status status = moe_locked(st, args);
    onednn_threads_leave(st);
    return status;
}
