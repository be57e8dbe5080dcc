/*
 * Weight packing for the neon backend: canonical rows (moak.h) -> the panel
 * layout described in neon_kernels.h, in the k_group of the context's
 * kernel level.  Plain C, run once per weight, one (expert, panel) per task.
 */
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200112L
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200112L
#endif
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "neon_backend.h"
#include "neon_kernels.h"

static bool is_four_bit(moak_format f)
{
    return f == MOAK_FORMAT_Q4_0 || f == MOAK_FORMAT_I4_G32 || f == MOAK_FORMAT_I4_G128;
}

static int group_elems(moak_format f)
{
    return (int)moak_format_block_elems(f);
}

static size_t float_elem_bytes(moak_format f)
{
    return f == MOAK_FORMAT_F32 ? 4 : 2;
}

static size_t scale_bytes(const neon_weight *w)
{
    const size_t r = NEON_PANEL_ROWS;
    switch (w->format) {
    case MOAK_FORMAT_Q8_0:
    case MOAK_FORMAT_Q4_0:
        return (size_t)w->n_blocks * r * 2;
    case MOAK_FORMAT_I4_G32:
    case MOAK_FORMAT_I4_G128:
        return (size_t)(w->k_padded / group_elems(w->format)) * 2 * r * 2;
    case MOAK_FORMAT_I8_ROW:
        return r * 4;
    default:
        return 0;
    }
}

/* Signed quant of element k of a canonical row: int8 for 8-bit formats,
 * code - 8 (in -8..7) for 4-bit ones; 0 past an I8_ROW row. */
static int source_quant(moak_format f, const uint8_t *row, int64_t cols, int64_t k)
{
    const int q = moak_row_quant(f, row, cols, k);
    return f == MOAK_FORMAT_Q8_0 || f == MOAK_FORMAT_I8_ROW ? q : q - 8;
}

static uint16_t load_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static void pack_int_row(const neon_weight *w, const uint8_t *srow, int r, uint8_t *panel)
{
    const int kg = w->k_group;
    const int rows_per_vector = 16 / kg;
    const int n_groups = NEON_PANEL_ROWS / rows_per_vector;
    const int n_chunks = NEON_QBLOCK / kg;
    const bool four_bit = is_four_bit(w->format);
    const size_t block_bytes = four_bit ? NEON_PANEL_ROWS * 16 : NEON_PANEL_ROWS * 32;
    const int g = r / rows_per_vector;
    const int i = r % rows_per_vector;

    for (int64_t b = 0; b < w->n_blocks; b++) {
        uint8_t *block = panel + (size_t)b * block_bytes;
        for (int k = 0; k < NEON_QBLOCK; k++) {
            const int q = source_quant(w->format, srow, w->cols, b * NEON_QBLOCK + k);
            const int c = k / kg, j = k % kg;
            if (!four_bit) {
                block[((size_t)c * n_groups + g) * 16 + (size_t)(i * kg + j)] = (uint8_t)(int8_t)q;
            } else {
                const int half = n_chunks / 2;
                uint8_t *byte = &block[((size_t)(c % half) * n_groups + g) * 16 + (size_t)(i * kg + j)];
                const uint8_t nib = (uint8_t)(q & 15);
                *byte = c < half ? (uint8_t)((*byte & 0xF0u) | nib) : (uint8_t)((*byte & 0x0Fu) | (nib << 4));
            }
        }
    }

    uint8_t *scales = panel + w->quant_bytes;
    switch (w->format) {
    case MOAK_FORMAT_Q8_0:
    case MOAK_FORMAT_Q4_0: {
        const size_t block_src = w->format == MOAK_FORMAT_Q8_0 ? 34 : 18;
        for (int64_t b = 0; b < w->n_blocks; b++) {
            const uint16_t d = load_u16(srow + (size_t)b * block_src);
            memcpy(scales + ((size_t)b * NEON_PANEL_ROWS + (size_t)r) * 2, &d, 2);
        }
        break;
    }
    case MOAK_FORMAT_I4_G32:
    case MOAK_FORMAT_I4_G128: {
        const int ge = group_elems(w->format);
        const int64_t n_groups_k = w->k_padded / ge;
        for (int64_t gi = 0; gi < n_groups_k; gi++) {
            const uint8_t *src = srow + (size_t)gi * (size_t)(4 + ge / 2);
            const uint16_t scale = load_u16(src), min = load_u16(src + 2);
            uint8_t *dst = scales + (size_t)gi * 2 * NEON_PANEL_ROWS * 2;
            memcpy(dst + (size_t)r * 2, &scale, 2);
            memcpy(dst + (size_t)(NEON_PANEL_ROWS + r) * 2, &min, 2);
        }
        break;
    }
    case MOAK_FORMAT_I8_ROW:
        memcpy(scales + (size_t)r * 4, srow, 4);
        break;
    default:
        break;
    }
}

static void pack_float_row(const neon_weight *w, const uint8_t *srow, int r, uint8_t *panel)
{
    const size_t es = float_elem_bytes(w->format);
    for (int64_t k = 0; k < w->cols; k++)
        memcpy(panel + ((size_t)k * NEON_PANEL_ROWS + (size_t)r) * es, srow + (size_t)k * es, es);
}

typedef struct pack_job {
    const neon_weight *w;
    const uint8_t *src;
    size_t src_row_bytes;
} pack_job;

static void pack_task(void *arg, int64_t task, int32_t thread)
{
    (void)thread;
    const pack_job *job = arg;
    const neon_weight *w = job->w;
    const int64_t expert = task / w->n_panels, p = task % w->n_panels;
    uint8_t *panel = (uint8_t *)neon_panel(w, expert, p);
    for (int r = 0; r < NEON_PANEL_ROWS; r++) {
        const int64_t row = p * NEON_PANEL_ROWS + r;
        if (row >= w->rows)
            break; /* padding rows stay zero: zero quants, zero scales */
        const uint8_t *srow = job->src + ((size_t)expert * (size_t)w->rows + (size_t)row) * job->src_row_bytes;
        if (neon_format_is_float(w->format))
            pack_float_row(w, srow, r, panel);
        else
            pack_int_row(w, srow, r, panel);
    }
}

moak_status neon_weight_pack(void *state, const moak_weight_desc *desc, void **packed)
{
    neon_state *st = state;
    neon_weight *w = calloc(1, sizeof(*w));
    if (!w)
        return neon_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of memory for a weight");
    w->format = desc->format;
    w->n_experts = desc->n_experts;
    w->rows = desc->rows;
    w->cols = desc->cols;
    w->k_group = neon_format_is_float(desc->format) ? 0 : st->kernels->k_group;
    w->n_panels = (desc->rows + NEON_PANEL_ROWS - 1) / NEON_PANEL_ROWS;
    w->k_padded = neon_k_padded(desc->format, desc->cols);
    w->n_blocks = neon_format_is_float(desc->format) ? 0 : w->k_padded / NEON_QBLOCK;

    /* Sizes: the core bounded the canonical bytes; the packed form is at
     * most 8/7 of them plus the padding of one panel per expert, but check
     * each product anyway. */
    const size_t rows = NEON_PANEL_ROWS;
    bool fits = true;
    if (neon_format_is_float(desc->format))
        fits = (uint64_t)desc->cols <= SIZE_MAX / (rows * 4);
    if (!fits)
        goto too_big;
    if (neon_format_is_float(desc->format))
        w->quant_bytes = (size_t)desc->cols * rows * float_elem_bytes(desc->format);
    else
        w->quant_bytes = (size_t)w->n_blocks * rows * (is_four_bit(desc->format) ? 16 : 32);
    w->panel_bytes = (w->quant_bytes + scale_bytes(w) + 63) & ~(size_t)63;
    if ((uint64_t)w->n_panels > SIZE_MAX / w->panel_bytes)
        goto too_big;
    w->expert_bytes = w->panel_bytes * (size_t)w->n_panels;
    if ((uint64_t)w->n_experts > SIZE_MAX / w->expert_bytes)
        goto too_big;
    const size_t total = w->expert_bytes * (size_t)w->n_experts;
    void *data = moak_alloc_streamed(total); /* huge pages where the OS gives them */
    if (!data) {
        free(w);
        return neon_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of memory packing a %zu-byte weight", total);
    }
    w->data = data;
    memset(w->data, 0, total);

    pack_job job = {w, desc->data, moak_format_row_bytes(desc->format, desc->cols)};
    neon_parallel_for(st, w->n_experts * w->n_panels, pack_task, &job);
    *packed = w;
    return MOAK_OK;

too_big:
    free(w);
    return neon_error(st, MOAK_ERR_SIZE_OVERFLOW, "packed weight of %lld x %lld x %lld does not fit in memory",
                      (long long)desc->n_experts, (long long)desc->rows, (long long)desc->cols);
}

void neon_weight_free(void *state, void *packed)
{
    (void)state;
    neon_weight *w = packed;
    if (!w)
        return;
    free(w->data);
    free(w);
}
